//! Page-size caps through the proxy, over HTTP/1.1 and HTTP/2 (issue 12, item 10): a cap only
//! ever lowers what the CRM would send, is added only when the budget needs it, never goes to
//! composite, `$batch` or collections requests, and near the end of a budget a list is refused
//! with 429 and Retry-After instead of being cut to a one-record crawl.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;

/// analytics (bi-export, API key) with `records` per 30 days, all of them at once: nothing
/// refills while a test runs.
fn analytics_budget(o: Options, records: u64) -> Options {
    let policies = policies_with(&o.certs_dir, |t| {
        t.replace(
            "export_budget: { records: 1000000, per: 1d, burst: 100000 }",
            &format!("export_budget: {{ records: {records}, per: 30d, burst: {records} }}"),
        )
    });
    Options { policies, ..o }
}

/// The last request the double received whose path and query contain `needle`.
fn received(h: &Harness, needle: &str) -> zweck::crm_double::ReceivedRequest {
    h.double
        .double
        .received()
        .into_iter()
        .rev()
        .find(|r| r.path_and_query.contains(needle))
        .unwrap_or_else(|| panic!("the CRM never saw {needle}"))
}

fn header<'a>(r: &'a zweck::crm_double::ReceivedRequest, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn ok(c: &TestClient, method: Method, url: &str, headers: &[(&str, &str)], body: &str) {
    let (r, b) = c
        .call(method, url, headers, Bytes::from(body.to_string()))
        .await;
    assert_eq!(r.status(), 200, "{url}: {}", String::from_utf8_lossy(&b));
}

#[tokio::test]
async fn no_page_size_is_added_when_the_page_fits_the_budget() {
    // 100,000 left: every CRM's own page fits, so nothing is asked that the app did not ask
    let h = Harness::start_full(300, |_| {}, |o| analytics_budget(o, 100_000)).await;
    let key = h.api_key();
    for version in [Version::H1, Version::H2] {
        h.double.double.clear_received();
        let c = h.anon_client(version);
        let auth = [("zweck-api-key", key.as_str())];
        let json = [
            ("zweck-api-key", key.as_str()),
            ("content-type", "application/json"),
        ];
        let soql = "/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+LIMIT+5";
        ok(&c, Method::GET, &h.url(soql), &auth, "").await;
        let r = received(&h, "/query?q=");
        assert_eq!(
            header(&r, "sforce-query-options"),
            None,
            "{version:?}: no batchSize=2000"
        );

        ok(
            &c,
            Method::GET,
            &h.url("/crm/v3/objects/contacts?properties=email"),
            &auth,
            "",
        )
        .await;
        let r = received(&h, "/crm/v3/objects/contacts?");
        assert!(
            !r.path_and_query.contains("limit="),
            "{version:?}: {}",
            r.path_and_query
        );

        ok(
            &c,
            Method::GET,
            &h.url("/api/data/v9.2/contacts?$select=fullname"),
            &auth,
            "",
        )
        .await;
        let r = received(&h, "/api/data/v9.2/contacts?");
        assert_eq!(
            header(&r, "prefer"),
            None,
            "{version:?}: no odata.maxpagesize"
        );

        // composite, collections retrieve and $batch have no page size of their own
        let composite = r#"{"compositeRequest":[{"method":"GET","url":"/services/data/v66.0/sobjects/Contact/003Fict00000001AAA","referenceId":"c"}]}"#;
        ok(
            &c,
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &json,
            composite,
        )
        .await;
        let r = received(&h, "/services/data/v66.0/composite");
        assert!(
            !r.path_and_query.contains("maxRecords"),
            "{}",
            r.path_and_query
        );
        assert_eq!(header(&r, "sforce-query-options"), None);

        let ids = r#"{"ids":["003Fict00000001AAA","003Fict00000002AAA"],"fields":["Id","Email"]}"#;
        ok(
            &c,
            Method::POST,
            &h.url("/services/data/v66.0/composite/sobjects/Contact"),
            &json,
            ids,
        )
        .await;
        let r = received(&h, "/composite/sobjects/Contact");
        assert!(
            !r.path_and_query.contains("maxRecords"),
            "{}",
            r.path_and_query
        );

        let boundary = "batch_fict-caps";
        let batch = format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/contacts?$select=fullname&$top=3 HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--{boundary}--\r\n"
        );
        let ctype = format!("multipart/mixed; boundary={boundary}");
        let headers = [
            ("zweck-api-key", key.as_str()),
            ("content-type", ctype.as_str()),
        ];
        ok(
            &c,
            Method::POST,
            &h.url("/api/data/v9.2/$batch"),
            &headers,
            &batch,
        )
        .await;
        let r = received(&h, "/api/data/v9.2/$batch");
        assert_eq!(
            header(&r, "prefer"),
            None,
            "{version:?}: no maxpagesize on $batch"
        );
    }
}

#[tokio::test]
async fn a_page_larger_than_what_is_left_is_asked_smaller() {
    let h = Harness::start_full(300, |_| {}, |o| analytics_budget(o, 1_000)).await;
    let key = h.api_key();
    let auth = [("zweck-api-key", key.as_str())];
    let c = h.anon_client(Version::H2);
    // Salesforce's own page is 2,000: more than the 1,000 left
    let soql = "/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+LIMIT+5";
    ok(&c, Method::GET, &h.url(soql), &auth, "").await;
    let r = received(&h, "/query?q=");
    assert_eq!(header(&r, "sforce-query-options"), Some("batchSize=1000"));
    // 995 left now: Dataverse's page of 5,000 is lowered, other preferences stay
    let prefer = [
        ("zweck-api-key", key.as_str()),
        ("prefer", "odata.include-annotations=\"*\""),
    ];
    ok(
        &c,
        Method::GET,
        &h.url("/api/data/v9.2/contacts?$select=fullname&$top=5"),
        &prefer,
        "",
    )
    .await;
    let r = received(&h, "/api/data/v9.2/contacts?");
    assert_eq!(
        header(&r, "prefer"),
        Some("odata.include-annotations=\"*\",odata.maxpagesize=995")
    );
    // a client's page that fits is left as it is
    ok(
        &c,
        Method::GET,
        &h.url("/crm/v3/objects/contacts?limit=100&properties=email"),
        &auth,
        "",
    )
    .await;
    let r = received(&h, "/crm/v3/objects/contacts?");
    assert!(
        r.path_and_query.contains("limit=100"),
        "{}",
        r.path_and_query
    );
}

#[tokio::test]
async fn near_the_end_of_a_budget_a_list_is_refused_with_retry_after_not_crawled() {
    for version in [Version::H1, Version::H2] {
        // 104 records: a page of 100, then 4 left, below the floor of 10
        let h = Harness::start_full(300, |_| {}, |o| analytics_budget(o, 104)).await;
        let key = h.api_key();
        let auth = [("zweck-api-key", key.as_str())];
        let c = h.anon_client(version);
        let (r, b) = c
            .get(
                &h.url("/crm/v3/objects/contacts?limit=100&properties=email"),
                &auth,
            )
            .await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["results"].as_array().map(Vec::len), Some(100));
        let next = v["paging"]["next"]["after"].as_str().expect("after");
        h.double.double.clear_received();

        let url = h.url(&format!(
            "/crm/v3/objects/contacts?limit=100&properties=email&after={next}"
        ));
        let (r, b) = c.get(&url, &auth).await;
        assert_eq!(
            r.status(),
            429,
            "{version:?}: {}",
            String::from_utf8_lossy(&b)
        );
        assert_eq!(problem_slug(&r, &b), "budget-exhausted");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .expect("text")
            .parse()
            .expect("seconds");
        assert!(retry > 0, "a time when the floor fits again");
        assert!(
            h.double.double.received().is_empty(),
            "{version:?}: the CRM was not asked for a page of 4"
        );
        // a client that asks for fewer than the floor gets exactly that
        let small = h.url(&format!(
            "/crm/v3/objects/contacts?limit=3&properties=email&after={next}"
        ));
        let (r, b) = c.get(&small, &auth).await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["results"].as_array().map(Vec::len), Some(3));
    }
}
