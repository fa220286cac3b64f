//! Purposes: `purposes.yaml` becomes the controller and one [`Purpose`] per entry, with every
//! category of the taxonomy resolved once to the rule that governs it.
//!
//! [`compile_all`] reads the file (the controller, your own data uses, named groups of
//! categories); [`PurposeFile::purpose`] compiles one purpose in the order its diagnostics
//! read: data use, legal basis, consent signals, field rules (a group's rule applies to each
//! of its categories; the ones that change nothing are warned about), `otherwise`, `writes`,
//! `mode`, `counts`, `export_budget`, and last the GDPR Art. 9 and 10 categories the rules let flow.

use std::path::Path;

use serde_json::Value;

use std::collections::BTreeSet;

use super::inventory::Signals;
use super::{category, compile_budget, did_you_mean, duplicates, parse_action, parse_yaml, Source};
use crate::policy::diagnostic::{Diags, Severity};
use crate::policy::lookup::ValueMap;
use crate::policy::model::{OrderedMap, RawPurpose, RawPurposes, SpStr};
use crate::policy::set::{
    Action, Art9Condition, Controller, Counts, ExportBudget, FieldRule, LegalBasis, Mode, Purpose,
    Resolved, Writes,
};
use crate::policy::taxonomy::{self, CatId, Taxonomy, GDPR_ART10, GDPR_ART9, UNCLASSIFIED};

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
    duplicates(src, &raw.purposes, "purpose", diags);
    duplicates(src, &raw.groups, "group", diags);
    let data_uses = data_uses(src, &raw.data_uses, diags);
    let groups = groups(src, &raw.groups, tax, diags);
    let file = PurposeFile {
        src,
        sources,
        tax,
        signals,
        data_uses,
        groups,
    };
    let purposes = raw
        .purposes
        .iter()
        .filter_map(|(name, p)| file.purpose(name, p, diags))
        .collect();
    (Some(controller), purposes)
}

/// The standard fideslang data uses and the file's own `data_uses:` (each under a standard
/// parent, so tools that know only fideslang still place it).
fn data_uses(src: &Source, own: &[SpStr], diags: &mut Diags) -> BTreeSet<String> {
    let mut all: BTreeSet<String> = taxonomy::data_uses().map(str::to_string).collect();
    for u in own {
        let parent = u.value.rsplit_once('.').map(|(p, _)| p);
        match parent {
            Some(p) if all.contains(p) => {
                all.insert(u.value.clone());
            }
            _ => diags.error(
                &src.display,
                Some(&u.referenced),
                format!(
                    "data use `{}` must extend a fideslang data use (e.g. `essential.service.{}`)",
                    u.value,
                    u.value.rsplit('.').next().unwrap_or("")
                ),
            ),
        }
    }
    all
}

/// A group of categories a purpose's rule can name: built in (`gdpr.art9`, `gdpr.art10`) or
/// from `groups:`.
#[derive(Debug, Clone)]
struct Group {
    name: String,
    cats: Vec<CatId>,
}

/// The built-in groups and the file's own, whose names may be neither categories nor
/// built-in group names.
fn groups(
    src: &Source,
    own: &OrderedMap<SpStr, Vec<SpStr>>,
    tax: &Taxonomy,
    diags: &mut Diags,
) -> Vec<Group> {
    let mut out: Vec<Group> = taxonomy::GROUPS
        .iter()
        .map(|g| Group {
            name: g.name.to_string(),
            cats: g.categories.iter().filter_map(|c| tax.get(c)).collect(),
        })
        .collect();
    for (name, members) in own.iter() {
        if tax.get(&name.value).is_some() || taxonomy::GROUPS.iter().any(|g| g.name == name.value) {
            diags.error(
                &src.display,
                Some(&name.referenced),
                format!(
                    "group `{}` has the name of a category or a built-in group",
                    name.value
                ),
            );
            continue;
        }
        let cats: Vec<CatId> = members
            .iter()
            .filter_map(|m| category(src, m, tax, diags))
            .collect();
        if members.is_empty() {
            diags.error(
                &src.display,
                Some(&name.referenced),
                format!("group `{}` is empty", name.value),
            );
        }
        out.push(Group {
            name: name.value.clone(),
            cats,
        });
    }
    out
}

/// What compiling the purposes of `purposes.yaml` reads.
struct PurposeFile<'a> {
    src: &'a Source,
    /// Every file of the policy directory: lookup tables are read from here.
    sources: &'a [Source],
    tax: &'a Taxonomy,
    signals: &'a Signals,
    /// Every data use a purpose may name.
    data_uses: BTreeSet<String>,
    groups: Vec<Group>,
}

/// A compiled rule and the key it was written under (a group's rules share the group's key).
struct Written<'r> {
    rule: FieldRule,
    key: &'r SpStr,
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
        self.data_use(raw, diags);
        let legal_basis = self.legal_basis(raw, diags);
        let requires_consent = self.requires_consent(name, raw, legal_basis, diags);
        duplicates(self.src, &raw.fields, "rule for", diags);
        let written = self.rules(raw, diags);
        self.warn_shadowed(&written, diags);
        let otherwise = self.otherwise(raw, diags);
        let writes = self.writes(raw, diags);
        if writes == Writes::Allow {
            self.warn_unwritable(&written, diags);
        }
        let silent_writes = self.silent_writes(raw, writes, diags);
        let mode = self.mode(raw, diags);
        let counts = self.counts(raw, &requires_consent, diags);
        let export_budget = self.export_budget(raw, diags);
        let on_anomaly = self.on_anomaly(raw, diags);
        let rules: Vec<FieldRule> = written.iter().map(|w| w.rule.clone()).collect();
        let by_cat = resolve_categories(self.tax, &rules);
        let art9_condition = self.art9_condition(raw, legal_basis, &requires_consent, diags);
        let art10_basis = raw
            .art10_basis
            .as_ref()
            .map(|b| b.value.trim().to_string())
            .filter(|b| !b.is_empty());
        self.special_categories(
            name,
            &written,
            &by_cat,
            art9_condition,
            art10_basis.as_deref(),
            diags,
        );
        let has_new_errors = diags.list[errors_before..]
            .iter()
            .any(|d| d.severity == Severity::Error);
        if has_new_errors {
            return None;
        }
        let rule_ids = Purpose::rule_id_table(&rules, &requires_consent);
        Some(Purpose {
            name: name.value.clone(),
            description: raw.description.clone(),
            data_use: raw.data_use.value.clone(),
            legal_basis: legal_basis.unwrap_or(LegalBasis::Consent),
            requires_consent,
            rules,
            otherwise,
            writes,
            silent_writes,
            export_budget,
            mode,
            art9_condition,
            art10_basis,
            on_anomaly,
            counts,
            by_cat,
            rule_ids,
        })
    }

    /// A lookup table of `generalise: { map: FILE }`: a CSV file of the policy directory.
    fn value_map(&self, file: &str) -> Result<std::sync::Arc<ValueMap>, String> {
        let rel = file.trim_start_matches("./");
        if rel.starts_with('/') || rel.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(format!(
                "map `{file}`: name a file under the policy directory, e.g. maps/city-to-region.csv"
            ));
        }
        let src = self
            .sources
            .iter()
            .find(|s| s.rel == rel)
            .ok_or_else(|| format!("map `{file}`: no such file under the policy directory"))?;
        let text =
            std::str::from_utf8(&src.bytes).map_err(|_| format!("map `{file}`: not UTF-8"))?;
        ValueMap::parse(rel, text)
            .map(std::sync::Arc::new)
            .map_err(|e| format!("map `{file}`: {e}"))
    }

    /// `data_use:`, a fideslang data use or one of the file's own `data_uses`.
    fn data_use(&self, raw: &RawPurpose, diags: &mut Diags) {
        let u = &raw.data_use;
        if u.value.trim().is_empty() {
            self.error(diags, &u.referenced, "data_use is empty");
        } else if !self.data_uses.contains(&u.value) {
            let hint = did_you_mean(&u.value, self.data_uses.iter().map(String::as_str));
            self.error(
                diags,
                &u.referenced,
                format!(
                    "unknown data use `{}`{hint} (fideslang data uses, or your own under `data_uses:`)",
                    u.value
                ),
            );
        }
    }

    /// `art9_condition:`, one of GDPR Art. 9(2)(a)-(j) by name.
    fn art9_condition(
        &self,
        raw: &RawPurpose,
        legal_basis: Option<LegalBasis>,
        requires_consent: &[String],
        diags: &mut Diags,
    ) -> Option<Art9Condition> {
        let c = raw.art9_condition.as_ref()?;
        let Some(condition) = Art9Condition::from_name(&c.value) else {
            let hint = did_you_mean(&c.value, Art9Condition::NAMES.iter().copied());
            self.error(
                diags,
                &c.referenced,
                format!("unknown Art. 9(2) condition `{}`{hint}", c.value),
            );
            return None;
        };
        if condition == Art9Condition::ExplicitConsent
            && (legal_basis != Some(LegalBasis::Consent) || requires_consent.is_empty())
        {
            self.warn(
                diags,
                &c.referenced,
                "explicit_consent (Art. 9(2)(a)) without `legal_basis: consent` and a `requires_consent` signal: records are not filtered by that consent",
            );
        }
        Some(condition)
    }

    /// GDPR Art. 9 and 10 categories may flow (in any form: kept or transformed) only under
    /// a declared condition; otherwise the rule that lets them flow is an error.
    #[allow(clippy::too_many_arguments)]
    fn special_categories(
        &self,
        name: &SpStr,
        written: &[Written<'_>],
        by_cat: &[Resolved],
        art9: Option<Art9Condition>,
        art10: Option<&str>,
        diags: &mut Diags,
    ) {
        let checks = [
            (
                GDPR_ART9,
                art9.is_some(),
                "`art9_condition` (GDPR Art. 9(2)(a)-(j))",
            ),
            (
                GDPR_ART10,
                art10.is_some(),
                "`art10_basis` (the authority or law, GDPR Art. 10)",
            ),
        ];
        for (group, declared, key) in checks {
            if declared {
                continue;
            }
            let members: Vec<CatId> = group
                .categories
                .iter()
                .filter_map(|c| self.tax.get(c))
                .collect();
            // per rule that lets them flow: the group's categories it reaches
            let mut by_rule: Vec<(usize, BTreeSet<&'static str>)> = Vec::new();
            for c in 0..self.tax.len() {
                let c = c as CatId;
                let Some(member) = self.tax.lineage(c).find(|l| members.contains(l)) else {
                    continue;
                };
                let Resolved::Rule(i) = by_cat[c as usize] else {
                    continue;
                };
                let i = i as usize;
                if matches!(
                    written[i].rule.action,
                    Action::Drop | Action::Redact(_) | Action::Block
                ) {
                    continue;
                }
                match by_rule.iter_mut().find(|(r, _)| *r == i) {
                    Some((_, cats)) => {
                        cats.insert(self.tax.name(member));
                    }
                    None => by_rule.push((i, BTreeSet::from([self.tax.name(member)]))),
                }
            }
            for (i, cats) in by_rule {
                let w = &written[i];
                let cats: Vec<String> = cats.iter().map(|c| format!("`{c}`")).collect();
                self.error(
                    diags,
                    &w.key.referenced,
                    format!(
                        "purpose `{}` lets {} flow through the rule for `{}` ({}) without {key}: {}; drop or block them (`{}: drop`) or declare the condition",
                        name.value,
                        group.title,
                        w.key.value,
                        w.rule.action.name(),
                        cats.join(", "),
                        group.name
                    ),
                );
            }
        }
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

    /// `on_anomaly:` alert (default), throttle or block.
    fn on_anomaly(&self, raw: &RawPurpose, diags: &mut Diags) -> crate::audit::OnAnomaly {
        use crate::audit::OnAnomaly;
        match raw.on_anomaly.as_ref().map(|v| (v, v.value.as_str())) {
            None | Some((_, "alert")) => OnAnomaly::Alert,
            Some((_, "throttle")) => OnAnomaly::Throttle,
            Some((_, "block")) => OnAnomaly::Block,
            Some((v, other)) => {
                self.error(
                    diags,
                    &v.referenced,
                    format!("on_anomaly is alert, throttle or block, not `{other}`"),
                );
                OnAnomaly::Alert
            }
        }
    }

    /// `legal_basis:`, one of GDPR Art. 6's names.
    fn legal_basis(&self, raw: &RawPurpose, diags: &mut Diags) -> Option<LegalBasis> {
        let basis = &raw.legal_basis;
        let parsed = LegalBasis::from_name(&basis.value);
        if parsed.is_none() {
            let hint = did_you_mean(&basis.value, LegalBasis::NAMES.iter().copied());
            self.error(
                diags,
                &basis.referenced,
                format!("unknown legal basis `{}`{hint}", basis.value),
            );
        }
        parsed
    }

    /// `requires_consent:`, a signal or a list of them, each defined by some inventory; a
    /// record resource without the signal is warned about (the purpose never sees it), and so
    /// is a consent-based purpose that names no signal.
    fn requires_consent(
        &self,
        name: &SpStr,
        raw: &RawPurpose,
        legal_basis: Option<LegalBasis>,
        diags: &mut Diags,
    ) -> Vec<String> {
        let mut requires_consent = Vec::new();
        let Some(rc) = &raw.requires_consent else {
            if legal_basis == Some(LegalBasis::Consent) {
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

    /// `fields:`, a rule per data category or group. A group's rule applies to each of its
    /// categories that has no rule of its own; two groups that give one category different
    /// actions are an error.
    fn rules<'r>(&self, raw: &'r RawPurpose, diags: &mut Diags) -> Vec<Written<'r>> {
        let mut explicit: Vec<Written<'r>> = Vec::new();
        let mut grouped: Vec<Written<'r>> = Vec::new();
        for (cat, action) in raw.fields.iter() {
            if cat.value == UNCLASSIFIED {
                self.error(
                    diags,
                    &cat.referenced,
                    "`unclassified` follows `otherwise`; a resource may keep it with `unclassified: keep`",
                );
                continue;
            }
            let group = self.groups.iter().find(|g| g.name == cat.value);
            let cats: Vec<CatId> = match group {
                Some(g) => g.cats.clone(),
                None => match category(self.src, cat, self.tax, diags) {
                    Some(c) => vec![c],
                    None => continue,
                },
            };
            let a = match parse_action(&action.value, &|f| self.value_map(f)) {
                Ok(a) => a,
                Err(m) => {
                    self.error(diags, &action.referenced, format!("{}: {m}", cat.value));
                    continue;
                }
            };
            let id: std::sync::Arc<str> = format!("fields.{}", cat.value).into();
            for c in cats {
                let w = Written {
                    rule: FieldRule {
                        category: self.tax.name(c).to_string(),
                        cat: c,
                        action: a.clone(),
                        id: id.clone(),
                    },
                    key: cat,
                };
                if group.is_some() {
                    grouped.push(w);
                } else {
                    explicit.push(w);
                }
            }
        }
        for w in grouped {
            // a category's own rule beats a group's
            if explicit
                .iter()
                .any(|e| e.rule.cat == w.rule.cat && e.key.value == e.rule.category)
            {
                continue;
            }
            explicit.push(w);
        }
        // two groups naming one category: the first stays; a different action is an error
        let mut out: Vec<Written<'r>> = Vec::new();
        for w in explicit {
            match out.iter().find(|o| o.rule.cat == w.rule.cat) {
                Some(o) if o.rule.action != w.rule.action && o.key.value != w.key.value => self
                    .error(
                        diags,
                        &w.key.referenced,
                        format!(
                        "`{}` gets `{}` from `{}` and `{}` from `{}`: give it a rule of its own",
                        w.rule.category,
                        o.rule.action.name(),
                        o.key.value,
                        w.rule.action.name(),
                        w.key.value
                    ),
                    ),
                Some(_) => {}
                None => out.push(w),
            }
        }
        out
    }

    /// Warns about redundant (shadowed) rules: a sub-category that repeats its nearest
    /// ancestor's rule. Group rules are not warned about: a group names categories for what
    /// they are, not as refinements.
    fn warn_shadowed(&self, written: &[Written<'_>], diags: &mut Diags) {
        for w in written {
            if w.rule.id.as_ref() != format!("fields.{}", w.rule.category) {
                continue;
            }
            let parent = self
                .tax
                .lineage(w.rule.cat)
                .skip(1)
                .find_map(|p| written.iter().find(|x| x.rule.cat == p));
            let Some(p) = parent.filter(|p| p.rule.action == w.rule.action) else {
                continue;
            };
            self.warn(
                diags,
                &w.key.referenced,
                format!(
                    "rule for `{}` repeats the rule for `{}` and changes nothing",
                    w.rule.category, p.key.value
                ),
            );
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

    /// Warns about the rules a purpose that writes cannot apply to writes (once per key).
    fn warn_unwritable(&self, written: &[Written<'_>], diags: &mut Diags) {
        let mut warned = BTreeSet::new();
        for w in written {
            if w.rule.action.allowed_on_writes() || !warned.insert(w.key.value.as_str()) {
                continue;
            }
            self.warn(
                diags,
                &w.key.referenced,
                format!(
                    "writes carrying `{}` will be refused: only keep, drop and block apply to writes",
                    w.key.value
                ),
            );
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
