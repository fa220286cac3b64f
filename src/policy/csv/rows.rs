//! What the transformer runs per row once the header is decided: the row filter (consent,
//! parent-consent groups, the report's tallies) and each column's cell action.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::header::{Check, Column, HeaderPlan};
use super::report::{CsvReport, ReportState};
use crate::body::csv::{CellAction, Row};
use crate::policy::set::Action;

/// The transformer's action for one column.
pub(super) fn cell_action(c: &Column, shadow: bool, withheld: &Arc<Vec<AtomicBool>>) -> CellAction {
    if shadow {
        return CellAction::Keep;
    }
    if c.action == Action::Drop {
        return CellAction::Drop;
    }
    if c.groups.is_empty() {
        return match &c.replace {
            None => CellAction::Keep,
            Some(r) => {
                let r = Arc::clone(r);
                CellAction::Replace(Box::new(move |v: &str| r(v)))
            }
        };
    }
    let groups = c.groups.clone();
    let withheld = Arc::clone(withheld);
    let replace = c.replace.clone();
    CellAction::Replace(Box::new(move |v: &str| {
        if groups.iter().any(|g| withheld[*g].load(Ordering::Relaxed)) {
            return String::new();
        }
        match &replace {
            Some(r) => r(v),
            None => v.to_string(),
        }
    }))
}

/// The row filter: consent, parent consent groups and the report's tallies.
pub(super) fn row_filter(
    plan: Arc<HeaderPlan>,
    report: CsvReport,
    withheld: Arc<Vec<AtomicBool>>,
    shadow: bool,
) -> impl FnMut(&Row<'_>) -> bool + Send + 'static {
    move |row: &Row<'_>| {
        let mut s = report.lock();
        for (i, seen) in s.received.iter_mut().enumerate() {
            if !*seen && !row.cell(i).is_empty() {
                *seen = true;
            }
        }
        let failed = plan
            .consent
            .iter()
            .find(|(_, checks)| checks.is_empty() || !checks.iter().all(|c| c.granted(row)));
        if let Some((rule, _)) = failed {
            *s.removed.entry(rule.clone()).or_insert(0) += 1;
            return shadow;
        }
        let any_withheld = withhold_parents(&plan, &withheld, row);
        s.rows_passed += 1;
        note_delivered(&mut s, &plan, &withheld, row, any_withheld);
        true
    }
}

/// Decides, for a row that passed consent, which parent groups have their cells emptied:
/// those whose own signals are not granted, or whose enclosing parent's are not. Parents are
/// listed before their children (shorter prefixes first). True when any group is withheld.
#[inline]
fn withhold_parents(plan: &HeaderPlan, withheld: &[AtomicBool], row: &Row<'_>) -> bool {
    let mut any_withheld = false;
    for (g, group) in plan.groups.iter().enumerate() {
        let w = group
            .parent
            .is_some_and(|p| withheld[p].load(Ordering::Relaxed))
            || !group.checks.iter().all(|c| c.granted(row));
        withheld[g].store(w, Ordering::Relaxed);
        any_withheld |= w;
    }
    any_withheld
}

/// The report's tallies of a delivered row: which columns delivered a value for the first
/// time, and how many cells a withheld parent group emptied. Both steps run once per row,
/// from the row filter: inlined there, as they were written before being named.
#[inline]
fn note_delivered(
    s: &mut ReportState,
    plan: &HeaderPlan,
    withheld: &[AtomicBool],
    row: &Row<'_>,
    any_withheld: bool,
) {
    let is_withheld = |c: &Column| {
        c.groups
            .iter()
            .any(|g| withheld[*g].load(Ordering::Relaxed))
    };
    for (i, c) in plan.columns.iter().enumerate() {
        let cell = row.cell(i);
        if s.delivered[i] || cell.is_empty() || c.action == Action::Drop || is_withheld(c) {
            continue;
        }
        let delivers = match (&c.action, &c.replace) {
            (Action::Keep, _) => true,
            (Action::Redact(_) | Action::Block, _) => false,
            (_, Some(r)) => !r(cell).is_empty(),
            (_, None) => false,
        };
        s.delivered[i] = delivers;
    }
    if any_withheld {
        let n = plan
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| !row.cell(*i).is_empty() && is_withheld(c))
            .count() as u64;
        s.cells_withheld += n;
    }
}

impl Check {
    /// Absent column or empty cell: no consent. Cells are text, so `granted_when: false`
    /// matches `"false"` and numbers compare by value.
    fn granted(&self, row: &Row<'_>) -> bool {
        let Some(cell) = self.column.map(|i| row.cell(i)) else {
            return false;
        };
        if cell.is_empty() {
            return false;
        }
        let matches = |text: &str| {
            self.signal
                .granted_when
                .iter()
                .any(|e| cell_matches(text, e))
        };
        match &self.signal.separator {
            Some(sep) if !sep.is_empty() => cell.split(sep.as_str()).any(|p| matches(p.trim())),
            _ => matches(cell),
        }
    }
}

/// Whether a consent cell (text) matches one `granted_when` value. Per consent cell of every
/// row: inlined into `Check::granted`.
#[inline]
fn cell_matches(cell: &str, expected: &Value) -> bool {
    match expected {
        Value::Bool(b) => cell == if *b { "true" } else { "false" },
        Value::String(s) => cell == s,
        Value::Number(n) => match (cell.trim().parse::<f64>(), n.to_string().parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        _ => false,
    }
}
