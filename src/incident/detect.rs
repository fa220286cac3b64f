//! Detection per app x purpose, from the counts a transfer record carries (never values).
//!
//! Fed once per committed transfer record ([`Detector::observe`]): one sharded map lookup for
//! the app, one for the purpose, a few integer updates, and a set lookup per delivered
//! category, processor and country. Nothing is allocated unless something is seen for the
//! first time or a rule fires.
//!
//! **Baseline** (docs/detection.md, "How detection works"): records delivered are counted in
//! windows of `window` (default 1 min, aligned to the epoch). The windows of one UTC hour are
//! averaged when the hour ends (an empty window counts as 0; a window in which the volume
//! rule fired is left out, so an attack does not teach the baseline), and that hourly mean is
//! folded into the EWMA of its hour of the day: `b[h] = alpha * mean + (1 - alpha) * b[h]`
//! (`alpha` default 0.2: a day's weight halves in about three days). An hour of the day not
//! yet seen falls back to an EWMA over all hours. The volume rule compares the records of the
//! current window, as they arrive, with `factor x max(b[h], floor)` and with `min_records`,
//! and may fire only after `warmup` since the app x purpose was first seen.
//!
//! **Learned sets**: categories delivered, processors and processor countries, per app. During
//! the app's warm-up they are learned silently; afterwards a new one raises an incident and is
//! learned.
//!
//! **Cool-down**: a rule raises at most one incident per app x purpose per `cooldown`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::audit::{Decision, Direction, Rule, Stage, TransferRecord};
use crate::policy::RouteClass;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
/// Idle hours folded one by one after a gap; beyond a week of idleness every hour of the day
/// has decayed towards zero already and the rest is skipped.
const MAX_FOLDED_HOURS: u64 = 24 * 7;
/// Purposes tracked per app, the shared slot included. Refusals name what the caller asked for, which an attacker
/// chooses: beyond this many, further purposes share the slot [`OVERFLOW_PURPOSE`].
pub const MAX_PURPOSES_PER_APP: usize = 64;
/// The slot of purposes beyond [`MAX_PURPOSES_PER_APP`].
pub const OVERFLOW_PURPOSE: &str = "*";

/// The time source, injected so tests control windows and hours.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn at(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(ms)))
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `volume:` records per window above `factor` x baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeRule {
    pub factor: f64,
    /// Never fires at or below this many records in a window.
    pub min_records: u64,
    /// The least baseline the factor applies to (records per window).
    pub floor: f64,
}

/// `refusals:` refusals per window at or above `threshold`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRule {
    pub threshold: u64,
    /// Problem type slugs that count.
    pub reasons: Vec<&'static str>,
}

/// `export_hours:` when bulk exports are expected, in the controller's local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHours {
    /// First hour (0-23) inside the declared hours.
    pub from: u8,
    /// First hour after them (1-24); `from > to` wraps midnight.
    pub to: u8,
    /// How a UTC instant becomes a local hour.
    pub local: LocalTime,
}

/// The controller's local time: a fixed offset (`export_hours.utc_offset`) or an IANA zone
/// (`controller.time_zone`), which follows daylight saving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTime {
    /// Minutes east of UTC.
    Offset(i32),
    Zone(jiff::tz::TimeZone),
}

impl LocalTime {
    /// The local hour of day (0-23) at `ms` (UTC, milliseconds since the epoch).
    fn hour(&self, ms: u64) -> i64 {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        let offset_ms = match self {
            LocalTime::Offset(minutes) => i64::from(*minutes) * 60_000,
            LocalTime::Zone(zone) => jiff::Timestamp::from_millisecond(ms)
                .map_or(0, |t| i64::from(zone.to_offset(t).seconds()) * 1000),
        };
        (ms + offset_ms).rem_euclid(DAY_MS as i64) / HOUR_MS as i64
    }
}

impl ExportHours {
    /// Whether `ms` (UTC) is inside the declared hours.
    pub fn contains(&self, ms: u64) -> bool {
        let hour = self.local.hour(ms);
        let (from, to) = (i64::from(self.from), i64::from(self.to));
        if from <= to {
            (from..to).contains(&hour)
        } else {
            hour >= from || hour < to
        }
    }
}

/// The compiled `incidents:` rules and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub window_ms: u64,
    pub alpha: f64,
    pub warmup_ms: u64,
    pub cooldown_ms: u64,
    pub volume: Option<VolumeRule>,
    pub new_category: bool,
    pub new_processor: bool,
    pub new_country: bool,
    pub refusals: Option<RefusalRule>,
    pub export_hours: Option<ExportHours>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window_ms: 60_000,
            alpha: 0.2,
            warmup_ms: DAY_MS,
            cooldown_ms: HOUR_MS,
            volume: Some(VolumeRule {
                factor: 10.0,
                min_records: 100,
                floor: 10.0,
            }),
            new_category: true,
            new_processor: true,
            new_country: true,
            refusals: Some(RefusalRule {
                threshold: 20,
                reasons: DEFAULT_REFUSALS.to_vec(),
            }),
            export_hours: None,
        }
    }
}

/// The refusals that count by default: probing for what exists and what is allowed.
pub const DEFAULT_REFUSALS: [&str; 5] = [
    "unknown-resource",
    "query-not-allowed",
    "budget-exhausted",
    "purpose-not-granted",
    "purpose-missing",
];

/// What the detector reads of one committed transfer record.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub app: &'a str,
    pub purpose: &'a str,
    pub upstream: &'a str,
    pub processor: &'a str,
    pub jurisdiction: &'a str,
    /// Categories passed on to the app (responses only; empty otherwise).
    pub delivered: &'a [String],
    /// Records passed on to the app (responses only).
    pub records: u64,
    /// Whether the exchange reached a processor (not refused).
    pub flowed: bool,
    /// The refusal's problem type slug.
    pub refusal: Option<&'a str>,
    pub class: Option<RouteClass>,
}

impl<'a> Observation<'a> {
    /// The counts of a committed record. An `intent` line counts nothing yet (its `close`
    /// carries the records); requests count for processors and countries only.
    pub fn of(r: &'a TransferRecord, class: Option<RouteClass>) -> Observation<'a> {
        let refused = matches!(r.decision, Decision::Blocked | Decision::RateLimited);
        let answer = r.direction == Direction::Response && r.stage != Stage::Intent && !refused;
        Observation {
            app: &r.app,
            purpose: &r.purpose,
            upstream: &r.upstream,
            processor: &r.processor,
            jurisdiction: &r.jurisdiction,
            delivered: if answer { &r.categories_delivered } else { &[] },
            records: if answer { r.records } else { 0 },
            flowed: !refused,
            refusal: if refused { r.reason.as_deref() } else { None },
            class,
        }
    }
}

/// One rule that fired: the facts of the incident entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub rule: Rule,
    pub app: String,
    pub purpose: String,
    pub upstream: Option<String>,
    pub processor: Option<String>,
    pub jurisdiction: Option<String>,
    pub categories: Vec<String>,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    pub observed: u64,
    pub baseline: Option<f64>,
    pub threshold: Option<f64>,
}

/// The learned records per window, per hour of the day (UTC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// EWMA of the mean records per window, per hour of the day.
    pub hourly: [f64; 24],
    /// Whether each hour of the day has been folded at least once.
    pub seen: [bool; 24],
    /// EWMA over every folded hour, for hours not yet seen.
    pub overall: Option<f64>,
}

impl Baseline {
    /// Folds the mean of one hour (`hour_start_ms`) into its hour of the day.
    pub fn fold(&mut self, hour_start_ms: u64, mean: f64, alpha: f64) {
        let h = ((hour_start_ms / HOUR_MS) % 24) as usize;
        self.hourly[h] = if self.seen[h] {
            alpha * mean + (1.0 - alpha) * self.hourly[h]
        } else {
            mean
        };
        self.seen[h] = true;
        self.overall = Some(match self.overall {
            Some(o) => alpha * mean + (1.0 - alpha) * o,
            None => mean,
        });
    }

    /// Folds `days` whole idle days at once (a mean of 0 for every hour of each).
    pub fn decay(&mut self, days: u64, alpha: f64) {
        if days == 0 {
            return;
        }
        let keep = (1.0 - alpha).powi(days.min(i32::MAX as u64) as i32);
        for h in &mut self.hourly {
            *h *= keep;
        }
        if let Some(o) = &mut self.overall {
            *o *= keep.powi(24);
        }
    }

    /// The expected records per window at `ms`, if anything has been learned.
    pub fn expected(&self, ms: u64) -> Option<f64> {
        let h = ((ms / HOUR_MS) % 24) as usize;
        if self.seen[h] {
            Some(self.hourly[h])
        } else {
            self.overall
        }
    }
}

/// Counting state of one app x purpose.
#[derive(Debug, Clone)]
struct PurposeState {
    first_seen_ms: u64,
    window_start_ms: u64,
    records: u64,
    refusals: u64,
    volume_fired: bool,
    hour_start_ms: u64,
    hour_sum: u64,
    /// Windows of the hour left out of its mean (the volume rule fired in them).
    hour_excluded: u64,
    baseline: Baseline,
    /// When each rule last fired (0: never), by [`Rule::index`].
    last_fired: [u64; 6],
}

impl PurposeState {
    fn new(now: u64, window_ms: u64) -> PurposeState {
        PurposeState {
            first_seen_ms: now,
            window_start_ms: now - now % window_ms,
            records: 0,
            refusals: 0,
            volume_fired: false,
            hour_start_ms: now - now % HOUR_MS,
            hour_sum: 0,
            hour_excluded: 0,
            baseline: Baseline::default(),
            last_fired: [0; 6],
        }
    }

    /// Closes windows and hours that ended before `now`; returns whether the baseline moved.
    fn roll(&mut self, now: u64, s: &Settings) -> bool {
        let window = now - now % s.window_ms;
        if window == self.window_start_ms {
            return false;
        }
        // the current window ends: into its hour's sum, unless it was an attack
        if self.volume_fired {
            self.hour_excluded += 1;
        } else {
            self.hour_sum += self.records;
        }
        self.window_start_ms = window;
        self.records = 0;
        self.refusals = 0;
        self.volume_fired = false;
        let hour = now - now % HOUR_MS;
        if hour == self.hour_start_ms {
            return false;
        }
        let per_hour = (HOUR_MS / s.window_ms).max(1);
        let counted = per_hour.saturating_sub(self.hour_excluded).max(1);
        let mean = self.hour_sum as f64 / counted as f64;
        self.baseline.fold(self.hour_start_ms, mean, s.alpha);
        // hours with no traffic at all: a mean of 0 each, folded one by one for a week, the
        // rest as whole days at once
        let idle = ((hour - self.hour_start_ms) / HOUR_MS).saturating_sub(1);
        for i in 1..=idle.min(MAX_FOLDED_HOURS) {
            self.baseline
                .fold(self.hour_start_ms + i * HOUR_MS, 0.0, s.alpha);
        }
        self.baseline
            .decay(idle.saturating_sub(MAX_FOLDED_HOURS) / 24, s.alpha);
        self.hour_start_ms = hour;
        self.hour_sum = 0;
        self.hour_excluded = 0;
        true
    }

    fn may_fire(&mut self, rule: Rule, now: u64, cooldown: u64) -> bool {
        let last = &mut self.last_fired[rule.index()];
        if *last != 0 && now.saturating_sub(*last) < cooldown {
            return false;
        }
        *last = now.max(1);
        true
    }
}

/// Sets and maps on the request path hash with foldhash (names, not attacker-keyed tables:
/// purposes are capped per app, see [`MAX_PURPOSES_PER_APP`]).
type Set = HashSet<Box<str>, foldhash::fast::RandomState>;
type Map<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// What is learned per app.
#[derive(Debug, Clone, Default)]
struct AppState {
    first_seen_ms: u64,
    categories: Set,
    processors: Set,
    countries: Set,
    purposes: Map<PurposeState>,
}

/// The detector: per app x purpose counters and learned sets, behind a sharded map.
pub struct Detector {
    settings: Settings,
    clock: Arc<dyn Clock>,
    apps: DashMap<Box<str>, AppState, foldhash::fast::RandomState>,
    /// Something learned since the last [`Detector::take_dirty`] (the state file is due).
    dirty: AtomicBool,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("settings", &self.settings)
            .field("apps", &self.apps.len())
            .finish_non_exhaustive()
    }
}

impl Detector {
    pub fn new(settings: Settings, clock: Arc<dyn Clock>) -> Detector {
        Detector {
            settings,
            clock,
            apps: DashMap::default(),
            dirty: AtomicBool::new(false),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The time of the injected clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Counts one committed record and returns the rules it made fire (empty, without an
    /// allocation, on the common path).
    pub fn observe(&self, o: &Observation<'_>) -> Vec<Detection> {
        let s = &self.settings;
        let now = self.clock.now_ms().max(1);
        let mut fired = Vec::new();
        let mut app = match self.apps.get_mut(o.app) {
            Some(a) => a,
            None => self.apps.entry(o.app.into()).or_insert_with(|| AppState {
                first_seen_ms: now,
                ..AppState::default()
            }),
        };
        let app = &mut *app;
        let learning = now.saturating_sub(app.first_seen_ms) < s.warmup_ms;
        let slots = app.purposes.len();
        let key = if app.purposes.contains_key(o.purpose) || slots + 1 < MAX_PURPOSES_PER_APP {
            o.purpose
        } else {
            OVERFLOW_PURPOSE
        };
        let p = match app.purposes.get_mut(key) {
            Some(p) => p,
            None => app
                .purposes
                .entry(key.into())
                .or_insert_with(|| PurposeState::new(now, s.window_ms)),
        };
        if p.roll(now, s) {
            self.dirty.store(true, Ordering::Relaxed);
        }
        let window = (p.window_start_ms, p.window_start_ms + s.window_ms);
        let detection = |rule: Rule, categories: Vec<String>, observed: u64| Detection {
            rule,
            app: o.app.to_string(),
            purpose: key.to_string(),
            upstream: Some(o.upstream.to_string()),
            processor: Some(o.processor.to_string()),
            jurisdiction: Some(o.jurisdiction.to_string()),
            categories,
            window_start_ms: window.0,
            window_end_ms: window.1,
            observed,
            baseline: None,
            threshold: None,
        };

        // refusal surge
        if let (Some(reason), Some(rule)) = (o.refusal, &s.refusals) {
            if rule.reasons.contains(&reason) {
                p.refusals += 1;
                if p.refusals >= rule.threshold
                    && p.may_fire(Rule::RefusalSurge, now, s.cooldown_ms)
                {
                    let mut d = detection(Rule::RefusalSurge, Vec::new(), p.refusals);
                    d.threshold = Some(rule.threshold as f64);
                    fired.push(d);
                }
            }
        }

        // volume
        p.records += o.records;
        if let Some(v) = &s.volume {
            let warm = now.saturating_sub(p.first_seen_ms) >= s.warmup_ms;
            if o.records > 0 && warm && !p.volume_fired {
                let expected = p.baseline.expected(now).unwrap_or(0.0);
                let threshold = (v.factor * expected.max(v.floor)).max(v.min_records as f64);
                if p.records as f64 > threshold {
                    p.volume_fired = true;
                    if p.may_fire(Rule::Volume, now, s.cooldown_ms) {
                        let mut d = detection(Rule::Volume, o.delivered.to_vec(), p.records);
                        d.baseline = Some(expected);
                        d.threshold = Some(threshold);
                        fired.push(d);
                    }
                }
            }
        }

        // bulk exports outside the declared hours
        if let Some(hours) = &s.export_hours {
            if o.records > 0
                && o.class == Some(RouteClass::BulkExport)
                && !hours.contains(now)
                && p.may_fire(Rule::OffHours, now, s.cooldown_ms)
            {
                fired.push(detection(Rule::OffHours, o.delivered.to_vec(), p.records));
            }
        }

        // learned sets (per app)
        if s.new_category && !o.delivered.is_empty() {
            let new: Vec<&String> = o
                .delivered
                .iter()
                .filter(|c| !app.categories.contains(c.as_str()))
                .collect();
            if !new.is_empty() {
                let report = !learning
                    && app
                        .purposes
                        .get_mut(key)
                        .is_some_and(|p| p.may_fire(Rule::NewCategory, now, s.cooldown_ms));
                // while an incident is cooling down, a new category stays unlearned so the
                // next one after the cool-down names it
                if learning || report {
                    let names: Vec<String> = new.iter().map(|c| (*c).clone()).collect();
                    for c in &names {
                        app.categories.insert(c.as_str().into());
                    }
                    self.dirty.store(true, Ordering::Relaxed);
                    if report {
                        let mut d = detection(Rule::NewCategory, names, o.records);
                        d.observed = app.purposes.get(key).map_or(o.records, |p| p.records);
                        fired.push(d);
                    }
                }
            }
        }
        if o.flowed {
            for (enabled, rule, value, set) in [
                (
                    s.new_processor,
                    Rule::NewProcessor,
                    o.processor,
                    &mut app.processors,
                ),
                (
                    s.new_country,
                    Rule::NewCountry,
                    o.jurisdiction,
                    &mut app.countries,
                ),
            ] {
                if !enabled || value.is_empty() || set.contains(value) {
                    continue;
                }
                let report = !learning
                    && app
                        .purposes
                        .get_mut(key)
                        .is_some_and(|p| p.may_fire(rule, now, s.cooldown_ms));
                if learning || report {
                    set.insert(value.into());
                    self.dirty.store(true, Ordering::Relaxed);
                    if report {
                        let observed = app.purposes.get(key).map_or(o.records, |p| p.records);
                        fired.push(detection(rule, o.delivered.to_vec(), observed));
                    }
                }
            }
        }
        fired
    }

    /// Marks the learned state as changed (a failed write is retried).
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Whether something was learned since the last call (and resets it).
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    /// What is learned, for the state file.
    pub fn snapshot(&self) -> Learned {
        let mut apps = std::collections::BTreeMap::new();
        for a in &self.apps {
            let sorted = |set: &Set| {
                let mut v: Vec<String> = set.iter().map(ToString::to_string).collect();
                v.sort();
                v
            };
            let purposes = a
                .purposes
                .iter()
                .map(|(name, p)| {
                    (
                        name.to_string(),
                        LearnedPurpose {
                            first_seen_ms: p.first_seen_ms,
                            baseline: p.baseline.clone(),
                        },
                    )
                })
                .collect();
            apps.insert(
                a.key().to_string(),
                LearnedApp {
                    first_seen_ms: a.first_seen_ms,
                    categories: sorted(&a.categories),
                    processors: sorted(&a.processors),
                    countries: sorted(&a.countries),
                    purposes,
                },
            );
        }
        Learned {
            version: 1,
            apps,
            contained: Vec::new(),
            revoked: Vec::new(),
        }
    }

    /// Restores what a previous run learned (before traffic).
    pub fn restore(&self, learned: Learned) {
        let now = self.clock.now_ms().max(1);
        for (name, a) in learned.apps {
            let set = |v: Vec<String>| v.into_iter().map(String::into_boxed_str).collect();
            let purposes = a
                .purposes
                .into_iter()
                .take(MAX_PURPOSES_PER_APP)
                .map(|(name, lp)| {
                    let mut p = PurposeState::new(now, self.settings.window_ms);
                    p.first_seen_ms = lp.first_seen_ms.min(now);
                    p.baseline = lp.baseline;
                    (name.into_boxed_str(), p)
                })
                .collect();
            self.apps.insert(
                name.into_boxed_str(),
                AppState {
                    first_seen_ms: a.first_seen_ms.min(now),
                    categories: set(a.categories),
                    processors: set(a.processors),
                    countries: set(a.countries),
                    purposes,
                },
            );
        }
    }
}

/// The state file's content: what the detector learned, so a restart neither re-learns every
/// category as new nor starts the baseline from nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Learned {
    pub version: u32,
    pub apps: std::collections::BTreeMap<String, LearnedApp>,
    /// What is contained (kept by [`super::Incidents`], not by the detector).
    #[serde(default)]
    pub contained: Vec<super::contain::Contained>,
    /// Revoked apps (kept by [`super::Incidents`]).
    #[serde(default)]
    pub revoked: Vec<super::contain::Revoked>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedApp {
    pub first_seen_ms: u64,
    pub categories: Vec<String>,
    pub processors: Vec<String>,
    pub countries: Vec<String>,
    pub purposes: std::collections::BTreeMap<String, LearnedPurpose>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedPurpose {
    pub first_seen_ms: u64,
    pub baseline: Baseline,
}

#[cfg(test)]
mod tests;
