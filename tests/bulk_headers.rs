//! The headers SDKs read on Bulk API 2.0 results (issue 12, item 3): `Sforce-NumberOfRecords`
//! carries the rows the app gets after filtering, whether the page is filtered whole or is
//! too large to hold (then it is counted, fetched again and streamed under the count), and
//! `Sforce-Locator` is the CRM's cursor, unchanged. Over HTTP/1.1 and HTTP/2.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;

/// newsletter with a Bulk export budget (the shipped one has none): its consent removes rows,
/// so the CRM's row count and the app's differ.
fn newsletter_may_export(o: Options, extra_limits: &str) -> Options {
    let policies = policies_with(&o.certs_dir, |t| {
        t.replace(
            "per_class: { bulk_export: { records: 0 } } }\n\n  support:",
            "per_class: { bulk_export: { records: 5000, per: 1h } } }\n\n  support:",
        )
    });
    Options {
        policies,
        extra_limits: extra_limits.to_string(),
        ..o
    }
}

async fn job(h: &Harness, c: &TestClient) -> String {
    let (r, b) = c
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/jobs/query"),
            &[("content-type", "application/json")],
            Bytes::from_static(
                br#"{"operation":"query","query":"SELECT Id,FirstName,Email,HasOptedOutOfEmail FROM Contact"}"#,
            ),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let v: serde_json::Value = serde_json::from_slice(&b).expect("job");
    v["id"].as_str().expect("id").to_string()
}

/// The CSV's data rows.
fn rows(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// What the double sent for the same page: its rows and how many had e-mail consent.
async fn crm_page(h: &Harness, job: &str, query: &str) -> (u64, u64) {
    let upstream = TestClient::new(&h.paths().ca_cert(), None, Version::H1);
    let url = format!(
        "https://127.0.0.1:{}/services/data/v66.0/jobs/query/{job}/results?{query}",
        h.double.addr.port()
    );
    let (r, b) = upstream
        .get(
            &url,
            &[("authorization", &format!("Bearer {UPSTREAM_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status(), 200);
    let sent: u64 = r.headers()["sforce-numberofrecords"]
        .to_str()
        .expect("text")
        .parse()
        .expect("count");
    let consented = rows(&b).iter().filter(|r| r.ends_with("\"false\"")).count() as u64;
    (sent, consented)
}

#[tokio::test]
async fn a_page_that_fits_carries_the_rows_delivered_and_the_crm_locator() {
    let h = Harness::start_full(600, |_| {}, |o| newsletter_may_export(o, "")).await;
    for version in [Version::H1, Version::H2] {
        let c = h.cert_client(CERT_APP, version);
        let job = job(&h, &c).await;
        let (sent, consented) = crm_page(&h, &job, "maxRecords=250").await;
        assert_eq!(sent, 250);
        assert!(
            consented < sent,
            "consent removes rows: the counts must differ"
        );
        let (r, b) = c
            .get(
                &h.url(&format!(
                    "/services/data/v66.0/jobs/query/{job}/results?maxRecords=250"
                )),
                &[],
            )
            .await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
        let delivered = rows(&b).len() as u64;
        assert_eq!(delivered, consented);
        assert_eq!(
            r.headers()["sforce-numberofrecords"],
            delivered.to_string().as_str(),
            "{version:?}: the rows the app got, not the CRM's {sent}"
        );
        // the CRM's cursor passes: the next page starts after the CRM's 250 rows
        let locator = r.headers()["sforce-locator"].to_str().expect("locator");
        assert_ne!(locator, "null");
        let (r, b) = c
            .get(
                &h.url(&format!(
                    "/services/data/v66.0/jobs/query/{job}/results?maxRecords=250&locator={locator}"
                )),
                &[],
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["sforce-numberofrecords"],
            rows(&b).len().to_string().as_str()
        );
    }
}

#[tokio::test]
async fn a_page_too_large_to_hold_is_counted_fetched_again_and_streamed_under_its_count() {
    // 16 KiB of filtered rows fit; a page of 600 rows does not
    let h = Harness::start_full(
        600,
        |_| {},
        |o| newsletter_may_export(o, ", buffer_bytes: 16KiB"),
    )
    .await;
    for version in [Version::H1, Version::H2] {
        let c = h.cert_client(CERT_APP, version);
        let job = job(&h, &c).await;
        let (_, consented) = crm_page(&h, &job, "maxRecords=600").await;
        h.double.double.clear_received();
        let (r, b) = c
            .get(
                &h.url(&format!(
                    "/services/data/v66.0/jobs/query/{job}/results?maxRecords=600"
                )),
                &[],
            )
            .await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
        assert!(b.len() > 16 * 1024, "the page went out as a stream");
        let delivered = rows(&b).len() as u64;
        assert_eq!(delivered, consented);
        assert_eq!(
            r.headers()["sforce-numberofrecords"],
            delivered.to_string().as_str()
        );
        let asked = h
            .double
            .double
            .received()
            .iter()
            .filter(|q| q.path_and_query.contains("/results"))
            .count();
        assert_eq!(
            asked, 2,
            "{version:?}: counted once, fetched again to stream"
        );
    }
    // the streamed page has its intent and close records, the close with the rows delivered
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    let closes: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["stage"] == "close")
        .collect();
    assert_eq!(closes.len(), 2, "{closes:?}");
    assert!(closes.iter().all(|e| e["reason"].is_null()), "{closes:?}");
}
