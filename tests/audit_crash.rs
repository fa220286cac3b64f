//! Crash safety: a writer process appending under load is SIGKILLed again and again; after
//! each kill every record the client saw acknowledged is in the log and the log verifies.
//!
//! The writer is this test binary itself, re-run with `ZWECK_AUDIT_CRASH_DIR` set (no
//! separate binary to build or locate). It prints `acked <seq>` for each acknowledged append;
//! the parent keeps only lines that arrived whole. The binary has its own `main` (Cargo.toml:
//! `harness = false`) so the child is not a test that passes without doing anything in a
//! normal run: the one test runs, or, with the variable set, the writer does.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use zweck::audit::{
    self, AuditConfig, AuditLog, Decision, Direction, Offbox, Stage, TransferRecord,
};
use zweck::config::{MechanismKind, TransferMechanism};

const ENV: &str = "ZWECK_AUDIT_CRASH_DIR";
const ORIGIN: &str = "zweck.test/crash";

fn config(dir: &Path) -> AuditConfig {
    let mut c = AuditConfig::new(
        dir.join("logs/transfers.jsonl"),
        dir.join("audit.key"),
        Offbox::File(dir.join("auditor/checkpoints")),
    );
    c.origin = ORIGIN.into();
    c.checkpoint_every = 50;
    c.rotate_bytes = Some(64 * 1024);
    c
}

fn record(i: u64) -> TransferRecord {
    TransferRecord {
        stage: Stage::Complete,
        request_id: format!("crash-{i}"),
        app: "bi-export".into(),
        purpose: "analytics".into(),
        data_use: "analytics.reporting".into(),
        legal_basis: "legitimate_interests".into(),
        direction: Direction::Response,
        upstream: "hubspot".into(),
        processor: "HubSpot, Inc.".into(),
        host: "api.hubapi.com".into(),
        jurisdiction: "US".into(),
        cross_border: true,
        transfer_mechanism: TransferMechanism {
            kind: MechanismKind::Scc,
            reference: Some("2021/914".into()),
            scc_module: Some("2".into()),
        },
        method: "POST".into(),
        route: "/crm/v3/objects/contacts/search".into(),
        categories_received: vec!["user.contact.email".into()],
        categories_delivered: vec![],
        records: 3,
        parts: vec![],
        bytes: 512,
        actions: Default::default(),
        decision: Decision::Minimised,
        status: 200,
        policy_version: "crash".into(),
        reason: None,
        policy_bundle: None,
    }
}

const TEST: &str = "sigkill_under_load_loses_no_acknowledged_record";

fn main() {
    if let Some(dir) = std::env::var_os(ENV) {
        return crash_writer_child(Path::new(&dir));
    }
    // Enough of libtest's command line for `cargo test`: `--list`, a name filter, `--ignored`.
    let mut args = std::env::args().skip(1);
    let (mut list, mut ignored, mut filters) = (false, false, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => list = true,
            "--ignored" => ignored = true,
            "--skip" | "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a.to_string()),
        }
    }
    if list {
        println!("{TEST}: test");
        return;
    }
    if ignored || !(filters.is_empty() || filters.iter().any(|f| TEST.contains(f.as_str()))) {
        println!("\nrunning 0 tests\n");
        return;
    }
    println!("\nrunning 1 test");
    sigkill_under_load_loses_no_acknowledged_record();
    println!("test {TEST} ... ok\n\ntest result: ok. 1 passed; 0 failed\n");
}

/// The child: appends from 8 tasks until killed.
fn crash_writer_child(dir: &Path) {
    let dir = dir.to_path_buf();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let log = AuditLog::open(config(&dir)).await.expect("open");
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = t;
                loop {
                    let seq = log.append(record(i)).await.expect("append");
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "acked {seq}");
                    let _ = out.flush();
                    i += 8;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

fn seqs_in_log(log: &Path) -> BTreeSet<u64> {
    audit::report::read_entries(log)
        .expect("entries")
        .into_iter()
        .map(|e| e.seq)
        .collect()
}

fn sigkill_under_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root: PathBuf = dir.path().to_path_buf();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
    std::fs::write(root.join("audit.key"), key.serialize_pem()).expect("key");
    let public: [u8; 32] = key.public_key_raw().try_into().expect("32 bytes");
    std::fs::create_dir_all(root.join("auditor")).expect("auditor dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked_total = BTreeSet::new();
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .env(ENV, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let (first_ack_tx, first_ack) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut line) {
                if n == 0 {
                    break;
                }
                if line.ends_with(b"\n") {
                    if let Some(seq) = std::str::from_utf8(&line)
                        .ok()
                        .and_then(|l| l.trim().strip_prefix("acked "))
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        if acked.is_empty() {
                            let _ = first_ack_tx.send(());
                        }
                        acked.push(seq);
                    }
                }
                line.clear();
            }
            acked
        });
        // Kill only once the writer is under way (a slow start on a busy machine must not
        // turn into "nothing acknowledged"), then at a different point in each round.
        if first_ack.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = child.kill();
            panic!("round {round}: the writer acknowledged nothing within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20 + 60 * round));
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on unix
        let _ = child.wait();
        let acked = reader.join().expect("reader");
        assert!(
            !acked.is_empty(),
            "round {round}: the writer acknowledged nothing"
        );
        let in_log = seqs_in_log(&config(&root).log);
        for seq in &acked {
            assert!(
                in_log.contains(seq),
                "round {round}: acked seq {seq} is not in the log"
            );
        }
        acked_total.extend(acked);
        let v = audit::verify(&audit::VerifyOptions {
            logs: vec![config(&root).log],
            keys: zweck::audit::KeyRing::single(public),
            offbox: vec![root.join("auditor/checkpoints")],
            origin: None,
            progress: false,
        });
        // Killed before its first checkpoint reached the auditor's copy, the log cannot be
        // verified yet (its tail is not covered), but nothing in it is wrong.
        if root.join("auditor/checkpoints").exists() {
            assert_eq!(v.exit_code, 0, "round {round}: {}", v.text);
        } else {
            assert_eq!(v.exit_code, 2, "round {round}: {}", v.text);
            assert!(v.text.contains("off-box file"), "round {round}: {}", v.text);
        }
    }
    // A last clean start recovers whatever tail the final kill tore, and seals the log.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let log = AuditLog::open(config(&root)).await.expect("recover");
        log.shutdown().await.expect("shutdown");
    });
    let in_log = seqs_in_log(&config(&root).log);
    assert!(acked_total.iter().all(|s| in_log.contains(s)));
    let v = audit::verify(&audit::VerifyOptions {
        logs: vec![config(&root).log],
        keys: zweck::audit::KeyRing::single(public),
        offbox: vec![root.join("auditor/checkpoints")],
        origin: None,
        progress: false,
    });
    assert_eq!(v.exit_code, 0, "{}", v.text);
    assert!(!v.text.contains("torn"), "{}", v.text);
}
