//! Purposes: `purposes.yaml` becomes the controller and one [`Purpose`] per entry, with every
//! category of the taxonomy resolved once to the rule that governs it.
//!
//! [`compile_all`] reads the file; [`PurposeFile::purpose`] compiles one purpose in the order
//! its diagnostics read: data use, legal basis, consent signals, field rules (and the ones
//! that change nothing), `otherwise`, `writes`, `mode`, `counts`, `export_budget`.

use std::path::Path;

use serde_json::Value;

use super::inventory::Signals;
use super::{category, compile_budget, did_you_mean, parse_action, parse_yaml, Source};
use crate::policy::diagnostic::{Diags, Severity};
use crate::policy::model::{RawPurpose, RawPurposes, SpStr};
use crate::policy::set::{
    Action, Controller, Counts, ExportBudget, FieldRule, LegalBasis, Mode, Purpose, Resolved,
    Writes,
};
use crate::policy::taxonomy::{CatId, Taxonomy, UNCLASSIFIED};

/// Compiles `purposes.yaml` from `sources`: the controller (None when the file is missing
/// or unreadable, both reported) and every purpose that compiled without error.
pub(super) fn compile_all(
    sources: &[Source],
    tax: &Taxonomy,
    signals: &Signals,
    diags: &mut Diags,
) -> (Option<Controller>, Vec<Purpose>) {
    let Some(src) = sources.iter().find(|s| s.rel == "purposes.yaml") else {
        diags.error(Path::new("purposes.yaml"), None, "missing purposes.yaml");
        return (None, Vec::new());
    };
    let Some(raw) = parse_yaml::<RawPurposes>(src, diags) else {
        return (None, Vec::new());
    };
    let controller = Controller {
        name: raw.controller.name.clone(),
        jurisdiction: raw.controller.jurisdiction.clone(),
        contact: raw.controller.contact.clone(),
    };
    let file = PurposeFile { src, tax, signals };
    let purposes = raw
        .purposes
        .iter()
        .filter_map(|(name, p)| file.purpose(name, p, diags))
        .collect();
    (Some(controller), purposes)
}

/// What compiling the purposes of `purposes.yaml` reads.
struct PurposeFile<'a> {
    src: &'a Source,
    tax: &'a Taxonomy,
    signals: &'a Signals,
}

type Location = serde_saphyr::Location;

impl PurposeFile<'_> {
    fn error(&self, diags: &mut Diags, at: &Location, message: impl Into<String>) {
        diags.error(&self.src.display, Some(at), message);
    }

    fn warn(&self, diags: &mut Diags, at: &Location, message: impl Into<String>) {
        diags.warn(&self.src.display, Some(at), message);
    }

    /// Compiles the purpose `name`: None when it has an error (every one is reported).
    fn purpose(&self, name: &SpStr, raw: &RawPurpose, diags: &mut Diags) -> Option<Purpose> {
        let errors_before = diags.list.len();
        if raw.data_use.value.trim().is_empty() {
            self.error(diags, &raw.data_use.referenced, "data_use is empty");
        }
        let legal_basis = self.legal_basis(raw, diags);
        let requires_consent = self.requires_consent(name, raw, legal_basis, diags);
        let rules = self.rules(raw, diags);
        self.warn_shadowed(raw, &rules, diags);
        let otherwise = self.otherwise(raw, diags);
        let writes = self.writes(raw, diags);
        if writes == Writes::Allow {
            self.warn_unwritable(raw, &rules, diags);
        }
        let silent_writes = self.silent_writes(raw, writes, diags);
        let mode = self.mode(raw, diags);
        let counts = self.counts(raw, &requires_consent, diags);
        let export_budget = self.export_budget(raw, diags);
        let has_new_errors = diags.list[errors_before..]
            .iter()
            .any(|d| d.severity == Severity::Error);
        if has_new_errors {
            return None;
        }
        let by_cat = resolve_categories(self.tax, &rules);
        let rule_ids = Purpose::rule_id_table(&rules, &requires_consent);
        Some(Purpose {
            name: name.value.clone(),
            description: raw.description.clone(),
            data_use: raw.data_use.value.clone(),
            legal_basis,
            requires_consent,
            rules,
            otherwise,
            writes,
            silent_writes,
            export_budget,
            mode,
            counts,
            by_cat,
            rule_ids,
        })
    }

    /// `counts:` pass, delivered or drop. Unset, a purpose that withholds records (it needs
    /// consent) gets `delivered`, so a count never tells it how many it did not get; one
    /// that gets every record keeps the CRM's count (`pass`), which then reveals nothing.
    fn counts(&self, raw: &RawPurpose, requires_consent: &[String], diags: &mut Diags) -> Counts {
        match &raw.counts {
            None if requires_consent.is_empty() => Counts::Pass,
            None => Counts::Delivered,
            Some(c) => Counts::from_name(&c.value).unwrap_or_else(|| {
                self.error(
                    diags,
                    &c.referenced,
                    format!("counts is pass, delivered or drop, not `{}`", c.value),
                );
                Counts::Delivered
            }),
        }
    }

    /// `legal_basis:`, one of GDPR Art. 6's names.
    fn legal_basis(&self, raw: &RawPurpose, diags: &mut Diags) -> LegalBasis {
        let basis = &raw.legal_basis;
        LegalBasis::from_name(&basis.value).unwrap_or_else(|| {
            let hint = did_you_mean(&basis.value, LegalBasis::NAMES.iter().copied());
            self.error(
                diags,
                &basis.referenced,
                format!("unknown legal basis `{}`{hint}", basis.value),
            );
            LegalBasis::Consent
        })
    }

    /// `requires_consent:`, a signal or a list of them, each defined by some inventory; a
    /// record resource without the signal is warned about (the purpose never sees it), and so
    /// is a consent-based purpose that names no signal.
    fn requires_consent(
        &self,
        name: &SpStr,
        raw: &RawPurpose,
        legal_basis: LegalBasis,
        diags: &mut Diags,
    ) -> Vec<String> {
        let mut requires_consent = Vec::new();
        let Some(rc) = &raw.requires_consent else {
            if legal_basis == LegalBasis::Consent {
                self.warn(
                    diags,
                    &raw.legal_basis.referenced,
                    format!(
                        "purpose `{}` relies on consent but names no `requires_consent` signal",
                        name.value
                    ),
                );
            }
            return requires_consent;
        };
        let list: Vec<Option<String>> = match &rc.value {
            Value::String(s) => vec![Some(s.clone())],
            Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
            _ => vec![None],
        };
        let defined = &self.signals.defined;
        for c in list {
            match c {
                None => self.error(
                    diags,
                    &rc.referenced,
                    "requires_consent is a name or a list of names",
                ),
                Some(c) if !defined.contains(&c) => {
                    let hint = did_you_mean(&c, defined.iter().map(String::as_str));
                    self.error(
                        diags,
                        &rc.referenced,
                        format!("no inventory defines the consent signal `{c}`{hint}"),
                    );
                }
                Some(c) => {
                    for (res, has) in &self.signals.by_resource {
                        if !has.contains(&c) {
                            self.warn(
                                diags,
                                &rc.referenced,
                                format!(
                                    "resource {res} has no consent signal `{c}`: purpose `{}` never sees its records",
                                    name.value
                                ),
                            );
                        }
                    }
                    requires_consent.push(c);
                }
            }
        }
        requires_consent
    }

    /// `fields:`, a rule per data category.
    fn rules(&self, raw: &RawPurpose, diags: &mut Diags) -> Vec<FieldRule> {
        let mut rules: Vec<FieldRule> = Vec::new();
        for (cat, action) in raw.fields.iter() {
            if cat.value == UNCLASSIFIED {
                self.error(
                    diags,
                    &cat.referenced,
                    "`unclassified` follows `otherwise`; a resource may keep it with `unclassified: keep`",
                );
                continue;
            }
            let Some(c) = category(self.src, cat, self.tax, diags) else {
                continue;
            };
            match parse_action(&action.value) {
                Ok(a) => rules.push(FieldRule {
                    category: cat.value.clone(),
                    cat: c,
                    action: a,
                    id: format!("fields.{}", cat.value).into(),
                }),
                Err(m) => self.error(diags, &action.referenced, format!("{}: {m}", cat.value)),
            }
        }
        rules
    }

    /// Warns about redundant (shadowed) rules: a sub-category that repeats its nearest
    /// ancestor's rule.
    fn warn_shadowed(&self, raw: &RawPurpose, rules: &[FieldRule], diags: &mut Diags) {
        for (i, r) in rules.iter().enumerate() {
            let parent_rule = self
                .tax
                .lineage(r.cat)
                .skip(1)
                .find_map(|p| rules.iter().find(|x| x.cat == p));
            let Some(p) = parent_rule.filter(|p| p.action == r.action) else {
                continue;
            };
            if let Some((k, _)) = raw.fields.0.get(i) {
                self.warn(
                    diags,
                    &k.referenced,
                    format!(
                        "rule for `{}` repeats the rule for `{}` and changes nothing",
                        r.category, p.category
                    ),
                );
            }
        }
    }

    /// `otherwise:`, what unclassified data meets: drop (the default), redact or block.
    fn otherwise(&self, raw: &RawPurpose, diags: &mut Diags) -> Action {
        let Some(o) = &raw.otherwise else {
            return Action::Drop;
        };
        match o.value.as_str() {
            "drop" => Action::Drop,
            "redact" => Action::Redact(None),
            "block" => Action::Block,
            "keep" => {
                self.error(diags, &o.referenced, "otherwise is never keep: unclassified data must not flow (drop, redact or block)");
                Action::Drop
            }
            other => {
                self.error(
                    diags,
                    &o.referenced,
                    format!("unknown otherwise `{other}` (drop, redact or block)"),
                );
                Action::Drop
            }
        }
    }

    /// `writes:` allow or deny (the default).
    fn writes(&self, raw: &RawPurpose, diags: &mut Diags) -> Writes {
        let Some(w) = &raw.writes else {
            return Writes::Deny;
        };
        match w.value.as_str() {
            "allow" => Writes::Allow,
            "deny" => Writes::Deny,
            other => {
                self.error(
                    diags,
                    &w.referenced,
                    format!("writes is allow or deny, not `{other}`"),
                );
                Writes::Deny
            }
        }
    }

    /// `silent_write_minimisation:`, resources whose writes may lose fields without being
    /// refused; each must name a record resource of some inventory.
    fn silent_writes(&self, raw: &RawPurpose, writes: Writes, diags: &mut Diags) -> Vec<String> {
        let Some(list) = &raw.silent_write_minimisation else {
            return Vec::new();
        };
        if writes == Writes::Deny {
            self.warn(
                diags,
                &list.referenced,
                "silent_write_minimisation has no effect: this purpose may not write",
            );
        }
        let known: Vec<&str> = self
            .signals
            .by_resource
            .iter()
            .filter_map(|(r, _)| r.split_once('/').map(|(_, name)| name))
            .collect();
        let mut out = Vec::new();
        for name in &list.value {
            if known.contains(&name.value.as_str()) {
                if !out.contains(&name.value) {
                    out.push(name.value.clone());
                }
            } else {
                let hint = did_you_mean(&name.value, known.iter().copied());
                self.error(
                    diags,
                    &name.referenced,
                    format!("no inventory has a resource `{}`{hint}", name.value),
                );
            }
        }
        out
    }

    /// Warns about the rules a purpose that writes cannot apply to writes.
    fn warn_unwritable(&self, raw: &RawPurpose, rules: &[FieldRule], diags: &mut Diags) {
        for (i, r) in rules.iter().enumerate() {
            if r.action.allowed_on_writes() {
                continue;
            }
            if let Some((k, _)) = raw.fields.0.get(i) {
                self.warn(
                    diags,
                    &k.referenced,
                    format!(
                        "writes carrying `{}` will be refused: only keep, drop and block apply to writes",
                        r.category
                    ),
                );
            }
        }
    }

    /// `mode:` enforce (the default) or shadow.
    fn mode(&self, raw: &RawPurpose, diags: &mut Diags) -> Mode {
        let Some(m) = &raw.mode else {
            return Mode::Enforce;
        };
        match m.value.as_str() {
            "enforce" => Mode::Enforce,
            "shadow" => Mode::Shadow,
            other => {
                self.error(
                    diags,
                    &m.referenced,
                    format!("mode is enforce or shadow, not `{other}`"),
                );
                Mode::Enforce
            }
        }
    }

    /// `export_budget:`, if any.
    fn export_budget(&self, raw: &RawPurpose, diags: &mut Diags) -> Option<ExportBudget> {
        let b = raw.export_budget.as_ref()?;
        match compile_budget(&b.value, true) {
            Ok(budget) => Some(budget),
            Err(m) => {
                self.error(diags, &b.referenced, format!("export_budget: {m}"));
                None
            }
        }
    }
}

/// For every category of the taxonomy, the rule of it or of its nearest ancestor; failing
/// that, system categories are kept and the rest meet `otherwise`.
fn resolve_categories(tax: &Taxonomy, rules: &[FieldRule]) -> Vec<Resolved> {
    (0..tax.len())
        .map(|c| {
            let c = c as CatId;
            for l in tax.lineage(c) {
                if let Some(i) = rules.iter().position(|r| r.cat == l) {
                    return Resolved::Rule(i as u16);
                }
            }
            if tax.is_system(c) {
                Resolved::System
            } else {
                Resolved::Otherwise
            }
        })
        .collect()
}
