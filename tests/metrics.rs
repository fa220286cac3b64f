//! What `/metrics` tells an operator: request durations by upstream, route class and status
//! class, refusals by problem type, build and policy version, certificate expiry, upstream
//! pool gauges, readiness and the process's own figures; and every metric the example alert
//! rules (docs/prometheus-alerts.yml) name is one Zweck exports.

mod common;

use common::*;

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName+FROM+Contact+LIMIT+2";

fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_requests_refusals_versions_certificates_pools_and_the_process() {
    // analytics gets a budget of one record, so a query of two is refused
    let h = Harness::start_with(|mut o| {
        o.policies = policies_with(&o.certs_dir, |t| {
            t.replace(
                "export_budget: { records: 1000000, per: 1d, burst: 100000 }",
                "export_budget: { records: 1, per: 30d, burst: 1 }",
            )
        });
        o
    })
    .await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, _) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200);
    let (r, _) = c.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 200);
    let anon = h.anon_client(Version::H1);
    let (r, _) = anon.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 401);
    let key = h.api_key();
    let list = h.url("/crm/v3/objects/contacts?limit=5");
    let auth = [("zweck-api-key", key.as_str())];
    let (r, _) = anon.get(&list, &auth).await;
    assert_eq!(r.status(), 200, "the page is cut to the one record left");
    let (r, _) = anon.get(&list, &auth).await;
    assert_eq!(r.status(), 429, "the budget is spent");
    zweck::reload::policies(&h.zweck().state).expect("reload");

    let (status, text) = h.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let version = h.zweck().state.live().policy.version().to_string();
    for line in [
        "zweck_request_duration_seconds_count{upstream=\"salesforce\",class=\"list\",status_class=\"2xx\"} ",
        "zweck_request_duration_seconds_count{upstream=\"salesforce\",class=\"ungoverned\",status_class=\"2xx\"} ",
        "zweck_request_duration_seconds_count{upstream=\"-\",class=\"-\",status_class=\"4xx\"} ",
        "zweck_refusals_total{problem=\"unknown-app\"} 1",
        &format!("zweck_build_info{{version=\"{}\",commit=\"", env!("CARGO_PKG_VERSION")),
        &format!("zweck_policy_info{{version=\"{version}\"}} 1"),
        "zweck_ready 1",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_threads ",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let open = sample(
        &text,
        "zweck_upstream_connections{upstream=\"salesforce\",state=\"open\"}",
    )
    .expect("pool gauge");
    assert!(open >= 1.0, "a pooled connection to the double: {open}");
    assert_eq!(
        sample(
            &text,
            "zweck_upstream_requests_in_flight{upstream=\"salesforce\"}"
        ),
        Some(0.0)
    );
    let expiry = sample(
        &text,
        "zweck_certificate_expiry_seconds{source=\"tls.cert\"",
    )
    .expect("server certificate expiry");
    // dev certificates are valid for two years
    assert!(
        expiry > 300.0 * 86400.0 && expiry < 800.0 * 86400.0,
        "{expiry}"
    );
    assert!(text.contains("zweck_certificate_expiry_seconds{source=\"tls.client_ca\""));
    assert!(text.contains("zweck_certificate_expiry_seconds{source=\"upstreams.salesforce.ca\""));
    assert!(text.trim_end().ends_with("# EOF"));
    // the transfer log's group commit: records durable, and the syncs that made them so
    let appends = sample(&text, "zweck_transfer_log_appends_total ").expect("appends");
    let syncs = sample(&text, "zweck_transfer_log_syncs_total ").expect("syncs");
    assert!(
        appends >= 3.0,
        "two reads and the refusal for the spent budget: {appends}"
    );
    assert!(
        syncs >= 1.0 && syncs <= appends,
        "{syncs} syncs for {appends} appends"
    );
    // one exchange at a time: no batch was ever held back for records that did not come
    let timeouts = sample(&text, "zweck_transfer_log_window_timeouts_total ").expect("timeouts");
    assert_eq!(timeouts, 0.0);

    // every metric Zweck exports is in the operations reference
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .expect("docs");
    let undocumented: Vec<_> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE zweck_"))
        .filter_map(|family| {
            let (name, kind) = family.split_once(' ').expect("# TYPE name kind");
            let row = match kind {
                "counter" => format!("| `zweck_{name}_total` |"),
                _ => format!("| `zweck_{name}` |"),
            };
            (!docs.contains(&row)).then(|| format!("zweck_{name} ({kind})"))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/operations.md does not list {undocumented:?}"
    );

    // every metric the example alert rules name is exported
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/prometheus-alerts.yml"
    ))
    .expect("rules");
    let mut named = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !word.starts_with("zweck_") {
            continue;
        }
        named += 1;
        let family = word.strip_suffix("_total").unwrap_or(word);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "the alert rules name {word}, which Zweck does not export"
        );
    }
    assert!(named >= 7, "{named}");
}

#[test]
fn operations_docs_show_the_alert_rules_as_shipped() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rules =
        std::fs::read_to_string(format!("{root}/docs/prometheus-alerts.yml")).expect("rules");
    let docs = std::fs::read_to_string(format!("{root}/docs/operations.md")).expect("docs");
    assert!(
        docs.contains(&format!("```yaml\n{rules}```")),
        "docs/operations.md must show docs/prometheus-alerts.yml verbatim in a yaml block"
    );
}
