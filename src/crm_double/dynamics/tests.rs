//! Dataverse behaviour through the router: paging with `$top`, annotations, filters, writes
//! with `OData-EntityId`, `$batch` and errors.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::{call, CrmDouble, CrmDoubleConfig, Dialect};

fn double(contacts: u64) -> Arc<CrmDouble> {
    CrmDouble::new(CrmDoubleConfig {
        contacts,
        ..CrmDoubleConfig::default()
    })
}

fn run(
    d: &Arc<CrmDouble>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, http::HeaderMap, Value) {
    let (status, h, bytes) = call(d, method, path, headers, body);
    (
        status,
        h,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[test]
fn top_and_paging_and_default_page() {
    let d = double(12);
    let (_, _, v) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$select=fullname&$top=5",
        &[],
        "",
    );
    assert_eq!(v["value"].as_array().map(Vec::len), Some(5));
    assert!(v.get("@odata.nextLink").is_none());
    // $top=7 over pages of 3: 3 + 3 + 1.
    let mut url = "/api/data/v9.2/contacts?$top=7&$count=true".to_string();
    let mut sizes = Vec::new();
    loop {
        let (status, _, v) = run(
            &d,
            Method::GET,
            &url,
            &[("prefer", "odata.maxpagesize=3")],
            "",
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["@odata.count"], json!(12));
        sizes.push(v["value"].as_array().map_or(0, Vec::len));
        match v["@odata.nextLink"].as_str() {
            Some(link) => url = link.trim_start_matches("https://crm.test").to_string(),
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    let (status, _, v) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$skiptoken=bogus",
        &[],
        "",
    );
    assert_eq!(
        (status, v["error"]["code"].is_string()),
        (StatusCode::BAD_REQUEST, true)
    );
    let (status, _, _) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$select=nope",
        &[],
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$expand=owninguser",
        &[],
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = run(&d, Method::GET, "/api/data/v9.2/leads", &[], "");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn annotations_and_filter() {
    let d = double(30);
    let prefer = [("prefer", "odata.include-annotations=\"*\"")];
    let (_, h, v) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$select=donotemail,_parentcustomerid_value",
        &prefer,
        "",
    );
    assert_eq!(
        h.get("preference-applied").and_then(|v| v.to_str().ok()),
        Some("odata.include-annotations=\"*\"")
    );
    let row = &v["value"][1];
    let formatted = if row["donotemail"] == json!(true) {
        "Do Not Allow"
    } else {
        "Allow"
    };
    assert_eq!(
        row["donotemail@OData.Community.Display.V1.FormattedValue"],
        json!(formatted)
    );
    let (_, _, v) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$select=donotemail",
        &[],
        "",
    );
    assert!(v["value"][1]
        .get("donotemail@OData.Community.Display.V1.FormattedValue")
        .is_none());

    let expected = (0..30)
        .filter(|i| d.contact(Dialect::Dynamics, *i)["address1_country"] == json!("Germany"))
        .count();
    let (status, _, v) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$filter=address1_country%20eq%20'Germany'",
        &[],
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["value"].as_array().map(Vec::len), Some(expected));
    let (status, _, _) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$filter=contains(fullname,'a')",
        &[],
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn create_and_update() {
    let d = double(3);
    let body = include_str!("../../../tests/fixtures/crm/dynamics/contact-create.request.json");
    let (status, h, _) = run(&d, Method::POST, "/api/data/v9.2/contacts", &[], body);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let entity = h
        .get("odata-entityid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        entity,
        "https://crm.test/api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-000000000003)"
    );
    let c = d.contact(Dialect::Dynamics, 3);
    assert_eq!(c["fullname"], json!("Piet Oosterhuis-Mbeki"));
    assert_eq!(
        c["_parentcustomerid_value"],
        json!("2b9d3c4e-0000-4000-8000-00000000a001")
    );
    assert_eq!(c["jobtitle"], Value::Null);

    let path = "/api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-000000000001)";
    let (status, _, _) = run(&d, Method::PATCH, path, &[], r#"{"donotphone":true}"#);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, v) = run(&d, Method::GET, path, &[], "");
    assert_eq!(
        (status, v["donotphone"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_ne!(v["@odata.etag"], json!(null));
    let (status, _, v) = run(
        &d,
        Method::POST,
        "/api/data/v9.2/contacts?$select=firstname",
        &[("prefer", "return=representation")],
        r#"{"firstname":"Saoirse"}"#,
    );
    assert_eq!(
        (status, v["firstname"].clone()),
        (StatusCode::CREATED, json!("Saoirse"))
    );
    let (status, _, v) = run(
        &d,
        Method::PATCH,
        "/api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-0000000000ff)",
        &[],
        "{}",
    );
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("0x80040217"))
    );
    let (status, _, _) = run(
        &d,
        Method::POST,
        "/api/data/v9.2/contacts",
        &[],
        r#"{"fullname":"x"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn batch_answers_each_part() {
    let d = double(5);
    let body = include_str!("../../../tests/fixtures/crm/dynamics/batch.request.http");
    // The fixture is a whole HTTP message: keep only the multipart body.
    let body = body.split_once("\n\n").map_or("", |(_, b)| b);
    let ct = [(
        "content-type",
        "multipart/mixed; boundary=\"batch_7c1e0f3a-0000-4000-8000-000000000001\"",
    )];
    let (status, headers, bytes) = call(&d, Method::POST, "/api/data/v9.2/$batch", &ct, body);
    assert_eq!(status, StatusCode::OK);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("multipart/mixed; boundary=batchresponse_"));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("changesetresponse_"));
    assert!(text.contains("HTTP/1.1 204 No Content"));
    assert!(
        text.contains("OData-EntityId: https://crm.test/api/data/v9.2/contacts(")
            || text.contains("odata-entityid: https://crm.test/api/data/v9.2/contacts(")
    );
    assert!(text.contains("HTTP/1.1 200 OK"));
    assert!(text.contains("\"value\":["));
    assert!(text.trim_end().ends_with("--"));
    let (status, _, _) = call(
        &d,
        Method::POST,
        "/api/data/v9.2/$batch",
        &[("content-type", "application/json")],
        "{}",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A `$batch` body of the given items (`application/http` parts or change sets).
fn batch_body(items: &[String]) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str("--b\r\n");
        out.push_str(item);
    }
    out.push_str("--b--\r\n");
    out
}

fn http_item(content_id: Option<&str>, request: &str) -> String {
    let id = content_id
        .map(|c| format!("Content-ID: {c}\r\n"))
        .unwrap_or_default();
    format!("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n{id}\r\n{request}\r\n")
}

fn change_set(members: &[(&str, &str)]) -> String {
    let mut out = "Content-Type: multipart/mixed; boundary=cs\r\n\r\n".to_string();
    for (id, request) in members {
        out.push_str("--cs\r\n");
        out.push_str(&http_item(Some(id), request));
    }
    out.push_str("--cs--\r\n");
    out
}

#[test]
fn a_failed_change_set_commits_nothing_and_answers_with_its_error() {
    let d = double(5);
    let before = d.contact(Dialect::Dynamics, 1);
    let body = batch_body(&[change_set(&[
        (
            "1",
            "POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"Rolled\"}",
        ),
        (
            "2",
            "PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"firstname\":\"Back\"}",
        ),
        (
            "3",
            "PATCH /api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-000000000001) HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"jobtitle\":\"Changed\"}",
        ),
        (
            "4",
            "PATCH /api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-00000000ffff) HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"jobtitle\":\"x\"}",
        ),
    ])]);
    let ct = [("content-type", "multipart/mixed; boundary=b")];
    let (status, _, bytes) = call(&d, Method::POST, "/api/data/v9.2/$batch", &ct, &body);
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    // one part for the whole change set: the failing member's error
    assert!(!text.contains("changesetresponse"), "{text}");
    assert!(text.contains("Content-ID: 4"), "{text}");
    assert!(text.contains("404"), "{text}");
    // nothing was committed: the create, the update through $1 and the update are undone
    assert_eq!(d.contact(Dialect::Dynamics, 5), Value::Null);
    assert_eq!(d.contact(Dialect::Dynamics, 1), before);

    // the same change set without the failing member commits as a whole
    let body = batch_body(&[change_set(&[
        (
            "1",
            "POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"Kept\"}",
        ),
        (
            "2",
            "PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"firstname\":\"Together\"}",
        ),
    ])]);
    let (status, _, bytes) = call(&d, Method::POST, "/api/data/v9.2/$batch", &ct, &body);
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let created = d.contact(Dialect::Dynamics, 5);
    assert_eq!(
        (created["lastname"].clone(), created["firstname"].clone()),
        (json!("Kept"), json!("Together"))
    );
}

#[test]
fn a_batch_stops_at_the_first_failure_unless_asked_to_continue() {
    let d = double(5);
    let missing = "PATCH /api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-00000000ffff) HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"jobtitle\":\"x\"}";
    let create = "POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"After\"}";
    let body = batch_body(&[http_item(None, missing), http_item(None, create)]);
    let ct = [("content-type", "multipart/mixed; boundary=b")];
    let (status, _, _) = call(&d, Method::POST, "/api/data/v9.2/$batch", &ct, &body);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        d.contact(Dialect::Dynamics, 5),
        Value::Null,
        "the batch stopped"
    );
    let ct = [
        ("content-type", "multipart/mixed; boundary=b"),
        ("prefer", "odata.continue-on-error"),
    ];
    let (status, _, _) = call(&d, Method::POST, "/api/data/v9.2/$batch", &ct, &body);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d.contact(Dialect::Dynamics, 5)["lastname"], "After");
}

#[test]
fn apply_groups_and_aggregates() {
    let d = double(30);
    let (status, _, v) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$apply=groupby((address1_country),aggregate($count%20as%20n))",
        &[],
        "",
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    let rows = v["value"].as_array().expect("rows");
    assert!(rows.len() > 1);
    let total: u64 = rows.iter().map(|r| r["n"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, 30);
    assert!(rows.iter().all(|r| r.get("contactid").is_none()));
    let (_, _, v) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$apply=aggregate($count%20as%20n)",
        &[],
        "",
    );
    assert_eq!(v["value"], json!([{"n": 30}]));
    let (status, _, _) = run(
        &d,
        Method::GET,
        "/api/data/v9.2/contacts?$apply=topcount(5,revenue)",
        &[],
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
