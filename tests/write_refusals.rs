//! Writes that would lose fields (issue 12, item 6), through the running proxy over HTTP/1.1
//! and HTTP/2: refused with `write-fields-dropped` naming the field paths (never values) before
//! anything reaches the CRM, whatever the body size; forwarded minimised only for a purpose that
//! opts into silent minimisation of the resource, and even then never as an empty write. In a
//! Salesforce `allOrNone` composite and a Dataverse change set one refused part refuses the
//! whole unit before anything is forwarded, and when the CRM itself fails a member, the double
//! (like the CRMs) commits nothing of the unit.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use serde_json::{json, Value};
use zweck::crm_double::Dialect;

/// Generated contacts in the double: a created record gets this index.
const CONTACTS: u64 = 120;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn harness() -> Harness {
    Harness::start_full(
        CONTACTS,
        |_| {},
        |mut o| {
            // bodies up to the governed buffer (8 MiB) are read and inspected whole
            o.max_body_bytes = "16MiB";
            o
        },
    )
    .await
}

fn contact_path(h: &Harness, index: u64) -> String {
    let record = h.double.double.contact(Dialect::Salesforce, index);
    let id = record["Id"].as_str().expect("id");
    format!("/services/data/v66.0/sobjects/Contact/{id}")
}

/// A JSON write of exactly `size` bytes (0: none) carrying fields support may not write:
/// `Birthdate` (support has no rule for it: `otherwise`) and, to fill, an unclassified field.
fn lossy_body(size: usize) -> Bytes {
    match size {
        0 => Bytes::new(),
        16 => Bytes::from_static(br#"{"Secret__c":12}"#),
        _ => {
            let head = r#"{"Title":"Fict","Birthdate":"1990-04-01","Notes__c":""#;
            let tail = r#""}"#;
            let fill = size - head.len() - tail.len();
            Bytes::from(format!("{head}{}{tail}", "x".repeat(fill)))
        }
    }
}

#[tokio::test]
async fn lossy_writes_are_refused_before_the_crm_at_every_size_on_h1_and_h2() {
    let h = harness().await;
    let path = contact_path(&h, 7);
    let before = h.double.double.contact(Dialect::Salesforce, 7);
    for version in [Version::H1, Version::H2] {
        let support = h.cert_client("support-desk", version);
        for size in [0, 16, 64 << 10, 8 << 20] {
            let body = lossy_body(size);
            assert_eq!(body.len(), size);
            let (r, b) = support
                .call(
                    Method::PATCH,
                    &h.url(&path),
                    &[
                        ("zweck-purpose", "support"),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
                .await;
            let what = format!("{version:?} {size} B: {} {}", r.status(), text(&b));
            let slug = problem_slug(&r, &b);
            match size {
                // an empty body declared as JSON is no JSON document
                0 => assert_eq!(
                    (r.status().as_u16(), slug.as_str()),
                    (400, "request-not-inspectable"),
                    "{what}"
                ),
                16 => {
                    assert_eq!(
                        (r.status().as_u16(), slug.as_str()),
                        (403, "write-fields-dropped"),
                        "{what}"
                    );
                    assert!(text(&b).contains("$.Secret__c"), "{what}");
                }
                _ => {
                    assert_eq!(
                        (r.status().as_u16(), slug.as_str()),
                        (403, "write-fields-dropped"),
                        "{what}"
                    );
                    let detail = text(&b);
                    assert!(
                        detail.contains("$.Birthdate") && detail.contains("$.Notes__c"),
                        "{what}"
                    );
                    assert!(
                        !detail.contains("1990-04-01") && !detail.contains("xxxx"),
                        "{what}"
                    );
                }
            }
            assert!(
                !h.double
                    .double
                    .received()
                    .iter()
                    .any(|r| r.method == Method::PATCH),
                "{what}: the write reached the CRM"
            );
        }
    }
    assert_eq!(h.double.double.contact(Dialect::Salesforce, 7), before);
    // the refusals are in the transfer log, as refused flows to the processor
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    assert!(
        log.lines().any(|l| l.contains("write-fields-dropped")),
        "no transfer record names the refusal"
    );
}

#[tokio::test]
async fn a_write_that_loses_nothing_passes_as_sent() {
    let h = harness().await;
    let path = contact_path(&h, 8);
    for version in [Version::H1, Version::H2] {
        let support = h.cert_client("support-desk", version);
        let title = format!("Lossless {version:?}");
        let body = json!({"Title": title, "Phone": "+49 30 0000 0008"}).to_string();
        let (r, b) = support
            .call(
                Method::PATCH,
                &h.url(&path),
                &[
                    ("zweck-purpose", "support"),
                    ("content-type", "application/json"),
                ],
                Bytes::from(body.clone()),
            )
            .await;
        assert_eq!(r.status(), 204, "{}", text(&b));
        let sent = h
            .double
            .double
            .received()
            .into_iter()
            .rev()
            .find(|r| r.method == Method::PATCH)
            .expect("forwarded");
        assert_eq!(text(&sent.body), body);
        assert_eq!(
            h.double.double.contact(Dialect::Salesforce, 8)["Title"],
            json!(title)
        );
    }
}

#[tokio::test]
async fn silent_minimisation_forwards_the_rest_but_never_an_empty_write() {
    let h = Harness::start_full(
        CONTACTS,
        |_| {},
        |mut o| {
            o.policies = policies_with(&o.certs_dir, |t| {
                t.replacen(
                    "    writes: allow\n",
                    "    writes: allow\n    silent_write_minimisation: [Contact]\n",
                    1,
                )
            });
            o
        },
    )
    .await;
    let support = h.cert_client("support-desk", Version::H2);
    let headers = [
        ("zweck-purpose", "support"),
        ("content-type", "application/json"),
    ];
    let path = contact_path(&h, 9);
    let before = h.double.double.contact(Dialect::Salesforce, 9);
    let (r, b) = support
        .call(
            Method::PATCH,
            &h.url(&path),
            &headers,
            Bytes::from_static(br#"{"Title":"Silent","Birthdate":"1990-04-01"}"#),
        )
        .await;
    assert_eq!(r.status(), 204, "{}", text(&b));
    let sent = h.double.double.received();
    assert_eq!(
        text(&sent.last().expect("forwarded").body),
        r#"{"Title":"Silent"}"#
    );
    let after = h.double.double.contact(Dialect::Salesforce, 9);
    assert_eq!(after["Title"], "Silent");
    assert_eq!(after["Birthdate"], before["Birthdate"]);
    h.double.double.clear_received();
    // everything dropped: refused, not sent as `{}`
    let (r, b) = support
        .call(
            Method::PATCH,
            &h.url(&path),
            &headers,
            Bytes::from_static(br#"{"Birthdate":"1990-04-01","Secret__c":"x"}"#),
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(
        text(&b).contains("nothing of this write would remain"),
        "{}",
        text(&b)
    );
    // a resource the purpose does not minimise silently still refuses
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/sobjects/Lead"),
            &headers,
            Bytes::from_static(br#"{"LastName":"Fict","Company":"Fict","Secret__c":"x"}"#),
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(h.double.double.received().is_empty());
}

#[tokio::test]
async fn a_lossy_part_refuses_the_whole_unit_before_anything_is_forwarded() {
    let h = harness().await;
    let support = h.cert_client("support-desk", Version::H1);
    let headers = [
        ("zweck-purpose", "support"),
        ("content-type", "application/json"),
    ];
    let target = contact_path(&h, 5);
    // Salesforce composite, allOrNone
    let composite = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact", "referenceId": "new",
         "body": {"LastName": "Unit"}},
        {"method": "PATCH", "url": target, "referenceId": "upd",
         "body": {"Title": "Unit", "Birthdate": "1990-04-01"}}]});
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &headers,
            Bytes::from(composite.to_string()),
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(text(&b).contains("part 2"), "{}", text(&b));
    // sObject Collections with allOrNone: one lossy record refuses the request
    let collection = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "One"},
        {"attributes": {"type": "Contact"}, "LastName": "Two", "Birthdate": "1990-04-01"}]});
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite/sobjects"),
            &headers,
            Bytes::from(collection.to_string()),
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(text(&b).contains("$.records[*].Birthdate"), "{}", text(&b));
    // Dataverse change set
    let boundary = "batch_fict";
    let body = format!(
        "--{boundary}\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n\
         --cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
         POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"lastname\":\"Unit\"}}\r\n\
         --cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
         PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"birthdate\":\"1990-04-01\"}}\r\n\
         --cs--\r\n--{boundary}--\r\n"
    );
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/api/data/v9.2/$batch"),
            &[
                ("zweck-purpose", "support"),
                (
                    "content-type",
                    &format!("multipart/mixed; boundary={boundary}"),
                ),
            ],
            Bytes::from(body),
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(text(&b).contains("part 2"), "{}", text(&b));
    assert!(
        h.double.double.received().is_empty(),
        "a refused unit reached the CRM"
    );
    assert_eq!(
        h.double.double.contact(Dialect::Salesforce, CONTACTS),
        Value::Null
    );
    assert_eq!(
        h.double.double.contact(Dialect::Dynamics, CONTACTS),
        Value::Null
    );
}

#[tokio::test]
async fn a_unit_the_crm_fails_commits_nothing() {
    let h = harness().await;
    let support = h.cert_client("support-desk", Version::H2);
    // a Dataverse change set whose second member names no contact: the CRM rolls back the create
    let missing = "6f0c1a2b-0000-4000-8000-00000000ffff";
    let boundary = "batch_fict";
    let body = format!(
        "--{boundary}\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n\
         --cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
         POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"lastname\":\"Rolled\"}}\r\n\
         --cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
         PATCH /api/data/v9.2/contacts({missing}) HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"jobtitle\":\"Back\"}}\r\n\
         --cs--\r\n--{boundary}--\r\n"
    );
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/api/data/v9.2/$batch"),
            &[
                ("zweck-purpose", "support"),
                (
                    "content-type",
                    &format!("multipart/mixed; boundary={boundary}"),
                ),
            ],
            Bytes::from(body),
        )
        .await;
    let answer = text(&b);
    assert_eq!(r.status(), 400, "{answer}");
    assert!(answer.contains("HTTP/1.1 404"), "{answer}");
    assert!(!answer.contains("changesetresponse"), "{answer}");
    assert_eq!(
        h.double.double.contact(Dialect::Dynamics, CONTACTS),
        Value::Null
    );

    // a Salesforce composite with allOrNone whose second subrequest fails: every subrequest
    // answers, the first rolled back
    let before = h.double.double.contact(Dialect::Salesforce, 4);
    let composite = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact", "referenceId": "new",
         "body": {"LastName": "Rolled"}},
        {"method": "PATCH", "url": contact_path(&h, 4), "referenceId": "upd", "body": {"Title": "Rolled"}},
        {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003FictZZZZZZZZAAA",
         "referenceId": "gone", "body": {"Title": "x"}}]});
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from(composite.to_string()),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let v: Value = serde_json::from_slice(&b).expect("json");
    let statuses: Vec<u64> = v["compositeResponse"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|p| p["httpStatusCode"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [400, 400, 404], "{v}");
    assert_eq!(
        h.double.double.contact(Dialect::Salesforce, CONTACTS),
        Value::Null
    );
    assert_eq!(h.double.double.contact(Dialect::Salesforce, 4), before);
}

#[tokio::test]
async fn composite_graphs_are_refused_whole_or_rolled_back_graph_by_graph() {
    let h = harness().await;
    let support = h.cert_client("support-desk", Version::H2);
    let headers = [
        ("zweck-purpose", "support"),
        ("content-type", "application/json"),
    ];
    let graphs = |second: Value| {
        json!({"graphs": [
            {"graphId": "g1", "compositeRequest": [
                {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact", "referenceId": "new",
                 "body": {"LastName": "Graph"}},
                {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/@{new.id}",
                 "referenceId": "upd", "body": {"Title": "Graph"}}]},
            {"graphId": "g2", "compositeRequest": [
                {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003Fict00000004AAA",
                 "referenceId": "upd", "body": {"Title": "Graph"}},
                second]}]})
    };
    let before = h.double.double.contact(Dialect::Salesforce, 4);
    // a lossy node: nothing of any graph reaches the CRM
    let lossy = json!({"method": "PATCH", "url": contact_path(&h, 6), "referenceId": "bad",
        "body": {"Title": "x", "Birthdate": "1990-04-01"}});
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite/graph"),
            &headers,
            Bytes::from(graphs(lossy).to_string()),
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(text(&b).contains("part 4"), "{}", text(&b));
    assert!(!text(&b).contains("1990-04-01"), "{}", text(&b));
    assert!(h.double.double.received().is_empty());
    // a node the CRM fails: its graph is rolled back, the other stands
    let gone = json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003FictZZZZZZZZAAA",
        "referenceId": "gone", "body": {"Title": "x"}});
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite/graph"),
            &headers,
            Bytes::from(graphs(gone).to_string()),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let v: Value = serde_json::from_slice(&b).expect("json");
    let outcome: Vec<(Value, Value)> = v["graphs"]
        .as_array()
        .expect("graphs")
        .iter()
        .map(|g| (g["graphId"].clone(), g["isSuccessful"].clone()))
        .collect();
    assert_eq!(
        outcome,
        [(json!("g1"), json!(true)), (json!("g2"), json!(false))],
        "{v}"
    );
    assert_eq!(
        h.double.double.contact(Dialect::Salesforce, CONTACTS)["Title"],
        "Graph"
    );
    assert_eq!(h.double.double.contact(Dialect::Salesforce, 4), before);
}
