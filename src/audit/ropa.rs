//! `zweck audit ropa`: the Art. 30(1) record of processing activities, derived from what is
//! declared (purposes, inventories, upstreams, apps, the `record_of_processing` section of
//! `zweck.yaml`) and reconciled with what the transfer log saw. Like every report it verifies
//! the log first and says so.
//!
//! Art. 30(1) asks for (a) the controller, (b) the purposes, (c) the categories of data
//! subjects and of personal data, (d) the recipients, (e) third-country transfers and their
//! safeguards, (f) time limits for erasure and (g) the security measures. (a), (b), (c: personal
//! data), (d) and (e) follow from the policies and upstreams; (c: data subjects), (f) and the
//! organisational part of (g) cannot be derived and come from `record_of_processing`; the
//! technical part of (g) is what this configuration enforces, listed from it.
//!
//! An activity is a purpose carried out through one processor. It is declared when some app
//! is granted the purpose and the processor's CRM has an inventory: only then can the purpose
//! reach it. Reconciliation, per activity: categories, recipients, mechanisms, legal bases and
//! apps the log shows that the declaration lacks (these need action: exit 1), and declared
//! activities and categories never seen (candidates for removal from the record).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::config::Offbox;
use super::html::{self, Cell, Page};
use super::jurisdiction::{adequacy, cross_border};
use super::record::{Decision, Stage};
use super::report::{
    emit, gather, render_csv, unverified_banner, verification_json, Format, Output,
};
use super::verify::{Fleet, VerifyOptions};
use super::CliReport;
use crate::config::{Config, MechanismKind};
use crate::dialect::Dialect;
use crate::policy::{Action, PolicySet};

/// `record_of_processing:` in `zweck.yaml`: what Art. 30(1) asks for that configuration
/// cannot tell.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecordOfProcessing {
    /// The data protection officer's name and contact (Art. 30(1)(a)).
    #[serde(default)]
    pub dpo: Option<String>,
    /// The controller's representative in the Union (Art. 27), where there is one.
    #[serde(default)]
    pub representative: Option<String>,
    /// Joint controllers (Art. 26), if any.
    #[serde(default)]
    pub joint_controllers: Vec<String>,
    /// Categories of data subjects per purpose (Art. 30(1)(c)), e.g. `customers`.
    #[serde(default)]
    pub data_subjects: BTreeMap<String, Vec<String>>,
    /// Time limits for erasure per purpose, and `default` (Art. 30(1)(f)).
    #[serde(default)]
    pub retention: BTreeMap<String, String>,
    /// Organisational and further technical measures (Art. 30(1)(g), Art. 32(1)).
    #[serde(default)]
    pub measures: Vec<String>,
}

/// One processing activity: a purpose carried out through one processor.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Activity {
    pub purpose: String,
    pub upstream: String,
    pub processor: String,
    pub jurisdiction: String,
    pub cross_border: bool,
    pub mechanism: String,
    pub mechanism_ref: Option<String>,
    pub scc_module: Option<String>,
    pub adequacy_decision: Option<String>,
    pub record_types: Vec<String>,
    /// Transfers of this activity in the log (allowed or minimised).
    pub seen: u64,
    /// Categories the log shows this activity carried.
    pub categories_seen: Vec<String>,
    /// Apps the log shows acting for it.
    pub apps_seen: Vec<String>,
}

/// A purpose as declared.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PurposeRecord {
    pub name: String,
    pub description: Option<String>,
    pub data_use: String,
    pub legal_basis: String,
    pub data_subjects: Vec<String>,
    /// Categories the purpose may receive (its rules that do not drop or block).
    pub categories: Vec<String>,
    /// Declared categories the log never showed for it.
    pub categories_never_seen: Vec<String>,
    pub apps: Vec<String>,
    pub retention: Option<String>,
    pub activities: Vec<Activity>,
}

/// A difference between the declared record and the log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Discrepancy {
    pub kind: String,
    pub purpose: String,
    pub upstream: String,
    pub detail: String,
    /// Entries showing it, and the first one's seq (per log).
    pub count: u64,
    pub first_seq: Option<u64>,
}

/// The whole record.
#[derive(Debug, Clone, Serialize)]
pub struct Ropa {
    pub controller: String,
    pub controller_jurisdiction: String,
    pub contact: Option<String>,
    pub dpo: Option<String>,
    pub representative: Option<String>,
    pub joint_controllers: Vec<String>,
    pub policy_version: String,
    pub purposes: Vec<PurposeRecord>,
    /// Purposes no app is granted: declared, but not in use.
    pub not_granted: Vec<String>,
    pub default_retention: Option<String>,
    pub technical_measures: Vec<String>,
    pub organisational_measures: Vec<String>,
    pub declared_not_seen: Vec<Discrepancy>,
    pub seen_not_declared: Vec<Discrepancy>,
}

/// What to build the record from.
#[derive(Debug, Clone, Default)]
pub struct RopaOptions {
    pub evidence: VerifyOptions,
    pub format: Format,
    /// Report even when verification fails, marking every page.
    pub unverified: bool,
}

fn declared_categories(policies: &PolicySet, purpose: &str) -> Vec<String> {
    policies
        .purpose(purpose)
        .map(|p| {
            p.rules
                .iter()
                .filter(|r| !matches!(r.action, Action::Drop | Action::Block))
                .map(|r| r.category.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A category is covered by a rule for it or for one of its parents.
fn covered(declared: &[String], cat: &str) -> bool {
    declared.iter().any(|d| {
        cat == d || (cat.starts_with(d.as_str()) && cat.as_bytes().get(d.len()) == Some(&b'.'))
    })
}

/// What reconciliation reads of a line.
#[derive(Debug, Deserialize)]
struct Line {
    seq: u64,
    stage: Stage,
    app: String,
    purpose: String,
    legal_basis: String,
    upstream: String,
    processor: String,
    jurisdiction: String,
    transfer_mechanism: Mechanism,
    categories_delivered: Vec<String>,
    decision: Decision,
}

#[derive(Debug, Deserialize)]
struct Mechanism {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref", default)]
    reference: Option<String>,
}

/// (kind, purpose, upstream, detail) -> (count, first seq)
type Findings = BTreeMap<(String, String, String, String), (u64, Option<u64>)>;

/// The declared record, before the log is read.
fn declare(policies: &PolicySet, config: &Config) -> Ropa {
    let controller = policies.controller();
    let decl = &config.record_of_processing;
    let mut purposes = Vec::new();
    let mut not_granted = Vec::new();
    for p in policies.purposes() {
        let apps: Vec<String> = config
            .apps
            .iter()
            .filter(|a| a.purposes.contains(&p.name))
            .map(|a| a.name.clone())
            .collect();
        if apps.is_empty() {
            not_granted.push(p.name.clone());
        }
        let mut activities = Vec::new();
        for u in &config.upstreams {
            let Some(inv) = policies
                .inventory(u.dialect)
                .filter(|_| u.dialect != Dialect::Generic)
            else {
                continue; // no inventory: nothing governed reaches this upstream
            };
            if apps.is_empty() {
                continue;
            }
            let xb = cross_border(&controller.jurisdiction, &u.jurisdiction);
            let m = &u.transfer_mechanism;
            activities.push(Activity {
                purpose: p.name.clone(),
                upstream: u.name.clone(),
                processor: u.processor.clone(),
                jurisdiction: u.jurisdiction.clone(),
                cross_border: xb,
                mechanism: mechanism_name(m.kind).to_string(),
                mechanism_ref: m.reference.clone(),
                scc_module: m.scc_module.clone(),
                adequacy_decision: adequacy(&u.jurisdiction).filter(|_| xb).map(str::to_string),
                record_types: inv
                    .resources()
                    .iter()
                    .map(|r| r.name().to_string())
                    .collect(),
                seen: 0,
                categories_seen: Vec::new(),
                apps_seen: Vec::new(),
            });
        }
        purposes.push(PurposeRecord {
            name: p.name.clone(),
            description: p.description.clone(),
            data_use: p.data_use.clone(),
            legal_basis: p.legal_basis.as_str().to_string(),
            data_subjects: decl.data_subjects.get(&p.name).cloned().unwrap_or_default(),
            categories: declared_categories(policies, &p.name),
            categories_never_seen: Vec::new(),
            apps,
            retention: decl.retention.get(&p.name).cloned(),
            activities,
        });
    }
    Ropa {
        controller: controller.name.clone(),
        controller_jurisdiction: controller.jurisdiction.clone(),
        contact: controller.contact.clone(),
        dpo: decl.dpo.clone(),
        representative: decl.representative.clone(),
        joint_controllers: decl.joint_controllers.clone(),
        policy_version: policies.version().to_string(),
        purposes,
        not_granted,
        default_retention: decl.retention.get("default").cloned(),
        technical_measures: technical_measures(policies, config),
        organisational_measures: decl.measures.clone(),
        declared_not_seen: Vec::new(),
        seen_not_declared: Vec::new(),
    }
}

fn mechanism_name(kind: MechanismKind) -> &'static str {
    match kind {
        MechanismKind::Adequacy => "adequacy",
        MechanismKind::Scc => "scc",
        MechanismKind::Dpf => "dpf",
        MechanismKind::Bcr => "bcr",
        MechanismKind::Derogation => "derogation",
        MechanismKind::None => "none",
    }
}

/// What this configuration enforces, as Art. 32(1) measures.
fn technical_measures(policies: &PolicySet, config: &Config) -> Vec<String> {
    let certs = config
        .apps
        .iter()
        .filter(|a| a.client_cert.is_some())
        .count();
    let keys = config
        .apps
        .iter()
        .filter(|a| !a.api_keys.is_empty())
        .count();
    let pseudonymising: Vec<&str> = policies
        .purposes()
        .iter()
        .filter(|p| p.rules.iter().any(|r| r.action == Action::Pseudonymise))
        .map(|p| p.name.as_str())
        .collect();
    let budgets: Vec<&str> = policies
        .purposes()
        .iter()
        .filter(|p| p.export_budget.is_some())
        .map(|p| p.name.as_str())
        .collect();
    let mut out = vec![
        format!(
            "Access control: every request comes from a configured app ({certs} by TLS client certificate{}, {keys} by API key stored only as SHA-256) acting for a purpose granted to it; apps never hold CRM credentials.",
            if config.tls.client_ca.is_some() { ", verified against the client CA" } else { "" }
        ),
        format!(
            "Transport encryption: TLS to the apps and TLS to each of the {} processors' APIs.",
            config.upstreams.len()
        ),
        format!(
            "Data minimisation on the wire: default-deny purpose policies (version {}) filter every governed request and response; queries may filter only on fields the purpose sees; endpoints no inventory classifies are refused.",
            policies.version().get(..12).unwrap_or(policies.version())
        ),
    ];
    if !pseudonymising.is_empty() {
        out.push(format!(
            "Pseudonymisation (Art. 32(1)(a)): keyed HMAC-SHA-256 per purpose for {}; the key version is part of each pseudonym (pzN_), so a key rotation is visible.",
            pseudonymising.join(", ")
        ));
    }
    if !budgets.is_empty() {
        out.push(format!(
            "Export budgets (records per period) for {}.",
            budgets.join(", ")
        ));
    }
    match &config.audit {
        Some(a) => out.push(format!(
            "Transfer log: every governed flow is recorded before it happens in a hash-chained log with Ed25519-signed RFC 6962 checkpoints every {} entries{}; if the log cannot be written, no personal data flows.",
            a.checkpoint_every,
            match &a.offbox {
                Offbox::File(_) => ", copied to an off-box file",
                Offbox::Url(_) => ", posted to an off-box witness",
                Offbox::None => " (no off-box copy configured)",
            }
        )),
        None => out.push("Transfer log: NOT configured (governed flows are not recorded).".into()),
    }
    out.push(
        "Fail closed: a body that cannot be fully inspected is refused, never passed on unread."
            .into(),
    );
    out
}

/// Reads the log's lines into the record.
struct Reconciler<'a> {
    policies: &'a PolicySet,
    config: &'a Config,
    ropa: Ropa,
    findings: Findings,
    seen_categories: BTreeMap<String, BTreeSet<String>>,
    bad: Option<String>,
}

impl<'a> Reconciler<'a> {
    fn new(policies: &'a PolicySet, config: &'a Config) -> Self {
        Reconciler {
            policies,
            config,
            ropa: declare(policies, config),
            findings: Findings::new(),
            seen_categories: BTreeMap::new(),
            bad: None,
        }
    }

    fn note(&mut self, kind: &str, l: &Line, detail: String) {
        let e = self
            .findings
            .entry((kind.into(), l.purpose.clone(), l.upstream.clone(), detail))
            .or_insert((0, Some(l.seq)));
        e.0 += 1;
    }

    fn add(&mut self, bytes: &[u8]) {
        let l: Line = match serde_json::from_slice(bytes) {
            Ok(l) => l,
            // incident and containment entries are not processing
            Err(_) if super::event::is_event(bytes) => return,
            Err(e) => {
                self.bad
                    .get_or_insert_with(|| format!("a line is not a transfer record: {e}"));
                return;
            }
        };
        if l.stage == Stage::Intent
            || matches!(l.decision, Decision::Blocked | Decision::RateLimited)
        {
            return;
        }
        let (policies, config) = (self.policies, self.config);
        let Some(p) = policies.purpose(&l.purpose) else {
            self.note(
                "purpose not declared",
                &l,
                "the purpose is not in purposes.yaml".into(),
            );
            return;
        };
        let Some(u) = config.upstreams.iter().find(|u| u.name == l.upstream) else {
            self.note(
                "recipient not declared",
                &l,
                "the upstream is not in zweck.yaml".into(),
            );
            return;
        };
        if l.legal_basis != p.legal_basis.as_str() {
            let d = format!(
                "log says {}, purposes.yaml says {}",
                l.legal_basis,
                p.legal_basis.as_str()
            );
            self.note("legal basis differs", &l, d);
        }
        if l.processor != u.processor || l.jurisdiction != u.jurisdiction {
            let d = format!(
                "log says {} ({}), zweck.yaml says {} ({})",
                l.processor, l.jurisdiction, u.processor, u.jurisdiction
            );
            self.note("recipient differs", &l, d);
        }
        let configured = mechanism_name(u.transfer_mechanism.kind);
        if l.transfer_mechanism.kind != configured
            || l.transfer_mechanism.reference != u.transfer_mechanism.reference
        {
            let d = format!(
                "log says {} {}, zweck.yaml says {configured} {}",
                l.transfer_mechanism.kind,
                l.transfer_mechanism.reference.as_deref().unwrap_or(""),
                u.transfer_mechanism.reference.as_deref().unwrap_or("")
            );
            self.note("transfer mechanism differs", &l, d);
        }
        let granted = config
            .apps
            .iter()
            .any(|a| a.name == l.app && a.purposes.contains(&l.purpose));
        if !granted {
            let d = format!(
                "app {} acted for it but is not granted it in zweck.yaml",
                l.app
            );
            self.note("app not granted", &l, d);
        }
        let declared = declared_categories(policies, &p.name);
        for c in &l.categories_delivered {
            if !covered(&declared, c) && c != crate::policy::query::UNCLASSIFIED {
                self.note("category not declared", &l, format!("{c} delivered"));
            }
        }
        self.seen_categories
            .entry(l.purpose.clone())
            .or_default()
            .extend(l.categories_delivered.iter().cloned());
        let Some(record) = self.ropa.purposes.iter_mut().find(|r| r.name == p.name) else {
            return;
        };
        match record.activities.iter_mut().find(|a| a.upstream == u.name) {
            Some(a) => {
                a.seen += 1;
                for c in &l.categories_delivered {
                    if !a.categories_seen.contains(c) {
                        a.categories_seen.push(c.clone());
                    }
                }
                if !a.apps_seen.contains(&l.app) {
                    a.apps_seen.push(l.app.clone());
                }
            }
            None => {
                let d = format!(
                    "transfers via {} although no app is granted the purpose or the CRM has no inventory",
                    u.processor
                );
                self.note("activity not declared", &l, d);
            }
        }
    }

    fn finish(self) -> Result<Ropa, String> {
        if let Some(bad) = self.bad {
            return Err(bad);
        }
        let Reconciler {
            mut ropa,
            findings,
            seen_categories,
            ..
        } = self;
        for p in &mut ropa.purposes {
            let seen = seen_categories.get(&p.name);
            p.categories_never_seen = p
                .categories
                .iter()
                .filter(|d| {
                    !seen.is_some_and(|s| s.iter().any(|c| covered(std::slice::from_ref(d), c)))
                })
                .cloned()
                .collect();
            for a in &mut p.activities {
                a.categories_seen.sort();
                a.apps_seen.sort();
                if a.seen == 0 {
                    ropa.declared_not_seen.push(Discrepancy {
                        kind: "declared, never seen".into(),
                        purpose: a.purpose.clone(),
                        upstream: a.upstream.clone(),
                        detail: format!(
                            "{} is granted to {} but sent nothing via {}",
                            a.purpose,
                            p.apps.join(", "),
                            a.processor
                        ),
                        count: 0,
                        first_seq: None,
                    });
                }
            }
        }
        ropa.seen_not_declared = findings
            .into_iter()
            .map(
                |((kind, purpose, upstream, detail), (count, first_seq))| Discrepancy {
                    kind,
                    purpose,
                    upstream,
                    detail,
                    count,
                    first_seq,
                },
            )
            .collect();
        Ok(ropa)
    }
}

/// Derives and reconciles the record; `Err` is the refusal to print.
pub fn build(
    policies: &PolicySet,
    config: &Config,
    opts: &RopaOptions,
) -> Result<(Ropa, Fleet), CliReport> {
    let mut rec = Reconciler::new(policies, config);
    let fleet = gather(&opts.evidence, opts.unverified, |_, line| rec.add(line))?;
    if !fleet.verified() {
        // the verified pass stopped at the first bad line: read every line again
        rec = Reconciler::new(policies, config);
        for log in &opts.evidence.logs {
            if let Err(e) = super::report::read_lines(log, &mut |l| rec.add(l)) {
                rec.bad.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let ropa = rec
        .finish()
        .map_err(|bad| CliReport::new(format!("UNREADABLE: {bad}\n"), 2))?;
    Ok((ropa, fleet))
}

/// The record in its format. Exit code: the verification's when it failed (the output then
/// says UNVERIFIED on every page), else 1 when processing was seen that is not declared.
pub fn ropa(policies: &PolicySet, config: &Config, opts: &RopaOptions) -> CliReport {
    ropa_to(policies, config, opts, &Output::default())
}

/// [`ropa`], written to a file (and signed) when `out` says so.
pub fn ropa_to(
    policies: &PolicySet,
    config: &Config,
    opts: &RopaOptions,
    out: &Output,
) -> CliReport {
    let (r, fleet) = match build(policies, config, opts) {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let code = match fleet.exit_code() {
        0 => i32::from(!r.seen_not_declared.is_empty()),
        failed => failed,
    };
    let text = match opts.format {
        Format::Json => {
            let mut doc = serde_json::to_value(&r).unwrap_or_default();
            if let serde_json::Value::Object(m) = &mut doc {
                m.insert("verification".into(), verification_json(&fleet));
                if !fleet.verified() {
                    m.insert(
                        "unverified_warning".into(),
                        unverified_banner(&fleet).into(),
                    );
                }
            }
            let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
            s.push('\n');
            s
        }
        Format::Csv => render_ropa_csv(&r, &fleet),
        Format::Html => render_html(&r, &fleet),
        Format::Table | Format::Markdown => render_markdown(&r, &fleet),
    };
    emit(text, opts.format, &fleet, code, out)
}

fn transfer_text(a: &Activity) -> String {
    if !a.cross_border {
        return format!("none ({} is within the controller's area)", a.jurisdiction);
    }
    let mut s = format!("third country {}: {}", a.jurisdiction, a.mechanism);
    if let Some(m) = &a.scc_module {
        let _ = write!(s, " module {m}");
    }
    if let Some(r) = &a.mechanism_ref {
        let _ = write!(s, " ({r})");
    }
    if let Some(d) = &a.adequacy_decision {
        let _ = write!(s, "; adequacy decision: {d}");
    }
    if a.mechanism == "none" {
        s.push_str(" - NO transfer mechanism");
    }
    s
}

fn list_or(v: &[String], none: &str) -> String {
    if v.is_empty() {
        none.to_string()
    } else {
        v.join(", ")
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render_markdown(r: &Ropa, fleet: &Fleet) -> String {
    let mut out = String::new();
    let unverified = !fleet.verified();
    if unverified {
        let _ = writeln!(out, "> **{}**\n", unverified_banner(fleet));
    }
    let _ = writeln!(out, "# Record of processing activities (GDPR Art. 30(1))\n");
    let _ = writeln!(out, "## Verification of the transfer log\n");
    let _ = writeln!(out, "{}\n", fleet.summary());
    for l in &fleet.logs {
        let _ = writeln!(out, "- `{}`:", l.log.display());
        for d in l.details() {
            let _ = writeln!(out, "  - {}", md_escape(&d));
        }
    }
    let _ = writeln!(out, "\n## (a) Controller\n");
    let _ = writeln!(
        out,
        "- Controller: {} ({}){}",
        r.controller,
        r.controller_jurisdiction,
        r.contact
            .as_ref()
            .map(|c| format!(", contact {c}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "- Joint controllers: {}",
        list_or(&r.joint_controllers, "none declared")
    );
    let _ = writeln!(
        out,
        "- Representative (Art. 27): {}",
        r.representative.as_deref().unwrap_or("none declared")
    );
    let _ = writeln!(
        out,
        "- Data protection officer: {}",
        r.dpo.as_deref().unwrap_or("none declared")
    );
    let _ = writeln!(out, "- Policy version: `{}`", r.policy_version);
    for p in &r.purposes {
        let _ = writeln!(out, "\n## Purpose `{}`\n", p.name);
        let _ = writeln!(
            out,
            "- (b) Purpose: {}{}; legal basis Art. 6(1): {}",
            p.data_use,
            p.description
                .as_ref()
                .map(|d| format!(" - {d}"))
                .unwrap_or_default(),
            p.legal_basis
        );
        let _ = writeln!(
            out,
            "- Apps granted this purpose: {}",
            list_or(&p.apps, "none (not in use)")
        );
        let _ = writeln!(
            out,
            "- (c) Categories of data subjects: {}",
            list_or(
                &p.data_subjects,
                "not declared (record_of_processing.data_subjects)"
            )
        );
        let _ = writeln!(
            out,
            "- (c) Categories of personal data: {}",
            list_or(&p.categories, "none")
        );
        if !p.categories_never_seen.is_empty() {
            let _ = writeln!(
                out,
                "  - declared, never seen in the log: {}",
                p.categories_never_seen.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "- (f) Time limit for erasure: {}",
            p.retention
                .as_deref()
                .or(r.default_retention.as_deref())
                .unwrap_or("not declared (record_of_processing.retention)")
        );
        if p.activities.is_empty() {
            let _ = writeln!(
                out,
                "- (d) Recipients: none (no app is granted the purpose)"
            );
            continue;
        }
        let _ = writeln!(out, "\n| (d) recipient (processor) | (e) transfer to a third country | records of | seen in the log | categories seen | apps seen |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for a in &p.activities {
            let _ = writeln!(
                out,
                "| {} ({}) | {} | {} | {} | {} | {} |",
                md_escape(&a.processor),
                md_escape(&a.upstream),
                md_escape(&transfer_text(a)),
                md_escape(&a.record_types.join(", ")),
                a.seen,
                md_escape(&list_or(&a.categories_seen, "-")),
                md_escape(&list_or(&a.apps_seen, "-"))
            );
        }
    }
    if !r.not_granted.is_empty() {
        let _ = writeln!(
            out,
            "\nPurposes declared but granted to no app (not in use): {}",
            r.not_granted.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n## (g) Technical and organisational security measures\n"
    );
    for m in &r.technical_measures {
        let _ = writeln!(out, "- {m}");
    }
    for m in &r.organisational_measures {
        let _ = writeln!(out, "- {m}");
    }
    if r.organisational_measures.is_empty() {
        let _ = writeln!(
            out,
            "- Organisational measures: not declared (record_of_processing.measures)"
        );
    }
    let _ = writeln!(out, "\n## Reconciliation with the transfer log\n");
    if r.seen_not_declared.is_empty() {
        let _ = writeln!(out, "Seen but not declared: none.");
    } else {
        let _ = writeln!(out, "Seen but not declared (needs action):\n");
        for d in &r.seen_not_declared {
            let _ = writeln!(
                out,
                "- **{}** [{} via {}]: {} ({} entries, first seq {})",
                d.kind,
                d.purpose,
                d.upstream,
                md_escape(&d.detail),
                d.count,
                d.first_seq.map(|s| s.to_string()).unwrap_or_default()
            );
        }
    }
    if r.declared_not_seen.is_empty() {
        let _ = writeln!(out, "\nDeclared but never seen: none.");
    } else {
        let _ = writeln!(
            out,
            "\nDeclared but never seen (candidates for removal from the record):\n"
        );
        for d in &r.declared_not_seen {
            let _ = writeln!(
                out,
                "- {} via {}: {}",
                d.purpose,
                d.upstream,
                md_escape(&d.detail)
            );
        }
    }
    if unverified {
        let _ = writeln!(out, "\n> **{}**", unverified_banner(fleet));
    }
    out
}

fn render_html(r: &Ropa, fleet: &Fleet) -> String {
    let banner = (!fleet.verified()).then(|| unverified_banner(fleet));
    let mut page = Page::new("Record of processing activities (GDPR Art. 30(1))", banner);
    page.meta(&format!(
        "Controller {} ({}); policy version {}.",
        r.controller, r.controller_jurisdiction, r.policy_version
    ));
    html::verification(&mut page, fleet);
    page.h2("(a) Controller", "controller");
    page.table(
        "Art. 30(1)(a)",
        &["item", "value"],
        vec![
            vec![
                "controller".into(),
                format!("{} ({})", r.controller, r.controller_jurisdiction).into(),
            ],
            vec![
                "contact".into(),
                r.contact
                    .clone()
                    .unwrap_or_else(|| "not declared".into())
                    .into(),
            ],
            vec![
                "joint controllers".into(),
                list_or(&r.joint_controllers, "none declared").into(),
            ],
            vec![
                "representative (Art. 27)".into(),
                r.representative
                    .clone()
                    .unwrap_or_else(|| "none declared".into())
                    .into(),
            ],
            vec![
                "data protection officer".into(),
                r.dpo
                    .clone()
                    .unwrap_or_else(|| "none declared".into())
                    .into(),
            ],
        ],
    );
    page.h2(
        "(b)-(f) Purposes, data, recipients, transfers, erasure",
        "purposes",
    );
    for p in &r.purposes {
        page.h3(&format!("Purpose {}", p.name));
        page.table(
            "Art. 30(1)(b), (c) and (f)",
            &["item", "value"],
            vec![
                vec![
                    "(b) purpose".into(),
                    format!(
                        "{}{}",
                        p.data_use,
                        p.description
                            .as_ref()
                            .map(|d| format!(" - {d}"))
                            .unwrap_or_default()
                    )
                    .into(),
                ],
                vec![
                    "legal basis, Art. 6(1)".into(),
                    p.legal_basis.as_str().into(),
                ],
                vec![
                    "apps granted".into(),
                    list_or(&p.apps, "none (not in use)").into(),
                ],
                vec![
                    "(c) data subjects".into(),
                    list_or(&p.data_subjects, "not declared").into(),
                ],
                vec![
                    "(c) personal data".into(),
                    list_or(&p.categories, "none").into(),
                ],
                vec![
                    "declared, never seen".into(),
                    list_or(&p.categories_never_seen, "-").into(),
                ],
                vec![
                    "(f) erasure".into(),
                    p.retention
                        .clone()
                        .or_else(|| r.default_retention.clone())
                        .unwrap_or_else(|| "not declared".into())
                        .into(),
                ],
            ],
        );
        if !p.activities.is_empty() {
            page.table(
                "Art. 30(1)(d) recipients and (e) transfers, with what the log saw",
                &[
                    "(d) recipient",
                    "(e) transfer",
                    "records of",
                    "seen",
                    "categories seen",
                    "apps seen",
                ],
                p.activities
                    .iter()
                    .map(|a| {
                        vec![
                            format!("{} ({})", a.processor, a.upstream).into(),
                            transfer_text(a).into(),
                            a.record_types.join(", ").into(),
                            Cell::Num(a.seen),
                            list_or(&a.categories_seen, "-").into(),
                            list_or(&a.apps_seen, "-").into(),
                        ]
                    })
                    .collect(),
            );
        }
    }
    if !r.not_granted.is_empty() {
        page.note(&format!(
            "Purposes declared but granted to no app (not in use): {}.",
            r.not_granted.join(", ")
        ));
    }
    page.h2("(g) Technical and organisational measures", "measures");
    let mut measures: Vec<Vec<Cell>> = r
        .technical_measures
        .iter()
        .map(|m| vec!["technical (from configuration)".into(), m.as_str().into()])
        .collect();
    measures.extend(
        r.organisational_measures
            .iter()
            .map(|m| vec!["declared".into(), m.as_str().into()]),
    );
    page.table("Art. 30(1)(g), Art. 32(1)", &["kind", "measure"], measures);
    page.h2("Reconciliation with the transfer log", "reconciliation");
    let rows = |list: &[Discrepancy]| -> Vec<Vec<Cell>> {
        list.iter()
            .map(|d| {
                vec![
                    d.kind.as_str().into(),
                    d.purpose.as_str().into(),
                    d.upstream.as_str().into(),
                    d.detail.as_str().into(),
                    Cell::Num(d.count),
                    d.first_seq
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                        .into(),
                ]
            })
            .collect()
    };
    let header = [
        "kind",
        "purpose",
        "upstream",
        "detail",
        "entries",
        "first seq",
    ];
    page.table(
        "Seen but not declared (needs action)",
        &header,
        rows(&r.seen_not_declared),
    );
    page.table(
        "Declared but never seen (candidates for removal from the record)",
        &header,
        rows(&r.declared_not_seen),
    );
    page.finish()
}

fn render_ropa_csv(r: &Ropa, fleet: &Fleet) -> String {
    let header: Vec<String> = [
        "section",
        "purpose",
        "data_use",
        "legal_basis",
        "data_subjects",
        "categories",
        "upstream",
        "processor",
        "jurisdiction",
        "transfer",
        "seen",
        "detail",
        "verification",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let status = if fleet.verified() {
        fleet.summary()
    } else {
        format!("{} {}", unverified_banner(fleet), fleet.summary())
    };
    let mut rows = Vec::new();
    for p in &r.purposes {
        for a in &p.activities {
            rows.push(vec![
                "activity".into(),
                p.name.clone(),
                p.data_use.clone(),
                p.legal_basis.clone(),
                p.data_subjects.join(" "),
                p.categories.join(" "),
                a.upstream.clone(),
                a.processor.clone(),
                a.jurisdiction.clone(),
                transfer_text(a),
                a.seen.to_string(),
                String::new(),
                status.clone(),
            ]);
        }
    }
    for (section, list) in [
        ("declared_not_seen", &r.declared_not_seen),
        ("seen_not_declared", &r.seen_not_declared),
    ] {
        for d in list {
            let mut row = vec![String::new(); 13];
            row[0] = section.into();
            row[1] = d.purpose.clone();
            row[6] = d.upstream.clone();
            row[10] = d.count.to_string();
            row[11] = format!("{}: {}", d.kind, d.detail);
            row[12] = status.clone();
            rows.push(row);
        }
    }
    render_csv(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_categories_cover_children() {
        let d = vec!["user.contact".to_string()];
        assert!(covered(&d, "user.contact"));
        assert!(covered(&d, "user.contact.email"));
        assert!(!covered(&d, "user.contacts"));
        assert!(!covered(&d, "user.name"));
    }
}
