//! Shared export budgets against a real redis-server, started per test on a free loopback
//! port (never 6379) with no persistence, and killed at the end (or mid-test).
//!
//! Run with: cargo test --test budget_redis -- --ignored

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use zweck::budget::{BudgetKey, Budgets, RawBudgetsConfig};
use zweck::policy::{ExportBudget, RouteClass};

use common::{eventually_blocking, eventually_some};

/// A redis-server child process; killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Redis::start_on(port)
    }

    fn start_on(port: u16) -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        // Ready when it accepts connections (bounded wait, generous for a busy machine).
        eventually_blocking(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        Redis {
            child: Some(child),
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config(url: &str, instances: u32, prefix: &str) -> RawBudgetsConfig {
    RawBudgetsConfig {
        store: "redis".into(),
        url: Some(url.into()),
        instances: Some(instances),
        key_prefix: Some(prefix.into()),
        refusal: None,
    }
}

async fn instance(url: &str, instances: u32, clock: &FakeRelativeClock) -> Budgets {
    Budgets::from_config_with_clock(&config(url, instances, "test"), Some(clock.clone()))
        .await
        .expect("config")
}

fn hour(records: u64, burst: Option<u64>) -> ExportBudget {
    ExportBudget {
        records,
        per: Duration::from_secs(3600),
        burst,
        per_class: Vec::new(),
    }
}

fn key() -> BudgetKey {
    BudgetKey::new("bi-export", "analytics")
}

#[tokio::test]
#[ignore = "needs redis-server: run cargo test --test budget_redis -- --ignored"]
async fn two_instances_spend_one_budget() {
    let redis = Redis::start();
    let clock = FakeRelativeClock::default();
    let a = instance(&redis.url(), 2, &clock).await;
    let b = instance(&redis.url(), 2, &clock).await;
    let budget = hour(5000, None);
    let r = a
        .charge(&key(), &budget, RouteClass::List, 2000, false)
        .await;
    assert_eq!(r.map(|a| a.remaining), Ok(3000));
    let r = b
        .charge(&key(), &budget, RouteClass::List, 2000, false)
        .await;
    assert_eq!(r.map(|a| a.remaining), Ok(1000));
    // The third page, on either instance, is refused whole.
    let e = a
        .charge(&key(), &budget, RouteClass::List, 2000, false)
        .await
        .expect_err("third page");
    assert!(e.is_retryable() && !e.store_unavailable);
    let r = b.precheck(&key(), &budget, RouteClass::List, false).await;
    assert_eq!(r.map(|a| a.remaining), Ok(1000));
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 1000, false)
        .await
        .is_ok());
    assert!(a
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .is_err());
    // Over the burst is refused before Redis is asked, and never retryable.
    let e = a
        .charge(&key(), &budget, RouteClass::List, 5001, false)
        .await
        .expect_err("over burst");
    assert_eq!((e.retry_after, e.cap), (None, 5000));
}

#[tokio::test]
#[ignore = "needs redis-server: run cargo test --test budget_redis -- --ignored"]
async fn concurrent_charges_never_overspend() {
    let redis = Redis::start();
    let clock = FakeRelativeClock::default();
    let a = instance(&redis.url(), 2, &clock).await;
    let b = instance(&redis.url(), 2, &clock).await;
    let budget = hour(2000, None);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let inst = if i % 2 == 0 { a.clone() } else { b.clone() };
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            inst.charge(&key(), &budget, RouteClass::List, 100, false)
                .await
                .is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap_or(false) {
            ok += 1;
        }
    }
    assert_eq!(ok, 20, "exactly 2000 / 100 charges fit");
}

#[tokio::test]
#[ignore = "needs redis-server: run cargo test --test budget_redis -- --ignored"]
async fn class_sub_limits_are_atomic_with_the_total() {
    let redis = Redis::start();
    let clock = FakeRelativeClock::default();
    let a = instance(&redis.url(), 1, &clock).await;
    let mut budget = hour(1000, None);
    budget.per_class.push((RouteClass::List, hour(100, None)));
    let r = a
        .charge(&key(), &budget, RouteClass::List, 100, false)
        .await;
    assert_eq!(
        r.map(|a| (a.remaining, a.class)),
        Ok((0, Some(RouteClass::List)))
    );
    let e = a
        .charge(&key(), &budget, RouteClass::List, 10, false)
        .await
        .expect_err("list spent");
    assert_eq!(e.class, Some(RouteClass::List));
    // The refused 10 were not taken from the total.
    let r = a.precheck(&key(), &budget, RouteClass::Single, false).await;
    assert_eq!(r.map(|a| a.remaining), Ok(900));
}

#[tokio::test]
#[ignore = "needs redis-server: run cargo test --test budget_redis -- --ignored"]
async fn refill_runs_on_the_redis_clock() {
    let redis = Redis::start();
    let clock = FakeRelativeClock::default();
    let a = instance(&redis.url(), 1, &clock).await;
    // Ten records per second, ten at once.
    let budget = ExportBudget {
        records: 10,
        per: Duration::from_secs(1),
        burst: None,
        per_class: Vec::new(),
    };
    assert!(a
        .charge(&key(), &budget, RouteClass::List, 10, false)
        .await
        .is_ok());
    let e = a
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .expect_err("spent");
    let wait = e.retry_after.expect("retryable");
    assert!(wait <= Duration::from_millis(100));
    // Redis's clock refills the bucket (the fake clock of this instance stands still); a
    // refused charge spends nothing, so asking until it succeeds is fair.
    let (a, budget) = (&a, &budget);
    let refilled = eventually_some(|| async move {
        a.charge(&key(), budget, RouteClass::List, 2, false)
            .await
            .ok()
    })
    .await;
    assert!(refilled.is_some());
}

#[tokio::test]
#[ignore = "needs redis-server: run cargo test --test budget_redis -- --ignored"]
async fn redis_killed_mid_test_bulk_fails_closed_and_lists_use_the_local_share() {
    let mut redis = Redis::start();
    let port = redis.port;
    let clock = FakeRelativeClock::default();
    let a = instance(&redis.url(), 4, &clock).await;
    let budget = hour(4000, None);
    assert!(a
        .charge(&key(), &budget, RouteClass::List, 100, false)
        .await
        .is_ok());
    assert!(a
        .charge(&key(), &budget, RouteClass::BulkExport, 100, false)
        .await
        .is_ok());

    redis.kill();

    // Bulk exports fail closed, with a retry hint, as a store outage (503), not a spent budget.
    let e = a
        .precheck(&key(), &budget, RouteClass::BulkExport, false)
        .await
        .expect_err("bulk fails closed");
    assert!(e.store_unavailable && e.is_retryable());
    // Other routes get this instance's share: 4000 / 4 = 1000, burst 1000.
    let r = a
        .charge(&key(), &budget, RouteClass::List, 1000, false)
        .await;
    assert_eq!(r.map(|a| a.remaining), Ok(0));
    let e = a
        .charge(&key(), &budget, RouteClass::List, 1, false)
        .await
        .expect_err("local share spent");
    assert!(!e.store_unavailable);
    // Shadow purposes are never refused, not even for bulk exports.
    assert!(a
        .charge(&key(), &budget, RouteClass::BulkExport, 10, true)
        .await
        .is_ok());
    let fallbacks = a
        .metrics()
        .store_fallbacks
        .get_or_create(&zweck::budget::BudgetLabels {
            app: "bi-export".into(),
            purpose: "analytics".into(),
            class: "list",
        })
        .get();
    assert!(fallbacks >= 2);

    // Redis back on the same port: after the breaker interval the shared budget resumes,
    // with what was spent before the outage (200 of 4000) still spent.
    let _back = Redis::start_on(port);
    let (a, budget, clock) = (&a, &budget, &clock);
    let resumed = eventually_some(|| async move {
        // Past the breaker interval on this instance's clock, then ask the shared store.
        clock.advance(Duration::from_secs(2));
        match a.precheck(&key(), budget, RouteClass::List, false).await {
            Ok(al) if al.remaining > 1000 => Some(al.remaining),
            _ => None,
        }
    })
    .await;
    // A fresh redis-server has no memory of the old keys (no persistence): full budget again.
    assert_eq!(resumed, Some(4000));
}

#[tokio::test]
#[ignore = "needs redis-server: run cargo test --test budget_redis -- --ignored"]
async fn keys_expire_when_the_bucket_is_full_again() {
    let redis = Redis::start();
    let clock = FakeRelativeClock::default();
    let a = instance(&redis.url(), 1, &clock).await;
    let budget = ExportBudget {
        records: 100,
        per: Duration::from_secs(1),
        burst: None,
        per_class: Vec::new(),
    };
    assert!(a
        .charge(&key(), &budget, RouteClass::List, 1, false)
        .await
        .is_ok());
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let ttl: i64 = redis::cmd("PTTL")
        .arg("test:{bi-export:analytics}:total")
        .query_async(&mut conn)
        .await
        .expect("pttl");
    assert!(ttl > 0, "the state key carries a TTL");
    assert_eq!(a.live_keys(), 0, "no local state while Redis answers");
}
