//! Engine and compiler unit tests over small inline policies.

use http::Method;
use serde_json::{json, Value};

use super::*;
use crate::dialect::Dialect;

const PURPOSES: &str = r#"
controller: { name: Example GmbH, jurisdiction: DE }
purposes:
  news:
    data_use: marketing.communications.email
    legal_basis: consent
    requires_consent: marketing_email
    fields:
      user.name.first: keep
      user.contact.email: keep
      user.demographic.date_of_birth: { generalise: year }
      user.contact.address.postal_code: { truncate: 2 }
    otherwise: drop
  open:
    data_use: essential.service
    legal_basis: contract
    fields:
      user.name: keep
      user.contact: keep
      user.contact.phone_number: { mask: { keep_last: 4 } }
      user.contact.email: { mask: 0 }
      user.privacy_preferences: keep
      user.workplace: keep
      user.content: keep
    otherwise: redact
    writes: allow
  pseudo:
    data_use: analytics.reporting
    legal_basis: legitimate_interests
    fields:
      user.contact.email: pseudonymise
      user.name: { redact: "[redacted]" }
    otherwise: drop
  guarded:
    data_use: essential.service
    legal_basis: contract
    fields:
      user.name: keep
      user.demographic: block
    otherwise: drop
    writes: allow
  quiet:
    data_use: essential.service
    legal_basis: contract
    fields:
      user.name: keep
    otherwise: drop
    writes: allow
    silent_write_minimisation: [Contact]
  shadowy:
    data_use: essential.service
    legal_basis: contract
    mode: shadow
    fields:
      user.name.first: keep
    otherwise: drop
"#;

const SF: &str = r#"
dialect: salesforce
ungoverned: ["GET /services/data/"]
resources:
  Contact:
    operations:
      - { method: GET, path: "/services/data/v*/query", op: read, class: list }
      - { method: GET, path: "/services/data/v*/sobjects/Contact/*", op: read, class: single }
      - { method: PATCH, path: "/services/data/v*/sobjects/Contact/*", op: write }
      - { method: DELETE, path: "/services/data/v*/sobjects/Contact/*", op: delete }
    records: ["$.records[*]", "$"]
    type_key: $.attributes.type
    envelope: { $.totalSize: system, $.done: system }
    fields:
      $.attributes: system
      $.Id: system
      $.FirstName: user.name.first
      $.LastName: user.name.last
      $.Email: user.contact.email
      $.Phone: user.contact.phone_number
      $.Birthdate: user.demographic.date_of_birth
      $.MailingPostalCode: user.contact.address.postal_code
      $.HasOptedOutOfEmail: user.privacy_preferences
      $.Cases.totalSize: system
      $.Cases.done: system
    children:
      $.Account: Account
      $.Cases.records[*]: Case
    consent:
      marketing_email: { field: $.HasOptedOutOfEmail, granted_when: false }
  Account:
    fields: { $.attributes: system, $.Name: user.workplace }
  Case:
    fields: { $.attributes: system, $.Subject: user.content.private, $.SuppliedEmail: user.contact.email }
"#;

const HS: &str = r#"
dialect: hubspot
resources:
  contacts:
    operations:
      - { method: GET, path: /crm/v3/objects/contacts, op: read, class: list }
    records: ["$.results[*]"]
    envelope: { $.paging: system }
    fields:
      $.id: system
      $.properties.email: user.contact.email
      $.properties.hs_email_optout: user.privacy_preferences
    consent:
      marketing_email: { field: $.properties.hs_email_optout, granted_when: false }
"#;

const DY: &str = r#"
dialect: dynamics
resources:
  contact:
    operations:
      - { method: GET, path: "/api/data/v*/contacts", op: read, class: list }
    records: ["$.value[*]"]
    envelope: { "$['@odata.context']": system }
    fields:
      "$['@odata.etag']": system
      $.contactid: system
      $.firstname: user.name.first
      $.donotemail: user.privacy_preferences
      $._parentcustomerid_value: system
      "$['_parentcustomerid_value@OData.Community.Display.V1.FormattedValue']": user.workplace
    consent:
      marketing_email: { field: $.donotemail, granted_when: false }
"#;

fn set() -> PolicySet {
    match PolicySet::from_texts(&[
        ("purposes.yaml", PURPOSES),
        ("inventory/salesforce.yaml", SF),
        ("inventory/hubspot.yaml", HS),
        ("inventory/dynamics.yaml", DY),
    ]) {
        Ok((s, _)) => s,
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn run(
    set: &PolicySet,
    dialect: Dialect,
    method: &str,
    path: &str,
    purpose: &str,
    dir: Direction,
    body: &mut Value,
) -> Result<Outcome, Refusal> {
    let m = Method::from_bytes(method.as_bytes()).expect("method");
    let RouteMatch::Operation(op) = set.classify(dialect, &m, path) else {
        panic!("no operation for {method} {path}");
    };
    let p = set.purpose(purpose).expect("purpose");
    apply(set, p, op, dir, body, Some(&PseudonymKey::new(b"test-key")))
}

fn query_page() -> Value {
    json!({
        "totalSize": 3, "done": true, "nextSecret": "leak-1",
        "records": [
            {"attributes": {"type": "Contact", "url": "/x"}, "Id": "003A", "FirstName": "Livia",
             "LastName": "Marquardt", "Email": "livia@example.com", "Birthdate": "1984-02-29",
             "MailingPostalCode": "99999", "HasOptedOutOfEmail": false, "Custom__c": "leak-2",
             "Account": {"attributes": {"type": "Account"}, "Name": "Widgets GmbH", "Secret": "leak-3"},
             "Cases": {"totalSize": 1, "done": true, "records": [
                 {"attributes": {"type": "Case"}, "Subject": "Help", "SuppliedEmail": "livia@example.com"}]}},
            {"attributes": {"type": "Contact"}, "Id": "003B", "FirstName": "Tomasz",
             "Email": "t@example.org", "HasOptedOutOfEmail": true},
            {"attributes": {"type": "Contact"}, "Id": "003C", "FirstName": "Nobody",
             "HasOptedOutOfEmail": null}
        ]
    })
}

#[test]
fn classify_routes() {
    let s = set();
    assert!(matches!(
        s.classify(Dialect::Salesforce, &Method::GET, "/services/data/"),
        RouteMatch::Ungoverned { .. }
    ));
    match s.classify(
        Dialect::Salesforce,
        &Method::GET,
        "/services/data/v66.0/query",
    ) {
        RouteMatch::Operation(op) => {
            assert_eq!(op.resource(), "Contact");
            assert_eq!(op.class(), RouteClass::List);
            assert_eq!(op.op(), OpKind::Read);
            assert_eq!(op.template(), "GET /services/data/v*/query");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.classify(
            Dialect::Salesforce,
            &Method::GET,
            "/services/data/v66.0/sobjects/Lead/1"
        ),
        RouteMatch::Unknown
    ));
    assert!(matches!(
        s.classify(Dialect::Generic, &Method::GET, "/"),
        RouteMatch::Unknown
    ));
    assert_eq!(s.version().len(), 64);
    assert_eq!(s.controller().name, "Example GmbH");
}

#[test]
fn newsletter_view_of_a_query_page() {
    let s = set();
    let mut body = query_page();
    let out = run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/query",
        "news",
        Direction::Response,
        &mut body,
    )
    .expect("allowed");
    assert_eq!(
        body,
        json!({
            "totalSize": 3, "done": true,
            "records": [
                {"attributes": {"type": "Contact", "url": "/x"}, "Id": "003A", "FirstName": "Livia",
                 "Email": "livia@example.com", "Birthdate": "1984", "MailingPostalCode": "99",
                 "Account": {"attributes": {"type": "Account"}},
                 "Cases": {"totalSize": 1, "done": true, "records": [
                     {"attributes": {"type": "Case"}, "SuppliedEmail": "livia@example.com"}]}}
            ]
        })
    );
    // Contact 003A, its Account (Name dropped but it carried one) and its Case.
    assert_eq!(out.records, 3);
    assert_eq!(out.actions["record_removed"], 2);
    assert_eq!(out.rules["consent.marketing_email"], 2);
    assert!(out.categories_received.contains("unclassified"));
    assert!(out.categories_received.contains("user.name.last"));
    assert!(!out.categories_delivered.contains("user.name.last"));
    assert!(out.categories_delivered.contains("user.contact.email"));
    assert!(!out.categories_delivered.contains("system"));
    assert!(out.changed);
    let text = body.to_string();
    for leak in [
        "leak-1",
        "leak-2",
        "leak-3",
        "Marquardt",
        "Tomasz",
        "Widgets",
    ] {
        assert!(!text.contains(leak), "{leak} leaked");
    }
}

#[test]
fn consent_absent_null_mistyped_is_no_consent() {
    let s = set();
    for v in [json!(null), json!("false"), json!(0)] {
        let mut body = json!({"records": [{"Id": "1", "FirstName": "A", "HasOptedOutOfEmail": v}]});
        run(
            &s,
            Dialect::Salesforce,
            "GET",
            "/services/data/v66.0/query",
            "news",
            Direction::Response,
            &mut body,
        )
        .expect("ok");
        assert_eq!(body, json!({"records": []}));
    }
    let mut body = json!({"records": [{"Id": "1", "FirstName": "A"}]});
    run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/query",
        "news",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(body, json!({"records": []}));
}

#[test]
fn hubspot_strings_are_coerced() {
    let s = set();
    let mut body = json!({"results": [
        {"id": "1", "properties": {"email": "a@example.com", "hs_email_optout": "false"}},
        {"id": "2", "properties": {"email": "b@example.com", "hs_email_optout": "true"}},
        {"id": "3", "properties": {"email": "c@example.com", "hs_email_optout": "FALSE"}}
    ], "paging": {"next": {"after": "4"}}});
    let out = run(
        &s,
        Dialect::HubSpot,
        "GET",
        "/crm/v3/objects/contacts",
        "news",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(
        body,
        json!({"results": [{"id": "1", "properties": {"email": "a@example.com"}}], "paging": {"next": {"after": "4"}}})
    );
    assert_eq!(out.records, 1);
}

#[test]
fn single_record_without_consent_is_withheld() {
    let s = set();
    let mut body = json!({"attributes": {"type": "Contact"}, "Id": "1", "FirstName": "A", "HasOptedOutOfEmail": true});
    let r = run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/sobjects/Contact/1",
        "news",
        Direction::Response,
        &mut body,
    );
    assert_eq!(
        r,
        Err(Refusal::RecordWithheld {
            rule: "consent.marketing_email".into()
        })
    );
}

#[test]
fn unknown_types_are_dropped_whole() {
    let s = set();
    let mut body = json!({"records": [
        {"attributes": {"type": "Opportunity"}, "Name": "x"},
        {"attributes": {"type": 5}, "Name": "y"},
        {"attributes": {"type": "Account"}, "Name": "Widgets"}
    ]});
    let out = run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/query",
        "open",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(
        body,
        json!({"records": [{"attributes": {"type": "Account"}, "Name": "Widgets"}]})
    );
    assert_eq!(out.rules["unknown_type"], 2);
    assert_eq!(out.records, 1);
}

#[test]
fn annotations_inherit_and_explicit_wins() {
    let s = set();
    let mut body = json!({
        "@odata.context": "ctx", "@odata.nextLink": "leak-next",
        "value": [{
            "@odata.etag": "W/1", "contactid": "c1", "firstname": "Henrike",
            "firstname@OData.Community.Display.V1.FormattedValue": "Henrike",
            "lastname@OData.Community.Display.V1.FormattedValue": "Solberg",
            "donotemail": false, "donotemail@OData.Community.Display.V1.FormattedValue": "Allow",
            "_parentcustomerid_value": "a1",
            "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue": "Northwind",
            "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account"
        }]
    });
    run(
        &s,
        Dialect::Dynamics,
        "GET",
        "/api/data/v9.2/contacts",
        "news",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(
        body,
        json!({"@odata.context": "ctx", "value": [{
            "@odata.etag": "W/1", "contactid": "c1", "firstname": "Henrike",
            "firstname@OData.Community.Display.V1.FormattedValue": "Henrike",
            "_parentcustomerid_value": "a1",
            "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account"
        }]})
    );
}

#[test]
fn redact_mask_and_otherwise_redact() {
    let s = set();
    let mut body = json!({"attributes": {"type": "Contact"}, "Id": "1", "FirstName": "Livia", "Email": "livia@example.com",
        "Phone": "+49 151 00000001", "Birthdate": "1984-02-29", "New__c": {"a": 1}});
    let out = run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/sobjects/Contact/1",
        "open",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(
        body,
        json!({"attributes": {"type": "Contact"}, "Id": "1", "FirstName": "Livia", "Email": "*****@example.com",
            "Phone": "************0001", "Birthdate": null, "New__c": null})
    );
    assert_eq!(out.actions["mask"], 2);
    assert_eq!(out.actions["redact"], 2);
    assert_eq!(out.rules["otherwise"], 2);
    assert_eq!(out.rules["system"], 2);
}

#[test]
fn pseudonyms_are_stable_within_and_differ_across_purposes() {
    let s = set();
    let mk = || json!({"attributes": {"type": "Contact"}, "Id": "1", "FirstName": "Livia", "Email": "livia@example.com"});
    let mut a = mk();
    run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/sobjects/Contact/1",
        "pseudo",
        Direction::Response,
        &mut a,
    )
    .expect("ok");
    let mut b = mk();
    run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/sobjects/Contact/1",
        "pseudo",
        Direction::Response,
        &mut b,
    )
    .expect("ok");
    assert_eq!(a, b);
    let email = a["Email"].as_str().expect("pseudonym");
    assert!(email.starts_with("pz1_"));
    assert_eq!(a["FirstName"], json!("[redacted]"));
    let other = PseudonymKey::new(b"test-key")
        .derive("open")
        .pseudonym("livia@example.com");
    assert_ne!(email, other);
    // no key configured: refuse rather than pass the value
    let p = s.purpose("pseudo").expect("p");
    let RouteMatch::Operation(op) = s.classify(
        Dialect::Salesforce,
        &Method::GET,
        "/services/data/v66.0/sobjects/Contact/1",
    ) else {
        panic!()
    };
    let mut c = mk();
    assert_eq!(
        apply(&s, p, op, Direction::Response, &mut c, None),
        Err(Refusal::PseudonymKeyMissing)
    );
}

#[test]
fn block_refuses_naming_paths() {
    let s = set();
    let mut body = json!({"records": [{"attributes": {"type": "Contact"}, "FirstName": "A", "Birthdate": "1984-01-01"},
                                      {"attributes": {"type": "Contact"}, "FirstName": "B", "Birthdate": null}]});
    let r = run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/query",
        "guarded",
        Direction::Response,
        &mut body,
    );
    assert_eq!(
        r,
        Err(Refusal::Blocked {
            category: "user.demographic.date_of_birth".into(),
            field_paths: vec!["$.records[*].Birthdate".into()]
        })
    );
    let mut ok = json!({"records": [{"attributes": {"type": "Contact"}, "FirstName": "B", "Birthdate": null}]});
    run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/query",
        "guarded",
        Direction::Response,
        &mut ok,
    )
    .expect("null does not flow");
}

#[test]
fn writes() {
    let s = set();
    let path = "/services/data/v66.0/sobjects/Contact/1";
    let mut body = json!({"FirstName": "A"});
    assert_eq!(
        run(
            &s,
            Dialect::Salesforce,
            "PATCH",
            path,
            "news",
            Direction::Request,
            &mut body
        ),
        Err(Refusal::WriteDenied)
    );
    assert_eq!(
        run(
            &s,
            Dialect::Salesforce,
            "DELETE",
            path,
            "news",
            Direction::Request,
            &mut Value::Null
        ),
        Err(Refusal::WriteDenied)
    );
    // a field the purpose may not write (unclassified, `drop`, and `otherwise: redact`,
    // which is a drop on writes) refuses the write, naming the paths
    for purpose in ["guarded", "open"] {
        let mut body = json!({"FirstName": "A", "LastName": "B", "Unknown__c": "x"});
        assert_eq!(
            run(
                &s,
                Dialect::Salesforce,
                "PATCH",
                path,
                purpose,
                Direction::Request,
                &mut body,
            ),
            Err(Refusal::WriteFieldsDropped {
                field_paths: vec!["$.Unknown__c".into()],
                nothing_left: false,
            }),
            "{purpose}"
        );
    }
    // unless the purpose minimises the resource's writes silently
    let mut body = json!({"FirstName": "A", "LastName": "B", "Unknown__c": "x"});
    let out = run(
        &s,
        Dialect::Salesforce,
        "PATCH",
        path,
        "quiet",
        Direction::Request,
        &mut body,
    )
    .expect("ok");
    assert_eq!(body, json!({"FirstName": "A", "LastName": "B"}));
    assert_eq!(out.actions["drop"], 1);
    // and even then, a write left with ids alone is refused, never sent as `{}`
    for (mut body, dropped) in [
        (
            json!({"Email": "a@example.com", "Phone": "+49"}),
            vec!["$.Email", "$.Phone"],
        ),
        (
            json!({"Id": "1", "attributes": {"type": "Contact"}, "Email": "a@example.com"}),
            vec!["$.Email"],
        ),
    ] {
        assert_eq!(
            run(
                &s,
                Dialect::Salesforce,
                "PATCH",
                path,
                "quiet",
                Direction::Request,
                &mut body,
            ),
            Err(Refusal::WriteFieldsDropped {
                field_paths: dropped.into_iter().map(String::from).collect(),
                nothing_left: true,
            })
        );
    }
    // a write that loses nothing passes unchanged, also when it is empty
    for mut body in [json!({"FirstName": "A"}), json!({})] {
        let before = body.clone();
        let out = run(
            &s,
            Dialect::Salesforce,
            "PATCH",
            path,
            "guarded",
            Direction::Request,
            &mut body,
        )
        .expect("ok");
        assert!(!out.changed);
        assert_eq!(body, before);
    }
    // a mask rule would store altered values: refuse, naming the fields
    let mut body = json!({"FirstName": "A", "Phone": "+1", "Email": "a@example.com"});
    assert_eq!(
        run(
            &s,
            Dialect::Salesforce,
            "PATCH",
            path,
            "open",
            Direction::Request,
            &mut body
        ),
        Err(Refusal::WriteActionNotAllowed {
            field_paths: vec!["$.Email".into(), "$.Phone".into()]
        })
    );
    // block applies to writes too
    let mut body = json!({"FirstName": "A", "Birthdate": "1990-01-01"});
    assert!(matches!(
        run(
            &s,
            Dialect::Salesforce,
            "PATCH",
            path,
            "guarded",
            Direction::Request,
            &mut body
        ),
        Err(Refusal::Blocked { .. })
    ));
}

#[test]
fn shadow_mode_changes_nothing() {
    let s = set();
    let mut body = query_page();
    let before = body.clone();
    let out = run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/query",
        "shadowy",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(body, before);
    assert!(out.shadow);
    assert!(out.changed);
    assert!(out.actions["drop"] > 0);
}

#[test]
fn body_without_records_is_envelope_only() {
    let s = set();
    // `$.results[*]` misses: everything but the envelope is unclassified
    let mut body =
        json!({"paging": {"next": {"after": "2"}}, "other": [{"email": "x@example.com"}]});
    let out = run(
        &s,
        Dialect::HubSpot,
        "GET",
        "/crm/v3/objects/contacts",
        "open",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(
        body,
        json!({"paging": {"next": {"after": "2"}}, "other": null})
    );
    assert_eq!(out.records, 0);
}

#[test]
fn empty_page_is_not_a_record() {
    let s = set();
    let mut body = json!({"totalSize": 0, "done": true, "records": []});
    let out = run(
        &s,
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/query",
        "news",
        Direction::Response,
        &mut body,
    )
    .expect("ok");
    assert_eq!(body, json!({"totalSize": 0, "done": true, "records": []}));
    assert_eq!(out.records, 0);
    assert!(!out.changed);
}

fn errors_of(files: &[(&str, &str)]) -> Vec<String> {
    match PolicySet::from_texts(files) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(std::string::ToString::to_string).collect(),
    }
}

#[test]
fn diagnostics_carry_positions_and_hints() {
    let inv = "dialect: salesforce\nresources:\n  Contact:\n    operations:\n      - { method: GET, path: /a, op: read }\n    records: [\"$.records[\"]\n    fields:\n      $.Email: user.contact.emial\n    children: { $.Account: Acount }\n";
    let purposes = "controller: { name: X, jurisdiction: DE }\npurposes:\n  p:\n    data_use: a\n    legal_basis: consnet\n    fields:\n      user.name.frist: keep\n      user.contact: hash\n    otherwise: keep\n";
    let errs = errors_of(&[("purposes.yaml", purposes), ("inventory/sf.yaml", inv)]);
    let all = errs.join("\n");
    assert!(
        all.contains("inventory/sf.yaml:5:9: error: governed read route `GET /a` has no class"),
        "{all}"
    );
    assert!(
        all.contains(
            "inventory/sf.yaml:6:15: error: record selector: invalid JSONPath: at character 11"
        ),
        "{all}"
    );
    assert!(all.contains("inventory/sf.yaml:8:16: error: unknown data category `user.contact.emial` (did you mean `user.contact.email`?)"), "{all}");
    assert!(all.contains("unknown resource `Acount`"), "{all}");
    assert!(
        all.contains(
            "purposes.yaml:5:18: error: unknown legal basis `consnet` (did you mean `consent`?)"
        ),
        "{all}"
    );
    assert!(all.contains("(did you mean `user.name.first`?)"), "{all}");
    assert!(all.contains("no unkeyed hash"), "{all}");
    assert!(all.contains("otherwise is never keep"), "{all}");
    assert!(errs.len() >= 8, "{all}");
}

#[test]
fn unknown_keys_and_syntax_errors_are_reported() {
    let errs = errors_of(&[
        (
            "purposes.yaml",
            "controller: { name: X, jurisdiction: DE }\npurposes: {}\n",
        ),
        (
            "inventory/a.yaml",
            "dialect: hubspot\nresources:\n  c:\n    feilds: {}\n",
        ),
        ("inventory/b.yaml", "dialect: [\n"),
    ]);
    assert!(
        errs.iter().any(|e| e.starts_with("inventory/a.yaml:4:")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("inventory/b.yaml:")),
        "{errs:?}"
    );
}

#[test]
fn warnings_for_unclassified_keep_and_redundant_rules() {
    let inv = "dialect: hubspot\nresources:\n  c:\n    operations: [{ method: GET, path: /x, op: read, class: list }]\n    records: [$]\n    unclassified: keep\n";
    let purposes = "controller: { name: X, jurisdiction: DE }\npurposes:\n  p:\n    data_use: essential.service\n    legal_basis: contract\n    fields:\n      user.contact: keep\n      user.contact.email: keep\n";
    let (set, warnings) =
        PolicySet::from_texts(&[("purposes.yaml", purposes), ("inventory/h.yaml", inv)])
            .expect("compiles");
    let all: Vec<String> = warnings
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    assert!(
        all.iter().any(|w| w.contains("keeps unclassified fields")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|w| w.contains("repeats the rule for `user.contact`")),
        "{all:?}"
    );
    // and unclassified: keep really keeps
    let RouteMatch::Operation(op) = set.classify(Dialect::HubSpot, &Method::GET, "/x") else {
        panic!()
    };
    let mut body = json!({"new_field": "v"});
    let out = apply(
        &set,
        set.purpose("p").expect("p"),
        op,
        Direction::Response,
        &mut body,
        None,
    )
    .expect("ok");
    assert_eq!(body, json!({"new_field": "v"}));
    assert_eq!(out.rules["unclassified.keep"], 1);
}

#[test]
fn policy_set_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicySet>();
    assert_send_sync::<Outcome>();
    assert_send_sync::<Refusal>();
    assert_send_sync::<PseudonymKey>();
}

#[test]
fn version_hashes_relative_paths_and_bytes_in_order() {
    use sha2::{Digest, Sha256};
    let dir = std::env::temp_dir().join(format!("zweck-policy-version-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inventory")).expect("mkdir");
    std::fs::write(dir.join("purposes.yaml"), PURPOSES).expect("write");
    std::fs::write(dir.join("inventory/salesforce.yaml"), SF).expect("write");
    std::fs::write(dir.join("inventory/hubspot.yaml"), HS).expect("write");
    std::fs::write(dir.join("inventory/dynamics.yaml"), DY).expect("write");
    let (set, _) = PolicySet::load(&dir).expect("loads");
    let mut h = Sha256::new();
    for (rel, text) in [
        ("inventory/dynamics.yaml", DY),
        ("inventory/hubspot.yaml", HS),
        ("inventory/salesforce.yaml", SF),
        ("purposes.yaml", PURPOSES),
    ] {
        h.update(rel.as_bytes());
        h.update([0u8]);
        h.update(text.as_bytes());
    }
    assert_eq!(set.version(), hex::encode(h.finalize()));
    let report = check(&dir);
    assert!(report.is_ok(), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn directions_carry_the_transfer_log_names() {
    for (dir, name) in [
        (Direction::Request, "to_processor"),
        (Direction::Response, "from_processor"),
    ] {
        assert_eq!(serde_json::to_value(dir).expect("serialise"), json!(name));
        assert_eq!(
            serde_json::from_value::<Direction>(json!(name)).expect("deserialise"),
            dir
        );
    }
}

/// A minimal inventory for the authoring tests below.
const MINI_INV: &str = "dialect: salesforce\nresources:\n  Contact:\n    operations: [{ method: GET, path: \"/c\", op: read, class: list }]\n    records: [\"$.records[*]\"]\n    fields:\n      $.Id: system\n      $.Email: user.contact.email\n      $.Allergies__c: user.health_and_medical\n      $.Union__c: user.demographic.trade_union_membership\n      $.Convictions__c: user.criminal_history\n      $.City: user.contact.address.city\n      $.Zip: user.contact.address.postal_code\n";

fn purposes_with(body: &str) -> String {
    format!("controller: {{ name: X, jurisdiction: DE }}\npurposes:\n  p:\n    data_use: essential.service\n    legal_basis: contract\n{body}")
}

fn errors_with(purposes: &str, extra: &[(&str, &str)]) -> String {
    let mut files = vec![("purposes.yaml", purposes), ("inventory/sf.yaml", MINI_INV)];
    files.extend_from_slice(extra);
    errors_of(&files).join("\n")
}

#[test]
fn a_burst_above_the_records_of_a_window_is_refused() {
    let all = errors_with(
        &purposes_with("    export_budget: { records: 1000, per: 1d, burst: 5000 }\n"),
        &[],
    );
    assert!(all.contains("purposes.yaml:6:"), "{all}");
    assert!(
        all.contains("burst 5000 is more than records 1000"),
        "{all}"
    );
    let all = errors_with(
        &purposes_with("    export_budget: { records: 10, per: 1h, per_class: { list: { records: 5, burst: 6 } } }\n"),
        &[],
    );
    assert!(
        all.contains("per_class.list: burst 6 is more than records 5"),
        "{all}"
    );
    assert!(errors_with(
        &purposes_with("    export_budget: { records: 10, per: 1h, burst: 10 }\n"),
        &[]
    )
    .is_empty());
}

#[test]
fn an_unknown_data_use_is_an_error_with_a_hint_and_own_uses_extend_fideslang() {
    let purposes = "controller: { name: X, jurisdiction: DE }\npurposes:\n  p:\n    data_use: marketing.comunications.email\n    legal_basis: contract\n";
    let all = errors_with(purposes, &[]);
    assert!(
        all.contains("purposes.yaml:4:15: error: unknown data use `marketing.comunications.email` (did you mean `marketing.communications.email`?)"),
        "{all}"
    );
    let own = "controller: { name: X, jurisdiction: DE }\ndata_uses: [essential.service.crm_sync, nowhere.crm_sync]\npurposes:\n  p:\n    data_use: essential.service.crm_sync\n    legal_basis: contract\n";
    let all = errors_with(own, &[]);
    assert!(
        all.contains("data use `nowhere.crm_sync` must extend a fideslang data use"),
        "{all}"
    );
    assert!(!all.contains("unknown data use"), "{all}");
}

#[test]
fn repeated_keys_are_named_with_both_lines_and_other_diagnostics_still_come() {
    let purposes = "controller: { name: X, jurisdiction: DE }\npurposes:\n  p:\n    data_use: essential.service\n    legal_basis: contract\n    fields:\n      user.name: keep\n      user.name: drop\n  p:\n    data_use: essential.service\n    legal_basis: contrct\n";
    let inv = MINI_INV.replace("      $.City: user.contact.address.city\n", "      $.City: user.contact.address.city\n      $.City: user.contact.address.state\n      $.State: user.contact.address.stat\n");
    let all = errors_of(&[("purposes.yaml", purposes), ("inventory/sf.yaml", &inv)]).join("\n");
    assert!(!all.contains("DuplicateKeyPolicy"), "{all}");
    assert!(
        all.contains("purposes.yaml:9:3: error: purpose `p` is written twice (first at line 3)"),
        "{all}"
    );
    assert!(
        all.contains(
            "purposes.yaml:8:7: error: rule for `user.name` is written twice (first at line 7)"
        ),
        "{all}"
    );
    assert!(all.contains("unknown legal basis `contrct`"), "{all}");
    assert!(
        all.contains("unknown data category `user.contact.address.stat`"),
        "{all}"
    );
    assert!(!all.contains("relies on consent"), "{all}");
    assert!(!all.contains("gets `keep`"), "{all}");
    assert!(all.contains("field `$.City` is classified twice"), "{all}");
}

#[test]
fn malformed_actions_and_paths_are_explained_in_the_users_terms() {
    let all = errors_with(
        &purposes_with("    fields:\n      user.contact.email: { pseudonymise: {} }\n      user.name: pseudonymize\n      user.contact.address.city: { kep: 1 }\n      user.contact.address.postal_code: { generalise: { postal_prefix: 0 } }\n"),
        &[],
    );
    assert!(
        all.contains("`pseudonymise` takes no argument: write `pseudonymise`"),
        "{all}"
    );
    assert!(
        all.contains("unknown action `kep` (did you mean `keep`?)"),
        "{all}"
    );
    assert!(
        all.contains("postal_prefix is a number of characters"),
        "{all}"
    );
    assert!(
        !all.contains("user.name"),
        "pseudonymize is accepted: {all}"
    );
    let inv = MINI_INV.replace("      $.Id: system\n", "      Id: system\n");
    let all = errors_of(&[
        ("purposes.yaml", &purposes_with("")),
        ("inventory/sf.yaml", &inv),
    ])
    .join("\n");
    assert!(
        all.contains("`Id`: a JSONPath starts with `$` (did you mean `$.Id`?)"),
        "{all}"
    );
    assert!(!all.contains("jp_query"), "{all}");
}

#[test]
fn groups_apply_to_their_categories_and_own_rules_win() {
    let purposes = "controller: { name: X, jurisdiction: DE }\ngroups:\n  address: [user.contact.address.city, user.contact.address.postal_code]\npurposes:\n  p:\n    data_use: essential.service\n    legal_basis: contract\n    fields:\n      user: keep\n      gdpr.art9: drop\n      gdpr.art10: block\n      address: drop\n      user.contact.address.postal_code: { truncate: 2 }\n";
    let (set, _) =
        PolicySet::from_texts(&[("purposes.yaml", purposes), ("inventory/sf.yaml", MINI_INV)])
            .expect("compiles");
    let op = set
        .classify(Dialect::Salesforce, &Method::GET, "/c")
        .operation()
        .expect("op");
    let p = set.purpose("p").expect("p");
    let mut body = json!({"records": [{"Id": "1", "Email": "a@example.com", "Allergies__c": "nuts", "Union__c": "IG Metall", "City": "Musterstadt", "Zip": "99999"}]});
    let out = apply(&set, p, op, Direction::Response, &mut body, None).expect("ok");
    assert_eq!(
        body,
        json!({"records": [{"Id": "1", "Email": "a@example.com", "Zip": "99"}]})
    );
    assert_eq!(out.rules["fields.gdpr.art9"], 2);
    assert_eq!(out.rules["fields.address"], 1);
    let mut convicted = json!({"records": [{"Id": "1", "Convictions__c": "x"}]});
    let r = apply(&set, p, op, Direction::Response, &mut convicted, None).expect_err("blocked");
    assert!(matches!(r, Refusal::Blocked { .. }), "{r:?}");
    // a group may not take a category's name, and two groups may not disagree
    let bad = "controller: { name: X, jurisdiction: DE }\ngroups:\n  user.name: [user.name.first]\n  a: [user.contact.email]\n  b: [user.contact.email]\npurposes:\n  p:\n    data_use: essential.service\n    legal_basis: contract\n    fields:\n      a: keep\n      b: drop\n";
    let all = errors_with(bad, &[]);
    assert!(
        all.contains("group `user.name` has the name of a category"),
        "{all}"
    );
    assert!(
        all.contains("`user.contact.email` gets `keep` from `a` and `drop` from `b`"),
        "{all}"
    );
}

#[test]
fn special_categories_flow_only_under_a_declared_condition() {
    let all = errors_with(&purposes_with("    fields:\n      user: keep\n"), &[]);
    assert!(all.contains("lets GDPR Art. 9 special categories flow through the rule for `user` (keep) without `art9_condition`"), "{all}");
    assert!(all.contains("`user.health_and_medical`"), "{all}");
    assert!(
        all.contains(
            "lets GDPR Art. 10 criminal-conviction data flow through the rule for `user` (keep)"
        ),
        "{all}"
    );
    let all = errors_with(
        &purposes_with(
            "    fields:\n      user.demographic.trade_union_membership: pseudonymise\n",
        ),
        &[],
    );
    assert!(
        all.contains("`user.demographic.trade_union_membership`"),
        "{all}"
    );
    // dropping, redacting or blocking needs no condition; keeping needs one
    assert!(errors_with(&purposes_with("    fields:\n      user: keep\n      gdpr.art9: drop\n      gdpr.art10: { redact: null }\n"), &[]).is_empty());
    let declared = purposes_with("    art9_condition: health_or_social_care\n    art10_basis: \"§ 10 Example Act\"\n    fields:\n      user: keep\n");
    assert!(errors_with(&declared, &[]).is_empty());
    let (set, _) = PolicySet::from_texts(&[
        ("purposes.yaml", &declared),
        ("inventory/sf.yaml", MINI_INV),
    ])
    .expect("compiles");
    let p = set.purpose("p").expect("p");
    assert_eq!(
        p.art9_condition.map(super::set::Art9Condition::article),
        Some("9(2)(h)".to_string())
    );
    let all = errors_with(&purposes_with("    art9_condition: health_care\n"), &[]);
    assert!(
        all.contains("unknown Art. 9(2) condition `health_care`"),
        "{all}"
    );
}

#[test]
fn string_generalisation_reads_its_table_from_the_policy_directory() {
    let purposes = purposes_with("    fields:\n      user.contact.address.city: { generalise: { map: maps/city.csv } }\n      user.contact.address.postal_code: { generalise: { postal_prefix: 2 } }\n");
    let table = "city,region\nMusterstadt,Nord\n";
    let (set, _) = PolicySet::from_texts(&[
        ("purposes.yaml", &purposes),
        ("inventory/sf.yaml", MINI_INV),
        ("maps/city.csv", table),
    ])
    .expect("compiles");
    let op = set
        .classify(Dialect::Salesforce, &Method::GET, "/c")
        .operation()
        .expect("op");
    let mut body = json!({"records": [{"Id": "1", "City": "musterstadt", "Zip": "99999"}, {"Id": "2", "City": "Elsewhere", "Zip": "9"}]});
    apply(
        &set,
        set.purpose("p").expect("p"),
        op,
        Direction::Response,
        &mut body,
        None,
    )
    .expect("ok");
    assert_eq!(
        body,
        json!({"records": [{"Id": "1", "City": "Nord", "Zip": "99"}, {"Id": "2", "City": null, "Zip": null}]})
    );
    let all = errors_with(&purposes, &[]);
    assert!(
        all.contains("map `maps/city.csv`: no such file under the policy directory"),
        "{all}"
    );
    let all = errors_with(&purposes, &[("maps/city.csv", "city,region\nA,B\nB,C\n")]);
    assert!(all.contains("idempotent"), "{all}");
    let escape = purposes_with(
        "    fields:\n      user.contact.address.city: { generalise: { map: ../etc/passwd } }\n",
    );
    assert!(errors_with(&escape, &[]).contains("name a file under the policy directory"));
}

/// `classify` skips, by an index, the routes that cannot match (`pattern::RouteIndex`): on
/// every shipped inventory it must find what the scan of the whole inventory in file order
/// finds (operations first, then `ungoverned`; the first match wins), for paths made from
/// every route of every inventory, their neighbours, and every method. A change of
/// precedence fails here.
#[test]
fn classify_finds_what_a_scan_of_the_inventory_finds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let set = PolicySet::load(&dir).expect("shipped policies").0;
    let templates: Vec<String> = set
        .inventories
        .values()
        .flat_map(|inv| {
            inv.operations
                .iter()
                .map(|o| o.template().to_string())
                .chain(inv.ungoverned.iter().map(|u| u.template().to_string()))
        })
        .collect();
    let mut paths = std::collections::BTreeSet::new();
    for t in &templates {
        let (_, path) = t.split_once(' ').expect("METHOD /path");
        for filler in ["x", "v66.0", "003Fict00000001AAA", "6f0c-1"] {
            for tail in ["", "a", "a/b"] {
                let concrete = path
                    .replace("/**", &format!("/{tail}"))
                    .replace('*', filler);
                let concrete = concrete.trim_end_matches('/').to_string();
                let shorter = concrete.rsplit_once('/').map(|(a, _)| a.to_string());
                paths.insert(format!("{concrete}/"));
                paths.insert(format!("{concrete}/extra"));
                paths.extend(shorter);
                paths.insert(if concrete.is_empty() {
                    "/".into()
                } else {
                    concrete
                });
            }
        }
    }
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE",
    ]
    .map(|m| Method::from_bytes(m.as_bytes()).expect("method"));
    let scan = |inv: &set::Inventory, m: &Method, p: &str| -> String {
        if let Some(i) = inv.operations.iter().position(|o| o.pattern.matches(m, p)) {
            return format!("operation {i}");
        }
        match inv.ungoverned.iter().position(|u| u.matches(m, p)) {
            Some(i) => format!("ungoverned {i}"),
            None => "unknown".into(),
        }
    };
    let (mut compared, mut matched) = (0, 0);
    for (dialect, inv) in &set.inventories {
        let op_of = |template: &str| {
            inv.operations
                .iter()
                .position(|o| std::ptr::eq(o.template(), template))
                .map_or("a foreign operation".into(), |i| format!("operation {i}"))
        };
        for m in &methods {
            for p in &paths {
                let found = match set.classify(*dialect, m, p) {
                    RouteMatch::Operation(op) => op_of(op.template()),
                    RouteMatch::Metadata { template, .. } => op_of(template),
                    RouteMatch::Ungoverned { template } => inv
                        .ungoverned
                        .iter()
                        .position(|u| std::ptr::eq(u.template(), template))
                        .map_or("a foreign entry".into(), |i| format!("ungoverned {i}")),
                    RouteMatch::Unknown => "unknown".into(),
                };
                assert_eq!(found, scan(inv, m, p), "{dialect:?} {m} {p}");
                compared += 1;
                matched += usize::from(found != "unknown");
            }
        }
    }
    // not vacuous: every route of every inventory was among the paths, with its method
    assert!(
        matched >= templates.len(),
        "{matched} of {compared} matched"
    );
}
