//! What the verified transfer log says about one incident: which categories flowed to whom,
//! from which processors and countries under which mechanisms, how many records in each
//! direction, which fields were pseudonymised or generalised, which detections fired and
//! which containment steps were taken, and when.
//!
//! Lines are read by kind: transfer entries have no `kind` member; event entries
//! (`"kind":"incident"`, `"kind":"containment"`, docs/transfer-log.md) are read as such;
//! an event kind this version does not know is counted and otherwise skipped, never an
//! error. Only counts and names are read: the log holds no values, and neither does this.
//!
//! The window: transfers are counted from `from` (inclusive) to `to` (exclusive). Without
//! `--since` it starts at the first `incident` entry for the app and purpose asked about (at
//! that detection's own `window_start` when it is earlier, since the flow it saw began
//! there). That entry is found by a quick unverified read ([`first_detection`]) so the
//! verified pass can sum as it goes (memory in flows and categories, not in entries); the
//! verified pass then confirms the entry is there ([`Facts::check_start`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::audit::period::log_millis;
use crate::audit::record::{Decision, Direction, Stage};
use crate::policy::taxonomy::{GDPR_ART10, GDPR_ART9};

/// Which transfers and events an incident is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub app: Option<String>,
    pub purpose: Option<String>,
    /// A category (and its children, `user.contact` covers `user.contact.email`).
    pub category: Option<String>,
}

impl Scope {
    fn app_ok(&self, app: &str) -> bool {
        self.app.as_deref().is_none_or(|a| a == app)
    }
    /// A purpose of `None` (an event for a whole app) matches any purpose.
    fn purpose_ok(&self, purpose: Option<&str>) -> bool {
        match (&self.purpose, purpose) {
            (Some(want), Some(p)) => want == p,
            _ => true,
        }
    }
    fn categories_ok<S: AsRef<str>>(&self, cats: &[S]) -> bool {
        self.category
            .as_deref()
            .is_none_or(|c| cats.iter().any(|x| covers(c, x.as_ref())))
    }
}

/// `parent` is `cat` or one of its ancestors.
pub fn covers(parent: &str, cat: &str) -> bool {
    cat == parent || (cat.starts_with(parent) && cat.as_bytes().get(parent.len()) == Some(&b'.'))
}

/// `art9` or `art10` for a special category (GDPR Art. 9(1), Art. 10), else `None`.
pub fn special(cat: &str) -> Option<&'static str> {
    if GDPR_ART9.categories.iter().any(|s| covers(s, cat)) {
        Some("art9")
    } else if GDPR_ART10.categories.iter().any(|s| covers(s, cat)) {
        Some("art10")
    } else {
        None
    }
}

/// Actions whose fields left Zweck changed so that they identify less (they lower the risk
/// to data subjects, Art. 34(3)(a) and recital 83 speak of such measures).
pub const PROTECTIVE_ACTIONS: [&str; 5] =
    ["pseudonymise", "generalise", "mask", "redact", "truncate"];

/// The `kind` of a line; absent for transfer entries.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// What is read of a transfer entry.
#[derive(Deserialize)]
struct TransferLine {
    ts: String,
    stage: Stage,
    app: String,
    purpose: String,
    direction: Direction,
    upstream: String,
    processor: String,
    jurisdiction: String,
    cross_border: bool,
    transfer_mechanism: Mechanism,
    categories_delivered: Vec<String>,
    records: u64,
    bytes: u64,
    #[serde(default)]
    actions: BTreeMap<String, u64>,
    decision: Decision,
}

#[derive(Deserialize)]
struct Mechanism {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref", default)]
    reference: Option<String>,
}

/// An `incident` entry (a detection), as agreed in docs/transfer-log.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    #[serde(default)]
    pub seq: u64,
    pub ts: String,
    pub incident: String,
    pub rule: String,
    pub app: String,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub processor: Option<String>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub window_start: Option<String>,
    #[serde(default)]
    pub window_end: Option<String>,
    #[serde(default)]
    pub observed: Option<u64>,
    #[serde(default)]
    pub baseline: Option<f64>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub on_anomaly: Option<String>,
}

/// A `containment` entry: a step taken, by the detector, an admin or the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Containment {
    #[serde(default)]
    pub seq: u64,
    pub ts: String,
    pub action: String,
    pub app: String,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub incident: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Sums of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sums {
    /// Transfer entries (streamed bodies' `intent` lines excluded: their `close` counts).
    pub entries: u64,
    /// Records delivered.
    pub records: u64,
    pub bytes: u64,
    /// Entries refused (`blocked`, `rate_limited`): nothing or less flowed.
    pub refused: u64,
}

impl Sums {
    fn add(&mut self, records: u64, bytes: u64, refused: bool) {
        self.entries += 1;
        self.records += records;
        self.bytes += bytes;
        if refused {
            self.refused += 1;
        }
    }
}

/// One recipient flow: who received what through which processor, in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub direction: Direction,
    pub app: String,
    pub purpose: String,
    pub upstream: String,
    pub processor: String,
    pub jurisdiction: String,
    pub cross_border: bool,
    pub mechanism: String,
    pub mechanism_ref: Option<String>,
    pub categories: Vec<String>,
    #[serde(flatten)]
    pub sums: Sums,
    pub first: String,
    pub last: String,
}

/// One category: records of entries that carried it, per direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryFacts {
    pub category: String,
    /// `art9`, `art10` or null.
    pub special: Option<&'static str>,
    pub entries: u64,
    pub records_to_processor: u64,
    pub records_from_processor: u64,
}

/// How much of what flowed left Zweck changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Minimisation {
    /// Field values per action (`keep`, `drop`, `pseudonymise`, `generalise`, ...), summed
    /// over the entries.
    pub fields_by_action: BTreeMap<String, u64>,
    /// Entries with at least one pseudonymised value, and their records.
    pub entries_pseudonymised: u64,
    pub records_pseudonymised: u64,
    /// Entries with at least one generalised value, and their records.
    pub entries_generalised: u64,
    pub records_generalised: u64,
    /// Values left unchanged (`keep`) against those changed by a protective action.
    pub fields_kept: u64,
    pub fields_protected: u64,
}

/// The approximate number of data subjects, and how it was estimated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectsEstimate {
    pub approximate: bool,
    pub upper_bound: u64,
    pub method: &'static str,
}

/// What the estimate means, in the words every output uses.
pub const SUBJECTS_METHOD: &str = "upper bound: the records delivered in both directions (entries refused by Zweck carry none), counting each record as at most one data subject; a record fetched twice counts twice and a record may describe no natural person, so the true number is lower or equal";

/// Where the window came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
    /// `--since`, or the first incident entry (its seq).
    pub basis: String,
    #[serde(skip)]
    pub from_ms: i64,
    #[serde(skip)]
    pub to_ms: i64,
}

/// Everything `open` computes from the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub scope: Scope,
    pub window: Window,
    pub to_processor: Sums,
    pub from_processor: Sums,
    /// Records delivered in both directions.
    pub records_concerned: u64,
    pub data_subjects: SubjectsEstimate,
    pub flows: Vec<Flow>,
    pub categories: Vec<CategoryFacts>,
    /// Special categories (Art. 9/10) among them.
    pub special_categories: Vec<String>,
    /// Third countries the data went to or came from (`cross_border` entries).
    pub third_countries: Vec<String>,
    pub minimisation: Minimisation,
    pub detections: Vec<Detection>,
    pub containment: Vec<Containment>,
    /// Event entries of a kind this version does not read.
    pub other_events: u64,
    /// Transfer entries in the window for any app (for context: the share of the scope).
    pub all_entries_in_window: u64,
}

/// The key of a flow.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct FlowKey {
    direction: u8,
    app: String,
    purpose: String,
    upstream: String,
    processor: String,
    jurisdiction: String,
    cross_border: bool,
    mechanism: String,
    mechanism_ref: Option<String>,
}

/// A flow being summed: its sums, categories, first and last time.
struct FlowAcc {
    sums: Sums,
    categories: BTreeSet<String>,
    first: i64,
    last: i64,
}

/// The first `incident` entry for a scope: where a window without `--since` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The detection's `window_start`, or its `ts` when that is earlier.
    pub from_ms: i64,
    pub seq: u64,
    pub incident: String,
    pub rule: String,
}

/// Finds the first `incident` entry for the scope before `until`, reading the logs without
/// verifying them: only to know where the window starts before the verified pass counts.
/// That pass checks that this very entry is in the verified log ([`Facts::check_start`]).
pub fn first_detection(
    logs: &[std::path::PathBuf],
    scope: &Scope,
    until: Option<i64>,
) -> Result<Option<Start>, String> {
    const MARK: &[u8] = br#""kind":"incident""#;
    let mut best: Option<Start> = None;
    for log in logs {
        crate::audit::report::read_lines(log, &mut |line| {
            if !line.windows(MARK.len()).any(|w| w == MARK) {
                return;
            }
            let Ok(d) = serde_json::from_slice::<Detection>(line) else {
                return; // the verified pass says what is wrong with it
            };
            let Some(ts) = log_millis(&d.ts) else { return };
            if !scope.app_ok(&d.app)
                || !scope.purpose_ok(d.purpose.as_deref())
                || until.is_some_and(|u| ts >= u)
            {
                return;
            }
            let from_ms = d
                .window_start
                .as_deref()
                .and_then(log_millis)
                .map_or(ts, |w| w.min(ts));
            if best.as_ref().is_none_or(|b| from_ms < b.from_ms) {
                best = Some(Start {
                    from_ms,
                    seq: d.seq,
                    incident: d.incident,
                    rule: d.rule,
                });
            }
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(best)
}

/// Sums the verified lines of a known window as the verification hands them over.
pub struct Collector {
    scope: Scope,
    window: Window,
    flows: std::collections::HashMap<FlowKey, FlowAcc>,
    /// Per category: (transfers, records to processor, records from processor).
    categories: std::collections::HashMap<String, (u64, u64, u64)>,
    to_processor: Sums,
    from_processor: Sums,
    minimisation: Minimisation,
    all_entries_in_window: u64,
    detections: Vec<Detection>,
    containment: Vec<Containment>,
    other_events: u64,
    /// The first line that could not be read (as what it claims to be).
    bad: Option<String>,
}

impl Collector {
    pub fn new(scope: Scope, window: Window) -> Collector {
        Collector {
            scope,
            window,
            flows: Default::default(),
            categories: Default::default(),
            to_processor: Sums::default(),
            from_processor: Sums::default(),
            minimisation: Minimisation::default(),
            all_entries_in_window: 0,
            detections: Vec::new(),
            containment: Vec::new(),
            other_events: 0,
            bad: None,
        }
    }

    fn bad(&mut self, what: &str, why: impl std::fmt::Display) {
        self.bad.get_or_insert_with(|| format!("{what}: {why}"));
    }

    /// Events are listed from the start of the window on (a containment step after its end
    /// is still a measure taken).
    fn since_start(&self, ts: &str) -> bool {
        log_millis(ts).is_some_and(|t| t >= self.window.from_ms)
    }

    /// One verified line.
    pub fn add(&mut self, line: &[u8]) {
        let kind = match serde_json::from_slice::<Kind<'_>>(line) {
            Ok(k) => k.kind.map(std::borrow::Cow::into_owned),
            Err(e) => return self.bad("a line", format!("not a JSON object: {e}")),
        };
        match kind.as_deref() {
            None => self.transfer(line),
            Some("incident") => match serde_json::from_slice::<Detection>(line) {
                Ok(d) => {
                    if self.scope.app_ok(&d.app)
                        && self.scope.purpose_ok(d.purpose.as_deref())
                        && self.since_start(&d.ts)
                    {
                        self.detections.push(d);
                    }
                }
                Err(e) => self.bad("an incident entry", e),
            },
            Some("containment") => match serde_json::from_slice::<Containment>(line) {
                Ok(c) => {
                    if self.scope.app_ok(&c.app)
                        && self.scope.purpose_ok(c.purpose.as_deref())
                        && self.since_start(&c.ts)
                    {
                        self.containment.push(c);
                    }
                }
                Err(e) => self.bad("a containment entry", e),
            },
            Some(_) => self.other_events += 1,
        }
    }

    fn transfer(&mut self, line: &[u8]) {
        let l: TransferLine = match serde_json::from_slice(line) {
            Ok(l) => l,
            Err(e) => return self.bad("a transfer entry", e),
        };
        let Some(t) = log_millis(&l.ts) else {
            return self.bad("a transfer entry", "its ts is not a time");
        };
        if l.stage == Stage::Intent || t < self.window.from_ms || t >= self.window.to_ms {
            return;
        }
        self.all_entries_in_window += 1;
        if !self.scope.app_ok(&l.app)
            || !self.scope.purpose_ok(Some(&l.purpose))
            || !self.scope.categories_ok(&l.categories_delivered)
        {
            return;
        }
        let response = l.direction == Direction::Response;
        let refused = matches!(l.decision, Decision::Blocked | Decision::RateLimited);
        let mut sums = Sums::default();
        sums.add(l.records, l.bytes, refused);
        if response {
            self.from_processor.add(l.records, l.bytes, refused);
        } else {
            self.to_processor.add(l.records, l.bytes, refused);
        }
        for c in &l.categories_delivered {
            let e = self.categories.entry(c.clone()).or_default();
            e.0 += 1;
            if response {
                e.2 += l.records;
            } else {
                e.1 += l.records;
            }
        }
        let m = &mut self.minimisation;
        for (a, n) in &l.actions {
            if *n > 0 && PROTECTIVE_ACTIONS.contains(&a.as_str()) {
                *m.fields_by_action.entry(a.clone()).or_default() += n;
                m.fields_protected += n;
            }
        }
        let count = |a: &str| l.actions.get(a).copied().unwrap_or(0);
        m.fields_kept += count("keep");
        if count("pseudonymise") > 0 {
            m.entries_pseudonymised += 1;
            m.records_pseudonymised += l.records;
        }
        if count("generalise") > 0 {
            m.entries_generalised += 1;
            m.records_generalised += l.records;
        }
        let key = FlowKey {
            // what the processors delivered sorts first
            direction: u8::from(!response),
            app: l.app,
            purpose: l.purpose,
            upstream: l.upstream,
            processor: l.processor,
            jurisdiction: l.jurisdiction,
            cross_border: l.cross_border,
            mechanism: l.transfer_mechanism.kind,
            mechanism_ref: l.transfer_mechanism.reference,
        };
        let f = self.flows.entry(key).or_insert_with(|| FlowAcc {
            sums: Sums::default(),
            categories: BTreeSet::new(),
            first: t,
            last: t,
        });
        f.sums.add(l.records, l.bytes, refused);
        f.categories.extend(l.categories_delivered);
        f.first = f.first.min(t);
        f.last = f.last.max(t);
    }

    /// The facts, or why a line could not be read.
    pub fn finish(self) -> Result<Facts, String> {
        if let Some(bad) = &self.bad {
            return Err(format!("a line of the log cannot be read: {bad}"));
        }
        let mut m = self.minimisation;
        if m.fields_kept > 0 {
            m.fields_by_action.insert("keep".into(), m.fields_kept);
        }
        let mut flows: Vec<(FlowKey, FlowAcc)> = self.flows.into_iter().collect();
        flows.sort_by(|a, b| a.0.cmp(&b.0));
        let flows: Vec<Flow> = flows
            .into_iter()
            .map(|(k, f)| Flow {
                direction: if k.direction == 0 {
                    Direction::Response
                } else {
                    Direction::Request
                },
                app: k.app,
                purpose: k.purpose,
                upstream: k.upstream,
                processor: k.processor,
                jurisdiction: k.jurisdiction,
                cross_border: k.cross_border,
                mechanism: k.mechanism,
                mechanism_ref: k.mechanism_ref,
                categories: f.categories.into_iter().collect(),
                sums: f.sums,
                first: crate::audit::period::format_ms(f.first),
                last: crate::audit::period::format_ms(f.last),
            })
            .collect();
        let mut categories: Vec<CategoryFacts> = self
            .categories
            .into_iter()
            .map(|(category, (entries, to, from))| CategoryFacts {
                special: special(&category),
                category,
                entries,
                records_to_processor: to,
                records_from_processor: from,
            })
            .collect();
        categories.sort_by(|a, b| a.category.cmp(&b.category));
        let special_categories = categories
            .iter()
            .filter(|c| c.special.is_some())
            .map(|c| c.category.clone())
            .collect();
        let third_countries = sorted(
            flows
                .iter()
                .filter(|f| f.cross_border && f.sums.records > 0)
                .map(|f| f.jurisdiction.clone()),
        );
        let records_concerned = self.to_processor.records + self.from_processor.records;
        Ok(Facts {
            scope: self.scope,
            window: self.window,
            to_processor: self.to_processor,
            from_processor: self.from_processor,
            records_concerned,
            data_subjects: SubjectsEstimate {
                approximate: true,
                upper_bound: records_concerned,
                method: SUBJECTS_METHOD,
            },
            flows,
            categories,
            special_categories,
            third_countries,
            minimisation: m,
            detections: self.detections,
            containment: self.containment,
            other_events: self.other_events,
            all_entries_in_window: self.all_entries_in_window,
        })
    }
}

impl Facts {
    /// The window's start came from `start`, found in an unverified read: that entry must be
    /// among the verified detections.
    pub fn check_start(&self, start: &Start) -> Result<(), String> {
        if self
            .detections
            .iter()
            .any(|d| d.seq == start.seq && d.incident == start.incident)
        {
            Ok(())
        } else {
            Err(format!(
                "the incident entry the window starts at (seq {}) is not in the verified log: the log changed while it was read; run the command again",
                start.seq
            ))
        }
    }
}

fn sorted(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = it.collect();
    v.sort();
    v.dedup();
    v
}

impl Window {
    /// `[from_ms, to_ms)` and where its start came from.
    pub fn new(from_ms: i64, to_ms: i64, basis: String) -> Window {
        Window {
            from: crate::audit::period::format_ms(from_ms),
            to: crate::audit::period::format_ms(to_ms),
            basis,
            from_ms,
            to_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_cover_their_children_and_specials_are_named() {
        assert!(covers("user.contact", "user.contact.email"));
        assert!(!covers("user.contact", "user.contacts"));
        assert_eq!(special("user.health_and_medical"), Some("art9"));
        assert_eq!(special("user.health_and_medical.insurance"), Some("art9"));
        assert_eq!(special("user.criminal_history"), Some("art10"));
        assert_eq!(special("user.contact.email"), None);
    }

    #[test]
    fn unknown_event_kinds_are_counted_not_fatal_and_garbage_is_said() {
        let window = || Window::new(0, 4_102_444_800_000, "--since".into());
        let mut c = Collector::new(Scope::default(), window());
        c.add(
            br#"{"seq":0,"ts":"2026-12-01T00:00:00.000Z","prev":"00","kind":"future_thing","x":1}"#,
        );
        let f = c.finish().expect("facts");
        assert_eq!(f.other_events, 1);
        let mut c = Collector::new(Scope::default(), window());
        c.add(br#"{"seq":0,"ts":"2026-12-01T00:00:00.000Z","prev":"00","kind":"incident"}"#);
        assert!(c.finish().is_err());
        let mut c = Collector::new(Scope::default(), window());
        c.add(b"[1,2]");
        assert!(c.finish().unwrap_err().contains("not a JSON object"));
    }
}
