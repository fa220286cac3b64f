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
