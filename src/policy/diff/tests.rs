use std::path::Path;

use super::*;
use crate::policy::compile::{compile, read_dir, Source};

fn shipped_sources() -> Vec<Source> {
    read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("shipped")
}

fn set(sources: &[Source]) -> PolicySet {
    match compile(sources) {
        Ok((s, _)) => s,
        Err(e) => panic!("{e:?}"),
    }
}

/// The shipped sources with `edit` applied to one file.
fn edited(rel: &str, edit: impl Fn(&str) -> String) -> Vec<Source> {
    let mut sources = shipped_sources();
    let s = sources.iter_mut().find(|s| s.rel == rel).expect(rel);
    let text = String::from_utf8(s.bytes.clone()).expect("utf8");
    let new = edit(&text);
    assert_ne!(text, new, "the edit changed {rel}");
    s.bytes = new.into_bytes();
    sources
}

fn find<'a>(d: &'a PolicyDiff, purpose: &str, aspect: &str, at: &str) -> &'a Difference {
    d.differences
        .iter()
        .find(|x| x.purpose == purpose && x.aspect == aspect && x.at.contains(at))
        .unwrap_or_else(|| panic!("no {purpose} {aspect} {at} in\n{d}"))
}

#[test]
fn the_same_policies_differ_in_nothing() {
    let a = set(&shipped_sources());
    let d = diff(&a, &a);
    assert!(d.differences.is_empty(), "{d}");
    assert!(!d.gains_exposure());
    assert!(d.to_string().contains("no change"));
}

#[test]
fn exposure_gains_are_named_per_purpose_field_and_setting() {
    let old = set(&shipped_sources());
    let new = set(&edited("purposes.yaml", |t| {
        t.replacen(
            "      user.name.first: keep\n",
            "      user.name.first: keep\n      user.contact.phone_number: keep\n",
            1,
        )
        .replacen(
            "    requires_consent: marketing_email          # records without it are removed\n",
            "",
            1,
        )
        .replacen(
            "    writes: deny\n    export_budget: { records: 50000",
            "    writes: allow\n    export_budget: { records: 90000",
            1,
        )
        .replacen(
            "      user.contact.address.postal_code: { truncate: 2 }\n      gdpr.art9",
            "      user.contact.address.postal_code: { truncate: 3 }\n      gdpr.art9",
            1,
        )
    }));
    let d = diff(&old, &new);
    let phone = find(
        &d,
        "newsletter",
        "field",
        "salesforce Contact $.MobilePhone",
    );
    assert_eq!(
        (phone.old.as_str(), phone.new.as_str(), phone.change),
        ("drop", "keep", Change::Gain)
    );
    assert_eq!(phone.category.as_deref(), Some("user.contact.phone_number"));
    let zip = find(
        &d,
        "newsletter",
        "field",
        "salesforce Contact $.MailingPostalCode",
    );
    assert_eq!(
        (zip.old.as_str(), zip.new.as_str(), zip.change),
        ("truncate 2", "truncate 3", Change::Gain)
    );
    assert_eq!(
        find(&d, "newsletter", "consent", "marketing_email").change,
        Change::Gain
    );
    assert_eq!(find(&d, "newsletter", "writes", "").change, Change::Gain);
    assert_eq!(
        find(&d, "newsletter", "budget", "total").change,
        Change::Gain
    );
    assert!(d.gains_exposure());
    // other purposes are untouched
    assert!(
        d.differences.iter().all(|x| x.purpose == "newsletter"),
        "{d}"
    );
    // and the reverse is a loss everywhere
    let back = diff(&new, &old);
    assert!(!back.gains_exposure(), "{back}");
    assert_eq!(back.count(Change::Loss), d.count(Change::Gain), "{back}");
}

#[test]
fn inventory_changes_show_as_routes_and_newly_classified_fields() {
    let old = set(&shipped_sources());
    let new = set(&edited("inventory/salesforce.yaml", |t| {
        t.replacen("      $.HomePhone: user.contact.phone_number\n", "", 1)
            .replacen(
                "ungoverned:\n",
                "ungoverned:\n  - GET /services/data/*/sobjects/Contact/describe\n",
                1,
            )
    }));
    let d = diff(&old, &new);
    let u = find(
        &d,
        "",
        "ungoverned",
        "GET /services/data/*/sobjects/Contact/describe",
    );
    assert_eq!(u.change, Change::Gain);
    // support kept phone numbers; unclassified, HomePhone meets otherwise: redact
    let home = find(&d, "support", "field", "salesforce Contact $.HomePhone");
    assert_eq!(
        (home.old.as_str(), home.new.as_str(), home.change),
        ("keep", "redact", Change::Loss)
    );
    assert_eq!(home.category.as_deref(), Some("unclassified"));
}

#[test]
fn shadow_mode_and_a_new_purpose_gain_exposure_and_render_as_markdown() {
    let old = set(&shipped_sources());
    let new = set(&edited("purposes.yaml", |t| {
        t.replacen("    otherwise: drop\n    writes: deny\n    export_budget: { records: 1000000", "    otherwise: drop\n    writes: deny\n    mode: shadow\n    export_budget: { records: 1000000", 1)
            + "\n  audit-desk:\n    data_use: essential.legal_obligation\n    legal_basis: legal_obligation\n    fields: { user.name: keep }\n"
    }));
    let d = diff(&old, &new);
    assert_eq!(find(&d, "analytics", "mode", "").change, Change::Gain);
    assert_eq!(find(&d, "audit-desk", "purpose", "").change, Change::Gain);
    let name = find(&d, "audit-desk", "field", "salesforce Contact $.LastName");
    assert_eq!(
        (name.old.as_str(), name.new.as_str()),
        ("no purpose", "keep")
    );
    let md = d.markdown();
    assert!(md.starts_with("### Zweck policy diff"), "{md}");
    assert!(md.contains("| `analytics` | mode |"), "{md}");
    assert!(md.contains("**gains exposure**"), "{md}");
    let json = serde_json::to_value(&d).expect("json");
    assert!(json["differences"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert_eq!(json["differences"][0]["change"], "gain");
}

/// `on_anomaly` is the purpose's response to an incident: weakening it (block -> alert) lets
/// a leaked key take more before it is stopped, so it gains exposure; strengthening loses it.
#[test]
fn a_weaker_incident_response_gains_exposure() {
    let alert = set(&shipped_sources());
    for (response, then) in [
        ("throttle", "alert"),
        ("block", "alert"),
        ("block", "throttle"),
    ] {
        let stronger = set(&edited("purposes.yaml", |t| {
            t.replacen(
                "    requires_consent: marketing_email ",
                &format!("    on_anomaly: {response}\n    requires_consent: marketing_email "),
                1,
            )
        }));
        let weaker = if then == "alert" {
            set(&shipped_sources())
        } else {
            set(&edited("purposes.yaml", |t| {
                t.replacen(
                    "    requires_consent: marketing_email ",
                    &format!("    on_anomaly: {then}\n    requires_consent: marketing_email "),
                    1,
                )
            }))
        };
        let d = diff(&stronger, &weaker);
        let row = find(&d, "newsletter", "on_anomaly", "");
        assert_eq!(
            (row.old.as_str(), row.new.as_str(), row.change),
            (response, then, Change::Gain),
            "{d}"
        );
        assert!(d.gains_exposure());
        assert_eq!(d.differences.len(), 1, "{d}");
        let back = diff(&weaker, &stronger);
        assert_eq!(
            find(&back, "newsletter", "on_anomaly", "").change,
            Change::Loss
        );
        assert!(!back.gains_exposure(), "{back}");
    }
    assert!(diff(&alert, &alert).differences.is_empty());
}
