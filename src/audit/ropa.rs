//! `zweck audit ropa`: the Art. 30(1) record of processing activities, derived from what is
//! declared (purposes, inventories, upstreams) and reconciled with what the log shows.
//!
//! Declared processing is every purpose applied to every upstream (any granted app may
//! reach any upstream); the categories a purpose may receive are those its field rules do
//! not drop or block. Reconciliation lists declared processing never seen in the log (a
//! candidate for removal from the record) and processing seen but not declared (a purpose
//! or upstream no longer configured, a category outside the purpose's rules, a changed legal
//! basis, processor or jurisdiction). Only the second needs action: exit code 1.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::jurisdiction::{adequacy, cross_border};
use super::record::{Decision, Stage};
use super::report::{read_entries, render_csv, render_table, Format, ReadError};
use super::CliReport;
use crate::config::UpstreamConfig;
use crate::policy::{Action, PolicySet};

/// One processing activity: a purpose carried out through one processor.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Activity {
    pub purpose: String,
    pub description: Option<String>,
    pub data_use: String,
    pub legal_basis: String,
    pub categories: Vec<String>,
    pub record_types: Vec<String>,
    pub upstream: String,
    pub processor: String,
    pub jurisdiction: String,
    pub cross_border: bool,
    pub mechanism: String,
    pub mechanism_ref: Option<String>,
    pub adequacy_decision: Option<String>,
    /// Transfers of this activity in the log.
    pub seen: u64,
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
    pub policy_version: String,
    pub activities: Vec<Activity>,
    pub declared_not_seen: Vec<Discrepancy>,
    pub seen_not_declared: Vec<Discrepancy>,
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

/// Derives and reconciles the record.
pub fn build(
    policies: &PolicySet,
    upstreams: &[UpstreamConfig],
    logs: &[PathBuf],
) -> Result<Ropa, ReadError> {
    let controller = policies.controller();
    let mut activities = Vec::new();
    for p in policies.purposes() {
        for u in upstreams {
            let record_types = policies
                .inventory(u.dialect)
                .map(|inv| {
                    inv.resources()
                        .iter()
                        .map(|r| r.name().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let xb = cross_border(&controller.jurisdiction, &u.jurisdiction);
            let mech = serde_json::to_value(&u.transfer_mechanism).unwrap_or_default();
            activities.push(Activity {
                purpose: p.name.clone(),
                description: p.description.clone(),
                data_use: p.data_use.clone(),
                legal_basis: p.legal_basis.as_str().to_string(),
                categories: declared_categories(policies, &p.name),
                record_types,
                upstream: u.name.clone(),
                processor: u.processor.clone(),
                jurisdiction: u.jurisdiction.clone(),
                cross_border: xb,
                mechanism: mech["type"].as_str().unwrap_or("none").to_string(),
                mechanism_ref: mech["ref"].as_str().map(str::to_string),
                adequacy_decision: adequacy(&u.jurisdiction).filter(|_| xb).map(str::to_string),
                seen: 0,
            });
        }
    }
    // (kind, purpose, upstream, detail) -> (count, first seq)
    type Key = (String, String, String, String);
    let mut undeclared: BTreeMap<Key, (u64, Option<u64>)> = BTreeMap::new();
    let mut note = |kind: &str, purpose: &str, upstream: &str, detail: String, seq: u64| {
        let e = undeclared
            .entry((
                kind.to_string(),
                purpose.to_string(),
                upstream.to_string(),
                detail,
            ))
            .or_insert((0, Some(seq)));
        e.0 += 1;
    };
    for log in logs {
        for e in read_entries(log)? {
            if e.stage == Stage::Intent
                || matches!(e.decision, Decision::Blocked | Decision::RateLimited)
            {
                continue;
            }
            let purpose = policies.purpose(&e.purpose);
            let upstream = upstreams.iter().find(|u| u.name == e.upstream);
            match (purpose, upstream) {
                (None, _) => note(
                    "purpose not declared",
                    &e.purpose,
                    &e.upstream,
                    "the purpose is not in purposes.yaml".into(),
                    e.seq,
                ),
                (_, None) => note(
                    "upstream not declared",
                    &e.purpose,
                    &e.upstream,
                    "the upstream is not in zweck.yaml".into(),
                    e.seq,
                ),
                (Some(p), Some(u)) => {
                    if let Some(a) = activities
                        .iter_mut()
                        .find(|a| a.purpose == p.name && a.upstream == u.name)
                    {
                        a.seen += 1;
                    }
                    if e.legal_basis != p.legal_basis.as_str() {
                        note(
                            "legal basis differs",
                            &e.purpose,
                            &e.upstream,
                            format!(
                                "log says {}, purposes.yaml says {}",
                                e.legal_basis,
                                p.legal_basis.as_str()
                            ),
                            e.seq,
                        );
                    }
                    if e.processor != u.processor || e.jurisdiction != u.jurisdiction {
                        note(
                            "processor differs",
                            &e.purpose,
                            &e.upstream,
                            format!(
                                "log says {} ({}), zweck.yaml says {} ({})",
                                e.processor, e.jurisdiction, u.processor, u.jurisdiction
                            ),
                            e.seq,
                        );
                    }
                    let declared = declared_categories(policies, &p.name);
                    for c in &e.categories_delivered {
                        if !covered(&declared, c) {
                            note(
                                "category not declared",
                                &e.purpose,
                                &e.upstream,
                                format!("{c} delivered"),
                                e.seq,
                            );
                        }
                    }
                }
            }
        }
    }
    let declared_not_seen = activities
        .iter()
        .filter(|a| a.seen == 0)
        .map(|a| Discrepancy {
            kind: "declared, never seen".into(),
            purpose: a.purpose.clone(),
            upstream: a.upstream.clone(),
            detail: format!("no transfer for {} via {}", a.purpose, a.processor),
            count: 0,
            first_seq: None,
        })
        .collect();
    let seen_not_declared = undeclared
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
    Ok(Ropa {
        controller: controller.name.clone(),
        controller_jurisdiction: controller.jurisdiction.clone(),
        contact: controller.contact.clone(),
        policy_version: policies.version().to_string(),
        activities,
        declared_not_seen,
        seen_not_declared,
    })
}

/// The report and exit code (0 reconciled, 1 processing seen but not declared, 2 unreadable).
pub fn ropa(
    policies: &PolicySet,
    upstreams: &[UpstreamConfig],
    logs: &[PathBuf],
    format: Format,
) -> CliReport {
    let r = match build(policies, upstreams, logs) {
        Ok(r) => r,
        Err(why) => return CliReport::new(format!("UNREADABLE {why}\n"), 2),
    };
    let code = i32::from(!r.seen_not_declared.is_empty());
    let text = match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&r).unwrap_or_else(|_| "{}".into());
            s.push('\n');
            s
        }
        Format::Csv => {
            let header: Vec<String> = [
                "section",
                "purpose",
                "data_use",
                "legal_basis",
                "categories",
                "upstream",
                "processor",
                "jurisdiction",
                "cross_border",
                "mechanism",
                "seen",
                "detail",
            ]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
            let mut rows: Vec<Vec<String>> = r
                .activities
                .iter()
                .map(|a| {
                    vec![
                        "activity".into(),
                        a.purpose.clone(),
                        a.data_use.clone(),
                        a.legal_basis.clone(),
                        a.categories.join(" "),
                        a.upstream.clone(),
                        a.processor.clone(),
                        a.jurisdiction.clone(),
                        a.cross_border.to_string(),
                        a.mechanism.clone(),
                        a.seen.to_string(),
                        String::new(),
                    ]
                })
                .collect();
            for (section, list) in [
                ("declared_not_seen", &r.declared_not_seen),
                ("seen_not_declared", &r.seen_not_declared),
            ] {
                for d in list {
                    let mut row = vec![String::new(); 12];
                    row[0] = section.into();
                    row[1] = d.purpose.clone();
                    row[5] = d.upstream.clone();
                    row[10] = d.count.to_string();
                    row[11] = format!("{}: {}", d.kind, d.detail);
                    rows.push(row);
                }
            }
            render_csv(&header, &rows)
        }
        Format::Table => render_text(&r),
    };
    CliReport::new(text, code)
}

fn render_text(r: &Ropa) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Record of processing activities (GDPR Art. 30(1))");
    let _ = writeln!(
        out,
        "(a) controller: {} ({}){}",
        r.controller,
        r.controller_jurisdiction,
        r.contact
            .as_ref()
            .map(|c| format!(", contact {c}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "    policy version: {}", r.policy_version);
    let purposes: BTreeSet<&str> = r.activities.iter().map(|a| a.purpose.as_str()).collect();
    for p in purposes {
        let acts: Vec<&Activity> = r.activities.iter().filter(|a| a.purpose == p).collect();
        let Some(first) = acts.first() else { continue };
        let _ = writeln!(out, "\npurpose {p}");
        let _ = writeln!(
            out,
            "(b) purpose: {}{} (legal basis Art. 6(1): {})",
            first.data_use,
            first
                .description
                .as_ref()
                .map(|d| format!(" - {d}"))
                .unwrap_or_default(),
            first.legal_basis
        );
        let _ = writeln!(
            out,
            "(c) categories of personal data: {}",
            if first.categories.is_empty() {
                "none".to_string()
            } else {
                first.categories.join(", ")
            }
        );
        let header: Vec<String> = [
            "(d) recipient",
            "jurisdiction",
            "(e) transfer",
            "mechanism",
            "records of",
            "seen",
        ]
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
        let rows: Vec<Vec<String>> = acts
            .iter()
            .map(|a| {
                vec![
                    format!("{} ({})", a.processor, a.upstream),
                    a.jurisdiction.clone(),
                    if a.cross_border {
                        "third country".into()
                    } else {
                        "within area".into()
                    },
                    match (&a.mechanism_ref, &a.adequacy_decision) {
                        (Some(r), _) => format!("{} {r}", a.mechanism),
                        (None, Some(d)) => format!("{} (adequacy: {d})", a.mechanism),
                        _ => a.mechanism.clone(),
                    },
                    a.record_types.join(" "),
                    a.seen.to_string(),
                ]
            })
            .collect();
        out.push_str(&render_table(&header, &rows));
    }
    let _ = writeln!(out, "\n(f) erasure time limits and (g) security measures are not derivable from configuration; see the controller's documentation.");
    let _ = writeln!(out, "\nReconciliation with the transfer log:");
    if r.seen_not_declared.is_empty() {
        let _ = writeln!(out, "  seen but not declared: none");
    } else {
        let _ = writeln!(out, "  seen but not declared:");
        for d in &r.seen_not_declared {
            let _ = writeln!(
                out,
                "    {} [{} via {}]: {} ({} entries, first seq {})",
                d.kind,
                d.purpose,
                d.upstream,
                d.detail,
                d.count,
                d.first_seq.map(|s| s.to_string()).unwrap_or_default()
            );
        }
    }
    if r.declared_not_seen.is_empty() {
        let _ = writeln!(out, "  declared but never seen: none");
    } else {
        let _ = writeln!(out, "  declared but never seen:");
        for d in &r.declared_not_seen {
            let _ = writeln!(out, "    {} via {}", d.purpose, d.upstream);
        }
    }
    out
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
