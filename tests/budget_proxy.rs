//! Export budgets through the proxy: pages are capped to what is left, a page that does not
//! fit is refused whole (never truncated), refusals carry Retry-After and RateLimit headers
//! and are logged as `rate_limited`, and the records charged are the ones delivered.

mod common;

use common::*;

/// analytics (bi-export, API key): 5,000 records per 30 days, burst 5,000. The budget runs on
/// the real clock here, so its period is long enough that nothing comes back while a test
/// runs (per hour, a record came back every 720 ms, and a slow run saw the refused page
/// forwarded after all).
fn small_budget(text: String) -> String {
    text.replace(
        "export_budget: { records: 1000000, per: 1d, burst: 100000 }",
        "export_budget: { records: 5000, per: 30d, burst: 5000 }",
    )
}

#[tokio::test]
async fn a_10000_record_soql_query_is_cut_off_at_the_budget() {
    let h = Harness::start_full(
        10_000,
        |_| {},
        |mut o| {
            o.policies = policies_with(&o.certs_dir, small_budget);
            o
        },
    )
    .await;
    let key = h.api_key();
    let c = h.anon_client(Version::H2);
    let auth = [
        ("zweck-api-key", key.as_str()),
        ("sforce-query-options", "batchSize=2000"),
    ];
    let mut url = h.url("/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+LIMIT+10000");
    let mut delivered = 0u64;
    let mut pages = 0;
    let refusal = loop {
        let (r, b) = c.get(&url, &auth).await;
        if r.status() != 200 {
            break (r, b);
        }
        pages += 1;
        assert!(
            r.headers().contains_key("ratelimit"),
            "RateLimit on governed responses"
        );
        assert!(r.headers().contains_key("ratelimit-policy"));
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        delivered += v["records"].as_array().map_or(0, |a| a.len() as u64);
        match v["nextRecordsUrl"].as_str() {
            Some(next) => url = h.url(next),
            None => panic!("the query ended before the budget: {delivered} records"),
        }
        assert!(pages < 20, "bounded");
    };
    assert_eq!(
        delivered, 5000,
        "exactly the budget was delivered, in {pages} pages"
    );
    let (r, b) = refusal;
    assert_eq!(r.status(), 429, "{}", String::from_utf8_lossy(&b));
    assert_eq!(problem_slug(&r, &b), "budget-exhausted");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!(retry > 0);
    // the refusal came before the CRM was asked
    let asked = h
        .double
        .double
        .received()
        .iter()
        .filter(|q| q.path_and_query.contains("/query"))
        .count();
    assert_eq!(asked, pages, "the refused page never reached the CRM");
    // the log has the rate-limited refusal
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    assert!(log
        .lines()
        .any(|l| l.contains("\"decision\":\"rate_limited\"")));
    let charged: u64 = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["direction"] == "from_processor" && e["decision"] != "rate_limited")
        .map(|e| e["records"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(charged, 5000, "the log counts what was charged");
}

#[tokio::test]
async fn hubspot_pages_are_capped_to_what_is_left() {
    let h = Harness::start_full(
        400,
        |_| {},
        |mut o| {
            o.policies = policies_with(&o.certs_dir, |t| {
                t.replace(
                    "export_budget: { records: 1000000, per: 1d, burst: 100000 }",
                    "export_budget: { records: 150, per: 30d, burst: 150 }",
                )
            });
            o
        },
    )
    .await;
    let key = h.api_key();
    let c = h.anon_client(Version::H1);
    let auth = [("zweck-api-key", key.as_str())];
    let mut url = h.url("/crm/v3/objects/contacts?limit=100&properties=email,city");
    let mut delivered = 0;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (r, b) = c.get(&url, &auth).await;
        statuses.push(r.status().as_u16());
        if r.status() != 200 {
            break;
        }
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        delivered += v["results"].as_array().map_or(0, Vec::len);
        match v["paging"]["next"]["link"].as_str() {
            Some(next) => url = next.replace("https://zweck.test:8443", &h.url("")),
            None => break,
        }
    }
    assert_eq!(delivered, 150, "{statuses:?}");
    assert_eq!(statuses, vec![200, 200, 429]);
    // the second page was asked for 50, not 100
    let asked: Vec<String> = h
        .double
        .double
        .received()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert!(asked.iter().any(|p| p.contains("limit=50")), "{asked:?}");
}
