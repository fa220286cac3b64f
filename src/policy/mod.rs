//! Policies: what a field is (inventories) and what a purpose may see (purposes).
//!
//! Kept apart, as Fides keeps dataset annotations apart from policies, so that classifying a
//! CRM's fields and deciding what a purpose may see can change independently. The data path:
//!
//! - `model`: raw YAML types (unknown keys refused, positions kept for diagnostics); `schema`:
//!   the JSON Schemas editors validate with, generated from them;
//! - `compile`: raw -> `PolicySet` in one step that reports every problem (`diagnostic`);
//!   its `inventory` and `purpose` files compile the two kinds of file;
//! - `taxonomy`: fideslang data categories shipped as data, interned;
//! - `select`: JSONPath parsed once, compiled into field trees and record locators;
//! - `set`: the compiled, immutable, `Arc`-shared policy set and `classify`;
//! - `engine`: `apply`, the pure function the proxy calls per body; `span`: the same decision
//!   over a response's bytes without a DOM (the DOM engine stays its oracle and fallback);
//! - `actions`: mask, pseudonymise, generalise, truncate; `lookup`: the tables of
//!   `generalise: { map: FILE }`;
//! - `csv`: the same policies over CSV bodies (Salesforce Bulk API 2.0 results), streamed:
//!   the header decided once, then row by row;
//! - `query`: query minimisation, predicates only on fields the purpose may see; one file
//!   per query language (SOQL, OData, HubSpot search);
//! - `bundle`: signed policy bundles (a tar and a detached Ed25519 signature); `source`:
//!   where the set in force comes from (a directory or a verified bundle);
//! - `compare`: a candidate set's decisions beside the active one's (live shadow
//!   comparison, counted by `crate::shadow`);
//! - `decide`: the decision the proxy's phases, `explain` and `test` share (route, query
//!   minimisation, writes, bodies);
//! - `testing`, `explain`: `zweck policy test` / `explain` over the same decision;
//!   `coverage`: which rules and fields the table tests exercise; `diff`: what a change of
//!   the policies does to each purpose.
//!
//! The contract is docs/policy.md; DESIGN.md §2 says why default-deny matters.
pub mod actions;
pub mod bundle;
pub mod compare;
pub mod compile;
pub mod coverage;
pub mod csv;
pub mod decide;
pub mod diagnostic;
pub mod diff;
pub mod engine;
pub mod explain;
pub mod lookup;
pub mod model;
pub mod query;
pub mod schema;
pub mod select;
pub mod set;
pub mod source;
pub mod span;
pub mod taxonomy;
pub mod testing;

/// The hash map of the compiled policy set: looked up per field of every record, so it uses
/// foldhash instead of SipHash (SipHash was ~5 % of a governed response's instructions).
/// Keys come from policy files, not from requests, so HashDoS resistance is not needed;
/// foldhash is still seeded per process.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use actions::PseudonymKey;
pub use csv::{csv_plan, CsvFailure, CsvGovernor, CsvJob, CsvPolicy, CsvReport};
pub use diagnostic::{Diagnostic, Severity};
pub use engine::{apply, apply_shaped, drop_counts, Direction, FieldDecision, Outcome, Refusal};
pub use explain::{explain, ExplainError, ExplainRequest, Explanation};
pub use set::{
    Action, Art9Condition, BodyFormat, Controller, Counts, ExportBudget, FieldRule, Generalise,
    LegalBasis, Mode, OpKind, Operation, PolicySet, Purpose, RouteClass, RouteMatch, TunnelKind,
    Withheld, Writes,
};

use std::path::Path;

impl PolicySet {
    /// Loads and compiles `dir` (`purposes.yaml`, `inventory/*.yaml`). Returns the set and
    /// its warnings, or all errors.
    pub fn load(dir: &Path) -> Result<(PolicySet, Vec<Diagnostic>), Vec<Diagnostic>> {
        let sources = compile::read_dir(dir)?;
        compile::compile(&sources)
    }

    /// Compiles in-memory files given as (relative path, text); for tests and tools.
    pub fn from_texts(
        files: &[(&str, &str)],
    ) -> Result<(PolicySet, Vec<Diagnostic>), Vec<Diagnostic>> {
        let sources: Vec<compile::Source> = files
            .iter()
            .map(|(rel, text)| compile::Source {
                rel: (*rel).to_string(),
                display: rel.into(),
                bytes: text.as_bytes().to_vec(),
            })
            .collect();
        compile::compile(&sources)
    }
}

/// What `zweck policy check` prints: every diagnostic, errors first.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    /// The policy version when the set compiled.
    pub version: Option<String>,
}

impl Report {
    /// True when there is no error (warnings allowed).
    pub fn is_ok(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        match (&self.version, self.is_ok()) {
            (Some(v), true) => {
                writeln!(f, "ok: policy version {v} ({} warning(s))", self.warnings())
            }
            _ => writeln!(
                f,
                "{} error(s), {} warning(s)",
                self.errors(),
                self.warnings()
            ),
        }
    }
}

/// `zweck policy check`: loads and compiles `dir`, reporting every error and warning.
pub fn check(dir: &Path) -> Report {
    match PolicySet::load(dir) {
        Ok((set, warnings)) => Report {
            diagnostics: warnings,
            version: Some(set.version().to_string()),
        },
        Err(diagnostics) => Report {
            diagnostics,
            version: None,
        },
    }
}

#[cfg(test)]
mod tests;
