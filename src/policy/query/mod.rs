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
//! One file per query language: `soql` (Salesforce), `odata` (Dataverse), `hubspot`
//! (CRM search bodies and `idProperty` lookups). This module routes a request to its language
//! by dialect and holds what the languages share: the verdict ([`QueryRefusal`]), the
//! query-string reader and the checker that decides whether the purpose sees a field.

mod hubspot;
mod odata;
mod soql;

pub use hubspot::check_hubspot_search;
pub use soql::check_soql;

use super::select::FieldNode;
use super::set::{Action, Inventory, OpKind, Operation, PolicySet, Purpose, Resolved};
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
}

/// Checks the query a request carries in its URL: SOQL in `q` of Salesforce's
/// `query`/`queryAll`, Dataverse query options, and the key a record is addressed by
/// (Salesforce External ID, Dataverse alternate key, HubSpot `idProperty`). `path` is the
/// canonical path, `query` the raw query string.
///
/// The key is checked for every operation: the answer to a read, an upsert (201 or 200) or a
/// delete (204 or 404) by a field's value says whether a record with that value exists.
pub fn check_url(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
) -> Result<(), QueryRefusal> {
    match op.dialect {
        Dialect::Salesforce => soql::check_external_id(set, purpose, op.resource_idx, path)?,
        Dialect::Dynamics => odata::check_alternate_key(set, purpose, op.resource_idx, path)?,
        Dialect::HubSpot => hubspot::check_id_property(set, purpose, op.resource_idx, query)?,
        Dialect::Generic => {}
    }
    if op.op != OpKind::Read {
        return Ok(());
    }
    match op.dialect {
        Dialect::Salesforce => soql::check_url(set, purpose, path, query),
        Dialect::Dynamics => odata::check_options(set, purpose, op.resource_idx, query),
        Dialect::HubSpot | Dialect::Generic => Ok(()),
    }
}

/// Checks the query a governed request body carries: SOQL in a Bulk API 2.0 query job, a
/// HubSpot CRM search or batch read by `idProperty`. `path` is the canonical path.
pub fn check_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &serde_json::Value,
) -> Result<(), QueryRefusal> {
    if op.op != OpKind::Read {
        return Ok(());
    }
    let path = path.trim_end_matches('/');
    match op.dialect {
        Dialect::Salesforce if path.ends_with("/jobs/query") => {
            soql::check_query_job(set, purpose, body)
        }
        Dialect::HubSpot => hubspot::check_body(set, purpose, op.resource_idx, path, body),
        _ => Ok(()),
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

/// `application/x-www-form-urlencoded` decoding of one name or value (`+` is a space).
fn form_decode(s: &str) -> Result<String, QueryRefusal> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| QueryRefusal::Unreadable("a query parameter that is not UTF-8"))
}

/// Collects the fields a query tests that the purpose may not see.
struct Checker<'a> {
    set: &'a PolicySet,
    inv: &'a Inventory,
    purpose: &'a Purpose,
    denied: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(set: &'a PolicySet, inv: &'a Inventory, purpose: &'a Purpose) -> Self {
        Checker {
            set,
            inv,
            purpose,
            denied: Vec::new(),
        }
    }

    fn finish(self) -> Result<(), QueryRefusal> {
        if self.denied.is_empty() {
            Ok(())
        } else {
            Err(QueryRefusal::NotAllowed {
                fields: self.denied,
            })
        }
    }

    /// A SOQL field: `path` is relationship names, then the field, from `resource` (None:
    /// an object the inventory does not know, named `object` in the refusal).
    #[inline]
    fn field(&mut self, resource: Option<usize>, object: &str, path: &[&str]) {
        let allowed = match (resource, path.split_last()) {
            (Some(res), Some((last, relations))) => relations
                .iter()
                .try_fold(res, |r, rel| {
                    member(&self.inv.resources[r].fields, rel)?.child
                })
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
    /// unclassified fields.
    #[inline]
    fn allowed(&self, resource: usize, path: &[&str]) -> bool {
        let resource = &self.inv.resources[resource];
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any text, as SOQL or as a Dataverse query option: an answer, never a panic.
        #[test]
        fn never_panics_on_any_text(q in "\\PC{0,80}") {
            let set = shipped();
            let p = set.purpose("newsletter").expect("purpose");
            let _ = check_soql(set, p, &q);
            for option in ["$filter=", "$orderby=", "$expand=", "$apply="] {
                let _ = odata::check_options(set, p, 0, Some(&format!("{option}{q}")));
            }
        }
    }
}
