//! Unit tests of the limit arithmetic; behaviour over time is in tests/budget_local.rs.

use std::time::Duration;

use super::*;

fn budget(records: u64, per_secs: u64, burst: Option<u64>) -> ExportBudget {
    ExportBudget {
        records,
        per: Duration::from_secs(per_secs),
        burst,
        per_class: Vec::new(),
    }
}

#[test]
fn burst_defaults_to_the_whole_window() {
    let s = Scopes::of(&budget(5000, 3600, None), RouteClass::List);
    assert_eq!(s.len(), 1);
    assert_eq!(s.max_single(), 5000);
}

#[test]
fn a_class_sub_limit_joins_the_total_only_for_its_class() {
    let mut b = budget(50_000, 3600, Some(5000));
    b.per_class
        .push((RouteClass::BulkExport, budget(0, 3600, None)));
    assert_eq!(Scopes::of(&b, RouteClass::List).len(), 1);
    let bulk = Scopes::of(&b, RouteClass::BulkExport);
    assert_eq!(bulk.len(), 2);
    assert_eq!(bulk.never(1).map(|(i, _)| i), Some(1));
}

#[test]
fn the_fallback_share_divides_records_and_burst_but_never_to_zero() {
    let l = Limit::of(&budget(50_000, 3600, Some(5000)));
    let s = l.share(3);
    assert_eq!((s.records, s.burst), (16_666, 1666));
    let tiny = Limit::of(&budget(2, 3600, None)).share(5);
    assert_eq!((tiny.records, tiny.burst), (1, 1));
    let closed = Limit::of(&budget(0, 3600, None)).share(5);
    assert!(closed.is_closed());
}

#[test]
fn reset_is_the_time_to_refill_what_is_missing() {
    let l = Limit::of(&budget(3600, 3600, Some(100)));
    let a = l.allowance(None, 40);
    assert_eq!(a.reset, Duration::from_secs(60));
    assert_eq!(a.remaining, 40);
    assert_eq!(l.allowance(None, 1000).remaining, 100);
}
