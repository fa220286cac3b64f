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
//! [`CsvTransformer`]: memory is one row, never the body. The caller feeds it the body chunk
//! by chunk (the proxy's streamed export); a refusal comes before any byte was produced.
//! [`CsvReport`] gives the transfer-log [`Outcome`]: records are the rows emitted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::Value;

use super::actions::{self, PseudonymKey, PurposeKey};
use super::engine::{Outcome, Refusal};
use super::select::{push_key, FieldNode};
use super::set::{
    Action, BodyFormat, ConsentSignal, Inventory, Mode, OpKind, Operation, PolicySet, Purpose,
    Resolved,
};
use super::taxonomy::CatId;
use crate::body::csv::{CellAction, CsvError, CsvLimits, CsvTransformer, Delimiter, Row};
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

impl CsvFailure {
    /// A short reason for `response-not-inspectable` problems and logs (never a value).
    pub fn reason(&self) -> &'static str {
        match self {
            CsvFailure::Refused(_) => "refused",
            CsvFailure::Malformed(CsvError::RowTooLarge { .. }) => "csv-row-too-large",
            CsvFailure::Malformed(CsvError::InvalidUtf8 { .. }) => "csv-invalid-utf8",
            CsvFailure::Malformed(_) => "csv-malformed",
            CsvFailure::Delimiter => "csv-delimiter",
            CsvFailure::Spent => "csv-spent",
        }
    }
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

impl<S: Deref<Target = PolicySet>> CsvPolicy<S> {
    /// The streaming governor of one body.
    pub fn governor(self, limits: CsvLimits) -> CsvGovernor<S> {
        let shadow = self.purpose.mode == Mode::Shadow;
        CsvGovernor {
            policy: self,
            limits,
            pending: Vec::new(),
            delimiter: None,
            probe: None,
            transformer: None,
            report: CsvReport {
                inner: Arc::new(Mutex::new(ReportState {
                    shadow,
                    ..ReportState::default()
                })),
            },
            spent: false,
        }
    }
}

/// How one column is governed.
struct Column {
    /// `$.Account.Name`: the column as a field path (a template: names, never values).
    path: String,
    action: Action,
    rule: Arc<str>,
    /// Categories the candidates give this column (reported as received / delivered).
    cats: Vec<CatId>,
    /// The cell transformation (for every action that replaces values).
    replace: Option<Arc<Replacer>>,
    /// Parent-consent groups whose withholding empties this column's cells.
    groups: Vec<usize>,
}

type Replacer = dyn Fn(&str) -> String + Send + Sync;

/// A consent check on a row: `column` holds the signal (None: the column is absent).
struct Check {
    signal: ConsentSignal,
    column: Option<usize>,
}

/// A parent resource with its own required consent signals: its cells in a row are emptied
/// when they are not granted (or the enclosing parent's are not).
struct Group {
    checks: Vec<Check>,
    parent: Option<usize>,
}

/// The decisions taken on the header row.
struct HeaderPlan {
    columns: Vec<Column>,
    /// Row consent: (rule id `consent.<signal>`, checks that must all hold). A signal no
    /// candidate resource defines has no check and removes every row.
    consent: Vec<(Arc<str>, Vec<Check>)>,
    groups: Vec<Group>,
    /// Whether any column is written (all dropped: nothing is, and no row is a record).
    any_kept: bool,
    refusal: Option<Refusal>,
}

#[derive(Default)]
struct ReportState {
    shadow: bool,
    plan: Option<Arc<HeaderPlan>>,
    received: Vec<bool>,
    delivered: Vec<bool>,
    rows_passed: u64,
    removed: BTreeMap<Arc<str>, u64>,
    cells_withheld: u64,
    complete: bool,
    refusal: Option<Refusal>,
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
    fn lock(&self) -> MutexGuard<'_, ReportState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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

/// The streaming governor of one CSV body. See the module docs.
pub struct CsvGovernor<S = Arc<PolicySet>> {
    policy: CsvPolicy<S>,
    limits: CsvLimits,
    /// Raw bytes held back until the header row is complete.
    pending: Vec<u8>,
    delimiter: Option<Delimiter>,
    /// Reads the header row with the same parser, before anything is decided.
    probe: Option<CsvTransformer>,
    transformer: Option<CsvTransformer>,
    report: CsvReport,
    spent: bool,
}

impl<S> fmt::Debug for CsvGovernor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvGovernor")
            .field("policy", &self.policy)
            .field("delimiter", &self.delimiter)
            .field("streaming", &self.transformer.is_some())
            .finish_non_exhaustive()
    }
}

/// The result of reading a header row's first field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniff {
    NeedMore,
    Found(Delimiter),
    /// The first name is followed by the line end (or the body ends): one column.
    SingleColumn,
    /// The header row does not start with a quote.
    Unquoted,
    /// Something other than a delimiter or a line end follows the first name.
    Bad,
}

const DELIMITERS: [Delimiter; 6] = [
    Delimiter::Comma,
    Delimiter::Tab,
    Delimiter::Pipe,
    Delimiter::Semicolon,
    Delimiter::Caret,
    Delimiter::Backquote,
];

/// Salesforce quotes every header name, so the byte after the first closing quote is the
/// delimiter (or the line end, for one column).
fn sniff(head: &[u8], eof: bool) -> Sniff {
    match head.first() {
        None if eof => return Sniff::SingleColumn,
        None => return Sniff::NeedMore,
        Some(b'"') => {}
        Some(_) => return Sniff::Unquoted,
    }
    let mut i = 1;
    loop {
        let Some(q) = head[i..].iter().position(|b| *b == b'"') else {
            // Unterminated so far; at the end the parser reports it.
            return if eof {
                Sniff::SingleColumn
            } else {
                Sniff::NeedMore
            };
        };
        let j = i + q;
        match head.get(j + 1) {
            None if eof => return Sniff::SingleColumn,
            None => return Sniff::NeedMore,
            Some(b'"') => i = j + 2,
            Some(b'\r' | b'\n') => return Sniff::SingleColumn,
            Some(b) => {
                return DELIMITERS
                    .iter()
                    .find(|d| d.byte() == *b)
                    .map_or(Sniff::Bad, |d| Sniff::Found(*d))
            }
        }
    }
}

impl<S: Deref<Target = PolicySet>> CsvGovernor<S> {
    /// The account of this body (shared; clone it before handing the body on).
    pub fn report(&self) -> CsvReport {
        self.report.clone()
    }

    /// True once the header row was read and decided: from then on rows stream.
    pub fn streaming(&self) -> bool {
        self.transformer.is_some()
    }

    /// Governs one more chunk; returns the output completed so far. Until the header row is
    /// complete nothing is returned. A refusal is returned when the header is decided, before
    /// any output; after any error the governor is spent.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, CsvFailure> {
        if self.spent {
            return Err(CsvFailure::Spent);
        }
        let r = self.feed_inner(chunk);
        if r.is_err() {
            self.spent = true;
        }
        r
    }

    /// Ends the body: completes the last row (or a header-only body).
    pub fn finish(&mut self) -> Result<Bytes, CsvFailure> {
        if self.spent {
            return Err(CsvFailure::Spent);
        }
        self.spent = true;
        let mut out = Vec::new();
        if self.transformer.is_none() {
            if self.pending.is_empty() {
                self.report.lock().complete = true;
                return Ok(Bytes::new());
            }
            if self.delimiter.is_none() {
                if !self.choose_delimiter(true)? {
                    return Err(CsvFailure::Delimiter);
                }
                let pending = std::mem::take(&mut self.pending);
                let r = self.probe_mut()?.feed(&pending);
                self.pending = pending;
                r.map_err(CsvFailure::Malformed)?;
            }
            let probe = self.probe_mut()?;
            if probe.columns().is_empty() {
                probe.finish().map_err(CsvFailure::Malformed)?;
            }
            self.start(&mut out)?;
        }
        let t = self.transformer.as_mut().ok_or(CsvFailure::Spent)?;
        let tail = t.finish().map_err(CsvFailure::Malformed)?;
        out.extend_from_slice(&tail);
        self.report.lock().complete = true;
        Ok(Bytes::from(out))
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Result<Bytes, CsvFailure> {
        if let Some(t) = self.transformer.as_mut() {
            return t.feed(chunk).map_err(CsvFailure::Malformed);
        }
        self.pending.extend_from_slice(chunk);
        if self.delimiter.is_none() {
            if !self.choose_delimiter(false)? {
                if self.pending.len() > self.limits.max_row_bytes {
                    return Err(CsvFailure::Malformed(CsvError::RowTooLarge {
                        record: 1,
                        limit: self.limits.max_row_bytes,
                    }));
                }
                return Ok(Bytes::new());
            }
            // The probe reads everything held so far.
            let pending = std::mem::take(&mut self.pending);
            let r = self.probe_mut()?.feed(&pending);
            self.pending = pending;
            r.map_err(CsvFailure::Malformed)?;
        } else {
            self.probe_mut()?
                .feed(chunk)
                .map_err(CsvFailure::Malformed)?;
        }
        if self.probe_mut()?.columns().is_empty() {
            return Ok(Bytes::new());
        }
        let mut out = Vec::new();
        self.start(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Decides the delimiter from the bytes held; false when more are needed.
    fn choose_delimiter(&mut self, eof: bool) -> Result<bool, CsvFailure> {
        let found = sniff(&self.pending, eof);
        let chosen = match (found, self.policy.delimiter) {
            (Sniff::NeedMore, _) => return Ok(false),
            (Sniff::Bad, _) | (Sniff::Unquoted, None) => return Err(CsvFailure::Delimiter),
            (Sniff::Found(d), Some(job)) if d != job => return Err(CsvFailure::Delimiter),
            (Sniff::Found(d), _) => d,
            (Sniff::SingleColumn | Sniff::Unquoted, Some(job)) => job,
            (Sniff::SingleColumn, None) => Delimiter::Comma,
        };
        self.delimiter = Some(chosen);
        self.probe = Some(CsvTransformer::new(
            chosen,
            self.limits,
            |_| CellAction::Drop,
            |_| false,
        ));
        Ok(true)
    }

    fn probe_mut(&mut self) -> Result<&mut CsvTransformer, CsvFailure> {
        self.probe.as_mut().ok_or(CsvFailure::Spent)
    }

    /// The header is known: decide, then run the held bytes through the real transformer.
    fn start(&mut self, out: &mut Vec<u8>) -> Result<(), CsvFailure> {
        let probe = self.probe.take().ok_or(CsvFailure::Spent)?;
        let header: Vec<String> = probe.columns().to_vec();
        let delimiter = self.delimiter.unwrap_or(Delimiter::Comma);
        let plan = Arc::new(plan_header(&self.policy, &header));
        let shadow = self.policy.purpose.mode == Mode::Shadow;
        {
            let mut s = self.report.lock();
            s.received = vec![false; plan.columns.len()];
            s.delivered = vec![false; plan.columns.len()];
            s.plan = Some(Arc::clone(&plan));
            s.refusal = plan.refusal.clone();
        }
        if let Some(r) = &plan.refusal {
            if !shadow {
                return Err(CsvFailure::Refused(r.clone()));
            }
        }
        let withheld: Arc<Vec<AtomicBool>> =
            Arc::new(plan.groups.iter().map(|_| AtomicBool::new(false)).collect());
        let mut actions: HashMap<String, CellAction> = HashMap::new();
        for (name, c) in header.iter().zip(&plan.columns) {
            actions.insert(name.clone(), cell_action(c, shadow, &withheld));
        }
        let filter = row_filter(Arc::clone(&plan), self.report.clone(), withheld, shadow);
        let mut t = CsvTransformer::new(
            delimiter,
            self.limits,
            move |name| actions.remove(name).unwrap_or(CellAction::Drop),
            filter,
        );
        let pending = std::mem::take(&mut self.pending);
        let first = t.feed(&pending).map_err(CsvFailure::Malformed)?;
        out.extend_from_slice(&first);
        self.transformer = Some(t);
        Ok(())
    }
}

/// The transformer's action for one column.
fn cell_action(c: &Column, shadow: bool, withheld: &Arc<Vec<AtomicBool>>) -> CellAction {
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
fn row_filter(
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
        // Parents are listed before their children (shorter prefixes first).
        let mut any_withheld = false;
        for (g, group) in plan.groups.iter().enumerate() {
            let w = group
                .parent
                .is_some_and(|p| withheld[p].load(Ordering::Relaxed))
                || !group.checks.iter().all(|c| c.granted(row));
            withheld[g].store(w, Ordering::Relaxed);
            any_withheld |= w;
        }
        s.rows_passed += 1;
        for (i, c) in plan.columns.iter().enumerate() {
            let cell = row.cell(i);
            if s.delivered[i] || cell.is_empty() || c.action == Action::Drop {
                continue;
            }
            if c.groups
                .iter()
                .any(|g| withheld[*g].load(Ordering::Relaxed))
            {
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
                .filter(|(i, c)| {
                    !row.cell(*i).is_empty()
                        && c.groups
                            .iter()
                            .any(|g| withheld[*g].load(Ordering::Relaxed))
                })
                .count() as u64;
            s.cells_withheld += n;
        }
        true
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

/// What one candidate resource makes of a column.
struct Classified {
    cat: Option<CatId>,
    /// The resource the last segment belongs to.
    resource: usize,
    /// Parent hops: (number of leading segments, resource).
    hops: Vec<(usize, usize)>,
}

/// Column `A.B.C` is the record field `$.A.B.C`: walked like the JSON engine walks a record
/// (inherited categories, `[*]` for unnamed members, annotations), switching to the child
/// resource's field map at a `children` entry.
fn classify_column(inv: &Inventory, res: usize, segments: &[&str]) -> Classified {
    let mut node: Option<&FieldNode> = Some(&inv.resources[res].fields);
    let mut cat: Option<CatId> = node.and_then(|n| n.cat);
    let mut resource = res;
    let mut hops = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let (cn, inherited) = FieldNode::member(node, seg, cat);
        if let Some(child) = cn.and_then(|n| n.child) {
            if i + 1 == segments.len() || child >= inv.resources.len() {
                // A whole record in one cell is not a field: unclassified.
                return Classified {
                    cat: None,
                    resource,
                    hops,
                };
            }
            hops.push((i + 1, child));
            resource = child;
            node = Some(&inv.resources[child].fields);
            cat = node.and_then(|n| n.cat);
            continue;
        }
        cat = cn.and_then(|n| n.cat).or(inherited);
        node = cn;
    }
    Classified {
        cat,
        resource,
        hops,
    }
}

/// How strict an action is: block, drop, redact, a transformation, keep.
fn rank(a: &Action) -> u8 {
    match a {
        Action::Keep => 0,
        Action::Mask { .. }
        | Action::Pseudonymise
        | Action::Generalise(_)
        | Action::Truncate(_) => 1,
        Action::Redact(_) => 2,
        Action::Drop => 3,
        Action::Block => 4,
    }
}

fn plan_header<S: Deref<Target = PolicySet>>(
    policy: &CsvPolicy<S>,
    header: &[String],
) -> HeaderPlan {
    let set = &*policy.set;
    let purpose = &policy.purpose;
    let tax = set.taxonomy();
    // `csv_plan` checked the candidates against this inventory (same snapshot).
    let inv = set
        .inventory(policy.dialect)
        .filter(|inv| policy.candidates.iter().all(|i| *i < inv.resources.len()));
    let segments: Vec<Vec<&str>> = header.iter().map(|h| h.split('.').collect()).collect();
    // per candidate, per column
    let classified: Vec<(usize, Vec<Classified>)> = match inv {
        Some(inv) => policy
            .candidates
            .iter()
            .map(|r| {
                (
                    *r,
                    segments
                        .iter()
                        .map(|s| classify_column(inv, *r, s))
                        .collect(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let known: Vec<bool> = (0..header.len())
        .map(|i| classified.iter().any(|(_, cols)| cols[i].cat.is_some()))
        .collect();
    let consistent: Vec<usize> = classified
        .iter()
        .enumerate()
        .filter(|(_, (_, cols))| cols.iter().zip(&known).all(|(c, k)| !*k || c.cat.is_some()))
        .map(|(i, _)| i)
        .collect();
    let chosen: Vec<&(usize, Vec<Classified>)> = if consistent.is_empty() {
        classified.iter().collect()
    } else {
        consistent.iter().map(|i| &classified[*i]).collect()
    };

    let nrules = purpose.rules.len();
    let resolve = |cat: Option<CatId>, resource: usize| -> (Action, Arc<str>, CatId) {
        let unclassified = tax.unclassified();
        let cat = cat.unwrap_or(unclassified);
        if cat == unclassified {
            let keep = inv.is_some_and(|inv| inv.resources[resource].keep_unclassified);
            return if keep {
                (Action::Keep, "unclassified.keep".into(), cat)
            } else {
                (purpose.otherwise.clone(), "otherwise".into(), cat)
            };
        }
        match purpose.by_cat.get(cat as usize) {
            Some(Resolved::Rule(i)) if (*i as usize) < nrules => {
                let r = &purpose.rules[*i as usize];
                (r.action.clone(), r.id.clone(), cat)
            }
            Some(Resolved::System) => (Action::Keep, "system".into(), cat),
            _ => (purpose.otherwise.clone(), "otherwise".into(), cat),
        }
    };

    // Parent-consent groups: (candidate resource, prefix length, child resource) -> index.
    let mut group_keys: Vec<(Vec<String>, usize)> = Vec::new();
    let mut group_of = |prefix: Vec<String>, resource: usize| -> usize {
        if let Some(i) = group_keys
            .iter()
            .position(|(p, r)| *p == prefix && *r == resource)
        {
            return i;
        }
        group_keys.push((prefix, resource));
        group_keys.len() - 1
    };
    let own_signal = |resource: usize| -> bool {
        inv.is_some_and(|inv| {
            purpose
                .requires_consent
                .iter()
                .any(|c| inv.resources[resource].consent.contains_key(c))
        })
    };

    let email = tax.get("user.contact.email");
    let mut refusal_paths: Vec<String> = Vec::new();
    let mut blocked_cat: Option<CatId> = None;
    let mut needs_key = false;
    let mut columns = Vec::with_capacity(header.len());
    for (i, segs) in segments.iter().enumerate() {
        let mut path = String::from("$");
        for s in segs {
            push_key(&mut path, s);
        }
        let mut decisions: Vec<(Action, Arc<str>, CatId)> = Vec::new();
        let mut groups = Vec::new();
        for (_, cols) in &chosen {
            let c = &cols[i];
            decisions.push(resolve(c.cat, c.resource));
            for (n, child) in &c.hops {
                if own_signal(*child) {
                    let prefix = segs[..*n].iter().map(|s| s.to_string()).collect();
                    let g = group_of(prefix, *child);
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
        }
        if decisions.is_empty() {
            // No resource applies: everything is unclassified.
            decisions.push((
                purpose.otherwise.clone(),
                "otherwise".into(),
                tax.unclassified(),
            ));
        }
        let top = decisions.iter().map(|d| rank(&d.0)).max().unwrap_or(0);
        let winners: Vec<&(Action, Arc<str>, CatId)> =
            decisions.iter().filter(|d| rank(&d.0) == top).collect();
        let (mut action, mut rule, cat) = winners[0].clone();
        if winners.iter().any(|w| w.0 != action) {
            // Two different transformations (or redactions) of one column: neither is sure.
            action = Action::Drop;
            rule = "ambiguous".into();
        }
        let mut cats: Vec<CatId> = Vec::new();
        for d in &decisions {
            if !cats.contains(&d.2) {
                cats.push(d.2);
            }
        }
        if action == Action::Block {
            blocked_cat.get_or_insert(cat);
            refusal_paths.push(path.clone());
        }
        if action == Action::Pseudonymise && policy.key.is_none() {
            needs_key = true;
        }
        let is_email = email.is_some_and(|e| tax.lineage(cat).any(|c| c == e));
        let replace = replacer(&action, is_email, policy.key.clone());
        columns.push(Column {
            path,
            action,
            rule,
            cats,
            replace,
            groups,
        });
    }

    // Row consent over the chosen resources; parent groups with their own signals.
    let column_of = |name: &str| header.iter().position(|h| h == name);
    let check = |resource: usize, signal: &str, prefix: &[String]| -> Option<Check> {
        let inv = inv?;
        let sig = inv.resources[resource].consent.get(signal)?;
        let mut name: Vec<String> = prefix.to_vec();
        name.extend(sig.field.iter().cloned());
        Some(Check {
            signal: sig.clone(),
            column: column_of(&name.join(".")),
        })
    };
    let consent = purpose
        .requires_consent
        .iter()
        .map(|c| {
            let checks: Option<Vec<Check>> =
                chosen.iter().map(|(r, _)| check(*r, c, &[])).collect();
            (
                Arc::from(format!("consent.{c}")),
                checks.unwrap_or_default(),
            )
        })
        .collect();
    let mut order: Vec<usize> = (0..group_keys.len()).collect();
    order.sort_by_key(|g| group_keys[*g].0.len());
    let mut remap = vec![0usize; group_keys.len()];
    for (new, old) in order.iter().enumerate() {
        remap[*old] = new;
    }
    let groups: Vec<Group> = order
        .iter()
        .map(|g| {
            let (prefix, resource) = &group_keys[*g];
            let checks = purpose
                .requires_consent
                .iter()
                .filter(|c| {
                    inv.is_some_and(|inv| inv.resources[*resource].consent.contains_key(*c))
                })
                .filter_map(|c| check(*resource, c, prefix))
                .collect();
            // The nearest enclosing group: the longest shorter prefix of the same path.
            let parent = order
                .iter()
                .filter(|o| {
                    let p = &group_keys[**o].0;
                    p.len() < prefix.len() && prefix.starts_with(p)
                })
                .max_by_key(|o| group_keys[**o].0.len())
                .map(|o| remap[*o]);
            Group { checks, parent }
        })
        .collect();
    for c in &mut columns {
        for g in &mut c.groups {
            *g = remap[*g];
        }
    }

    let refusal = if let Some(cat) = blocked_cat {
        Some(Refusal::Blocked {
            category: tax.name(cat).to_string(),
            field_paths: refusal_paths
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
    } else if needs_key {
        Some(Refusal::PseudonymKeyMissing)
    } else {
        None
    };
    let any_kept = columns.iter().any(|c| c.action != Action::Drop);
    HeaderPlan {
        columns,
        consent,
        groups,
        any_kept,
        refusal,
    }
}

/// The cell transformation of an action (None for keep, drop and block).
fn replacer(action: &Action, email: bool, key: Option<Arc<PurposeKey>>) -> Option<Arc<Replacer>> {
    let text = |v: Value| match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let f: Arc<Replacer> = match action.clone() {
        Action::Keep | Action::Drop | Action::Block => return None,
        Action::Redact(fixed) => Arc::new(move |v: &str| match &fixed {
            Some(s) if !v.is_empty() => s.clone(),
            _ => String::new(),
        }),
        Action::Mask { keep_last } => Arc::new(move |v: &str| {
            if v.is_empty() {
                return String::new();
            }
            text(actions::mask(
                &Value::String(v.to_string()),
                keep_last,
                email,
            ))
        }),
        Action::Truncate(n) => Arc::new(move |v: &str| match v.char_indices().nth(n) {
            Some((i, _)) => v[..i].to_string(),
            None => v.to_string(),
        }),
        Action::Generalise(g) => Arc::new(move |v: &str| {
            if v.is_empty() {
                return String::new();
            }
            text(actions::generalise(&Value::String(v.to_string()), g))
        }),
        Action::Pseudonymise => Arc::new(move |v: &str| match &key {
            _ if v.is_empty() => String::new(),
            Some(k) => k.pseudonym(v),
            // Refused before streaming; never passes the value.
            None => String::new(),
        }),
    };
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PseudonymKey, RouteMatch};
    use http::Method;

    const FIXTURE: &str =
        include_str!("../../../tests/fixtures/crm/salesforce/bulk2-query-results.page1.csv");
    const RESULTS: &str = "/services/data/v66.0/jobs/query/750Qy00000Fict01AAA/results";

    fn shipped() -> Arc<PolicySet> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let (set, _) = PolicySet::load(&dir).expect("shipped policies");
        Arc::new(set)
    }

    fn key() -> PseudonymKey {
        PseudonymKey::new(b"csv-test-key")
    }

    fn op<'a>(set: &'a PolicySet, path: &str) -> &'a Operation {
        match set.classify(Dialect::Salesforce, &Method::GET, path) {
            RouteMatch::Operation(op) => op,
            other => panic!("{path}: {other:?}"),
        }
    }

    /// Runs `input` in chunks of `size` (0: one chunk).
    fn run_with(
        set: &Arc<PolicySet>,
        purpose: &str,
        job: &CsvJob,
        key: Option<&PseudonymKey>,
        input: &[u8],
        size: usize,
    ) -> Result<(String, Outcome), CsvFailure> {
        let p = set.purpose(purpose).expect("purpose");
        let plan = csv_plan(set, p, op(set, RESULTS), key, job).map_err(CsvFailure::Refused)?;
        let mut g = plan.governor(CsvLimits::default());
        let report = g.report();
        let mut out = Vec::new();
        if size == 0 {
            out.extend_from_slice(&g.feed(input)?);
        } else {
            for chunk in input.chunks(size) {
                out.extend_from_slice(&g.feed(chunk)?);
            }
        }
        out.extend_from_slice(&g.finish()?);
        assert!(report.complete());
        Ok((String::from_utf8(out).expect("utf-8"), report.outcome(set)))
    }

    fn run(set: &Arc<PolicySet>, purpose: &str, input: &str) -> (String, Outcome) {
        run_with(
            set,
            purpose,
            &CsvJob::default(),
            Some(&key()),
            input.as_bytes(),
            0,
        )
        .expect("governed")
    }

    #[test]
    fn the_results_route_is_csv_of_three_objects() {
        let set = shipped();
        let op = op(&set, RESULTS);
        assert_eq!(op.format(), BodyFormat::Csv);
        assert_eq!(op.class(), crate::policy::RouteClass::BulkExport);
        let inv = set.inventory(Dialect::Salesforce).expect("inventory");
        let names: Vec<&str> = op
            .objects
            .iter()
            .map(|i| inv.resources()[*i].name())
            .collect();
        assert_eq!(names, ["Contact", "Lead", "Account"]);
        let json = op_json(&set, "/services/data/v66.0/jobs/query/750Qy00000Fict01AAA");
        assert_eq!(json.format(), BodyFormat::Json);
    }

    fn op_json<'a>(set: &'a PolicySet, path: &str) -> &'a Operation {
        op(set, path)
    }

    #[test]
    fn newsletter_removes_opted_out_rows_phones_and_birthdates_but_the_year() {
        let set = shipped();
        let (out, o) = run(&set, "newsletter", FIXTURE);
        assert_eq!(
            out,
            "\"Id\",\"FirstName\",\"Email\",\"Birthdate\",\"MailingCountry\"\n\
             \"003Qy00000Fict01AAA\",\"Livia\",\"livia.marquardt-ostby@example.com\",\"1984\",\"Germany\"\n"
        );
        assert!(!out.contains("MobilePhone") && !out.contains("+49"));
        assert!(!out.contains("Quill") && !out.contains("Marquardt-Ostby\""));
        assert_eq!(o.records, 1);
        assert_eq!(o.actions.get("record_removed"), Some(&1));
        assert_eq!(o.rules.get("consent.marketing_email"), Some(&1));
        assert_eq!(o.actions.get("generalise"), Some(&1));
        assert_eq!(o.actions.get("drop"), Some(&5));
        assert!(o.changed && !o.shadow);
        let delivered: Vec<&str> = o.categories_delivered.iter().copied().collect();
        assert_eq!(
            delivered,
            [
                "user.contact.address.country",
                "user.contact.email",
                "user.demographic.date_of_birth",
                "user.name.first"
            ]
        );
        assert!(o.categories_received.contains("user.contact.phone_number"));
        assert!(o.categories_received.contains("user.workplace"));
    }

    #[test]
    fn analytics_pseudonymises_email_like_json_and_drops_names() {
        let set = shipped();
        let (out, o) = run(&set, "analytics", FIXTURE);
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some("\"Id\",\"Email\",\"Birthdate\",\"MailingCity\",\"MailingCountry\",\"Account.Name\"")
        );
        let pz = key()
            .derive("analytics")
            .pseudonym("livia.marquardt-ostby@example.com");
        assert!(pz.starts_with("pz1_"));
        assert_eq!(
            lines.next().map(str::to_string),
            Some(format!(
                "\"003Qy00000Fict01AAA\",\"{pz}\",\"1984\",\"Musterstadt\",\"Germany\",\"Fictional Widgets GmbH\""
            ))
        );
        let second = lines.next().expect("second row");
        assert!(second.starts_with("\"003Qy00000Fict02AAA\",\"pz1_"));
        assert!(second.ends_with(",\"\",\"Sampleton\",\"United States\",\"\""));
        assert_eq!(lines.next(), None);
        assert!(!out.contains("Livia") && !out.contains("@example"));
        assert_eq!(o.records, 2);
        assert_eq!(o.actions.get("pseudonymise"), Some(&2));
        assert_eq!(o.actions.get("record_removed"), None);

        // The same pseudonym as the JSON engine gives the same value (joins across APIs).
        let mut body = serde_json::json!({"totalSize": 1, "done": true, "records": [
            {"attributes": {"type": "Contact"}, "Email": "livia.marquardt-ostby@example.com"}]});
        let query = op(&set, "/services/data/v66.0/query");
        crate::policy::apply(
            &set,
            set.purpose("analytics").expect("purpose"),
            query,
            crate::policy::Direction::Response,
            &mut body,
            Some(&key()),
        )
        .expect("json");
        assert_eq!(body["records"][0]["Email"], serde_json::json!(pz));
    }

    #[test]
    fn every_chunking_gives_the_same_output() {
        let set = shipped();
        for purpose in ["newsletter", "analytics", "support", "billing"] {
            let whole = run(&set, purpose, FIXTURE).0;
            for size in 1..40 {
                let (chunked, _) = run_with(
                    &set,
                    purpose,
                    &CsvJob::default(),
                    Some(&key()),
                    FIXTURE.as_bytes(),
                    size,
                )
                .expect("chunked");
                assert_eq!(chunked, whole, "{purpose} in chunks of {size}");
            }
        }
    }

    fn piped(text: &str, sep: char) -> String {
        text.replace("\",\"", &format!("\"{sep}\""))
    }

    #[test]
    fn the_delimiter_is_read_from_the_header() {
        let set = shipped();
        let comma = run(&set, "newsletter", FIXTURE).0;
        for sep in ['|', '\t', ';', '^', '`'] {
            let (out, o) = run_with(
                &set,
                "newsletter",
                &CsvJob::default(),
                None,
                piped(FIXTURE, sep).as_bytes(),
                3,
            )
            .expect("sniffed");
            assert_eq!(out, piped(&comma, sep));
            assert_eq!(o.records, 1);
        }
        // The job's own delimiter must agree with the header.
        let job = CsvJob {
            object: None,
            delimiter: Some(Delimiter::Pipe),
        };
        let r = run_with(&set, "newsletter", &job, None, FIXTURE.as_bytes(), 0);
        assert!(matches!(r, Err(CsvFailure::Delimiter)), "{r:?}");
        let r = run_with(
            &set,
            "newsletter",
            &job,
            None,
            piped(FIXTURE, '|').as_bytes(),
            0,
        );
        assert!(r.is_ok(), "{r:?}");
        // An unquoted header says nothing about its delimiter: refused unless the job says.
        let unquoted = "Id|Email\n1|a@example.com\n";
        let r = run_with(
            &set,
            "analytics",
            &CsvJob::default(),
            Some(&key()),
            unquoted.as_bytes(),
            0,
        );
        assert!(matches!(r, Err(CsvFailure::Delimiter)), "{r:?}");
        let r = run_with(
            &set,
            "analytics",
            &job,
            Some(&key()),
            unquoted.as_bytes(),
            0,
        );
        assert!(r
            .expect("known delimiter")
            .0
            .starts_with("\"Id\"|\"Email\"\n"));
        // Anything else after the first name is refused.
        let r = run_with(
            &set,
            "analytics",
            &CsvJob::default(),
            None,
            b"\"Id\"x\"Email\"\n",
            0,
        );
        assert!(matches!(r, Err(CsvFailure::Delimiter)), "{r:?}");
        // A header with another delimiter than the job's fails to parse: fail closed.
        let r = run_with(&set, "analytics", &job, None, b"\"Id\",\"Email\"\n", 0);
        assert!(r.is_err());
    }

    #[test]
    fn empty_and_header_only_bodies() {
        let set = shipped();
        let (out, o) = run(&set, "newsletter", "");
        assert_eq!(out, "");
        assert_eq!(o.records, 0);
        let (out, o) = run(&set, "newsletter", "\"Id\",\"Email\",\"MobilePhone\"");
        assert_eq!(out, "\"Id\",\"Email\"\n");
        assert_eq!(o.records, 0);
        let (out, _) = run(&set, "newsletter", "\"Id\"\n");
        assert_eq!(out, "\"Id\"\n");
        // The delimiter is only known at the end: one column, no line end.
        for input in ["\"Id\"", "\"Id\",\"MobilePhone\"", "\"Id\"\n\"003\""] {
            for size in [0, 1, 2] {
                let (out, _) = run_with(
                    &set,
                    "analytics",
                    &CsvJob::default(),
                    None,
                    input.as_bytes(),
                    size,
                )
                .expect("short body");
                let want = if input.ends_with("\"003\"") {
                    "\"Id\"\n\"003\"\n"
                } else {
                    "\"Id\"\n"
                };
                assert_eq!(out, want, "{input:?} in chunks of {size}");
            }
        }
    }

    #[test]
    fn malformed_bodies_fail_closed() {
        let set = shipped();
        for bad in [
            "\"Id\",\"Email\"\n\"1\",\"a\",\"b\"\n",
            "\"Id\",\"Email\"\n\"1\",\"a\"x\n",
            "\"Id\",\"Id\"\n\"1\",\"2\"\n",
            "\"Id\",\"Email\"\n\"1\",\"unterminated\n",
        ] {
            let r = run_with(
                &set,
                "analytics",
                &CsvJob::default(),
                Some(&key()),
                bad.as_bytes(),
                0,
            );
            assert!(matches!(r, Err(CsvFailure::Malformed(_))), "{bad:?}: {r:?}");
        }
        let limits = CsvLimits { max_row_bytes: 8 };
        let p = set.purpose("analytics").expect("purpose");
        let plan = csv_plan(&set, p, op(&set, RESULTS), None, &CsvJob::default()).expect("plan");
        let mut g = plan.governor(limits);
        // The first name never ends: the held bytes are capped.
        assert!(g.feed(b"\"Iddddddddddddddddd").is_err());
    }

    #[test]
    fn the_job_object_narrows_the_field_map() {
        let set = shipped();
        let contact = CsvJob {
            object: Some("Contact".into()),
            delimiter: None,
        };
        let (out, _) =
            run_with(&set, "newsletter", &contact, None, FIXTURE.as_bytes(), 0).expect("contact");
        assert_eq!(out, run(&set, "newsletter", FIXTURE).0);
        // As Account rows nothing but Id is classified, and Account has no consent signal.
        let account = CsvJob {
            object: Some("Account".into()),
            delimiter: None,
        };
        let (out, o) =
            run_with(&set, "newsletter", &account, None, FIXTURE.as_bytes(), 0).expect("account");
        assert_eq!(out, "\"Id\"\n");
        assert_eq!(o.records, 0);
        assert_eq!(o.actions.get("record_removed"), Some(&2));
        // An object the operation does not list classifies nothing.
        let case = CsvJob {
            object: Some("Case".into()),
            delimiter: None,
        };
        let (out, _) = run_with(&set, "support", &case, None, FIXTURE.as_bytes(), 0).expect("case");
        assert_eq!(
            out.lines().next(),
            Some("\"Id\",\"FirstName\",\"LastName\",\"Email\",\"MobilePhone\",\"Birthdate\",\"MailingCity\",\"MailingCountry\",\"HasOptedOutOfEmail\",\"Account.Name\"")
        );
        assert!(
            !out.contains("Livia"),
            "support redacts unclassified: {out}"
        );
    }

    #[test]
    fn the_header_picks_the_object_and_clashes_take_the_stricter_rule() {
        let set = shipped();
        // Only Account has BillingCity: Name is the company (user.workplace, kept).
        let account =
            "\"Id\",\"Name\",\"BillingCity\"\n\"001\",\"Fictional Widgets GmbH\",\"Berlin\"\n";
        let (out, _) = run(&set, "analytics", account);
        assert_eq!(out, account, "analytics keeps workplace and city");
        // Id and Name fit every object: Name is a person on Contact and Lead, so dropped.
        let either = "\"Id\",\"Name\"\n\"003\",\"Livia Marquardt-Ostby\"\n";
        let (out, _) = run(&set, "analytics", either);
        assert_eq!(out, "\"Id\"\n\"003\"\n");
        // Lead rows: Company is Lead's user.workplace.
        let lead = "\"Id\",\"Company\",\"Email\",\"HasOptedOutOfEmail\"\n\"00Q\",\"ACME\",\"x@example.com\",\"false\"\n";
        let (out, o) = run(&set, "newsletter", lead);
        assert_eq!(out, "\"Id\",\"Email\"\n\"00Q\",\"x@example.com\"\n");
        assert_eq!(o.records, 1);
        // A column no object classifies is unclassified: `otherwise`.
        let (out, _) = run(
            &set,
            "support",
            "\"Id\",\"Secret__c\"\n\"003\",\"s3cr3t\"\n",
        );
        assert_eq!(out, "\"Id\",\"Secret__c\"\n\"003\",\"\"\n");
    }

    #[test]
    fn consent_cells_are_text() {
        let set = shipped();
        let rows = "\"Id\",\"Email\",\"HasOptedOutOfEmail\"\n\
                    \"1\",\"a@example.com\",\"false\"\n\
                    \"2\",\"b@example.com\",\"true\"\n\
                    \"3\",\"c@example.com\",\"\"\n\
                    \"4\",\"d@example.com\",\"FALSE\"\n\
                    \"5\",\"e@example.com\",\"0\"\n";
        let (out, o) = run(&set, "newsletter", rows);
        assert_eq!(out, "\"Id\",\"Email\"\n\"1\",\"a@example.com\"\n");
        assert_eq!(o.actions.get("record_removed"), Some(&4));
        // Without the consent column no row has consent.
        let (out, o) = run(
            &set,
            "newsletter",
            "\"Id\",\"Email\"\n\"1\",\"a@example.com\"\n",
        );
        assert_eq!(out, "\"Id\",\"Email\"\n");
        assert_eq!(o.records, 0);
    }

    const INVENTORY: &str = r#"
dialect: salesforce
resources:
  Contact:
    operations:
      - { method: GET, path: "/services/data/v*/query", op: read, class: list }
    records: ["$.records[*]"]
    fields:
      $.Id: system
      $.Email: user.contact.email
      $.Phone: user.contact.phone_number
      $.Ssn__c: user.government_id
      $.Opt: user.privacy_preferences
    children:
      $.Account: Account
    consent:
      marketing_email: { field: $.Opt, granted_when: "yes" }
  Account:
    fields:
      $.Name: user.workplace
      $.Ok: user.privacy_preferences
    consent:
      marketing_email: { field: $.Ok, granted_when: [1, "Y"], separator: ";" }
  Jobs:
    operations:
      - { method: GET, path: "/services/data/v*/jobs/query/*/results", op: read, class: bulk_export, format: csv, objects: [Contact] }
"#;

    fn custom(purposes: &str) -> Arc<PolicySet> {
        let (set, _) = PolicySet::from_texts(&[
            ("inventory/salesforce.yaml", INVENTORY),
            ("purposes.yaml", purposes),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        Arc::new(set)
    }

    const PURPOSES: &str = r#"
controller: { name: Example GmbH, jurisdiction: DE }
purposes:
  guarded:
    data_use: essential.service
    legal_basis: contract
    fields:
      user.contact.email: { mask: { keep_last: 0 } }
      user.contact.phone_number: { mask: { keep_last: 4 } }
      user.government_id: block
      user.workplace: { redact: "[company]" }
    otherwise: drop
  mailing:
    data_use: marketing.communications.email
    legal_basis: consent
    requires_consent: marketing_email
    fields:
      user.contact.email: keep
      user.workplace: keep
  watching:
    data_use: analytics.reporting
    legal_basis: legitimate_interests
    mode: shadow
    requires_consent: marketing_email
    fields:
      user.contact.email: pseudonymise
      user.government_id: block
"#;

    #[test]
    fn a_block_category_in_the_header_refuses_before_any_row() {
        let set = custom(PURPOSES);
        let input = "\"Id\",\"Email\",\"Ssn__c\"\n\"1\",\"a@example.com\",\"123-45-6789\"\n";
        let r = run_with(
            &set,
            "guarded",
            &CsvJob::default(),
            None,
            input.as_bytes(),
            0,
        );
        match r {
            Err(CsvFailure::Refused(Refusal::Blocked {
                category,
                field_paths,
            })) => {
                assert_eq!(category, "user.government_id");
                assert_eq!(field_paths, ["$.Ssn__c"]);
            }
            other => panic!("{other:?}"),
        }
        // Without it: masks, and a fixed redaction that leaves empty cells empty.
        let input = "\"Id\",\"Email\",\"Phone\",\"Account.Name\"\n\
                     \"1\",\"a@example.com\",\"+49 151 00000001\",\"ACME\"\n\
                     \"2\",\"\",\"\",\"\"\n";
        let (out, o) = run_with(
            &set,
            "guarded",
            &CsvJob::default(),
            None,
            input.as_bytes(),
            0,
        )
        .expect("masked");
        assert_eq!(
            out,
            "\"Id\",\"Email\",\"Phone\",\"Account.Name\"\n\
             \"1\",\"*@example.com\",\"************0001\",\"[company]\"\n\
             \"2\",\"\",\"\",\"\"\n"
        );
        assert_eq!(o.actions.get("mask"), Some(&4));
        assert_eq!(o.actions.get("redact"), Some(&2));
        assert!(!o.categories_delivered.contains("user.workplace"));
    }

    #[test]
    fn the_governor_refuses_before_any_output_and_a_later_failure_never_completes() {
        let set = custom(PURPOSES);
        let plan = |purpose: &str| {
            let p = set.purpose(purpose).expect("purpose");
            csv_plan(&set, p, op(&set, RESULTS), None, &CsvJob::default())
                .expect("plan")
                .governor(CsvLimits::default())
        };
        let mut g = plan("guarded");
        let r = g.feed(b"\"Id\",\"Ssn__c\"\n\"1\",\"123\"\n");
        assert!(matches!(
            r,
            Err(CsvFailure::Refused(Refusal::Blocked { .. }))
        ));
        assert!(matches!(g.finish(), Err(CsvFailure::Spent)));

        let mut g = plan("guarded");
        let report = g.report();
        let mut out = g
            .feed(b"\"Id\",\"Email\"\n\"1\",\"a@example.com\"\n")
            .expect("governed")
            .to_vec();
        out.extend_from_slice(&g.finish().expect("finished"));
        assert_eq!(&out[..], b"\"Id\",\"Email\"\n\"1\",\"*@example.com\"\n");
        assert!(report.complete());
        assert_eq!(report.records(), 1);

        // A failure after the header ends the body with an error, never as complete.
        let mut g = plan("guarded");
        let report = g.report();
        let head = g.feed(b"\"Id\",\"Email\"\n\"1\",\"a").expect("header ok");
        assert!(g.streaming() && !head.is_empty());
        assert!(g.feed(b"\"b\n").is_err());
        assert!(matches!(g.finish(), Err(CsvFailure::Spent)));
        assert!(!report.complete());
    }

    #[test]
    fn parents_with_their_own_signal_are_emptied_without_it() {
        let set = custom(PURPOSES);
        let input = "\"Id\",\"Email\",\"Opt\",\"Account.Name\",\"Account.Ok\"\n\
                     \"1\",\"a@example.com\",\"yes\",\"ACME\",\"1\"\n\
                     \"2\",\"b@example.com\",\"yes\",\"Initech\",\"N;Y\"\n\
                     \"3\",\"c@example.com\",\"yes\",\"Hooli\",\"N\"\n\
                     \"4\",\"d@example.com\",\"no\",\"Umbrella\",\"1\"\n";
        let (out, o) = run_with(
            &set,
            "mailing",
            &CsvJob::default(),
            None,
            input.as_bytes(),
            0,
        )
        .expect("mailing");
        assert_eq!(
            out,
            "\"Id\",\"Email\",\"Account.Name\"\n\
             \"1\",\"a@example.com\",\"ACME\"\n\
             \"2\",\"b@example.com\",\"Initech\"\n\
             \"3\",\"c@example.com\",\"\"\n"
        );
        assert_eq!(o.records, 3);
        assert_eq!(o.rules.get("consent.marketing_email"), Some(&1));
        assert!(!out.contains("Hooli") && !out.contains("Umbrella"));
    }

    #[test]
    fn shadow_mode_passes_the_body_and_reports() {
        let set = custom(PURPOSES);
        let input = "\"Id\",\"Email\",\"Ssn__c\",\"Opt\"\n\
                     \"1\",\"a@example.com\",\"123\",\"yes\"\n\
                     \"2\",\"b@example.com\",\"456\",\"no\"\n";
        let (out, o) = run_with(
            &set,
            "watching",
            &CsvJob::default(),
            None,
            input.as_bytes(),
            2,
        )
        .expect("shadow passes");
        assert_eq!(out, input);
        assert!(o.shadow && o.changed);
        assert!(matches!(o.shadow_refusal, Some(Refusal::Blocked { .. })));
        assert_eq!(o.records, 1);
        assert_eq!(o.actions.get("record_removed"), Some(&1));
    }

    #[test]
    fn pseudonymise_without_a_key_is_refused() {
        let set = shipped();
        let r = run_with(
            &set,
            "analytics",
            &CsvJob::default(),
            None,
            FIXTURE.as_bytes(),
            0,
        );
        assert!(
            matches!(r, Err(CsvFailure::Refused(Refusal::PseudonymKeyMissing))),
            "{r:?}"
        );
        // No Email column: nothing to pseudonymise, no key needed.
        let r = run_with(
            &set,
            "analytics",
            &CsvJob::default(),
            None,
            b"\"Id\"\n\"1\"\n",
            0,
        );
        assert!(r.is_ok());
    }

    #[test]
    fn policy_check_reports_bad_csv_operations() {
        let purposes = "controller: { name: X, jurisdiction: DE }\npurposes: {}\n";
        let with_op = |op: &str| {
            format!(
                "dialect: salesforce\nresources:\n  Contact:\n    fields: {{ $.Id: system }}\n  Jobs:\n    operations:\n      - {op}\n"
            )
        };
        for (op, message) in [
            (
                "{ method: GET, path: /r, op: read, class: bulk_export, format: xml }",
                "unknown format `xml`",
            ),
            (
                "{ method: GET, path: /r, op: read, class: bulk_export, format: csv }",
                "needs `objects`",
            ),
            (
                "{ method: PUT, path: /r, op: write, format: csv, objects: [Contact] }",
                "reads only",
            ),
            (
                "{ method: GET, path: /r, op: read, class: list, objects: [Contact] }",
                "`objects` applies to `format: csv`",
            ),
            (
                "{ method: GET, path: /r, op: read, class: list, format: csv, objects: [Contcat] }",
                "did you mean `Contact`",
            ),
            (
                "{ method: GET, path: /r, op: read, class: list, format: csv, objects: [Contact, Contact] }",
                "twice",
            ),
            (
                "{ method: GET, path: /r, op: read, class: list, format: csv, objects: [] }",
                "is empty",
            ),
        ] {
            let inv = with_op(op);
            let errors = PolicySet::from_texts(&[
                ("inventory/salesforce.yaml", inv.as_str()),
                ("purposes.yaml", purposes),
            ])
            .expect_err(op);
            assert!(
                errors.iter().any(|d| d.message.contains(message)),
                "{op}: {errors:?}"
            );
        }
        let ok = with_op(
            "{ method: GET, path: /r, op: read, class: list, format: csv, objects: [Contact] }",
        );
        assert!(PolicySet::from_texts(&[
            ("inventory/salesforce.yaml", ok.as_str()),
            ("purposes.yaml", purposes),
        ])
        .is_ok());
    }

    #[test]
    fn only_csv_reads_are_planned() {
        let set = shipped();
        let p = set.purpose("analytics").expect("purpose");
        let json = op(&set, "/services/data/v66.0/query");
        assert!(matches!(
            csv_plan(&set, p, json, None, &CsvJob::default()),
            Err(Refusal::NoInventory(Dialect::Salesforce))
        ));
    }
}
