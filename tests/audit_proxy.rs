//! The transfer log as the proxy writes it: one record per governed direction and per
//! refusal, never a personal value, verifiable afterwards; a log that cannot be written stops
//! the flow; a cross-border flow without a transfer mechanism never starts.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use zweck::crm_double::Dialect;

fn entries(h: &Harness) -> Vec<serde_json::Value> {
    let log = h.dir.path().join("logs/transfers.jsonl");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,Email,MobilePhone,HasOptedOutOfEmail+FROM+Contact+LIMIT+12";

#[tokio::test]
async fn governed_flows_and_refusals_are_logged_without_values_and_the_log_verifies() {
    // support minimises its Contact writes silently here, so the write below is a minimised
    // flow (without the opt-in it is refused: tests/write_refusals.rs)
    let mut h = Harness::start_with(|mut o| {
        o.policies = policies_with(&o.certs_dir, |t| {
            t.replacen(
                "    writes: allow\n",
                "    writes: allow\n    silent_write_minimisation: [Contact]\n",
                1,
            )
        });
        o
    })
    .await;
    let news = h.cert_client(CERT_APP, Version::H2);
    let support = h.cert_client("support-desk", Version::H1);

    // a read: one from_processor record
    let (r, body) = news.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200);
    let delivered: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let n = delivered["records"].as_array().map_or(0, Vec::len) as u64;

    // a write: one to_processor record, appended before forwarding
    let path = "/services/data/v66.0/sobjects/Contact/003Fict000000000001AAA";
    let (r, _) = support
        .call(
            Method::PATCH,
            &h.url(path),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(
                br#"{"Title":"Head of Fiction","Secret_Notes__c":"Fictional-Secret-0042"}"#,
            ),
        )
        .await;
    assert!(r.status().is_success() || r.status() == 404);

    // a refusal: one blocked record
    let (r, _) = news
        .call(
            Method::PATCH,
            &h.url(path),
            &[("content-type", "application/json")],
            Bytes::from_static(br#"{"Title":"x"}"#),
        )
        .await;
    assert_eq!(r.status(), 403);

    // ungoverned routes carry no personal data: no record
    let (r, _) = news.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 200);

    // One exchange at a time: the writer never held a batch back for the whole commit window
    // (it waits only for other exchanges in flight; an exchange still announced while it
    // waits for its own record would make every batch wait the window out).
    let stats = h.zweck().state.audit.as_ref().expect("audit").stats();
    assert!(stats.appends >= 3, "{stats:?}");
    assert_eq!(stats.window_timeouts, 0, "{stats:?}");

    let log = entries(&h);
    let read = log
        .iter()
        .find(|e| e["direction"] == "from_processor" && e["app"] == CERT_APP)
        .expect("read record");
    assert_eq!(read["purpose"], "newsletter");
    assert_eq!(read["legal_basis"], "consent");
    assert_eq!(read["processor"], "Salesforce, Inc.");
    assert_eq!(read["jurisdiction"], "US");
    assert_eq!(read["cross_border"], true);
    assert_eq!(read["transfer_mechanism"]["type"], "dpf");
    assert_eq!(read["route"], "GET /services/data/v*/query");
    assert_eq!(read["decision"], "minimised");
    assert_eq!(read["status"], 200);
    assert!(n > 0);
    assert!(
        read["records"].as_u64().expect("records") >= n,
        "records counted"
    );
    let cats: Vec<&str> = read["categories_delivered"]
        .as_array()
        .expect("cats")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(cats.contains(&"user.contact.email"));
    assert!(
        !cats.iter().any(|c| c.starts_with("user.contact.phone")),
        "{cats:?}"
    );
    let received: Vec<&str> = read["categories_received"]
        .as_array()
        .expect("cats")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        received.iter().any(|c| c.starts_with("user.contact.phone")),
        "{received:?}"
    );
    assert_eq!(read["policy_version"].as_str().map(str::len), Some(64));

    let write = log
        .iter()
        .find(|e| e["direction"] == "to_processor" && e["app"] == "support-desk")
        .expect("write record");
    assert_eq!(write["decision"], "minimised");
    assert_eq!(write["route"], "PATCH /services/data/v*/sobjects/Contact/*");

    let refused = log
        .iter()
        .find(|e| e["decision"] == "blocked")
        .expect("refusal record");
    assert_eq!(refused["reason"], "write-denied");
    assert_eq!(refused["status"], 403);
    assert_eq!(
        log.iter()
            .filter(|e| e["route"] == "GET /services/data/")
            .count(),
        0
    );

    // never a value, a raw path or a query string
    let text = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    for i in 0..12 {
        let person = h.double.double.contact(Dialect::Salesforce, i);
        for f in ["Email", "LastName", "MobilePhone"] {
            if let Some(v) = person[f].as_str() {
                assert!(!text.contains(v), "a value reached the transfer log");
            }
        }
    }
    assert!(!text.contains("Fictional-Secret-0042") && !text.contains("Head of Fiction"));
    assert!(!text.contains("003Fict000000000001AAA") && !text.contains("SELECT"));

    // shut down (final checkpoint), then the auditor's verification passes
    h.shutdown().await;
    h.assert_log_verifies();
}

#[tokio::test]
async fn a_log_that_cannot_be_written_stops_governed_flows_only() {
    // the log is /dev/full: every write fails as on a full disk
    let h = Harness::start_prepared(
        |dir| {
            let log = dir.join("logs/transfers.jsonl");
            std::fs::create_dir_all(log.parent().expect("dir")).expect("mkdir");
            std::os::unix::fs::symlink("/dev/full", &log).expect("symlink");
        },
        |o| o,
    )
    .await;
    let support = h.cert_client("support-desk", Version::H1);
    let (r, b) = support
        .call(
            Method::PATCH,
            &h.url("/services/data/v66.0/sobjects/Contact/003Fict000000000001AAA"),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(br#"{"Title":"Head of Fiction"}"#),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(problem_slug(&r, &b), "audit-unavailable");
    assert!(
        h.double.double.received().is_empty(),
        "the write never reached the CRM"
    );
    // a governed read is fetched but never released
    let news = h.cert_client(CERT_APP, Version::H2);
    let (r, b) = news.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 503);
    assert!(!String::from_utf8_lossy(&b).contains("example."));
    // ungoverned routes carry no personal data and keep working
    let (r, _) = news.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 200);
    // operators see it: not ready (a load balancer moves traffic away) and a metric
    let (status, text) = h.admin_get("/readyz").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("transfer log"), "{text}");
    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(metrics.contains("zweck_transfer_log_failed 1"), "{metrics}");
}

#[tokio::test]
async fn a_cross_border_flow_without_a_transfer_mechanism_never_starts() {
    let h = Harness::start_with(|mut o| {
        o.extra_upstreams = format!(
            r"  unguarded:
    url: https://127.0.0.1:{port}
    dialect: salesforce
    route: {{ host: unguarded.test, path_prefix: /services/data/ }}
    auth: {{ bearer_file: {dir}/upstream.token }}
    processor: Offshore Fictional Ltd
    jurisdiction: US
    transfer_mechanism: {{ type: none }}
    ca: {dir}/ca.pem
",
            port = o.double_port,
            dir = o.certs_dir.display(),
        );
        o
    })
    .await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, b) = c.get(&h.url(SOQL), &[("host", "unguarded.test")]).await;
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(&b));
    assert_eq!(problem_slug(&r, &b), "transfer-not-permitted");
    assert!(h.double.double.received().is_empty());
    let log = entries(&h);
    let refused = log
        .iter()
        .find(|e| e["upstream"] == "unguarded")
        .expect("record");
    assert_eq!(refused["decision"], "blocked");
    assert_eq!(refused["reason"], "transfer-not-permitted");
    assert_eq!(refused["cross_border"], true);
}

/// The to_processor records of an exchange, in log order.
fn to_processor<'a>(log: &'a [serde_json::Value], app: &str) -> Vec<&'a serde_json::Value> {
    log.iter()
        .filter(|e| e["direction"] == "to_processor" && e["app"] == app)
        .collect()
}

fn categories(e: &serde_json::Value, key: &str) -> Vec<String> {
    e[key]
        .as_array()
        .expect("categories")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

/// Personal data in a URL or in a read's query body goes to the processor: each such request
/// has its to_processor record (categories only, before forwarding), for every dialect and
/// inside a tunnel.
#[tokio::test]
async fn personal_data_in_urls_and_query_bodies_is_recorded_before_forwarding() {
    let h = Harness::start().await;
    let support = h.cert_client("support-desk", Version::H1);
    let purpose = ("zweck-purpose", "support");
    let email = h.double.double.contact(Dialect::HubSpot, 3)["properties"]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let encoded = email.replace('@', "%40");
    let cases: Vec<(Method, String, Option<&str>, &str)> = vec![
        // a HubSpot read by e-mail in the path
        (
            Method::GET,
            format!("/crm/v3/objects/contacts/{encoded}?idProperty=email"),
            None,
            "GET /crm/v3/objects/contacts/*",
        ),
        // a Dataverse $filter and an alternate key
        (
            Method::GET,
            format!("/api/data/v9.2/contacts?$filter=emailaddress1%20eq%20'{encoded}'"),
            None,
            "GET /api/data/v*/contacts",
        ),
        (
            Method::GET,
            format!("/api/data/v9.2/contacts(emailaddress1='{encoded}')"),
            None,
            "GET /api/data/v*/contacts(*)",
        ),
        // SOQL WHERE
        (
            Method::GET,
            format!("/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+WHERE+Email+%3D+%27{encoded}%27"),
            None,
            "GET /services/data/v*/query",
        ),
        // a HubSpot search body
        (
            Method::POST,
            "/crm/v3/objects/contacts/search".into(),
            Some(r#"{"filterGroups":[{"filters":[{"propertyName":"email","operator":"EQ","value":"EMAIL"}]}]}"#),
            "POST /crm/v3/objects/contacts/search",
        ),
        // a Salesforce composite whose sub-request is a query by e-mail
        (
            Method::POST,
            "/services/data/v66.0/composite".into(),
            Some(r#"{"compositeRequest":[{"method":"GET","url":"/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+WHERE+Email+%3D+%27EMAIL%27","referenceId":"q"}]}"#),
            "POST /services/data/v*/composite",
        ),
    ];
    for (method, path, body, route) in &cases {
        let body = body.map(|b| b.replace("EMAIL", &email)).unwrap_or_default();
        let mut headers = vec![purpose];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        let (r, b) = support
            .call(method.clone(), &h.url(path), &headers, Bytes::from(body))
            .await;
        assert!(
            r.status().is_success() || r.status() == 404,
            "{path}: {} {}",
            r.status(),
            String::from_utf8_lossy(&b)
        );
        let log = entries(&h);
        let sent = to_processor(&log, "support-desk");
        let record = sent
            .iter()
            .find(|e| e["route"] == *route)
            .unwrap_or_else(|| panic!("no to_processor record for {route}: {sent:?}"));
        assert_eq!(
            categories(record, "categories_delivered"),
            ["user.contact.email"],
            "{route}"
        );
        assert_eq!(record["status"], 0, "written before the answer exists");
        assert_eq!(record["decision"], "allowed");
        // before forwarding: the record's seq is below the answer's
        let answer = log.iter().find(|e| {
            e["request_id"] == record["request_id"] && e["direction"] == "from_processor"
        });
        if let Some(answer) = answer {
            assert!(answer["seq"].as_u64() > record["seq"].as_u64());
        }
    }
    // a query without personal data in it has no to_processor record
    let before = to_processor(&entries(&h), "support-desk").len();
    let (r, _) = support
        .get(
            &h.url("/crm/v3/objects/contacts?limit=2&properties=email"),
            &[purpose],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(to_processor(&entries(&h), "support-desk").len(), before);
    // nor a read's body that names only properties, limits, sorts and record ids (the
    // answer is on record as ever)
    let id = h.double.double.contact(Dialect::HubSpot, 3)["id"].clone();
    let reads = [
        (
            "/crm/v3/objects/contacts/search",
            r#"{"limit":2,"properties":["email","firstname"],"sorts":["createdate"]}"#.to_string(),
        ),
        (
            "/crm/v3/objects/contacts/batch/read",
            serde_json::json!({"inputs": [{"id": id}], "properties": ["email"]}).to_string(),
        ),
    ];
    for (path, body) in reads {
        let answers = entries(&h)
            .iter()
            .filter(|e| e["direction"] == "from_processor")
            .count();
        let (r, b) = support
            .call(
                Method::POST,
                &h.url(path),
                &[purpose, ("content-type", "application/json")],
                Bytes::from(body),
            )
            .await;
        assert_eq!(r.status(), 200, "{path}: {}", String::from_utf8_lossy(&b));
        let log = entries(&h);
        assert_eq!(to_processor(&log, "support-desk").len(), before, "{path}");
        let now = log
            .iter()
            .filter(|e| e["direction"] == "from_processor")
            .count();
        assert_eq!(now, answers + 1, "{path}: the answer is on record");
    }
    // categories, never values
    let text = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    assert!(!text.contains(&email) && !text.contains(&encoded));
}

/// With the log failed (disk full), a request carrying personal data in its URL never
/// reaches the CRM: its record cannot be written, so it is refused before forwarding.
#[tokio::test]
async fn a_failed_log_stops_personal_data_in_a_url_before_it_is_forwarded() {
    let h = Harness::start_prepared(
        |dir| {
            let log = dir.join("logs/transfers.jsonl");
            std::fs::create_dir_all(log.parent().expect("dir")).expect("mkdir");
            std::os::unix::fs::symlink("/dev/full", &log).expect("symlink");
        },
        |o| o,
    )
    .await;
    let support = h.cert_client("support-desk", Version::H2);
    let email = h.double.double.contact(Dialect::HubSpot, 3)["properties"]["email"]
        .as_str()
        .expect("email")
        .replace('@', "%40");
    for _ in 0..2 {
        let (r, b) = support
            .get(
                &h.url(&format!(
                    "/crm/v3/objects/contacts/{email}?idProperty=email"
                )),
                &[("zweck-purpose", "support")],
            )
            .await;
        assert_eq!(r.status(), 503);
        assert_eq!(problem_slug(&r, &b), "audit-unavailable");
    }
    // once failed, no governed request is forwarded at all
    let (r, _) = support
        .get(
            &h.url("/crm/v3/objects/contacts?limit=1"),
            &[("zweck-purpose", "support")],
        )
        .await;
    assert_eq!(r.status(), 503);
    assert!(
        h.double.double.received().is_empty(),
        "nothing reached the CRM: {:?}",
        h.double.double.received().len()
    );
}

/// Refusals in phases 1 and 2 are on record with the app the credential named, and the
/// access log and metrics name that app too.
#[tokio::test]
async fn refusals_before_routing_are_logged_with_the_app_the_credential_named() {
    let h = Harness::start().await;
    let support = h.cert_client("support-desk", Version::H1);
    let news = h.cert_client(CERT_APP, Version::H2);
    let contacts = "/services/data/v66.0/sobjects/Contact/003Fict000000000001AAA";
    // purpose-missing: support-desk has two purposes and names none
    let (r, b) = support.get(&h.url(contacts), &[]).await;
    assert_eq!(problem_slug(&r, &b), "purpose-missing");
    // purpose-not-granted
    let (r, b) = news
        .get(&h.url(contacts), &[("zweck-purpose", "billing")])
        .await;
    assert_eq!(problem_slug(&r, &b), "purpose-not-granted");
    // unknown-resource
    let (r, b) = news
        .get(
            &h.url("/services/data/v66.0/sobjects/Opportunity/006x"),
            &[],
        )
        .await;
    assert_eq!(problem_slug(&r, &b), "unknown-resource");
    // not recorded: an ungoverned route, an unknown caller
    let (r, _) = support.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 403);
    let (r, _) = h.anon_client(Version::H1).get(&h.url(contacts), &[]).await;
    assert_eq!(r.status(), 401);

    let log = entries(&h);
    let find = |reason: &str| {
        log.iter()
            .find(|e| e["reason"] == reason)
            .unwrap_or_else(|| panic!("no record for {reason}: {log:?}"))
    };
    let missing = find("purpose-missing");
    assert_eq!(missing["app"], "support-desk");
    assert_eq!(missing["purpose"], "");
    assert_eq!(missing["route"], "GET /services/data/v*/sobjects/Contact/*");
    assert_eq!(missing["processor"], "Salesforce, Inc.");
    assert_eq!(missing["decision"], "blocked");
    assert_eq!(missing["status"], 403);
    assert_eq!(missing["direction"], "to_processor");
    let not_granted = find("purpose-not-granted");
    assert_eq!(not_granted["app"], CERT_APP);
    assert_eq!(not_granted["purpose"], "billing");
    assert_eq!(not_granted["legal_basis"], "contract");
    let unknown = find("unknown-resource");
    assert_eq!(unknown["app"], CERT_APP);
    assert_eq!(unknown["purpose"], "newsletter");
    assert_eq!(unknown["route"], "-");
    assert_eq!(unknown["upstream"], "salesforce");
    assert_eq!(log.len(), 3, "only the three refusals: {log:?}");
    assert!(
        !std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl"))
            .expect("log")
            .contains("Opportunity")
    );

    let (_, metrics) = h.admin_get("/metrics").await;
    for (app, status) in [("support-desk", 403), (CERT_APP, 403)] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("zweck_requests_total")
                    && l.contains(&format!("app=\"{app}\""))
                    && l.contains(&format!("status=\"{status}\""))),
            "{metrics}"
        );
    }
}
