//! What a candidate policy would do differently from the active one on the same exchange:
//! the pure half of live shadow comparison (`crate::shadow` counts it on real traffic).
//!
//! Both sets decide the same parsed body with tracing on; the traces are compared field by
//! field. A field is named by the inventory entry that classified it (`Contact $.Email`), or
//! by its template path when no entry did (unclassified values, removed records): names
//! from the policy files, never values. Per field, values visited in the same order are
//! paired (both sets walk the same document); a value the candidate would deliver where the
//! active set removes it is *exposed*, the reverse *hidden*, and a value both deliver under
//! different actions (`keep` -> `mask`) *changed*.

use std::collections::BTreeMap;

use super::decide::{self, Bodies, Exchange, Verdict};
use super::engine::FieldDecision;
use super::{PolicySet, PseudonymKey};

/// How one field's values differ, in values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FieldDelta {
    pub exposed: u64,
    pub hidden: u64,
    pub changed: u64,
}

impl FieldDelta {
    fn is_empty(&self) -> bool {
        *self == FieldDelta::default()
    }
}

/// How a whole exchange's decision differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeDelta {
    /// The candidate refuses what the active set lets through (all of it hidden).
    WouldRefuse,
    /// The candidate lets through what the active set refuses.
    WouldAllow,
}

impl ExchangeDelta {
    pub fn name(self) -> &'static str {
        match self {
            ExchangeDelta::WouldRefuse => "would_refuse",
            ExchangeDelta::WouldAllow => "would_allow",
        }
    }
}

/// Whether a value leaves Zweck (in any form) under an action.
fn delivered(action: &str) -> bool {
    !matches!(action, "drop" | "redact" | "block" | "record_removed")
}

fn by_field(trace: &[FieldDecision]) -> BTreeMap<&str, Vec<&str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in trace {
        let name = d.field.as_deref().unwrap_or(d.path.as_str());
        out.entry(name).or_default().push(d.action.as_str());
    }
    out
}

/// The fields whose values the candidate treats differently (fields without a difference
/// are left out).
pub fn compare_traces(
    active: &[FieldDecision],
    candidate: &[FieldDecision],
) -> BTreeMap<String, FieldDelta> {
    let (a, c) = (by_field(active), by_field(candidate));
    let mut out = BTreeMap::new();
    let names = a
        .keys()
        .chain(c.keys())
        .copied()
        .collect::<std::collections::BTreeSet<_>>();
    for name in names {
        let (xs, ys) = (
            a.get(name).map(Vec::as_slice).unwrap_or_default(),
            c.get(name).map(Vec::as_slice).unwrap_or_default(),
        );
        let mut delta = FieldDelta::default();
        for i in 0..xs.len().max(ys.len()) {
            match (xs.get(i).copied(), ys.get(i).copied()) {
                (Some(x), Some(y)) => match (delivered(x), delivered(y)) {
                    (false, true) => delta.exposed += 1,
                    (true, false) => delta.hidden += 1,
                    (true, true) if x != y => delta.changed += 1,
                    _ => {}
                },
                (None, Some(y)) if delivered(y) => delta.exposed += 1,
                (Some(x), None) if delivered(x) => delta.hidden += 1,
                _ => {}
            }
        }
        if !delta.is_empty() {
            out.insert(name.to_string(), delta);
        }
    }
    out
}

/// What the candidate decides on an exchange the active set decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub exchange: Option<ExchangeDelta>,
    pub fields: BTreeMap<String, FieldDelta>,
}

/// The candidate's decision on an exchange (route, query minimisation, writes, and the
/// response body when there is one: an untouched copy of what the CRM answered), compared
/// with the active set's: whether it was allowed, and the active trace of the body.
pub fn compare_exchange(
    candidate: &PolicySet,
    purpose: &str,
    ex: &Exchange<'_>,
    response: Option<&mut serde_json::Value>,
    key: Option<&PseudonymKey>,
    active: Result<&[FieldDecision], ()>,
) -> Comparison {
    let verdict = candidate.purpose(purpose).map(|p| {
        decide::exchange(
            candidate,
            p,
            ex,
            Bodies {
                request: None,
                response,
            },
            key,
            true,
        )
    });
    let candidate_trace: Result<Vec<FieldDecision>, ()> = match verdict {
        // a purpose the candidate no longer defines refuses everything
        None | Some(Verdict::Unknown) => Err(()),
        Some(Verdict::Ungoverned { .. } | Verdict::Metadata { .. }) => Ok(Vec::new()),
        Some(Verdict::Governed(g)) => match g.result {
            Ok(o) if o.shadow_refusal.is_none() => Ok(g.trace),
            Ok(_) | Err(_) => Err(()),
        },
    };
    match (active, candidate_trace) {
        (Ok(a), Ok(c)) => Comparison {
            exchange: None,
            fields: compare_traces(a, &c),
        },
        (Ok(_), Err(())) => Comparison {
            exchange: Some(ExchangeDelta::WouldRefuse),
            ..Comparison::default()
        },
        (Err(()), Ok(_)) => Comparison {
            exchange: Some(ExchangeDelta::WouldAllow),
            ..Comparison::default()
        },
        (Err(()), Err(())) => Comparison::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(field: &str, action: &str) -> FieldDecision {
        FieldDecision {
            path: format!("$.records[*].{field}"),
            field: Some(format!("Contact $.{field}").into()),
            category: String::new(),
            rule: String::new(),
            action: action.into(),
        }
    }

    #[test]
    fn values_are_paired_per_field_and_classed_by_what_leaves() {
        let active = [
            d("Email", "drop"),
            d("Email", "drop"),
            d("Phone", "keep"),
            d("Name", "keep"),
        ];
        let candidate = [
            d("Email", "keep"),
            d("Email", "drop"),
            d("Phone", "mask"),
            d("Name", "keep"),
        ];
        let delta = compare_traces(&active, &candidate);
        assert_eq!(
            delta,
            BTreeMap::from([
                (
                    "Contact $.Email".to_string(),
                    FieldDelta {
                        exposed: 1,
                        hidden: 0,
                        changed: 0
                    }
                ),
                (
                    "Contact $.Phone".to_string(),
                    FieldDelta {
                        exposed: 0,
                        hidden: 0,
                        changed: 1
                    }
                ),
            ])
        );
        let back = compare_traces(&candidate, &active);
        assert_eq!(back["Contact $.Email"].hidden, 1);
        assert!(
            compare_traces(&active, &active).is_empty(),
            "the same set differs nowhere"
        );
    }

    #[test]
    fn values_only_one_side_visits_count_when_they_would_leave() {
        let active = [d("Email", "keep"), d("Email", "keep")];
        let candidate = [d("Email", "keep")];
        assert_eq!(
            compare_traces(&active, &candidate)["Contact $.Email"].hidden,
            1
        );
        assert_eq!(
            compare_traces(&candidate, &active)["Contact $.Email"].exposed,
            1
        );
        let removed = [FieldDecision {
            path: "$.records[*]".into(),
            field: None,
            category: String::new(),
            rule: "consent.email".into(),
            action: "record_removed".into(),
        }];
        assert!(
            compare_traces(&[], &removed).is_empty(),
            "a removal exposes nothing"
        );
    }
}
