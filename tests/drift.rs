//! Runtime drift (issue 13): fields a governed body carries that the inventory does not
//! classify get the purpose's `otherwise` (dropped or redacted) and are counted per upstream, resource and field path (never a value) on
//! /metrics, in the admin listener's `/drift`, and by `zweck inventory drift` as a YAML patch.

mod common;

use common::{Harness, Version};

#[tokio::test]
async fn unclassified_fields_are_counted_by_path_and_printed_as_a_patch_without_values() {
    // the shipped inventories do not know the double's onboarding fields (Allergies__c,
    // Notes__c, ...): exactly the drift of an org that grew fields
    let h = Harness::start().await;
    let support = h.cert_client("support-desk", Version::H1);
    for i in 1..=2 {
        let (r, body) = support
            .get(
                &h.url(&format!(
                    "/services/data/v66.0/sobjects/Contact/003Fict0000000{i}AAA"
                )),
                &[("zweck-purpose", "support")],
            )
            .await;
        assert_eq!(r.status(), 200);
        let record: serde_json::Value = serde_json::from_slice(&body).expect("json");
        // support's `otherwise: redact` nulls what it does not classify
        assert!(record["Allergies__c"].is_null(), "withheld: {record}");
    }
    let (r, _) = support
        .get(
            &h.url("/crm/v3/objects/contacts/51000004?properties=email,allergies,notes"),
            &[("zweck-purpose", "support")],
        )
        .await;
    assert_eq!(r.status(), 200);

    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(
        metrics.contains(
            r#"zweck_unclassified_fields_total{upstream="salesforce",resource="Contact",field="$.Allergies__c"} 2"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"zweck_unclassified_fields_total{upstream="hubspot",resource="contacts",field="$.properties.allergies"} 1"#
    ));
    let (status, json) = h.admin_get("/drift").await;
    assert_eq!(status, 200);
    let view: zweck::drift::Snapshot = serde_json::from_str(&json).expect("drift json");
    assert!(view
        .fields
        .iter()
        .any(|s| s.resource == "Contact" && s.field == "$.Notes__c" && s.count == 2));

    let admin = h.zweck().admin_addr.expect("admin").to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_zweck"))
            .args(["inventory", "drift", "--admin", &admin])
            .output()
            .expect("zweck runs")
    })
    .await
    .expect("joined");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patch = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(patch.contains("  Contact:\n    fields:\n"), "{patch}");
    assert!(patch.contains("      $.Allergies__c: unclassified  # review: seen 2 time(s)"));
    assert!(patch.contains("      $.properties.allergies: unclassified  # review: seen 1 time(s)"));
    // docs/onboarding.md quotes this run's patch and command
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/onboarding.md"))
        .expect("doc");
    assert!(doc.contains("zweck inventory drift --config zweck.yaml"));
    assert!(doc.contains(
        "resources:\n  Contact:\n    fields:\n      $.Allergies__c: unclassified  # review: seen 2 time(s)\n"
    ));
    // names and counts only: no value of the dropped fields anywhere
    for text in [&patch, &json, &metrics] {
        for value in ["Peanuts", "Lactose", "Call back on", "Send the catalogue"] {
            assert!(!text.contains(value), "a value leaked: {value}");
        }
    }
}
