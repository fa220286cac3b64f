//! `zweck policy test`: table tests kept next to the policies (`policies/tests/*.yaml`),
//! run through the same `classify` + `apply` the proxy uses, like `opa test`.
//!
//! A case names dialect, method, path, purpose and an input body, and expects a decision
//! and/or the exact output body, record count, action counts, delivered categories or
//! refused field paths. Test bodies are fixtures written by policy authors, so failure
//! messages may show them (unlike anything the proxy logs).

use std::fmt;
use std::path::{Path, PathBuf};

use http::Method;
use serde_json::Value;

use super::compile::{read_dir, Source};
use super::csv::{csv_plan, CsvFailure, CsvJob, CsvReport};
use super::diagnostic::{Diagnostic, Severity};
use super::engine::{apply_shaped, Direction, Outcome, Refusal};
use super::model::RawTestFile;
use super::set::{BodyFormat, OpKind, PolicySet, RouteMatch};
use super::PseudonymKey;
use crate::body::csv::{CsvLimits, Delimiter};
use crate::dialect::Dialect;

/// The key used when a test file names none (tests must be reproducible).
pub const DEFAULT_TEST_KEY: &str = "zweck-policy-test-key";

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: PathBuf,
    pub line: usize,
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
}

impl CaseResult {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// All results of a run, plus problems loading policies or test files.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    pub cases: Vec<CaseResult>,
    pub diagnostics: Vec<Diagnostic>,
}

impl TestReport {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }
    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
    /// True when the policies and test files loaded and every case passed.
    pub fn is_ok(&self) -> bool {
        self.failed() == 0
            && !self
                .diagnostics
                .iter()
                .any(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        for c in &self.cases {
            let status = if c.passed() { "ok  " } else { "FAIL" };
            writeln!(f, "{status} {}:{}: {}", c.file.display(), c.line, c.name)?;
            for m in &c.failures {
                writeln!(f, "       {m}")?;
            }
        }
        writeln!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Loads the policies in `dir` and runs every `dir/tests/*.yaml`.
pub fn run_dir(dir: &Path) -> TestReport {
    let mut report = TestReport::default();
    let sources = match read_dir(dir) {
        Ok(s) => s,
        Err(d) => {
            report.diagnostics = d;
            return report;
        }
    };
    let set = match super::compile::compile(&sources) {
        Ok((set, _warnings)) => set,
        Err(d) => {
            report.diagnostics = d;
            return report;
        }
    };
    for src in sources.iter().filter(|s| {
        s.rel.starts_with("tests/") && (s.rel.ends_with(".yaml") || s.rel.ends_with(".yml"))
    }) {
        run_file(&set, src, &mut report);
    }
    report
}

/// Runs one test file's text against a compiled set (used by `run_dir` and doc checks).
pub fn run_text(set: &PolicySet, display: &Path, text: &str) -> TestReport {
    let mut report = TestReport::default();
    let src = Source {
        rel: String::new(),
        display: display.to_path_buf(),
        bytes: text.as_bytes().to_vec(),
    };
    run_file(set, &src, &mut report);
    report
}

fn run_file(set: &PolicySet, src: &Source, report: &mut TestReport) {
    let text = String::from_utf8_lossy(&src.bytes);
    let file: RawTestFile = match serde_saphyr::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let loc = e.location();
            report.diagnostics.push(Diagnostic {
                file: src.display.clone(),
                line: loc.map_or(0, |l| l.line() as usize),
                column: loc.map_or(0, |l| l.column() as usize),
                severity: Severity::Error,
                message: super::diagnostic::first_line(&e.to_string()),
            });
            return;
        }
    };
    let key = PseudonymKey::new(
        file.pseudonym_key
            .as_deref()
            .unwrap_or(DEFAULT_TEST_KEY)
            .as_bytes(),
    );
    for case in &file.tests {
        let failures = run_case(set, &case.value, &key);
        report.cases.push(CaseResult {
            file: src.display.clone(),
            line: case.referenced.line() as usize,
            name: case.value.name.clone(),
            failures,
        });
    }
}

/// The decision name a case can expect.
pub fn decision_name(r: &Result<Outcome, Refusal>) -> &'static str {
    match r {
        Ok(o) if o.changed && !o.shadow => "minimised",
        Ok(_) => "allowed",
        Err(Refusal::Blocked { .. }) => "blocked",
        Err(Refusal::WriteDenied) => "write_denied",
        Err(Refusal::WriteActionNotAllowed { .. }) => "write_action_not_allowed",
        Err(Refusal::WriteFieldsDropped { .. }) => "write_fields_dropped",
        Err(Refusal::RecordWithheld { .. }) => "withheld",
        Err(Refusal::PseudonymKeyMissing) => "pseudonym_key_missing",
        Err(Refusal::NoInventory(_)) => "no_inventory",
    }
}

fn run_case(set: &PolicySet, case: &super::model::RawTestCase, key: &PseudonymKey) -> Vec<String> {
    let mut fail = Vec::new();
    let expect = &case.expect;
    let Some(dialect) = Dialect::from_name(&case.dialect) else {
        return vec![format!("unknown dialect `{}`", case.dialect)];
    };
    let Ok(method) = Method::from_bytes(case.method.as_bytes()) else {
        return vec![format!("bad method `{}`", case.method)];
    };
    // a query string is checked by query minimisation, as the proxy does before forwarding
    let (path, query) = match case.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (case.path.as_str(), None),
    };
    let op = match set.classify(dialect, &method, path) {
        RouteMatch::Operation(op) => op,
        other => {
            let got = match other {
                RouteMatch::Ungoverned { .. } => "ungoverned",
                RouteMatch::Metadata { .. } => "metadata",
                _ => "unknown",
            };
            if expect.decision.as_deref() != Some(got) {
                fail.push(format!(
                    "route is {got}, expected decision {:?}",
                    expect.decision.as_deref().unwrap_or("(governed)")
                ));
            }
            return fail;
        }
    };
    let Some(purpose) = set.purpose(&case.purpose) else {
        return vec![format!("unknown purpose `{}`", case.purpose)];
    };
    let dir = match case.direction.as_deref() {
        Some("request") => Direction::Request,
        Some("response") => Direction::Response,
        None if op.op() == OpKind::Read => Direction::Response,
        None => Direction::Request,
        Some(other) => return vec![format!("direction is request or response, not `{other}`")],
    };
    let mut body = case.body.clone().unwrap_or(Value::Null);
    // the query as the proxy forwards it (consent fields added) and the shape of its answer
    let reviewed = super::query::review_url(set, purpose, op, path, query).and_then(|r| {
        match (&case.body, dir) {
            (Some(_), Direction::Request) => {
                let shape = super::query::review_body(set, purpose, op, path, &mut body)?;
                Ok(if shape.is_plain() {
                    r
                } else {
                    super::query::Reviewed {
                        query: r.query,
                        shape,
                        carried: r.carried,
                    }
                })
            }
            _ => Ok(r),
        }
    });
    let reviewed = match reviewed {
        Ok(r) => r,
        Err(refusal) => return query_refused(expect, &refusal),
    };
    if let Some(want) = &expect.forwarded {
        let got = match reviewed.query.as_deref().or(query) {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        if *want != got {
            fail.push(format!("forwarded: expected {want}, got {got}"));
        }
    }
    if let (BodyFormat::Csv, Direction::Response, Some(Value::String(text))) =
        (op.format(), dir, &case.body)
    {
        return run_csv_case(set, case, purpose, op, text, key);
    }
    let result = apply_shaped(set, purpose, op, dir, &mut body, Some(key), &reviewed.shape);
    let decision = decision_name(&result);
    if let Some(d) = &expect.decision {
        if d != decision {
            fail.push(format!(
                "decision: expected {d}, got {decision} ({result:?})"
            ));
        }
    }
    if let Some(b) = &expect.body {
        if *b != body {
            fail.push(format!(
                "body:\n         expected {b}\n         got      {body}"
            ));
        }
    }
    compare(expect, &result, &mut fail);
    fail
}

/// A case whose query review refused the request: its decision and the names it gave.
fn query_refused(
    expect: &super::model::RawExpect,
    refusal: &super::query::QueryRefusal,
) -> Vec<String> {
    use super::query::QueryRefusal;
    let mut fail = Vec::new();
    let (got, fields) = match refusal {
        QueryRefusal::NotAllowed { fields } => ("query_not_allowed", fields.clone()),
        QueryRefusal::Unreadable(_) => ("query_not_checkable", Vec::new()),
        QueryRefusal::AggregateNotAllowed { object, .. } => {
            ("aggregate_not_allowed", vec![object.clone()])
        }
        QueryRefusal::ConsentFieldMissing { fields } => ("consent_field_missing", fields.clone()),
    };
    if expect.decision.as_deref() != Some(got) {
        fail.push(format!(
            "decision: expected {}, got {got} ({refusal})",
            expect.decision.as_deref().unwrap_or("(any)")
        ));
    }
    if let Some(want) = &expect.field_paths {
        if *want != fields {
            fail.push(format!("field_paths: expected {want:?}, got {fields:?}"));
        }
    }
    fail
}

/// A CSV case: `body` is the CSV text of a `format: csv` route's response (Bulk results),
/// `job` optionally what the proxy knows of the job; `expect.body` is the CSV text out.
fn run_csv_case(
    set: &PolicySet,
    case: &super::model::RawTestCase,
    purpose: &super::Purpose,
    op: &super::Operation,
    text: &str,
    key: &PseudonymKey,
) -> Vec<String> {
    let mut fail = Vec::new();
    let expect = &case.expect;
    let mut job = CsvJob::default();
    if let Some(j) = &case.job {
        job.object = j.object.clone();
        if let Some(d) = &j.column_delimiter {
            match Delimiter::from_salesforce(d) {
                Some(d) => job.delimiter = Some(d),
                None => return vec![format!("unknown columnDelimiter `{d}`")],
            }
        }
    }
    let run = || -> Result<(String, CsvReport), CsvFailure> {
        let plan = csv_plan(&set, purpose, op, Some(key), &job).map_err(CsvFailure::Refused)?;
        let mut governor = plan.governor(CsvLimits::default());
        let report = governor.report();
        let mut out = governor.feed(text.as_bytes())?.to_vec();
        out.extend_from_slice(&governor.finish()?);
        Ok((String::from_utf8_lossy(&out).into_owned(), report))
    };
    let (result, body) = match run() {
        Ok((body, report)) => (Ok(report.outcome(set)), Some(body)),
        Err(CsvFailure::Refused(r)) => (Err(r), None),
        Err(e) => {
            if expect.decision.as_deref() != Some("not_inspectable") {
                fail.push(format!(
                    "decision: expected {}, got not_inspectable ({e})",
                    expect.decision.as_deref().unwrap_or("(any)")
                ));
            }
            return fail;
        }
    };
    let decision = decision_name(&result);
    if let Some(d) = &expect.decision {
        if d != decision {
            fail.push(format!(
                "decision: expected {d}, got {decision} ({result:?})"
            ));
        }
    }
    if let Some(b) = &expect.body {
        let got = body.unwrap_or_default();
        if b.as_str() != Some(got.as_str()) {
            fail.push(format!(
                "body:\n         expected {b}\n         got      {got:?}"
            ));
        }
    }
    compare(expect, &result, &mut fail);
    fail
}

/// The expectations both JSON and CSV cases share.
fn compare(
    expect: &super::model::RawExpect,
    result: &Result<Outcome, Refusal>,
    fail: &mut Vec<String>,
) {
    match result {
        Ok(o) => {
            if let Some(n) = expect.records {
                if n != o.records {
                    fail.push(format!("records: expected {n}, got {}", o.records));
                }
            }
            if let Some(a) = &expect.actions {
                for (k, n) in a {
                    let got = o.actions.get(k.as_str()).copied().unwrap_or(0);
                    if got != *n {
                        fail.push(format!("actions.{k}: expected {n}, got {got}"));
                    }
                }
            }
            if let Some(c) = &expect.categories_delivered {
                let want: std::collections::BTreeSet<&str> = c.iter().map(String::as_str).collect();
                if want != o.categories_delivered {
                    fail.push(format!(
                        "categories_delivered: expected {want:?}, got {:?}",
                        o.categories_delivered
                    ));
                }
            }
        }
        Err(r) => {
            if let Some(want) = &expect.field_paths {
                let got = match r {
                    Refusal::Blocked { field_paths, .. }
                    | Refusal::WriteActionNotAllowed { field_paths }
                    | Refusal::WriteFieldsDropped { field_paths, .. } => field_paths.clone(),
                    _ => Vec::new(),
                };
                if *want != got {
                    fail.push(format!("field_paths: expected {want:?}, got {got:?}"));
                }
            }
        }
    }
}
