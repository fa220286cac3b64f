//! The engine: one pure function from (purpose, operation, direction, parsed body) to a
//! minimised body and an account of what happened. No I/O, no clock, no global state.
//!
//! One walk per body. Record selectors say where records sit; around them only `envelope`
//! keys are classified, inside them the resource's field tree classifies each key as the
//! walk reaches it. Every value ends at a leaf with exactly one category (`unclassified`
//! when nothing matched), and the purpose's precomputed rule for that category decides.
//! Because classification is by lookup and the default is `otherwise` (never keep), a
//! selector that misses can only over-redact.
//!
//! Order inside a record: type (unknown types are removed whole), then consent (records
//! without the purpose's consent are removed), then fields. Requests of writes only know
//! keep, drop and block: anything else would store altered values in the CRM. And a write
//! that loses a field is refused naming it (the CRM would store less than the app sent, and
//! the app would never know), unless the purpose minimises that resource's writes silently;
//! even then a record left with nothing to write is refused rather than sent as `{}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use super::actions::{self, PseudonymKey, PurposeKey};
use super::query::{Aggregate, Shape};
use super::select::{navigate, push_key, FieldNode, LocNode};
use super::set::{
    Action, ConsentSignal, Counts, Inventory, Mode, OpKind, Operation, PolicySet, Purpose,
    Resolved, Resource, RuleSlot, Withheld, Writes,
};
use super::taxonomy::{CatId, Taxonomy};
use crate::dialect::Dialect;

/// Which body of an exchange: the one the engine filters, the one a transfer-log line covers.
///
/// One type for both, defined here because the audit module already builds on the policy
/// (its processing record reads purposes) while the policy knows nothing of the log. The log
/// names the directions from the controller's side, as GDPR's transfer rules do:
/// `to_processor` and `from_processor` (docs/transfer-log.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// The app's body going to the CRM.
    #[serde(rename = "to_processor")]
    Request,
    /// The CRM's body going back to the app.
    #[serde(rename = "from_processor")]
    Response,
}

/// What `apply` did (or, in shadow mode, would have done). Counts, rule ids and category
/// names only: never values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Located records that, after consent filtering, still carry a non-system field.
    pub records: u64,
    /// Per action (`keep`, `drop`, `redact`, `mask`, `pseudonymise`, `generalise`,
    /// `truncate`, `record_removed`): how many values or records.
    pub actions: BTreeMap<&'static str, u64>,
    /// Per rule id (`fields.<category>`, `otherwise`, `system`, `unclassified.keep`,
    /// `consent.<signal>`, `unknown_type`): how many values or records.
    pub rules: BTreeMap<Arc<str>, u64>,
    /// Non-system categories of the non-null values in the body as received.
    pub categories_received: BTreeSet<&'static str>,
    /// Non-system categories of the values still (possibly transformed) in the result.
    pub categories_delivered: BTreeSet<&'static str>,
    /// True when the body was (or, in shadow mode, would have been) changed.
    pub changed: bool,
    /// The purpose is in `mode: shadow`: the body was left as it was.
    pub shadow: bool,
    /// In shadow mode, the refusal enforcement would have produced.
    pub shadow_refusal: Option<Refusal>,
    /// Fields the inventory does not classify (runtime drift): resource and field path, at
    /// most [`MAX_UNKNOWN_PER_BODY`] distinct per body. Names only, never values.
    pub unclassified: Vec<UnknownField>,
}

/// A field seen in a governed body that no inventory entry classifies: the engine treats it
/// as `unclassified` (default deny) and reports it for `zweck inventory drift`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub resource: String,
    /// The field's path in its record (`$.New_Field__c`, `$.properties.new_one`), or
    /// `$..key` when its place in the record is not described at all.
    pub path: String,
}

/// Distinct unknown fields reported per body: a body of many unknown keys costs a bounded
/// amount of bookkeeping.
pub const MAX_UNKNOWN_PER_BODY: usize = 64;

impl Outcome {
    /// `categories_received` as owned names (for the transfer log).
    pub fn received_names(&self) -> Vec<String> {
        self.categories_received
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    }

    /// `categories_delivered` as owned names (for the transfer log).
    pub fn delivered_names(&self) -> Vec<String> {
        self.categories_delivered
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    }

    /// Adds the categories a request's query sends (predicates, lookups): they reach the
    /// processor as sent, so they are both received and delivered.
    pub fn add_carried(&mut self, carried: &std::collections::BTreeSet<&'static str>) {
        self.categories_received.extend(carried.iter().copied());
        self.categories_delivered.extend(carried.iter().copied());
    }

    /// `actions` with owned names (for the transfer log).
    pub fn action_counts(&self) -> BTreeMap<String, u64> {
        self.actions
            .iter()
            .map(|(a, n)| (a.to_string(), *n))
            .collect()
    }
}

/// Why an exchange is refused. No variant carries a value: field paths are templates
/// (`$.records[*].Email`) built from keys, never from data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A `block` rule (or `otherwise: block`) met a value of this category (403).
    #[error("category {category} may not flow for this purpose ({} field(s))", field_paths.len())]
    Blocked {
        category: String,
        field_paths: Vec<String>,
    },
    /// The purpose has `writes: deny` (403).
    #[error("this purpose may not write or delete")]
    WriteDenied,
    /// A write carries fields whose rule is neither keep, drop nor block (403).
    #[error("a write may only keep, drop or block fields ({} field(s) refused)", field_paths.len())]
    WriteActionNotAllowed { field_paths: Vec<String> },
    /// Minimisation would drop fields (or whole records) of a write: the CRM would store
    /// less than the app sent, and the app would not know (403). `nothing_left`: even a
    /// purpose that minimises writes silently would send a record that writes nothing.
    #[error("the write would lose {} field(s){}", field_paths.len(), if *nothing_left { " and write nothing" } else { "" })]
    WriteFieldsDropped {
        field_paths: Vec<String>,
        nothing_left: bool,
    },
    /// The body is one record and it is withheld (missing consent, unknown type):
    /// for this purpose the record does not exist (404 fits best).
    #[error("the record is withheld from this purpose ({rule})")]
    RecordWithheld { rule: String },
    /// A `pseudonymise` rule applied but no pseudonym key was configured (500: a
    /// configuration fault; `serve` should refuse to start instead).
    #[error("pseudonymise needs a pseudonym key and none is configured")]
    PseudonymKeyMissing,
    /// The operation does not belong to this policy set (its dialect or resource is gone:
    /// `classify` and `apply` must use the same snapshot). 500.
    #[error("the operation is not part of this policy set (dialect {0})")]
    NoInventory(Dialect),
}

/// One field decision, for `explain` and coverage (paths and names only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDecision {
    /// Template path of the field (`$.records[*].Email`).
    pub path: String,
    /// The inventory entry that classified it (`Contact $.Email`); none for unclassified
    /// values, records and inherited annotation categories.
    pub field: Option<std::sync::Arc<str>>,
    /// Category the field resolved to.
    pub category: String,
    /// Rule id.
    pub rule: String,
    /// Action name.
    pub action: String,
}

/// Filters one body for one purpose. See the module docs for the order of decisions.
/// In `mode: shadow` the body is left unchanged and the `Outcome` says what would have
/// happened (`shadow_refusal` instead of an `Err`).
pub fn apply(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    dir: Direction,
    body: &mut Value,
    key: Option<&PseudonymKey>,
) -> Result<Outcome, Refusal> {
    apply_shaped(set, purpose, op, dir, body, key, &Shape::default())
}

/// [`apply`] to the answer of a query Zweck reviewed (`crate::policy::query`): consent
/// fields it added to the query leave each record once its consent is decided, and the rows
/// of an aggregate query are classified by the query's columns instead of the resource's
/// fields (an `AggregateResult` is no record type, so without a shape it is removed).
pub fn apply_shaped(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    dir: Direction,
    body: &mut Value,
    key: Option<&PseudonymKey>,
    shape: &Shape,
) -> Result<Outcome, Refusal> {
    apply_with(set, purpose, op, dir, body, key, None, shape)
}

/// [`apply_shaped`], also listing every field decision in `trace` when one is given (for
/// `explain`; paths and names only). Shadow mode traces what enforcement would have done.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_with(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    dir: Direction,
    body: &mut Value,
    key: Option<&PseudonymKey>,
    trace: Option<&mut Vec<FieldDecision>>,
    shape: &Shape,
) -> Result<Outcome, Refusal> {
    if purpose.mode == Mode::Shadow {
        let mut copy = body.clone();
        let mut out = match run(set, purpose, op, dir, &mut copy, key, trace, shape) {
            Ok(o) => o,
            Err(r) => Outcome {
                shadow_refusal: Some(r),
                ..Outcome::default()
            },
        };
        out.shadow = true;
        return Ok(out);
    }
    run(set, purpose, op, dir, body, key, trace, shape)
}

pub(super) const A_RECORD_REMOVED: usize = 8;
/// Every name an outcome's `actions` (and a transfer record's) can hold.
pub const ACTION_NAMES: [&str; 9] = [
    "keep",
    "drop",
    "redact",
    "mask",
    "pseudonymise",
    "generalise",
    "truncate",
    "block",
    "record_removed",
];

pub(super) fn action_index(a: &Action) -> usize {
    match a {
        Action::Keep => 0,
        Action::Drop => 1,
        Action::Redact(_) => 2,
        Action::Mask { .. } => 3,
        Action::Pseudonymise => 4,
        Action::Generalise(_) => 5,
        Action::Truncate(_) => 6,
        Action::Block => 7,
    }
}

fn may_refuse(purpose: &Purpose, dir: Direction) -> bool {
    purpose.otherwise == Action::Block
        || purpose.rules.iter().any(|r| r.action == Action::Block)
        || (dir == Direction::Request
            && purpose.rules.iter().any(|r| !r.action.allowed_on_writes()))
}

#[allow(clippy::too_many_arguments)]
fn run(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    dir: Direction,
    body: &mut Value,
    key: Option<&PseudonymKey>,
    trace: Option<&mut Vec<FieldDecision>>,
    shape: &Shape,
) -> Result<Outcome, Refusal> {
    // A tunnel's body holds sub-requests, not records: only `crate::proxy::tunnel` may govern it,
    // part by part. Filtering it as one record would pass its sub-requests unread.
    if op.tunnel.is_some() {
        return Err(Refusal::NoInventory(op.dialect));
    }
    let deny = purpose.writes == Writes::Deny;
    match (op.op, dir) {
        (OpKind::Write | OpKind::Delete, Direction::Request) if deny => {
            return Err(Refusal::WriteDenied)
        }
        (OpKind::Delete, _) if deny => return Err(Refusal::WriteDenied),
        // Bodies of POST reads (search filters, id lists) are queries, not records: query
        // minimisation is a separate step.
        (OpKind::Read, Direction::Request) => return Ok(Outcome::default()),
        _ => {}
    }
    let inv = set
        .inventory(op.dialect)
        .ok_or(Refusal::NoInventory(op.dialect))?;
    let tax = &set.taxonomy;
    // A write that loses a field is refused naming it: writes always track paths.
    let write = dir == Direction::Request;
    let track = trace.is_some() || write || may_refuse(purpose, dir);
    let mut w = Walker {
        tax,
        inv,
        purpose,
        write,
        consent: dir == Direction::Response && op.op == OpKind::Read,
        withheld_null: op.withheld == Withheld::Null,
        observing: false,
        master: key,
        pkey: None,
        key_missing: false,
        email_cat: tax.get("user.contact.email"),
        track,
        path: String::from("$"),
        trace,
        actions: [0; 9],
        rule_hits: vec![0; purpose.rule_ids.len()],
        received: vec![false; tax.len()],
        delivered: vec![false; tax.len()],
        records: 0,
        located_kept: 0,
        personal: false,
        changed: false,
        blocked: None,
        block_paths: BTreeSet::new(),
        write_bad: BTreeSet::new(),
        last_removal: None,
        source: None,
        unknown: Vec::new(),
        system_root: tax.get("system"),
        dropped: BTreeSet::new(),
        loud_drop: false,
        rec_dropped: false,
        rec_written: false,
        nothing_left: false,
        // a query's shape describes its answer, never a request body
        shape: (dir == Direction::Response).then_some(shape),
    };
    // An operation from another snapshot of the policies must not index out of bounds.
    let res = match inv.resources.get(op.resource_idx) {
        Some(r) if r.name == op.resource => r,
        _ => return Err(Refusal::NoInventory(op.dialect)),
    };
    let located = res.records.iter().find_map(|s| s.locate(body));
    let verdict = w.walk(
        body,
        Some(&res.envelope),
        None,
        located.as_deref(),
        op.resource_idx,
    );

    if let Some(cat) = w.blocked {
        return Err(Refusal::Blocked {
            category: tax.name(cat).to_string(),
            field_paths: w.block_paths.into_iter().collect(),
        });
    }
    if !w.write_bad.is_empty() {
        return Err(Refusal::WriteActionNotAllowed {
            field_paths: w.write_bad.into_iter().collect(),
        });
    }
    if w.key_missing {
        return Err(Refusal::PseudonymKeyMissing);
    }
    if !w.dropped.is_empty() && (w.loud_drop || w.nothing_left) {
        return Err(Refusal::WriteFieldsDropped {
            field_paths: w.dropped.into_iter().collect(),
            nothing_left: w.nothing_left,
        });
    }
    // An aggregate's count (`COUNT()`, the number of groups) is its answer, computed over
    // records the purpose sees every one of (otherwise it was refused): it passes.
    if located.is_some()
        && op.op == OpKind::Read
        && dir == Direction::Response
        && shape.aggregate.is_none()
    {
        w.changed |= rewrite_counts(res, purpose.counts, w.located_kept, body);
    }
    match verdict {
        Verdict::Keep => {}
        Verdict::Remove => {
            *body = Value::Null;
        }
        Verdict::RemoveRecord => {
            return Err(Refusal::RecordWithheld {
                rule: w
                    .last_removal
                    .and_then(|slot| purpose.rule_ids.get(slot))
                    .map(std::string::ToString::to_string)
                    .unwrap_or_default(),
            })
        }
    }
    Ok(Outcome {
        changed: w.changed,
        ..Counted {
            tax,
            purpose,
            inv,
            actions: &w.actions,
            rule_hits: &w.rule_hits,
            received: &w.received,
            delivered: &w.delivered,
            records: w.records,
            unknown: &w.unknown,
        }
        .outcome()
    })
}

/// What a walk counted, turned into an [`Outcome`] by the DOM walk and the span walk alike
/// (`super::span`), so the two cannot report differently.
pub(super) struct Counted<'c, 'a> {
    pub tax: &'a Taxonomy,
    pub purpose: &'a Purpose,
    pub inv: &'a Inventory,
    pub actions: &'c [u64; 9],
    pub rule_hits: &'c [u64],
    pub received: &'c [bool],
    pub delivered: &'c [bool],
    pub records: u64,
    pub unknown: &'c [(usize, Option<&'a FieldNode>, String)],
}

impl Counted<'_, '_> {
    /// The outcome (`changed` false: the caller sets it).
    pub fn outcome(&self) -> Outcome {
        let tax = self.tax;
        // Names are static (the taxonomy is compiled in) and rule ids shared: reporting
        // allocates only the maps' nodes. Taken in name order, the set is built without a
        // sort.
        let names = |flags: &[bool]| -> BTreeSet<&'static str> {
            tax.in_name_order()
                .filter(|i| flags.get(*i as usize).copied().unwrap_or(false) && !tax.is_system(*i))
                .map(|i| tax.name(i))
                .collect()
        };
        let actions = self
            .actions
            .iter()
            .zip(ACTION_NAMES)
            .filter(|(n, _)| **n > 0)
            .map(|(n, name)| (name, *n))
            .collect();
        // summed, not collected: two slots with one id (a consent signal listed twice) add up
        let mut rules: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for (n, id) in self.rule_hits.iter().zip(&self.purpose.rule_ids) {
            if *n > 0 {
                *rules.entry(id.clone()).or_insert(0) += *n;
            }
        }
        Outcome {
            records: self.records,
            actions,
            rules,
            categories_received: names(self.received),
            categories_delivered: names(self.delivered),
            changed: false,
            shadow: false,
            shadow_refusal: None,
            unclassified: unknown_fields(self.inv, self.unknown),
        }
    }
}

/// The unknown keys as resource names and field paths: the parent's path is found by a
/// search of the resource's field tree (only for bodies that carry unknown fields).
fn unknown_fields(
    inv: &Inventory,
    unknown: &[(usize, Option<&FieldNode>, String)],
) -> Vec<UnknownField> {
    unknown
        .iter()
        .filter_map(|(res, parent, key)| {
            let r = inv.resources.get(*res)?;
            let mut path = String::from("$");
            let placed = parent.is_some_and(|p| {
                known_place(r, p, &mut path)
                    || node_path(&r.fields, p, &mut path)
                    || node_path(&r.envelope, p, &mut path)
            });
            if !placed {
                path = String::from("$.");
            }
            crate::policy::select::push_key(&mut path, key);
            Some(UnknownField {
                resource: r.name.clone(),
                path,
            })
        })
        .collect()
}

/// Appends the place `target` recorded when the inventory was compiled, if it is still where
/// that place says in `r`'s fields or envelope (a copy of a tree, as an aggregate's columns
/// are, is not): what [`node_path`] would find, without the search. False otherwise.
fn known_place(r: &Resource, target: &FieldNode, path: &mut String) -> bool {
    let Some(place) = &target.place else {
        return false;
    };
    let here = |root: &FieldNode| {
        root.at(&place.steps)
            .is_some_and(|n| std::ptr::eq(n, target))
    };
    if here(&r.fields) || here(&r.envelope) {
        path.push_str(&place.path);
        return true;
    }
    false
}

/// Appends the path from `node` to `target` to `path`; false when `target` is not below.
/// The tree is searched by pointer first and only the path found is written out (writing
/// every key the search passes cost more than the rest of a small governed body's report).
fn node_path(node: &FieldNode, target: &FieldNode, path: &mut String) -> bool {
    let mut steps = Vec::new();
    if !node_chain(node, target, &mut steps) {
        return false;
    }
    for step in steps {
        match step {
            Some(key) => crate::policy::select::push_key(path, key),
            None => path.push_str("[*]"),
        }
    }
    true
}

/// The keys (`None`: `[*]`) from `node` down to `target`, in the order a search of named
/// members before `[*]` meets them.
fn node_chain<'n>(
    node: &'n FieldNode,
    target: &FieldNode,
    steps: &mut Vec<Option<&'n str>>,
) -> bool {
    if std::ptr::eq(node, target) {
        return true;
    }
    for (k, child) in &node.keys {
        steps.push(Some(k));
        if node_chain(child, target, steps) {
            return true;
        }
        steps.pop();
    }
    if let Some(any) = &node.any {
        steps.push(None);
        if node_chain(any, target, steps) {
            return true;
        }
        steps.pop();
    }
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Keep,
    /// Remove the key / array item.
    Remove,
    /// A record withheld whole: removed from arrays, `null` in objects.
    RemoveRecord,
}

struct Walker<'a, 't> {
    tax: &'a Taxonomy,
    inv: &'a Inventory,
    purpose: &'a Purpose,
    write: bool,
    consent: bool,
    /// A withheld record in a list becomes `null` in place (`withheld: null`).
    withheld_null: bool,
    observing: bool,
    master: Option<&'a PseudonymKey>,
    pkey: Option<Arc<PurposeKey>>,
    key_missing: bool,
    email_cat: Option<CatId>,
    track: bool,
    path: String,
    trace: Option<&'t mut Vec<FieldDecision>>,
    actions: [u64; 9],
    /// Hits per slot of the purpose's rule-id table.
    rule_hits: Vec<u64>,
    received: Vec<bool>,
    delivered: Vec<bool>,
    records: u64,
    /// Located (top-level) records still in the body: what `counts: delivered` reports.
    located_kept: u64,
    personal: bool,
    changed: bool,
    blocked: Option<CatId>,
    block_paths: BTreeSet<String>,
    write_bad: BTreeSet<String>,
    /// Rule slot of the last record removed.
    last_removal: Option<usize>,
    /// While tracing: the inventory entry that classifies the value being walked.
    source: Option<Arc<str>>,
    /// Keys no inventory entry classifies: (resource, the parent's field node, key).
    unknown: Vec<(usize, Option<&'a FieldNode>, String)>,
    /// The bare `system` category: ids, `attributes`, lookups. A write record whose kept
    /// fields are all of it writes nothing (`system.*` sub-categories are data: `LeadSource`).
    system_root: Option<CatId>,
    /// Writes: paths of the fields (and records) minimisation removed.
    dropped: BTreeSet<String>,
    /// Writes: a removal in a resource the purpose does not minimise silently.
    loud_drop: bool,
    /// Writes, the record being walked: something was removed from it, something is written.
    rec_dropped: bool,
    rec_written: bool,
    /// Writes: a record lost fields and writes nothing any more.
    nothing_left: bool,
    /// The answer's shape, when it answers a query Zweck reviewed.
    shape: Option<&'a Shape>,
}

impl<'a> Walker<'a, '_> {
    fn walk(
        &mut self,
        v: &mut Value,
        node: Option<&'a FieldNode>,
        inherited: Option<CatId>,
        loc: Option<&LocNode>,
        res: usize,
    ) -> Verdict {
        // only traced walks (explain, coverage) say which inventory entry classified a value
        let Some(src) = node
            .and_then(|n| n.source.as_ref())
            .filter(|_| self.trace.is_some())
        else {
            return self.walk_node(v, node, inherited, loc, res);
        };
        let saved = self.source.replace(src.clone());
        let verdict = self.walk_node(v, node, inherited, loc, res);
        self.source = saved;
        verdict
    }

    fn walk_node(
        &mut self,
        v: &mut Value,
        node: Option<&'a FieldNode>,
        inherited: Option<CatId>,
        loc: Option<&LocNode>,
        res: usize,
    ) -> Verdict {
        if let Some(l) = loc {
            if l.record {
                return self.record(v, res, false);
            }
        }
        if let Some(child) = node.and_then(|n| n.child) {
            return self.record(v, child, true);
        }
        let cat = node.and_then(|n| n.cat).or(inherited);
        let structured = loc.is_some() || node.is_some_and(FieldNode::has_structure);
        if structured {
            match v {
                Value::Object(map) => {
                    map.retain(|k, cv| {
                        let (cn, ccat) = FieldNode::member(node, k, cat);
                        if cn.is_none() && ccat.is_none() {
                            self.note_unknown(res, node, k);
                        }
                        let cl = loc.and_then(|l| l.keys.get(k.as_str()));
                        let mark = self.path.len();
                        if self.track {
                            push_key(&mut self.path, k);
                        }
                        let verdict = self.walk(cv, cn, ccat, cl, res);
                        self.path.truncate(mark);
                        match verdict {
                            Verdict::Keep => true,
                            _ if self.observing => true,
                            Verdict::Remove => false,
                            Verdict::RemoveRecord => {
                                *cv = Value::Null;
                                true
                            }
                        }
                    });
                    return Verdict::Keep;
                }
                Value::Array(items) => {
                    let item_node = node.and_then(|n| n.any.as_deref());
                    let mut i = 0usize;
                    items.retain_mut(|item| {
                        let cl = loc.and_then(|l| l.item(i));
                        i += 1;
                        let mark = self.path.len();
                        if self.track {
                            self.path.push_str("[*]");
                        }
                        let located = cl.is_some_and(|l| l.record);
                        let verdict = self.walk(item, item_node, cat, cl, res);
                        self.path.truncate(mark);
                        if verdict == Verdict::RemoveRecord && located && self.withheld_null {
                            *item = Value::Null;
                            return true;
                        }
                        verdict == Verdict::Keep || self.observing
                    });
                    return Verdict::Keep;
                }
                _ => {}
            }
        }
        let cat = cat.unwrap_or_else(|| self.tax.unclassified());
        self.leaf(v, cat, res)
    }

    /// Remembers a key no inventory entry classifies (off the hot path: only for keys that
    /// are dropped as unclassified anyway).
    #[cold]
    fn note_unknown(&mut self, res: usize, parent: Option<&'a FieldNode>, key: &str) {
        let seen = self.unknown.iter().any(|(r, p, k)| {
            *r == res && k == key && p.map(std::ptr::from_ref) == parent.map(std::ptr::from_ref)
        });
        if !seen && self.unknown.len() < MAX_UNKNOWN_PER_BODY {
            self.unknown.push((res, parent, key.to_string()));
        }
    }

    fn remove_record(&mut self, rule: RuleSlot) -> Verdict {
        if self.write {
            // a record of a write removed whole (unknown type): it would not be written
            self.dropped.insert(self.path.clone());
            self.loud_drop = true;
        }
        if !self.observing {
            let slot = self.purpose.slot(rule);
            self.actions[A_RECORD_REMOVED] += 1;
            self.rule_hits[slot] += 1;
            self.changed = true;
            if let Some(t) = self.trace.as_deref_mut() {
                t.push(FieldDecision {
                    path: self.path.clone(),
                    field: None,
                    category: String::new(),
                    rule: self.purpose.rule_id(rule).to_string(),
                    action: "record_removed".into(),
                });
            }
            self.last_removal = Some(slot);
        }
        Verdict::RemoveRecord
    }

    /// Walks a removed record only to learn which categories were received.
    fn observe(&mut self, v: &mut Value, res: usize) {
        let was = std::mem::replace(&mut self.observing, true);
        let fields = &self.inv.resources[res].fields;
        self.walk(v, Some(fields), None, None, res);
        self.observing = was;
    }

    fn record(&mut self, v: &mut Value, res: usize, child: bool) -> Verdict {
        if v.is_null() {
            return Verdict::Keep;
        }
        if !v.is_object() {
            let u = self.tax.unclassified();
            return self.leaf(v, u, res);
        }
        if let Some(agg) = self.shape.and_then(|s| s.aggregate.as_ref()) {
            if !child {
                return self.aggregate_row(v, agg, res);
            }
        }
        let mut res = res;
        if let Some(tk) = &self.inv.resources[res].type_key {
            match navigate(v, tk) {
                None => {}
                Some(Value::String(t)) => match self.inv.by_type.get(t.as_str()) {
                    Some(r) => res = *r,
                    None => return self.remove_record(RuleSlot::UnknownType),
                },
                Some(_) => return self.remove_record(RuleSlot::UnknownType),
            }
        }
        if self.consent && !self.observing {
            for (i, c) in self.purpose.requires_consent.iter().enumerate() {
                let granted = match self.inv.resources[res].consent.get(c) {
                    Some(sig) => granted(sig, v, self.inv.dialect),
                    // A child record rides on its parent's consent unless it has its own.
                    None => child,
                };
                if !granted {
                    self.observe(v, res);
                    return self.remove_record(RuleSlot::Consent(i));
                }
            }
        }
        if let Some(shape) = self.shape {
            if self.consent && !self.observing {
                self.strip_added(v, res, shape);
            }
        }
        let saved = std::mem::replace(&mut self.personal, false);
        let outer = self.source.take();
        let dropped = std::mem::replace(&mut self.rec_dropped, false);
        let written = std::mem::replace(&mut self.rec_written, false);
        let fields = &self.inv.resources[res].fields;
        self.walk(v, Some(fields), None, None, res);
        self.source = outer;
        if self.personal && !self.observing {
            self.records += 1;
        }
        if !child && !self.observing {
            self.located_kept += 1;
        }
        self.personal = saved;
        if self.write && self.rec_dropped && !self.rec_written {
            self.nothing_left = true;
        }
        // a nested record that writes makes its parent write too
        self.rec_written |= written;
        self.rec_dropped = dropped;
        Verdict::Keep
    }

    /// A row of an aggregate query: not a record of `res` but a group of them, classified by
    /// the query's columns. A row that names another type, or any row for a purpose that
    /// removes records (its query was refused; fail closed), is removed. A row that names no
    /// type (an error list's item) is classified all the same: the columns sit over the
    /// resource's own map.
    fn aggregate_row(&mut self, v: &mut Value, agg: &'a Aggregate, res: usize) -> Verdict {
        if let Some(tk) = &self.inv.resources[res].type_key {
            match navigate(v, tk) {
                None => {}
                Some(Value::String(t)) if Some(t.as_str()) == agg.row_type => {}
                Some(_) => return self.remove_record(RuleSlot::UnknownType),
            }
        }
        if self.consent && self.purpose.filters_records() {
            return self.remove_record(RuleSlot::Consent(0));
        }
        let saved = std::mem::replace(&mut self.personal, false);
        self.walk(v, Some(&agg.columns), None, None, agg.resource);
        if self.personal && !self.observing {
            self.records += 1;
        }
        if !self.observing {
            self.located_kept += 1;
        }
        self.personal = saved;
        Verdict::Keep
    }

    /// Takes the consent fields Zweck added to the query out of a record of `res` whose
    /// consent is decided (with their annotations, `field@...`): the app did not ask for them.
    /// They were received all the same.
    fn strip_added(&mut self, v: &mut Value, res: usize, shape: &Shape) {
        for (r, path) in &shape.consent_added {
            let Some((last, parents)) = path.split_last() else {
                continue;
            };
            if *r != res {
                continue;
            }
            let Some(obj) = parents
                .iter()
                .try_fold(&mut *v, |cur, k| cur.as_object_mut()?.get_mut(k))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let before = obj.len();
            let mut received = false;
            obj.retain(|k, val| {
                // the field, or one of its annotations (`field@OData...`)
                let added = k
                    .strip_prefix(last.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'));
                received |= added && !val.is_null();
                !added
            });
            if obj.len() != before {
                self.changed = true;
            }
            if received {
                let node = path
                    .iter()
                    .try_fold(&self.inv.resources[res].fields, |n, k| n.keys.get(k));
                if let Some(cat) = node.and_then(|n| n.cat) {
                    self.received[cat as usize] = true;
                }
            }
        }
    }

    /// Notes, on a write, a value minimisation removes from `res`'s record.
    fn write_dropped(&mut self, res: usize) {
        self.dropped.insert(self.path.clone());
        self.rec_dropped = true;
        let name = &self.inv.resources[res].name;
        if !self.purpose.silent_writes.iter().any(|r| r == name) {
            self.loud_drop = true;
        }
    }

    fn leaf(&mut self, v: &mut Value, cat: CatId, res: usize) -> Verdict {
        let null = v.is_null();
        if !null {
            self.received[cat as usize] = true;
            if !self.tax.is_system(cat) {
                self.personal = true;
            }
        }
        if self.observing {
            return Verdict::Keep;
        }
        let p = self.purpose;
        let (rule, mut action): (RuleSlot, &'a Action) = if cat == self.tax.unclassified() {
            if self.inv.resources[res].keep_unclassified {
                (RuleSlot::UnclassifiedKeep, &Action::Keep)
            } else {
                (RuleSlot::Otherwise, &p.otherwise)
            }
        } else {
            match p.by_cat[cat as usize] {
                Resolved::Rule(i) => (RuleSlot::Field(i as usize), &p.rules[i as usize].action),
                Resolved::Otherwise => (RuleSlot::Otherwise, &p.otherwise),
                Resolved::System => (RuleSlot::System, &Action::Keep),
            }
        };
        let slot = p.slot(rule);
        if self.write {
            match action {
                Action::Keep | Action::Drop | Action::Block => {}
                // Unclassified content of a write is simply not written.
                Action::Redact(_) if rule == RuleSlot::Otherwise => action = &Action::Drop,
                _ => {
                    self.write_bad.insert(self.path.clone());
                    return Verdict::Keep;
                }
            }
        }
        self.rule_hits[slot] += 1;
        self.actions[action_index(action)] += 1;
        if let Some(t) = self.trace.as_deref_mut() {
            t.push(FieldDecision {
                path: self.path.clone(),
                field: self.source.clone(),
                category: self.tax.name(cat).to_string(),
                rule: self.purpose.rule_ids[slot].to_string(),
                action: action.name().to_string(),
            });
        }
        let new = match action {
            Action::Keep => {
                if !null {
                    self.delivered[cat as usize] = true;
                }
                if self.write && Some(cat) != self.system_root {
                    self.rec_written = true;
                }
                return Verdict::Keep;
            }
            Action::Drop => {
                if self.write {
                    self.write_dropped(res);
                }
                self.changed = true;
                return Verdict::Remove;
            }
            Action::Block => {
                if !null {
                    self.blocked.get_or_insert(cat);
                    self.block_paths.insert(self.path.clone());
                }
                return Verdict::Keep;
            }
            Action::Redact(s) => {
                let new = s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
                if *v != new {
                    *v = new;
                    self.changed = true;
                }
                return Verdict::Keep;
            }
            _ if null => return Verdict::Keep,
            Action::Mask { keep_last } => {
                let email = self
                    .email_cat
                    .is_some_and(|e| self.tax.lineage(cat).any(|c| c == e));
                actions::mask(v, *keep_last, email)
            }
            Action::Truncate(n) => actions::truncate(v, *n),
            Action::Generalise(g) => actions::generalise(v, g),
            Action::Pseudonymise => {
                if self.pkey.is_none() {
                    self.pkey = self.master.map(|k| k.derive(&self.purpose.name));
                }
                match &self.pkey {
                    Some(k) => actions::pseudonymise(v, k),
                    None => {
                        self.key_missing = true;
                        Value::Null
                    }
                }
            }
        };
        if !new.is_null() {
            self.delivered[cat as usize] = true;
        }
        if *v != new {
            *v = new;
            self.changed = true;
        }
        Verdict::Keep
    }
}

/// Removes the record counts of an operation's resource from a body whose delivered count
/// cannot be known (the envelope of a list page streamed record by record: its count goes
/// out before its records are filtered). Returns whether the body changed.
pub fn drop_counts(set: &PolicySet, op: &Operation, body: &mut Value) -> bool {
    let res = set
        .inventory(op.dialect)
        .and_then(|inv| inv.resources.get(op.resource_idx))
        .filter(|r| r.name == op.resource);
    res.is_some_and(|r| rewrite_counts(r, Counts::Drop, 0, body))
}

/// Applies a purpose's `counts` to the envelope keys that count the records a query matched
/// (`Delivered`: the records this body still holds). Returns whether the body changed. A
/// count that is not a number is left to the envelope's classification.
fn rewrite_counts(res: &Resource, counts: Counts, delivered: u64, body: &mut Value) -> bool {
    let mut changed = false;
    for path in &res.counts {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let parent = parents
            .iter()
            .try_fold(&mut *body, |cur, k| cur.as_object_mut()?.get_mut(k));
        let Some(map) = parent.and_then(Value::as_object_mut) else {
            continue;
        };
        if !map.get(last).is_some_and(Value::is_number) {
            continue;
        }
        match counts {
            Counts::Pass => {}
            Counts::Delivered => {
                let now = Value::from(delivered);
                if map.get(last) != Some(&now) {
                    map.insert(last.clone(), now);
                    changed = true;
                }
            }
            Counts::Drop => {
                map.shift_remove(last);
                changed = true;
            }
        }
    }
    changed
}

/// Evaluates a consent signal on a record. Absent, null or mistyped means no consent.
/// HubSpot sends every property as a string, so there `"false"` equals `false` and `"1"`
/// equals `1`; other dialects compare strictly.
fn granted(sig: &ConsentSignal, record: &Value, dialect: Dialect) -> bool {
    granted_value(sig, navigate(record, &sig.field), dialect)
}

/// [`granted`] on the signal's field as found in the record (None: absent).
pub(super) fn granted_value(sig: &ConsentSignal, v: Option<&Value>, dialect: Dialect) -> bool {
    let Some(v) = v else {
        return false;
    };
    let matches = |actual: &Value| {
        sig.granted_when
            .iter()
            .any(|e| scalar_eq(actual, e, dialect))
    };
    match (v, &sig.separator) {
        (Value::String(s), Some(sep)) if !sep.is_empty() => s
            .split(sep.as_str())
            .any(|part| matches(&Value::String(part.trim().to_string()))),
        (v, _) => matches(v),
    }
}

fn scalar_eq(actual: &Value, expected: &Value, dialect: Dialect) -> bool {
    let num = |v: &Value| -> Option<f64> {
        match v {
            Value::Number(n) => n.to_string().parse().ok(),
            _ => None,
        }
    };
    match (actual, expected) {
        (Value::Bool(a), Value::Bool(e)) => a == e,
        (Value::String(a), Value::String(e)) => a == e,
        (Value::Number(_), Value::Number(_)) => {
            num(actual).is_some() && num(actual) == num(expected)
        }
        (Value::String(a), Value::Bool(e)) if dialect == Dialect::HubSpot => {
            (a == "true" && *e) || (a == "false" && !*e)
        }
        (Value::String(a), Value::Number(_)) if dialect == Dialect::HubSpot => a
            .trim()
            .parse::<f64>()
            .ok()
            .is_some_and(|x| Some(x) == num(expected)),
        _ => false,
    }
}

#[cfg(test)]
mod place_tests {
    use super::*;

    /// Every node of every shipped resource: the place recorded at compile time names the
    /// path the search of the tree finds, and a copy of a tree (an aggregate's columns) is
    /// searched for, as before, and not found.
    #[test]
    fn a_known_place_is_what_the_search_finds() {
        fn nodes<'n>(n: &'n FieldNode, out: &mut Vec<&'n FieldNode>) {
            out.push(n);
            n.keys.values().for_each(|k| nodes(k, out));
            if let Some(a) = &n.any {
                nodes(a, out);
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = PolicySet::load(&dir).expect("shipped policies").0;
        let mut checked = 0;
        for inv in set.inventories.values() {
            for r in &inv.resources {
                let mut all = Vec::new();
                nodes(&r.fields, &mut all);
                nodes(&r.envelope, &mut all);
                for n in all {
                    let (mut known, mut searched) = (String::new(), String::new());
                    assert!(known_place(r, n, &mut known), "{} {known}", r.name);
                    assert!(
                        node_path(&r.fields, n, &mut searched)
                            || node_path(&r.envelope, n, &mut searched)
                    );
                    assert_eq!(known, searched, "{}", r.name);
                    checked += 1;
                }
                let copy = r.fields.clone();
                let deeper = copy.keys.values().next().unwrap_or(&copy);
                for n in [&copy, deeper] {
                    assert!(!known_place(r, n, &mut String::new()), "{}", r.name);
                }
            }
        }
        assert!(checked > 100, "{checked} nodes");
    }
}
