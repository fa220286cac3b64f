//! The cost of one budget decision: local (governor keyed limiter) and shared (Redis Lua GCRA
//! over loopback). The Redis group runs only where `redis-server` is installed; it starts one
//! on a free loopback port and stops it at the end.

use std::hint::black_box;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use zweck::budget::{cap_page, BudgetKey, Budgets, PageKnob, RawBudgetsConfig};
use zweck::policy::{ExportBudget, RouteClass};

/// A budget that never runs dry during a bench: the decision path, not the refusal.
fn plenty() -> ExportBudget {
    ExportBudget {
        records: 1_000_000_000_000,
        per: Duration::from_secs(1),
        burst: Some(u64::from(u32::MAX)),
        per_class: Vec::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn local(c: &mut Criterion) {
    let rt = runtime();
    let b = Budgets::local();
    let key = BudgetKey::new("bi-export", "analytics");
    let budget = plenty();
    let mut with_class = plenty();
    with_class.per_class.push((RouteClass::List, plenty()));
    let keys: Vec<BudgetKey> = (0..10_000)
        .map(|i| BudgetKey::new(format!("app-{i}"), "analytics"))
        .collect();

    let mut g = c.benchmark_group("local");
    g.bench_function("precheck", |x| {
        x.iter(|| rt.block_on(b.precheck(black_box(&key), &budget, RouteClass::List, false)));
    });
    g.bench_function("charge_2000", |x| {
        x.iter(|| rt.block_on(b.charge(black_box(&key), &budget, RouteClass::List, 2000, false)));
    });
    g.bench_function("charge_2000_with_class_limit", |x| {
        x.iter(|| {
            rt.block_on(b.charge(black_box(&key), &with_class, RouteClass::List, 2000, false))
        });
    });
    let mut i = 0;
    g.bench_function("charge_10k_keys", |x| {
        x.iter(|| {
            i = (i + 1) % keys.len();
            rt.block_on(b.charge(&keys[i], &budget, RouteClass::List, 1, false))
        });
    });
    g.finish();
}

fn paging(c: &mut Criterion) {
    let mut g = c.benchmark_group("paging");
    g.bench_function("cap_salesforce_soql", |x| {
        x.iter(|| {
            let mut h = HeaderMap::new();
            cap_page(
                PageKnob::SforceBatchSize,
                &mut h,
                Some(black_box("q=SELECT+Id,Email+FROM+Contact")),
                750,
                100_000,
            )
        });
    });
    g.bench_function("cap_hubspot_limit", |x| {
        x.iter(|| {
            let mut h = HeaderMap::new();
            cap_page(
                PageKnob::HubSpotLimit,
                &mut h,
                Some(black_box("limit=100&after=123")),
                40,
                100_000,
            )
        });
    });
    g.finish();
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(Server, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((server, port));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn shared(c: &mut Criterion) {
    let Some((_server, port)) = start_redis() else {
        eprintln!("redis-server not found: skipping the redis benches");
        return;
    };
    let rt = runtime();
    let raw = RawBudgetsConfig {
        store: "redis".into(),
        url: Some(format!("redis://127.0.0.1:{port}/")),
        instances: Some(2),
        key_prefix: Some("bench".into()),
        refusal: None,
    };
    let Ok(b) = rt.block_on(Budgets::from_config(&raw)) else {
        eprintln!("redis config refused: skipping the redis benches");
        return;
    };
    let key = BudgetKey::new("bi-export", "analytics");
    let budget = plenty();
    let mut with_class = plenty();
    with_class.per_class.push((RouteClass::List, plenty()));

    let mut g = c.benchmark_group("redis");
    g.bench_function("precheck", |x| {
        x.iter(|| rt.block_on(b.precheck(black_box(&key), &budget, RouteClass::List, false)));
    });
    g.bench_function("charge_2000", |x| {
        x.iter(|| rt.block_on(b.charge(black_box(&key), &budget, RouteClass::List, 2000, false)));
    });
    g.bench_function("charge_2000_with_class_limit", |x| {
        x.iter(|| {
            rt.block_on(b.charge(black_box(&key), &with_class, RouteClass::List, 2000, false))
        });
    });
    g.finish();
}

criterion_group!(benches, local, paging, shared);
criterion_main!(benches);
