//! Query minimisation: a query may filter and sort only on fields its purpose may see.
//!
//! Filtering the response is not enough. `SELECT Id FROM Contact WHERE Phone = '+49…'`
//! returns no phone number, yet tells an app whose purpose may not see phone numbers which
//! record has that number; with the Id it then reads what it may see. A predicate is an
//! oracle on the field it tests. So before a query reaches the CRM, every field it filters,
//! groups or sorts on is classified like a response field, and the purpose must `keep` its
//! category (system fields and the purpose's own consent signals are always allowed). Any
//! other action (drop, redact, mask, pseudonymise, generalise, truncate, block), an
//! unclassified field without `keep_unclassified`, or an object the inventory does not know
//! refuses the query (403 `query-not-allowed`), naming the fields, never the values. A query
//! that cannot be read is refused too (400 `query-not-checkable`): fail closed.
//!
//! Covered: SOQL (Salesforce `query`/`queryAll`, composite parts, Bulk API 2.0 query jobs),
//! in `WHERE`, `HAVING`, `GROUP BY` and `ORDER BY` at every level, semi-join and child
//! subqueries included; Dataverse `$filter`, `$orderby`, `$apply`, also nested in `$expand`
//! (FetchXML is refused as not checkable); HubSpot CRM search bodies (`filterGroups`,
//! `sorts`, free-text `query`) and `idProperty` lookups. The `SELECT` list needs no check:
//! the response filter removes what may not be seen. docs/policy.md has the user's view.
//!
//! A query that passes also says what it sends: the values in its predicates, lookups and
//! free text go to the processor, so their categories ([`Carried`]) make the request's
//! `to_processor` transfer record, written before the request is forwarded. Fields that only
//! sort, group, aggregate or select carry no value and are not counted (so the consent fields
//! Zweck adds to a select list change nothing: the record describes the query as forwarded);
//! system fields (record ids) are not personal data by the inventory's own classification.
//!
//! One file per query language: `soql` (Salesforce), `odata` (Dataverse), `hubspot`
//! (CRM search bodies and `idProperty` lookups). This module routes a request to its language
//! by dialect and holds what the languages share: the verdict ([`QueryRefusal`]), the
//! query-string reader and the checker that decides whether the purpose sees a field.

mod hubspot;
mod odata;
mod soql;

pub use hubspot::check_hubspot_search;
pub use soql::{check_soql, review_soql};

use std::collections::BTreeSet;

use super::select::FieldNode;
use super::set::{Action, Inventory, Mode, OpKind, Operation, PolicySet, Purpose, Resolved};
use super::taxonomy::CatId;
use crate::dialect::Dialect;

/// Why a query may not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryRefusal {
    /// Predicates or sort keys on fields the purpose may not see (`Object.Field` names).
    #[error("the query filters or sorts on fields this purpose may not see: {}", fields.join(", "))]
    NotAllowed { fields: Vec<String> },
    /// The query could not be read, so it could not be checked.
    #[error("the query cannot be checked: {0}")]
    Unreadable(&'static str),
    /// An aggregate (SOQL `GROUP BY`, `COUNT`, `SUM`, ...; OData `$apply`) the purpose may
    /// not be given: the CRM computes it over records the purpose does not see.
    #[error("aggregates over {object} are not available to this purpose: {reason}")]
    AggregateNotAllowed {
        object: String,
        reason: AggregateRefusal,
    },
    /// The purpose decides consent from fields the query does not read, and Zweck cannot add
    /// them to it (`Object.field` names).
    #[error("the query must read the consent field(s) {}: add them, Zweck cannot", fields.join(", "))]
    ConsentFieldMissing { fields: Vec<String> },
}

/// Why an aggregate is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AggregateRefusal {
    /// The purpose removes records (consent): an aggregate over all records would count
    /// and summarise the ones it may not see.
    #[error("the purpose sees only records with its consent, the CRM would aggregate all")]
    RecordsFiltered,
    /// The object is in no inventory: the purpose sees none of its records.
    #[error("the object is not in the inventory")]
    UnknownObject,
}

/// What Zweck knows of the answer to a query it forwards: the consent fields it added to the
/// query (taken out of the answer again once consent is decided), and, for an aggregate
/// query, what each column of its rows holds. Made in phase 3, read by the engine in phase 6
/// ([`crate::policy::engine::apply_shaped`]).
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// `(resource, field path)`: fields Zweck added to the query only to read consent. The
    /// app did not select them anywhere for that resource.
    pub consent_added: Vec<(usize, Vec<String>)>,
    /// The columns of an aggregate query's rows.
    pub aggregate: Option<Aggregate>,
}

impl Shape {
    /// True when the answer is filtered as if the query had not been looked at.
    pub fn is_plain(&self) -> bool {
        self.consent_added.is_empty() && self.aggregate.is_none()
    }
}

/// An aggregate query's rows: not records of the resource, so they are classified by the
/// query that asked for them. A grouped field keeps its category, `MIN`/`MAX`/`SUM`/`AVG`
/// take their argument's, counts are `system`.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The resource aggregated.
    pub resource: usize,
    /// The type a row names in `type_key` (`AggregateResult`); None: rows carry none.
    pub row_type: Option<&'static str>,
    /// Classification of a row's members (aliases, `expr0..n`, grouped field names).
    pub(crate) columns: FieldNode,
}

/// A query reviewed for a purpose: what to forward instead (None: unchanged), the shape
/// of its answer and the categories it sends.
#[derive(Debug, Clone, Default)]
pub struct Reviewed {
    /// The query string to forward when Zweck rewrote it (consent fields added).
    pub query: Option<String>,
    pub shape: Shape,
    /// What the query (as forwarded) sends to the processor.
    pub carried: Carried,
}

/// The non-system categories of the values a request sends to the processor in its URL or
/// query body (predicates, lookups by a unique property, free text): never the values.
pub type Carried = BTreeSet<&'static str>;

/// Checks the query a request carries in its URL: SOQL in `q` of Salesforce's
/// `query`/`queryAll`, Dataverse query options, and the key a record is addressed by
/// (Salesforce External ID, Dataverse alternate key, HubSpot `idProperty`). `path` is the
/// canonical path, `query` the raw query string. Returns the categories the URL sends.
///
/// The key is checked for every operation: the answer to a read, an upsert (201 or 200) or a
/// delete (204 or 404) by a field's value says whether a record with that value exists. And
/// the key's value goes to the processor, so its category is counted for every operation.
pub fn check_url(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
) -> Result<Carried, QueryRefusal> {
    review_url(set, purpose, op, path, query).map(|r| r.carried)
}

/// Checks the query a request carries in its URL (see [`check_url`]) and adds the consent
/// fields the purpose decides from where the query selects fields (SOQL `SELECT`, `fields`,
/// Dataverse `$select` and `$expand`, HubSpot `properties`): what to forward instead and the
/// shape of the answer. A purpose in shadow mode gets its verdict, never a rewrite.
pub fn review_url(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
) -> Result<Reviewed, QueryRefusal> {
    let reviewed = url(set, purpose, op, path, query, Enforce::Yes)?;
    Ok(if purpose.mode == Mode::Shadow {
        Reviewed {
            carried: reviewed.carried,
            ..Reviewed::default()
        }
    } else {
        reviewed
    })
}

/// What a URL sends when its query goes through unchecked (a purpose in shadow mode): the
/// categories of every field its predicates name, allowed or not. A query that cannot be
/// read sends values of unknown category: [`UNCLASSIFIED`].
pub fn carried_by_url(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
) -> Carried {
    url(set, purpose, op, path, query, Enforce::No).map_or_else(|_| unclassified(), |r| r.carried)
}

/// [`carried_by_url`] for a query body (which stays as the app sent it).
pub fn carried_by_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &serde_json::Value,
) -> Carried {
    if op.op != OpKind::Read {
        return Carried::new();
    }
    review_body_of(set, purpose, op, path, &mut body.clone(), Enforce::No)
        .map_or_else(|_| unclassified(), |(_, carried)| carried)
}

/// The name recorded for values whose category could not be told.
pub const UNCLASSIFIED: &str = "unclassified";

fn unclassified() -> Carried {
    Carried::from([UNCLASSIFIED])
}

fn url(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
    enforce: Enforce,
) -> Result<Reviewed, QueryRefusal> {
    let res = op.resource_idx;
    let mut carried = match op.dialect {
        Dialect::Salesforce => soql::check_external_id(set, purpose, res, path, enforce)?,
        Dialect::Dynamics => odata::check_alternate_key(set, purpose, res, path, enforce)?,
        Dialect::HubSpot => hubspot::check_id_property(set, purpose, res, query, enforce)?,
        Dialect::Generic => Carried::new(),
    };
    if op.op != OpKind::Read {
        return Ok(Reviewed {
            carried,
            ..Reviewed::default()
        });
    }
    let mut reviewed = match op.dialect {
        Dialect::Salesforce => soql::review_url(set, purpose, op, path, query, enforce)?,
        Dialect::Dynamics => odata::review_options(set, purpose, res, query, enforce)?,
        Dialect::HubSpot => hubspot::review_url(set, purpose, res, path, query)?,
        Dialect::Generic => Reviewed::default(),
    };
    carried.append(&mut reviewed.carried);
    reviewed.carried = carried;
    Ok(reviewed)
}

/// Whether a check refuses fields the purpose may not see, or only counts what is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enforce {
    Yes,
    No,
}

/// Checks the query a governed request body carries: SOQL in a Bulk API 2.0 query job, a
/// HubSpot CRM search or batch read by `idProperty`. `path` is the canonical path. Returns
/// the categories the body's query sends.
pub fn check_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &serde_json::Value,
) -> Result<Carried, QueryRefusal> {
    review_query_body(set, purpose, op, path, &mut body.clone()).map(|(_, carried)| carried)
}

/// Checks the query a read's body carries (see [`check_body`]) and adds the purpose's
/// consent fields to it in place (a Bulk job's SOQL, `fields` of a Collections retrieve,
/// HubSpot `properties`). A purpose in shadow mode gets its verdict, the body unchanged.
pub fn review_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &mut serde_json::Value,
) -> Result<Shape, QueryRefusal> {
    review_query_body(set, purpose, op, path, body).map(|(shape, _)| shape)
}

/// [`review_body`] that also returns the categories the body's query sends (as forwarded:
/// the consent fields added go to select lists, which send nothing).
pub fn review_query_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &mut serde_json::Value,
) -> Result<(Shape, Carried), QueryRefusal> {
    if op.op != OpKind::Read {
        return Ok((Shape::default(), Carried::new()));
    }
    if purpose.mode == Mode::Shadow {
        let mut copy = body.clone();
        return review_body_of(set, purpose, op, path, &mut copy, Enforce::Yes)
            .map(|(_, carried)| (Shape::default(), carried));
    }
    review_body_of(set, purpose, op, path, body, Enforce::Yes)
}

fn review_body_of(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &mut serde_json::Value,
    enforce: Enforce,
) -> Result<(Shape, Carried), QueryRefusal> {
    let path = path.trim_end_matches('/');
    match op.dialect {
        Dialect::Salesforce if path.ends_with("/jobs/query") => {
            soql::review_query_job(set, purpose, body, enforce)
        }
        Dialect::Salesforce if path.contains("/composite/sobjects/") => {
            soql::review_fields_body(set, purpose, op, body).map(|shape| (shape, Carried::new()))
        }
        Dialect::HubSpot => {
            hubspot::review_body(set, purpose, op.resource_idx, path, body, enforce)
        }
        _ => Ok((Shape::default(), Carried::new())),
    }
}

/// The (decoded name, raw value) pairs of a query string; values are decoded by the
/// caller, only for the parameters it reads.
fn query_params(query: Option<&str>) -> Result<Vec<(String, &str)>, QueryRefusal> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((form_decode(name)?, value))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` encoding of a value Zweck rewrote: unreserved bytes
/// and the punctuation queries use (`,`, `(`, `)`, `'`, `$`, `/`, ...) stay, a space becomes
/// `+`, everything else is percent-encoded. Only the rewritten parameter is re-encoded; the
/// others are forwarded byte for byte.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b','
            | b'('
            | b')'
            | b'\''
            | b'$'
            | b'/'
            | b':'
            | b'@'
            | b'*' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query string with the value of parameter `index` (in `split('&')` order of the
/// non-empty pairs) replaced, or, for `index == None`, with `name=value` appended.
fn replace_param(query: Option<&str>, index: Option<usize>, name: &str, value: &str) -> String {
    let mut pairs: Vec<String> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let value = form_encode(value);
    match index.and_then(|i| pairs.get_mut(i)) {
        // the name as the app wrote it (`%24select` stays)
        Some(p) => {
            let raw_name = p.split_once('=').map_or(p.as_str(), |(n, _)| n).to_string();
            *p = format!("{raw_name}={value}");
        }
        None => pairs.push(format!("{name}={value}")),
    }
    pairs.join("&")
}

/// `application/x-www-form-urlencoded` decoding of one name or value (`+` is a space).
fn form_decode(s: &str) -> Result<String, QueryRefusal> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| QueryRefusal::Unreadable("a query parameter that is not UTF-8"))
}

/// Collects the fields a query tests that the purpose may not see, and the categories of
/// the values it sends.
struct Checker<'a> {
    set: &'a PolicySet,
    inv: &'a Inventory,
    purpose: &'a Purpose,
    denied: Vec<String>,
    enforce: Enforce,
    /// True while the fields visited are compared with values (predicates, lookups, free
    /// text); false in sort, group, aggregate and select lists.
    carrying: bool,
    carried: Carried,
}

impl<'a> Checker<'a> {
    fn new(set: &'a PolicySet, inv: &'a Inventory, purpose: &'a Purpose, enforce: Enforce) -> Self {
        Checker {
            set,
            inv,
            purpose,
            denied: Vec::new(),
            enforce,
            carrying: true,
            carried: Carried::new(),
        }
    }

    /// Runs `f` with nothing it visits counted as sent (lists that carry no value).
    fn not_carrying<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let before = std::mem::replace(&mut self.carrying, false);
        let out = f(self);
        self.carrying = before;
        out
    }

    /// The verdict on the fields visited so far: with [`Enforce::No`] none is refused.
    fn finish(&mut self) -> Result<(), QueryRefusal> {
        if self.denied.is_empty() || self.enforce == Enforce::No {
            self.denied.clear();
            Ok(())
        } else {
            Err(QueryRefusal::NotAllowed {
                fields: std::mem::take(&mut self.denied),
            })
        }
    }

    /// A SOQL field: `path` is relationship names, then the field, from `resource` (None:
    /// an object the inventory does not know, named `object` in the refusal).
    #[inline]
    fn field(&mut self, resource: Option<usize>, object: &str, path: &[&str]) {
        let inv = self.inv;
        let allowed = match (resource, path.split_last()) {
            (Some(res), Some((last, relations))) => relations
                .iter()
                .try_fold(res, |r, rel| member(&inv.resources[r].fields, rel)?.child)
                .is_some_and(|r| self.allowed(r, &[last])),
            _ => false,
        };
        if !allowed {
            let object = resource.map_or(object, |r| self.inv.resources[r].name.as_str());
            self.deny(format!("{object}.{}", path.join(".")));
        }
    }

    /// A HubSpot property of `resource` (in records under `properties`).
    #[inline]
    fn property(&mut self, resource: usize, name: &str) {
        if !self.allowed(resource, &["properties", name]) {
            self.deny(format!("{}.{name}", self.inv.resources[resource].name));
        }
    }

    fn deny(&mut self, name: String) {
        if !self.denied.contains(&name) {
            self.denied.push(name);
        }
    }

    /// Whether the purpose sees the field at `path` of `resource` unaltered: its category
    /// is kept (the deepest node's, else the nearest ancestor's, as in the engine), it is
    /// one of the purpose's consent signals, or it is unclassified on a resource that keeps
    /// unclassified fields. While `carrying`, the field's category is counted as sent.
    #[inline]
    fn allowed(&mut self, resource: usize, path: &[&str]) -> bool {
        let resource = &self.inv.resources[resource];
        if self.carrying {
            if let Some(cat) = field_category(resource, path) {
                if !self.set.taxonomy.is_system(cat) {
                    self.carried.insert(self.set.taxonomy.name(cat));
                }
            }
        }
        let is_signal = |field: &[String]| {
            field.len() == path.len()
                && field
                    .iter()
                    .zip(path)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        };
        if resource.consent.iter().any(|(signal, s)| {
            self.purpose.requires_consent.contains(signal) && is_signal(&s.field)
        }) {
            return true;
        }
        let mut node = Some(&resource.fields);
        let mut cat = None;
        for seg in path {
            node = node.and_then(|n| member(n, seg));
            cat = node.and_then(|n| n.cat).or(cat);
        }
        match (node, cat) {
            (Some(_), Some(cat)) => self.may_see(cat),
            // a name no selector classifies
            _ => resource.keep_unclassified,
        }
    }

    /// The field paths of the consent signals the purpose requires that `resource` defines
    /// (`["HasOptedOutOfEmail"]`, `["properties", "hs_email_optout"]`), in the purpose's order.
    fn signal_fields(&self, resource: usize) -> Vec<&'a [String]> {
        let res = &self.inv.resources[resource];
        let mut out: Vec<&[String]> = Vec::new();
        for name in &self.purpose.requires_consent {
            if let Some(sig) = res.consent.get(name) {
                if !out.contains(&sig.field.as_slice()) {
                    out.push(&sig.field);
                }
            }
        }
        out
    }

    /// The category of the field at `path` of `resource` (as the engine classifies it) and
    /// its key as the inventory spells it; None for a name no selector classifies.
    fn category(&self, resource: usize, path: &[&str]) -> Option<(CatId, String)> {
        let mut node = &self.inv.resources[resource].fields;
        let mut cat = None;
        let mut key = String::new();
        for seg in path {
            let (k, n) = member_named(node, seg)?;
            key.clone_from(k);
            match n.child {
                // a relationship (`Account.Name`): on in the related resource
                Some(child) => {
                    node = &self.inv.resources[child].fields;
                    cat = None;
                }
                None => {
                    node = n;
                    cat = n.cat.or(cat);
                }
            }
        }
        cat.map(|c| (c, key))
    }

    /// Whether the purpose keeps values of `cat` unaltered.
    fn may_see(&self, cat: CatId) -> bool {
        if self.set.taxonomy.is_system(cat) {
            return true;
        }
        match self.purpose.by_cat.get(cat as usize) {
            Some(Resolved::Rule(i)) => self
                .purpose
                .rules
                .get(*i as usize)
                .is_some_and(|r| r.action == Action::Keep),
            Some(Resolved::System) => true,
            Some(Resolved::Otherwise) | None => false,
        }
    }
}

/// The category of the field at `path` of `resource`: the deepest node's, else the nearest
/// ancestor's (as in the engine).
fn field_category(resource: &super::set::Resource, path: &[&str]) -> Option<CatId> {
    let mut node = Some(&resource.fields);
    let mut cat = None;
    for seg in path {
        node = node.and_then(|n| member(n, seg));
        cat = node.and_then(|n| n.cat).or(cat);
    }
    cat
}

/// A member of a field tree by name, ASCII case-insensitively (SOQL names are
/// case-insensitive; HubSpot's are lowercase).
#[inline]
fn member<'n>(node: &'n FieldNode, name: &str) -> Option<&'n FieldNode> {
    node.keys.get(name).or_else(|| {
        node.keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, n)| n)
    })
}

/// A member of a field tree and its name as the tree spells it, ASCII case-insensitively.
fn member_named<'n>(node: &'n FieldNode, name: &str) -> Option<(&'n String, &'n FieldNode)> {
    node.keys
        .get_key_value(name)
        .or_else(|| node.keys.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
}

/// The object a relationship leads to from `resource`: a parent (`Account`) or the records
/// of a child subquery (`Cases`).
#[inline]
fn relation(inv: &Inventory, resource: usize, name: &str) -> Option<usize> {
    let node = member(&inv.resources[resource].fields, name)?;
    node.child.or_else(|| {
        node.keys
            .get("records")
            .and_then(|r| r.any.as_deref())
            .and_then(|n| n.child)
    })
}

/// Whether `word` is one of the keywords in `list`, ASCII case-insensitively. Called for
/// every word of a query, from both languages' files: inlined, and a plain loop so nothing
/// of it stays behind as a call.
#[inline]
fn is(word: &str, list: &[&str]) -> bool {
    for k in list {
        if k.eq_ignore_ascii_case(word) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped policies, compiled once for all query tests.
    pub(super) fn shipped() -> &'static PolicySet {
        static SET: std::sync::OnceLock<PolicySet> = std::sync::OnceLock::new();
        SET.get_or_init(|| {
            let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
            PolicySet::load(dir).expect("shipped policies").0
        })
    }

    pub(super) fn refused(fields: &[&str]) -> Result<(), QueryRefusal> {
        Err(QueryRefusal::NotAllowed {
            fields: fields
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        })
    }

    fn op<'s>(
        set: &'s PolicySet,
        dialect: Dialect,
        template_end: &str,
        kind: OpKind,
    ) -> &'s Operation {
        set.inventory(dialect)
            .expect("inventory")
            .operations()
            .iter()
            .find(|o| o.template().ends_with(template_end) && o.op() == kind)
            .expect("operation")
    }

    fn names(c: &Carried) -> Vec<&'static str> {
        c.iter().copied().collect()
    }

    /// What a query sends is counted from its predicates, lookups and free text, never from
    /// sort or group lists, and system fields (ids) are no personal data.
    #[test]
    fn predicates_lookups_and_free_text_count_what_the_query_sends() {
        let set = shipped();
        let support = set.purpose("support").expect("purpose");
        let query = op(set, Dialect::Salesforce, "/query", OpKind::Read);
        let url = |q: &str| check_url(set, support, query, "/services/data/v66.0/query", Some(q));
        assert_eq!(
            url("q=SELECT+Id+FROM+Contact+WHERE+Email+%3D+%27x%27+ORDER+BY+LastName")
                .map(|c| names(&c)),
            Ok(vec!["user.contact.email"])
        );
        assert_eq!(
            url("q=SELECT+Id,Email+FROM+Contact+WHERE+Id+%3D+%27003%27+ORDER+BY+LastName")
                .map(|c| names(&c)),
            Ok(vec![])
        );
        assert_eq!(
            url("q=SELECT+Id,(SELECT+Id+FROM+Cases)+FROM+Contact+WHERE+Id+IN+(SELECT+ContactId+FROM+Case)+AND+Phone+!%3D+null").map(|c| names(&c)),
            Ok(vec!["user.contact.phone_number"])
        );
        // HubSpot: a lookup by e-mail sends an e-mail, for a read and for a write
        let single = op(set, Dialect::HubSpot, "/contacts/*", OpKind::Read);
        let by_email = check_url(
            set,
            support,
            single,
            "/crm/v3/objects/contacts/x",
            Some("idProperty=email"),
        );
        assert_eq!(by_email.map(|c| names(&c)), Ok(vec!["user.contact.email"]));
        let patch = op(set, Dialect::HubSpot, "/contacts/*", OpKind::Write);
        let analytics = set.purpose("analytics").expect("purpose");
        // a write's lookup is checked like a read's (the answer says whether a record with
        // that value exists) and counted
        let write = check_url(
            set,
            support,
            patch,
            "/crm/v3/objects/contacts/x",
            Some("idProperty=email"),
        );
        assert_eq!(write.map(|c| names(&c)), Ok(vec!["user.contact.email"]));
        let lookup = (
            patch,
            "/crm/v3/objects/contacts/x",
            Some("idProperty=email"),
        );
        assert!(check_url(set, analytics, lookup.0, lookup.1, lookup.2).is_err());
        // in shadow mode it would go through: then it is counted all the same
        let unchecked = carried_by_url(set, analytics, lookup.0, lookup.1, lookup.2);
        assert_eq!(names(&unchecked), ["user.contact.email"]);
        // a search: filters and free text send values, sorts do not
        let search = op(set, Dialect::HubSpot, "/contacts/search", OpKind::Read);
        let body = serde_json::json!({
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "x"}]}],
            "sorts": ["lastname"],
        });
        let sent = check_body(
            set,
            support,
            search,
            "/crm/v3/objects/contacts/search",
            &body,
        );
        assert_eq!(sent.map(|c| names(&c)), Ok(vec!["user.contact.email"]));
        let free = serde_json::json!({"query": "livia"});
        // (free text reaches a property no inventory classifies: refused, yet counted)
        assert!(check_body(
            set,
            support,
            search,
            "/crm/v3/objects/contacts/search",
            &free
        )
        .is_err());
        let sent = carried_by_body(
            set,
            support,
            search,
            "/crm/v3/objects/contacts/search",
            &free,
        );
        assert!(
            sent.contains("user.contact.email") && sent.contains("user.name.last"),
            "{sent:?}"
        );
        // Dataverse: alternate keys and $filter send values, $orderby does not
        let dv = op(set, Dialect::Dynamics, "/contacts(*)", OpKind::Read);
        let key = check_url(
            set,
            support,
            dv,
            "/api/data/v9.2/contacts(emailaddress1='x%40example.com')",
            None,
        );
        assert_eq!(key.map(|c| names(&c)), Ok(vec!["user.contact.email"]));
        let list = op(set, Dialect::Dynamics, "/contacts", OpKind::Read);
        let filtered = check_url(
            set,
            support,
            list,
            "/api/data/v9.2/contacts",
            Some("$filter=mobilephone eq '1'&$orderby=lastname"),
        );
        assert_eq!(
            filtered.map(|c| names(&c)),
            Ok(vec!["user.contact.phone_number"])
        );
    }

    /// In shadow mode a refused query still goes out: what it sends is counted all the same,
    /// and a query that cannot be read is recorded as sending unclassified values.
    #[test]
    fn a_query_let_through_unchecked_is_counted_in_full() {
        let set = shipped();
        let analytics = set.purpose("analytics").expect("purpose");
        let query = op(set, Dialect::Salesforce, "/query", OpKind::Read);
        let path = "/services/data/v66.0/query";
        let q = Some("q=SELECT+Id+FROM+Contact+WHERE+Email+%3D+%27x%27+AND+LastName+%3D+%27y%27");
        assert!(check_url(set, analytics, query, path, q).is_err());
        let all = carried_by_url(set, analytics, query, path, q);
        assert_eq!(names(&all), vec!["user.contact.email", "user.name.last"]);
        let unreadable = carried_by_url(set, analytics, query, path, Some("q=SELECT+%22"));
        assert_eq!(names(&unreadable), vec![UNCLASSIFIED]);
    }

    /// A query Zweck rewrites still says what it sends: the consent field it adds to the
    /// select list sends no value, and neither do an aggregate's columns; its predicates do.
    #[test]
    fn a_rewritten_query_reports_what_it_sends_as_forwarded() {
        let set = shipped();
        let query = op(set, Dialect::Salesforce, "/query", OpKind::Read);
        let path = "/services/data/v66.0/query";
        let newsletter = set.purpose("newsletter").expect("purpose");
        let q = Some("q=SELECT+Id,Email+FROM+Contact+WHERE+Email+%3D+%27x%27");
        let reviewed = review_url(set, newsletter, query, path, q).expect("passes");
        let forwarded = reviewed.query.expect("consent field added");
        assert!(forwarded.contains("HasOptedOutOfEmail"), "{forwarded}");
        assert_eq!(names(&reviewed.carried), ["user.contact.email"]);
        // the forwarded query, reviewed again, sends the same
        let again = review_url(set, newsletter, query, path, Some(&forwarded)).expect("passes");
        assert!(again.query.is_none(), "a fixed point");
        assert_eq!(again.carried, reviewed.carried);
        // an aggregate: grouped and counted fields send nothing, its filter does
        let analytics = set.purpose("analytics").expect("purpose");
        let agg = |q: &str| review_url(set, analytics, query, path, Some(q));
        let grouped = agg("q=SELECT+COUNT(Id),MailingCountry+FROM+Contact+GROUP+BY+MailingCountry")
            .expect("passes");
        assert!(grouped.shape.aggregate.is_some());
        assert!(grouped.carried.is_empty(), "{:?}", grouped.carried);
        let filtered = agg("q=SELECT+COUNT(Id)+FROM+Contact+WHERE+MailingCountry+%3D+%27DE%27+GROUP+BY+MailingCountry")
            .expect("passes");
        assert_eq!(names(&filtered.carried), ["user.contact.address.country"]);
    }

    fn query_op(set: &PolicySet) -> &Operation {
        set.inventory(Dialect::Salesforce)
            .expect("inventory")
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/query"))
            .expect("query operation")
    }

    /// The answer to a query, filtered with the shape its review gave.
    fn answer(
        purpose: &str,
        soql: &str,
        body: serde_json::Value,
    ) -> (serde_json::Value, crate::policy::Outcome) {
        let set = shipped();
        let p = set.purpose(purpose).expect("purpose");
        let (_, shape) = review_soql(set, p, soql).expect("reviewed");
        let mut body = body;
        let out = crate::policy::apply_shaped(
            set,
            p,
            query_op(set),
            crate::policy::Direction::Response,
            &mut body,
            Some(&crate::policy::PseudonymKey::new(b"query-test-key")),
            &shape,
        )
        .expect("applies");
        (body, out)
    }

    #[test]
    fn aggregate_rows_pass_by_their_columns_and_count_when_personal() {
        let soql =
            "SELECT COUNT(Id), MailingCountry, MAX(Secret__c) FROM Contact GROUP BY MailingCountry";
        let rows = serde_json::json!({"totalSize": 3, "done": true, "records": [
            {"attributes": {"type": "AggregateResult"}, "expr0": 3, "MailingCountry": "Germany"},
            {"attributes": {"type": "AggregateResult"}, "expr0": 1, "MailingCountry": null},
            {"attributes": {"type": "AggregateResult"}, "expr0": 2, "MailingCountry": "Ireland", "expr1": "x", "Oops": 1},
            {"attributes": {"type": "Contact"}, "Id": "003", "Email": "x@example.com"},
        ]});
        // Secret__c is unclassified: support may not aggregate it
        let set = shipped();
        assert!(review_soql(set, set.purpose("support").expect("p"), soql).is_err());
        let soql = "SELECT COUNT(Id), MailingCountry FROM Contact GROUP BY MailingCountry";
        let (body, out) = answer("analytics", soql, rows.clone());
        let records = body["records"].as_array().expect("records");
        assert_eq!(
            records.len(),
            3,
            "a Contact row is no row of this aggregate"
        );
        assert_eq!(records[0], rows["records"][0]);
        assert_eq!(records[1], rows["records"][1]);
        // columns the query does not have follow `otherwise`
        assert_eq!(
            records[2],
            serde_json::json!({"attributes": {"type": "AggregateResult"}, "expr0": 2, "MailingCountry": "Ireland"})
        );
        // a row is a record when it carries personal data: a bare count does not
        assert_eq!(out.records, 2);
        assert_eq!(
            out.categories_delivered.iter().copied().collect::<Vec<_>>(),
            vec!["user.contact.address.country"]
        );
        // an error list in answer to the query keeps its codes
        let (errors, _) = answer(
            "analytics",
            soql,
            serde_json::json!([{"errorCode": "MALFORMED_QUERY", "message": "near 'x@example.com'"}]),
        );
        assert_eq!(
            errors,
            serde_json::json!([{"errorCode": "MALFORMED_QUERY"}])
        );
        // the same rows without the query's shape are of an unknown type: removed
        let set = shipped();
        let mut plain = rows;
        crate::policy::apply(
            set,
            set.purpose("analytics").expect("p"),
            query_op(set),
            crate::policy::Direction::Response,
            &mut plain,
            Some(&crate::policy::PseudonymKey::new(b"query-test-key")),
        )
        .expect("applies");
        assert_eq!(
            plain["records"].as_array().map(Vec::len),
            Some(1),
            "{plain}"
        );
        assert_eq!(
            plain["records"][0]["Id"], "003",
            "only the Contact row is a record"
        );
    }

    #[test]
    fn consent_fields_zweck_added_leave_the_answer_once_consent_is_decided() {
        let page = serde_json::json!({"totalSize": 2, "done": true, "records": [
            {"attributes": {"type": "Contact"}, "Id": "1", "Email": "a@example.com", "HasOptedOutOfEmail": false},
            {"attributes": {"type": "Contact"}, "Id": "2", "Email": "b@example.com", "HasOptedOutOfEmail": true},
        ]});
        let (body, out) = answer("newsletter", "SELECT Id, Email FROM Contact", page.clone());
        assert_eq!(
            body["records"],
            serde_json::json!([{"attributes": {"type": "Contact"}, "Id": "1", "Email": "a@example.com"}])
        );
        assert_eq!(out.records, 1);
        assert!(out.categories_received.contains("user.privacy_preferences"));
        assert!(!out
            .categories_delivered
            .contains("user.privacy_preferences"));
        // selected by the app: it follows the purpose's rules (newsletter drops it) as before
        let (body, _) = answer(
            "newsletter",
            "SELECT Id, Email, HasOptedOutOfEmail FROM Contact",
            page,
        );
        assert_eq!(body["records"].as_array().map(Vec::len), Some(1));
        assert!(body["records"][0].get("HasOptedOutOfEmail").is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any text, as SOQL or as a Dataverse query option: an answer, never a panic.
        #[test]
        fn never_panics_on_any_text(q in "\\PC{0,80}") {
            let set = shipped();
            let p = set.purpose("newsletter").expect("purpose");
            let _ = check_soql(set, p, &q);
            for option in ["$filter=", "$orderby=", "$expand=", "$apply="] {
                let _ = odata::review_options(set, p, 0, Some(&format!("{option}{q}")), Enforce::Yes);
            }
        }
    }
}
