//! `zweck incident open | list | close` on real logs: the writer's own functions with chosen
//! times (transfer entries and the agreed `incident` / `containment` event entries), and a
//! log the running proxy wrote in front of the CRM double. The drafts' figures are checked
//! against a recount of the log done here, independently of the report's code.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ring::signature::Ed25519KeyPair;
use serde_json::{json, Value};
use zweck::audit::checkpoint::{key_from_pkcs8, public_key};
use zweck::audit::{self, Decision, Direction, Stage, TransferRecord};
use zweck::config::{MechanismKind, TransferMechanism};
use zweck::incident::report::draft::{HEADINGS, PLACEHOLDER_PREFIX, SCHEMA};

/// A directory with an audit key pair, a config and a place for the log.
struct Desk {
    dir: tempfile::TempDir,
    key: Ed25519KeyPair,
}

const ORIGIN: &str = "zweck.test/a";

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("certs")).expect("certs");
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
        std::fs::write(dir.path().join("certs/audit.key"), kp.serialize_pem()).expect("key");
        let key = key_from_pkcs8(&kp.serialize_der()).expect("ring key");
        std::fs::write(
            dir.path().join("certs/audit.pub"),
            format!(
                "{}\n",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    public_key(&key)
                )
            ),
        )
        .expect("pub");
        std::fs::write(dir.path().join("zweck.yaml"), CONFIG).expect("config");
        Desk { dir, key }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn log(&self) -> PathBuf {
        self.path("logs/transfers.jsonl")
    }
    fn write(&self, lines: Vec<(String, Value)>) {
        audit::synthetic::write_log(
            &self.log(),
            &self.key,
            ORIGIN,
            lines,
            4,
            Some(&self.path("auditor/checkpoints")),
        )
        .expect("write log");
    }
    /// `zweck ARGS` in the desk's directory.
    fn zweck(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_zweck"))
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "off")
            .output()
            .expect("run zweck");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }
}

/// The demo's apps and upstreams, in Berlin. Relative paths: the outputs name them as given.
const CONFIG: &str = r#"
listen: 127.0.0.1:8443
tls: { cert: certs/proxy.pem, key: certs/proxy.key, client_ca: certs/ca.pem }
audit: { log: logs/transfers.jsonl, signing_key: certs/audit.key, offbox: { file: auditor/checkpoints } }
controller: { name: Example GmbH, time_zone: Europe/Berlin }
record_of_processing:
  dpo: "Data Protection Officer, dpo@example.com"
  data_subjects: { analytics: [customers, prospects] }
apps:
  newsletter-tool:
    client_cert: { san: newsletter-tool }
    purposes: [newsletter]
  bi-export:
    api_keys: [{ sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", purpose: analytics }]
    purposes: [analytics, billing]
upstreams:
  salesforce:
    url: https://127.0.0.1:9443
    dialect: salesforce
    route: { path_prefix: /services/data/ }
    processor: Salesforce, Inc.
    jurisdiction: US
    transfer_mechanism: { type: dpf, ref: "Commission Implementing Decision (EU) 2023/1795" }
"#;

enum Up {
    Salesforce,
    Hubspot,
    Dynamics,
}

struct T<'a> {
    app: &'a str,
    purpose: &'a str,
    up: Up,
    direction: Direction,
    stage: Stage,
    cats: &'a [&'a str],
    records: u64,
    actions: &'a [(&'a str, u64)],
    decision: Decision,
}

const BASE: T<'static> = T {
    app: "bi-export",
    purpose: "analytics",
    up: Up::Salesforce,
    direction: Direction::Response,
    stage: Stage::Complete,
    cats: &["user.contact.email"],
    records: 1,
    actions: &[("keep", 1)],
    decision: Decision::Minimised,
};

fn transfer(t: T<'_>) -> Value {
    let (upstream, processor, jurisdiction, cross_border, kind, reference, route) = match t.up {
        Up::Salesforce => (
            "salesforce",
            "Salesforce, Inc.",
            "US",
            true,
            MechanismKind::Dpf,
            Some("Commission Implementing Decision (EU) 2023/1795"),
            "GET /services/data/v*/query",
        ),
        Up::Hubspot => (
            "hubspot",
            "HubSpot, Inc.",
            "US",
            true,
            MechanismKind::Scc,
            None,
            "GET /crm/v3/objects/contacts",
        ),
        Up::Dynamics => (
            "dynamics",
            "Microsoft Ireland Operations Ltd",
            "IE",
            false,
            MechanismKind::None,
            None,
            "PATCH /api/data/v*/contacts(*)",
        ),
    };
    let rec = TransferRecord {
        stage: t.stage,
        request_id: "r".into(),
        app: t.app.into(),
        purpose: t.purpose.into(),
        data_use: "analytics.reporting".into(),
        legal_basis: "legitimate_interests".into(),
        direction: t.direction,
        upstream: upstream.into(),
        processor: processor.into(),
        host: format!("{upstream}.example"),
        jurisdiction: jurisdiction.into(),
        cross_border,
        transfer_mechanism: TransferMechanism {
            kind,
            reference: reference.map(str::to_string),
            scc_module: None,
        },
        method: "GET".into(),
        route: route.into(),
        categories_received: t.cats.iter().map(|c| (*c).to_string()).collect(),
        categories_delivered: t.cats.iter().map(|c| (*c).to_string()).collect(),
        records: t.records,
        parts: vec![],
        bytes: t.records * 300,
        actions: t
            .actions
            .iter()
            .map(|(a, n)| ((*a).to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
        decision: t.decision,
        status: if t.decision == Decision::RateLimited {
            429
        } else {
            200
        },
        policy_version: "v1".into(),
        reason: None,
        policy_bundle: None,
    };
    serde_json::to_value(rec).expect("record")
}

/// An `incident` entry in the agreed shape (docs/transfer-log.md §2.2: window bounds in whole
/// seconds, baseline and threshold as integers).
fn detection(seq: usize, start: &str, end: &str) -> Value {
    json!({
        "kind": "incident",
        "incident": format!("inc-{seq}"),
        "rule": "volume",
        "app": "bi-export",
        "purpose": "analytics",
        "upstream": "salesforce",
        "processor": "Salesforce, Inc.",
        "jurisdiction": "US",
        "categories": ["user.contact.email", "user.name"],
        "window_start": start,
        "window_end": end,
        "observed": 3500,
        "baseline": 120,
        "threshold": 600,
        "on_anomaly": "throttle",
    })
}

fn containment(
    action: &str,
    purpose: Option<&str>,
    incident: Option<&str>,
    by: &str,
    reason: &str,
) -> Value {
    json!({
        "kind": "containment",
        "action": action,
        "app": "bi-export",
        "purpose": purpose,
        "incident": incident,
        "by": by,
        "reason": reason,
    })
}

/// A leaked `bi-export` key draining the CRM on 24 October 2026, the day before Berlin's
/// clocks go back; around it, traffic the incident is not about.
fn leak() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = Vec::new();
    let mut at = |ts: &str, body: Value| v.push((ts.to_string(), body));
    at(
        "2026-10-20T10:00:00.000Z",
        transfer(T { records: 5, ..BASE }),
    );
    at(
        "2026-10-24T06:00:00.000Z",
        transfer(T {
            app: "newsletter-tool",
            purpose: "newsletter",
            records: 3,
            ..BASE
        }),
    );
    at(
        "2026-10-24T08:00:00.000Z",
        transfer(T {
            cats: &["user.contact.email", "user.name"],
            records: 1000,
            actions: &[("keep", 2000), ("pseudonymise", 1000)],
            ..BASE
        }),
    );
    at(
        "2026-10-24T08:30:00.000Z",
        transfer(T {
            up: Up::Hubspot,
            cats: &["user.contact.email", "user.health_and_medical"],
            records: 500,
            actions: &[("keep", 500), ("generalise", 500)],
            ..BASE
        }),
    );
    // a streamed body: its intent line carries no counts, its close line does
    at(
        "2026-10-24T08:45:00.000Z",
        transfer(T {
            stage: Stage::Intent,
            records: 0,
            ..BASE
        }),
    );
    at(
        "2026-10-24T08:50:00.000Z",
        transfer(T {
            stage: Stage::Close,
            records: 2000,
            actions: &[("keep", 2000)],
            ..BASE
        }),
    );
    at(
        "2026-10-24T09:00:00.000Z",
        detection(6, "2026-10-24T08:00:00Z", "2026-10-24T09:00:00Z"),
    );
    at(
        "2026-10-24T09:05:00.000Z",
        transfer(T {
            records: 0,
            actions: &[],
            decision: Decision::RateLimited,
            ..BASE
        }),
    );
    at(
        "2026-10-24T09:10:00.000Z",
        transfer(T {
            up: Up::Dynamics,
            direction: Direction::Request,
            cats: &["user.contact.phone_number"],
            records: 2,
            actions: &[("keep", 2)],
            ..BASE
        }),
    );
    at(
        "2026-10-24T09:15:00.000Z",
        transfer(T {
            purpose: "billing",
            records: 7,
            ..BASE
        }),
    );
    at(
        "2026-10-24T09:20:00.000Z",
        containment(
            "throttle",
            Some("analytics"),
            Some("inc-6"),
            "detector",
            "volume",
        ),
    );
    at(
        "2026-10-24T09:25:00.000Z",
        json!({"kind": "future_kind", "app": "bi-export"}),
    );
    at(
        "2026-10-24T11:00:00.000Z",
        containment("revoke", None, None, "cli", "key-leak"),
    );
    at(
        "2026-10-26T12:00:00.000Z",
        transfer(T { records: 9, ..BASE }),
    );
    v
}

const AS_OF: &str = "2026-10-25T12:00:00Z";

/// The recount: transfer entries (no `kind`, not `intent`) of the app and purpose whose time
/// is in `[from, to)`, summed by direction: (entries, records, refused).
fn recount(
    log: &Path,
    app: &str,
    purpose: Option<&str>,
    from: &str,
    to: &str,
) -> BTreeMap<String, (u64, u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(log).expect("log").lines() {
        let e: Value = serde_json::from_str(line).expect("json line");
        let ts = e["ts"].as_str().expect("ts");
        if e.get("kind").is_some() || e["stage"] == "intent" || e["app"] != app {
            continue;
        }
        if purpose.is_some_and(|p| e["purpose"] != p) || ts < from || ts >= to {
            continue;
        }
        let d = out
            .entry(e["direction"].as_str().expect("dir").to_string())
            .or_default();
        d.0 += 1;
        d.1 += e["records"].as_u64().expect("records");
        if e["decision"] == "blocked" || e["decision"] == "rate_limited" {
            d.2 += 1;
        }
    }
    out
}

fn sums(doc: &Value, direction: &str) -> (u64, u64, u64) {
    let s = &doc["facts"][direction];
    (
        s["entries"].as_u64().expect("entries"),
        s["records"].as_u64().expect("records"),
        s["refused"].as_u64().expect("refused"),
    )
}

fn open_leak(d: &Desk, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "incident",
        "open",
        "--detected-at",
        "2026-10-24T11:30",
        "--app",
        "bi-export",
        "--purpose",
        "analytics",
    ];
    if !extra.contains(&"--as-of") {
        args.extend_from_slice(&["--as-of", AS_OF]);
    }
    args.extend_from_slice(extra);
    d.zweck(&args)
}

#[test]
fn the_draft_s_figures_equal_a_recount_of_the_log() {
    let d = Desk::new();
    d.write(leak());
    let (code, out) = open_leak(&d, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("VERIFIED"), "{out}");
    let id = "incident-20261024-1";
    assert!(out.contains(&format!("opened {id}")), "{out}");
    let doc: Value =
        serde_json::from_str(&d.read(&format!("logs/incidents/{id}/notification.json")))
            .expect("json draft");
    assert_eq!(doc["schema"], SCHEMA);
    assert_eq!(doc["verification"]["status"], "VERIFIED");
    // the window starts at the detection's window_start and ends at --as-of (inclusive)
    assert_eq!(doc["facts"]["window"]["from"], "2026-10-24T08:00:00.000Z");
    assert_eq!(doc["facts"]["window"]["to"], "2026-10-25T12:00:00.001Z");
    assert!(doc["facts"]["window"]["basis"]
        .as_str()
        .expect("basis")
        .contains("seq 6"));
    let expected = recount(
        &d.log(),
        "bi-export",
        Some("analytics"),
        "2026-10-24T08:00:00.000Z",
        "2026-10-25T12:00:00.001Z",
    );
    assert_eq!(sums(&doc, "from_processor"), expected["from_processor"]);
    assert_eq!(sums(&doc, "to_processor"), expected["to_processor"]);
    let total: u64 = expected.values().map(|s| s.1).sum();
    assert_eq!(doc["facts"]["records_concerned"], total);
    assert_eq!(
        total, 3502,
        "1000 + 500 + 2000 delivered, 2 written; not the intent, billing, before or after"
    );
    assert_eq!(doc["facts"]["data_subjects"]["upper_bound"], total);
    assert_eq!(doc["facts"]["data_subjects"]["approximate"], true);
    // categories, with the Art. 9 one named
    let cats = doc["facts"]["categories"].as_array().expect("categories");
    let cat = |name: &str| {
        cats.iter()
            .find(|c| c["category"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(cat("user.contact.email")["records_from_processor"], 3500);
    assert_eq!(cat("user.health_and_medical")["special"], "art9");
    assert_eq!(cat("user.contact.phone_number")["records_to_processor"], 2);
    assert_eq!(
        doc["facts"]["special_categories"],
        json!(["user.health_and_medical"])
    );
    assert_eq!(doc["facts"]["third_countries"], json!(["US"]));
    // who received what, from which processor, where, under which mechanism
    let flows = doc["facts"]["flows"].as_array().expect("flows");
    let procs: Vec<(&str, &str, &str)> = flows
        .iter()
        .map(|f| {
            (
                f["processor"].as_str().unwrap_or(""),
                f["jurisdiction"].as_str().unwrap_or(""),
                f["mechanism"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for want in [
        ("Salesforce, Inc.", "US", "dpf"),
        ("HubSpot, Inc.", "US", "scc"),
        ("Microsoft Ireland Operations Ltd", "IE", "none"),
    ] {
        assert!(procs.contains(&want), "{want:?} in {procs:?}");
    }
    // pseudonymised and generalised, from `actions`
    let m = &doc["facts"]["minimisation"];
    assert_eq!(m["fields_by_action"]["pseudonymise"], 1000);
    assert_eq!(m["fields_by_action"]["generalise"], 500);
    assert_eq!(m["records_pseudonymised"], 1000);
    assert_eq!(m["entries_generalised"], 1);
    // detections and containment steps, in order, with their times
    let det = doc["facts"]["detections"].as_array().expect("detections");
    assert_eq!(det.len(), 1);
    assert_eq!(det[0]["incident"], "inc-6");
    assert_eq!(det[0]["seq"], 6);
    let steps = doc["facts"]["containment"].as_array().expect("containment");
    let actions: Vec<&str> = steps.iter().filter_map(|s| s["action"].as_str()).collect();
    assert_eq!(actions, ["throttle", "revoke"]);
    assert_eq!(
        steps[1]["purpose"],
        Value::Null,
        "a whole-app revocation matches the purpose"
    );
    assert_eq!(
        doc["facts"]["other_events"], 1,
        "an unknown event kind is counted, not fatal"
    );
    // the DPO and data subjects from the config, the controller's name
    assert_eq!(doc["controller"]["name"], "Example GmbH");
    let md = d.read(&format!("logs/incidents/{id}/notification.md"));
    assert!(
        md.contains("Data protection officer: Data Protection Officer, dpo@example.com"),
        "{md}"
    );
    assert!(md.contains("analytics: customers, prospects"), "{md}");
    assert!(md.contains("YES: user.health_and_medical"), "{md}");
    assert!(
        md.contains("throttle of app bi-export purpose analytics by detector for inc-6"),
        "{md}"
    );

    // a narrower scope: only transfers that carried a health category
    let (code, out) = open_leak(
        &d,
        &["--category", "user.health_and_medical", "--format", "json"],
    );
    assert_eq!(code, 0, "{out}");
    let doc: Value =
        serde_json::from_str(&d.read("logs/incidents/incident-20261024-2/notification.json"))
            .expect("json");
    assert_eq!(doc["facts"]["records_concerned"], 500);
    assert!(
        !d.path("logs/incidents/incident-20261024-2/notification.md")
            .exists(),
        "--format json writes only JSON"
    );
}

#[test]
fn the_deadline_is_72_real_hours_on_the_controller_s_clock_across_the_dst_change() {
    let d = Desk::new();
    d.write(leak());
    let (code, out) = open_leak(&d, &["--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let doc: Value =
        serde_json::from_str(&d.read("logs/incidents/incident-20261024-1/notification.json"))
            .expect("json");
    let dl = &doc["deadline"];
    assert_eq!(dl["time_zone"], "Europe/Berlin");
    // 11:30 CEST on Saturday; the clocks go back on Sunday; 72 h later is 10:30 CET
    assert_eq!(dl["aware_at"], "2026-10-24T09:30:00Z");
    assert_eq!(dl["aware_at_local"], "2026-10-24 11:30 CEST (UTC+02:00)");
    assert_eq!(dl["notify_by"], "2026-10-27T09:30:00Z");
    assert_eq!(dl["notify_by_local"], "2026-10-27 10:30 CET (UTC+01:00)");
    assert_eq!(dl["offset_changes"], true);
    assert_eq!(dl["seconds_left"], 45 * 3600 + 30 * 60);
    assert_eq!(dl["left"], "45 h 30 min left");
    assert!(
        out.contains("notify the supervisory authority by 2026-10-27 10:30 CET"),
        "{out}"
    );
    // a local time in the fold is refused rather than guessed
    let (code, out) = d.zweck(&[
        "incident",
        "open",
        "--detected-at",
        "2026-10-25T02:30",
        "--since",
        "2026-10-24T00:00:00Z",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("ambiguous") && out.contains("offset"), "{out}");
    // overdue: the reasons for the delay become a placeholder
    let (code, out) = open_leak(&d, &["--as-of", "2026-10-28T09:30:00Z", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let doc: Value =
        serde_json::from_str(&d.read("logs/incidents/incident-20261024-2/notification.json"))
            .expect("json");
    assert_eq!(doc["deadline"]["overdue"], true);
    assert!(doc["placeholders"]
        .as_array()
        .expect("p")
        .iter()
        .any(|p| p["id"] == "delay_reasons"));
}

#[test]
fn a_tampered_log_gets_no_draft() {
    let d = Desk::new();
    d.write(leak());
    let text = d.read("logs/transfers.jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].replace("\"records\":1000", "\"records\":10");
    std::fs::write(d.log(), lines.join("\n") + "\n").expect("tamper");
    let (code, out) = open_leak(&d, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED") && out.contains("refused"), "{out}");
    let store = d.path("logs/incidents");
    let left: Vec<_> = std::fs::read_dir(&store)
        .map(Iterator::collect)
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing written to the store: {left:?}");
    // a key that did not sign the checkpoints: unverified, no draft either
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
    let pk = key_from_pkcs8(&other.serialize_der()).expect("key");
    std::fs::write(
        d.path("other.pub"),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, public_key(&pk)) + "\n",
    )
    .expect("pub");
    std::fs::write(d.log(), text).expect("restore");
    let (code, out) = open_leak(&d, &["--key", "other.pub"]);
    assert_ne!(code, 0, "{out}");
    assert!(!d.path("logs/incidents/incident-20261024-1.json").exists());
}

#[test]
fn each_draft_is_signed_and_a_changed_one_does_not_verify() {
    let d = Desk::new();
    d.write(leak());
    let (code, out) = open_leak(&d, &[]);
    assert_eq!(code, 0, "{out}");
    for f in ["notification.md", "notification.html", "notification.json"] {
        let path = format!("logs/incidents/incident-20261024-1/{f}");
        let (code, out) = d.zweck(&[
            "audit",
            "verify-report",
            &path,
            "--key",
            "certs/audit.pub",
            "--log",
            "logs/transfers.jsonl",
        ]);
        assert_eq!(code, 0, "{f}: {out}");
        assert!(
            out.contains("VERIFIED") && out.contains("exactly those the report was computed from"),
            "{out}"
        );
        let mut bytes = std::fs::read(d.path(&path)).expect("draft");
        bytes.extend_from_slice(b"\nThe breach was minor.\n");
        std::fs::write(d.path(&path), bytes).expect("edit");
        let (code, out) = d.zweck(&["audit", "verify-report", &path, "--key", "certs/audit.pub"]);
        assert_eq!(code, 1, "{f}: {out}");
        assert!(out.contains("TAMPERED"), "{out}");
    }
}

#[test]
fn placeholders_are_unmistakable_and_listed_and_the_three_formats_agree() {
    let d = Desk::new();
    d.write(leak());
    // no DPO configured: (b) becomes a placeholder too
    std::fs::write(
        d.path("zweck.yaml"),
        CONFIG.replace("  dpo: \"Data Protection Officer, dpo@example.com\"\n", ""),
    )
    .expect("config");
    let (code, out) = open_leak(&d, &[]);
    assert_eq!(code, 0, "{out}");
    let dir = "logs/incidents/incident-20261024-1";
    let doc: Value =
        serde_json::from_str(&d.read(&format!("{dir}/notification.json"))).expect("json");
    let md = d.read(&format!("{dir}/notification.md"));
    let html = d.read(&format!("{dir}/notification.html"));
    for key in [
        "document",
        "schema",
        "incident",
        "controller",
        "deadline",
        "verification",
        "facts",
        "sections",
        "placeholders",
        "complete",
    ] {
        assert!(doc.get(key).is_some(), "JSON member {key}");
    }
    assert_eq!(doc["complete"], false);
    let placeholders = doc["placeholders"].as_array().expect("placeholders");
    let ids: Vec<&str> = placeholders
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    for want in [
        "nature",
        "dpo",
        "consequences",
        "measures",
        "art34_decision",
    ] {
        assert!(ids.contains(&want), "{want} in {ids:?}");
    }
    assert!(
        !ids.contains(&"data_subjects.analytics"),
        "declared in record_of_processing"
    );
    let sections_text = doc["sections"].to_string();
    for p in placeholders {
        let text = p["text"].as_str().expect("text");
        assert!(
            text.starts_with(PLACEHOLDER_PREFIX) && text.ends_with(']'),
            "{text}"
        );
        assert!(md.contains(&format!("**{text}**")), "{text} in markdown");
        assert!(
            html.contains(&zweck::audit::html::esc(text)),
            "{text} in HTML"
        );
        assert!(
            sections_text.contains(&serde_json::to_string(text).expect("s")[1..text.len()]),
            "{text} in the JSON sections"
        );
        // Art. 33(4): every open placeholder is listed
        assert!(
            md.contains(&format!(
                "- {} (section {})",
                p["id"].as_str().unwrap_or(""),
                p["section"].as_str().unwrap_or("")
            )),
            "{p} listed"
        );
    }
    // every section heading, in order, in every format
    let mut at = 0;
    for h in HEADINGS {
        let found = md[at..]
            .find(&format!("## {h}"))
            .unwrap_or_else(|| panic!("{h} after {at}"));
        at += found;
        assert!(html.contains(&zweck::audit::html::esc(h)), "{h} in HTML");
    }
    let headings: Vec<&str> = doc["sections"]
        .as_array()
        .expect("s")
        .iter()
        .filter_map(|s| s["heading"].as_str())
        .collect();
    assert_eq!(headings, HEADINGS);
    // the HTML is self-contained: no script, nothing fetched
    for banned in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(banned), "{banned} in the HTML");
    }
    assert!(
        md.contains("Art. 34") && md.contains("special categories of personal data were concerned"),
        "{md}"
    );
}

#[test]
fn list_and_close_keep_the_lifecycle_in_the_store() {
    let d = Desk::new();
    d.write(leak());
    let (code, out) = d.zweck(&["incident", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no incidents"), "{out}");
    for _ in 0..2 {
        let (code, out) = open_leak(&d, &["--format", "md"]);
        assert_eq!(code, 0, "{out}");
    }
    let (code, out) = d.zweck(&["incident", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("incident-20261024-1") && out.contains("incident-20261024-2"),
        "{out}"
    );
    assert!(
        out.contains("2026-10-27 10:30 CET"),
        "deadline on the controller's clock: {out}"
    );
    assert!(
        out.contains("bi-export/analytics") && out.contains("3502"),
        "{out}"
    );
    let (code, out) = d.zweck(&[
        "incident",
        "close",
        "incident-20261024-1",
        "--reason",
        "duplicate of incident-20261024-2",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("closed incident-20261024-1"), "{out}");
    let record: Value =
        serde_json::from_str(&d.read("logs/incidents/incident-20261024-1.json")).expect("record");
    assert_eq!(record["status"], "closed");
    assert_eq!(record["close_reason"], "duplicate of incident-20261024-2");
    assert_eq!(
        record["reports"],
        json!(["incident-20261024-1/notification.md"])
    );
    let (code, out) = d.zweck(&["incident", "list"]);
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("incident-20261024-1"))
        .expect("row");
    assert!(line.contains("closed"), "{line}");
    // closing twice, an unknown id, and an id that is a path are refused
    let (code, out) = d.zweck(&["incident", "close", "incident-20261024-1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("already closed"), "{out}");
    let (code, out) = d.zweck(&["incident", "close", "incident-20261024-9"]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = d.zweck(&["incident", "close", "../../zweck"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not an incident id"), "{out}");
    // the transfer log was never written by the CLI
    let (code, out) = d.zweck(&[
        "audit",
        "verify",
        "logs/transfers.jsonl",
        "--key",
        "certs/audit.pub",
        "--offbox",
        "auditor/checkpoints",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{} records", leak().len())), "{out}");
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let d = Desk::new();
    d.write(leak());
    for (args, says) in [
        (vec!["--detected-at", "yesterday"], "--detected-at"),
        (
            vec![
                "--detected-at",
                "2026-10-24T11:30",
                "--since",
                "2026-13-01T00:00",
            ],
            "--since",
        ),
        (
            vec![
                "--detected-at",
                "2026-10-24T11:30",
                "--since",
                "2026-10-25T00:00:00Z",
                "--until",
                "2026-10-24T00:00:00Z",
            ],
            "empty",
        ),
        (
            vec!["--detected-at", "2026-10-24T11:30", "--format", "pdf"],
            "md, html or json",
        ),
        (
            vec!["--detected-at", "2026-10-24T11:30", "--app", "nobody"],
            "--since",
        ),
        (
            vec![
                "--detected-at",
                "2026-10-24T11:30",
                "--sign",
                "nowhere.key",
                "--since",
                "2026-10-24T00:00:00Z",
            ],
            "nowhere.key",
        ),
    ] {
        let mut all = vec!["incident", "open"];
        all.extend(args);
        let (code, out) = d.zweck(&all);
        assert_eq!(code, 2, "{all:?}: {out}");
        assert!(out.contains(says), "{all:?}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    std::fs::write(
        d.path("bad.yaml"),
        CONFIG.replace("Europe/Berlin", "Mars/Olympus"),
    )
    .expect("cfg");
    let (code, out) = d.zweck(&["incident", "list", "--config", "bad.yaml"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("controller.time_zone") && out.contains("Mars/Olympus"),
        "{out}"
    );
}

/// Every string value in a JSON body (recursively).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn a_log_the_proxy_wrote_gives_a_draft_with_its_figures_and_no_value() {
    use common::*;
    let mut h = Harness::start().await;
    let news = h.cert_client(CERT_APP, Version::H2);
    let soql = "/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,Email,HasOptedOutOfEmail+FROM+Contact+LIMIT+40";
    let mut seen = Vec::new();
    let mut received = 0;
    for _ in 0..3 {
        let (r, body) = news.get(&h.url(soql), &[]).await;
        assert_eq!(r.status(), 200);
        let v: Value = serde_json::from_slice(&body).expect("json");
        for rec in v["records"].as_array().expect("records") {
            received += 1;
            for f in ["Id", "FirstName", "LastName", "Email"] {
                strings(&rec[f], &mut seen);
            }
        }
    }
    let bi = TestClient::new(&h.paths().ca_cert(), None, Version::H1);
    let key = h.api_key();
    let (r, body) = bi
        .get(
            &h.url("/crm/v3/objects/contacts?limit=20"),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    strings(&v["results"], &mut seen);
    seen.retain(|s| s.len() >= 4);
    assert!(seen.len() > 50, "values to look for: {}", seen.len());
    h.shutdown().await;

    let dir = h.dir.path();
    let p = |s: &str| dir.join(s).display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_zweck"))
        .args([
            "incident",
            "open",
            "--detected-at",
            "2026-12-07T09:00:00Z",
            "--since",
            "2020-01-01T00:00:00Z",
            "--app",
            CERT_APP,
            "--log",
            &p("logs/transfers.jsonl"),
            "--key",
            &p("audit.pub"),
            "--offbox",
            &p("offbox/checkpoints"),
            "--sign",
            &p("audit.key"),
            "--store",
            &p("incidents"),
        ])
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    let stdout =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let idir = std::fs::read_dir(dir.join("incidents"))
        .expect("store")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("the incident's directory");
    let json_text = std::fs::read_to_string(idir.join("notification.json")).expect("json");
    let doc: Value = serde_json::from_str(&json_text).expect("json");
    let expected = recount(
        &dir.join("logs/transfers.jsonl"),
        CERT_APP,
        None,
        "2020-01-01",
        "9999",
    );
    assert_eq!(sums(&doc, "from_processor"), expected["from_processor"]);
    assert_eq!(
        doc["facts"]["from_processor"]["records"], received,
        "the records the app received (opted-out contacts removed)"
    );
    assert_eq!(doc["facts"]["to_processor"]["entries"], 0);
    assert_eq!(doc["facts"]["flows"][0]["processor"], "Salesforce, Inc.");
    assert_eq!(doc["facts"]["flows"][0]["mechanism"], "dpf");
    assert!(
        doc["facts"]["all_entries_in_window"].as_u64().expect("all") > 3,
        "bi-export's entry is outside the scope"
    );
    // no value the CRM sent appears in the drafts, their signatures, the record or stdout
    let mut outputs = vec![stdout, json_text];
    for f in [
        "notification.md",
        "notification.html",
        "notification.md.sig",
        "notification.html.sig",
        "notification.json.sig",
    ] {
        outputs.push(std::fs::read_to_string(idir.join(f)).expect(f));
    }
    for f in std::fs::read_dir(dir.join("incidents"))
        .expect("store")
        .filter_map(Result::ok)
    {
        if f.path().is_file() {
            outputs.push(std::fs::read_to_string(f.path()).expect("record"));
        }
    }
    for text in &outputs {
        for value in &seen {
            assert!(
                !text.contains(value.as_str()),
                "a CRM value appears in an output"
            );
        }
    }
}

/// docs/incidents.md shows a draft generated by the real command from this leak; it must be
/// exactly what the command writes today. `ZWECK_BLESS_DOCS=1` rewrites it.
#[test]
fn the_example_in_the_docs_is_what_the_command_writes() {
    const START: &str = "<!-- incident-example:start -->\n````markdown\n";
    const END: &str = "````\n<!-- incident-example:end -->";
    let d = Desk::new();
    d.write(leak());
    let (code, out) = open_leak(&d, &["--format", "md"]);
    assert_eq!(code, 0, "{out}");
    let generated = d.read("logs/incidents/incident-20261024-1/notification.md");
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/incidents.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/incidents.md");
    let (Some(a), Some(b)) = (doc.find(START), doc.find(END)) else {
        panic!("docs/incidents.md has no example markers");
    };
    let shown = &doc[a + START.len()..b];
    if shown != generated && std::env::var_os("ZWECK_BLESS_DOCS").is_some() {
        let new = format!("{}{START}{generated}{}", &doc[..a], &doc[b..]);
        std::fs::write(&doc_path, new).expect("bless");
        return;
    }
    for h in HEADINGS {
        assert!(
            shown.contains(&format!("## {h}")),
            "the example lacks the heading {h}"
        );
    }
    assert_eq!(
        shown, generated,
        "docs/incidents.md's example is not what `zweck incident open` writes: run ZWECK_BLESS_DOCS=1 cargo test --test incident_report the_example"
    );
}

/// Headless Chromium renders the HTML draft: a screenshot is made and the rendered text holds
/// the figures, the deadline and the placeholders.
#[test]
#[ignore = "needs chromium: apt-get install chromium (the CI runs it: .ci/run)"]
fn chromium_renders_the_html_draft() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (apt-get install chromium)");
    let d = Desk::new();
    d.write(leak());
    let (code, out) = open_leak(&d, &["--format", "html"]);
    assert_eq!(code, 0, "{out}");
    let page = d.path("logs/incidents/incident-20261024-1/notification.html");
    let profile = tempfile::tempdir().expect("profile");
    let run = |extra: &[String]| {
        let out = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let shot = d.path("draft.png");
    run(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1100,2400".into(),
    ]);
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG with content"
    );
    let dom = String::from_utf8(run(&["--dump-dom".into()]).stdout).expect("utf-8 dom");
    for figure in [
        "2026-10-27 10:30 CET (UTC+01:00)",
        "45 h 30 min left",
        "user.health_and_medical",
        "Approximate number of personal data records concerned: 3502",
        "[TO BE COMPLETED BY THE CONTROLLER: the likely consequences",
        "(d) Measures taken or proposed",
    ] {
        assert!(dom.contains(figure), "rendered page lacks {figure:?}");
    }
}
