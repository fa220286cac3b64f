//! The CSV governor through `csv_plan` and `feed`/`finish`, as the proxy drives it.

use http::Method;

use super::*;
use crate::body::csv::CsvLimits;
use crate::policy::engine::Outcome;
use crate::policy::{PseudonymKey, RouteMatch};

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
