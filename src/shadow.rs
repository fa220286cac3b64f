//! Live shadow comparison: a candidate policy directory (`policies: { candidate: DIR }`)
//! decides every governed exchange beside the active set, on real traffic, and changes
//! nothing on the wire. What it would do differently is counted per purpose x field (names
//! from the policy files and counts, never values) for `GET /shadow` on the admin listener
//! and the `zweck_shadow_*` metrics, so a team sees a change's real effect before switching.
//!
//! The candidate reloads like the active set (file watcher, SIGHUP) and keeps its last good
//! version when an edit breaks it; `/shadow` counts since the candidate version it names, the
//! metrics since start. Without a candidate, `State::shadow` is `None` and the hot path pays
//! one branch. With one, a buffered JSON response is decided twice more (the active set with
//! tracing, the candidate on a copy); list pages streamed past `limits.buffer_bytes`, Bulk
//! CSV results and `$batch`/composite tunnels are not compared and are counted as
//! `not_compared`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::policy::compare::{Comparison, ExchangeDelta, FieldDelta};
use crate::reload::Policies;

/// Labels of the per-field counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    purpose: String,
    field: String,
    change: &'static str,
}

/// Labels of the per-exchange counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    purpose: String,
    change: &'static str,
}

/// One purpose's differences since the candidate version was loaded.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PurposeCounts {
    /// Exchanges both sets decided.
    pub compared: u64,
    pub would_refuse: u64,
    pub would_allow: u64,
    /// Exchanges whose bodies the comparison does not see (streamed, CSV, tunnels).
    pub not_compared: u64,
    pub fields: BTreeMap<String, FieldDelta>,
}

/// What `GET /shadow` answers.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// The candidate version the counts are for.
    pub candidate_version: String,
    pub purposes: BTreeMap<String, PurposeCounts>,
}

/// The candidate set and what it would have done differently.
pub struct Shadow {
    pub candidate: Arc<Policies>,
    report: Mutex<Report>,
    fields: Family<FieldLabels, Counter>,
    exchanges: Family<ExchangeLabels, Counter>,
}

impl Shadow {
    pub fn new(candidate: Arc<Policies>) -> Shadow {
        Shadow {
            candidate,
            report: Mutex::new(Report::default()),
            fields: Family::default(),
            exchanges: Family::default(),
        }
    }

    /// Registers the `zweck_shadow_*` counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "shadow_field_values",
            "Values a candidate policy would treat differently from the active one, per purpose, field and change (exposed, hidden, changed)",
            self.fields.clone(),
        );
        registry.register(
            "shadow_exchanges",
            "Governed exchanges per purpose and how the candidate policy's decision differs (compared, would_refuse, would_allow, not_compared)",
            self.exchanges.clone(),
        );
    }

    fn with_purpose(&self, version: &str, purpose: &str, f: impl FnOnce(&mut PurposeCounts)) {
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if report.candidate_version != version {
            *report = Report {
                candidate_version: version.to_string(),
                purposes: BTreeMap::new(),
            };
        }
        f(report.purposes.entry(purpose.to_string()).or_default());
    }

    fn count_exchange(&self, purpose: &str, change: &'static str) {
        self.exchanges
            .get_or_create(&ExchangeLabels {
                purpose: purpose.to_string(),
                change,
            })
            .inc();
    }

    /// Counts one comparison made with candidate version `version`.
    pub fn record(&self, version: &str, purpose: &str, c: &Comparison) {
        self.count_exchange(purpose, "compared");
        if let Some(e) = c.exchange {
            self.count_exchange(purpose, e.name());
        }
        for (field, d) in &c.fields {
            for (change, n) in [
                ("exposed", d.exposed),
                ("hidden", d.hidden),
                ("changed", d.changed),
            ] {
                if n > 0 {
                    self.fields
                        .get_or_create(&FieldLabels {
                            purpose: purpose.to_string(),
                            field: field.clone(),
                            change,
                        })
                        .inc_by(n);
                }
            }
        }
        self.with_purpose(version, purpose, |p| {
            p.compared += 1;
            match c.exchange {
                Some(ExchangeDelta::WouldRefuse) => p.would_refuse += 1,
                Some(ExchangeDelta::WouldAllow) => p.would_allow += 1,
                None => {}
            }
            for (field, d) in &c.fields {
                let f = p.fields.entry(field.clone()).or_default();
                f.exposed += d.exposed;
                f.hidden += d.hidden;
                f.changed += d.changed;
            }
        });
    }

    /// Counts an exchange whose body the comparison does not see.
    pub fn not_compared(&self, purpose: &str) {
        self.count_exchange(purpose, "not_compared");
        let version = self.candidate.current().version().to_string();
        self.with_purpose(&version, purpose, |p| p.not_compared += 1);
    }

    /// The counts for the candidate version in force.
    pub fn report(&self) -> Report {
        let version = self.candidate.current().version().to_string();
        let report = self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if report.candidate_version == version {
            report.clone()
        } else {
            Report {
                candidate_version: version,
                purposes: BTreeMap::new(),
            }
        }
    }
}
