//! Onboarding end to end (issue 13): discover the double's Salesforce org through the
//! configured upstream, merge into the shipped inventory without changing it, `policy check`
//! the result, and read the custom object `Invoice__c` through Zweck under a purpose, over
//! real TLS on loopback.

mod common;

use std::path::Path;

use common::{config_text, make_certs, start_double, Harness, Options, Version};
use zweck::config::Config;
use zweck::discover::{self, classify::Certainty, report::Report, yaml};
use zweck::runtime;

fn copy_policies(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::create_dir_all(to.join("inventory")).expect("mkdir");
    std::fs::copy(from.join("purposes.yaml"), to.join("purposes.yaml")).expect("purposes");
    for d in ["salesforce", "hubspot", "dynamics"] {
        let f = format!("inventory/{d}.yaml");
        std::fs::copy(from.join(&f), to.join(&f)).expect("inventory");
    }
}

#[tokio::test]
async fn discover_merge_check_and_govern_the_custom_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let double = start_double(dir.path(), 40).await;
    let mut opts = Options::new(double.addr.port(), dir.path());
    opts.policies = policies.clone();
    let config = Config::parse(
        &dir.path().join("zweck.yaml"),
        &config_text(dir.path(), &opts),
    )
    .expect("config");

    // discover through the upstream (its TLS trust and its bearer token)
    let found = discover::discover(
        &config.upstreams,
        "salesforce",
        &discover::Options::default(),
    )
    .await
    .expect("discovered");
    let names: Vec<&str> = found.objects.iter().map(|o| o.name.as_str()).collect();
    assert!(
        names.contains(&"Invoice__c") && names.contains(&"Contact"),
        "{names:?}"
    );
    let classified = yaml::classify_all(&found);
    let contact = classified
        .iter()
        .find(|c| c.object.name == "Contact")
        .expect("contact");
    let of = |path: &str| {
        contact
            .fields
            .iter()
            .find(|(f, _)| f.path == path)
            .map(|(_, s)| s.clone())
            .expect(path)
    };
    let email = of("$.Email");
    assert_eq!(email.category, "user.contact.email");
    assert_eq!(email.certainty, Certainty::Certain);
    assert!(email
        .reasons
        .contains(&"ComplianceGroup PII;GDPR".to_string()));
    let allergies = of("$.Allergies__c");
    assert_eq!(allergies.category, "user.health_and_medical");
    assert!(allergies.special);
    assert_eq!(of("$.Notes__c").category, "unclassified");

    // merge: nothing existing changes, the new fields and the custom object are added
    let inventory = policies.join("inventory/salesforce.yaml");
    let before = std::fs::read_to_string(&inventory).expect("read");
    let (merged, outcome) = yaml::merge(&before, &found, &classified).expect("merge");
    assert!(outcome.added_objects.contains(&"Invoice__c".to_string()));
    assert!(outcome
        .added_fields
        .contains(&"Contact $.Allergies__c".to_string()));
    let mut rest = merged.lines();
    for line in before.lines() {
        assert!(
            rest.any(|l| l == line),
            "existing line changed or moved: {line}"
        );
    }
    assert!(merged.contains("$.Notes__c: unclassified  # new, review: free text"));
    std::fs::write(&inventory, &merged).expect("write");
    let report = Report::new(&found, &classified, Some(outcome));
    assert!(report.special.iter().any(|f| f.path == "$.Allergies__c"));
    assert!(report.markdown().contains("GDPR Art. 9 suspects"));

    // the result passes the policy checker
    let check = zweck::policy::check(&policies);
    assert!(check.is_ok(), "{check}");

    // a governed read of the custom object under `billing`: contact data and the bank
    // account pass (user.contact, user.financial), the unreviewed amount is dropped
    let zweck = runtime::start(config).await.expect("zweck starts");
    let h = Harness {
        dir,
        double,
        zweck: Some(zweck),
    };
    let support = h.cert_client("support-desk", Version::H1);
    let (r, body) = support
        .get(
            &h.url("/services/data/v66.0/sobjects/Invoice__c/a0IFict00000004AAA"),
            &[("zweck-purpose", "billing")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body));
    let record: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert!(record["Billing_Email__c"]
        .as_str()
        .is_some_and(|e| e.contains('@')));
    assert!(record["IBAN__c"].is_string(), "{record}");
    assert!(record.get("Amount__c").is_none(), "{record}");
    assert_eq!(record["Id"], "a0IFict00000004AAA");

    // the same object through SOQL (`type_key` picks the discovered resource)
    let (r, body) = support
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id,Billing_Email__c,Amount__c+FROM+Invoice__c+LIMIT+5"),
            &[("zweck-purpose", "billing")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body));
    let page: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let rows = page["records"].as_array().expect("records");
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.get("Amount__c").is_none()));

    // the health field stays away from billing (user.demographic is dropped, health is not
    // granted: `otherwise: drop`)
    let (r, body) = support
        .get(
            &h.url("/services/data/v66.0/sobjects/Contact/003Fict00000001AAA"),
            &[("zweck-purpose", "billing")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let contact: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert!(contact.get("Allergies__c").is_none(), "{contact}");
    assert!(contact.get("Notes__c").is_none(), "{contact}");
}

#[tokio::test]
async fn hubspot_and_dataverse_discovery_read_sensitive_properties_and_custom_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let double = start_double(dir.path(), 10).await;
    let config = Config::parse(
        &dir.path().join("zweck.yaml"),
        &config_text(dir.path(), &Options::new(double.addr.port(), dir.path())),
    )
    .expect("config");

    let hs = discover::discover(&config.upstreams, "hubspot", &discover::Options::default())
        .await
        .expect("hubspot");
    let invoices = hs
        .objects
        .iter()
        .find(|o| o.name == "invoices")
        .expect("custom object from /crm/v3/schemas");
    assert!(invoices.custom && invoices.route_names.contains(&"2-7654321".to_string()));
    let classified = yaml::classify_all(&hs);
    let contacts = classified
        .iter()
        .find(|c| c.object.name == "contacts")
        .expect("contacts");
    let (_, allergies) = contacts
        .fields
        .iter()
        .find(|(f, _)| f.name == "allergies")
        .expect("the highly sensitive property, read with dataSensitivity=highly_sensitive");
    assert_eq!(allergies.category, "user.health_and_medical");
    assert_eq!(allergies.certainty, Certainty::Certain);
    assert!(allergies
        .reasons
        .contains(&"HubSpot highly_sensitive: HEALTH".to_string()));
    let text = yaml::render(&hs, &classified);
    check_alone(dir.path(), "hubspot", &text);

    let dv = discover::discover(&config.upstreams, "dynamics", &discover::Options::default())
        .await
        .expect("dynamics");
    let names: Vec<&str> = dv.objects.iter().map(|o| o.name.as_str()).collect();
    assert!(
        names.contains(&"cr123_invoice") && names.contains(&"contact"),
        "{names:?}"
    );
    let classified = yaml::classify_all(&dv);
    let text = yaml::render(&dv, &classified);
    assert!(text.contains("$.emailaddress1: user.contact.email  # type String/Email"));
    assert!(text.contains("$._cr123_contactid_value: system"));
    check_alone(dir.path(), "dynamics", &text);

    // a fresh Salesforce inventory: relationships become children, and it passes the checker
    let sf = discover::discover(
        &config.upstreams,
        "salesforce",
        &discover::Options::default(),
    )
    .await
    .expect("salesforce");
    let text = yaml::render(&sf, &yaml::classify_all(&sf));
    assert!(text.contains("      $.Cases.records[*]: Case\n"), "{text}");
    assert!(text.contains("      $.Contact__r: Contact\n"));
    check_alone(dir.path(), "salesforce", &text);

    // --objects narrows; an unknown name is an error, not an empty inventory
    let only = discover::Options {
        objects: Some(vec!["Contact".into()]),
    };
    let sf = discover::discover(&config.upstreams, "salesforce", &only)
        .await
        .expect("salesforce");
    assert_eq!(sf.objects.len(), 1);
    let unknown = discover::Options {
        objects: Some(vec!["Nope__c".into()]),
    };
    let err = discover::discover(&config.upstreams, "salesforce", &unknown)
        .await
        .expect_err("unknown object");
    assert!(err.to_string().contains("Nope__c"));
    let err = discover::discover(&config.upstreams, "nope", &only)
        .await
        .expect_err("unknown upstream");
    assert!(err.to_string().contains("no upstream named `nope`"));
}

/// A freshly discovered inventory, alone with the shipped purposes, passes `policy check`.
fn check_alone(dir: &Path, dialect: &str, text: &str) {
    let policies = dir.join(format!("policies-{dialect}"));
    std::fs::create_dir_all(policies.join("inventory")).expect("mkdir");
    std::fs::write(policies.join(format!("inventory/{dialect}.yaml")), text).expect("write");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/purposes.yaml"),
        policies.join("purposes.yaml"),
    )
    .expect("purposes");
    let check = zweck::policy::check(&policies);
    assert!(check.is_ok(), "{dialect}:\n{check}\n{text}");
}

/// The code block that follows `marker` in docs/onboarding.md.
fn doc_block_after(doc: &str, marker: &str) -> String {
    let at = doc.find(marker).expect(marker);
    let rest = &doc[at + marker.len()..];
    let start = rest.find("```\n").expect("a block") + 4;
    let end = rest[start..].find("```").expect("block end") + start;
    rest[start..end].to_string()
}

/// docs/onboarding.md quotes the commands and what they print: both are run here, against
/// the double, with the binary users run.
#[tokio::test]
async fn onboarding_doc_commands_run_and_print_what_the_doc_says() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/onboarding.md"))
        .expect("docs/onboarding.md");
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let double = start_double(dir.path(), 40).await;
    let mut opts = Options::new(double.addr.port(), dir.path());
    opts.policies = policies.clone();
    std::fs::write(
        dir.path().join("zweck.yaml"),
        config_text(dir.path(), &opts),
    )
    .expect("config");

    for (command, printed) in [
        ("## 2. Discover", "prints\n"),
        ("## 5. Keep the inventory current: merge", "prints\n"),
    ] {
        let section = &doc[doc.find(command).expect(command)..];
        let block = doc_block_after(section, "");
        let line = block.trim().to_string();
        assert!(line.starts_with("zweck inventory discover "), "{line}");
        let expected = doc_block_after(section, printed);
        let args: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect();
        let dir_path = dir.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_zweck"))
                .args(args)
                .current_dir(dir_path)
                .output()
                .expect("zweck runs")
        })
        .await
        .expect("joined");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{line}");
    }
    let written =
        std::fs::read_to_string(dir.path().join("discovered/salesforce.yaml")).expect("written");
    let yaml_at = doc.find("```yaml\n").expect("a yaml block") + 8;
    let yaml_end = doc[yaml_at..].find("```").expect("end") + yaml_at;
    for quoted in doc[yaml_at..yaml_end].lines() {
        assert!(
            written.contains(quoted),
            "the doc quotes a line discovery does not write: {quoted}"
        );
    }
    assert!(zweck::policy::check(&policies).is_ok());
}

/// `--sample N` reads records and runs detectors, and nothing of a value leaves the process:
/// everything printed and logged (at trace level) and every file written is checked for the
/// values the double holds in the sampled fields.
#[tokio::test]
async fn sampling_prints_counts_and_names_never_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let double = start_double(dir.path(), 20).await;
    let opts = Options::new(double.addr.port(), dir.path());
    std::fs::write(
        dir.path().join("zweck.yaml"),
        config_text(dir.path(), &opts),
    )
    .expect("config");
    let mut values: Vec<String> = Vec::new();
    for (dialect, fields) in [
        (
            zweck::dialect::Dialect::Salesforce,
            vec![
                "Notes__c",
                "Preferred_Store__c",
                "Ext_Id__c",
                "Email",
                "Allergies__c",
            ],
        ),
        (
            zweck::dialect::Dialect::HubSpot,
            vec!["notes", "preferred_store", "email", "allergies"],
        ),
    ] {
        for i in 0..20 {
            let c = double.double.contact(dialect, i);
            let record = c.get("properties").unwrap_or(&c);
            for f in &fields {
                if let Some(v) = record[*f].as_str() {
                    values.push(v.to_string());
                }
            }
        }
    }
    assert!(
        values.iter().any(|v| v.contains('@')),
        "the fixture quotes e-mails"
    );
    for upstream in ["salesforce", "hubspot"] {
        let cwd = dir.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_zweck"))
                .args([
                    "inventory",
                    "discover",
                    "--config",
                    "zweck.yaml",
                    "--upstream",
                    upstream,
                    "--sample",
                    "20",
                    "--out",
                    &format!("sampled/{upstream}.yaml"),
                ])
                .env("RUST_LOG", "trace")
                .current_dir(cwd)
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
        let mut everything = String::from_utf8_lossy(&out.stdout).to_string();
        everything.push_str(&String::from_utf8_lossy(&out.stderr));
        for ext in ["yaml", "review.md", "review.json"] {
            everything.push_str(
                &std::fs::read_to_string(dir.path().join(format!("sampled/{upstream}.{ext}")))
                    .expect("written"),
            );
        }
        for v in &values {
            assert!(
                !everything.contains(v.as_str()),
                "{upstream}: a sampled value leaked"
            );
        }
        // the detectors found what the free text holds, as counts
        let yaml = std::fs::read_to_string(dir.path().join(format!("sampled/{upstream}.yaml")))
            .expect("yaml");
        let notes = yaml
            .lines()
            .find(|l| l.contains("Notes__c:") || l.contains("properties.notes:"))
            .expect("notes line");
        assert!(
            notes.contains("unclassified  # review: free text"),
            "{notes}"
        );
        // counts of the non-empty values sampled: `sample: 4/15 e-mail, 3/15 phone`
        let sample = notes.split("sample: ").nth(1).expect("sample evidence");
        assert!(
            sample.contains(" e-mail") && sample.contains(" phone"),
            "{notes}"
        );
    }
}
