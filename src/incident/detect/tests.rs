use super::*;

const MIN: u64 = 60_000;
/// 2026-12-07T00:00:00Z
const T0: u64 = 1_796_601_600_000;

fn settings() -> Settings {
    Settings {
        warmup_ms: HOUR_MS,
        ..Settings::default()
    }
}

fn detector(s: Settings) -> (Detector, Arc<ManualClock>) {
    let clock = ManualClock::at(T0);
    (Detector::new(s, clock.clone()), clock)
}

fn email() -> Vec<String> {
    vec!["user.contact.email".to_string()]
}

fn answer(cats: &[String], records: u64) -> Observation<'_> {
    Observation {
        app: "newsletter-tool",
        purpose: "newsletter",
        upstream: "salesforce",
        processor: "Salesforce, Inc.",
        jurisdiction: "US",
        delivered: cats,
        records,
        flowed: true,
        refusal: None,
        class: Some(RouteClass::List),
    }
}

fn refusal(reason: &str) -> Observation<'_> {
    Observation {
        delivered: &[],
        records: 0,
        flowed: false,
        refusal: Some(reason),
        ..answer(&[], 0)
    }
}

fn rules(d: &[Detection]) -> Vec<Rule> {
    d.iter().map(|d| d.rule).collect()
}

/// Ten records a minute for `hours` hours, one observation a minute.
fn steady(d: &Detector, clock: &ManualClock, hours: u64) {
    let cats = email();
    for _ in 0..hours * 60 {
        assert_eq!(
            rules(&d.observe(&answer(&cats, 10))),
            vec![],
            "steady traffic"
        );
        clock.advance(MIN);
    }
}

#[test]
fn the_baseline_folds_hourly_means_per_hour_of_day_and_falls_back_to_all_hours() {
    let mut b = Baseline::default();
    assert_eq!(b.expected(T0), None);
    b.fold(T0, 10.0, 0.5);
    assert_eq!(b.expected(T0 + 5 * MIN), Some(10.0));
    // another hour of the day, not seen yet: the EWMA over all hours
    assert_eq!(b.expected(T0 + 3 * HOUR_MS), Some(10.0));
    b.fold(T0 + DAY_MS, 20.0, 0.5);
    assert_eq!(b.expected(T0), Some(15.0));
    assert_eq!(b.overall, Some(15.0));
    b.fold(T0 + HOUR_MS, 0.0, 0.5);
    assert_eq!(b.expected(T0 + HOUR_MS), Some(0.0));
    assert_eq!(b.expected(T0 + DAY_MS), Some(15.0));
}

#[test]
fn steady_traffic_learns_its_rate_and_a_spike_fires_volume_once_with_its_figures() {
    let (d, clock) = detector(settings());
    steady(&d, &clock, 2);
    let cats = email();
    // 10 records a minute learned: the threshold is 10 x max(10, floor 10) = 100
    assert!(d.observe(&answer(&cats, 90)).is_empty());
    let fired = d.observe(&answer(&cats, 20));
    assert_eq!(rules(&fired), vec![Rule::Volume]);
    let v = &fired[0];
    assert_eq!(v.observed, 110);
    assert_eq!(v.baseline, Some(10.0));
    assert_eq!(v.threshold, Some(100.0));
    assert_eq!(v.categories, cats);
    assert_eq!(v.window_end_ms - v.window_start_ms, MIN);
    assert!(v.window_start_ms <= clock.now_ms() && clock.now_ms() < v.window_end_ms);
    // no flood: neither in this window nor in the cool-down
    assert!(d.observe(&answer(&cats, 5000)).is_empty());
    clock.advance(MIN);
    assert!(d.observe(&answer(&cats, 5000)).is_empty());
    clock.advance(HOUR_MS);
    assert_eq!(rules(&d.observe(&answer(&cats, 5000))), vec![Rule::Volume]);
}

#[test]
fn the_spike_does_not_teach_the_baseline() {
    let (d, clock) = detector(settings());
    steady(&d, &clock, 2);
    let cats = email();
    assert_eq!(
        rules(&d.observe(&answer(&cats, 100_000))),
        vec![Rule::Volume]
    );
    clock.advance(MIN);
    steady(&d, &clock, 2);
    let snap = d.snapshot();
    let b = &snap.apps["newsletter-tool"].purposes["newsletter"].baseline;
    for h in 0..4 {
        assert!(b.hourly[h] <= 10.0 + 1e-9, "hour {h}: {}", b.hourly[h]);
    }
}

#[test]
fn volume_waits_for_the_warm_up_and_a_near_zero_baseline_does_not_fire_on_a_few_records() {
    let cats = email();
    // first hour: warm-up, nothing fires whatever the volume
    let (d, _) = detector(settings());
    assert!(d.observe(&answer(&cats, 1_000_000)).is_empty());
    let (d, clock) = detector(settings());
    assert!(d.observe(&answer(&cats, 1)).is_empty());
    clock.advance(2 * HOUR_MS);
    // baseline about 0 now: the floor and min_records (100) hold
    assert!(d.observe(&answer(&cats, 5)).is_empty());
    assert!(d.observe(&answer(&cats, 95)).is_empty());
    assert_eq!(rules(&d.observe(&answer(&cats, 1))), vec![Rule::Volume]);
}

#[test]
fn idle_hours_decay_the_baseline_towards_zero() {
    let (d, clock) = detector(settings());
    steady(&d, &clock, 2);
    clock.advance(30 * DAY_MS);
    let cats = email();
    assert!(d.observe(&answer(&cats, 1)).is_empty());
    let snap = d.snapshot();
    let b = &snap.apps["newsletter-tool"].purposes["newsletter"].baseline;
    assert!(b.hourly[0] < 0.1 && b.hourly[1] < 0.1, "{:?}", b.hourly);
}

#[test]
fn a_category_new_to_the_app_after_warm_up_fires_once_and_is_learned() {
    let (d, clock) = detector(settings());
    let cats = email();
    assert!(d.observe(&answer(&cats, 1)).is_empty());
    clock.advance(2 * HOUR_MS);
    let more = vec![
        "user.contact.email".to_string(),
        "user.financial.bank_account".to_string(),
    ];
    let fired = d.observe(&answer(&more, 1));
    assert_eq!(rules(&fired), vec![Rule::NewCategory]);
    assert_eq!(fired[0].categories, vec!["user.financial.bank_account"]);
    assert!(d.observe(&answer(&more, 1)).is_empty());
}

#[test]
fn a_new_category_during_a_cool_down_is_reported_when_it_ends() {
    let (d, clock) = detector(settings());
    assert!(d.observe(&answer(&email(), 1)).is_empty());
    clock.advance(2 * HOUR_MS);
    let a = vec!["user.name.first".to_string()];
    let b = vec!["user.name.last".to_string()];
    assert_eq!(rules(&d.observe(&answer(&a, 1))), vec![Rule::NewCategory]);
    assert!(d.observe(&answer(&b, 1)).is_empty(), "cooling down");
    clock.advance(HOUR_MS);
    let fired = d.observe(&answer(&b, 1));
    assert_eq!(fired[0].categories, b);
}

#[test]
fn a_new_processor_and_a_new_country_fire_after_warm_up() {
    let (d, clock) = detector(settings());
    assert!(d.observe(&answer(&email(), 1)).is_empty());
    clock.advance(2 * HOUR_MS);
    let cats = email();
    let moved = Observation {
        upstream: "hubspot",
        processor: "HubSpot, Inc.",
        jurisdiction: "IE",
        ..answer(&cats, 1)
    };
    let fired = d.observe(&moved);
    assert_eq!(rules(&fired), vec![Rule::NewProcessor, Rule::NewCountry]);
    assert_eq!(fired[0].processor.as_deref(), Some("HubSpot, Inc."));
    assert_eq!(fired[1].jurisdiction.as_deref(), Some("IE"));
    assert!(d.observe(&moved).is_empty());
}

#[test]
fn a_surge_of_counted_refusals_fires_at_the_threshold_and_others_do_not_count() {
    let (d, clock) = detector(Settings {
        refusals: Some(RefusalRule {
            threshold: 3,
            reasons: DEFAULT_REFUSALS.to_vec(),
        }),
        ..settings()
    });
    for _ in 0..10 {
        assert!(d.observe(&refusal("write-not-allowed")).is_empty());
    }
    assert!(d.observe(&refusal("unknown-resource")).is_empty());
    assert!(d.observe(&refusal("query-not-allowed")).is_empty());
    let fired = d.observe(&refusal("budget-exhausted"));
    assert_eq!(rules(&fired), vec![Rule::RefusalSurge]);
    assert_eq!((fired[0].observed, fired[0].threshold), (3, Some(3.0)));
    assert!(fired[0].categories.is_empty());
    // a new window starts counting from zero (and the cool-down holds anyway)
    clock.advance(MIN);
    assert!(d.observe(&refusal("unknown-resource")).is_empty());
}

#[test]
fn a_bulk_export_outside_the_declared_hours_fires_inside_not() {
    let (d, clock) = detector(Settings {
        export_hours: Some(ExportHours {
            from: 8,
            to: 18,
            local: LocalTime::Offset(60),
        }),
        ..settings()
    });
    let cats = email();
    let bulk = Observation {
        class: Some(RouteClass::BulkExport),
        ..answer(&cats, 10)
    };
    // 07:00 UTC is 08:00 at +01:00: inside
    clock.set(T0 + 7 * HOUR_MS);
    assert!(d.observe(&bulk).is_empty());
    // a list read at 03:00 is no bulk export
    clock.set(T0 + DAY_MS + 3 * HOUR_MS);
    assert!(d.observe(&answer(&cats, 10)).is_empty());
    let fired = d.observe(&bulk);
    assert_eq!(rules(&fired), vec![Rule::OffHours]);
}

#[test]
fn export_hours_may_wrap_midnight() {
    let night = ExportHours {
        from: 22,
        to: 6,
        local: LocalTime::Offset(0),
    };
    assert!(night.contains(T0 + 23 * HOUR_MS));
    assert!(night.contains(T0 + 2 * HOUR_MS));
    assert!(!night.contains(T0 + 12 * HOUR_MS));
    let behind = ExportHours {
        from: 0,
        to: 1,
        local: LocalTime::Offset(-300),
    };
    // 05:30 UTC is 00:30 at -05:00
    assert!(behind.contains(T0 + 5 * HOUR_MS + 30 * MIN));
}

#[test]
fn export_hours_in_a_time_zone_follow_daylight_saving() {
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("bundled zone");
    let office = ExportHours {
        from: 8,
        to: 18,
        local: LocalTime::Zone(berlin),
    };
    let at = |s: &str| {
        let t: jiff::Timestamp = s.parse().expect("timestamp");
        u64::try_from(t.as_millisecond()).expect("after 1970")
    };
    // summer (UTC+2): 06:30 UTC is 08:30 local, 05:30 UTC is 07:30
    assert!(office.contains(at("2026-07-01T06:30:00Z")));
    assert!(!office.contains(at("2026-07-01T05:30:00Z")));
    // winter (UTC+1): 06:30 UTC is 07:30 local, 07:30 UTC is 08:30
    assert!(!office.contains(at("2026-12-01T06:30:00Z")));
    assert!(office.contains(at("2026-12-01T07:30:00Z")));
    // the day the clocks go back (25 October 2026): 16:30 UTC is 17:30 CET, 17:30 is 18:30
    assert!(office.contains(at("2026-10-25T16:30:00Z")));
    assert!(!office.contains(at("2026-10-25T17:30:00Z")));
}

#[test]
fn purposes_an_attacker_makes_up_share_one_slot_beyond_the_limit() {
    let (d, _clock) = detector(settings());
    let names: Vec<String> = (0..MAX_PURPOSES_PER_APP + 50)
        .map(|i| format!("p{i}"))
        .collect();
    for n in &names {
        let o = Observation {
            purpose: n,
            ..refusal("purpose-not-granted")
        };
        d.observe(&o);
    }
    let snap = d.snapshot();
    let purposes = &snap.apps["newsletter-tool"].purposes;
    assert_eq!(purposes.len(), MAX_PURPOSES_PER_APP);
    assert!(purposes.contains_key(OVERFLOW_PURPOSE));
}

#[test]
fn what_was_learned_survives_a_restart() {
    let (d, clock) = detector(settings());
    steady(&d, &clock, 3);
    assert!(d.take_dirty());
    let learned = d.snapshot();
    let text = serde_json::to_string(&learned).expect("encode");
    let back: Learned = serde_json::from_str(&text).expect("decode");
    assert_eq!(back, learned);

    let again = Detector::new(settings(), clock.clone());
    again.restore(back);
    let cats = email();
    // no re-learning: the known category is not new, the warm-up is over, the rate is known
    assert!(again.observe(&answer(&cats, 50)).is_empty());
    assert_eq!(
        rules(&again.observe(&answer(&cats, 51))),
        vec![Rule::Volume]
    );
}

#[test]
fn observations_of_records_count_answers_only() {
    let mut r = crate::audit::record::tests::sample();
    r.records = 7;
    let o = Observation::of(&r, None);
    assert_eq!((o.records, o.delivered.len(), o.flowed), (7, 1, true));
    r.direction = Direction::Request;
    assert_eq!(Observation::of(&r, None).records, 0);
    r.direction = Direction::Response;
    r.stage = Stage::Intent;
    assert_eq!(Observation::of(&r, None).records, 0);
    r.stage = Stage::Complete;
    r.decision = Decision::Blocked;
    r.reason = Some("unknown-resource".into());
    let o = Observation::of(&r, None);
    assert_eq!(
        (o.records, o.flowed, o.refusal),
        (0, false, Some("unknown-resource"))
    );
}
