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
use super::coverage::{Coverage, Exercised};
use super::csv::{csv_plan, CsvFailure, CsvJob, CsvReport};
use super::decide::{self, Bodies, Denial, Exchange, Verdict};
use super::diagnostic::{Diagnostic, Severity};
use super::engine::{Direction, Outcome, Refusal};
use super::model::{ExpectedDecision, RawDirection, RawTestFile};
use super::query::QueryRefusal;
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
    /// What the cases touched: rules, consent signals, inventory fields.
    pub exercised: Exercised,
    /// What that covers of the policy set (when the set compiled).
    pub coverage: Option<Coverage>,
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
        let unread = self
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        if unread > 0 {
            writeln!(f, "{unread} error(s) above: those tests did not run")?;
        }
        writeln!(
            f,
            "{} passed, {} failed",
            self.passed(),
            self.failed() + unread
        )
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
    report.coverage = Some(Coverage::of(&set, &report.exercised));
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
    report.coverage = Some(Coverage::of(set, &report.exercised));
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
    for (i, case) in file.tests.iter().enumerate() {
        let (name, failures) = match &case.value.0 {
            Ok(c) => (
                c.name.clone(),
                run_case(set, c, &key, &mut report.exercised),
            ),
            Err(e) => (
                format!("case {} (not read)", i + 1),
                vec![format!("not a test case: {e}")],
            ),
        };
        report.cases.push(CaseResult {
            file: src.display.clone(),
            line: case.referenced.line() as usize,
            name,
            failures,
        });
    }
}

fn run_case(
    set: &PolicySet,
    case: &super::model::RawTestCase,
    key: &PseudonymKey,
    exercised: &mut Exercised,
) -> Vec<String> {
    let mut fail = Vec::new();
    let expect = &case.expect;
    let want = expect.decision.map(ExpectedDecision::as_str);
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
    let op = match decide::route(set, &[], dialect, &method, path) {
        RouteMatch::Operation(op) => op,
        other => {
            let got = match other {
                RouteMatch::Ungoverned { .. } => "ungoverned",
                RouteMatch::Metadata { .. } => "metadata",
                _ => "unknown",
            };
            if want != Some(got) {
                fail.push(format!(
                    "route is {got}, expected decision {:?}",
                    want.unwrap_or("(governed)")
                ));
            }
            return fail;
        }
    };
    let Some(purpose) = set.purpose(&case.purpose) else {
        return vec![format!("unknown purpose `{}`", case.purpose)];
    };
    let dir = match case.direction {
        Some(RawDirection::Request) => Direction::Request,
        Some(RawDirection::Response) => Direction::Response,
        None if op.op() == OpKind::Read => Direction::Response,
        None => Direction::Request,
    };
    if let (BodyFormat::Csv, Direction::Response, Some(Value::String(text))) =
        (op.format(), dir, &case.body)
    {
        if let Err(d) = decide::admit(set, purpose, op, path, query) {
            let result = Err(d);
            check_decision(want, &result, &mut fail);
            compare(expect, &result, &mut fail);
            return fail;
        }
        return run_csv_case(set, case, purpose, op, text, key, exercised);
    }
    let ex = Exchange {
        dialect,
        method: &method,
        path,
        query,
        upstream_ungoverned: &[],
    };
    let mut body = case.body.clone().unwrap_or(Value::Null);
    let bodies = match dir {
        Direction::Request if case.body.is_none() => Bodies::default(),
        Direction::Request => Bodies {
            request: Some(&mut body),
            response: None,
        },
        Direction::Response => Bodies {
            request: None,
            response: Some(&mut body),
        },
    };
    let result = match decide::exchange(set, purpose, &ex, bodies, Some(key), true) {
        Verdict::Governed(g) => {
            for d in &g.trace {
                exercised
                    .rules
                    .insert((purpose.name.clone(), d.rule.clone()));
                if let Some(f) = &d.field {
                    exercised.fields.insert((dialect.to_string(), f.clone()));
                }
            }
            if let Some(want) = &expect.forwarded {
                if !matches!(g.result, Err(Denial::Query(_))) {
                    // the path and query as the proxy forwards them (consent fields added)
                    let got = match g.forwarded_query.as_deref().or(query) {
                        Some(q) => format!("{path}?{q}"),
                        None => path.to_string(),
                    };
                    if *want != got {
                        fail.push(format!("forwarded: expected {want}, got {got}"));
                    }
                }
            }
            g.result
        }
        // classified as an operation above; the same set cannot answer otherwise
        _ => return vec!["the route changed while the case ran".to_string()],
    };
    check_decision(want, &result, &mut fail);
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

/// The expected decision against the one taken.
fn check_decision(want: Option<&str>, result: &Result<Outcome, Denial>, fail: &mut Vec<String>) {
    let got = decide::decision_name(result);
    if let Some(d) = want {
        if d != got {
            fail.push(format!("decision: expected {d}, got {got} ({result:?})"));
        }
    }
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
    exercised: &mut Exercised,
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
            if expect.decision != Some(ExpectedDecision::NotInspectable) {
                fail.push(format!(
                    "decision: expected {}, got not_inspectable ({e})",
                    expect.decision.map_or("(any)", ExpectedDecision::as_str)
                ));
            }
            return fail;
        }
    };
    if let Ok(o) = &result {
        for rule in o.rules.keys() {
            exercised
                .rules
                .insert((purpose.name.clone(), rule.to_string()));
        }
    }
    let result = result.map_err(Denial::Policy);
    check_decision(
        expect.decision.map(ExpectedDecision::as_str),
        &result,
        &mut fail,
    );
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
    result: &Result<Outcome, Denial>,
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
                    let k = k.as_str();
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
                    Denial::Policy(
                        Refusal::Blocked { field_paths, .. }
                        | Refusal::WriteActionNotAllowed { field_paths }
                        | Refusal::WriteFieldsDropped { field_paths, .. },
                    ) => field_paths.clone(),
                    Denial::Query(
                        QueryRefusal::NotAllowed { fields }
                        | QueryRefusal::ConsentFieldMissing { fields },
                    ) => fields.clone(),
                    Denial::Query(QueryRefusal::AggregateNotAllowed { object, .. }) => {
                        vec![object.clone()]
                    }
                    _ => Vec::new(),
                };
                if *want != got {
                    fail.push(format!("field_paths: expected {want:?}, got {got:?}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PolicySet {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        PolicySet::load(&dir).expect("shipped policies").0
    }

    const GOOD: &str = "  - name: the versions list is ungoverned\n    dialect: salesforce\n    method: GET\n    path: /services/data/\n    purpose: newsletter\n    expect: { decision: ungoverned }\n";

    #[test]
    fn a_case_with_an_unknown_key_or_decision_fails_alone() {
        let text = format!(
            "tests:\n{GOOD}  - name: typo\n    dialect: salesforce\n    method: GET\n    path: /services/data/\n    purpose: newsletter\n    expec: {{ decision: ungoverned }}\n  - name: unknown decision\n    dialect: salesforce\n    method: PATCH\n    path: /services/data/v66.0/sobjects/Contact/1\n    purpose: newsletter\n    expect: {{ decision: write_refused }}\n{GOOD}"
        );
        let report = run_text(&shipped(), Path::new("t.yaml"), &text);
        assert_eq!(report.passed(), 2, "{report}");
        assert_eq!(report.failed(), 2, "{report}");
        assert!(!report.is_ok());
        let out = report.to_string();
        assert!(out.contains("FAIL t.yaml:8: case 2 (not read)"), "{out}");
        assert!(out.contains("unknown field `expec`"), "{out}");
        assert!(out.contains("unknown variant `write_refused`"), "{out}");
        assert!(out.trim_end().ends_with("2 passed, 2 failed"), "{out}");
    }

    #[test]
    fn an_unreadable_file_counts_as_failed_in_the_summary() {
        let text = format!("pseudonym_kee: x\ntests:\n{GOOD}");
        let report = run_text(&shipped(), Path::new("t.yaml"), &text);
        assert!(!report.is_ok());
        let out = report.to_string();
        assert!(
            out.contains("1 error(s) above: those tests did not run"),
            "{out}"
        );
        assert!(out.trim_end().ends_with("0 passed, 1 failed"), "{out}");
    }

    #[test]
    fn query_refusals_are_decisions_of_table_tests() {
        let text = "tests:\n  - name: a predicate on the mobile phone\n    dialect: salesforce\n    method: GET\n    path: \"/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+WHERE+MobilePhone='1'\"\n    purpose: newsletter\n    expect: { decision: query_not_allowed, field_paths: [Contact.MobilePhone] }\n";
        let report = run_text(&shipped(), Path::new("t.yaml"), text);
        assert!(report.is_ok(), "{report}");
    }
}
