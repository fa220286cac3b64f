//! The shipped policies: they compile, their table tests pass, and the CRM fixtures come
//! out of the engine without a single value of a dropped category.

use std::path::{Path, PathBuf};

use http::Method;
use serde_json::Value;
use zweck::dialect::Dialect;
use zweck::policy::{self, apply, Direction, PolicySet, PseudonymKey, RouteMatch};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped() -> PolicySet {
    match PolicySet::load(&root().join("policies")) {
        Ok((set, _warnings)) => set,
        Err(e) => panic!(
            "{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn shipped_policies_check_clean() {
    let report = policy::check(&root().join("policies"));
    assert!(report.is_ok(), "{report}");
    // the only warnings are purposes that never see records without their consent signal
    for d in &report.diagnostics {
        assert!(d.message.contains("has no consent signal"), "{d}");
    }
}

#[test]
fn shipped_table_tests_pass() {
    let report = policy::testing::run_dir(&root().join("policies"));
    assert!(report.is_ok(), "{report}");
    assert!(report.cases.len() >= 20, "{report}");
}

/// The shipped policies are examples users copy: every rule and consent signal of every
/// purpose that an inventory field can reach is exercised by a table test.
#[test]
fn shipped_table_tests_exercise_every_reachable_rule() {
    let report = policy::testing::run_dir(&root().join("policies"));
    let coverage = report.coverage.expect("the shipped policies compile");
    assert!(coverage.rules_missed.is_empty(), "{coverage}");
    assert_eq!(coverage.rules_percent(), 100.0);
    assert!(coverage.rules_hit.len() >= 30, "{coverage}");
    // only rules no shipped inventory field holds are unreachable
    for (purpose, rule) in &coverage.unreachable {
        assert!(
            rule == "fields.gdpr.art10" || rule == "fields.user.financial",
            "{purpose}: {rule}"
        );
    }
}

/// A fixture of the repository; a missing one fails the test instead of skipping it.
fn fixture(rel: &str) -> Value {
    let p = root().join("tests/fixtures/crm").join(rel);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).expect("fixture is JSON")
}

/// Strings in `v` (values only, not keys).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn run_fixture(
    set: &PolicySet,
    dialect: Dialect,
    method: Method,
    path: &str,
    rel: &str,
    purpose: &str,
) -> (Value, policy::Outcome) {
    let mut body = fixture(rel);
    let RouteMatch::Operation(op) = set.classify(dialect, &method, path) else {
        panic!("{path} is not governed");
    };
    let p = set.purpose(purpose).expect("purpose");
    let out = apply(
        set,
        p,
        op,
        Direction::Response,
        &mut body,
        Some(&PseudonymKey::new(b"k")),
    )
    .unwrap_or_else(|r| panic!("{rel} for {purpose}: {r}"));
    (body, out)
}

#[test]
fn fixtures_never_leak_names_or_phones_to_newsletter_or_analytics() {
    let set = shipped();
    let cases: &[(Dialect, &str, &str)] = &[
        (
            Dialect::Salesforce,
            "/services/data/v66.0/query",
            "salesforce/soql-query.page1.response.json",
        ),
        (
            Dialect::Salesforce,
            "/services/data/v66.0/sobjects/Contact/003Qy00000Fict01AAA",
            "salesforce/contact-get.response.json",
        ),
        (
            Dialect::HubSpot,
            "/crm/v3/objects/contacts",
            "hubspot/contacts-list.page1.response.json",
        ),
        (
            Dialect::Dynamics,
            "/api/data/v9.2/contacts",
            "dynamics/contacts-list.page1.response.json",
        ),
    ];
    let forbidden = [
        "Marquardt-Ostby",
        "Quill-Everby",
        "+49 151 00000001",
        "+49 30 0000001",
        "Tannenweg 14b",
        "Quenneville",
        "Abernathy-Suzuki",
        "+44 20 0000 0001",
        "7 Imaginary Row",
        "Solberg-Achterberg",
        "Lindqvist-Oduya",
        "+47 400 00 001",
        "Fiktivveien 9",
    ];
    let mut ran = 0;
    for purpose in ["newsletter", "analytics"] {
        for (dialect, path, rel) in cases {
            let (body, out) = run_fixture(&set, *dialect, Method::GET, path, rel, purpose);
            ran += 1;
            let mut values = Vec::new();
            strings(&body, &mut values);
            for v in &values {
                for f in forbidden {
                    assert!(!v.contains(f), "{rel} leaked {f} to {purpose}");
                }
            }
            assert!(
                out.categories_received.contains("user.contact.email"),
                "{rel}"
            );
            assert!(
                !out.categories_delivered.contains("user.name.last"),
                "{rel}"
            );
        }
    }
    assert_eq!(ran, 2 * cases.len(), "every fixture ran for both purposes");
}

#[test]
fn fixtures_keep_every_structural_key_for_support() {
    let set = shipped();
    let (body, _) = run_fixture(
        &set,
        Dialect::Salesforce,
        Method::GET,
        "/services/data/v66.0/query",
        "salesforce/soql-query.page1.response.json",
        "support",
    );
    for k in ["totalSize", "done", "nextRecordsUrl", "records"] {
        assert!(body.get(k).is_some(), "{k} missing");
    }
    let first = &body["records"][0];
    assert!(first["attributes"]["type"].is_string());
    assert!(first["Cases"]["records"][0]["attributes"].is_object());
}

#[test]
fn policy_dir_path_is_what_the_cli_passes() {
    // `zweck policy check policies/` and `zweck policy test policies/` take the directory.
    assert!(Path::new(&root().join("policies/purposes.yaml")).exists());
}
