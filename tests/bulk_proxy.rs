//! Salesforce Bulk API 2.0 query results through the proxy: CSV governed as a stream, rows
//! counted against the export budget, intent and close records in the transfer log.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use zweck::crm_double::Dialect;

async fn create_job(h: &Harness, c: &TestClient, auth: &[(&str, &str)]) -> (u16, String) {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(auth);
    let (r, b) = c
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/jobs/query"),
            &headers,
            Bytes::from_static(br#"{"operation":"query","query":"SELECT Id,FirstName,LastName,Email,MobilePhone,Birthdate,HasOptedOutOfEmail FROM Contact"}"#),
        )
        .await;
    let id = serde_json::from_slice::<serde_json::Value>(&b)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    (r.status().as_u16(), id)
}

#[tokio::test]
async fn bulk_csv_is_governed_and_charged_per_row_with_its_row_count() {
    let h = Harness::start_full(
        1000,
        |_| {},
        |mut o| {
            o.policies = policies_with(&o.certs_dir, |t| {
                t.replace(
                    "export_budget: { records: 1000000, per: 1d, burst: 100000 }",
                    "export_budget: { records: 300, per: 1h, burst: 300 }",
                )
            });
            o
        },
    )
    .await;
    let key = h.api_key();
    let auth = [("zweck-api-key", key.as_str())];
    let c = h.anon_client(Version::H2);
    let (status, job) = create_job(&h, &c, &auth).await;
    assert_eq!(status, 200, "job created");
    assert!(!job.is_empty());
    let (r, b) = c
        .get(
            &h.url(&format!(
                "/services/data/v66.0/jobs/query/{job}/results?maxRecords=1000"
            )),
            &auth,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    // the rows delivered, as simple-salesforce reads them; the CRM's cursor unchanged
    assert_eq!(r.headers()["sforce-numberofrecords"], "300");
    assert!(r.headers().contains_key("sforce-locator"));
    let text = String::from_utf8_lossy(&b).to_string();
    let mut lines = text.lines();
    let header = lines.next().expect("header row");
    assert!(header.contains("\"Email\""), "{header}");
    assert!(
        !header.contains("FirstName") && !header.contains("MobilePhone"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        300,
        "capped to the budget (maxRecords rewritten)"
    );
    assert!(
        rows.iter().all(|r| r.contains("pz1_")),
        "e-mail addresses pseudonymised"
    );
    for i in 0..300 {
        let p = h.double.double.contact(Dialect::Salesforce, i);
        for f in ["Email", "LastName", "MobilePhone"] {
            if let Some(v) = p[f].as_str() {
                assert!(
                    !text.contains(v),
                    "a {f} value reached the analytics export"
                );
            }
        }
    }
    // the budget is spent: the next page is refused before the CRM is asked
    let (r, b) = c
        .get(
            &h.url(&format!(
                "/services/data/v66.0/jobs/query/{job}/results?maxRecords=1000&locator=MzAw"
            )),
            &auth,
        )
        .await;
    assert_eq!(r.status(), 429, "{}", String::from_utf8_lossy(&b));
    // a page whose rows fit the buffer is filtered whole: one record, with the count
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    let entries: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| {
            e["route"] == "GET /services/data/v*/jobs/query/*/results"
                && e["direction"] == "from_processor"
                && e["decision"] != "rate_limited"
        })
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["records"], 300);
}

#[tokio::test]
async fn a_purpose_whose_bulk_budget_is_zero_cannot_start_an_export() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (status, _) = create_job(&h, &c, &[]).await;
    assert_eq!(status, 403, "bulk_export: records 0 for newsletter");
    assert!(h.double.double.received().is_empty());
}
