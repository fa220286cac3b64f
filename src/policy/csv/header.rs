//! The decision on the header row, taken once per body before any row is read: what each
//! column is (classified against every candidate resource), which rule governs it (the
//! strictest among the candidates), which consent checks keep a row or empty a parent's cells,
//! and whether the header alone refuses the body. The module docs of `policy::csv` give the
//! rules; [`plan_header`] runs the steps in order.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::Arc;

use serde_json::Value;

use super::CsvPolicy;
use crate::policy::actions::{self, PurposeKey};
use crate::policy::engine::Refusal;
use crate::policy::select::{push_key, FieldNode};
use crate::policy::set::{Action, ConsentSignal, Inventory, PolicySet, Purpose, Resolved};
use crate::policy::taxonomy::{CatId, Taxonomy};

/// How one column is governed.
pub(super) struct Column {
    /// `$.Account.Name`: the column as a field path (a template: names, never values).
    pub(super) path: String,
    pub(super) action: Action,
    pub(super) rule: Arc<str>,
    /// The category whose rule won (a `block` refusal names it).
    cat: CatId,
    /// Categories the candidates give this column (reported as received / delivered).
    pub(super) cats: Vec<CatId>,
    /// The cell transformation (for every action that replaces values).
    pub(super) replace: Option<Arc<Replacer>>,
    /// Parent-consent groups whose withholding empties this column's cells.
    pub(super) groups: Vec<usize>,
}

pub(super) type Replacer = dyn Fn(&str) -> String + Send + Sync;

/// A consent check on a row: `column` holds the signal (None: the column is absent).
pub(super) struct Check {
    pub(super) signal: ConsentSignal,
    pub(super) column: Option<usize>,
}

/// A parent resource with its own required consent signals: its cells in a row are emptied
/// when they are not granted (or the enclosing parent's are not).
pub(super) struct Group {
    pub(super) checks: Vec<Check>,
    pub(super) parent: Option<usize>,
}

/// The decisions taken on the header row.
pub(super) struct HeaderPlan {
    pub(super) columns: Vec<Column>,
    /// Row consent: (rule id `consent.<signal>`, checks that must all hold). A signal no
    /// candidate resource defines has no check and removes every row.
    pub(super) consent: Vec<(Arc<str>, Vec<Check>)>,
    /// Parents before their children (shorter prefixes first).
    pub(super) groups: Vec<Group>,
    /// Whether any column is written (all dropped: nothing is, and no row is a record).
    pub(super) any_kept: bool,
    pub(super) refusal: Option<Refusal>,
}

/// Decides the header row `header` for `policy`: classify the columns against the candidate
/// resources, plan each column, then consent for rows and parent groups, then the refusal.
pub(super) fn plan_header<S: Deref<Target = PolicySet>>(
    policy: &CsvPolicy<S>,
    header: &[String],
) -> HeaderPlan {
    let set = &*policy.set;
    let tax = set.taxonomy();
    // `csv_plan` checked the candidates against this inventory (same snapshot).
    let inv = set
        .inventory(policy.dialect)
        .filter(|inv| policy.candidates.iter().all(|i| *i < inv.resources.len()));
    let planner = Planner {
        purpose: &policy.purpose,
        tax,
        inv,
        key: policy.key.as_ref(),
        header,
        email: tax.get("user.contact.email"),
    };
    let segments: Vec<Vec<&str>> = header.iter().map(|h| h.split('.').collect()).collect();
    let chosen = planner.candidates(&policy.candidates, &segments);
    let mut keys = GroupKeys::default();
    let mut columns: Vec<Column> = segments
        .iter()
        .enumerate()
        .map(|(i, segs)| planner.column(i, segs, &chosen, &mut keys))
        .collect();
    let consent = planner.row_consent(&chosen);
    let groups = planner.consent_groups(&keys, &mut columns);
    let refusal = planner.refusal(&columns);
    let any_kept = columns.iter().any(|c| c.action != Action::Drop);
    HeaderPlan {
        columns,
        consent,
        groups,
        any_kept,
        refusal,
    }
}

/// What every step of [`plan_header`] reads.
struct Planner<'a> {
    purpose: &'a Purpose,
    tax: &'a Taxonomy,
    /// None when the dialect has no inventory: every column is unclassified.
    inv: Option<&'a Inventory>,
    key: Option<&'a Arc<PurposeKey>>,
    header: &'a [String],
    /// `user.contact.email`: masking keeps an address's domain.
    email: Option<CatId>,
}

/// One candidate resource and what it makes of each column.
struct Candidate {
    resource: usize,
    columns: Vec<Classified>,
}

/// What one rule makes of a column: its action, the rule id the report counts it under, and
/// the category it was chosen for.
#[derive(Clone)]
struct Verdict {
    action: Action,
    rule: Arc<str>,
    cat: CatId,
}

/// The parent-consent groups met while planning columns: (column prefix, resource), numbered
/// in the order met.
#[derive(Default)]
struct GroupKeys(Vec<(Vec<String>, usize)>);

impl GroupKeys {
    /// The number of the group of `resource` under `prefix`, added when new.
    fn index(&mut self, prefix: Vec<String>, resource: usize) -> usize {
        if let Some(i) = self
            .0
            .iter()
            .position(|(p, r)| *p == prefix && *r == resource)
        {
            return i;
        }
        self.0.push((prefix, resource));
        self.0.len() - 1
    }
}

impl Planner<'_> {
    /// The resources the rows may be: among `resources`, those that classify every column
    /// some resource classifies (all of them when none does).
    fn candidates(&self, resources: &[usize], segments: &[Vec<&str>]) -> Vec<Candidate> {
        let Some(inv) = self.inv else {
            return Vec::new();
        };
        let all: Vec<Candidate> = resources
            .iter()
            .map(|r| Candidate {
                resource: *r,
                columns: segments
                    .iter()
                    .map(|s| classify_column(inv, *r, s))
                    .collect(),
            })
            .collect();
        let known: Vec<bool> = (0..segments.len())
            .map(|i| all.iter().any(|c| c.columns[i].cat.is_some()))
            .collect();
        let consistent = |c: &Candidate| {
            c.columns
                .iter()
                .zip(&known)
                .all(|(col, k)| !*k || col.cat.is_some())
        };
        if all.iter().any(consistent) {
            all.into_iter().filter(consistent).collect()
        } else {
            all
        }
    }

    /// Plans column `i`, named `segs` (`Account.Name`: `["Account", "Name"]`): every chosen
    /// candidate gives a verdict and the strictest wins; a hop into a parent resource with its
    /// own consent signal puts the column in that parent's group.
    fn column(
        &self,
        i: usize,
        segs: &[&str],
        chosen: &[Candidate],
        keys: &mut GroupKeys,
    ) -> Column {
        let mut path = String::from("$");
        for s in segs {
            push_key(&mut path, s);
        }
        let mut verdicts = Vec::with_capacity(chosen.len().max(1));
        let mut groups = Vec::new();
        for candidate in chosen {
            let c = &candidate.columns[i];
            verdicts.push(self.verdict(c.cat, c.resource));
            for (n, child) in &c.hops {
                if self.own_signal(*child) {
                    let prefix = segs[..*n]
                        .iter()
                        .map(std::string::ToString::to_string)
                        .collect();
                    let g = keys.index(prefix, *child);
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
        }
        if verdicts.is_empty() {
            // No resource applies: everything is unclassified.
            verdicts.push(self.otherwise(self.tax.unclassified()));
        }
        let Verdict { action, rule, cat } = strictest(&verdicts);
        let mut cats: Vec<CatId> = Vec::new();
        for v in &verdicts {
            if !cats.contains(&v.cat) {
                cats.push(v.cat);
            }
        }
        let is_email = self
            .email
            .is_some_and(|e| self.tax.lineage(cat).any(|c| c == e));
        let replace = replacer(&action, is_email, self.key.cloned());
        Column {
            path,
            action,
            rule,
            cat,
            cats,
            replace,
            groups,
        }
    }

    /// The rule `cat` (None: unclassified) meets on `resource`, as the JSON engine resolves it.
    fn verdict(&self, cat: Option<CatId>, resource: usize) -> Verdict {
        let unclassified = self.tax.unclassified();
        let cat = cat.unwrap_or(unclassified);
        if cat == unclassified {
            let keep = self
                .inv
                .is_some_and(|inv| inv.resources[resource].keep_unclassified);
            return if keep {
                Verdict {
                    action: Action::Keep,
                    rule: "unclassified.keep".into(),
                    cat,
                }
            } else {
                self.otherwise(cat)
            };
        }
        let rules = &self.purpose.rules;
        match self.purpose.by_cat.get(cat as usize) {
            Some(Resolved::Rule(i)) if (*i as usize) < rules.len() => {
                let r = &rules[*i as usize];
                Verdict {
                    action: r.action.clone(),
                    rule: r.id.clone(),
                    cat,
                }
            }
            Some(Resolved::System) => Verdict {
                action: Action::Keep,
                rule: "system".into(),
                cat,
            },
            _ => self.otherwise(cat),
        }
    }

    /// The purpose's `otherwise` for `cat`.
    fn otherwise(&self, cat: CatId) -> Verdict {
        Verdict {
            action: self.purpose.otherwise.clone(),
            rule: "otherwise".into(),
            cat,
        }
    }

    /// Whether `resource` defines one of the consent signals the purpose requires.
    fn own_signal(&self, resource: usize) -> bool {
        self.inv.is_some_and(|inv| {
            self.purpose
                .requires_consent
                .iter()
                .any(|c| inv.resources[resource].consent.contains_key(c))
        })
    }

    /// Row consent: per signal the purpose requires, the check of every chosen resource (a
    /// resource that lacks the signal leaves no check, which removes every row).
    fn row_consent(&self, chosen: &[Candidate]) -> Vec<(Arc<str>, Vec<Check>)> {
        self.purpose
            .requires_consent
            .iter()
            .map(|c| {
                let checks: Option<Vec<Check>> = chosen
                    .iter()
                    .map(|r| self.check(r.resource, c, &[]))
                    .collect();
                (
                    Arc::from(format!("consent.{c}")),
                    checks.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The check of `resource`'s `signal`, whose field sits under the column prefix `prefix`.
    fn check(&self, resource: usize, signal: &str, prefix: &[String]) -> Option<Check> {
        let sig = self.inv?.resources[resource].consent.get(signal)?;
        let mut name: Vec<String> = prefix.to_vec();
        name.extend(sig.field.iter().cloned());
        let name = name.join(".");
        Some(Check {
            signal: sig.clone(),
            column: self.header.iter().position(|h| *h == name),
        })
    }

    /// The parent-consent groups, parents before their children (shorter prefixes first),
    /// each with its checks and its nearest enclosing group. Renumbers the columns' groups to
    /// that order.
    fn consent_groups(&self, keys: &GroupKeys, columns: &mut [Column]) -> Vec<Group> {
        let keys = &keys.0;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|g| keys[*g].0.len());
        let mut remap = vec![0usize; keys.len()];
        for (new, old) in order.iter().enumerate() {
            remap[*old] = new;
        }
        let groups = order
            .iter()
            .map(|g| {
                let (prefix, resource) = &keys[*g];
                let checks = self
                    .purpose
                    .requires_consent
                    .iter()
                    .filter(|c| {
                        self.inv
                            .is_some_and(|inv| inv.resources[*resource].consent.contains_key(*c))
                    })
                    .filter_map(|c| self.check(*resource, c, prefix))
                    .collect();
                // The nearest enclosing group: the longest shorter prefix of the same path.
                let parent = order
                    .iter()
                    .filter(|o| {
                        let p = &keys[**o].0;
                        p.len() < prefix.len() && prefix.starts_with(p)
                    })
                    .max_by_key(|o| keys[**o].0.len())
                    .map(|o| remap[*o]);
                Group { checks, parent }
            })
            .collect();
        for c in columns {
            for g in &mut c.groups {
                *g = remap[*g];
            }
        }
        groups
    }

    /// What the header alone refuses: a `block` column (naming the first one's category and
    /// every blocked column), else a pseudonymised column without a key.
    fn refusal(&self, columns: &[Column]) -> Option<Refusal> {
        let mut blocked = columns.iter().filter(|c| c.action == Action::Block);
        if let Some(first) = blocked.next() {
            let field_paths: BTreeSet<String> = std::iter::once(first)
                .chain(blocked)
                .map(|c| c.path.clone())
                .collect();
            return Some(Refusal::Blocked {
                category: self.tax.name(first.cat).to_string(),
                field_paths: field_paths.into_iter().collect(),
            });
        }
        let needs_key =
            self.key.is_none() && columns.iter().any(|c| c.action == Action::Pseudonymise);
        needs_key.then_some(Refusal::PseudonymKeyMissing)
    }
}

/// The strictest of `verdicts` (not empty) by [`rank`]; two different transformations (or
/// redactions) of one column make a drop, since neither is sure.
fn strictest(verdicts: &[Verdict]) -> Verdict {
    let top = verdicts.iter().map(|v| rank(&v.action)).max().unwrap_or(0);
    let winners: Vec<&Verdict> = verdicts.iter().filter(|v| rank(&v.action) == top).collect();
    let mut verdict = winners[0].clone();
    if winners.iter().any(|w| w.action != verdict.action) {
        verdict.action = Action::Drop;
        verdict.rule = "ambiguous".into();
    }
    verdict
}

/// What one candidate resource makes of a column.
struct Classified {
    cat: Option<CatId>,
    /// The resource the last segment belongs to.
    resource: usize,
    /// Parent hops: (number of leading segments, resource).
    hops: Vec<(usize, usize)>,
}

/// Column `A.B.C` is the record field `$.A.B.C`: walked like the JSON engine walks a record
/// (inherited categories, `[*]` for unnamed members, annotations), switching to the child
/// resource's field map at a `children` entry.
fn classify_column(inv: &Inventory, res: usize, segments: &[&str]) -> Classified {
    let mut node: Option<&FieldNode> = Some(&inv.resources[res].fields);
    let mut cat: Option<CatId> = node.and_then(|n| n.cat);
    let mut resource = res;
    let mut hops = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let (cn, inherited) = FieldNode::member(node, seg, cat);
        if let Some(child) = cn.and_then(|n| n.child) {
            if i + 1 == segments.len() || child >= inv.resources.len() {
                // A whole record in one cell is not a field: unclassified.
                return Classified {
                    cat: None,
                    resource,
                    hops,
                };
            }
            hops.push((i + 1, child));
            resource = child;
            node = Some(&inv.resources[child].fields);
            cat = node.and_then(|n| n.cat);
            continue;
        }
        cat = cn.and_then(|n| n.cat).or(inherited);
        node = cn;
    }
    Classified {
        cat,
        resource,
        hops,
    }
}

/// How strict an action is: block, drop, redact, a transformation, keep.
fn rank(a: &Action) -> u8 {
    match a {
        Action::Keep => 0,
        Action::Mask { .. }
        | Action::Pseudonymise
        | Action::Generalise(_)
        | Action::Truncate(_) => 1,
        Action::Redact(_) => 2,
        Action::Drop => 3,
        Action::Block => 4,
    }
}

/// The cell transformation of an action (None for keep, drop and block).
fn replacer(action: &Action, email: bool, key: Option<Arc<PurposeKey>>) -> Option<Arc<Replacer>> {
    let text = |v: Value| match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let f: Arc<Replacer> = match action.clone() {
        Action::Keep | Action::Drop | Action::Block => return None,
        Action::Redact(fixed) => Arc::new(move |v: &str| match &fixed {
            Some(s) if !v.is_empty() => s.clone(),
            _ => String::new(),
        }),
        Action::Mask { keep_last } => Arc::new(move |v: &str| {
            if v.is_empty() {
                return String::new();
            }
            text(actions::mask(
                &Value::String(v.to_string()),
                keep_last,
                email,
            ))
        }),
        Action::Truncate(n) => Arc::new(move |v: &str| match v.char_indices().nth(n) {
            Some((i, _)) => v[..i].to_string(),
            None => v.to_string(),
        }),
        Action::Generalise(g) => Arc::new(move |v: &str| {
            if v.is_empty() {
                return String::new();
            }
            text(actions::generalise(&Value::String(v.to_string()), &g))
        }),
        Action::Pseudonymise => Arc::new(move |v: &str| match &key {
            _ if v.is_empty() => String::new(),
            Some(k) => k.pseudonym(v),
            // Refused before streaming; never passes the value.
            None => String::new(),
        }),
    };
    Some(f)
}
