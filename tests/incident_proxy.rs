//! Incident detection through the running proxy (real TLS, the CRM double, the real transfer
//! log): an export spike with a real app key raises a `volume` incident in the log, the
//! purpose's `on_anomaly: block` contains the app x purpose at once (the next request gets
//! `purpose-contained`), the containment survives a restart, an operator clears it on the
//! admin listener, every step is an entry that `audit verify` accepts, and no delivered value
//! appears in the log's event entries.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;

const TOKEN: &str = "admin-token-0123456789abcdef0123456789";
const QUERY: &str =
    "/services/data/v66.0/query?q=SELECT+Id,Email,MailingCity,Title+FROM+Contact+LIMIT+200";

const HOOK_KEY: &str = "hook-secret-0123456789abcdef";

fn incidents_section(d: &Path, hook: Option<u16>) -> String {
    let hooks = hook.map_or(String::new(), |port| {
        format!(
            "  webhooks: [{{ url: \"http://127.0.0.1:{port}/hook\", secret_file: {} }}]\n",
            d.join("hook.key").display()
        )
    });
    format!(
        "admin_token_file: {}\nincidents:\n  warmup: 0s\n  volume: {{ factor: 2, min_records: 50, floor: 10 }}\n  refusals: {{ threshold: 3 }}\n  new_category: false\n  new_processor: false\n  new_country: false\n{hooks}",
        d.join("admin.token").display()
    )
}

type Received = std::sync::Arc<std::sync::Mutex<Vec<(http::HeaderMap, Bytes)>>>;

/// A webhook receiver on loopback that keeps every request and answers 200.
async fn receiver() -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got: Received = Default::default();
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(http_body_util::Collected::to_bytes)
                                .unwrap_or_default();
                            keep.lock().expect("lock").push((parts.headers, body));
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::from_static(b"ok")),
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, got)
}

fn blocking_analytics(o: &Options) -> std::path::PathBuf {
    policies_with(&o.certs_dir, |t| {
        assert!(t.contains("\n  analytics:\n"));
        t.replacen(
            "\n  analytics:\n",
            "\n  analytics:\n    on_anomaly: block\n",
            1,
        )
    })
}

fn options(o: Options, hook: u16) -> Options {
    let mut o = o;
    o.policies = blocking_analytics(&o);
    o.extra_upstreams = incidents_section(&o.certs_dir, Some(hook));
    o
}

fn write_token(d: &Path) {
    for (file, secret) in [("admin.token", TOKEN), ("hook.key", HOOK_KEY)] {
        zweck::secrets::write_atomic(
            &d.join(file),
            secret.as_bytes(),
            zweck::secrets::SECRET_MODE,
        )
        .expect("secret");
    }
}

fn log_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("logs/transfers.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn events(dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    log_lines(dir)
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// A request on the admin listener with the token: status and body.
async fn admin(h: &Harness, method: http::Method, path: &str, token: bool) -> (u16, String) {
    let bearer = format!("Bearer {TOKEN}");
    h.admin_call(method, path, token.then_some(bearer.as_str()))
        .await
}

/// Every string value of the delivered records that is long enough to be telling.
fn delivered_values(body: &[u8]) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.len() >= 6 => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    let mut out = Vec::new();
    walk(&v["records"], &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_spike_raises_a_volume_incident_blocks_the_purpose_and_an_operator_clears_it() {
    let (hook, received) = receiver().await;
    let mut h = Harness::start_full(500, write_token, |o| options(o, hook)).await;
    let key = h.api_key();
    let auth = [("zweck-api-key", key.as_str())];
    let c = h.anon_client(Version::H1);

    // the spike: 200 records in one window, with no baseline (threshold max(2 x 10, 50))
    let (r, body) = c.get(&h.url(QUERY), &auth).await;
    assert_eq!(r.status(), 200);
    let values = delivered_values(&body);
    assert!(values.len() > 100, "the export delivered values");

    let dir = h.dir.path().to_path_buf();
    assert!(
        eventually(|| !events(&dir, "containment").is_empty()).await,
        "a containment entry follows the incident"
    );
    let incidents = events(&dir, "incident");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let inc = &incidents[0];
    assert_eq!(inc["rule"], "volume");
    assert_eq!(inc["app"], KEY_APP);
    assert_eq!(inc["purpose"], "analytics");
    assert_eq!(inc["processor"], "Salesforce, Inc.");
    assert_eq!(inc["jurisdiction"], "US");
    assert_eq!(inc["observed"], 200);
    assert_eq!(inc["threshold"], 50);
    assert_eq!(inc["on_anomaly"], "block");
    assert_eq!(inc["incident"], format!("inc-{}", inc["seq"]));
    let containment = &events(&dir, "containment")[0];
    assert_eq!(containment["action"], "block");
    assert_eq!(containment["by"], "detector");
    assert_eq!(containment["incident"], inc["incident"]);

    // the webhook receiver gets the alert, signed, with the entry's facts and position
    assert!(
        eventually(|| !received.lock().expect("lock").is_empty()).await,
        "the webhook got the alert"
    );
    let (headers, alert) = received.lock().expect("lock")[0].clone();
    let ts = headers["x-zweck-timestamp"].to_str().expect("ascii");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HOOK_KEY.as_bytes());
    let signed = [ts.as_bytes(), b".", &alert].concat();
    let expected = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, &signed).as_ref())
    );
    assert_eq!(
        headers["x-zweck-signature"].to_str().expect("ascii"),
        expected
    );
    let a: serde_json::Value = serde_json::from_slice(&alert).expect("json alert");
    assert_eq!(a["type"], "zweck.incident");
    assert_eq!(a["seq"], inc["seq"]);
    assert_eq!(a["incident"], inc["incident"]);
    assert_eq!(a["rule"], "volume");
    assert_eq!(a["observed"], 200);
    let alert_text = String::from_utf8_lossy(&alert).into_owned();
    for v in &values {
        assert!(
            !alert_text.contains(v.as_str()),
            "a delivered value is in the alert"
        );
    }

    // the next request of the app for the purpose is refused, with its own transfer record
    let (r, body) = c.get(&h.url(QUERY), &auth).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &body), "purpose-contained");
    assert!(log_lines(&dir)
        .iter()
        .any(|e| e["reason"] == "purpose-contained" && e["app"] == KEY_APP));
    // other apps are untouched
    let news = h.cert_client(CERT_APP, Version::H2);
    let (r, _) = news.get(&h.url(QUERY), &[]).await;
    assert_eq!(r.status(), 200);

    // the metric counts it
    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(
        metrics.contains("zweck_incidents_total{rule=\"volume\",on_anomaly=\"block\"} 1"),
        "{metrics}"
    );

    // a restart does not lift it
    h.shutdown().await;
    let opts = options(Options::new(h.double.addr.port(), &dir), hook);
    let text = config_text(&dir, &opts);
    let config = zweck::config::Config::parse(&dir.join("zweck.yaml"), &text).expect("config");
    h.zweck = Some(zweck::runtime::start(config).await.expect("restarts"));
    let c = h.anon_client(Version::H2);
    let (r, body) = c.get(&h.url(QUERY), &auth).await;
    assert_eq!(problem_slug(&r, &body), "purpose-contained");

    // the operator sees and clears it (the token is required)
    let (status, _) = admin(&h, http::Method::GET, "/containment", false).await;
    assert_eq!(status, 401);
    let (status, listed) = admin(&h, http::Method::GET, "/containment", true).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed.contains("\"app\": \"bi-export\"") && listed.contains("\"action\": \"block\""));
    let (status, _) = admin(
        &h,
        http::Method::POST,
        "/containment/clear?app=bi-export",
        true,
    )
    .await;
    assert_eq!(status, 400);
    let clear = "/containment/clear?app=bi-export&purpose=analytics&reason=key-rotated";
    let (status, body) = admin(&h, http::Method::POST, clear, true).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = admin(&h, http::Method::POST, clear, true).await;
    assert_eq!(status, 404, "nothing left to clear");
    let cleared = events(&dir, "containment");
    let last = cleared.last().expect("clear entry");
    assert_eq!(last["action"], "clear");
    assert_eq!(last["by"], "admin");
    assert_eq!(last["reason"], "key-rotated");
    assert_eq!(last["incident"], inc["incident"]);
    let (r, _) = c
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+LIMIT+5"),
            &auth,
        )
        .await;
    assert_eq!(r.status(), 200, "cleared: the app works again");

    // every step is in the chain, which verifies; no delivered value is in the log
    h.shutdown().await;
    h.assert_log_verifies();
    let log = std::fs::read_to_string(dir.join("logs/transfers.jsonl")).expect("log");
    for v in &values {
        assert!(!log.contains(v.as_str()), "a delivered value is in the log");
    }
    let state = std::fs::read_to_string(dir.join("logs/transfers.jsonl.incidents.json"))
        .expect("state file beside the log");
    assert!(state.contains("\"contained\":[]"), "{state}");
    for v in &values {
        assert!(
            !state.contains(v.as_str()),
            "a delivered value is in the state file"
        );
    }

    // the notification draft reads what the running proxy wrote: the window starts at the
    // detection, and lists it with the containment steps taken (block, then clear)
    let paths = h.paths();
    let arg = |p: std::path::PathBuf| p.display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zweck"))
        .args(["incident", "open", "--detected-at", "2099-01-01T00:00:00Z"])
        .args(["--as-of", "2099-01-01T00:00:00Z", "--app", KEY_APP])
        .args(["--purpose", "analytics"])
        .args(["--log", &arg(dir.join("logs/transfers.jsonl"))])
        .args(["--key", &arg(paths.audit_pub())])
        .args(["--offbox", &arg(dir.join("offbox/checkpoints"))])
        .args(["--sign", &arg(paths.audit_key())])
        .args(["--store", &arg(dir.join("incidents"))])
        .current_dir(&dir)
        .env("RUST_LOG", "off")
        .output()
        .expect("zweck incident open runs");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let drafted = std::fs::read_dir(dir.join("incidents"))
        .expect("the incident store")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("the incident's directory");
    let text = std::fs::read_to_string(drafted.join("notification.json")).expect("draft");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json draft");
    let facts = &doc["facts"];
    let detections = facts["detections"].as_array().expect("detections");
    assert_eq!(detections.len(), 1, "{detections:?}");
    assert_eq!(detections[0]["incident"], inc["incident"]);
    assert_eq!(detections[0]["rule"], "volume");
    let steps: Vec<&str> = facts["containment"]
        .as_array()
        .expect("containment steps")
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    assert_eq!(steps, ["block", "clear"], "{text}");
    // the records equal a recount of the app's transfer entries (the spike's 200 among them)
    let recount: u64 = log_lines(&dir)
        .iter()
        .filter(|e| e.get("kind").is_none() && e["app"] == KEY_APP)
        .filter(|e| e["direction"] == "from_processor")
        .filter_map(|e| e["records"].as_u64())
        .sum();
    assert!(recount >= 200, "{recount}");
    assert_eq!(facts["from_processor"]["records"], recount, "{text}");
    for name in ["notification.json", "notification.md", "notification.html"] {
        let draft = std::fs::read_to_string(drafted.join(name)).expect("draft file");
        for v in &values {
            assert!(
                !draft.contains(v.as_str()),
                "a delivered value is in {name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_raises_a_refusal_surge_and_a_silent_webhook_does_not_touch_traffic() {
    // a receiver that accepts connections and never answers
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = silent.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let h = Harness::start_full(120, write_token, |mut o| {
        o.extra_upstreams = incidents_section(&o.certs_dir, Some(hook))
            + "  alert_timeout: 1s\n  alert_retries: 1\n";
        o
    })
    .await;
    let key = h.api_key();
    let auth = [("zweck-api-key", key.as_str())];
    let c = h.anon_client(Version::H2);
    // an endpoint no inventory classifies, three times (the threshold)
    for _ in 0..3 {
        let (r, body) = c
            .get(
                &h.url("/services/data/v66.0/sobjects/SecretThing__c/x"),
                &auth,
            )
            .await;
        assert_eq!(problem_slug(&r, &body), "unknown-resource");
    }
    let dir = h.dir.path().to_path_buf();
    assert!(eventually(|| !events(&dir, "incident").is_empty()).await);
    let inc = &events(&dir, "incident")[0];
    assert_eq!(inc["rule"], "refusal_surge");
    assert_eq!(inc["observed"], 3);
    assert_eq!(inc["on_anomaly"], "alert");
    assert_eq!(inc["baseline"], serde_json::Value::Null);
    // alert only: nothing contained, the app still works
    assert!(events(&dir, "containment").is_empty());
    for _ in 0..5 {
        let (r, _) = c
            .get(
                &h.url("/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+LIMIT+5"),
                &auth,
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    // the alert is given up on after its bounded retries, and counted
    let failed = eventually_some(|| async {
        let (_, metrics) = h.admin_get("/metrics").await;
        metrics
            .contains("zweck_incident_alerts_total{outcome=\"failed\"} 1")
            .then_some(())
    })
    .await;
    assert!(
        failed.is_some(),
        "the silent receiver's alert failed after 1 + 1 attempts"
    );
    held.abort();
}

#[test]
fn bad_incident_settings_are_refused_at_their_line() {
    let dir = tempfile::tempdir().expect("dir");
    let o = Options::new(9, dir.path());
    for (section, needle) in [
        ("incidents:\n  window: 7m\n", "incidents.window"),
        ("incidents:\n  window: soon\n", "incidents.window"),
        ("incidents:\n  alpha: 0\n", "incidents.alpha"),
        ("incidents:\n  cooldown: 0s\n", "incidents.cooldown"),
        (
            "incidents:\n  volume: { factor: 0.5 }\n",
            "incidents.volume.factor",
        ),
        (
            "incidents:\n  refusals: { threshold: 0 }\n",
            "incidents.refusals.threshold",
        ),
        (
            "incidents:\n  refusals: { reasons: [probing] }\n",
            "incidents.refusals.reasons",
        ),
        (
            "incidents:\n  export_hours: { from: 25, to: 3 }\n",
            "incidents.export_hours.from",
        ),
        (
            "incidents:\n  export_hours: { from: 8, to: 18, utc_offset: CET }\n",
            "incidents.export_hours.utc_offset",
        ),
        ("incidents:\n  volume: { factr: 3 }\n", "factr"),
        (
            "incidents:\n  webhooks: [{ url: \"http://alerts.example.com/x\", secret_file: k }]\n",
            "loopback",
        ),
        ("incidents:\n  alert_queue: 0\n", "incidents.alert_queue"),
        (
            "incidents:\n  throttle_factor: 1.5\n",
            "incidents.throttle_factor",
        ),
        (
            "incidents:\n  alert_timeout: 0s\n",
            "incidents.alert_timeout",
        ),
    ] {
        let mut o = Options::new(o.double_port, dir.path());
        o.extra_upstreams = section.to_string();
        let text = config_text(dir.path(), &o);
        let line = text
            .lines()
            .position(|l| l.starts_with("incidents:"))
            .expect("section")
            + 2;
        let err = zweck::config::Config::parse(&dir.path().join("zweck.yaml"), &text)
            .expect_err(section)
            .to_string();
        assert!(err.contains(needle), "{section}: {err}");
        assert!(
            err.contains(&format!("zweck.yaml:{line}:")),
            "{section}: the message names the line ({line}): {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_app_is_refused_on_its_open_connection_and_the_cli_reinstates_it() {
    // no incidents section: revocation works without detection
    let h = Harness::start_full(120, write_token, |mut o| {
        o.extra_upstreams = format!(
            "admin_token_file: {}\n",
            o.certs_dir.join("admin.token").display()
        );
        o
    })
    .await;
    let key = h.api_key();
    let auth = [("zweck-api-key", key.as_str())];
    let small = "/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+LIMIT+5";
    // one HTTP/2 connection, kept open across the revocation
    let c = h.anon_client(Version::H2);
    let (r, _) = c.get(&h.url(small), &auth).await;
    assert_eq!(r.status(), 200);

    let (status, _) = admin(&h, http::Method::POST, "/apps/bi-export/revoke", false).await;
    assert_eq!(status, 401, "the token is required");
    let (status, _) = admin(&h, http::Method::POST, "/apps/nobody/revoke", true).await;
    assert_eq!(status, 404);
    let (status, body) = admin(
        &h,
        http::Method::POST,
        "/apps/bi-export/revoke?reason=key-leaked",
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (r, body) = c.get(&h.url(small), &auth).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &body), "app-revoked");
    // other apps are untouched
    let news = h.cert_client(CERT_APP, Version::H2);
    let (r, _) = news.get(&h.url(small), &[]).await;
    assert_eq!(r.status(), 200);
    let (_, listed) = admin(&h, http::Method::GET, "/containment", true).await;
    assert!(listed.contains("\"reason\": \"key-leaked\""), "{listed}");

    // the CLI talks to the running instance's admin listener with the token
    let dir = h.dir.path().to_path_buf();
    let admin_addr = h.zweck().admin_addr.expect("admin");
    let text = config_text(&dir, &{
        let mut o = Options::new(h.double.addr.port(), &dir);
        o.extra_upstreams = format!("admin_token_file: {}\n", dir.join("admin.token").display());
        o
    })
    .replace("admin: 127.0.0.1:0", &format!("admin: {admin_addr}"));
    std::fs::write(dir.join("cli.yaml"), text).expect("cli config");
    let cli = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_zweck"))
                .args([
                    "apps",
                    "reinstate",
                    KEY_APP,
                    "--reason",
                    "key-rotated",
                    "--config",
                ])
                .arg(dir.join("cli.yaml"))
                .output()
                .expect("zweck runs")
        }
    })
    .await
    .expect("cli task");
    assert!(
        cli.status.success(),
        "{}{}",
        String::from_utf8_lossy(&cli.stdout),
        String::from_utf8_lossy(&cli.stderr)
    );
    let (r, _) = c.get(&h.url(small), &auth).await;
    assert_eq!(r.status(), 200, "reinstated");

    let steps = events(&dir, "containment");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(
        (&steps[0]["action"], &steps[0]["by"], &steps[0]["reason"]),
        (&"revoke".into(), &"admin".into(), &"key-leaked".into())
    );
    assert_eq!(steps[0]["purpose"], serde_json::Value::Null);
    assert_eq!(
        (&steps[1]["action"], &steps[1]["by"], &steps[1]["reason"]),
        (&"reinstate".into(), &"cli".into(), &"key-rotated".into())
    );
}

/// `on_anomaly: throttle`: after the spike the purpose's bulk exports are refused with
/// `purpose-contained`, while its ordinary reads still flow with a budget shrunk by
/// `incidents.throttle_factor` (default 0.1), and the step is a `containment` entry with
/// action `throttle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_closes_the_bulk_class_and_leaves_ordinary_reads() {
    let mut h = Harness::start_full(500, write_token, |o| {
        let mut o = o;
        o.policies = policies_with(&o.certs_dir, |t| {
            assert!(t.contains("\n  analytics:\n"));
            let budget = "    export_budget: { records: 1000000, per: 1d, burst: 100000 }\n";
            assert!(t.contains(budget));
            // a burst of 1000 records (the spike fits), 100 once throttled; it refills by
            // about one record every 9 s, so the test's reads meet the burst alone
            t.replacen(
                "\n  analytics:\n",
                "\n  analytics:\n    on_anomaly: throttle\n",
                1,
            )
            .replacen(
                budget,
                "    export_budget: { records: 100000, per: 1d, burst: 1000 }\n",
                1,
            )
        });
        o.extra_upstreams = incidents_section(&o.certs_dir, None);
        o
    })
    .await;
    let key = h.api_key();
    let auth = [("zweck-api-key", key.as_str())];
    let json = [
        ("zweck-api-key", key.as_str()),
        ("content-type", "application/json"),
    ];
    let job =
        Bytes::from_static(br#"{"operation":"query","query":"SELECT Id,Email FROM Contact"}"#);
    let c = h.anon_client(Version::H1);
    let jobs = h.url("/services/data/v66.0/jobs/query");

    // before: the purpose may start a bulk export
    let (r, body) = c.call(http::Method::POST, &jobs, &json, job.clone()).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body));

    // the spike
    let (r, _) = c.get(&h.url(QUERY), &auth).await;
    assert_eq!(r.status(), 200);
    let dir = h.dir.path().to_path_buf();
    assert!(
        eventually(|| !events(&dir, "containment").is_empty()).await,
        "a containment entry follows the incident"
    );
    let step = &events(&dir, "containment")[0];
    assert_eq!(step["action"], "throttle");
    assert_eq!(step["by"], "detector");
    assert_eq!(step["purpose"], "analytics");

    // the bulk class is closed, on a new connection and protocol too
    let (r, body) = c.call(http::Method::POST, &jobs, &json, job.clone()).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &body), "purpose-contained");
    let c2 = h.anon_client(Version::H2);
    let (r, body) = c2.call(http::Method::POST, &jobs, &json, job).await;
    assert_eq!(problem_slug(&r, &body), "purpose-contained");
    // an ordinary read of the same app and purpose still flows
    let (r, _) = c2
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+LIMIT+5"),
            &auth,
        )
        .await;
    assert_eq!(r.status(), 200, "throttle is not block");

    // ... with a tenth of the budget: 100 records, where the purpose had 1000 (minus the
    // spike's 200) before. A page larger than what is left is refused whole.
    let page = |n: u32| {
        h.url(&format!(
            "/services/data/v66.0/query?q=SELECT+Id,Email,MailingCity+FROM+Contact+LIMIT+{n}"
        ))
    };
    let records = |body: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(body).expect("json");
        v["records"].as_array().map_or(0, Vec::len)
    };
    let (r, body) = c2.get(&page(60), &auth).await;
    assert_eq!(r.status(), 200);
    assert_eq!(records(&body), 60);
    // about 35 left (the read above took up to 5): unthrottled, ~735 would be
    let (r, body) = c2.get(&page(60), &auth).await;
    assert_eq!(r.status(), 429, "{}", String::from_utf8_lossy(&body));
    assert_eq!(problem_slug(&r, &body), "budget-exhausted");
    let (r, body) = c2.get(&page(30), &auth).await;
    assert_eq!(r.status(), 200, "what is left still flows");
    assert_eq!(records(&body), 30);
    h.shutdown().await;
}
