//! The streamed parts of the data path, in the units users size them by:
//! - `csv`: a Salesforce Bulk API 2.0 result (quoted cells, 14 contact columns, ~4 MB)
//!   through the CSV governor in 64 KiB chunks, per purpose; criterion prints MB/s;
//! - `transfer_log`: appends to a real hash-chained transfer log in a temporary directory,
//!   each acknowledged only after `fdatasync`: one caller at a time (one sync per append) and
//!   64 concurrent callers (group commit); criterion prints appends per second. And what one
//!   append waits while 63 other callers keep the log busy (`append_latency_under_load`: the
//!   design load of 1,000 appends per second and more), which was an ignored timing "test".
//!
//! Run: `cargo bench --bench pipeline` (add `-- --quick` for a fast pass). The temporary
//! directory is on the machine's disk, so the log figures are the disk's as much as Zweck's.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::Value;
use zweck::audit::{AuditConfig, AuditLog, Decision, Direction, Offbox, Stage, TransferRecord};
use zweck::body::csv::CsvLimits;
use zweck::config::{MechanismKind, TransferMechanism};
use zweck::crm_double::{CrmDouble, CrmDoubleConfig};
use zweck::dialect::Dialect;
use zweck::policy::{csv_plan, CsvJob, PolicySet, PseudonymKey, RouteMatch};

/// The allocator the `zweck` binary uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The columns of the load bench's Bulk query (benches/load.sh).
const COLUMNS: [&str; 14] = [
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "MobilePhone",
    "Birthdate",
    "HasOptedOutOfEmail",
    "MailingStreet",
    "MailingCity",
    "MailingPostalCode",
    "MailingCountry",
    "Title",
    "Department",
];

/// A Bulk API 2.0 result body of about `target` bytes: every cell quoted, empty for null.
fn bulk_csv(double: &CrmDouble, target: usize) -> Vec<u8> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out: Vec<u8> = COLUMNS
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(",")
        .into();
    out.push(b'\n');
    let mut i = 0;
    while out.len() < target {
        let record = double.contact(Dialect::Salesforce, i);
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| match record.get(*c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => quote(s),
                Some(other) => quote(&other.to_string()),
            })
            .collect();
        out.extend_from_slice(cells.join(",").as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out
}

fn csv(c: &mut Criterion) {
    let double = CrmDouble::new(CrmDoubleConfig {
        contacts: 1_000_000,
        ..CrmDoubleConfig::default()
    });
    let (set, _) = PolicySet::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")))
        .expect("shipped policies");
    let set = Arc::new(set);
    let key = PseudonymKey::new(&[7u8; 32]);
    let path = "/services/data/v66.0/jobs/query/750xx0000000001AAA/results";
    let RouteMatch::Operation(op) = set.classify(Dialect::Salesforce, &http::Method::GET, path)
    else {
        panic!("{path} is governed");
    };
    let body = bulk_csv(&double, 4 << 20);
    let mut group = c.benchmark_group("csv");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(20);
    for purpose in ["newsletter", "analytics"] {
        let p = set.purpose(purpose).expect("purpose");
        group.bench_with_input(BenchmarkId::new("transform", purpose), &body, |b, body| {
            b.iter(|| {
                let plan = csv_plan(&set, p, op, Some(&key), &CsvJob::default()).expect("plan");
                let mut g = plan.governor(CsvLimits::default());
                let mut out = 0;
                for chunk in body.chunks(64 << 10) {
                    out += g.feed(black_box(chunk)).expect("feed").len();
                }
                out += g.finish().expect("finish").len();
                black_box(out)
            });
        });
    }
    group.finish();
}

fn record(n: u64) -> TransferRecord {
    TransferRecord {
        stage: Stage::Complete,
        request_id: format!("bench-{n}"),
        app: "newsletter-tool".into(),
        purpose: "newsletter".into(),
        data_use: "marketing.communications.email".into(),
        legal_basis: "consent".into(),
        direction: Direction::Response,
        upstream: "salesforce".into(),
        processor: "Salesforce, Inc.".into(),
        host: "example.my.salesforce.com".into(),
        jurisdiction: "US".into(),
        cross_border: true,
        transfer_mechanism: TransferMechanism {
            kind: MechanismKind::Dpf,
            reference: Some("Commission Implementing Decision (EU) 2023/1795".into()),
            scc_module: None,
        },
        method: "GET".into(),
        route: "GET /services/data/v*/query".into(),
        categories_received: vec!["user.contact.email".into(), "user.name.first".into()],
        categories_delivered: vec!["user.contact.email".into()],
        records: 200,
        parts: vec![],
        bytes: 35_186,
        actions: BTreeMap::from([("keep".to_string(), 667), ("drop".to_string(), 1064)]),
        decision: Decision::Minimised,
        status: 200,
        policy_version: "bench".into(),
        reason: None,
        policy_bundle: None,
    }
}

fn transfer_log(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
    std::fs::write(dir.path().join("audit.key"), key.serialize_pem()).expect("key");
    let config = AuditConfig::new(
        dir.path().join("logs/transfers.jsonl"),
        dir.path().join("audit.key"),
        Offbox::File(dir.path().join("auditor/checkpoints")),
    );
    let log = Arc::new(rt.block_on(AuditLog::open(config)).expect("open the log"));

    let mut group = c.benchmark_group("transfer_log");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for callers in [1u64, 64] {
        const PER_CALLER: u64 = 8;
        group.throughput(Throughput::Elements(callers * PER_CALLER));
        group.bench_function(
            BenchmarkId::new("append_fdatasync", format!("{callers}_callers")),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for i in 0..iters {
                            let tasks: Vec<_> = (0..callers)
                                .map(|t| {
                                    let log = log.clone();
                                    tokio::spawn(async move {
                                        for k in 0..PER_CALLER {
                                            let n = (i * callers + t) * PER_CALLER + k;
                                            log.append(record(n)).await.expect("append");
                                        }
                                    })
                                })
                                .collect();
                            for t in tasks {
                                t.await.expect("task");
                            }
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }

    // One caller's append latency while 63 others append without pause.
    let stop = Arc::new(AtomicBool::new(false));
    let background: Vec<_> = (0..63u64)
        .map(|t| {
            let (log, stop) = (log.clone(), stop.clone());
            rt.spawn(async move {
                let mut n = 1_000_000 * (t + 1);
                while !stop.load(Ordering::Relaxed) {
                    log.append(record(n)).await.expect("append");
                    n += 1;
                }
            })
        })
        .collect();
    group.throughput(Throughput::Elements(1));
    group.bench_function("append_latency_under_load/63_other_callers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    log.append(record(i)).await.expect("append");
                }
                start.elapsed()
            })
        });
    });
    stop.store(true, Ordering::Relaxed);
    for t in background {
        rt.block_on(t).expect("background appender");
    }
    group.finish();
}

criterion_group!(benches, csv, transfer_log);
criterion_main!(benches);
