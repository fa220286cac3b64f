//! No personal data in Zweck's own logs: every fixture request is replayed through the proxy
//! (allowed, minimised and refused ones alike) with every Zweck log event captured at TRACE,
//! and no fixture value of at least 6 characters, nor a value the CRM double answered with,
//! may appear in what was logged. Logs carry request ids, rule ids, route templates and
//! counts; this test is what keeps it so.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::Method;
use zweck::crm_double::Dialect;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Every string value of at least 6 characters in the fixtures that is not a structural name
/// the inventories themselves mention (object types, enum codes) and not a URL path.
fn fixture_values() -> Vec<String> {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crm"));
    let mut inventory_text = String::new();
    let inv = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    for dir in [inv.to_path_buf(), inv.join("inventory")] {
        for e in std::fs::read_dir(dir).expect("policies").flatten() {
            if e.path().is_file() {
                inventory_text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    let mut values = Vec::new();
    for dialect in ["salesforce", "hubspot", "dynamics"] {
        for e in std::fs::read_dir(root.join(dialect))
            .expect("fixtures")
            .flatten()
        {
            let p = e.path();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if p.extension().is_some_and(|x| x == "json") {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    strings(&v, &mut values);
                }
            } else if p.extension().is_some_and(|x| x == "csv") {
                for line in text.lines().skip(1) {
                    values.extend(line.split(',').map(|c| c.trim_matches('"').to_string()));
                }
            }
        }
    }
    values.sort();
    values.dedup();
    values
        .into_iter()
        .filter(|v| v.chars().count() >= 6)
        .filter(|v| !v.starts_with('/') && !v.starts_with("http"))
        .filter(|v| !inventory_text.contains(v.as_str()))
        .collect()
}

fn fixture(path: &str) -> Bytes {
    let p = format!("{}/tests/fixtures/crm/{path}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(p).expect("fixture"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_fixture_requests_leave_no_personal_value_in_the_log() {
    let capture = Capture::default();
    // the JSON format operators ship to a SIEM: the same subscriber `log.format: json` makes
    let subscriber = zweck::logging::subscriber(
        zweck::config::LogFormat::Json,
        tracing_subscriber::EnvFilter::new("zweck=trace,warn"),
        capture.clone(),
        false,
    );
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");

    let h = Harness::start().await;
    let support = h.cert_client("support-desk", Version::H1);
    let news = h.cert_client(CERT_APP, Version::H2);
    let key = h.api_key();
    let bi = h.anon_client(Version::H1);
    let json = ("content-type", "application/json");
    let sup = ("zweck-purpose", "support");

    let writes: &[(Method, &str, &str)] = &[
        (
            Method::POST,
            "/services/data/v66.0/sobjects/Contact",
            "salesforce/contact-create.request.json",
        ),
        (
            Method::POST,
            "/services/data/v66.0/composite/sobjects",
            "salesforce/composite-sobjects-create.request.json",
        ),
        (
            Method::POST,
            "/services/data/v66.0/composite/sobjects/Contact",
            "salesforce/composite-sobjects-retrieve.request.json",
        ),
        (
            Method::POST,
            "/services/data/v66.0/composite",
            "salesforce/composite.request.json",
        ),
        (
            Method::POST,
            "/services/data/v66.0/jobs/query",
            "salesforce/bulk2-query-job-create.request.json",
        ),
        (
            Method::POST,
            "/crm/v3/objects/contacts",
            "hubspot/contact-create.request.json",
        ),
        (
            Method::POST,
            "/crm/v3/objects/contacts/batch/read",
            "hubspot/batch-read.request.json",
        ),
        (
            Method::POST,
            "/crm/v3/objects/contacts/search",
            "hubspot/search.request.json",
        ),
        (
            Method::POST,
            "/crm/v3/exports/export/async",
            "hubspot/export-start.request.json",
        ),
        (
            Method::POST,
            "/api/data/v9.2/contacts",
            "dynamics/contact-create.request.json",
        ),
    ];
    let mut answered = 0;
    for (method, path, file) in writes {
        for (client, headers) in [
            (&support, vec![json, sup]),
            (&news, vec![json]),
            (&bi, vec![json, ("zweck-api-key", key.as_str())]),
        ] {
            let (r, _) = client
                .call(method.clone(), &h.url(path), &headers, fixture(file))
                .await;
            answered += usize::from(r.status().as_u16() > 0);
        }
    }
    // values in paths and query strings, which Zweck must never log raw
    let gets = [
        "/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+WHERE+Email='livia.marquardt-ostby@example.com'",
        "/crm/v3/objects/contacts/marisol.quenneville@example.com?idProperty=email",
        "/api/data/v9.2/contacts?$filter=emailaddress1+eq+'henrike.sa@example.com'",
        "/services/data/v66.0/sobjects/Contact/003Qy00000Fict01AAA?fields=Email,MobilePhone",
        "/services/data/v66.0/../Livia-Marquardt-Ostby",
        "/elsewhere/Marquardt-Ostby",
    ];
    for path in gets {
        for (client, headers) in [
            (&support, vec![sup]),
            (&news, vec![]),
            (&bi, vec![("zweck-api-key", key.as_str())]),
        ] {
            let (r, _) = client.get(&h.url(path), &headers).await;
            answered += usize::from(r.status().as_u16() > 0);
        }
    }
    // and real lists whose values come from the double
    let (r, _) = news.get(&h.url("/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,Email,MobilePhone+FROM+Contact+LIMIT+20"), &[]).await;
    assert_eq!(r.status(), 200);
    let (r, _) = bi
        .get(
            &h.url("/crm/v3/objects/contacts?limit=20"),
            &[("zweck-api-key", key.as_str())],
        )
        .await;
    assert_eq!(r.status(), 200);
    // an ungoverned route: logged like any other
    let (r, _) = news.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(answered > 40);
    let requests = answered + 3;
    // an access event is written when hyper has polled the body to its end, which may come
    // just after the client has read it
    let events = || {
        let log = capture.0.lock().expect("log");
        String::from_utf8_lossy(&log)
            .matches("\"target\":\"zweck::access\"")
            .count()
    };
    assert!(
        eventually(|| events() >= requests).await,
        "{} of {requests} access events",
        events()
    );

    let log = String::from_utf8_lossy(&capture.0.lock().expect("log").clone()).to_string();
    assert!(
        log.contains("policy applied"),
        "the capture works: {}",
        &log[..log.len().min(2000)]
    );
    assert!(log.contains("request refused"));

    let values = fixture_values();
    assert!(
        values.len() > 50,
        "the fixtures give values to look for: {}",
        values.len()
    );
    assert!(values
        .iter()
        .any(|v| v == "livia.marquardt-ostby@example.com"));
    let mut leaked = Vec::new();
    for v in values {
        if log.contains(&v) {
            leaked.push(v);
        }
    }
    for i in 0..20 {
        let sf = h.double.double.contact(Dialect::Salesforce, i);
        for field in ["Email", "LastName", "MobilePhone", "FirstName"] {
            if let Some(v) = sf[field].as_str().filter(|v| v.len() >= 6) {
                if log.contains(v) {
                    leaked.push(v.to_string());
                }
            }
        }
        let hs = h.double.double.contact(Dialect::HubSpot, i);
        if let Some(v) = hs["properties"]["email"].as_str() {
            if log.contains(v) {
                leaked.push(v.to_string());
            }
        }
    }
    for secret in [key.as_str(), UPSTREAM_TOKEN] {
        if log.contains(secret) {
            leaked.push("<a credential>".into());
        }
    }
    assert!(leaked.is_empty(), "personal values in the log: {leaked:?}");
    assert!(
        !log.contains("/services/data/v66.0/query?"),
        "raw query strings in the log"
    );
    json_lines_and_access_events(&log, requests);
}

/// Every line is one JSON object with timestamp, level and target; every request has exactly
/// one access event, with the route template and never a raw path or query string.
fn json_lines_and_access_events(log: &str, requests: usize) {
    let mut access = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "{key} missing: {line}");
        }
        if v["target"] == "zweck::access" {
            access.push(v);
        }
    }
    assert_eq!(access.len(), requests, "one access event per request");
    let mut ids: Vec<&str> = access
        .iter()
        .map(|a| a["request_id"].as_str().expect("request id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), requests, "each request once");
    for a in &access {
        for key in [
            "app",
            "purpose",
            "method",
            "route",
            "upstream",
            "status",
            "problem",
            "bytes_out",
            "duration_ms",
            "complete",
        ] {
            assert!(a.get(key).is_some(), "{key} missing: {a}");
        }
        let route = a["route"].as_str().expect("route");
        assert!(
            route == "-" || route.contains(' ') && !route.contains('?'),
            "a route template, not a raw path: {route}"
        );
    }
    let kinds =
        |pred: &dyn Fn(&serde_json::Value) -> bool| access.iter().filter(|a| pred(a)).count();
    assert!(kinds(&|a| a["problem"] != "-") > 0, "refusals are logged");
    assert!(
        kinds(&|a| a["status"] == 200) > 0,
        "governed answers are logged"
    );
    assert!(
        kinds(&|a| a["upstream_status"].is_u64()) > 0,
        "the upstream's status is logged once it answered"
    );
    assert_eq!(
        kinds(&|a| a["route"] == "GET /services/data/"),
        1,
        "ungoverned requests are logged"
    );
}
