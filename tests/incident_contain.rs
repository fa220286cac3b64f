//! Containing one purpose of an app by hand (`POST /containment/contain`, `zweck apps contain`)
//! through the running proxy: real TLS, the CRM double, the real transfer log. A block by hand
//! refuses the purpose on a connection opened before it (HTTP/1.1) and on a new HTTP/2 one
//! while the app's other purposes and other apps flow; its entry is in the log before the
//! answer and verifies; it survives a reload and a restart; clearing lifts it; the same step
//! again changes nothing, a stronger one replaces a weaker one, a weaker one is refused; every
//! bad request is refused with its reason and changes nothing; the CLI takes the same steps
//! (`by: cli`); the Art. 33 draft lists the steps with who took them.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::raw::{self, Reader};
use common::*;

const TOKEN: &str = "admin-token-0123456789abcdef0123456789";
const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+LIMIT+5";
const SUPPORT: &str = "support-desk";

fn write_token(d: &Path) {
    zweck::secrets::write_atomic(
        &d.join("admin.token"),
        TOKEN.as_bytes(),
        zweck::secrets::SECRET_MODE,
    )
    .expect("token");
}

/// The admin token only: containment by hand needs no detection.
fn with_token(mut o: Options) -> Options {
    o.extra_upstreams = format!(
        "admin_token_file: {}\n",
        o.certs_dir.join("admin.token").display()
    );
    o
}

fn events(dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("logs/transfers.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON"))
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// A request on the admin listener, with `token` as the bearer token if given.
async fn admin(
    h: &Harness,
    method: http::Method,
    target: &str,
    token: Option<&str>,
) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    h.admin_call(method, target, bearer.as_deref()).await
}

async fn post(h: &Harness, target: &str) -> (u16, String) {
    admin(h, http::Method::POST, target, Some(TOKEN)).await
}

/// `GET /containment`'s `contained` list.
async fn contained(h: &Harness) -> Vec<serde_json::Value> {
    let (status, text) = admin(h, http::Method::GET, "/containment", Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["contained"].as_array().cloned().expect("contained")
}

/// One GET of `SOQL` for `purpose` on an HTTP/1.1 connection kept open by the caller.
async fn h1_get<S>(r: &mut Reader<S>, h: &Harness, purpose: &str) -> raw::RawResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!(
        "GET {SOQL} HTTP/1.1\r\nhost: localhost:{}\r\nzweck-purpose: {purpose}\r\n\r\n",
        h.zweck().proxy_addr.port()
    );
    raw::send(&mut r.stream, req.as_bytes())
        .await
        .expect("write");
    r.response()
        .await
        .expect("an answer on the open connection")
}

/// A fresh config for the CLI naming the running instance's admin listener.
fn cli_config(h: &Harness) -> std::path::PathBuf {
    let dir = h.dir.path();
    let admin_addr = h.zweck().admin_addr.expect("admin");
    let text = config_text(dir, &with_token(Options::new(h.double.addr.port(), dir)))
        .replace("admin: 127.0.0.1:0", &format!("admin: {admin_addr}"));
    let path = dir.join("cli.yaml");
    std::fs::write(&path, text).expect("cli config");
    path
}

/// `zweck ARGS`: exit code and everything it said.
async fn zweck_cli(args: Vec<String>) -> (Option<i32>, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_zweck"))
            .args(&args)
            .env("RUST_LOG", "off")
            .output()
            .expect("zweck runs")
    })
    .await
    .expect("cli task");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn args(words: &[&str], config: &Path) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(ToString::to_string).collect();
    v.push("--config".into());
    v.push(config.display().to_string());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_by_hand_refuses_one_purpose_on_open_and_new_connections_until_cleared() {
    let mut h = Harness::start_full(120, write_token, with_token).await;
    let dir = h.dir.path().to_path_buf();
    let key = h.api_key();
    let auth = [("zweck-api-key", key.as_str())];

    // an HTTP/1.1 connection of support-desk, opened before the step and kept open
    let mut open = Reader::new(raw::connect(&h, Some(SUPPORT), b"http/1.1").await);
    assert_eq!(h1_get(&mut open, &h, "support").await.status, 200);

    // the step: answered only once its entry is in the log
    let (status, body) = post(
        &h,
        "/containment/contain?app=support-desk&purpose=support&action=block&reason=breach-probe",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json answer");
    assert_eq!(answer["step"], "contained");
    assert_eq!(answer["contained"]["action"], "block");
    assert_eq!(answer["contained"]["by"], "admin");
    let steps = events(&dir, "containment");
    assert_eq!(steps.len(), 1, "the entry is in the log before the answer");
    let entry = &steps[0];
    assert_eq!(entry["seq"], answer["seq"]);
    assert_eq!(entry["action"], "block");
    assert_eq!(entry["app"], SUPPORT);
    assert_eq!(entry["purpose"], "support");
    assert_eq!(entry["incident"], serde_json::Value::Null);
    assert_eq!(entry["by"], "admin");
    assert_eq!(entry["reason"], "breach-probe");

    // the purpose is refused on the connection opened before ...
    let r = h1_get(&mut open, &h, "support").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.slug(), "purpose-contained");
    // ... and on a new HTTP/2 one
    let h2 = h.cert_client(SUPPORT, Version::H2);
    let (r, body) = h2.get(&h.url(SOQL), &[("zweck-purpose", "support")]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &body), "purpose-contained");
    // the app's other purpose flows, on both connections, and so do other apps
    assert_eq!(h1_get(&mut open, &h, "billing").await.status, 200);
    let (r, _) = h2.get(&h.url(SOQL), &[("zweck-purpose", "billing")]).await;
    assert_eq!(r.status(), 200);
    let news = h.cert_client(CERT_APP, Version::H1);
    assert_eq!(news.get(&h.url(SOQL), &[]).await.0.status(), 200);
    let bi = h.anon_client(Version::H2);
    assert_eq!(bi.get(&h.url(SOQL), &auth).await.0.status(), 200);

    // the same step again changes nothing and appends nothing
    let (status, body) = post(
        &h,
        "/containment/contain?app=support-desk&purpose=support&action=block",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"step\":\"unchanged\""), "{body}");
    // a weaker one is refused: clearing is the way down
    let (status, body) = post(
        &h,
        "/containment/contain?app=support-desk&purpose=support&action=throttle",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(events(&dir, "containment").len(), 1);
    let listed = contained(&h).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["action"], "block");
    assert_eq!(listed[0]["reason"], "breach-probe");

    // a reload (of the config file the harness started from) does not lift it
    let text = config_text(&dir, &with_token(Options::new(h.double.addr.port(), &dir)));
    std::fs::write(dir.join("zweck.yaml"), &text).expect("config file");
    let (status, body) = post(&h, "/reload").await;
    assert_eq!(status, 200, "{body}");
    let r = h1_get(&mut open, &h, "support").await;
    assert_eq!(
        r.slug(),
        "purpose-contained",
        "still blocked after a reload"
    );

    // nor does a restart (the state file keeps it)
    drop(open);
    h.shutdown().await;
    let config = zweck::config::Config::parse(&dir.join("zweck.yaml"), &text).expect("config");
    h.zweck = Some(zweck::runtime::start(config).await.expect("restarts"));
    let h2 = h.cert_client(SUPPORT, Version::H2);
    let (r, body) = h2.get(&h.url(SOQL), &[("zweck-purpose", "support")]).await;
    assert_eq!(
        problem_slug(&r, &body),
        "purpose-contained",
        "kept across a restart"
    );
    assert_eq!(contained(&h).await[0]["by"], "admin");

    // clearing lifts it, on the connection that was refused
    let (status, body) = post(
        &h,
        "/containment/clear?app=support-desk&purpose=support&reason=probe-over",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (r, _) = h2.get(&h.url(SOQL), &[("zweck-purpose", "support")]).await;
    assert_eq!(r.status(), 200, "cleared: the purpose flows again");
    let steps = events(&dir, "containment");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[1]["action"], "clear");
    assert_eq!(steps[1]["by"], "admin");
    assert_eq!(steps[1]["incident"], serde_json::Value::Null);
    assert_eq!(steps[1]["reason"], "probe-over");

    // the chain verifies with the entries in it
    h.shutdown().await;
    h.assert_log_verifies();

    // the Art. 33 draft lists both steps with who took them and no incident
    let paths = h.paths();
    let arg = |p: std::path::PathBuf| p.display().to_string();
    let (code, said) = zweck_cli(
        [
            "incident",
            "open",
            "--detected-at",
            "2099-01-01T00:00:00Z",
            "--as-of",
            "2099-01-01T00:00:00Z",
            // a step by hand names no incident, so the window's start is the operator's
            "--since",
            "2000-01-01T00:00:00Z",
            "--app",
            SUPPORT,
            "--purpose",
            "support",
            "--log",
            &arg(dir.join("logs/transfers.jsonl")),
            "--key",
            &arg(paths.audit_pub()),
            "--offbox",
            &arg(dir.join("offbox/checkpoints")),
            "--sign",
            &arg(paths.audit_key()),
            "--store",
            &arg(dir.join("incidents")),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(code, Some(0), "{said}");
    let drafted = std::fs::read_dir(dir.join("incidents"))
        .expect("the incident store")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("the incident's directory");
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(drafted.join("notification.json")).expect("draft"),
    )
    .expect("json draft");
    let steps: Vec<(String, String)> = doc["facts"]["containment"]
        .as_array()
        .expect("containment steps")
        .iter()
        .map(|c| {
            assert_eq!(c["incident"], serde_json::Value::Null);
            (
                c["action"].as_str().unwrap_or_default().to_string(),
                c["by"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("block".into(), "admin".into()),
            ("clear".into(), "admin".into())
        ]
    );
    let md = std::fs::read_to_string(drafted.join("notification.md")).expect("markdown draft");
    assert!(
        md.contains("block of app support-desk purpose support by admin, reason: breach-probe"),
        "{md}"
    );
}

/// `throttle` by hand: bulk exports of the purpose are refused, ordinary reads flow with the
/// budget shrunk by `incidents.throttle_factor` (0.1); `block` then replaces it with its own
/// entry and refuses the reads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_by_hand_closes_the_bulk_class_and_a_block_replaces_it() {
    let h = Harness::start_full(500, write_token, |o| {
        let mut o = with_token(o);
        o.policies = policies_with(&o.certs_dir, |t| {
            let budget = "    export_budget: { records: 1000000, per: 1d, burst: 100000 }\n";
            assert!(t.contains(budget));
            // a burst of 1000 records, 100 once throttled
            t.replacen(
                budget,
                "    export_budget: { records: 100000, per: 1d, burst: 1000 }\n",
                1,
            )
        });
        o
    })
    .await;
    let dir = h.dir.path().to_path_buf();
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
    let page = |n: u32| {
        h.url(&format!(
            "/services/data/v66.0/query?q=SELECT+Id,Email,MailingCity+FROM+Contact+LIMIT+{n}"
        ))
    };

    // before: a bulk export may start, and 150 records fit the burst
    let (r, body) = c.call(http::Method::POST, &jobs, &json, job.clone()).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(c.get(&page(150), &auth).await.0.status(), 200);

    let (status, body) = post(
        &h,
        "/containment/contain?app=bi-export&purpose=analytics&action=throttle",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let steps = events(&dir, "containment");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["action"], "throttle");
    assert_eq!(steps[0]["reason"], "contained-by-operator", "the default");

    // the bulk class is closed on the open connection and on a new HTTP/2 one
    let (r, body) = c.call(http::Method::POST, &jobs, &json, job.clone()).await;
    assert_eq!(problem_slug(&r, &body), "purpose-contained");
    let c2 = h.anon_client(Version::H2);
    let (r, body) = c2.call(http::Method::POST, &jobs, &json, job.clone()).await;
    assert_eq!(problem_slug(&r, &body), "purpose-contained");
    // ordinary reads flow, within a tenth of the burst: 100 records, not 850
    let (r, _) = c2.get(&page(60), &auth).await;
    assert_eq!(r.status(), 200, "throttle is not block");
    let (r, body) = c2.get(&page(60), &auth).await;
    assert_eq!(problem_slug(&r, &body), "budget-exhausted");

    // block is stronger: it replaces throttle with an entry of its own
    let (status, body) = post(
        &h,
        "/containment/contain?app=bi-export&purpose=analytics&action=block&reason=escalated",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"step\":\"stronger\""), "{body}");
    let steps = events(&dir, "containment");
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (&steps[1]["action"], &steps[1]["reason"]),
        (&"block".into(), &"escalated".into())
    );
    let (r, body) = c2.get(&page(5), &auth).await;
    assert_eq!(
        problem_slug(&r, &body),
        "purpose-contained",
        "block refuses reads"
    );
    assert_eq!(contained(&h).await.len(), 1, "one containment, now block");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_is_refused_with_its_reason_and_changes_nothing() {
    let h = Harness::start_full(120, write_token, with_token).await;
    let dir = h.dir.path().to_path_buf();
    let ok = "app=support-desk&purpose=support&action=block";
    let long = "r".repeat(201);
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, ok.into(), 401, "Authorization"),
        (
            Some("wrong-token-0123456789abcdef0123456789"),
            ok.into(),
            401,
            "Authorization",
        ),
        (
            Some(TOKEN),
            "purpose=support&action=block".into(),
            400,
            "name the app",
        ),
        (
            Some(TOKEN),
            "app=support-desk&action=block".into(),
            400,
            "name the app",
        ),
        (
            Some(TOKEN),
            "app=support-desk&purpose=support".into(),
            400,
            "name the app",
        ),
        (Some(TOKEN), String::new(), 400, "name the app"),
        (Some(TOKEN), format!("{ok}x"), 400, "block or throttle"),
        (
            Some(TOKEN),
            "app=support-desk&purpose=support&action=alert".into(),
            400,
            "block or throttle",
        ),
        (
            Some(TOKEN),
            format!("{ok}&reason={long}"),
            400,
            "200 characters",
        ),
        (
            Some(TOKEN),
            format!("{ok}&reason=a%0Ab"),
            400,
            "control character",
        ),
        (
            Some(TOKEN),
            format!("{ok}&reason=a%00b"),
            400,
            "control character",
        ),
        (
            Some(TOKEN),
            format!("{ok}&action=throttle"),
            400,
            "more than once",
        ),
        (
            Some(TOKEN),
            format!("{ok}&by=detector"),
            400,
            "admin or cli",
        ),
        (
            Some(TOKEN),
            "app=nobody&purpose=support&action=block".into(),
            404,
            "no such app",
        ),
        (
            Some(TOKEN),
            "app=support-desk&purpose=analytics&action=block".into(),
            404,
            "not granted",
        ),
        (
            Some(TOKEN),
            "app=support-desk&purpose=nothing-such&action=block".into(),
            404,
            "not granted",
        ),
    ];
    for (token, query, want, says) in cases {
        let target = format!("/containment/contain?{query}");
        let (status, body) = admin(&h, http::Method::POST, &target, token).await;
        assert_eq!(status, want, "{target}: {body}");
        assert!(body.contains(says), "{target}: {body}");
    }
    let (status, _) = admin(
        &h,
        http::Method::GET,
        &format!("/containment/contain?{ok}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 405);
    // clear takes the same rules for the reason and `by`
    for (query, says) in [
        (
            format!("app=support-desk&purpose=support&reason={long}"),
            "200 characters",
        ),
        (
            "app=support-desk&purpose=support&by=x".to_string(),
            "admin or cli",
        ),
        ("app=support-desk".to_string(), "name the app"),
    ] {
        let (status, body) = post(&h, &format!("/containment/clear?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }

    // nothing changed: nothing contained, nothing logged, the purpose flows
    assert!(contained(&h).await.is_empty());
    assert!(events(&dir, "containment").is_empty());
    let support = h.cert_client(SUPPORT, Version::H1);
    let (r, _) = support
        .get(&h.url(SOQL), &[("zweck-purpose", "support")])
        .await;
    assert_eq!(r.status(), 200);
    // and the good request does contain (the cases above failed for their own reason)
    let (status, body) = post(&h, &format!("/containment/contain?{ok}")).await;
    assert_eq!(status, 200, "{body}");
    let (r, _) = support
        .get(&h.url(SOQL), &[("zweck-purpose", "support")])
        .await;
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_containment_by_hand_is_off() {
    let h = Harness::start().await;
    let (status, body) = admin(
        &h,
        http::Method::POST,
        "/containment/contain?app=support-desk&purpose=support&action=block",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin_token_file"), "{body}");
    let support = h.cert_client(SUPPORT, Version::H1);
    let (r, _) = support
        .get(&h.url(SOQL), &[("zweck-purpose", "support")])
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_contains_and_clears_a_purpose_as_cli() {
    let mut h = Harness::start_full(120, write_token, with_token).await;
    let dir = h.dir.path().to_path_buf();
    let config = cli_config(&h);
    let support = h.cert_client(SUPPORT, Version::H2);
    let get = |purpose: &'static str| {
        let url = h.url(SOQL);
        let support = &support;
        async move { support.get(&url, &[("zweck-purpose", purpose)]).await }
    };

    // a bad action is refused by the command line itself: nothing is sent
    let (code, said) = zweck_cli(args(
        &[
            "apps",
            "contain",
            SUPPORT,
            "--purpose",
            "support",
            "--action",
            "alert",
        ],
        &config,
    ))
    .await;
    assert_eq!(code, Some(2), "{said}");
    // an app the running config does not have: the admin listener's 404, exit 1
    let (code, said) = zweck_cli(args(
        &[
            "apps",
            "contain",
            "nobody",
            "--purpose",
            "support",
            "--action",
            "block",
        ],
        &config,
    ))
    .await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("no such app"), "{said}");
    assert!(events(&dir, "containment").is_empty());
    assert_eq!(get("support").await.0.status(), 200);

    let (code, said) = zweck_cli(args(
        &[
            "apps",
            "contain",
            SUPPORT,
            "--purpose",
            "support",
            "--action",
            "block",
            "--reason",
            "breach probe",
        ],
        &config,
    ))
    .await;
    assert_eq!(code, Some(0), "{said}");
    let (r, body) = get("support").await;
    assert_eq!(problem_slug(&r, &body), "purpose-contained");
    assert_eq!(get("billing").await.0.status(), 200);
    let steps = events(&dir, "containment");
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (&steps[0]["action"], &steps[0]["by"], &steps[0]["reason"]),
        (&"block".into(), &"cli".into(), &"breach probe".into())
    );
    // a weaker step: refused, exit 1, with the way down named
    let (code, said) = zweck_cli(args(
        &[
            "apps",
            "contain",
            SUPPORT,
            "--purpose",
            "support",
            "--action",
            "throttle",
        ],
        &config,
    ))
    .await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("clear it first"), "{said}");

    let (code, said) = zweck_cli(args(
        &[
            "apps",
            "clear",
            SUPPORT,
            "--purpose",
            "support",
            "--reason",
            "probe-over",
        ],
        &config,
    ))
    .await;
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(get("support").await.0.status(), 200, "cleared");
    let steps = events(&dir, "containment");
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (&steps[1]["action"], &steps[1]["by"], &steps[1]["reason"]),
        (&"clear".into(), &"cli".into(), &"probe-over".into())
    );
    // nothing left to clear: exit 1
    let (code, said) = zweck_cli(args(
        &["apps", "clear", SUPPORT, "--purpose", "support"],
        &config,
    ))
    .await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not contained"), "{said}");

    // `zweck audit verify` accepts the entries; `zweck audit report` reads past them
    h.shutdown().await;
    let log = dir.join("logs/transfers.jsonl").display().to_string();
    let key = h.paths().audit_pub().display().to_string();
    let (code, said) = zweck_cli(
        ["audit", "verify", &log, "--key", &key]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = zweck_cli(
        ["audit", "report", &log, "--key", &key, "--by", "app"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert_eq!(code, Some(0), "{said}");
}

/// A transfer log that cannot be written (a full disk): the containment is still taken (it
/// only refuses more), and the answer says its entry is missing instead of claiming success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_failed_log_the_step_is_in_force_and_the_answer_says_the_entry_is_missing() {
    let h = Harness::start_full(
        120,
        |dir| {
            write_token(dir);
            let log = dir.join("logs/transfers.jsonl");
            std::fs::create_dir_all(log.parent().expect("dir")).expect("mkdir");
            std::os::unix::fs::symlink("/dev/full", &log).expect("symlink");
        },
        with_token,
    )
    .await;
    let (status, body) = post(
        &h,
        "/containment/contain?app=support-desk&purpose=support&action=block",
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("could not be written"), "{body}");
    let listed = contained(&h).await;
    assert_eq!(listed.len(), 1, "in force regardless: {listed:?}");
    assert_eq!(listed[0]["action"], "block");
}
