//! The review report of a discovery run: counts (certain / suggested / review), the Art. 9
//! suspects, fields that look personal but would be `system`, and what a merge added,
//! found in conflict or no longer found. Markdown for people, JSON for tools. Names and
//! paths only: discovery never reads a value.

use std::fmt::Write as _;

use serde::Serialize;

use super::classify::Certainty;
use super::yaml::{Classified, MergeOutcome};
use super::Discovered;

/// The report's content.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub upstream: String,
    pub dialect: String,
    pub objects: usize,
    pub fields: usize,
    pub certain: usize,
    pub suggested: usize,
    pub review: usize,
    pub requests: usize,
    pub per_object: Vec<ObjectCounts>,
    pub special: Vec<Flagged>,
    pub personal_but_system: Vec<Flagged>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectCounts {
    pub object: String,
    pub custom: bool,
    pub fields: usize,
    pub certain: usize,
    pub suggested: usize,
    pub review: usize,
}

/// A field a reviewer must look at.
#[derive(Debug, Clone, Serialize)]
pub struct Flagged {
    pub object: String,
    pub path: String,
    pub category: String,
    pub reasons: Vec<String>,
}

impl Report {
    pub fn new(d: &Discovered, objects: &[Classified], merge: Option<MergeOutcome>) -> Report {
        let count = |c: &Classified, k: Certainty| {
            c.fields.iter().filter(|(_, s)| s.certainty == k).count()
        };
        let per_object: Vec<ObjectCounts> = objects
            .iter()
            .map(|c| ObjectCounts {
                object: c.object.name.clone(),
                custom: c.object.custom,
                fields: c.fields.len(),
                certain: count(c, Certainty::Certain),
                suggested: count(c, Certainty::Suggested),
                review: count(c, Certainty::Review),
            })
            .collect();
        let flagged = |pick: &dyn Fn(&super::classify::Suggestion) -> bool| -> Vec<Flagged> {
            objects
                .iter()
                .flat_map(|c| {
                    c.fields
                        .iter()
                        .filter(|(_, s)| pick(s))
                        .map(|(f, s)| Flagged {
                            object: c.object.name.clone(),
                            path: f.path.clone(),
                            category: s.category.clone(),
                            reasons: s.reasons.clone(),
                        })
                })
                .collect()
        };
        Report {
            upstream: d.upstream.clone(),
            dialect: d.dialect.to_string(),
            objects: objects.len(),
            fields: per_object.iter().map(|o| o.fields).sum(),
            certain: per_object.iter().map(|o| o.certain).sum(),
            suggested: per_object.iter().map(|o| o.suggested).sum(),
            review: per_object.iter().map(|o| o.review).sum(),
            requests: d.requests,
            special: flagged(&|s| s.special),
            personal_but_system: flagged(&|s| s.personal_but_system),
            per_object,
            merge,
        }
    }

    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} objects, {} fields: {} certain ({}), {} suggested ({}), {} for review ({}); {} Art. 9 suspects",
            self.objects,
            self.fields,
            self.certain,
            percent(self.certain, self.fields),
            self.suggested,
            percent(self.suggested, self.fields),
            self.review,
            percent(self.review, self.fields),
            self.special.len()
        )
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Inventory discovery: upstream `{}` ({})\n\n{}.\n",
            self.upstream,
            self.dialect,
            self.summary()
        );
        out.push_str("| object | custom | fields | certain | suggested | review |\n|---|---|---|---|---|---|\n");
        for o in &self.per_object {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                o.object,
                if o.custom { "yes" } else { "" },
                o.fields,
                o.certain,
                o.suggested,
                o.review
            );
        }
        section(
            &mut out,
            "GDPR Art. 9 suspects",
            "Special categories: confirm, and grant them to a purpose only with an Art. 9(2) condition.",
            &self.special,
        );
        section(
            &mut out,
            "Personal-looking fields classified `system`",
            "The org or the name says personal, the type says id or stamp: check they hold no person's data.",
            &self.personal_but_system,
        );
        if let Some(m) = &self.merge {
            let _ = writeln!(out, "\n## Merge\n\n{} fields and {} objects added (marked `new:`); nothing existing was changed.\n", m.added_fields.len(), m.added_objects.len());
            if !m.conflicts.is_empty() {
                out.push_str("### Conflicts (the existing classification is kept)\n\n| resource | field | inventory | evidence suggests | evidence |\n|---|---|---|---|---|\n");
                for c in &m.conflicts {
                    let _ = writeln!(
                        out,
                        "| `{}` | `{}` | `{}` | `{}` | {} |",
                        c.resource,
                        c.path,
                        c.existing,
                        c.suggested,
                        c.reasons.join("; ")
                    );
                }
            }
            if !m.removed.is_empty() {
                out.push_str("\n### In the inventory, no longer described by the CRM\n\n");
                for r in &m.removed {
                    let _ = writeln!(out, "- `{r}`");
                }
            }
        }
        out
    }
}

fn section(out: &mut String, title: &str, note: &str, rows: &[Flagged]) {
    let _ = writeln!(out, "\n## {title} ({})\n\n{note}\n", rows.len());
    if rows.is_empty() {
        out.push_str("None.\n");
        return;
    }
    out.push_str("| object | field | category | evidence |\n|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | `{}` | {} |",
            r.object,
            r.path,
            r.category,
            r.reasons.join("; ")
        );
    }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "0 %".into();
    }
    format!("{:.0} %", part as f64 * 100.0 / whole as f64)
}
