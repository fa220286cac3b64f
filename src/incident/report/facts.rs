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
//! there). The log is verified and read once; matching transfers are kept in compact form
//! until the window is known.

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
    fn add(&mut self, t: &Compact) {
        self.entries += 1;
        self.records += t.records;
        self.bytes += t.bytes;
        if t.refused {
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

/// A transfer kept until the window is known: names interned.
struct Compact {
    t: i64,
    group: u32,
    records: u64,
    bytes: u64,
    refused: bool,
    cats: Vec<u32>,
    protective: Vec<(u32, u64)>,
    kept: u64,
    pseudonymised: bool,
    generalised: bool,
}

/// The key of a flow, interned.
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

/// Reads lines as the verification hands them over.
#[derive(Default)]
pub struct Collector {
    scope: Scope,
    since: Option<i64>,
    until: Option<i64>,
    names: Vec<String>,
    ids: std::collections::HashMap<String, u32>,
    groups: Vec<FlowKey>,
    group_ids: std::collections::HashMap<FlowKey, u32>,
    kept: Vec<Compact>,
    /// The time of every transfer in `since..until`, in scope or not (the scope's share).
    all: Vec<i64>,
    detections: Vec<Detection>,
    containment: Vec<Containment>,
    other_events: u64,
    /// The first line that could not be read (as what it claims to be).
    pub bad: Option<String>,
}

impl Collector {
    /// `since`/`until` in ms (`until` exclusive), when given.
    pub fn new(scope: Scope, since: Option<i64>, until: Option<i64>) -> Collector {
        Collector {
            scope,
            since,
            until,
            ..Collector::default()
        }
    }

    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }

    fn bad(&mut self, seq_hint: &str, why: impl std::fmt::Display) {
        self.bad.get_or_insert_with(|| format!("{seq_hint}: {why}"));
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
                    if self.scope.app_ok(&d.app) && self.scope.purpose_ok(d.purpose.as_deref()) {
                        self.detections.push(d);
                    }
                }
                Err(e) => self.bad("an incident entry", e),
            },
            Some("containment") => match serde_json::from_slice::<Containment>(line) {
                Ok(c) => {
                    if self.scope.app_ok(&c.app) && self.scope.purpose_ok(c.purpose.as_deref()) {
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
        if l.stage == Stage::Intent {
            return;
        }
        if self.until.is_some_and(|u| t >= u) || self.since.is_some_and(|s| t < s) {
            return;
        }
        self.all.push(t);
        if !self.scope.app_ok(&l.app)
            || !self.scope.purpose_ok(Some(&l.purpose))
            || !self.scope.categories_ok(&l.categories_delivered)
        {
            return;
        }
        let key = FlowKey {
            direction: u8::from(l.direction == Direction::Response),
            app: l.app,
            purpose: l.purpose,
            upstream: l.upstream,
            processor: l.processor,
            jurisdiction: l.jurisdiction,
            cross_border: l.cross_border,
            mechanism: l.transfer_mechanism.kind,
            mechanism_ref: l.transfer_mechanism.reference,
        };
        let group = match self.group_ids.get(&key) {
            Some(g) => *g,
            None => {
                let g = self.groups.len() as u32;
                self.groups.push(key.clone());
                self.group_ids.insert(key, g);
                g
            }
        };
        let cats = l.categories_delivered.iter().map(|c| self.id(c)).collect();
        let protective = l
            .actions
            .iter()
            .filter(|(a, n)| **n > 0 && PROTECTIVE_ACTIONS.contains(&a.as_str()))
            .map(|(a, n)| (self.id(a), *n))
            .collect::<Vec<_>>();
        let count = |a: &str| l.actions.get(a).copied().unwrap_or(0);
        self.kept.push(Compact {
            t,
            group,
            records: l.records,
            bytes: l.bytes,
            refused: matches!(l.decision, Decision::Blocked | Decision::RateLimited),
            cats,
            protective,
            kept: count("keep"),
            pseudonymised: count("pseudonymise") > 0,
            generalised: count("generalise") > 0,
        });
    }

    /// The window: `[since or the first detection's start, until or now)`. `Err` when there
    /// is no `--since` and no detection to start from.
    fn window(&self, now_ms: i64) -> Result<Window, String> {
        let to_ms = self.until.unwrap_or(now_ms + 1);
        if let Some(from) = self.since {
            return Ok(window(from, to_ms, "--since".into()));
        }
        let first = self
            .detections
            .iter()
            .filter_map(|d| {
                let ts = log_millis(&d.ts)?;
                let start = d
                    .window_start
                    .as_deref()
                    .and_then(log_millis)
                    .map_or(ts, |w| w.min(ts));
                Some((start, d))
            })
            .min_by_key(|(start, d)| (*start, d.seq));
        match first {
            Some((from, d)) => Ok(window(
                from,
                to_ms,
                format!(
                    "the first incident entry for this scope: seq {} ({}, rule {}), from its window_start",
                    d.seq, d.incident, d.rule
                ),
            )),
            None => Err("no incident entry in the log matches this app and purpose, so the window has no start: give --since".into()),
        }
    }

    /// The facts for the window. `now_ms` ends a window without `--until`.
    pub fn finish(self, now_ms: i64) -> Result<Facts, String> {
        if let Some(bad) = &self.bad {
            return Err(format!("a line of the log cannot be read: {bad}"));
        }
        let window = self.window(now_ms)?;
        let inside = |t: i64| t >= window.from_ms && t < window.to_ms;
        let mut flows: BTreeMap<u32, (Sums, BTreeSet<u32>, i64, i64)> = BTreeMap::new();
        let mut cats: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        let mut to_processor = Sums::default();
        let mut from_processor = Sums::default();
        let mut m = Minimisation::default();
        for c in self.kept.iter().filter(|c| inside(c.t)) {
            let key = &self.groups[c.group as usize];
            let response = key.direction == 1;
            if response {
                from_processor.add(c);
            } else {
                to_processor.add(c);
            }
            let f = flows
                .entry(c.group)
                .or_insert((Sums::default(), BTreeSet::new(), c.t, c.t));
            f.0.add(c);
            f.1.extend(c.cats.iter().copied());
            f.2 = f.2.min(c.t);
            f.3 = f.3.max(c.t);
            for cat in &c.cats {
                let e = cats.entry(*cat).or_default();
                e.0 += 1;
                if response {
                    e.2 += c.records;
                } else {
                    e.1 += c.records;
                }
            }
            for (a, n) in &c.protective {
                *m.fields_by_action
                    .entry(self.names[*a as usize].clone())
                    .or_default() += n;
                m.fields_protected += n;
            }
            m.fields_kept += c.kept;
            if c.pseudonymised {
                m.entries_pseudonymised += 1;
                m.records_pseudonymised += c.records;
            }
            if c.generalised {
                m.entries_generalised += 1;
                m.records_generalised += c.records;
            }
        }
        if m.fields_kept > 0 {
            m.fields_by_action.insert("keep".into(), m.fields_kept);
        }
        let name = |id: u32| self.names[id as usize].clone();
        let flows: Vec<Flow> = flows
            .into_iter()
            .map(|(g, (sums, cs, first, last))| {
                let k = &self.groups[g as usize];
                Flow {
                    direction: if k.direction == 1 {
                        Direction::Response
                    } else {
                        Direction::Request
                    },
                    app: k.app.clone(),
                    purpose: k.purpose.clone(),
                    upstream: k.upstream.clone(),
                    processor: k.processor.clone(),
                    jurisdiction: k.jurisdiction.clone(),
                    cross_border: k.cross_border,
                    mechanism: k.mechanism.clone(),
                    mechanism_ref: k.mechanism_ref.clone(),
                    categories: sorted(cs.into_iter().map(name)),
                    sums,
                    first: crate::audit::period::format_ms(first),
                    last: crate::audit::period::format_ms(last),
                }
            })
            .collect();
        let mut categories: Vec<CategoryFacts> = cats
            .into_iter()
            .map(|(id, (entries, to, from))| {
                let category = name(id);
                CategoryFacts {
                    special: special(&category),
                    category,
                    entries,
                    records_to_processor: to,
                    records_from_processor: from,
                }
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
                .map(|f| f.jurisdiction.clone())
                .collect::<BTreeSet<_>>()
                .into_iter(),
        );
        let records_concerned = to_processor.records + from_processor.records;
        let from_ms = window.from_ms;
        let detections = self
            .detections
            .into_iter()
            .filter(|d| log_millis(&d.ts).is_some_and(|t| t >= from_ms))
            .collect();
        let containment = self
            .containment
            .into_iter()
            .filter(|c| log_millis(&c.ts).is_some_and(|t| t >= from_ms))
            .collect();
        let all_entries_in_window = self.all.iter().filter(|t| inside(**t)).count() as u64;
        Ok(Facts {
            scope: self.scope,
            window,
            to_processor,
            from_processor,
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
            detections,
            containment,
            other_events: self.other_events,
            all_entries_in_window,
        })
    }
}

fn sorted(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = it.collect();
    v.sort();
    v.dedup();
    v
}

fn window(from_ms: i64, to_ms: i64, basis: String) -> Window {
    Window {
        from: crate::audit::period::format_ms(from_ms),
        to: crate::audit::period::format_ms(to_ms),
        basis,
        from_ms,
        to_ms,
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
        let mut c = Collector::new(Scope::default(), Some(0), None);
        c.add(
            br#"{"seq":0,"ts":"2026-12-01T00:00:00.000Z","prev":"00","kind":"future_thing","x":1}"#,
        );
        let f = c.finish(1_900_000_000_000).expect("facts");
        assert_eq!(f.other_events, 1);
        let mut c = Collector::new(Scope::default(), Some(0), None);
        c.add(br#"{"seq":0,"ts":"2026-12-01T00:00:00.000Z","prev":"00","kind":"incident"}"#);
        assert!(c.finish(0).is_err());
        let c = Collector::new(Scope::default(), None, None);
        assert!(c.finish(0).unwrap_err().contains("--since"));
    }
}
