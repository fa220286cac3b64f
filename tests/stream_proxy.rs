//! JSON list pages larger than `limits.buffer_bytes` are governed record by record as a
//! stream: the same records and values as the buffered path, bounded memory, intent and
//! close records in the transfer log.

mod common;

use common::*;
use zweck::crm_double::Dialect;

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,Email,MobilePhone,Birthdate,HasOptedOutOfEmail+FROM+Contact+LIMIT+600";

async fn fetch(buffer: &'static str) -> (serde_json::Value, Vec<serde_json::Value>, Harness) {
    fetch_with(buffer, None).await
}

/// The page as newsletter gets it, with `counts` set to `counts` when given.
async fn fetch_with(
    buffer: &'static str,
    counts: Option<&'static str>,
) -> (serde_json::Value, Vec<serde_json::Value>, Harness) {
    let h = Harness::start_full(
        1000,
        |_| {},
        move |mut o| {
            o.extra_limits = format!(", buffer_bytes: {buffer}");
            if let Some(counts) = counts {
                o.policies = policies_with(&o.certs_dir, |t| {
                    t.replace(
                        "    writes: deny\n    export_budget: { records: 50000",
                        &format!("    writes: deny\n    counts: {counts}\n    export_budget: {{ records: 50000"),
                    )
                });
            }
            o
        },
    )
    .await;
    let c = h.cert_client(CERT_APP, Version::H2);
    let (r, b) = c
        .get(&h.url(SOQL), &[("sforce-query-options", "batchSize=600")])
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    let entries = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (v, entries, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_page_over_the_buffer_streams_with_the_same_result() {
    let (streamed, log, h) = fetch("32KiB").await;
    let (buffered, _, _) = fetch("8MiB").await;
    let b = buffered["records"].as_array().expect("records");
    let s = streamed["records"].as_array().expect("records");
    assert!(b.len() > 100, "a page well over 32 KiB");
    assert_eq!(b, s, "the same records, the same values");
    // newsletter's `counts` is `delivered`: the buffered page counts the records it delivers;
    // a streamed page sends its envelope before its records, so it drops the count
    assert_eq!(buffered["totalSize"].as_u64(), Some(b.len() as u64));
    assert!(
        streamed.get("totalSize").is_none(),
        "{}",
        streamed["totalSize"]
    );
    assert_eq!(buffered["done"], streamed["done"]);
    assert_eq!(buffered["nextRecordsUrl"], streamed["nextRecordsUrl"]);
    let text = streamed.to_string();
    for i in 0..600 {
        let p = h.double.double.contact(Dialect::Salesforce, i);
        if let Some(v) = p["MobilePhone"].as_str() {
            assert!(
                !text.contains(v),
                "a phone number reached the newsletter tool"
            );
        }
    }
    let intent = log
        .iter()
        .find(|e| e["stage"] == "intent")
        .expect("intent record");
    let close = log
        .iter()
        .find(|e| e["stage"] == "close")
        .expect("close record");
    assert_eq!(intent["route"], "GET /services/data/v*/query");
    assert!(close["records"].as_u64().unwrap_or(0) >= s.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_drop_drops_the_count_buffered_and_streamed_and_pass_passes_it() {
    for buffer in ["32KiB", "8MiB"] {
        let (page, _, _) = fetch_with(buffer, Some("drop")).await;
        assert!(page["records"].as_array().is_some_and(|r| !r.is_empty()));
        assert!(
            page.get("totalSize").is_none(),
            "{buffer}: {}",
            page["totalSize"]
        );
    }
    // pass: the CRM's count of the whole query (600), more than newsletter gets
    let (page, _, _) = fetch_with("8MiB", Some("pass")).await;
    let delivered = page["records"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(page["totalSize"].as_u64(), Some(600));
    assert!(delivered < 600);
}
