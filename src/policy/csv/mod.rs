//! The policies over CSV bodies: Salesforce Bulk API 2.0 query results.
//!
//! A `format: csv` operation (docs/policy.md, "CSV bodies") returns rows of one of its
//! `objects`; the header row names the fields (`Email`, dotted `Account.Name` for parent
//! fields). [`csv_plan`] binds a purpose to such an operation; the header row decides, once,
//! what happens to each column, with the same categories, rules and actions as JSON:
//!
//! - column `Email` is the record field `$.Email`, `Account.Name` is `$.Account.Name`, which
//!   the resource's `children` map to the parent resource's `$.Name`;
//! - `keep` passes the cells, `drop` removes the column, `redact` empties the cells (or
//!   writes the fixed string), `mask`, `pseudonymise`, `generalise` and `truncate` replace
//!   each cell; an empty cell is `null` and stays empty under every action;
//! - `block` (or `otherwise: block` meeting an unclassified column) refuses the whole
//!   response when the *header* names such a column, before any row was read, so no row is
//!   ever released; a missing pseudonym key is refused the same way;
//! - consent: each row is kept only when the purpose's `requires_consent` signals are
//!   granted by its cells (`"true"`/`"false"` for booleans; an absent column or an empty cell
//!   means no consent); a parent resource with its own signal has its cells emptied in rows
//!   where that signal is not granted.
//!
//! The results call does not say which object the rows are. When the proxy knows the job's
//! `object` ([`CsvJob`]) only that resource applies. Otherwise the header decides among the
//! operation's `objects`: the resources that classify every column some object classifies
//! are the candidates (all of them when none does), and per column the strictest resulting
//! action among the candidates wins (block, drop, redact, a transformation, keep; two
//! different transformations make a drop). Name clashes (`Name` is a person's name on
//! Contact and a company on Account) therefore never loosen a rule.
//!
//! Streaming: [`CsvGovernor`] buffers the first bytes until the header row is complete (the
//! delimiter is read from it), decides, and then streams rows through the strict RFC 4180
//! [`CsvTransformer`](crate::body::csv::CsvTransformer): memory is one row, never the body.
//! The caller feeds it the body chunk by chunk (the proxy's streamed export); a refusal comes
//! before any byte was produced. [`CsvReport`] gives the transfer-log
//! [`Outcome`](super::Outcome): records are the rows emitted.
//!
//! The files follow the work: `header` decides the header row (`HeaderPlan`), `stream` holds
//! the governor that buffers, decides and streams, `rows` the per-row consent filter and cell
//! actions the transformer runs, `report` the account the proxy logs and charges.

mod header;
mod report;
mod rows;
mod stream;

pub use report::CsvReport;
pub use stream::CsvGovernor;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::actions::{PseudonymKey, PurposeKey};
use super::engine::Refusal;
use super::set::{BodyFormat, OpKind, Operation, PolicySet, Purpose};
use crate::body::csv::{CsvError, Delimiter};
use crate::dialect::Dialect;

/// What the proxy knows about the Bulk job whose results these are (from the job's create or
/// status response), if anything. `CsvJob::default()` knows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvJob {
    /// The job's `object` (`Contact`). Only that resource applies; one the operation does
    /// not list under `objects` classifies nothing (every column is `unclassified`).
    pub object: Option<String>,
    /// The job's `columnDelimiter`. Without it the delimiter is read from the header row;
    /// with it, a header row that uses another one is refused.
    pub delimiter: Option<Delimiter>,
}

/// Why a CSV body was not delivered. Nothing of the body was produced when this is
/// returned before the governor is [streaming](CsvGovernor::streaming); later it ends the
/// stream.
#[derive(Debug, thiserror::Error)]
pub enum CsvFailure {
    /// The policy refuses the exchange (as for JSON: 403 for `Blocked`, 500 for a missing
    /// pseudonym key).
    #[error("{0}")]
    Refused(Refusal),
    /// The body is not CSV that Zweck reads strictly (502 `response-not-inspectable`).
    #[error("the CSV body is malformed: {0}")]
    Malformed(CsvError),
    /// The header row is not quoted the way Salesforce writes it, so its delimiter cannot be
    /// read, or it disagrees with the job's `columnDelimiter` (502).
    #[error("the CSV delimiter cannot be determined from the header row")]
    Delimiter,
    /// The governor was used after a failure or after `finish`.
    #[error("the CSV governor was used after a failure or after finish")]
    Spent,
}

/// A purpose bound to a CSV operation: what [`csv_plan`] returns. `S` holds the policy set:
/// an `Arc<PolicySet>` in the proxy (the governed body may outlive the handler), a
/// `&PolicySet` in table tests.
pub struct CsvPolicy<S = Arc<PolicySet>> {
    set: S,
    purpose: Purpose,
    dialect: Dialect,
    candidates: Vec<usize>,
    key: Option<Arc<PurposeKey>>,
    delimiter: Option<Delimiter>,
}

impl<S> fmt::Debug for CsvPolicy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvPolicy")
            .field("purpose", &self.purpose.name)
            .field("candidates", &self.candidates)
            .field("delimiter", &self.delimiter)
            .finish_non_exhaustive()
    }
}

/// Binds `purpose` to the CSV operation `op` (from `set.classify`, same snapshot).
///
/// Errors: `NoInventory` when `op` is not a `format: csv` read of this set (a wiring fault,
/// 500). Policy refusals (`Blocked`, `PseudonymKeyMissing`) need the header row and come
/// from the governor.
pub fn csv_plan<S>(
    set: &S,
    purpose: &Purpose,
    op: &Operation,
    key: Option<&PseudonymKey>,
    job: &CsvJob,
) -> Result<CsvPolicy<S>, Refusal>
where
    S: Deref<Target = PolicySet> + Clone,
{
    let fault = Refusal::NoInventory(op.dialect());
    if op.format() != BodyFormat::Csv || op.op() != OpKind::Read {
        return Err(fault);
    }
    let inv = set.inventory(op.dialect()).ok_or(fault.clone())?;
    if op.objects.iter().any(|i| *i >= inv.resources.len()) {
        return Err(fault);
    }
    let candidates = match &job.object {
        None => op.objects.clone(),
        Some(object) => match inv.by_type.get(object.as_str()) {
            Some(i) if op.objects.contains(i) => vec![*i],
            _ => Vec::new(),
        },
    };
    Ok(CsvPolicy {
        set: set.clone(),
        purpose: purpose.clone(),
        dialect: op.dialect(),
        candidates,
        key: key.map(|k| k.derive(&purpose.name)),
        delimiter: job.delimiter,
    })
}

#[cfg(test)]
mod tests;
