//! Salesforce behaviour through the router: CRUD, SOQL errors and limits, collections,
//! composite references and Bulk 2.0 paging to the end.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::{call, CrmDouble, CrmDoubleConfig, Dialect};

const V: &str = "/services/data/v66.0";

fn double(contacts: u64) -> Arc<CrmDouble> {
    CrmDouble::new(CrmDoubleConfig {
        contacts,
        ..CrmDoubleConfig::default()
    })
}

fn run(d: &Arc<CrmDouble>, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let (status, _, bytes) = call(d, method, path, &[], body);
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, value)
}

#[test]
fn create_update_and_read_back() {
    let d = double(10);
    let (status, v) = run(
        &d,
        Method::POST,
        &format!("{V}/sobjects/Contact"),
        r#"{"FirstName":"Oskar","LastName":"Fennimore","Email":"oskar.f@example.com","HasOptedOutOfEmail":true}"#,
    );
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["success"], json!(true));
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let (status, rec) = run(&d, Method::GET, &format!("{V}/sobjects/Contact/{id}"), "");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rec["Name"], json!("Oskar Fennimore"));
    assert_eq!(rec["HasOptedOutOfEmail"], json!(true));
    assert_eq!(rec["Phone"], Value::Null);
    assert_eq!(d.contact(Dialect::Salesforce, 10), rec);

    let (status, _) = run(
        &d,
        Method::PATCH,
        &format!("{V}/sobjects/Contact/{id}"),
        r#"{"MailingCity":"Testikyla"}"#,
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, rec) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/{id}?fields=MailingCity,email"),
        "",
    );
    assert_eq!(rec["MailingCity"], json!("Testikyla"));
    assert!(rec.get("Email").is_some());
    assert!(rec.get("Phone").is_none());

    let (status, v) = run(
        &d,
        Method::POST,
        &format!("{V}/sobjects/Contact"),
        r#"{"LastName":"X","Email":"not-an-email"}"#,
    );
    assert_eq!(
        (status, v[0]["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_EMAIL_ADDRESS"))
    );
    let (status, v) = run(
        &d,
        Method::POST,
        &format!("{V}/sobjects/Contact"),
        r#"{"FirstName":"X"}"#,
    );
    assert_eq!(
        (status, v[0]["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("REQUIRED_FIELD_MISSING"))
    );
    let (status, v) = run(
        &d,
        Method::PATCH,
        &format!("{V}/sobjects/Contact/{id}"),
        r#"{"Nope__c":1}"#,
    );
    assert_eq!(
        (status, v[0]["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_FIELD"))
    );
    let (status, _) = run(
        &d,
        Method::PATCH,
        &format!("{V}/sobjects/Contact/{id}"),
        "{not json",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, v) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/003FictZZZZZZZZAAA"),
        "",
    );
    assert_eq!(
        (status, v[0]["errorCode"].clone()),
        (StatusCode::NOT_FOUND, json!("NOT_FOUND"))
    );
    let (status, _) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/garbage"),
        "",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = run(
        &d,
        Method::DELETE,
        &format!("{V}/sobjects/Contact/{id}"),
        "",
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = run(&d, Method::GET, &format!("{V}/sobjects/Contact/{id}"), "");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = run(
        &d,
        Method::DELETE,
        &format!("{V}/sobjects/Contact/{id}"),
        "",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = run(&d, Method::PUT, &format!("{V}/sobjects/Contact/{id}"), "");
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = run(&d, Method::GET, "/services/data/latest/limits", "");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn queries_honour_limit_selection_and_errors() {
    let d = double(30);
    let (_, v) = run(
        &d,
        Method::GET,
        &format!("{V}/query?q=SELECT+Id,Email+FROM+Contact+LIMIT+7"),
        "",
    );
    assert_eq!(v["totalSize"], json!(7));
    assert_eq!(v["done"], json!(true));
    let records = v["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 7);
    let keys: Vec<&String> = records[0]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, vec!["attributes", "Id", "Email"]);
    let (_, v) = run(
        &d,
        Method::GET,
        &format!("{V}/query?q=SELECT+FIELDS(ALL)+FROM+Contact+LIMIT+1"),
        "",
    );
    assert!(v["records"][0].get("MailingAddress").is_some());
    assert!(v["records"][0].get("Cases").is_some());
    let (_, v) = run(
        &d,
        Method::GET,
        &format!("{V}/query?q=SELECT+Name+FROM+Account"),
        "",
    );
    assert_eq!(v["totalSize"], json!(3));
    for (q, code) in [
        ("SELECT+Bogus+FROM+Contact", "INVALID_FIELD"),
        ("SELECT+Id+FROM+Nothing", "INVALID_TYPE"),
        ("SELEKT+Id+FROM+Contact", "MALFORMED_QUERY"),
        ("SELECT+Owner.Name+FROM+Contact", "INVALID_FIELD"),
    ] {
        let (status, v) = run(&d, Method::GET, &format!("{V}/query?q={q}"), "");
        assert_eq!(
            (status, v[0]["errorCode"].clone()),
            (StatusCode::BAD_REQUEST, json!(code)),
            "{q}"
        );
    }
    let (status, v) = run(
        &d,
        Method::GET,
        &format!("{V}/query/01gFictNOPE0000AAA-2000"),
        "",
    );
    assert_eq!(
        (status, v[0]["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("INVALID_QUERY_LOCATOR"))
    );
    let (status, _) = run(&d, Method::GET, &format!("{V}/query"), "");
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn default_page_is_2000_and_walks_to_the_end() {
    let d = double(4500);
    let mut path = format!("{V}/query?q=SELECT+Id+FROM+Contact");
    let mut sizes = Vec::new();
    loop {
        let (_, v) = run(&d, Method::GET, &path, "");
        sizes.push(v["records"].as_array().map_or(0, Vec::len));
        match v["nextRecordsUrl"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&format!("{V}/query/01gFict")));
                path = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![2000, 2000, 500]);
}

#[test]
fn collections_save_and_composite_references() {
    let d = double(5);
    let body = include_str!(
        "../../../tests/fixtures/crm/salesforce/composite-sobjects-create.request.json"
    );
    let (status, v) = run(&d, Method::POST, &format!("{V}/composite/sobjects"), body);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v[0]["success"], json!(true));
    assert_eq!(
        v[1]["errors"][0]["statusCode"],
        json!("INVALID_EMAIL_ADDRESS")
    );
    let all_or_none = body.replacen("false", "true", 1);
    let (_, v) = run(
        &d,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &all_or_none,
    );
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        json!("ALL_OR_NONE_OPERATION_ROLLED_BACK")
    );

    let id = d.contact(Dialect::Salesforce, 2)["Id"].clone();
    let patch = json!({"records": [{"attributes": {"type": "Contact"}, "Id": id, "Title": "Chief Fiction Officer"}]});
    let (_, v) = run(
        &d,
        Method::PATCH,
        &format!("{V}/composite/sobjects"),
        &patch.to_string(),
    );
    assert_eq!(v[0]["success"], json!(true));
    assert_eq!(
        d.contact(Dialect::Salesforce, 2)["Title"],
        json!("Chief Fiction Officer")
    );

    let (status, v) = run(
        &d,
        Method::GET,
        &format!(
            "{V}/composite/sobjects/Contact?ids={},003FictZZZZZZZZAAA&fields=Id,Email",
            id.as_str().unwrap_or_default()
        ),
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v[0]["Id"], id);
    assert_eq!(v[1], Value::Null);

    let body = include_str!("../../../tests/fixtures/crm/salesforce/composite.request.json");
    let (status, v) = run(&d, Method::POST, &format!("{V}/composite"), body);
    assert_eq!(status, StatusCode::OK);
    let responses = v["compositeResponse"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(responses.len(), 3);
    assert_eq!(responses[0]["httpStatusCode"], json!(201));
    assert!(responses[0]["httpHeaders"]["Location"]
        .as_str()
        .is_some_and(|l| l.contains("/sobjects/Account/001Fict")));
    assert_eq!(responses[1]["httpStatusCode"], json!(201));
    assert_eq!(responses[2]["httpStatusCode"], json!(200));
    assert!(responses[2]["body"]["records"].is_array());
    let keys = |v: &Value| {
        v.as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let fx: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/crm/salesforce/composite.response.json"
    ))
    .unwrap_or_default();
    assert_eq!(keys(&responses[0]), keys(&fx["compositeResponse"][0]));
}

#[test]
fn bulk_results_page_with_locators_to_the_end() {
    let d = double(2345);
    let create = json!({"operation": "query", "query": "SELECT Id, Email, HasOptedOutOfEmail, Account.Name FROM Contact"});
    let (_, job) = run(
        &d,
        Method::POST,
        &format!("{V}/jobs/query"),
        &create.to_string(),
    );
    assert_eq!(job["state"], json!("UploadComplete"));
    let id = job["id"].as_str().unwrap_or_default().to_string();
    let (_, status) = run(&d, Method::GET, &format!("{V}/jobs/query/{id}"), "");
    assert_eq!(
        (
            status["state"].clone(),
            status["numberRecordsProcessed"].clone()
        ),
        (json!("JobComplete"), json!(2345))
    );

    let mut locator = String::new();
    let (mut rows, mut pages) = (0u64, 0);
    loop {
        let path = format!("{V}/jobs/query/{id}/results?maxRecords=1000&locator={locator}");
        let (status, headers, body) = call(&d, Method::GET, &path, &[], "");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/csv; charset=UTF-8")
        );
        let text = String::from_utf8_lossy(&body).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#""Id","Email","HasOptedOutOfEmail","Account.Name""#
        );
        let n: u64 = headers
            .get("sforce-numberofrecords")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert_eq!(n, lines.len() as u64 - 1);
        assert!(lines[1..]
            .iter()
            .all(|l| l.contains(r#","true","#) || l.contains(r#","false","#)));
        rows += n;
        pages += 1;
        locator = headers
            .get("sforce-locator")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("null")
            .to_string();
        if locator == "null" {
            break;
        }
    }
    assert_eq!((rows, pages), (2345, 3));

    let (_, v) = run(
        &d,
        Method::GET,
        &format!("{V}/jobs/query/{id}/resultPages?maxRecords=200"),
        "",
    );
    assert_eq!(v["resultPages"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["done"], json!(false));
    let next = v["nextRecordsUrl"].as_str().unwrap_or_default().to_string();
    let (_, v) = run(&d, Method::GET, &next, "");
    assert_eq!(v["resultPages"].as_array().map(Vec::len), Some(5));

    let (status, _) = run(
        &d,
        Method::GET,
        &format!("{V}/jobs/query/750FictNOPE/results"),
        "",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = run(
        &d,
        Method::GET,
        &format!("{V}/jobs/query/{id}/results?locator=%%%"),
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let sub = json!({"operation": "query", "query": "SELECT Id, (SELECT CaseNumber FROM Cases) FROM Contact"});
    let (status, _) = run(
        &d,
        Method::POST,
        &format!("{V}/jobs/query"),
        &sub.to_string(),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn versions_and_limits() {
    let d = double(1);
    let (status, v) = run(&d, Method::GET, "/services/data/", "");
    assert_eq!(status, StatusCode::OK);
    assert!(v
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["version"] == json!("66.0"))));
    let (status, v) = run(&d, Method::GET, &format!("{V}/limits"), "");
    assert_eq!(status, StatusCode::OK);
    assert!(v["DailyBulkV2QueryJobs"]["Max"].is_number());
}

#[test]
fn aggregate_soql_answers_aggregate_result_rows() {
    let d = double(40);
    let q = |soql: &str| {
        let path = format!("{V}/query?q={}", soql.replace(' ', "+"));
        run(&d, Method::GET, &path, "")
    };
    let (status, v) = q("SELECT COUNT(Id), MailingCountry FROM Contact GROUP BY MailingCountry");
    assert_eq!(status, StatusCode::OK, "{v}");
    let rows = v["records"].as_array().expect("rows");
    assert!(rows.len() > 1, "{v}");
    assert_eq!(v["totalSize"], json!(rows.len()));
    assert_eq!(v["done"], json!(true));
    let mut counted = 0;
    for row in rows {
        assert_eq!(row["attributes"], json!({"type": "AggregateResult"}));
        assert!(row.get("Id").is_none());
        assert!(row["MailingCountry"].is_string());
        counted += row["expr0"].as_u64().expect("a count");
    }
    assert_eq!(counted, 40);
    // aliases, and every unaliased aggregate numbered in select order
    let (_, v) = q("SELECT MailingCountry c, COUNT(Id) n, MIN(Birthdate), MAX(Birthdate) FROM Contact GROUP BY MailingCountry");
    let row = &v["records"][0];
    let keys: Vec<&str> = row
        .as_object()
        .expect("row")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["attributes", "c", "n", "expr0", "expr1"]);
    // COUNT() alone: totalSize, no rows
    let (_, v) = q("SELECT COUNT() FROM Contact");
    assert_eq!(v, json!({"totalSize": 40, "done": true, "records": []}));
    let (status, v) = q("SELECT Email, COUNT(Id) FROM Contact GROUP BY MailingCountry");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

#[test]
fn all_or_none_composite_rolls_back_every_subrequest() {
    let d = double(10);
    let create = json!({"method": "POST", "url": "/services/data/v66.0/sobjects/Contact",
        "referenceId": "c", "body": {"LastName": "Rollback", "Email": "rolled@example.com"}});
    let update = json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003Fict00000003AAA",
        "referenceId": "u", "body": {"Title": "Changed"}});
    let missing = json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003FictZZZZZZZZAAA",
        "referenceId": "m", "body": {"Title": "x"}});
    let before = d.contact(Dialect::Salesforce, 3);
    let body = json!({"allOrNone": true, "compositeRequest": [create, update, missing]});
    let (status, v) = run(
        &d,
        Method::POST,
        &format!("{V}/composite"),
        &body.to_string(),
    );
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<u64> = v["compositeResponse"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r["httpStatusCode"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [400, 400, 404]);
    assert_eq!(
        v["compositeResponse"][0]["body"][0]["errorCode"],
        "PROCESSING_HALTED"
    );
    // nothing was committed
    assert_eq!(d.contact(Dialect::Salesforce, 3), before);
    assert_eq!(d.contact(Dialect::Salesforce, 10), Value::Null);
    // without allOrNone the successful subrequests stay
    let body = json!({"allOrNone": false, "compositeRequest": [
        {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003Fict00000003AAA",
         "referenceId": "u", "body": {"Title": "Changed"}},
        {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003FictZZZZZZZZAAA",
         "referenceId": "m", "body": {"Title": "x"}}]});
    run(
        &d,
        Method::POST,
        &format!("{V}/composite"),
        &body.to_string(),
    );
    assert_eq!(d.contact(Dialect::Salesforce, 3)["Title"], "Changed");
}

#[test]
fn composite_graph_rolls_back_a_failed_graph_alone() {
    let d = double(10);
    let before = d.contact(Dialect::Salesforce, 4);
    let body = json!({"graphs": [
        {"graphId": "g1", "compositeRequest": [
            {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact",
             "referenceId": "c", "body": {"LastName": "Graph", "Email": "graph@example.com"}},
            {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/@{c.id}",
             "referenceId": "u", "body": {"Title": "Linked"}}]},
        {"graphId": "g2", "compositeRequest": [
            {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003Fict00000004AAA",
             "referenceId": "u", "body": {"Title": "Changed"}},
            {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003FictZZZZZZZZAAA",
             "referenceId": "m", "body": {"Title": "x"}}]}]});
    let (status, v) = run(
        &d,
        Method::POST,
        &format!("{V}/composite/graph"),
        &body.to_string(),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    let graphs = v["graphs"].as_array().expect("graphs");
    assert_eq!(graphs.len(), 2);
    assert_eq!(
        (&graphs[0]["graphId"], &graphs[0]["isSuccessful"]),
        (&json!("g1"), &json!(true))
    );
    assert_eq!(
        (&graphs[1]["graphId"], &graphs[1]["isSuccessful"]),
        (&json!("g2"), &json!(false))
    );
    let statuses = |g: &Value| -> Vec<u64> {
        g["graphResponse"]["compositeResponse"]
            .as_array()
            .expect("responses")
            .iter()
            .map(|r| r["httpStatusCode"].as_u64().unwrap_or(0))
            .collect()
    };
    assert_eq!(statuses(&graphs[0]), [201, 204]);
    assert_eq!(statuses(&graphs[1]), [400, 404]);
    assert_eq!(
        graphs[1]["graphResponse"]["compositeResponse"][0]["body"][0]["errorCode"],
        "PROCESSING_HALTED"
    );
    // the first graph stands, the second committed nothing
    assert_eq!(d.contact(Dialect::Salesforce, 10)["Title"], "Linked");
    assert_eq!(d.contact(Dialect::Salesforce, 4), before);
    // a graph inside a composite is refused
    let nested = json!({"compositeRequest": [{"method": "POST", "url": "/services/data/v66.0/composite/graph",
        "referenceId": "n", "body": body}]});
    let (_, v) = run(
        &d,
        Method::POST,
        &format!("{V}/composite"),
        &nested.to_string(),
    );
    assert_eq!(v["compositeResponse"][0]["httpStatusCode"], 400);
}

#[test]
fn upsert_read_and_delete_by_external_id() {
    let d = double(10);
    // a generated contact's key: read it, then update it by the key (200, created: false)
    let (status, v) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/Ext_Id__c/ERP-000004"),
        "",
    );
    assert_eq!(
        (status, v["Ext_Id__c"].clone()),
        (StatusCode::OK, json!("ERP-000004"))
    );
    let (status, v) = run(
        &d,
        Method::PATCH,
        &format!("{V}/sobjects/Contact/Ext_Id__c/ERP-000004/"),
        r#"{"Title":"Buyer"}"#,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (v["created"].clone(), v["id"].clone()),
        (json!(false), json!("003Fict00000004AAA"))
    );
    let (_, v) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/003Fict00000004AAA"),
        "",
    );
    assert_eq!(v["Title"], "Buyer");
    // an unknown key creates a record carrying it (201, created: true)
    let (status, v) = run(
        &d,
        Method::PATCH,
        &format!("{V}/sobjects/Contact/Ext_Id__c/ERP-NEW-1"),
        r#"{"LastName":"Quill"}"#,
    );
    assert_eq!(
        (status, v["created"].clone()),
        (StatusCode::CREATED, json!(true))
    );
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let (_, v) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/Ext_Id__c/ERP-NEW-1"),
        "",
    );
    assert_eq!(
        (v["Id"].as_str(), v["LastName"].as_str()),
        (Some(id.as_str()), Some("Quill"))
    );
    // delete by the key, then it is gone under both addresses
    let (status, _) = run(
        &d,
        Method::DELETE,
        &format!("{V}/sobjects/Contact/Ext_Id__c/ERP-NEW-1"),
        "",
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = run(&d, Method::GET, &format!("{V}/sobjects/Contact/{id}"), "");
    assert_eq!(status, StatusCode::NOT_FOUND);
    // not a key field, or no such field
    let (status, _) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/Title/Buyer"),
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = run(
        &d,
        Method::GET,
        &format!("{V}/sobjects/Contact/Nope__c/x"),
        "",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = run(
        &d,
        Method::PATCH,
        &format!("{V}/sobjects/Contact/Id/003Fict00000099AAA"),
        "{}",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
}
