//! Runtime drift: fields Zweck sees on governed routes that the inventory does not classify.
//!
//! The engine drops such fields (default deny) and reports their names
//! ([`crate::policy::engine::UnknownField`]); this counts them per upstream, resource and
//! field path, never a value, for `zweck_unclassified_fields_total` on /metrics, the admin
//! listener's `/drift` JSON and `zweck inventory drift` (a YAML patch to review). A CRM whose
//! org grows a field shows up here before anyone asks why the field never arrives.
//!
//! Cardinality is bounded: at most [`MAX_SERIES`] distinct (upstream, resource, field)
//! series; fields beyond that are counted in `zweck_unclassified_fields_overflow_total` only.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::policy::engine::UnknownField;

/// Distinct series kept (and exported) at most.
pub const MAX_SERIES: usize = 1000;

/// The field label of a key that does not look like a field name: some bodies use data as
/// keys (a map keyed by e-mail address or phone number), and a metric label must never carry
/// a value, so such keys are counted under this one label instead.
pub const NOT_A_FIELD_NAME: &str = "$.<key that looks like data>";

/// Whether a field path can be shown as it is: CRM field names (`New_Field__c`,
/// `hs_new_one`, `cr123_x`, OData annotations such as `x@OData.Community.Display.V1.FormattedValue`)
/// are short runs of letters, digits, `_`, `-` and `.`; an e-mail address, a phone number or
/// free text used as a key is not.
fn looks_like_field_path(path: &str) -> bool {
    const MAX_LEN: usize = 200;
    const MAX_DIGIT_RUN: usize = 5;
    if path.len() > MAX_LEN {
        return false;
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '$' | '.' | '_' | '-' | '[' | ']' | '*' | '@')
    };
    if !path.chars().all(allowed) {
        return false;
    }
    let mut run = 0;
    for c in path.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run > MAX_DIGIT_RUN {
            return false;
        }
    }
    // `@` only as an OData annotation (`@odata.etag`, `x@OData.Community...`,
    // `x@Microsoft.Dynamics.CRM.lookuplogicalname`), never as in an e-mail address
    path.split('@').skip(1).all(|after| {
        let lower = after.to_ascii_lowercase();
        lower.starts_with("odata.") || lower.starts_with("microsoft.dynamics.crm.")
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    upstream: Arc<str>,
    resource: String,
    field: String,
}

/// One series of the JSON view.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Seen {
    pub upstream: String,
    pub resource: String,
    pub field: String,
    pub count: u64,
}

/// The admin listener's `/drift` answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub max_series: usize,
    /// Fields not counted per series because the cap was reached.
    pub overflow: u64,
    pub fields: Vec<Seen>,
}

/// (upstream, resource, field path).
type SeriesKey = (Arc<str>, String, String);

/// The counters.
pub struct Drift {
    family: Family<Labels, Counter>,
    overflow: Counter<u64, AtomicU64>,
    /// The series and their counts, for the JSON view (the family has no reader).
    seen: Mutex<BTreeMap<SeriesKey, u64>>,
}

impl Drift {
    /// Registers the metrics with `registry`.
    pub fn register(registry: &mut Registry) -> Drift {
        let family = Family::<Labels, Counter>::default();
        registry.register(
            "unclassified_fields",
            "Fields seen on governed routes that the inventory does not classify (dropped), by upstream, resource and field path",
            family.clone(),
        );
        let overflow = Counter::default();
        registry.register(
            "unclassified_fields_overflow",
            "Unclassified fields not counted per field because the series cap was reached",
            overflow.clone(),
        );
        Drift {
            family,
            overflow,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts the unknown fields of one governed body.
    pub fn record(&self, upstream: &Arc<str>, fields: &[UnknownField]) {
        if fields.is_empty() {
            return;
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in fields {
            let path = if looks_like_field_path(&f.path) {
                f.path.clone()
            } else {
                NOT_A_FIELD_NAME.to_string()
            };
            let key = (upstream.clone(), f.resource.clone(), path.clone());
            if !seen.contains_key(&key) && seen.len() >= MAX_SERIES {
                self.overflow.inc();
                continue;
            }
            *seen.entry(key).or_insert(0) += 1;
            self.family
                .get_or_create(&Labels {
                    upstream: upstream.clone(),
                    resource: f.resource.clone(),
                    field: path,
                })
                .inc();
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Snapshot {
            max_series: MAX_SERIES,
            overflow: self.overflow.get(),
            fields: seen
                .iter()
                .map(|((u, r, f), n)| Seen {
                    upstream: u.to_string(),
                    resource: r.clone(),
                    field: f.clone(),
                    count: *n,
                })
                .collect(),
        }
    }
}

/// The YAML patch `zweck inventory drift` prints: per upstream, the resources and their
/// unseen fields as `unclassified  # review` lines, ready to paste under `fields:`.
pub fn patch(snapshot: &Snapshot) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if snapshot.fields.is_empty() {
        out.push_str("# no unclassified fields seen since start\n");
        return out;
    }
    let mut by: BTreeMap<(&str, &str), Vec<&Seen>> = BTreeMap::new();
    for s in &snapshot.fields {
        by.entry((&s.upstream, &s.resource)).or_default().push(s);
    }
    let mut upstream = "";
    for ((u, r), fields) in by {
        if u != upstream {
            let _ = writeln!(
                out,
                "# upstream {u}: fields seen on governed routes that the inventory does not\n\
                 # classify (dropped until classified). Paste under each resource's `fields:`\n\
                 # in its dialect's inventory, classify, `zweck policy check`.\nresources:"
            );
            upstream = u;
        }
        let (data_keys, fields): (Vec<&Seen>, Vec<&Seen>) = fields
            .into_iter()
            .partition(|s| s.field == NOT_A_FIELD_NAME);
        let _ = writeln!(out, "  {r}:\n    fields:");
        if let Some(n) = data_keys.first().map(|s| s.count) {
            let _ = writeln!(
                out,
                "      # {n} key(s) that look like data (an e-mail address, a number, text used as a key): not named here; check the resource's shape"
            );
        }
        for s in fields {
            let _ = writeln!(
                out,
                "      {}: unclassified  # review: seen {} time(s)",
                yaml_key(&s.field),
                s.count
            );
        }
    }
    if snapshot.overflow > 0 {
        let _ = writeln!(
            out,
            "# {} more field sightings were not itemised (more than {} distinct fields)",
            snapshot.overflow, snapshot.max_series
        );
    }
    out
}

fn yaml_key(path: &str) -> String {
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '.' | '_' | '[' | ']' | '*'));
    if plain && !path.contains("..") {
        path.to_string()
    } else {
        serde_json::to_string(path).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(resource: &str, path: &str) -> UnknownField {
        UnknownField {
            resource: resource.into(),
            path: path.into(),
        }
    }

    #[test]
    fn counts_series_up_to_the_cap_then_overflow() {
        let mut registry = Registry::default();
        let d = Drift::register(&mut registry);
        let sf: Arc<str> = Arc::from("salesforce");
        d.record(
            &sf,
            &[field("Contact", "$.New__c"), field("Contact", "$.New__c")],
        );
        d.record(&sf, &[field("Contact", "$.New__c")]);
        let s = d.snapshot();
        assert_eq!(s.fields.len(), 1);
        assert_eq!(s.fields[0].count, 3);
        let many: Vec<UnknownField> = (0..MAX_SERIES + 5)
            .map(|i| field("Lead", &format!("$.F{i}__c")))
            .collect();
        d.record(&sf, &many);
        let s = d.snapshot();
        assert_eq!(s.fields.len(), MAX_SERIES);
        assert_eq!(s.overflow, 6);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains(
            "unclassified_fields_total{upstream=\"salesforce\",resource=\"Contact\",field=\"$.New__c\"} 3"
        ));
    }

    #[test]
    fn the_patch_lists_fields_per_resource_as_review_lines() {
        let s = Snapshot {
            max_series: MAX_SERIES,
            overflow: 0,
            fields: vec![Seen {
                upstream: "salesforce".into(),
                resource: "Contact".into(),
                field: "$.New__c".into(),
                count: 2,
            }],
        };
        let p = patch(&s);
        assert!(p.contains("resources:\n  Contact:\n    fields:\n      $.New__c: unclassified  # review: seen 2 time(s)\n"));
        let parsed: serde_json::Value = serde_saphyr::from_str(&p).expect("yaml");
        assert_eq!(
            parsed["resources"]["Contact"]["fields"]["$.New__c"],
            "unclassified"
        );
    }

    #[test]
    fn keys_that_look_like_data_never_become_labels() {
        let mut registry = Registry::default();
        let drift = Drift::register(&mut registry);
        let up: Arc<str> = Arc::from("crm");
        let data_keys = [
            "$.anna.fict@example.com",
            "$.properties.4915112345678",
            "$.Anna Fictitious",
            "$.x@example.org",
        ];
        let names = [
            "$.New_Field__c",
            "$.properties.hs_new_one",
            "$.cr123_x@OData.Community.Display.V1.FormattedValue",
            "$.@odata.etag",
            "$.Address_2__c",
        ];
        let all: Vec<UnknownField> = data_keys
            .iter()
            .chain(names.iter())
            .map(|p| field("Contact", p))
            .collect();
        drift.record(&up, &all);
        let snap = drift.snapshot();
        let shown: Vec<&str> = snap.fields.iter().map(|s| s.field.as_str()).collect();
        for name in names {
            assert!(shown.contains(&name), "{name} missing from {shown:?}");
        }
        let hidden = snap
            .fields
            .iter()
            .find(|s| s.field == NOT_A_FIELD_NAME)
            .map(|s| s.count);
        assert_eq!(hidden, Some(data_keys.len() as u64));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let patch = patch(&snap);
        for key in data_keys {
            let bare = key
                .trim_start_matches("$.")
                .trim_start_matches("properties.");
            assert!(!text.contains(bare), "{bare} in /metrics");
            assert!(!patch.contains(bare), "{bare} in the patch");
        }
    }
}
