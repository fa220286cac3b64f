//! Export budgets on the in-process store, driven by governor's fake clock so refill is exact.

use std::time::Duration;

use governor::clock::FakeRelativeClock;
use zweck::budget::{BudgetKey, Budgets, RawBudgetsConfig, StreamVerdict};
use zweck::policy::{ExportBudget, RouteClass};

fn budget(records: u64, per: Duration, burst: Option<u64>) -> ExportBudget {
    ExportBudget {
        records,
        per,
        burst,
        per_class: Vec::new(),
    }
}

fn hour(records: u64, burst: Option<u64>) -> ExportBudget {
    budget(records, Duration::from_secs(3600), burst)
}

fn key() -> BudgetKey {
    BudgetKey::new("bi-export", "analytics")
}

fn fake() -> (Budgets, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (Budgets::local_with_clock(clock.clone()), clock)
}

#[tokio::test]
async fn pages_of_2000_against_5000_refuse_the_third_page_whole() {
    let (b, _clock) = fake();
    let budget = hour(5000, None);
    let first = b
        .charge(&key(), &budget, RouteClass::List, 2000, false)
        .await;
    assert_eq!(first.map(|a| a.remaining), Ok(3000));
    let second = b
        .charge(&key(), &budget, RouteClass::List, 2000, false)
        .await;
    assert_eq!(second.map(|a| a.remaining), Ok(1000));
    let third = b
        .charge(&key(), &budget, RouteClass::List, 2000, false)
        .await;
    let Err(e) = third else {
        panic!("third page must be refused")
    };
    assert!(e.is_retryable());
    assert_eq!(e.requested, 2000);
    // Refused whole: nothing of the third page was spent, the last 1000 are still there.
    let a = b.precheck(&key(), &budget, RouteClass::List, false).await;
    assert_eq!(a.map(|a| a.remaining), Ok(1000));
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 1000, false)
        .await
        .is_ok());
    assert!(b
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .is_err());
}

#[tokio::test]
async fn refill_is_exact_on_the_fake_clock() {
    let (b, clock) = fake();
    // 3600 per hour: one record per second, at most 100 at once.
    let budget = hour(3600, Some(100));
    assert_eq!(
        b.charge(&key(), &budget, RouteClass::List, 100, false)
            .await
            .map(|a| a.remaining),
        Ok(0)
    );
    let e = b
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .expect_err("empty");
    assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
    clock.advance(Duration::from_millis(999));
    assert!(b
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .is_err());
    clock.advance(Duration::from_millis(1));
    let a = b.precheck(&key(), &budget, RouteClass::List, false).await;
    assert_eq!(a.map(|a| a.remaining), Ok(1));
    // Ten seconds later ten more; a page of 11 waits exactly one more second.
    clock.advance(Duration::from_secs(9));
    let e = b
        .charge(&key(), &budget, RouteClass::List, 11, false)
        .await
        .expect_err("11 > 10");
    assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 10, false)
        .await
        .is_ok());
    // Never more than the burst, however long the pause.
    clock.advance(Duration::from_secs(86_400));
    let a = b.precheck(&key(), &budget, RouteClass::List, false).await;
    assert_eq!(a.map(|a| a.remaining), Ok(100));
}

#[tokio::test]
async fn precheck_spends_nothing() {
    let (b, _clock) = fake();
    let budget = hour(50, None);
    for _ in 0..100 {
        let a = b.precheck(&key(), &budget, RouteClass::List, false).await;
        assert_eq!(a.map(|a| a.remaining), Ok(50));
    }
    assert_eq!(b.live_keys(), 0, "a look creates no state");
}

#[tokio::test]
async fn a_page_over_the_burst_can_never_fit() {
    let (b, _clock) = fake();
    let budget = hour(50_000, Some(5000));
    let e = b
        .charge(&key(), &budget, RouteClass::List, 5001, false)
        .await
        .expect_err("over burst");
    assert_eq!(e.retry_after, None);
    assert_eq!(e.cap, 5000);
    assert_eq!(e.class, None);
    // ...and it spent nothing.
    let a = b.precheck(&key(), &budget, RouteClass::List, false).await;
    assert_eq!(a.map(|a| a.remaining), Ok(5000));
}

#[tokio::test]
async fn a_closed_class_refuses_for_good_and_other_classes_pass() {
    let (b, _clock) = fake();
    let mut budget = hour(50_000, Some(5000));
    budget
        .per_class
        .push((RouteClass::BulkExport, hour(0, None)));
    let e = b
        .precheck(&key(), &budget, RouteClass::BulkExport, false)
        .await
        .expect_err("closed");
    assert_eq!(
        (e.retry_after, e.cap, e.class),
        (None, 0, Some(RouteClass::BulkExport))
    );
    assert!(b
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .is_ok());
}

#[tokio::test]
async fn a_class_sub_limit_binds_without_spending_the_total() {
    let (b, _clock) = fake();
    let mut budget = hour(10_000, Some(1000));
    budget.per_class.push((RouteClass::List, hour(100, None)));
    let a = b
        .charge(&key(), &budget, RouteClass::List, 100, false)
        .await
        .expect("fits both");
    assert_eq!((a.remaining, a.class), (0, Some(RouteClass::List)));
    let e = b
        .charge(&key(), &budget, RouteClass::List, 50, false)
        .await
        .expect_err("list sub-limit spent");
    assert_eq!(e.class, Some(RouteClass::List));
    assert!(e.is_retryable());
    // The total paid for the first 100 only, not for the refused 50.
    let a = b
        .precheck(&key(), &budget, RouteClass::Single, false)
        .await
        .expect("total has room");
    assert_eq!((a.remaining, a.class, a.limit), (900, None, 10_000));
}

#[tokio::test]
async fn budgets_are_per_app_and_purpose() {
    let (b, _clock) = fake();
    let budget = hour(10, None);
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 10, false)
        .await
        .is_ok());
    assert!(b
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .is_err());
    let other_app = BudgetKey::new("crm-sync", "analytics");
    let other_purpose = BudgetKey::new("bi-export", "billing");
    assert!(b
        .precheck(&other_app, &budget, RouteClass::List, false)
        .await
        .is_ok());
    assert!(b
        .precheck(&other_purpose, &budget, RouteClass::List, false)
        .await
        .is_ok());
}

#[tokio::test]
async fn charging_nothing_always_succeeds() {
    let (b, _clock) = fake();
    let budget = hour(10, None);
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 10, false)
        .await
        .is_ok());
    let a = b.charge(&key(), &budget, RouteClass::List, 0, false).await;
    assert_eq!(a.map(|a| a.remaining), Ok(0));
}

#[tokio::test]
async fn shadow_counts_and_never_refuses() {
    let (b, _clock) = fake();
    let budget = hour(10, None);
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 10, true)
        .await
        .is_ok());
    let a = b.precheck(&key(), &budget, RouteClass::List, true).await;
    assert_eq!(a.map(|a| a.remaining), Ok(0), "shadow tells the truth");
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 7, true)
        .await
        .is_ok());
    assert!(b
        .charge(&key(), &budget, RouteClass::List, 1_000_000, true)
        .await
        .is_ok());
    // The same budget in enforce mode is spent: the shadow charges counted.
    assert!(b
        .precheck(&key(), &budget, RouteClass::List, false)
        .await
        .is_err());
    let shadow = b
        .metrics()
        .shadow_refusals
        .get_or_create(&labels("list"))
        .get();
    assert_eq!(shadow, 3);
}

fn labels(class: &'static str) -> zweck::budget::BudgetLabels {
    zweck::budget::BudgetLabels {
        app: "bi-export".into(),
        purpose: "analytics".into(),
        class,
    }
}

#[tokio::test]
async fn metrics_count_records_charged_and_refused_per_key() {
    let (b, _clock) = fake();
    let budget = hour(5000, None);
    for _ in 0..3 {
        let _ = b
            .charge(&key(), &budget, RouteClass::List, 2000, false)
            .await;
    }
    let m = b.metrics();
    assert_eq!(m.records_charged.get_or_create(&labels("list")).get(), 4000);
    assert_eq!(m.records_refused.get_or_create(&labels("list")).get(), 2000);
    assert_eq!(m.refusals.get_or_create(&labels("list")).get(), 1);
}

#[tokio::test]
async fn a_stream_is_aborted_at_the_first_chunk_it_cannot_pay_for() {
    let (b, _clock) = fake();
    let budget = hour(5000, None);
    let mut s = b.stream(key(), budget, RouteClass::BulkExport, false);
    for _ in 0..5 {
        assert!(matches!(
            s.charge_stream(1000).await,
            StreamVerdict::Continue(_)
        ));
    }
    let StreamVerdict::Abort(e) = s.charge_stream(1).await else {
        panic!("over budget must abort")
    };
    assert!(e.is_retryable());
    assert!(s.is_aborted());
    assert_eq!(s.charged(), 5000);
    // Once aborted, always aborted, even after a refill.
    assert!(matches!(s.charge_stream(0).await, StreamVerdict::Abort(_)));
}

#[tokio::test]
async fn a_stream_may_run_longer_than_one_burst_but_not_outrun_the_refill() {
    let (b, clock) = fake();
    // One record per 36 ms, 100 at once.
    let budget = hour(100_000, Some(100));
    let mut s = b.stream(key(), budget, RouteClass::BulkExport, false);
    assert!(matches!(
        s.charge_stream(100).await,
        StreamVerdict::Continue(_)
    ));
    clock.advance(Duration::from_secs(9));
    // 250 refilled records, but at most 100 in the bucket: a 250-row chunk charged in
    // burst-sized parts gets 100 and then has to abort.
    assert!(matches!(
        s.charge_stream(250).await,
        StreamVerdict::Abort(_)
    ));
    assert_eq!(s.charged(), 200);
}

#[tokio::test]
async fn a_million_keys_are_reclaimed_by_the_sweep() {
    let (b, clock) = fake();
    let budget = hour(3600, None);
    for i in 0..1_000_000u32 {
        let k = BudgetKey::new(format!("app-{i}"), "analytics");
        assert!(b
            .charge(&k, &budget, RouteClass::List, 1, false)
            .await
            .is_ok());
    }
    assert_eq!(b.live_keys(), 1_000_000);
    let before = b.capacity();
    assert!(before >= 1_000_000);
    // Nothing is full again yet: the sweep keeps every key.
    assert_eq!(b.sweep(), 1_000_000);
    // Two seconds later every bucket has refilled its one record.
    clock.advance(Duration::from_secs(2));
    assert_eq!(b.sweep(), 0);
    assert_eq!(b.live_keys(), 0);
    assert!(
        b.capacity() < before / 100,
        "shrink_to_fit gave the slots back"
    );
}

#[tokio::test]
async fn allowance_headers_follow_the_ratelimit_draft() {
    let (b, _clock) = fake();
    let budget = hour(50_000, Some(5000));
    let a = b
        .charge(&key(), &budget, RouteClass::List, 2000, false)
        .await
        .expect("fits");
    let h = a.headers();
    assert_eq!(h[0].1, "\"export\";q=50000;w=3600");
    // 2000 missing at 72 ms each: full again in 144 s.
    assert_eq!(h[1].1, "\"export\";r=3000;t=144");
}

#[tokio::test]
async fn config_is_checked() {
    let raw = |store: &str, url: Option<&str>, instances: Option<u32>| RawBudgetsConfig {
        store: store.into(),
        url: url.map(Into::into),
        instances,
        key_prefix: None,
        refusal: None,
    };
    assert!(Budgets::from_config(&raw("local", None, None))
        .await
        .is_ok());
    assert!(Budgets::from_config(&raw("memcached", None, None))
        .await
        .is_err());
    assert!(Budgets::from_config(&raw("redis", None, None))
        .await
        .is_err());
    assert!(
        Budgets::from_config(&raw("local", Some("redis://127.0.0.1/"), None))
            .await
            .is_err()
    );
    assert!(
        Budgets::from_config(&raw("redis", Some("redis://127.0.0.1:1/"), Some(0)))
            .await
            .is_err()
    );
    assert!(Budgets::from_config(&raw("redis", Some("not a url"), None))
        .await
        .is_err());
    // Lazy: an unreachable Redis is not a start-up failure.
    assert!(
        Budgets::from_config(&raw("redis", Some("redis://127.0.0.1:1/"), Some(3)))
            .await
            .is_ok()
    );
    let yaml = serde_json::json!({"store": "redis", "url": "redis://x/", "colour": 1});
    assert!(serde_json::from_value::<RawBudgetsConfig>(yaml).is_err());
}
