//! The transfer log end to end: group commit, chain across restarts and rotation, torn-tail
//! recovery, failure semantics, tamper detection by `verify`, off-box delivery, and the
//! auditor reports.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zweck::audit::checkpoint::{parse_notes, verify_note};
use zweck::audit::{
    self, AuditConfig, AuditError, AuditLog, Decision, Direction, FailingSink, Format, Offbox,
    ProveOptions, ReportOptions, Stage, TransferRecord, VerifyOptions,
};
use zweck::config::{MechanismKind, TransferMechanism};

use common::eventually;

const ORIGIN: &str = "zweck.test/transfers";

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: AuditConfig,
    public: [u8; 32],
}

impl Setup {
    fn log(&self) -> PathBuf {
        self.config.log.clone()
    }
    fn offbox(&self) -> PathBuf {
        self.root.join("auditor/checkpoints")
    }
    fn verify(&self) -> audit::CliReport {
        audit::verify(&VerifyOptions {
            logs: vec![self.log()],
            keys: zweck::audit::KeyRing::single(self.public),
            offbox: vec![self.offbox()],
            origin: None,
            progress: false,
        })
    }
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
    std::fs::write(root.join("audit.key"), key.serialize_pem()).expect("write key");
    let public: [u8; 32] = key.public_key_raw().try_into().expect("32 bytes");
    std::fs::create_dir_all(root.join("auditor")).expect("auditor dir");
    let mut config = AuditConfig::new(
        root.join("logs/transfers.jsonl"),
        root.join("audit.key"),
        Offbox::File(root.join("auditor/checkpoints")),
    );
    config.origin = ORIGIN.to_string();
    config.origin_configured = true;
    config.checkpoint_every = 10;
    Setup {
        _dir: dir,
        root,
        config,
        public,
    }
}

fn record(n: u64) -> TransferRecord {
    TransferRecord {
        stage: Stage::Complete,
        request_id: format!("req-{n}"),
        app: "newsletter-tool".into(),
        purpose: "newsletter".into(),
        data_use: "marketing.communications.email".into(),
        legal_basis: "consent".into(),
        direction: Direction::Response,
        upstream: "salesforce".into(),
        processor: "Salesforce, Inc.".into(),
        host: "example.my.salesforce.com".into(),
        jurisdiction: "US".into(),
        cross_border: audit::cross_border("DE", "US"),
        transfer_mechanism: TransferMechanism {
            kind: MechanismKind::Dpf,
            reference: Some("Commission Implementing Decision (EU) 2023/1795".into()),
            scc_module: None,
        },
        method: "GET".into(),
        route: "/services/data/*/query".into(),
        categories_received: vec!["user.contact.email".into(), "user.name.first".into()],
        categories_delivered: vec!["user.contact.email".into()],
        records: n % 7,
        parts: vec![],
        bytes: 100 + n,
        actions: BTreeMap::from([("keep".to_string(), 2), ("drop".to_string(), 1)]),
        decision: if n.is_multiple_of(5) {
            Decision::Blocked
        } else {
            Decision::Minimised
        },
        status: 200,
        policy_version: "v1".into(),
        reason: None,
        policy_bundle: None,
    }
}

async fn append_n(log: &AuditLog, from: u64, n: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in from..from + n {
        seqs.push(log.append(record(i)).await.expect("append"));
    }
    seqs
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read log")
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).expect("write log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_and_verify() {
    let s = setup();
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { log.append(record(i)).await }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.expect("task").expect("append"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..300).collect::<Vec<_>>());
    let stats = log.stats();
    assert_eq!(stats.appends, 300);
    assert!(
        stats.syncs < 300,
        "group commit: {} syncs for 300 appends",
        stats.syncs
    );
    log.shutdown().await.expect("shutdown");
    assert!(
        log.append(record(1)).await.is_err(),
        "closed after shutdown"
    );
    let v = s.verify();
    assert_eq!(v.exit_code, 0, "{}", v.text);
    assert!(v.text.contains("300 records"), "{}", v.text);
    // Off-box got signed checkpoints, the last one for all 300.
    let notes = parse_notes(&std::fs::read_to_string(s.offbox()).expect("offbox"));
    let last = notes.last().expect("a note").clone().expect("well-formed");
    let cp = verify_note(&last, ORIGIN, &s.public).expect("signature");
    assert_eq!(cp.size, 300);
    // No personal values, raw paths or query strings: spot-check the line shape.
    let first = &lines(&s.log())[0];
    assert!(first.starts_with("{\"seq\":0,\"ts\":\""));
    assert!(first.contains(&format!("\"prev\":\"{}\"", "0".repeat(64))));
}

/// Group commit under load: the writer waits, up to `audit.commit_window`, for the records of
/// exchanges still in flight (announced with `preparing`), so one sync covers them all; a
/// lone append never waits, an exchange that ends without a record ends the wait, and records
/// further apart than the window never wait (src/audit/pace.rs has the pace's own tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_window_waits_for_exchanges_in_flight_and_no_longer() {
    use std::future::Future;
    use std::task::Poll;
    use std::time::Duration;
    // a window no test outlasts: every wait below must end for another reason
    let mut s = setup();
    s.config.commit_window = Duration::from_secs(600);
    let bound = Duration::from_secs(60);
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    // sends the append (its first poll) and returns the future still waiting for its sync
    async fn sent<F: Future + Unpin>(mut f: F) -> F {
        let first =
            std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut f).poll(cx))).await;
        assert!(
            first.is_pending(),
            "acknowledged before anything was in flight"
        );
        f
    }

    // nothing else in flight: no wait
    tokio::time::timeout(bound, log.append(record(0)))
        .await
        .expect("a lone append does not wait for the window")
        .expect("append");
    assert_eq!(log.stats().syncs, 1);

    // two records arrive while a third exchange is in flight: they wait for its record
    let third = log.preparing();
    let a = sent(Box::pin(log.append(record(1)))).await;
    let b = sent(Box::pin(log.append(record(2)))).await;
    assert!(
        eventually(|| log.awaiting_in_flight()).await,
        "the writer holds them back"
    );
    let c = tokio::time::timeout(bound, log.append_prepared(&record(3), Some(third)))
        .await
        .expect("the last record in flight ends the wait")
        .expect("append");
    let (a, b) = tokio::time::timeout(bound, async { (a.await, b.await) })
        .await
        .expect("acknowledged with the third");
    assert_eq!((a.expect("a"), b.expect("b"), c), (1, 2, 3));
    assert_eq!(log.stats().syncs, 2, "one sync for the three");

    // an exchange in flight that ends without a record (a refusal, an error) ends the wait
    let fourth = log.preparing();
    let d = sent(Box::pin(log.append(record(4)))).await;
    assert!(
        eventually(|| log.awaiting_in_flight()).await,
        "the writer holds it back"
    );
    drop(fourth);
    let d = tokio::time::timeout(bound, d)
        .await
        .expect("woken when nothing is in flight any more");
    assert_eq!(d.expect("d"), 4);
    assert_eq!(log.stats().syncs, 3);

    // records at a pace slower than the window do not wait, though others are in flight
    log.shutdown().await.expect("shutdown");
    let mut slow = s.config.clone();
    slow.commit_window = Duration::from_nanos(1);
    let log = AuditLog::open(slow).await.expect("reopen");
    let sixth = log.preparing();
    for n in 5..13 {
        tokio::time::timeout(bound, log.append(record(n)))
            .await
            .expect("no wait at a slow pace")
            .expect("append");
    }
    let stats = log.stats();
    assert_eq!(stats.window_timeouts, 0, "never held back: {stats:?}");
    drop(sixth);
    log.shutdown().await.expect("shutdown");
    let v = s.verify();
    assert_eq!(v.exit_code, 0, "{}", v.text);
}

/// At a high rate a held batch is synced once four more records came, though other exchanges
/// are still in flight: the window bounds the wait, the batch size ends it sooner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_batch_is_synced_once_four_more_records_came() {
    use std::time::Duration;
    let mut s = setup();
    s.config.commit_window = Duration::from_secs(600);
    let bound = Duration::from_secs(60);
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    // a lone record: no wait, and the pace has a first send time
    log.append(record(0)).await.expect("append");
    let busy = log.preparing();
    let first = tokio::spawn({
        let log = log.clone();
        async move { log.append(record(1)).await }
    });
    assert!(
        eventually(|| log.awaiting_in_flight()).await,
        "held back while another is in flight"
    );
    let more = (2..6).map(|n| {
        let log = log.clone();
        tokio::spawn(async move { log.append(record(n)).await })
    });
    let more: Vec<_> = more.collect();
    let mut seqs = vec![tokio::time::timeout(bound, first)
        .await
        .expect("synced after four more, not after the window")
        .expect("task")
        .expect("append")];
    for m in more {
        seqs.push(m.await.expect("task").expect("append"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let stats = log.stats();
    assert_eq!(
        stats.syncs, 2,
        "one for the lone record, one for the five: {stats:?}"
    );
    assert_eq!(stats.window_timeouts, 0, "{stats:?}");
    drop(busy);
    log.shutdown().await.expect("shutdown");
    assert_eq!(s.verify().exit_code, 0);
}

#[tokio::test]
async fn a_second_writer_is_refused_while_the_first_holds_the_log() {
    let s = setup();
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    assert_eq!(append_n(&log, 0, 3).await, vec![0, 1, 2]);
    // another open of the same log (another Zweck on the same config) must not interleave
    match AuditLog::open(s.config.clone()).await {
        Err(AuditError::InUse { path }) => assert_eq!(path, s.log().display().to_string()),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a second writer opened the log"),
    }
    // the first writer is untouched and the log still verifies
    assert_eq!(append_n(&log, 3, 2).await, vec![3, 4]);
    log.shutdown().await.expect("shutdown");
    // as soon as shutdown returns, the log can be opened again
    let log = AuditLog::open(s.config.clone())
        .await
        .expect("reopen after shutdown");
    assert_eq!(append_n(&log, 5, 1).await, vec![5]);
    log.shutdown().await.expect("shutdown");
    let v = s.verify();
    assert_eq!(v.exit_code, 0, "{}", v.text);
}

#[tokio::test]
async fn an_unreachable_offbox_copy_is_reported_while_the_log_goes_on() {
    let mut s = setup();
    // the off-box file cannot be created: its "directory" is a regular file
    s.config.offbox = Offbox::File(s.root.join("audit.key/checkpoints"));
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    assert_eq!(log.offbox_error(), None);
    // checkpoint_every is 10: the tenth append checkpoints and posts the note off-box
    assert_eq!(append_n(&log, 0, 10).await.len(), 10);
    assert!(eventually(|| log.offbox_error().is_some()).await);
    let reported = log.offbox_error().expect("the failed delivery is reported");
    assert!(reported.contains("audit.key/checkpoints"), "{reported}");
    // the local log is not affected
    assert_eq!(log.failure(), None);
    assert_eq!(append_n(&log, 10, 2).await, vec![10, 11]);
    let _ = log.shutdown().await;
}

#[tokio::test]
async fn restart_continues_the_chain() {
    let s = setup();
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    assert_eq!(append_n(&log, 0, 5).await, vec![0, 1, 2, 3, 4]);
    log.shutdown().await.expect("shutdown");
    let log = AuditLog::open(s.config.clone()).await.expect("reopen");
    assert_eq!(log.recovery().entries, 5);
    assert_eq!(log.recovery().last_checkpoint, 5);
    assert_eq!(append_n(&log, 5, 5).await, vec![5, 6, 7, 8, 9]);
    log.shutdown().await.expect("shutdown");
    let v = s.verify();
    assert_eq!(v.exit_code, 0, "{}", v.text);
}

#[tokio::test]
async fn torn_tail_is_cut_back_and_the_chain_continues() {
    let s = setup();
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    append_n(&log, 0, 3).await;
    log.shutdown().await.expect("shutdown");
    // A crash in the middle of writing seq 3.
    let mut bytes = std::fs::read(s.log()).expect("read");
    bytes.extend_from_slice(b"{\"seq\":3,\"ts\":\"2025-01-0");
    std::fs::write(s.log(), &bytes).expect("write");
    let torn_verify = s.verify();
    assert_eq!(torn_verify.exit_code, 0, "{}", torn_verify.text);
    assert!(torn_verify.text.contains("torn"), "{}", torn_verify.text);

    let log = AuditLog::open(s.config.clone()).await.expect("recovers");
    let (cut, saved) = log.recovery().cut.clone().expect("a cut was reported");
    assert_eq!(cut, 24);
    assert_eq!(std::fs::read(&saved).expect("saved torn bytes").len(), 24);
    assert_eq!(log.append(record(3)).await.expect("append"), 3);
    log.shutdown().await.expect("shutdown");
    let v = s.verify();
    assert_eq!(v.exit_code, 0, "{}", v.text);
    assert_eq!(lines(&s.log()).len(), 4);
}

#[tokio::test]
async fn damage_in_the_middle_refuses_to_open() {
    let s = setup();
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    append_n(&log, 0, 4).await;
    log.shutdown().await.expect("shutdown");
    let mut l = lines(&s.log());
    l[1] = l[1].replace("req-1", "req-X");
    write_lines(&s.log(), &l);
    let err = AuditLog::open(s.config.clone()).await.expect_err("damaged");
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[tokio::test]
async fn verify_names_the_first_bad_record() {
    let s = setup();
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    append_n(&log, 0, 25).await;
    log.shutdown().await.expect("shutdown");
    let original = lines(&s.log());
    let check = |l: &[String], want: &str| {
        write_lines(&s.log(), l);
        let v = s.verify();
        assert_eq!(v.exit_code, 1, "{}", v.text);
        assert!(v.text.contains(want), "want {want:?} in {}", v.text);
    };
    // A flipped byte in record 7 breaks the chain at record 8.
    let mut l = original.clone();
    l[7] = l[7].replacen("\"bytes\":107", "\"bytes\":907", 1);
    check(&l, "first bad record is seq 8");
    // A deleted line.
    let mut l = original.clone();
    l.remove(12);
    check(&l, "first bad record is seq 12");
    // Two lines swapped.
    let mut l = original.clone();
    l.swap(3, 4);
    check(&l, "first bad record is seq 3");
    // The newest line edited: no later prev covers it, the checkpoint root does.
    let mut l = original.clone();
    l[24] = l[24].replacen("req-24", "req-99", 1);
    check(&l, "does not match the log");
    // The tail cut off together with the on-box checkpoints: the off-box copy catches it.
    write_lines(&s.log(), &original[..20]);
    std::fs::remove_file(zweck::audit::files::checkpoints_path(&s.log())).expect("rm");
    let v = s.verify();
    assert_eq!(v.exit_code, 1, "{}", v.text);
    assert!(
        v.text.contains("records from seq 20 on were removed"),
        "{}",
        v.text
    );
    assert!(v.text.contains("off-box"), "{}", v.text);
    // A forged checkpoint (signed by another key).
    write_lines(&s.log(), &original);
    let v = audit::verify(&VerifyOptions {
        logs: vec![s.log()],
        keys: zweck::audit::KeyRing::single([1u8; 32]),
        offbox: vec![s.offbox()],
        origin: None,
        progress: false,
    });
    assert_eq!(v.exit_code, 1, "{}", v.text);
    // Unreadable.
    let v = audit::verify(&VerifyOptions {
        logs: vec![s.root.join("nope.jsonl")],
        ..Default::default()
    });
    assert_eq!(v.exit_code, 2, "{}", v.text);
}

#[tokio::test]
async fn rotation_keeps_one_chain_across_files() {
    let mut s = setup();
    s.config.rotate_bytes = Some(4096);
    s.config.checkpoint_every = 1000;
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    append_n(&log, 0, 60).await;
    log.shutdown().await.expect("shutdown");
    let segs = zweck::audit::files::segments(&s.log()).expect("segments");
    assert!(segs.len() >= 3, "{segs:?}");
    assert_eq!(segs[0].0, 0);
    // A restart continues after the newest segment.
    let log = AuditLog::open(s.config.clone()).await.expect("reopen");
    assert_eq!(log.recovery().entries, 60);
    assert_eq!(append_n(&log, 60, 3).await, vec![60, 61, 62]);
    log.shutdown().await.expect("shutdown");
    let v = s.verify();
    assert_eq!(v.exit_code, 0, "{}", v.text);
    assert!(v.text.contains("63 records"), "{}", v.text);
    // A missing segment is noticed.
    std::fs::remove_file(&segs[1].1).expect("rm segment");
    assert_eq!(s.verify().exit_code, 1);
}

/// `checkpoint_interval` signs new entries without waiting for `checkpoint_every`, and
/// `rotate_age` seals an active file once its first entry is that old, on an idle log too.
/// The writer is a std thread on the real clock, so this waits (boundedly) for both.
#[tokio::test]
async fn checkpoint_interval_and_rotate_age_act_on_an_idle_log() {
    let mut s = setup();
    s.config.checkpoint_every = 1000;
    s.config.checkpoint_interval = Some(std::time::Duration::from_millis(100));
    s.config.rotate_age = Some(std::time::Duration::from_secs(1));
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    append_n(&log, 0, 3).await;
    assert!(
        eventually(|| log.stats().checkpoints >= 1).await,
        "an interval checkpoint"
    );
    let sealed = || {
        zweck::audit::files::segments(&s.log())
            .expect("segments")
            .len()
    };
    assert!(
        eventually(|| sealed() == 1).await,
        "the aged file is sealed"
    );
    // The chain goes on in the new active file, and shutdown signs it.
    let checkpoints = log.stats().checkpoints;
    assert_eq!(append_n(&log, 3, 1).await, vec![3]);
    log.shutdown().await.expect("shutdown");
    assert!(log.stats().checkpoints > checkpoints);
    let v = s.verify();
    assert_eq!(v.exit_code, 0, "{}", v.text);
    assert!(v.text.contains("4 records in 2 file(s)"), "{}", v.text);
}

#[tokio::test]
async fn a_failed_sync_fails_every_later_append() {
    let s = setup();
    let log = AuditLog::open_with_sink(s.config.clone(), |sink| {
        Box::new(FailingSink::new(sink).fail_sync_from(3))
    })
    .await
    .expect("open");
    assert_eq!(log.append(record(0)).await.expect("first"), 0);
    assert_eq!(log.append(record(1)).await.expect("second"), 1);
    let e = log.append(record(2)).await.expect_err("third sync fails");
    assert!(matches!(e, AuditError::Failed(_)), "{e}");
    assert!(log.failure().is_some_and(|f| f.contains("fdatasync")));
    for i in 3..6 {
        assert!(matches!(
            log.append(record(i)).await,
            Err(AuditError::Failed(_))
        ));
    }
    assert!(log.shutdown().await.is_err());
}

#[tokio::test]
async fn a_failed_write_fails_every_later_append() {
    let s = setup();
    let log = AuditLog::open_with_sink(s.config.clone(), |sink| {
        Box::new(FailingSink::new(sink).fail_write_from(1))
    })
    .await
    .expect("open");
    assert!(matches!(
        log.append(record(0)).await,
        Err(AuditError::Failed(_))
    ));
    assert!(matches!(
        log.append(record(1)).await,
        Err(AuditError::Failed(_))
    ));
}

#[tokio::test]
async fn disk_full_is_a_failed_append() {
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    let s = setup();
    std::fs::create_dir_all(s.log().parent().expect("dir")).expect("mkdir");
    std::os::unix::fs::symlink("/dev/full", s.log()).expect("symlink");
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    let e = log.append(record(0)).await.expect_err("ENOSPC");
    assert!(e.to_string().contains("write failed"), "{e}");
    assert!(matches!(
        log.append(record(1)).await,
        Err(AuditError::Failed(_))
    ));
}

#[tokio::test]
async fn an_unwritable_directory_fails_open() {
    let mut s = setup();
    std::fs::write(s.root.join("plainfile"), b"x").expect("file");
    s.config.log = s.root.join("plainfile/transfers.jsonl");
    assert!(AuditLog::open(s.config.clone()).await.is_err());
}

#[tokio::test]
async fn report_prove_and_ropa() {
    let s = setup();
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    append_n(&log, 0, 12).await;
    log.shutdown().await.expect("shutdown");
    let evidence = VerifyOptions {
        logs: vec![s.log()],
        keys: zweck::audit::KeyRing::single(s.public),
        offbox: vec![s.offbox()],
        ..Default::default()
    };

    let r = audit::report(&ReportOptions {
        evidence: evidence.clone(),
        group_by: vec![audit::Dimension::Processor, audit::Dimension::Category],
        format: Format::Csv,
        ..Default::default()
    });
    assert_eq!(r.exit_code, 0, "{}", r.text);
    assert!(
        r.text
            .contains("\"Salesforce, Inc.\",user.contact.email,12,"),
        "{}",
        r.text
    );
    let r = audit::report(&ReportOptions {
        evidence: evidence.clone(),
        format: Format::Json,
        ..Default::default()
    });
    let v: serde_json::Value = serde_json::from_str(&r.text).expect("json");
    assert_eq!(v["rows"][0]["transfers"], 12);
    assert_eq!(v["rows"][0]["refused"], 3);
    assert_eq!(v["rows"][0]["mechanism"], "dpf");
    assert_eq!(v["verification"]["verified"], true);
    let r = audit::report(&ReportOptions {
        evidence: evidence.clone(),
        group_by: vec![audit::Dimension::Month],
        ..Default::default()
    });
    assert!(r.text.contains("\nmonth "), "{}", r.text);

    let p = audit::prove(&ProveOptions {
        log: s.log(),
        seq: 7,
        keys: zweck::audit::KeyRing::single(s.public),
        offbox: vec![s.offbox()],
    });
    assert_eq!(p.exit_code, 0, "{}", p.text);
    assert!(p.text.contains("VERIFIED"), "{}", p.text);
    let p = audit::prove(&ProveOptions {
        log: s.log(),
        seq: 12,
        keys: zweck::audit::KeyRing::single(s.public),
        offbox: vec![],
    });
    assert_eq!(p.exit_code, 2, "{}", p.text);
}

#[tokio::test]
async fn checkpoints_are_posted_to_an_http_witness() {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let got = got.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let got = got.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        got.lock()
                            .expect("lock")
                            .push(String::from_utf8_lossy(&body).into_owned());
                        Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let mut s = setup();
    s.config.offbox = Offbox::Url(
        format!("http://127.0.0.1:{}/add", addr.port())
            .parse()
            .expect("uri"),
    );
    let log = AuditLog::open(s.config.clone()).await.expect("open");
    append_n(&log, 0, 4).await;
    log.shutdown().await.expect("shutdown delivers");
    let got = received.lock().expect("lock").clone();
    let note = parse_notes(got.last().expect("posted"))
        .pop()
        .expect("note")
        .expect("well-formed");
    assert_eq!(
        verify_note(&note, ORIGIN, &s.public).expect("signed").size,
        4
    );
}
