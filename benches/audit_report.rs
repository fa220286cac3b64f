//! What an auditor waits for on a big log: `zweck audit verify` and `zweck audit report
//! --format html` over a 1,000,000-entry transfer log, and where that time goes.
//!
//! The log is written by `zweck::audit::synthetic` (the writer's own line, chain and
//! checkpoint functions; only `ts` is chosen), checkpointed every 1,000 entries on box and
//! off box, with records that vary in app, purpose, processor, country, mechanism,
//! categories, decision and policy version over 90 days. It is made once per size under
//! `target/audit-bench/` and reused.
//!
//! Run: `cargo bench --bench audit_report` (release build). `ZWECK_BENCH_ENTRIES` changes
//! the size (default 1000000), `ZWECK_BENCH_RUNS` the runs per step (default 3; the median is
//! printed). Each step is timed as a whole with `Instant`: these are seconds of one run on
//! one core, not micro-benchmarks, so criterion's sampling would only multiply the wait.
//!
//! Steps, each over the whole log:
//! - `read`: the files' lines, nothing else (the floor: I/O and line splitting);
//! - `hash`: read, and the two SHA-256 of each line the verification needs (chain, leaf);
//! - `json`: read, and parse each line as JSON without keeping anything (the verification's
//!   own parse of `seq` and `prev` reads this much);
//! - `aggregate`: read and sum every entry into the report's groups (JSON parsing);
//! - `verify`: `zweck audit verify` (hash chain, Merkle tree, checkpoint signatures, off-box);
//! - `report html`: `zweck audit report --format html` (verify and sum in one pass, render);
//! - `incident`: the facts `zweck incident open` computes for one app and purpose over the
//!   whole log (verify and sum in one pass, as `report`; no draft rendered or signed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ring::signature::Ed25519KeyPair;
use sha2::Digest as _;
use zweck::audit::checkpoint::{key_from_pkcs8, public_key};
use zweck::audit::report::{read_lines, Aggregate};
use zweck::audit::{
    self, Decision, Dimension, Direction, Format, KeyRing, Period, ReportOptions, Stage,
    TransferRecord, VerifyOptions,
};
use zweck::config::{MechanismKind, TransferMechanism};

/// The allocator the `zweck` binary uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const APPS: [(&str, &str, &[&str]); 4] = [
    (
        "newsletter-tool",
        "newsletter",
        &["user.contact.email", "user.name.first"],
    ),
    (
        "support-desk",
        "support",
        &[
            "user.name.first",
            "user.name.last",
            "user.contact.phone_number",
        ],
    ),
    ("bi-export", "analytics", &["user.contact.email"]),
    ("billing-svc", "billing", &["user.financial.account_number"]),
];

const UPSTREAMS: [(&str, &str, &str, MechanismKind); 3] = [
    ("salesforce", "Salesforce, Inc.", "US", MechanismKind::Dpf),
    ("hubspot", "HubSpot, Inc.", "US", MechanismKind::Scc),
    (
        "dynamics",
        "Microsoft Ireland",
        "IE",
        MechanismKind::Adequacy,
    ),
];

/// Entry `i` of the synthetic log: spread over 90 days from 1 September 2026.
fn entry(i: u64, n: u64) -> (String, TransferRecord) {
    let (app, purpose, cats) = APPS[(i % 4) as usize];
    let (upstream, processor, country, kind) = UPSTREAMS[(i / 4 % 3) as usize];
    let decision = match i % 20 {
        0 => Decision::Blocked,
        1 => Decision::RateLimited,
        2..=9 => Decision::Minimised,
        _ => Decision::Allowed,
    };
    let second = i * (90 * 86_400) / n.max(1);
    let ts = time::OffsetDateTime::from_unix_timestamp(1_788_220_800 + second as i64)
        .expect("a time in 2026");
    let ts = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        i % 1000
    );
    let cats: Vec<String> = if decision == Decision::Blocked {
        vec![]
    } else {
        cats.iter().map(|c| (*c).to_string()).collect()
    };
    let record = TransferRecord {
        stage: Stage::Complete,
        request_id: format!("{i:016x}"),
        app: app.into(),
        purpose: purpose.into(),
        data_use: "marketing.communications.email".into(),
        legal_basis: "consent".into(),
        direction: if i.is_multiple_of(3) {
            Direction::Request
        } else {
            Direction::Response
        },
        upstream: upstream.into(),
        processor: processor.into(),
        host: format!("{upstream}.example.com:443"),
        jurisdiction: country.into(),
        cross_border: country != "IE",
        transfer_mechanism: TransferMechanism {
            kind,
            reference: Some("Commission Implementing Decision (EU) 2021/914".into()),
            scc_module: None,
        },
        method: "GET".into(),
        route: "GET /services/data/v*/query".into(),
        categories_received: cats.clone(),
        categories_delivered: cats,
        records: 1 + i % 200,
        parts: vec![],
        bytes: 512 + i % 100_000,
        actions: BTreeMap::from([("drop".to_string(), 3), ("keep".to_string(), 7)]),
        decision,
        status: if decision == Decision::Blocked {
            403
        } else {
            200
        },
        policy_version: if i < n / 2 { "v1" } else { "v2" }.into(),
        reason: None,
        policy_bundle: None,
    };
    (ts, record)
}

/// The log of `n` entries (made once), its off-box copy and its key.
fn the_log(n: u64) -> (PathBuf, PathBuf, Ed25519KeyPair) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/audit-bench/{n}"));
    let (log, offbox, key) = (
        dir.join("transfers.jsonl"),
        dir.join("offbox"),
        dir.join("audit.pk8"),
    );
    if let Ok(pkcs8) = std::fs::read(&key) {
        if log.exists() && offbox.exists() {
            return (log, offbox, key_from_pkcs8(&pkcs8).expect("stored key"));
        }
    }
    std::fs::create_dir_all(&dir).expect("bench dir");
    let _ = std::fs::remove_file(&offbox);
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("generate key");
    let kp = key_from_pkcs8(pkcs8.as_ref()).expect("key");
    let started = Instant::now();
    let written = audit::synthetic::write_log(
        &log,
        &kp,
        "zweck/bench/1",
        (0..n).map(|i| entry(i, n)),
        1000,
        Some(&offbox),
    )
    .expect("write the log");
    assert_eq!(written, n);
    std::fs::write(&key, pkcs8.as_ref()).expect("store key");
    eprintln!(
        "wrote {n} entries ({:.0} MB) in {:.1} s",
        std::fs::metadata(&log).map_or(0, |m| m.len()) as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    (log, offbox, kp)
}

/// CPU seconds this process has used (user + system, every thread), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which is in parentheses and may hold spaces)
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// One step's figures: wall time and CPU seconds, the median run's.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: f64,
}

/// The median (by wall time) of `runs` runs of `step`.
fn time(runs: usize, mut step: impl FnMut()) -> Timing {
    let mut t: Vec<Timing> = (0..runs)
        .map(|_| {
            let (started, cpu) = (Instant::now(), cpu_seconds());
            step();
            Timing {
                wall: started.elapsed(),
                cpu: cpu_seconds() - cpu,
            }
        })
        .collect();
    t.sort_by_key(|t| t.wall);
    t[t.len() / 2]
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run tiny then.
    let benching = std::env::args().any(|a| a == "--bench");
    let n = if benching {
        env_or("ZWECK_BENCH_ENTRIES", 1_000_000)
    } else {
        1000
    };
    let runs = env_or("ZWECK_BENCH_RUNS", if benching { 3 } else { 1 }) as usize;
    let (log, offbox, key) = the_log(n);
    let size = std::fs::metadata(&log).map_or(0, |m| m.len());
    let evidence = VerifyOptions {
        logs: vec![log.clone()],
        keys: KeyRing::single(public_key(&key)),
        offbox: vec![offbox],
        ..VerifyOptions::default()
    };
    let dims = [
        Dimension::Processor,
        Dimension::Country,
        Dimension::Mechanism,
    ];

    let read = time(runs, || {
        let mut lines = 0u64;
        read_lines(&log, &mut |_| lines += 1).expect("read");
        assert_eq!(lines, n);
    });
    let hash = time(runs, || {
        read_lines(&log, &mut |line| {
            std::hint::black_box(sha2::Sha256::digest(line));
            std::hint::black_box(zweck::audit::merkle::leaf_hash(line));
        })
        .expect("read");
    });
    let json = time(runs, || {
        read_lines(&log, &mut |line| {
            let parsed: serde::de::IgnoredAny = serde_json::from_slice(line).expect("json");
            std::hint::black_box(parsed);
        })
        .expect("read");
    });
    let aggregate = time(runs, || {
        let mut agg = Aggregate::new(&dims, Period::default());
        read_lines(&log, &mut |line| agg.add_line(line)).expect("read");
        assert_eq!(agg.total.transfers, n);
    });
    let verify = time(runs, || {
        let v = audit::verify(&evidence);
        assert_eq!(v.exit_code, 0, "{}", v.text);
    });
    let mut html_bytes = 0;
    let html = time(runs, || {
        let r = audit::report(&ReportOptions {
            evidence: evidence.clone(),
            format: Format::Html,
            ..ReportOptions::default()
        });
        assert_eq!(r.exit_code, 0, "{}", r.text);
        html_bytes = r.text.len();
    });
    let incident = time(runs, || {
        use zweck::incident::report::facts::{Collector, Scope, Window};
        let scope = Scope {
            app: Some("bi-export".into()),
            purpose: Some("analytics".into()),
            category: None,
        };
        let mut c = Collector::new(scope, Window::new(0, 4_102_444_800_000, "--since".into()));
        let fleet = audit::report::gather(&evidence, false, |_, line| c.add(line))
            .unwrap_or_else(|r| panic!("{}", r.text));
        assert!(fleet.verified());
        let facts = c.finish().expect("facts");
        assert_eq!(facts.all_entries_in_window, n);
    });
    println!(
        "audit_report: {n} entries, {:.0} MB log, median of {runs} run(s); load average {}",
        size as f64 / 1e6,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    println!("  step          wall s   CPU s  CPU/read  k entries/s (wall)");
    for (step, t) in [
        ("read", read),
        ("hash", hash),
        ("json", json),
        ("aggregate", aggregate),
        ("verify", verify),
        ("report html", html),
        ("incident", incident),
    ] {
        println!(
            "  {step:<12} {:>7.2} {:>7.2} {:>8.2}x {:>8.0}",
            t.wall.as_secs_f64(),
            t.cpu,
            t.cpu / read.cpu.max(0.01),
            n as f64 / t.wall.as_secs_f64().max(1e-9) / 1e3
        );
    }
    println!("  html page    {:.0} KB", html_bytes as f64 / 1e3);
}
