//! docs/transfer-log.md is the spec an auditor writes a verifier from: its entry table lists
//! exactly the members a real log line has, in their order, and every action name the engine
//! can put into `actions`.

use std::collections::BTreeMap;

use zweck::audit::checkpoint::key_from_pkcs8;
use zweck::audit::{Decision, Direction, Stage, TransferRecord};
use zweck::config::{MechanismKind, TransferMechanism};

/// The heading the transfer entry table follows.
const TRANSFERS: &str = "### Canonical encoding";
const INCIDENT: &str = "#### `kind: incident`";
const CONTAINMENT: &str = "#### `kind: containment`";

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/transfer-log.md"))
        .expect("docs/transfer-log.md")
}

/// The rows of the first entry table after the heading `heading`:
/// `| n | \`member\` | type | meaning |`, as (member, meaning).
fn table(spec: &str, heading: &str) -> Vec<(String, String)> {
    spec.lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            if cells.len() < 5 || cells[1].parse::<u32>().is_err() {
                return None;
            }
            Some((cells[2].trim_matches('`').to_string(), cells[4..].join("|")))
        })
        .collect()
}

/// The members of one line of a real log, in order.
fn members_of_a_real_line() -> Vec<String> {
    let dir = tempfile::tempdir().expect("dir");
    let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .expect("key");
    let key = key_from_pkcs8(doc.as_ref()).expect("key");
    let record = TransferRecord {
        stage: Stage::Complete,
        request_id: "r".into(),
        app: "a".into(),
        purpose: "p".into(),
        data_use: "d".into(),
        legal_basis: "consent".into(),
        direction: Direction::Request,
        upstream: "u".into(),
        processor: "P".into(),
        host: "crm.example:8443".into(),
        jurisdiction: "US".into(),
        cross_border: true,
        transfer_mechanism: TransferMechanism {
            kind: MechanismKind::Scc,
            reference: Some("r".into()),
            scc_module: Some("2".into()),
        },
        method: "GET".into(),
        route: "GET /x".into(),
        categories_received: vec![],
        categories_delivered: vec![],
        records: 0,
        parts: vec![],
        bytes: 0,
        actions: BTreeMap::new(),
        decision: Decision::Allowed,
        status: 0,
        policy_version: "v".into(),
        reason: None,
        // present only for a signed bundle: set, so the line has every member the spec lists
        policy_bundle: Some(zweck::policy::bundle::Provenance {
            label: "l".into(),
            signer: "0123456789abcdef".into(),
        }),
    };
    let log = dir.path().join("t.jsonl");
    zweck::audit::synthetic::write_log(
        &log,
        &key,
        "o",
        [("2026-12-07T00:00:00.000Z".to_string(), record)],
        1,
        None,
    )
    .expect("write");
    let text = std::fs::read_to_string(&log).expect("read");
    let line: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    line.keys().cloned().collect()
}

#[test]
fn the_entry_table_lists_every_member_of_a_real_line_in_order() {
    let documented: Vec<String> = table(&spec(), TRANSFERS)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(documented, members_of_a_real_line());
}

#[test]
fn every_action_the_engine_counts_is_in_the_spec() {
    let spec = spec();
    let rows = table(&spec, TRANSFERS);
    let actions = &rows
        .iter()
        .find(|(m, _)| m == "actions")
        .expect("actions row")
        .1;
    for name in zweck::policy::engine::ACTION_NAMES {
        assert!(
            actions.contains(&format!("`{name}`")),
            "`{name}` is missing from the actions row of docs/transfer-log.md"
        );
    }
}

/// The members of the event entries the real writer appends, in order: an incident and a
/// containment step, each with every optional member set.
async fn members_of_real_event_lines() -> (Vec<String>, Vec<String>) {
    use zweck::audit::event::{Action, By, ContainmentEntry, IncidentEntry, Kind, Rule};
    use zweck::audit::{AuditConfig, AuditLog, Event, Offbox, OnAnomaly};
    let dir = tempfile::tempdir().expect("dir");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
    std::fs::write(dir.path().join("audit.key"), key.serialize_pem()).expect("write key");
    let log_path = dir.path().join("t.jsonl");
    let config = AuditConfig::new(&log_path, dir.path().join("audit.key"), Offbox::None);
    let log = AuditLog::open(config).await.expect("open");
    let incident = Event::Incident(IncidentEntry {
        kind: Kind::Incident,
        incident: String::new(),
        rule: Rule::Volume,
        app: "a".into(),
        purpose: "p".into(),
        upstream: Some("u".into()),
        processor: Some("P".into()),
        jurisdiction: Some("US".into()),
        categories: vec!["user.contact.email".into()],
        window_start: "2026-12-07T00:00:00Z".into(),
        window_end: "2026-12-07T00:01:00Z".into(),
        observed: 9,
        baseline: Some(1),
        threshold: Some(3),
        on_anomaly: OnAnomaly::Block,
    });
    let seq = log.append_event(incident).await.expect("incident");
    let containment = Event::Containment(ContainmentEntry {
        kind: Kind::Containment,
        action: Action::Block,
        app: "a".into(),
        purpose: Some("p".into()),
        incident: Some(format!("inc-{seq}")),
        by: By::Detector,
        reason: "on-anomaly".into(),
    });
    log.append_event(containment).await.expect("containment");
    log.shutdown().await.expect("shutdown");
    let text = std::fs::read_to_string(&log_path).expect("read");
    let mut lines = text.lines().map(|l| {
        let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).expect("json");
        m.keys().cloned().collect::<Vec<_>>()
    });
    let first = lines.next().expect("incident line");
    let second = lines.next().expect("containment line");
    (first, second)
}

#[tokio::test]
async fn the_event_tables_list_every_member_of_real_event_lines_in_order() {
    let spec = spec();
    let incident: Vec<String> = table(&spec, INCIDENT).into_iter().map(|(m, _)| m).collect();
    let containment: Vec<String> = table(&spec, CONTAINMENT)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let (real_incident, real_containment) = members_of_real_event_lines().await;
    assert_eq!(incident, real_incident);
    assert_eq!(containment, real_containment);
}

#[test]
fn every_rule_and_action_is_in_the_event_tables() {
    let spec = spec();
    let rule_row = table(&spec, INCIDENT)
        .into_iter()
        .find(|(m, _)| m == "rule")
        .expect("rule row")
        .1;
    for rule in zweck::audit::Rule::ALL {
        assert!(
            rule_row.contains(&format!("`{}`", rule.as_str())),
            "{rule:?}"
        );
    }
    let action_row = table(&spec, CONTAINMENT)
        .into_iter()
        .find(|(m, _)| m == "action")
        .expect("action row")
        .1;
    for a in ["throttle", "block", "revoke", "clear", "reinstate"] {
        assert!(action_row.contains(&format!("`{a}`")), "{a}");
    }
}
