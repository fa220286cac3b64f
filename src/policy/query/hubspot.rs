//! HubSpot CRM search bodies (`filterGroups`, `sorts`, free-text `query`) and lookups by a
//! unique property (`idProperty` in the URL or in a batch read's body).

use super::{form_decode, query_params, Carried, Checker, Enforce, QueryRefusal};
use crate::dialect::Dialect;
use crate::policy::set::{PolicySet, Purpose};

/// HubSpot's free-text `query` searches these contact properties (HubSpot CRM search docs:
/// "default searchable properties"); a purpose must be allowed to filter on all of them.
const HUBSPOT_CONTACT_SEARCHABLE: [&str; 8] = [
    "firstname",
    "lastname",
    "email",
    "phone",
    "hs_additional_emails",
    "fax",
    "mobilephone",
    "company",
];

/// HubSpot reads a record by any unique property (`/contacts/{email}?idProperty=email`,
/// batch reads with `idProperty` in the body): looking up by a property tests it, and sends
/// a value of it (the path segment, the batch's ids).
pub(super) fn check_id_property(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    query: Option<&str>,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    let Some(inv) = set.inventory(Dialect::HubSpot) else {
        return Ok(Carried::new());
    };
    let mut checker = Checker::new(set, inv, purpose, enforce);
    for (name, value) in query_params(query)? {
        if name == "idProperty" {
            checker.property(resource, &form_decode(value)?);
        }
    }
    checker.finish()
}

/// A governed HubSpot read body: a search (`path` ends in `/search`) or a batch read that may
/// look records up by `idProperty`.
pub(super) fn check_body(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    path: &str,
    body: &serde_json::Value,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    if path.ends_with("/search") {
        return search(set, purpose, resource, body, enforce);
    }
    let Some(p) = body.get("idProperty") else {
        return Ok(Carried::new());
    };
    let inv = set
        .inventory(Dialect::HubSpot)
        .ok_or(QueryRefusal::Unreadable("no HubSpot inventory"))?;
    let name = p
        .as_str()
        .ok_or(QueryRefusal::Unreadable("idProperty names a property"))?;
    let mut checker = Checker::new(set, inv, purpose, enforce);
    checker.property(resource, name);
    checker.finish()
}

/// Checks a HubSpot CRM search body (`POST /crm/v3/objects/{type}/search`) against the
/// resource `resource` of the HubSpot inventory. Filters and free text send values; sorts
/// do not.
pub fn check_hubspot_search(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    body: &serde_json::Value,
) -> Result<Carried, QueryRefusal> {
    search(set, purpose, resource, body, Enforce::Yes)
}

fn search(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    body: &serde_json::Value,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    let inv = set
        .inventory(Dialect::HubSpot)
        .ok_or(QueryRefusal::Unreadable("no HubSpot inventory"))?;
    let mut checker = Checker::new(set, inv, purpose, enforce);
    let bad =
        QueryRefusal::Unreadable("a search body is an object of filterGroups, sorts and query");
    let obj = body.as_object().ok_or(bad.clone())?;
    if let Some(groups) = obj.get("filterGroups") {
        for group in groups.as_array().ok_or(bad.clone())? {
            let filters = group.get("filters").and_then(|f| f.as_array());
            for filter in filters.ok_or(bad.clone())? {
                checker.property(resource, property(filter).ok_or(bad.clone())?);
            }
        }
    }
    if let Some(sorts) = obj.get("sorts") {
        checker.carrying = false;
        for sort in sorts.as_array().ok_or(bad.clone())? {
            // `["createdate"]` or `[{"propertyName": "createdate", "direction": ...}]`
            let name = sort.as_str().or_else(|| property(sort));
            checker.property(resource, name.ok_or(bad.clone())?);
        }
        checker.carrying = true;
    }
    if obj
        .get("query")
        .is_some_and(|q| q.as_str().is_none_or(|s| !s.trim().is_empty()))
    {
        for p in HUBSPOT_CONTACT_SEARCHABLE {
            checker.property(resource, p);
        }
    }
    checker.finish()
}

fn property(v: &serde_json::Value) -> Option<&str> {
    v.get("propertyName").and_then(|p| p.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{refused, shipped};
    use super::super::{check_body, check_url};
    use super::*;
    use crate::policy::set::OpKind;
    use serde_json::json;

    #[test]
    fn hubspot_search_filters_sorts_and_free_text() {
        let set = shipped();
        let inv = set.inventory(Dialect::HubSpot).expect("inventory");
        let op = inv
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/contacts/search"))
            .expect("search operation");
        let check = |purpose: &str, body: serde_json::Value| {
            check_body(
                set,
                set.purpose(purpose).expect("purpose"),
                op,
                "/crm/v3/objects/contacts/search",
                &body,
            )
            .map(drop)
        };
        let filter = |p: &str| json!({"filterGroups": [{"filters": [{"propertyName": p, "operator": "EQ", "value": "x"}]}]});
        assert_eq!(check("newsletter", filter("email")), Ok(()));
        assert_eq!(check("newsletter", filter("hs_email_optout")), Ok(()));
        assert_eq!(check("newsletter", filter("createdate")), Ok(()));
        assert_eq!(
            check("newsletter", filter("phone")),
            refused(&["contacts.phone"])
        );
        assert_eq!(
            check("analytics", filter("email")),
            refused(&["contacts.email"])
        );
        assert_eq!(
            check(
                "newsletter",
                json!({"sorts": ["lastname", {"propertyName": "createdate", "direction": "DESCENDING"}]})
            ),
            refused(&["contacts.lastname"])
        );
        // free text searches names, e-mail, phone and company: all must be visible
        assert!(matches!(
            check("newsletter", json!({"query": "livia"})),
            Err(QueryRefusal::NotAllowed { .. })
        ));
        assert_eq!(
            check("newsletter", json!({"query": "", "limit": 10})),
            Ok(())
        );
        // lookups by a unique property test it: in the URL and in batch reads
        let single = inv
            .operations()
            .iter()
            .find(|o| {
                o.template().ends_with("/crm/v3/objects/contacts/*") && o.op() == OpKind::Read
            })
            .expect("single read");
        let get = |purpose: &str, q: &str| {
            let p = set.purpose(purpose).expect("purpose");
            check_url(set, p, single, "/crm/v3/objects/contacts/x", Some(q)).map(drop)
        };
        assert_eq!(
            get("newsletter", "idProperty=email&properties=email"),
            Ok(())
        );
        assert_eq!(
            get("analytics", "idProperty=email"),
            refused(&["contacts.email"])
        );
        assert_eq!(get("analytics", "properties=email"), Ok(()));
        let batch = inv
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/contacts/batch/read"))
            .expect("batch read");
        let read = |purpose: &str, body: serde_json::Value| {
            let p = set.purpose(purpose).expect("purpose");
            check_body(set, p, batch, "/crm/v3/objects/contacts/batch/read", &body).map(drop)
        };
        let by_email = json!({"idProperty": "email", "inputs": [{"id": "x"}]});
        assert_eq!(read("analytics", by_email), refused(&["contacts.email"]));
        assert_eq!(read("analytics", json!({"inputs": [{"id": "1"}]})), Ok(()));
        for bad in [
            json!([]),
            json!({"filterGroups": {}}),
            json!({"filterGroups": [{"filters": [{}]}]}),
            json!({"sorts": [1]}),
        ] {
            assert!(
                matches!(
                    check("support", bad.clone()),
                    Err(QueryRefusal::Unreadable(_))
                ),
                "{bad}"
            );
        }
    }
}
