//! `zweck policy test --coverage`: which rules, consent signals and inventory fields no table
//! test exercises, like `opa test --coverage`.
//!
//! A table test exercises what the decision it runs touched: every field decision names the
//! purpose's rule and the inventory entry that classified the value, a record removed for
//! missing consent names the signal. Rules are counted per purpose and key as written
//! (`fields.user.contact.email`, `fields.gdpr.art9`); the consent signals a purpose requires
//! count as rules too. A rule whose categories no inventory field holds cannot be exercised by
//! any test: it is listed as unreachable and left out of the percentage. Fields are counted
//! per inventory entry (`salesforce Contact $.Email`) and reported beside the rules.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use super::set::{PolicySet, Resolved};
use crate::dialect::Dialect;

/// What the table tests touched.
#[derive(Debug, Clone, Default)]
pub struct Exercised {
    /// (purpose, rule id).
    pub rules: BTreeSet<(String, String)>,
    /// (dialect name, inventory entry).
    pub fields: BTreeSet<(String, Arc<str>)>,
}

/// Coverage of a policy set by its table tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    /// Rules (and consent signals) that some test exercised: (purpose, rule id).
    pub rules_hit: Vec<(String, String)>,
    /// Reachable rules no test exercised.
    pub rules_missed: Vec<(String, String)>,
    /// Rules no inventory field can reach (not counted).
    pub unreachable: Vec<(String, String)>,
    pub fields_hit: usize,
    /// Inventory entries no test classified: (dialect, entry).
    pub fields_missed: Vec<(Dialect, String)>,
}

impl Coverage {
    /// Measures what `exercised` covers of `set`.
    pub fn of(set: &PolicySet, exercised: &Exercised) -> Coverage {
        let mut entries = Vec::new();
        let mut dialects: Vec<Dialect> = set.inventories.keys().copied().collect();
        dialects.sort_by_key(ToString::to_string);
        for d in &dialects {
            if let Some(inv) = set.inventory(*d) {
                let mut c = inv.classified();
                c.sort();
                entries.extend(c.into_iter().map(|(s, cat)| (*d, s, cat)));
            }
        }
        let mut out = Coverage::default();
        for p in set.purposes() {
            let mut ids: Vec<String> = Vec::new();
            for r in &p.rules {
                if !ids.iter().any(|i| **i == *r.id) {
                    ids.push(r.id.to_string());
                }
            }
            let reachable: BTreeSet<String> = entries
                .iter()
                .filter_map(|(_, _, cat)| match p.by_cat[*cat as usize] {
                    Resolved::Rule(i) => Some(p.rules[i as usize].id.to_string()),
                    _ => None,
                })
                .collect();
            let consent = p.requires_consent.iter().map(|c| format!("consent.{c}"));
            for id in ids.into_iter().chain(consent) {
                let key = (p.name.clone(), id);
                if exercised.rules.contains(&key) {
                    out.rules_hit.push(key);
                } else if key.1.starts_with("fields.") && !reachable.contains(&key.1) {
                    out.unreachable.push(key);
                } else {
                    out.rules_missed.push(key);
                }
            }
        }
        for (d, source, _) in entries {
            if exercised.fields.contains(&(d.to_string(), source.clone())) {
                out.fields_hit += 1;
            } else {
                out.fields_missed.push((d, source.to_string()));
            }
        }
        out
    }

    /// Exercised rules in percent of the reachable ones (100 when there are none).
    pub fn rules_percent(&self) -> f64 {
        percent(
            self.rules_hit.len(),
            self.rules_hit.len() + self.rules_missed.len(),
        )
    }

    /// Classified fields in percent of the inventory's entries.
    pub fn fields_percent(&self) -> f64 {
        percent(self.fields_hit, self.fields_hit + self.fields_missed.len())
    }
}

fn percent(hit: usize, all: usize) -> f64 {
    if all == 0 {
        100.0
    } else {
        hit as f64 * 100.0 / all as f64
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = self.rules_hit.len() + self.rules_missed.len();
        let fields = self.fields_hit + self.fields_missed.len();
        writeln!(f, "coverage:")?;
        writeln!(
            f,
            "  rules and consent signals: {} of {rules} ({:.1} %)",
            self.rules_hit.len(),
            self.rules_percent()
        )?;
        writeln!(
            f,
            "  inventory fields:          {} of {fields} ({:.1} %)",
            self.fields_hit,
            self.fields_percent()
        )?;
        if !self.rules_missed.is_empty() {
            writeln!(f, "  rules no test exercises:")?;
            for (p, r) in &self.rules_missed {
                writeln!(f, "    {p}: {r}")?;
            }
        }
        if !self.unreachable.is_empty() {
            writeln!(
                f,
                "  rules no inventory field reaches (not counted; no test can exercise them):"
            )?;
            for (p, r) in &self.unreachable {
                writeln!(f, "    {p}: {r}")?;
            }
        }
        if !self.fields_missed.is_empty() {
            writeln!(f, "  fields no test classifies:")?;
            for (d, s) in &self.fields_missed {
                writeln!(f, "    {d} {s}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::testing::run_text;
    use crate::policy::PolicySet;

    const INV: &str = "dialect: salesforce\nresources:\n  Contact:\n    operations: [{ method: GET, path: \"/c\", op: read, class: list }]\n    records: [\"$.records[*]\"]\n    fields:\n      $.Id: system\n      $.Email: user.contact.email\n      $.Phone: user.contact.phone_number\n      $.Opt: user.privacy_preferences\n    consent: { m: { field: $.Opt, granted_when: false } }\n";
    const PURPOSES: &str = "controller: { name: X, jurisdiction: DE }\npurposes:\n  p:\n    data_use: marketing.communications.email\n    legal_basis: consent\n    requires_consent: m\n    fields:\n      user.contact.email: keep\n      user.contact.phone_number: { mask: { keep_last: 2 } }\n      user.financial: keep\n";

    fn case(record: &str) -> String {
        format!("tests:\n  - name: c\n    dialect: salesforce\n    method: GET\n    path: /c\n    purpose: p\n    body: {{ records: [{record}] }}\n    expect: {{}}\n")
    }

    #[test]
    fn names_the_rules_signals_and_fields_no_test_touches() {
        let (set, _) =
            PolicySet::from_texts(&[("purposes.yaml", PURPOSES), ("inventory/sf.yaml", INV)])
                .expect("compiles");
        let report = run_text(
            &set,
            Path::new("t.yaml"),
            &case("{ Id: \"1\", Email: a, Opt: false }"),
        );
        assert!(report.is_ok(), "{report}");
        let c = report.coverage.expect("coverage");
        let hit: Vec<&str> = c.rules_hit.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(hit, ["fields.user.contact.email"]);
        let missed: Vec<&str> = c.rules_missed.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(missed, ["fields.user.contact.phone_number", "consent.m"]);
        assert_eq!(
            c.unreachable,
            [("p".to_string(), "fields.user.financial".to_string())]
        );
        assert!((c.rules_percent() - 100.0 / 3.0).abs() < 1e-9, "{c}");
        assert!(
            c.fields_missed.iter().any(|(_, f)| f == "Contact $.Phone"),
            "{c}"
        );
        let text = c.to_string();
        assert!(text.contains("1 of 3 (33.3 %)"), "{text}");
        // a record removed for missing consent exercises the signal; a masked phone its rule
        let report = run_text(
            &set,
            Path::new("t.yaml"),
            &case(
                "{ Id: \"1\", Email: a, Phone: \"12345\", Opt: false }, { Id: \"2\", Opt: true }",
            ),
        );
        let c = report.coverage.expect("coverage");
        assert!(c.rules_missed.is_empty(), "{c}");
        assert_eq!(c.rules_percent(), 100.0);
    }
}
