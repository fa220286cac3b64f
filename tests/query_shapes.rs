//! Queries Zweck reviews before forwarding (issue 12, items 8 and 9), through the running
//! proxy against the CRM double: a purpose that decides consent from a field the app did not
//! select still gets the records with consent (Zweck adds the field to the query it forwards
//! and takes it out of the answer), and aggregates are decided: passed with their columns for
//! a purpose that sees the aggregated fields unaltered, refused for one that removes records.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use serde_json::Value;
use zweck::crm_double::Dialect;

const CONTACTS: u64 = 120;

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| panic!("json: {}", String::from_utf8_lossy(b)))
}

/// The path and query of the last request the double received.
fn forwarded(h: &Harness) -> String {
    let got = h.double.double.received();
    percent_encoding::percent_decode_str(&got.last().expect("forwarded").path_and_query)
        .decode_utf8_lossy()
        .replace('+', " ")
}

#[tokio::test]
async fn a_soql_query_without_the_consent_field_returns_the_consented_records() {
    let h = Harness::start_full(CONTACTS, |_| {}, |o| o).await;
    let news = h.cert_client(CERT_APP, Version::H2);
    let (r, b) = news
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id,FirstName,Email+FROM+Contact+LIMIT+40"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        forwarded(&h),
        "/services/data/v66.0/query?q=SELECT Id,FirstName,Email, HasOptedOutOfEmail FROM Contact LIMIT 40"
    );
    let page = json(&b);
    let want: Vec<Value> = (0..40)
        .map(|i| h.double.double.contact(Dialect::Salesforce, i))
        .filter(|c| c["HasOptedOutOfEmail"] == Value::Bool(false))
        .map(|c| c["Id"].clone())
        .collect();
    assert!(
        !want.is_empty() && want.len() < 40,
        "the fixture needs both kinds"
    );
    let records = page["records"].as_array().expect("records");
    let got: Vec<Value> = records.iter().map(|r| r["Id"].clone()).collect();
    assert_eq!(got, want, "exactly the contacts with consent, in order");
    for r in records {
        assert!(r.get("HasOptedOutOfEmail").is_none(), "{r}");
        assert!(r["Email"].is_string(), "{r}");
    }
    // the transfer log counts the records delivered
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    let e: Value = log
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &Value| e["direction"] == "from_processor")
        .expect("record");
    assert_eq!(e["records"], want.len());
}

#[tokio::test]
async fn aggregates_pass_for_purposes_that_see_every_record_and_are_refused_otherwise() {
    let h = Harness::start_full(CONTACTS, |_| {}, |o| o).await;
    let support = h.cert_client("support-desk", Version::H1);
    let q = "/services/data/v66.0/query?q=SELECT+COUNT(Id),+MailingCountry+FROM+Contact+GROUP+BY+MailingCountry";
    let (r, b) = support
        .get(&h.url(q), &[("zweck-purpose", "support")])
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let page = json(&b);
    let rows = page["records"].as_array().expect("rows");
    assert!(rows.len() > 1, "{page}");
    let mut counted = 0;
    for row in rows {
        assert_eq!(row["attributes"]["type"], "AggregateResult");
        assert!(row["MailingCountry"].is_string(), "{row}");
        counted += row["expr0"].as_u64().expect("count");
    }
    assert_eq!(counted, CONTACTS);
    // each row with a country is one record for the budget and the log
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    let e: Value = log
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &Value| e["direction"] == "from_processor")
        .expect("record");
    assert_eq!(e["records"], rows.len());
    h.double.double.clear_received();

    // newsletter sees only consented contacts: no aggregate over all of them
    let news = h.cert_client(CERT_APP, Version::H2);
    for q in [
        q.to_string(),
        "/services/data/v66.0/query?q=SELECT+COUNT()+FROM+Contact".to_string(),
    ] {
        let (r, b) = news.get(&h.url(&q), &[]).await;
        assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(&b));
        assert_eq!(problem_slug(&r, &b), "aggregate-not-allowed");
    }
    // analytics sees birthdates only generalised: it may not aggregate them
    let bi = h.anon_client(Version::H1);
    let key = h.api_key();
    let (r, b) = bi
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+MIN(Birthdate)+FROM+Contact"),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(&b));
    assert_eq!(problem_slug(&r, &b), "query-not-allowed");
    assert!(
        h.double.double.received().is_empty(),
        "refused queries reached the CRM"
    );
}

#[tokio::test]
async fn hubspot_reads_without_properties_keep_their_defaults_and_get_consent() {
    let h = Harness::start_full(CONTACTS, |_| {}, |o| o).await;
    let news = h.cert_client(CERT_APP, Version::H1);
    let (r, b) = news
        .get(&h.url("/crm/v3/objects/contacts?limit=30"), &[])
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        forwarded(&h),
        "/crm/v3/objects/contacts?limit=30&properties=createdate,email,firstname,hs_object_id,lastmodifieddate,lastname,hs_email_optout"
    );
    let page = json(&b);
    let results = page["results"].as_array().expect("results");
    let want: Vec<Value> = (0..30)
        .map(|i| h.double.double.contact(Dialect::HubSpot, i))
        .filter(|c| c["properties"]["hs_email_optout"] == "false")
        .map(|c| c["id"].clone())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(
        results.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        want
    );
    for r in results {
        let props = &r["properties"];
        assert!(props.get("hs_email_optout").is_none(), "{r}");
        assert!(props["email"].is_string(), "{r}");
        assert!(
            props.get("lastname").is_none(),
            "newsletter drops last names: {r}"
        );
    }
    // a search names its properties in the body: the consent property is added there
    h.double.double.clear_received();
    let (r, b) = news
        .call(
            Method::POST,
            &h.url("/crm/v3/objects/contacts/search"),
            &[("content-type", "application/json")],
            Bytes::from_static(br#"{"properties":["email"],"limit":20}"#),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let sent = h.double.double.received();
    let sent: Value = serde_json::from_slice(&sent.last().expect("forwarded").body).expect("json");
    assert_eq!(
        sent["properties"],
        serde_json::json!(["email", "hs_email_optout"])
    );
    let results = json(&b)["results"].as_array().cloned().unwrap_or_default();
    assert!(!results.is_empty());
    assert!(results
        .iter()
        .all(|r| r["properties"].get("hs_email_optout").is_none()));
}

#[tokio::test]
async fn dataverse_selects_get_the_consent_column_and_apply_aggregates_are_decided() {
    let h = Harness::start_full(CONTACTS, |_| {}, |o| o).await;
    let news = h.cert_client(CERT_APP, Version::H2);
    let (r, b) = news
        .get(
            &h.url("/api/data/v9.2/contacts?$select=firstname,emailaddress1&$top=30"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        forwarded(&h),
        "/api/data/v9.2/contacts?$select=firstname,emailaddress1,donotbulkemail&$top=30"
    );
    let want: Vec<Value> = (0..30)
        .map(|i| h.double.double.contact(Dialect::Dynamics, i))
        .filter(|c| c["donotbulkemail"] == Value::Bool(false))
        .map(|c| c["contactid"].clone())
        .collect();
    let value = json(&b)["value"].as_array().cloned().expect("value");
    assert_eq!(
        value
            .iter()
            .map(|r| r["contactid"].clone())
            .collect::<Vec<_>>(),
        want
    );
    assert!(value.iter().all(|r| r.get("donotbulkemail").is_none()));

    let apply =
        "/api/data/v9.2/contacts?$apply=groupby((address1_country),aggregate($count%20as%20n))";
    let (r, b) = news.get(&h.url(apply), &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &b), "aggregate-not-allowed");
    let support = h.cert_client("support-desk", Version::H1);
    let (r, b) = support
        .get(&h.url(apply), &[("zweck-purpose", "support")])
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let rows = json(&b)["value"].as_array().cloned().expect("rows");
    let total: u64 = rows.iter().map(|r| r["n"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, CONTACTS);
    assert!(rows.iter().all(|r| r["address1_country"].is_string()));
}

#[tokio::test]
async fn composite_query_parts_get_the_consent_field_too() {
    let h = Harness::start_full(CONTACTS, |_| {}, |o| o).await;
    let news = h.cert_client(CERT_APP, Version::H1);
    let composite = br#"{"compositeRequest":[{"method":"GET","referenceId":"q",
        "url":"/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+LIMIT+25"}]}"#;
    let (r, b) = news
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &[("content-type", "application/json")],
            Bytes::from_static(composite),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let sent = h.double.double.received();
    let sent: Value = serde_json::from_slice(&sent.last().expect("forwarded").body).expect("json");
    let url = sent["compositeRequest"][0]["url"].as_str().expect("url");
    assert!(url.contains("HasOptedOutOfEmail"), "{url}");
    let page = &json(&b)["compositeResponse"][0]["body"];
    let want: Vec<Value> = (0..25)
        .map(|i| h.double.double.contact(Dialect::Salesforce, i))
        .filter(|c| c["HasOptedOutOfEmail"] == Value::Bool(false))
        .map(|c| c["Id"].clone())
        .collect();
    let records = page["records"].as_array().cloned().expect("records");
    assert_eq!(
        records.iter().map(|r| r["Id"].clone()).collect::<Vec<_>>(),
        want
    );
    assert!(records
        .iter()
        .all(|r| r.get("HasOptedOutOfEmail").is_none()));
}

/// Both reviews at once (issues 12 and 14): a query Zweck rewrites to read consent is on
/// record before it is forwarded, with the categories its predicate sends (the consent field
/// added to its select list sends none), and the CRM receives the rewritten query.
#[tokio::test]
async fn a_rewritten_query_is_on_record_as_forwarded_before_it_is_forwarded() {
    let h = Harness::start_full(CONTACTS, |_| {}, |o| o).await;
    let news = h.cert_client(CERT_APP, Version::H1);
    let email = h.double.double.contact(Dialect::Salesforce, 3)["Email"]
        .as_str()
        .expect("email")
        .to_string();
    let encoded = email.replace('@', "%40");
    let (r, b) = news
        .get(
            &h.url(&format!(
                "/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+WHERE+Email+%3D+%27{encoded}%27"
            )),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        forwarded(&h),
        format!("/services/data/v66.0/query?q=SELECT Id,Email, HasOptedOutOfEmail FROM Contact WHERE Email = '{email}'")
    );
    let text = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    let log: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let sent = log
        .iter()
        .find(|e| e["direction"] == "to_processor" && e["app"] == CERT_APP)
        .expect("a to_processor record");
    assert_eq!(
        sent["categories_delivered"],
        serde_json::json!(["user.contact.email"])
    );
    assert_eq!(sent["status"], 0, "written before the answer exists");
    let answer = log
        .iter()
        .find(|e| e["request_id"] == sent["request_id"] && e["direction"] == "from_processor")
        .expect("the answer's record");
    assert!(answer["seq"].as_u64() > sent["seq"].as_u64());
    assert!(!text.contains(&email) && !text.contains(&encoded));
}
