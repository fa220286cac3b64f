//! HubSpot CRM search bodies (`filterGroups`, `sorts`, free-text `query`) and lookups by a
//! unique property (`idProperty` in the URL or in a batch read's body).
//!
//! HubSpot returns only the properties a read names (`properties` in the URL of a list or
//! record read, in the body of a search or batch read), or a default set without any consent
//! property. So the purpose's consent properties are added to the list, and when the read
//! names none, the object type's default set is named with them, so the app still receives
//! what it would have received.

use serde_json::Value;

use super::{
    form_decode, query_params, replace_param, Carried, Checker, Enforce, QueryRefusal, Reviewed,
    Shape,
};
use crate::dialect::Dialect;
use crate::policy::set::{PolicySet, Purpose};

/// The properties HubSpot returns when a read names none, per object type (HubSpot CRM
/// object and search docs: `createdate`, `email`, `firstname`, `hs_object_id`,
/// `lastmodifieddate`, `lastname` for contacts). An object type not listed here cannot be
/// read without naming its properties by a purpose that needs consent.
const DEFAULT_PROPERTIES: [(&str, &[&str]); 2] = [
    (
        "contacts",
        &[
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname",
        ],
    ),
    (
        "companies",
        &[
            "createdate",
            "domain",
            "hs_object_id",
            "lastmodifieddate",
            "name",
        ],
    ),
];

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

/// A list or record read: consent properties added to `properties` (its `idProperty` is
/// checked for every operation, [`check_id_property`]).
pub(super) fn review_url(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    path: &str,
    query: Option<&str>,
) -> Result<Reviewed, QueryRefusal> {
    if path.ends_with("/search") || path.ends_with("/batch/read") {
        return Ok(Reviewed::default());
    }
    let Some(inv) = set.inventory(Dialect::HubSpot) else {
        return Ok(Reviewed::default());
    };
    let checker = Checker::new(set, inv, purpose, Enforce::Yes);
    let mut named: Vec<String> = Vec::new();
    let mut any = false;
    for (name, value) in query_params(query)? {
        if name == "properties" {
            any = true;
            named.extend(form_decode(value)?.split(',').map(|p| p.trim().to_string()));
        }
    }
    let (add, shape) = consent_properties(&checker, resource, any, &named)?;
    let query = (!add.is_empty()).then(|| replace_param(query, None, "properties", &add.join(",")));
    Ok(Reviewed {
        query,
        shape,
        carried: Carried::new(),
    })
}

/// The properties to add to a read of `resource` that names `named` (`any`: it names a list
/// at all): the purpose's consent properties it lacks, and the default set when it names
/// none. A consent field that is no property, or a default set Zweck does not know, cannot
/// be added.
fn consent_properties(
    checker: &Checker<'_>,
    resource: usize,
    any: bool,
    named: &[impl AsRef<str>],
) -> Result<(Vec<String>, Shape), QueryRefusal> {
    let res = &checker.inv.resources[resource];
    let mut add: Vec<String> = Vec::new();
    let mut shape = Shape::default();
    for field in checker.signal_fields(resource) {
        let property = match field {
            [props, p] if props == "properties" => p,
            _ => {
                return Err(QueryRefusal::ConsentFieldMissing {
                    fields: vec![format!("{}.{}", res.name, field.join("."))],
                })
            }
        };
        if named
            .iter()
            .any(|n| n.as_ref().eq_ignore_ascii_case(property))
        {
            continue;
        }
        if !any && add.is_empty() {
            let defaults = DEFAULT_PROPERTIES
                .iter()
                .find(|(name, _)| *name == res.name)
                .map(|(_, d)| *d)
                .ok_or_else(|| QueryRefusal::ConsentFieldMissing {
                    fields: vec![format!("{}.{property}", res.name)],
                })?;
            add.extend(defaults.iter().map(|d| (*d).to_string()));
        }
        if !add.iter().any(|a| a == property) {
            add.push(property.clone());
            shape.consent_added.push((resource, field.to_vec()));
        }
    }
    Ok((add, shape))
}

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
    checker.finish()?;
    Ok(checker.carried)
}

/// A governed HubSpot read body: a search (`path` ends in `/search`) or a batch read that may
/// look records up by `idProperty`; both get the purpose's consent properties added to
/// `properties`. Returns the answer's shape and the categories the body's query sends.
pub(super) fn review_body(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    path: &str,
    body: &mut Value,
    enforce: Enforce,
) -> Result<(Shape, Carried), QueryRefusal> {
    let inv = set
        .inventory(Dialect::HubSpot)
        .ok_or(QueryRefusal::Unreadable("no HubSpot inventory"))?;
    let mut carried = Carried::new();
    if path.ends_with("/search") {
        carried = search(set, purpose, resource, body, enforce)?;
    } else if let Some(p) = body.get("idProperty") {
        let name = p
            .as_str()
            .ok_or(QueryRefusal::Unreadable("idProperty names a property"))?;
        let mut checker = Checker::new(set, inv, purpose, enforce);
        checker.property(resource, name);
        checker.finish()?;
        carried = checker.carried;
    }
    if !(path.ends_with("/search") || path.ends_with("/batch/read")) {
        return Ok((Shape::default(), carried));
    }
    let bad = QueryRefusal::Unreadable("properties is a list of property names");
    let named: Vec<&str> = match body.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(bad.clone()))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad),
    };
    let checker = Checker::new(set, inv, purpose, Enforce::Yes);
    let (add, shape) = consent_properties(&checker, resource, !named.is_empty(), &named)?;
    if !add.is_empty() {
        let added = add.into_iter().map(Value::String);
        match body.get_mut("properties") {
            // the list as the app wrote it, the consent properties after it
            Some(Value::Array(items)) => items.extend(added),
            _ => {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("properties".into(), Value::Array(added.collect()));
                }
            }
        }
    }
    Ok((shape, carried))
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
    checker.finish()?;
    Ok(checker.carried)
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

    #[test]
    fn properties_get_the_consent_properties_the_purpose_decides_from() {
        let set = shipped();
        let inv = set.inventory(Dialect::HubSpot).expect("inventory");
        let op = |suffix: &str, kind: OpKind| {
            inv.operations()
                .iter()
                .find(|o| o.template().ends_with(suffix) && o.op() == kind)
                .expect("operation")
        };
        let newsletter = set.purpose("newsletter").expect("purpose");
        let list = op("/crm/v3/objects/contacts", OpKind::Read);
        let url = |q: Option<&str>| {
            super::super::review_url(set, newsletter, list, "/crm/v3/objects/contacts", q)
                .expect("reviewed")
        };
        let r = url(Some("limit=10&properties=email,firstname"));
        assert_eq!(
            r.query.as_deref(),
            Some("limit=10&properties=email,firstname&properties=hs_email_optout")
        );
        assert_eq!(r.shape.consent_added.len(), 1);
        assert_eq!(
            url(Some("properties=email&properties=hs_email_optout")).query,
            None
        );
        // naming none: HubSpot's default set, and the consent property
        assert_eq!(
            url(Some("limit=10")).query.as_deref(),
            Some("limit=10&properties=createdate,email,firstname,hs_object_id,lastmodifieddate,lastname,hs_email_optout")
        );
        assert_eq!(
            url(None).query.as_deref(),
            Some("properties=createdate,email,firstname,hs_object_id,lastmodifieddate,lastname,hs_email_optout")
        );
        // search and batch read name properties in their bodies
        let search = op("/contacts/search", OpKind::Read);
        let mut body = json!({"filterGroups": [], "properties": ["email"], "limit": 5});
        let shape = super::super::review_body(
            set,
            newsletter,
            search,
            "/crm/v3/objects/contacts/search",
            &mut body,
        )
        .expect("reviewed");
        assert_eq!(body["properties"], json!(["email", "hs_email_optout"]));
        assert_eq!(shape.consent_added.len(), 1);
        let batch = op("/contacts/batch/read", OpKind::Read);
        let mut body = json!({"inputs": [{"id": "1"}]});
        super::super::review_body(
            set,
            newsletter,
            batch,
            "/crm/v3/objects/contacts/batch/read",
            &mut body,
        )
        .expect("reviewed");
        assert_eq!(
            body["properties"],
            json!([
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
                "hs_email_optout"
            ])
        );
        // other purposes: as sent
        let support = set.purpose("support").expect("purpose");
        let r = super::super::review_url(
            set,
            support,
            list,
            "/crm/v3/objects/contacts",
            Some("limit=1"),
        )
        .expect("reviewed");
        assert_eq!(r.query, None);
    }

    /// An object type whose default properties Zweck does not know cannot be read without
    /// naming its properties, by a purpose that needs consent: refused, naming the field.
    #[test]
    fn unknown_default_sets_refuse_with_the_missing_consent_field() {
        let inventory = r#"
dialect: hubspot
resources:
  tickets:
    operations:
      - { method: GET, path: /crm/v3/objects/tickets, op: read, class: list }
    records: ["$.results[*]"]
    fields: { $.id: system, $.properties.subject: user.content.private, $.properties.ok: user.privacy_preferences }
    consent: { mail: { field: $.properties.ok, granted_when: true } }
"#;
        let purposes = r"
controller: { name: X, jurisdiction: DE }
purposes:
  mail:
    data_use: marketing
    legal_basis: consent
    requires_consent: mail
    fields: { user.content: keep }
";
        let (set, _) = PolicySet::from_texts(&[
            ("purposes.yaml", purposes),
            ("inventory/hubspot.yaml", inventory),
        ])
        .expect("compiles");
        let p = set.purpose("mail").expect("purpose");
        let op = &set
            .inventory(Dialect::HubSpot)
            .expect("inventory")
            .operations()[0];
        let review = |q| super::super::review_url(&set, p, op, "/crm/v3/objects/tickets", q);
        assert_eq!(
            review(Some("limit=5")).map(|r| r.query),
            Err(QueryRefusal::ConsentFieldMissing {
                fields: vec!["tickets.ok".into()]
            })
        );
        assert_eq!(
            review(Some("properties=subject")).map(|r| r.query),
            Ok(Some("properties=subject&properties=ok".into()))
        );
    }

    const PROPERTIES: &[&str] = &[
        "email",
        "firstname",
        "lastname",
        "createdate",
        "hs_email_optout",
        "HS_EMAIL_OPTOUT",
        "company",
    ];
    const OTHERS: &[&str] = &[
        "limit=10",
        "after=MTA%3D",
        "archived=false",
        "associations=companies",
    ];
    const DEFAULT_CONTACT: &[&str] = &[
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ];

    /// Every property named in a query string's `properties` parameters, in order.
    fn named_in(q: &str) -> Vec<String> {
        query_params(Some(q))
            .expect("parses")
            .into_iter()
            .filter(|(n, _)| n == "properties")
            .flat_map(|(_, v)| {
                form_decode(v)
                    .expect("decodes")
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn has_consent(list: &[String]) -> bool {
        list.iter()
            .any(|p| p.eq_ignore_ascii_case("hs_email_optout"))
    }

    /// The properties a rewritten read names beside the app's (HubSpot's default set, consent
    /// properties) never include a special category (GDPR Art. 9/10) of the shipped
    /// inventory (`allergies` is health data): the CRM is not asked for data of that kind on
    /// behalf of a purpose that did not ask for it.
    #[test]
    fn added_properties_are_never_special_categories() {
        use crate::policy::taxonomy::GROUPS;
        let set = shipped();
        let inv = set.inventory(Dialect::HubSpot).expect("inventory");
        let tax = set.taxonomy();
        let special: Vec<String> = inv
            .classified()
            .into_iter()
            .filter(|(_, c)| {
                tax.lineage(*c)
                    .any(|l| GROUPS.iter().any(|g| g.categories.contains(&tax.name(l))))
            })
            // sources read `resource $.path`
            .filter_map(|(source, _)| {
                let (_, path) = source.split_once(' ')?;
                path.strip_prefix("$.properties.").map(str::to_string)
            })
            .collect();
        assert!(special.iter().any(|p| p == "allergies"), "{special:?}");
        for (_, defaults) in DEFAULT_PROPERTIES {
            for d in defaults {
                assert!(!special.iter().any(|p| p == d), "{d} is a special category");
            }
        }
        let reads = inv
            .operations()
            .iter()
            .filter(|o| o.op() == OpKind::Read && o.tunnel().is_none());
        for op in reads {
            let path = op.template().to_string();
            for p in set.purposes() {
                let Ok(r) = super::super::review_url(set, p, op, &path, None) else {
                    continue;
                };
                let Some(q) = r.query else { continue };
                for added in named_in(&q) {
                    assert!(
                        !special.iter().any(|s| s.eq_ignore_ascii_case(&added)),
                        "{} adds {added} on {path}",
                        p.name
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// A rewritten list read keeps every parameter the app sent byte for byte and only
        /// appends one `properties` parameter: the app's properties (or, naming none,
        /// HubSpot's default set) and the consent property. Reviewing it again adds nothing.
        #[test]
        fn url_rewrites_append_one_properties_parameter(
            props in proptest::sample::subsequence(PROPERTIES, 0..PROPERTIES.len()),
            others in proptest::sample::subsequence(OTHERS, 0..OTHERS.len()),
            split in proptest::bool::ANY,
        ) {
            let set = shipped();
            let inv = set.inventory(Dialect::HubSpot).expect("inventory");
            let list = inv
                .operations()
                .iter()
                .find(|o| o.template().ends_with("/crm/v3/objects/contacts") && o.op() == OpKind::Read)
                .expect("list");
            let newsletter = set.purpose("newsletter").expect("purpose");
            let mut params: Vec<String> = others.iter().map(|o| (*o).to_string()).collect();
            if split {
                params.extend(props.iter().map(|p| format!("properties={p}")));
            } else if !props.is_empty() {
                params.push(format!("properties={}", props.join("%2C")));
            }
            let q = params.join("&");
            let review = |q: &str| {
                super::super::review_url(set, newsletter, list, "/crm/v3/objects/contacts", Some(q))
                    .expect("reviewed")
            };
            let r = review(&q);
            let named = named_in(&q);
            proptest::prop_assert_eq!(r.query.is_none(), has_consent(&named));
            let out = r.query.unwrap_or_else(|| q.clone());
            // the app's parameters as sent, then at most one more
            let sent: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
            let forwarded: Vec<&str> = out.split('&').filter(|p| !p.is_empty()).collect();
            proptest::prop_assert_eq!(&forwarded[..sent.len()], &sent[..]);
            proptest::prop_assert!(forwarded.len() <= sent.len() + 1);
            let all = named_in(&out);
            proptest::prop_assert!(has_consent(&all));
            proptest::prop_assert_eq!(&all[..named.len()], &named[..]);
            if named.is_empty() {
                for d in DEFAULT_CONTACT {
                    proptest::prop_assert!(all.iter().any(|p| p == d), "{} missing", d);
                }
            }
            proptest::prop_assert_eq!(review(&out).query, None);
        }

        /// A rewritten search or batch read body differs from the app's in `properties` only:
        /// its list (or, naming none, HubSpot's default set) and then the consent property.
        /// Filters, sorts, paging and inputs are untouched; reviewing it again adds nothing.
        #[test]
        fn body_rewrites_extend_properties_only(
            props in proptest::sample::subsequence(PROPERTIES, 0..PROPERTIES.len()),
            absent in proptest::bool::ANY,
            batch in proptest::bool::ANY,
        ) {
            let set = shipped();
            let inv = set.inventory(Dialect::HubSpot).expect("inventory");
            let suffix = if batch { "/contacts/batch/read" } else { "/contacts/search" };
            let op = inv
                .operations()
                .iter()
                .find(|o| o.template().ends_with(suffix))
                .expect("operation");
            let path = format!("/crm/v3/objects{suffix}");
            let newsletter = set.purpose("newsletter").expect("purpose");
            let mut body = if batch {
                json!({"inputs": [{"id": "1"}, {"id": "2"}], "propertiesWithHistory": []})
            } else {
                json!({
                    "filterGroups": [{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@example.com"}]}],
                    "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
                    "limit": 20,
                    "after": "20"
                })
            };
            if !(absent && props.is_empty()) {
                body["properties"] = json!(props);
            }
            let sent = body.clone();
            let mut out = body;
            let shape = super::super::review_body(set, newsletter, op, &path, &mut out)
                .expect("reviewed");
            let named: Vec<String> = props.iter().map(|p| (*p).to_string()).collect();
            proptest::prop_assert_eq!(shape.consent_added.is_empty(), has_consent(&named));
            let all: Vec<String> = serde_json::from_value(out["properties"].clone())
                .expect("a list of names");
            proptest::prop_assert!(has_consent(&all));
            proptest::prop_assert_eq!(&all[..named.len()], &named[..]);
            if named.is_empty() {
                proptest::prop_assert_eq!(&all[..DEFAULT_CONTACT.len()], DEFAULT_CONTACT);
            }
            let (mut a, mut b) = (sent.clone(), out.clone());
            for doc in [&mut a, &mut b] {
                if let Some(o) = doc.as_object_mut() {
                    o.remove("properties");
                }
            }
            proptest::prop_assert_eq!(a, b);
            let mut again = out.clone();
            let shape = super::super::review_body(set, newsletter, op, &path, &mut again)
                .expect("reviewed again");
            proptest::prop_assert!(shape.consent_added.is_empty());
            proptest::prop_assert_eq!(again, out);
        }
    }
}
