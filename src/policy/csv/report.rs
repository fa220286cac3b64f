//! The account of one governed CSV body: rows passed and removed, columns received and
//! delivered, the refusal if any. Shared between the governor (which fills it while rows
//! stream) and the proxy (which reads it for the budget charge and the transfer log).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::header::HeaderPlan;
use crate::policy::engine::{Outcome, Refusal};
use crate::policy::set::{Action, PolicySet};

/// What the governor and the row filter write while the body streams.
#[derive(Default)]
pub(super) struct ReportState {
    pub(super) shadow: bool,
    /// The header's plan, once decided.
    pub(super) plan: Option<Arc<HeaderPlan>>,
    /// Per column: a non-empty cell was read / written.
    pub(super) received: Vec<bool>,
    pub(super) delivered: Vec<bool>,
    pub(super) rows_passed: u64,
    /// Rows removed, per consent rule id.
    pub(super) removed: BTreeMap<Arc<str>, u64>,
    pub(super) cells_withheld: u64,
    pub(super) complete: bool,
    pub(super) refusal: Option<Refusal>,
}

/// The account of one governed CSV body, readable while and after it streams. Values never
/// enter it.
#[derive(Clone)]
pub struct CsvReport {
    inner: Arc<Mutex<ReportState>>,
}

impl fmt::Debug for CsvReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("CsvReport")
            .field("rows_passed", &s.rows_passed)
            .field("removed", &s.removed)
            .field("complete", &s.complete)
            .finish_non_exhaustive()
    }
}

impl CsvReport {
    /// An empty account (for a purpose in shadow mode when `shadow`).
    pub(super) fn new(shadow: bool) -> CsvReport {
        CsvReport {
            inner: Arc::new(Mutex::new(ReportState {
                shadow,
                ..ReportState::default()
            })),
        }
    }

    #[inline]
    pub(super) fn lock(&self) -> MutexGuard<'_, ReportState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rows delivered so far: the record count for budgets and the transfer log.
    pub fn records(&self) -> u64 {
        let s = self.lock();
        match &s.plan {
            Some(p) if p.any_kept => s.rows_passed,
            _ => 0,
        }
    }

    /// Whether the whole body was read and governed without error.
    pub fn complete(&self) -> bool {
        self.lock().complete
    }

    /// The columns of the header row with the action each got (empty before the header).
    pub fn columns(&self) -> Vec<(String, String)> {
        let s = self.lock();
        s.plan
            .iter()
            .flat_map(|p| p.columns.iter())
            .map(|c| (c.path.clone(), c.action.name().to_string()))
            .collect()
    }

    /// The same account `policy::apply` gives for JSON, so the proxy logs both alike:
    /// `records` are the rows emitted, `actions` count cells of delivered rows per action
    /// plus `record_removed` rows, `rules` likewise per rule id.
    pub fn outcome(&self, set: &PolicySet) -> Outcome {
        let s = self.lock();
        let tax = set.taxonomy();
        let mut out = Outcome {
            shadow: s.shadow,
            shadow_refusal: if s.shadow { s.refusal.clone() } else { None },
            ..Outcome::default()
        };
        let Some(plan) = &s.plan else {
            return out;
        };
        let rows = s.rows_passed;
        out.records = if plan.any_kept { rows } else { 0 };
        for (i, c) in plan.columns.iter().enumerate() {
            if rows > 0 {
                *out.actions.entry(c.action.name()).or_insert(0) += rows;
                *out.rules.entry(c.rule.clone()).or_insert(0) += rows;
            }
            let names = || {
                c.cats
                    .iter()
                    .filter(|cat| !tax.is_system(**cat))
                    .map(|cat| tax.name(*cat))
            };
            if s.received.get(i).copied().unwrap_or(false) {
                out.categories_received.extend(names());
            }
            if s.delivered.get(i).copied().unwrap_or(false) {
                out.categories_delivered.extend(names());
            }
        }
        let removed: u64 = s.removed.values().sum();
        if removed > 0 {
            out.actions.insert("record_removed", removed);
            for (rule, n) in &s.removed {
                *out.rules.entry(rule.clone()).or_insert(0) += n;
            }
        }
        out.changed = removed > 0
            || s.cells_withheld > 0
            || plan.columns.iter().any(|c| c.action != Action::Keep);
        out
    }
}
