//! HubSpot behaviour through the router: list cursors and limits, get by id and e-mail,
//! search filters and paging, batch read, writes and errors.

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

fn run(d: &Arc<CrmDouble>, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let (status, _, bytes) = call(d, method, path, &[], body);
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[test]
fn list_defaults_limits_and_cursor_links() {
    let d = double(25);
    let (_, v) = run(&d, Method::GET, "/crm/v3/objects/contacts", "");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(10));
    let props: Vec<String> = v["results"][0]["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        props,
        vec![
            "createdate",
            "email",
            "firstname",
            "lastname",
            "hs_object_id",
            "lastmodifieddate"
        ]
    );
    let next = &v["paging"]["next"];
    assert_eq!(next["after"], json!("51000011"));
    assert_eq!(
        next["link"],
        json!("https://crm.test/crm/v3/objects/contacts?after=51000011")
    );
    let (_, v) = run(
        &d,
        Method::GET,
        "/crm/v3/objects/0-1?limit=500&after=51000011",
        "",
    );
    assert_eq!(v["results"].as_array().map(Vec::len), Some(15));
    assert!(v.get("paging").is_none());
    let (status, v) = run(&d, Method::GET, "/crm/v3/objects/contacts?limit=abc", "");
    assert_eq!(
        (status, v["status"].clone()),
        (StatusCode::BAD_REQUEST, json!("error"))
    );
    assert!(v["correlationId"].is_string());
    let (status, _) = run(&d, Method::GET, "/crm/v3/objects/contacts?after=xyz", "");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = run(&d, Method::GET, "/crm/v3/objects/widgets", "");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, v) = run(&d, Method::GET, "/crm/v3/objects/companies?limit=100", "");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(2));
}

#[test]
fn get_by_id_and_email() {
    let d = double(25);
    let c = d.contact(Dialect::HubSpot, 4);
    let id = c["id"].as_str().unwrap_or_default().to_string();
    let email = c["properties"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, v) = run(
        &d,
        Method::GET,
        &format!("/crm/v3/objects/contacts/{id}?properties=hs_email_optout"),
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["properties"]["hs_email_optout"],
        c["properties"]["hs_email_optout"]
    );
    let (_, v) = run(
        &d,
        Method::GET,
        &format!("/crm/v3/objects/contacts/{email}?idProperty=email"),
        "",
    );
    assert_eq!(v["id"], json!(id));
    let (status, v) = run(&d, Method::GET, "/crm/v3/objects/contacts/99999999999", "");
    assert_eq!(
        (status, v["category"].clone()),
        (StatusCode::NOT_FOUND, json!("OBJECT_NOT_FOUND"))
    );
    let (status, _) = run(
        &d,
        Method::GET,
        "/crm/v3/objects/contacts/x.4@example.com?idProperty=email",
        "",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn search_eq_and_paging() {
    let d = double(200);
    let opted_out = (0..200)
        .filter(|i| {
            d.contact(Dialect::HubSpot, *i)["properties"]["hs_email_optout"] == json!("true")
        })
        .count();
    let body = json!({"filterGroups": [{"filters": [{"propertyName": "hs_email_optout", "operator": "EQ", "value": "true"}]}], "limit": 50});
    let (status, v) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts/search",
        &body.to_string(),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["total"], json!(opted_out));
    assert_eq!(v["results"].as_array().map(Vec::len), Some(50));
    assert_eq!(v["paging"]["next"]["after"], json!("50"));
    let (_, v) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts/search",
        r#"{"limit":100,"after":"150"}"#,
    );
    assert_eq!(
        (v["total"].clone(), v["results"].as_array().map(Vec::len)),
        (json!(200), Some(50))
    );
    assert!(v.get("paging").is_none());
    let (status, _) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts/search",
        r#"{"filterGroups":[{"filters":[{"propertyName":"email","operator":"CONTAINS_TOKEN","value":"x"}]}]}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts/search",
        "not json",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A search without filters answers from the record count (no walk over every record): the
/// same pages, totals and cursors as a filter every record passes, which walks them all.
#[test]
fn unfiltered_search_answers_as_a_walk_over_every_record() {
    let d = double(60);
    let everyone = json!([{"filters": [{"propertyName": "no_such_property", "operator": "NOT_HAS_PROPERTY"}]}]);
    for (limit, after) in [
        (2, None),
        (10, Some("0")),
        (25, Some("50")),
        (10, Some("60")),
        (5, Some("90")),
    ] {
        let mut body = json!({"limit": limit, "properties": ["email", "hs_email_optout"]});
        if let Some(a) = after {
            body["after"] = json!(a);
        }
        let unfiltered = run(
            &d,
            Method::POST,
            "/crm/v3/objects/contacts/search",
            &body.to_string(),
        );
        body["filterGroups"] = everyone.clone();
        let walked = run(
            &d,
            Method::POST,
            "/crm/v3/objects/contacts/search",
            &body.to_string(),
        );
        assert_eq!(unfiltered.0, StatusCode::OK);
        assert_eq!(unfiltered, walked, "limit {limit}, after {after:?}");
    }
    let (_, v) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts/search",
        r#"{"limit":2}"#,
    );
    assert_eq!(v["total"], json!(60));
    assert_eq!(v["results"].as_array().map(Vec::len), Some(2));
}

#[test]
fn batch_read_create_update() {
    let d = double(10);
    let ids: Vec<Value> = (0..3)
        .map(|i| json!({"id": d.contact(Dialect::HubSpot, i)["id"]}))
        .collect();
    let (status, v) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts/batch/read",
        &json!({"inputs": ids, "properties": ["email"]}).to_string(),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], json!("COMPLETE"));
    assert_eq!(v["results"].as_array().map(Vec::len), Some(3));
    let too_many: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let (status, _) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts/batch/read",
        &json!({"inputs": too_many}).to_string(),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, v) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts",
        r#"{"properties":{"email":"anouk.b@example.com","lastname":"Brightwater","hs_email_optout":true}}"#,
    );
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["properties"]["hs_email_optout"], json!("true"));
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let (_, v) = run(
        &d,
        Method::PATCH,
        &format!("/crm/v3/objects/contacts/{id}"),
        r#"{"properties":{"city":"Fakesbury"}}"#,
    );
    assert_eq!(v["properties"]["city"], json!("Fakesbury"));
    let c = d.contact(Dialect::HubSpot, 10);
    assert_eq!(
        (
            c["properties"]["city"].clone(),
            c["properties"]["phone"].clone()
        ),
        (json!("Fakesbury"), Value::Null)
    );
    let (_, v) = run(
        &d,
        Method::GET,
        "/crm/v3/objects/contacts/anouk.b@example.com?idProperty=email",
        "",
    );
    assert_eq!(v["id"], json!(id));
    let (status, _) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts",
        r#"{"properties":{"no_such_prop":"1"}}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = run(
        &d,
        Method::POST,
        "/crm/v3/objects/contacts",
        r#"{"properties":{"hs_legal_basis":"Because"}}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = run(
        &d,
        Method::DELETE,
        &format!("/crm/v3/objects/contacts/{id}"),
        "",
    );
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
