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
//! sort or group carry no value and are not counted; system fields (record ids) are not
//! personal data by the inventory's own classification.
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

use std::collections::BTreeSet;

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
    url(set, purpose, op, path, query, Enforce::Yes)
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
    query_body(set, purpose, op, path, body, Enforce::Yes)
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
    url(set, purpose, op, path, query, Enforce::No).unwrap_or_else(|_| unclassified())
}

/// [`carried_by_url`] for a query body.
pub fn carried_by_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &serde_json::Value,
) -> Carried {
    query_body(set, purpose, op, path, body, Enforce::No).unwrap_or_else(|_| unclassified())
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
) -> Result<Carried, QueryRefusal> {
    let res = op.resource_idx;
    let mut carried = match op.dialect {
        Dialect::Salesforce => soql::check_external_id(set, purpose, res, path, enforce)?,
        Dialect::Dynamics => odata::check_alternate_key(set, purpose, res, path, enforce)?,
        Dialect::HubSpot => hubspot::check_id_property(set, purpose, res, query, enforce)?,
        Dialect::Generic => Carried::new(),
    };
    if op.op != OpKind::Read {
        return Ok(carried);
    }
    let mut options = match op.dialect {
        Dialect::Salesforce => soql::check_url(set, purpose, path, query, enforce)?,
        Dialect::Dynamics => odata::check_options(set, purpose, res, query, enforce)?,
        Dialect::HubSpot | Dialect::Generic => Carried::new(),
    };
    carried.append(&mut options);
    Ok(carried)
}

fn query_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &serde_json::Value,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    if op.op != OpKind::Read {
        return Ok(Carried::new());
    }
    let path = path.trim_end_matches('/');
    match op.dialect {
        Dialect::Salesforce if path.ends_with("/jobs/query") => {
            soql::check_query_job(set, purpose, body, enforce)
        }
        Dialect::HubSpot => hubspot::check_body(set, purpose, op.resource_idx, path, body, enforce),
        _ => Ok(Carried::new()),
    }
}

/// Whether a check refuses fields the purpose may not see, or only counts what is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enforce {
    Yes,
    No,
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

/// Collects the fields a query tests that the purpose may not see, and the categories of
/// the values it sends.
struct Checker<'a> {
    set: &'a PolicySet,
    inv: &'a Inventory,
    purpose: &'a Purpose,
    denied: Vec<String>,
    enforce: Enforce,
    /// True while the fields visited are compared with values (predicates, lookups, free
    /// text); false in sort and group lists.
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

    fn finish(self) -> Result<Carried, QueryRefusal> {
        if self.denied.is_empty() || self.enforce == Enforce::No {
            Ok(self.carried)
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
            if let Some(cat) = category(resource, path) {
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
fn category(resource: &super::set::Resource, path: &[&str]) -> Option<CatId> {
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any text, as SOQL or as a Dataverse query option: an answer, never a panic.
        #[test]
        fn never_panics_on_any_text(q in "\\PC{0,80}") {
            let set = shipped();
            let p = set.purpose("newsletter").expect("purpose");
            let _ = check_soql(set, p, &q);
            for option in ["$filter=", "$orderby=", "$expand=", "$apply="] {
                let _ = odata::check_options(set, p, 0, Some(&format!("{option}{q}")), Enforce::Yes);
            }
        }
    }
}
