//! docs/transfer-log.md is the spec an auditor writes a verifier from: its entry table lists
//! exactly the members a real log line has, in their order, and every action name the engine
//! can put into `actions`.

use std::collections::BTreeMap;

use zweck::audit::checkpoint::key_from_pkcs8;
use zweck::audit::{Decision, Direction, Stage, TransferRecord};
use zweck::config::{MechanismKind, TransferMechanism};

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/transfer-log.md"))
        .expect("docs/transfer-log.md")
}

/// The entry table's rows: `| n | \`member\` | type | meaning |`, as (member, meaning).
fn table(spec: &str) -> Vec<(String, String)> {
    spec.lines()
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
    let documented: Vec<String> = table(&spec()).into_iter().map(|(m, _)| m).collect();
    assert_eq!(documented, members_of_a_real_line());
}

#[test]
fn every_action_the_engine_counts_is_in_the_spec() {
    let spec = spec();
    let rows = table(&spec);
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
