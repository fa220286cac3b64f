//! Live shadow comparison on real traffic: with `policies: { dir, candidate }` the wire is
//! what the active set decides, and `GET /shadow` and the `zweck_shadow_*` metrics count per
//! purpose x field what the candidate would expose or hide (names and counts, never values).

mod common;

use std::path::{Path, PathBuf};

use common::*;

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,MobilePhone,HasOptedOutOfEmail+FROM+Contact+LIMIT+6";
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

/// The candidate: newsletter sees last names instead of first names.
fn candidate(to: &Path) -> PathBuf {
    policies_with(to, |t| {
        t.replacen(
            "      user.name.first: keep\n",
            "      user.name.last: keep\n",
            1,
        )
    })
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("/shadow is JSON")
}

#[tokio::test]
async fn a_candidate_changes_nothing_on_the_wire_and_its_differences_are_counted() {
    let h = Harness::start_prepared(
        |d| {
            candidate(&d.join("next"));
        },
        |mut o| {
            // the harness writes `policies: <this>`: a flow mapping in that slot
            o.policies = PathBuf::from(format!(
                "{{ dir: {SHIPPED}, candidate: {} }}",
                o.certs_dir.join("next/policies").display()
            ));
            o
        },
    )
    .await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, body) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("\"FirstName\""),
        "the active set decides the wire"
    );
    assert!(
        !text.contains("\"LastName\""),
        "the candidate enforces nothing"
    );
    let records = serde_json::from_slice::<serde_json::Value>(&body).expect("json")["records"]
        .as_array()
        .map(Vec::len)
        .expect("records");
    assert!(records > 0);

    let (status, report) = h.admin_get("/shadow").await;
    assert_eq!(status, 200, "{report}");
    let report = json(&report);
    let newsletter = &report["candidate"]["purposes"]["newsletter"];
    assert_eq!(newsletter["compared"], 1, "{report:#}");
    let fields = newsletter["fields"].as_object().expect("fields");
    let last = fields
        .iter()
        .find(|(name, _)| name.contains("LastName"))
        .map_or_else(|| panic!("LastName counted: {report:#}"), |(_, d)| d);
    let first = fields
        .iter()
        .find(|(name, _)| name.contains("FirstName"))
        .map_or_else(|| panic!("FirstName counted: {report:#}"), |(_, d)| d);
    assert_eq!(last["exposed"], records as u64, "{report:#}");
    assert_eq!(last["hidden"], 0);
    assert_eq!(first["hidden"], records as u64, "{report:#}");
    assert_eq!(first["exposed"], 0);
    assert_eq!(
        fields.len(),
        2,
        "nothing else differs (ids, phone, consent field): {report:#}"
    );
    assert_ne!(
        report["active_version"],
        report["candidate"]["candidate_version"]
    );
    assert!(!report.to_string().contains('@'), "no values in the report");

    // a query the active set refuses (a predicate on a field newsletter may not see) and the
    // candidate refuses too: no difference; one on LastName: the candidate would allow it
    let by_last = "/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+WHERE+LastName='x'";
    let (r, _) = c.get(&h.url(by_last), &[]).await;
    assert_eq!(r.status(), 403);
    let (_, report) = h.admin_get("/shadow").await;
    let report = json(&report);
    assert_eq!(
        report["candidate"]["purposes"]["newsletter"]["would_allow"], 1,
        "{report:#}"
    );

    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("zweck_shadow_field_values_total{")
                && l.contains("purpose=\"newsletter\"")
                && l.contains("LastName")
                && l.contains("change=\"exposed\"")
                && l.ends_with(&format!(" {records}"))),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "zweck_shadow_exchanges_total{purpose=\"newsletter\",change=\"would_allow\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_a_candidate_shadow_is_not_found_and_no_counter_is_exported() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, _) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200);
    let (status, text) = h.admin_get("/shadow").await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("policies.candidate"), "{text}");
    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(!metrics.contains("zweck_shadow"), "{metrics}");
}
