//! Event entries: what happened to the flows rather than one flow, in the same chain as the
//! transfer records (docs/transfer-log.md §2.2).
//!
//! Why in the transfer log and not a side file: an incident and the steps taken to contain it
//! are facts an Art. 33 notification must state with their times, and they belong to the same
//! tamper-evident sequence as the transfers they are about. An auditor who verifies the chain
//! verifies them too, and `seq` orders "the export, the detection, the block" without trusting
//! any clock but the writer's.
//!
//! The shape: the writer's `seq`, `ts`, `prev`, then `kind` (`incident` or `containment`),
//! then the members below in declaration order. Transfer records have no `kind` member, so a
//! reader tells the two apart by its presence ([`is_event`]). Like transfer records, event
//! entries hold names, counts and times only, never a value.

use serde::{Deserialize, Serialize};

/// Which rule raised an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Records per window above `volume_factor` x the learned baseline.
    Volume,
    /// A category never before delivered to the app.
    NewCategory,
    /// A processor never before seen for the app.
    NewProcessor,
    /// A processor country never before seen for the app.
    NewCountry,
    /// Refusals per window at or above `refusal_threshold` (probing).
    RefusalSurge,
    /// A bulk export outside the declared export hours.
    OffHours,
}

impl Rule {
    /// Every rule, in the order docs and metrics list them.
    pub const ALL: [Rule; 6] = [
        Rule::Volume,
        Rule::NewCategory,
        Rule::NewProcessor,
        Rule::NewCountry,
        Rule::RefusalSurge,
        Rule::OffHours,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Volume => "volume",
            Rule::NewCategory => "new_category",
            Rule::NewProcessor => "new_processor",
            Rule::NewCountry => "new_country",
            Rule::RefusalSurge => "refusal_surge",
            Rule::OffHours => "off_hours",
        }
    }

    /// The index of the rule in [`Rule::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a purpose asks Zweck to do when an incident is raised for it (`on_anomaly`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAnomaly {
    /// Record and alert only.
    #[default]
    Alert,
    /// Close the purpose's bulk class for the app and shrink its budget until cleared.
    Throttle,
    /// Refuse every request of the app for the purpose until cleared.
    Block,
}

impl OnAnomaly {
    pub fn as_str(self) -> &'static str {
        match self {
            OnAnomaly::Alert => "alert",
            OnAnomaly::Throttle => "throttle",
            OnAnomaly::Block => "block",
        }
    }
}

/// The `kind` member of an event entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Incident,
    Containment,
}

/// An `incident` entry. `incident` is `inc-<seq>`: the entry's own position, so the id names
/// where to find it (the writer fills it in, see [`super::AuditLog::append_event`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEntry {
    pub kind: Kind,
    pub incident: String,
    pub rule: Rule,
    pub app: String,
    pub purpose: String,
    /// The upstream of the observation that raised it (`null` for a rule over a window of
    /// several upstreams).
    pub upstream: Option<String>,
    pub processor: Option<String>,
    pub jurisdiction: Option<String>,
    /// Categories concerned: the new ones for `new_category`, those delivered in the window
    /// for `volume` and `off_hours`; empty for `refusal_surge`.
    pub categories: Vec<String>,
    /// The window the rule counted, RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`).
    pub window_start: String,
    pub window_end: String,
    /// Records (or refusals, for `refusal_surge`) counted in the window so far.
    pub observed: u64,
    /// The learned records per window (`volume` only), rounded to an integer.
    pub baseline: Option<u64>,
    /// What `observed` had to exceed (`volume`) or reach (`refusal_surge`).
    pub threshold: Option<u64>,
    pub on_anomaly: OnAnomaly,
}

/// A containment step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Throttle,
    Block,
    Revoke,
    Clear,
    Reinstate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Throttle => "throttle",
            Action::Block => "block",
            Action::Revoke => "revoke",
            Action::Clear => "clear",
            Action::Reinstate => "reinstate",
        }
    }
}

/// Who took a containment step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The detector, following the purpose's `on_anomaly`.
    Detector,
    /// An operator through an admin endpoint.
    Admin,
    /// An operator through `zweck apps ...` (revoke, reinstate, contain, clear).
    Cli,
}

/// A `containment` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainmentEntry {
    pub kind: Kind,
    pub action: Action,
    pub app: String,
    /// `null` for a step on the whole app (revoke, reinstate).
    pub purpose: Option<String>,
    /// The incident that led to it, if any.
    pub incident: Option<String>,
    pub by: By,
    /// A slug or short operator text (never a value).
    pub reason: String,
}

/// An event entry as the writer encodes it: the body without `seq`/`ts`/`prev`, made once
/// the entry's `seq` is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Incident(IncidentEntry),
    Containment(ContainmentEntry),
}

impl Event {
    /// The entry's encoding for position `seq`: an incident's id becomes `inc-<seq>`.
    pub fn encode(mut self, seq: u64) -> Result<Vec<u8>, serde_json::Error> {
        match &mut self {
            Event::Incident(i) => {
                i.incident = incident_id(seq);
                serde_json::to_vec(i)
            }
            Event::Containment(c) => serde_json::to_vec(c),
        }
    }
}

/// The id of the incident entry at `seq`.
pub fn incident_id(seq: u64) -> String {
    format!("inc-{seq}")
}

/// An event entry as read back: the chain members and the entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Logged<T> {
    pub seq: u64,
    pub ts: String,
    #[serde(flatten)]
    pub entry: T,
}

#[derive(Deserialize)]
struct KindOnly {
    kind: Kind,
}

/// The kind of an event entry (`None` for a transfer record or anything else).
pub fn event_kind(line: &[u8]) -> Option<Kind> {
    serde_json::from_slice::<KindOnly>(line)
        .ok()
        .map(|k| k.kind)
}

/// Whether a line is an event entry (it has a known `kind`), for readers that count
/// transfers and must skip these. Only called on lines that did not read as a transfer
/// record, so transfer lines pay nothing for it.
pub fn is_event(line: &[u8]) -> bool {
    event_kind(line).is_some()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn incident() -> IncidentEntry {
        IncidentEntry {
            kind: Kind::Incident,
            incident: String::new(),
            rule: Rule::Volume,
            app: "newsletter-tool".into(),
            purpose: "newsletter".into(),
            upstream: Some("salesforce".into()),
            processor: Some("Salesforce, Inc.".into()),
            jurisdiction: Some("US".into()),
            categories: vec!["user.contact.email".into()],
            window_start: "2026-12-07T08:00:00Z".into(),
            window_end: "2026-12-07T08:01:00Z".into(),
            observed: 5000,
            baseline: Some(40),
            threshold: Some(400),
            on_anomaly: OnAnomaly::Block,
        }
    }

    #[test]
    fn an_incident_line_has_kind_after_prev_and_its_own_seq_as_id() {
        let body = Event::Incident(incident()).encode(12).expect("encode");
        let line = super::super::record::line(12, "t", &[0; 32], &body);
        let text = String::from_utf8(line).expect("utf8");
        assert!(
            text.contains(r#""prev":"0000000000000000000000000000000000000000000000000000000000000000","kind":"incident","incident":"inc-12","rule":"volume","#),
            "{text}"
        );
        assert!(text.ends_with(r#""baseline":40,"threshold":400,"on_anomaly":"block"}"#));
        assert!(is_event(text.as_bytes()));
        let back: Logged<IncidentEntry> = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back.seq, 12);
        assert_eq!(back.entry.incident, "inc-12");
    }

    #[test]
    fn a_containment_line_reads_back_and_transfer_lines_are_not_events() {
        let c = ContainmentEntry {
            kind: Kind::Containment,
            action: Action::Revoke,
            app: "a".into(),
            purpose: None,
            incident: None,
            by: By::Admin,
            reason: "key-leaked".into(),
        };
        let body = Event::Containment(c.clone()).encode(3).expect("encode");
        let text =
            String::from_utf8(super::super::record::line(3, "t", &[0; 32], &body)).expect("utf8");
        assert!(text.contains(r#","kind":"containment","action":"revoke","app":"a","purpose":null,"incident":null,"by":"admin","reason":"key-leaked"}"#), "{text}");
        let back: Logged<ContainmentEntry> = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back.entry, c);
        let transfer = serde_json::to_vec(&super::super::record::tests::sample()).expect("enc");
        let line = super::super::record::line(0, "t", &[0; 32], &transfer);
        assert!(!is_event(&line));
        assert!(!is_event(br#"{"kind":"something-else"}"#));
    }
}
