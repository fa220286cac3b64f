//! `zweck policy diff OLD NEW`: what a policy change does, per purpose, resource and field,
//! like `deck diff` for Kong: which fields become visible, hidden or change action, and what
//! changes in consent, writes, mode, budgets and the routes that are governed at all.
//!
//! Both sides are compiled policy sets, compared by effect, not by text: a field's action is
//! what the purpose's rules resolve its category to (most specific rule, then `otherwise`),
//! and a field one side does not classify meets that side's `otherwise` (or `unclassified:
//! keep`). Every change is a [`Change`]; `Gain` means some purpose may see more than before,
//! which CI can require a second reviewer for (the command exits 1). Changes whose effect
//! cannot be ordered (another lookup table, another legal basis) count as gains only when
//! they may expose more; the rest are `Changed`.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use serde::Serialize;

use super::set::{Action, ExportBudget, Generalise, Mode, PolicySet, Purpose, Resolved, Writes};
use super::taxonomy::CatId;
use crate::audit::OnAnomaly;
use crate::dialect::Dialect;

/// Which way a change moves exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A purpose may see (or do) more than before.
    Gain,
    /// A purpose sees less.
    Loss,
    /// Different, but not more exposure (another redaction text, another legal basis).
    Changed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Gain => "gains exposure",
            Change::Loss => "loses exposure",
            Change::Changed => "changed",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The purpose it concerns (empty for routes, which concern every purpose).
    pub purpose: String,
    /// `field`, `consent`, `writes`, `mode`, `budget`, `otherwise`, `legal_basis`,
    /// `data_use`, `art9_condition`, `art10_basis`, `purpose`, `route`, `ungoverned`.
    pub aspect: &'static str,
    /// Where: `salesforce Contact $.Email`, a route template, a budget's class.
    #[serde(rename = "where")]
    pub at: String,
    /// The category of a field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub old: String,
    pub new: String,
    pub change: Change,
}

/// All differences between two policy sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    pub old_version: String,
    pub new_version: String,
    pub differences: Vec<Difference>,
}

impl PolicyDiff {
    /// True when some purpose may see or do more than before.
    pub fn gains_exposure(&self) -> bool {
        self.differences.iter().any(|d| d.change == Change::Gain)
    }

    /// Number of differences of a kind.
    pub fn count(&self, change: Change) -> usize {
        self.differences
            .iter()
            .filter(|d| d.change == change)
            .count()
    }

    /// A Markdown table, for a pull-request comment.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### Zweck policy diff\n\n`{}` → `{}`: {} change(s), **{} gain exposure**\n\n",
            short(&self.old_version),
            short(&self.new_version),
            self.differences.len(),
            self.count(Change::Gain)
        );
        if self.differences.is_empty() {
            out.push_str("No change in what any purpose may see or do.\n");
            return out;
        }
        out.push_str("| purpose | aspect | where | category | old | new | change |\n|---|---|---|---|---|---|---|\n");
        for d in &self.differences {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                md(&d.purpose),
                d.aspect,
                md(&d.at),
                md(d.category.as_deref().unwrap_or("")),
                md(&d.old),
                md(&d.new),
                if d.change == Change::Gain {
                    "**gains exposure**"
                } else {
                    d.change.as_str()
                }
            );
        }
        out
    }
}

fn short(v: &str) -> &str {
    v.get(..12).unwrap_or(v)
}

fn md(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    format!("`{}`", s.replace('|', "\\|").replace('`', "'"))
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "policy diff {} -> {}",
            short(&self.old_version),
            short(&self.new_version)
        )?;
        if self.differences.is_empty() {
            return writeln!(f, "no change in what any purpose may see or do");
        }
        let cols: [fn(&Difference) -> String; 6] = [
            |d| d.purpose.clone(),
            |d| d.aspect.to_string(),
            |d| d.at.clone(),
            |d| d.category.clone().unwrap_or_default(),
            |d| d.old.clone(),
            |d| d.new.clone(),
        ];
        let heads = ["purpose", "aspect", "where", "category", "old", "new"];
        let widths: Vec<usize> = cols
            .iter()
            .zip(heads)
            .map(|(c, h)| {
                self.differences
                    .iter()
                    .map(|d| c(d).chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(h.len())
            })
            .collect();
        for (h, w) in heads.iter().zip(&widths) {
            write!(f, "{h:w$}  ")?;
        }
        writeln!(f, "change")?;
        for d in &self.differences {
            for (c, w) in cols.iter().zip(&widths) {
                write!(f, "{:w$}  ", c(d))?;
            }
            writeln!(f, "{}", d.change.as_str())?;
        }
        writeln!(
            f,
            "{} change(s): {} gain exposure, {} lose exposure, {} other",
            self.differences.len(),
            self.count(Change::Gain),
            self.count(Change::Loss),
            self.count(Change::Changed)
        )
    }
}

/// Compares two policy sets by effect.
pub fn diff(old: &PolicySet, new: &PolicySet) -> PolicyDiff {
    let mut out = Vec::new();
    routes(old, new, &mut out);
    let names: Vec<&str> = old
        .purposes()
        .iter()
        .chain(new.purposes())
        .map(|p| p.name.as_str())
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    for name in names {
        let (o, n) = (old.purpose(name), new.purpose(name));
        match (o, n) {
            (Some(_), None) | (None, Some(_)) => out.push(Difference {
                purpose: name.to_string(),
                aspect: "purpose",
                at: String::new(),
                category: None,
                old: if o.is_some() { "defined" } else { "absent" }.into(),
                new: if n.is_some() { "defined" } else { "absent" }.into(),
                change: if n.is_some() {
                    Change::Gain
                } else {
                    Change::Loss
                },
            }),
            _ => {}
        }
        if let (Some(o), Some(n)) = (o, n) {
            settings(o, n, &mut out);
        }
        fields(old, new, name, &mut out);
    }
    PolicyDiff {
        old_version: old.version().to_string(),
        new_version: new.version().to_string(),
        differences: out,
    }
}

/// Governed and ungoverned routes added or removed, per dialect.
fn routes(old: &PolicySet, new: &PolicySet, out: &mut Vec<Difference>) {
    for dialect in dialects(old, new) {
        let templates = |set: &PolicySet, governed: bool| -> BTreeSet<String> {
            set.inventory(dialect).map_or_else(BTreeSet::new, |inv| {
                if governed {
                    inv.operations()
                        .iter()
                        .map(|o| format!("{} ({})", o.template(), o.resource()))
                        .collect()
                } else {
                    inv.ungoverned
                        .iter()
                        .map(|p| p.template().to_string())
                        .collect()
                }
            })
        };
        for (governed, aspect) in [(true, "route"), (false, "ungoverned")] {
            let (a, b) = (templates(old, governed), templates(new, governed));
            for t in b.difference(&a) {
                out.push(Difference {
                    purpose: String::new(),
                    aspect,
                    at: format!("{dialect} {t}"),
                    category: None,
                    old: "absent".into(),
                    new: "listed".into(),
                    // a new governed route opens an endpoint that was refused; a new
                    // ungoverned one lets it stream through unread
                    change: Change::Gain,
                });
            }
            for t in a.difference(&b) {
                out.push(Difference {
                    purpose: String::new(),
                    aspect,
                    at: format!("{dialect} {t}"),
                    category: None,
                    old: "listed".into(),
                    new: "absent".into(),
                    change: Change::Loss,
                });
            }
        }
    }
}

fn dialects(old: &PolicySet, new: &PolicySet) -> Vec<Dialect> {
    let mut ds: Vec<Dialect> = old
        .inventories
        .keys()
        .chain(new.inventories.keys())
        .copied()
        .collect();
    ds.sort_by_key(ToString::to_string);
    ds.dedup();
    ds
}

/// What a purpose's settings change: consent, writes, mode, otherwise, basis, incident
/// response (`on_anomaly`) and budget.
fn settings(o: &Purpose, n: &Purpose, out: &mut Vec<Difference>) {
    let mut push = |aspect, at: String, old: String, new: String, change| {
        out.push(Difference {
            purpose: n.name.clone(),
            aspect,
            at,
            category: None,
            old,
            new,
            change,
        });
    };
    let (oc, nc): (BTreeSet<&String>, BTreeSet<&String>) = (
        o.requires_consent.iter().collect(),
        n.requires_consent.iter().collect(),
    );
    for c in oc.difference(&nc) {
        // records without that consent now reach the purpose
        push(
            "consent",
            (*c).clone(),
            "required".into(),
            "not required".into(),
            Change::Gain,
        );
    }
    for c in nc.difference(&oc) {
        push(
            "consent",
            (*c).clone(),
            "not required".into(),
            "required".into(),
            Change::Loss,
        );
    }
    if o.writes != n.writes {
        let name = |w: Writes| if w == Writes::Allow { "allow" } else { "deny" };
        let change = if n.writes == Writes::Allow {
            Change::Gain
        } else {
            Change::Loss
        };
        push(
            "writes",
            String::new(),
            name(o.writes).into(),
            name(n.writes).into(),
            change,
        );
    }
    if o.mode != n.mode {
        let name = |m: Mode| {
            if m == Mode::Shadow {
                "shadow"
            } else {
                "enforce"
            }
        };
        // shadow applies nothing: everything flows unfiltered
        let change = if n.mode == Mode::Shadow {
            Change::Gain
        } else {
            Change::Loss
        };
        push(
            "mode",
            String::new(),
            name(o.mode).into(),
            name(n.mode).into(),
            change,
        );
    }
    if o.otherwise != n.otherwise {
        let change = compare(&o.otherwise, &n.otherwise);
        push(
            "otherwise",
            "unclassified fields".into(),
            describe(&o.otherwise),
            describe(&n.otherwise),
            change,
        );
    }
    if o.legal_basis != n.legal_basis {
        push(
            "legal_basis",
            String::new(),
            o.legal_basis.as_str().into(),
            n.legal_basis.as_str().into(),
            Change::Changed,
        );
    }
    if o.data_use != n.data_use {
        push(
            "data_use",
            String::new(),
            o.data_use.clone(),
            n.data_use.clone(),
            Change::Changed,
        );
    }
    if o.art9_condition != n.art9_condition {
        let name = |c: Option<super::Art9Condition>| {
            c.map_or("none".to_string(), |c| c.as_str().to_string())
        };
        let change = if o.art9_condition.is_none() {
            Change::Gain
        } else if n.art9_condition.is_none() {
            Change::Loss
        } else {
            Change::Changed
        };
        push(
            "art9_condition",
            String::new(),
            name(o.art9_condition),
            name(n.art9_condition),
            change,
        );
    }
    if o.art10_basis != n.art10_basis {
        let name = |b: &Option<String>| b.clone().unwrap_or_else(|| "none".into());
        let change = if o.art10_basis.is_none() {
            Change::Gain
        } else if n.art10_basis.is_none() {
            Change::Loss
        } else {
            Change::Changed
        };
        push(
            "art10_basis",
            String::new(),
            name(&o.art10_basis),
            name(&n.art10_basis),
            change,
        );
    }
    if o.on_anomaly != n.on_anomaly {
        // a weaker response to an incident lets a leaked key take more before it is stopped
        let strength = |a: OnAnomaly| match a {
            OnAnomaly::Alert => 0,
            OnAnomaly::Throttle => 1,
            OnAnomaly::Block => 2,
        };
        let change = if strength(n.on_anomaly) < strength(o.on_anomaly) {
            Change::Gain
        } else {
            Change::Loss
        };
        push(
            "on_anomaly",
            String::new(),
            o.on_anomaly.as_str().into(),
            n.on_anomaly.as_str().into(),
            change,
        );
    }
    budgets(
        o.export_budget.as_ref(),
        n.export_budget.as_ref(),
        &mut |at, old, new, change| {
            push("budget", at, old, new, change);
        },
    );
}

/// Budget changes: a higher rate or burst, a class opened, or no budget at all gain exposure.
fn budgets(
    o: Option<&ExportBudget>,
    n: Option<&ExportBudget>,
    push: &mut dyn FnMut(String, String, String, Change),
) {
    let show = |b: Option<&ExportBudget>| {
        b.map_or("none".to_string(), |b| {
            format!(
                "{} per {}s, burst {}",
                b.records,
                b.per.as_secs(),
                b.burst.unwrap_or(b.records)
            )
        })
    };
    let rate = |b: &ExportBudget| b.records as f64 / b.per.as_secs_f64().max(1e-9);
    let change = match (o, n) {
        (None, None) => return,
        (Some(_), None) => Change::Gain,
        (None, Some(_)) => Change::Loss,
        (Some(a), Some(b)) => {
            let ab = a.burst.unwrap_or(a.records);
            let bb = b.burst.unwrap_or(b.records);
            match (rate(b).partial_cmp(&rate(a)), bb.cmp(&ab)) {
                (Some(Ordering::Greater), _) | (_, Ordering::Greater) => Change::Gain,
                (Some(Ordering::Less), _) | (_, Ordering::Less) => Change::Loss,
                _ => Change::Changed,
            }
        }
    };
    let (os, ns) = (show(o), show(n));
    if os != ns {
        push("total".into(), os, ns, change);
    }
    let classes = |b: Option<&ExportBudget>| -> Vec<(super::RouteClass, ExportBudget)> {
        b.map(|b| b.per_class.clone()).unwrap_or_default()
    };
    let (oc, nc) = (classes(o), classes(n));
    let mut seen: Vec<super::RouteClass> = oc.iter().chain(&nc).map(|(c, _)| *c).collect();
    seen.sort();
    seen.dedup();
    for class in seen {
        let find = |v: &[(super::RouteClass, ExportBudget)]| {
            v.iter().find(|(c, _)| *c == class).map(|(_, b)| b.clone())
        };
        let (a, b) = (find(&oc), find(&nc));
        if a != b {
            budgets(a.as_ref(), b.as_ref(), &mut |_, old, new, change| {
                push(format!("class {}", class.as_str()), old, new, change);
            });
        }
    }
}

/// Field by field: every inventory entry of either side, for one purpose.
fn fields(old: &PolicySet, new: &PolicySet, name: &str, out: &mut Vec<Difference>) {
    for dialect in dialects(old, new) {
        let entries = |set: &PolicySet| -> Vec<(String, CatId)> {
            set.inventory(dialect).map_or_else(Vec::new, |inv| {
                inv.classified()
                    .into_iter()
                    .map(|(s, c)| (s.to_string(), c))
                    .collect()
            })
        };
        let (oe, ne) = (entries(old), entries(new));
        let mut all: Vec<&String> = oe.iter().chain(&ne).map(|(s, _)| s).collect();
        all.sort();
        all.dedup();
        for source in all {
            let side = |set: &PolicySet, e: &[(String, CatId)]| {
                let cat = e.iter().find(|(s, _)| s == source).map(|(_, c)| *c);
                effective(set, name, dialect, source, cat)
            };
            let (a, b) = (side(old, &oe), side(new, &ne));
            if a.0 == b.0 {
                continue;
            }
            let category = b.1.clone().or_else(|| a.1.clone());
            out.push(Difference {
                purpose: name.to_string(),
                aspect: "field",
                at: format!("{dialect} {source}"),
                category,
                old: a.0.as_ref().map_or("no purpose".into(), describe),
                new: b.0.as_ref().map_or("no purpose".into(), describe),
                change: match (&a.0, &b.0) {
                    (Some(x), Some(y)) => compare(x, y),
                    (None, Some(y)) if exposure(y) > 0 => Change::Gain,
                    (Some(x), None) if exposure(x) > 0 => Change::Loss,
                    _ => Change::Changed,
                },
            });
        }
    }
}

/// The action a purpose applies to an inventory entry (None: no such purpose), and the
/// entry's category name on that side.
fn effective(
    set: &PolicySet,
    purpose: &str,
    dialect: Dialect,
    source: &str,
    cat: Option<CatId>,
) -> (Option<Action>, Option<String>) {
    let Some(p) = set.purpose(purpose) else {
        return (None, cat.map(|c| set.taxonomy().name(c).to_string()));
    };
    let Some(c) = cat else {
        // not classified on this side: unclassified, unless its resource keeps those
        let resource = source.split(' ').next().unwrap_or("");
        let keeps = set.inventory(dialect).is_some_and(|inv| {
            inv.resources()
                .iter()
                .any(|r| r.name() == resource && r.keeps_unclassified())
        });
        let action = if keeps {
            Action::Keep
        } else {
            p.otherwise.clone()
        };
        return (Some(action), Some("unclassified".into()));
    };
    let action = match p.by_cat[c as usize] {
        Resolved::Rule(i) => p.rules[i as usize].action.clone(),
        Resolved::Otherwise => p.otherwise.clone(),
        Resolved::System => Action::Keep,
    };
    (Some(action), Some(set.taxonomy().name(c).to_string()))
}

/// 0: nothing flows (drop, redact, block), 1: a transformed value, 2: the value.
fn exposure(a: &Action) -> u8 {
    match a {
        Action::Drop | Action::Redact(_) | Action::Block => 0,
        Action::Mask { .. }
        | Action::Pseudonymise
        | Action::Generalise(_)
        | Action::Truncate(_) => 1,
        Action::Keep => 2,
    }
}

/// How moving from `a` to `b` changes exposure. Transformations of one kind compare by
/// their parameter; other pairs at the same level may expose more, so they count as gains.
fn compare(a: &Action, b: &Action) -> Change {
    match exposure(b).cmp(&exposure(a)) {
        Ordering::Greater => return Change::Gain,
        Ordering::Less => return Change::Loss,
        Ordering::Equal => {}
    }
    let by = |x: Ordering| match x {
        Ordering::Greater => Change::Gain,
        Ordering::Less => Change::Loss,
        Ordering::Equal => Change::Changed,
    };
    match (a, b) {
        _ if exposure(a) == 0 => Change::Changed,
        (Action::Truncate(x), Action::Truncate(y)) => by(y.cmp(x)),
        (Action::Mask { keep_last: x }, Action::Mask { keep_last: y }) => by(y.cmp(x)),
        (Action::Generalise(x), Action::Generalise(y)) => match (x, y) {
            (Generalise::Month, Generalise::Year) => Change::Loss,
            (Generalise::Year, Generalise::Month) => Change::Gain,
            // a narrower range tells more
            (Generalise::Range(x), Generalise::Range(y)) => by(x.cmp(y)),
            (Generalise::PostalPrefix(x), Generalise::PostalPrefix(y)) => by(y.cmp(x)),
            _ => Change::Gain,
        },
        _ => Change::Gain,
    }
}

/// An action as `policy diff` prints it.
pub fn describe(a: &Action) -> String {
    match a {
        Action::Redact(Some(s)) => format!("redact \"{s}\""),
        Action::Mask { keep_last } if *keep_last > 0 => format!("mask keep_last {keep_last}"),
        Action::Truncate(n) => format!("truncate {n}"),
        Action::Generalise(g) => match g {
            Generalise::Year => "generalise year".into(),
            Generalise::Month => "generalise month".into(),
            Generalise::Range(w) => format!("generalise range {w}"),
            Generalise::Map(m) => format!("generalise map {}", m.source),
            Generalise::PostalPrefix(n) => format!("generalise postal_prefix {n}"),
        },
        other => other.name().to_string(),
    }
}

#[cfg(test)]
mod tests;
