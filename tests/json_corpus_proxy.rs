//! JSONTestSuite through a governed route of the running proxy: a test inventory resource that
//! keeps unclassified values (`unclassified: keep`) on the CRM double's echo endpoint. Every
//! `y_` document arrives at the CRM and comes back with its values intact, except the two
//! duplicate-key files (refused by design); every `n_` document is refused before it reaches
//! the CRM; every `i_` document has the outcome docs/json.md pins.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;

const ECHO_INVENTORY: &str = r#"# test only: a governed echo that keeps everything it does not classify
dialect: generic
resources:
  Echo:
    operations:
      - { method: POST, path: "/__double/echo", op: write }
    records: ["$"]
    unclassified: keep
    fields:
      $.never_present_key: system
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_through_a_governed_route() {
    let h = Harness::start_with(|mut o| {
        let dir = policies_with(&o.certs_dir, |t| t + "\n");
        std::fs::write(dir.join("inventory/generic.yaml"), ECHO_INVENTORY).expect("inventory");
        o.policies = dir;
        o
    })
    .await;
    let c = h.cert_client("support-desk", Version::H2);
    let root = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpora/JSONTestSuite/test_parsing"
    ));
    let mut files: Vec<_> = std::fs::read_dir(root)
        .expect("corpus")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let limits = zweck::json::JsonLimits::default();
    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let bytes = Bytes::from(std::fs::read(&path).expect("read"));
        h.double.double.clear_received();
        let (r, body) = c
            .call(
                Method::POST,
                &h.url("/__double/echo"),
                &[
                    ("zweck-purpose", "support"),
                    ("content-type", "application/json"),
                ],
                bytes.clone(),
            )
            .await;
        let reached = !h.double.double.received().is_empty();
        // what the strict model says about the file decides the expected outcome; the
        // model's own table is pinned by tests/json_corpus.rs
        let model = zweck::json::parse(&bytes, &limits);
        match (&model, r.status().as_u16()) {
            (Ok(doc), 200) => {
                accepted += 1;
                match zweck::json::parse(&body, &limits) {
                    Ok(back) if &back == doc => {}
                    other => failures.push(format!("{name}: came back changed: {other:?}")),
                }
            }
            (Err(e), 400) => {
                refused += 1;
                if reached {
                    failures.push(format!(
                        "{name}: refused ({}) but reached the CRM",
                        e.reason()
                    ));
                }
                if !String::from_utf8_lossy(&body).contains(e.reason()) {
                    failures.push(format!("{name}: the refusal does not say why"));
                }
            }
            (m, s) => failures.push(format!(
                "{name}: model {:?}, proxy status {s}",
                m.as_ref()
                    .map(|_| ())
                    .map_err(zweck::json::JsonError::reason)
            )),
        }
        if name.starts_with("n_") && r.status() == 200 {
            failures.push(format!("{name}: an invalid document passed"));
        }
        if name.starts_with("y_") && !name.contains("duplicated_key") && r.status() != 200 {
            failures.push(format!("{name}: a valid document was refused"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        accepted > 90 && refused > 180,
        "{accepted} accepted, {refused} refused"
    );
}
