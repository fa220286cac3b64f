//! HubSpot CRM v3 objects under `/crm/v3/objects/{contacts|companies|0-1|0-2}`: get, list with
//! `after` cursors, batch read, search, create and update.
//!
//! Every property value is a string or null, as on the real API. `paging.next.link` is absolute
//! and built from the request's Host, because that link is exactly what a proxy must rewrite
//! (CRM-APIS.md §5.1). Errors use the `{status,message,correlationId,category}` envelope.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::data::LEGAL_BASES;
use super::reply::Reply;
use super::request::{comma_list, Req};
use super::store::{Kind, Store};
use super::CrmDouble;

mod metadata;

const CONTENT_TYPE: &str = "application/json;charset=utf-8";
const CONTACT_BASE: u64 = 51_000_001;
const COMPANY_BASE: u64 = 88_000_001;
const MAX_LIST_LIMIT: u64 = 100;
const DEFAULT_LIMIT: u64 = 10;
const MAX_SEARCH_LIMIT: u64 = 200;
const MAX_SEARCH_RESULTS: u64 = 10_000;
const MAX_BATCH_INPUTS: usize = 100;
/// Fixed stamps for batch responses keep outputs deterministic.
const STARTED_AT: &str = "2025-01-11T09:31:00.101Z";
const COMPLETED_AT: &str = "2025-01-11T09:31:00.187Z";

/// Correlation ids for error envelopes, and the calls counted against the rate limits.
#[derive(Default)]
pub(crate) struct State {
    errors: AtomicU64,
    calls: AtomicU64,
}

/// A private app's limits (Professional tier): per day, and per 10-second interval.
const DAILY_LIMIT: u64 = 250_000;
const INTERVAL_LIMIT: u64 = 190;
const INTERVAL_MS: u64 = 10_000;
const SECONDLY_LIMIT: u64 = 19;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectType {
    Contact,
    Company,
}

impl ObjectType {
    fn parse(s: &str) -> Option<ObjectType> {
        match s {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contact),
            "companies" | "company" | "0-2" => Some(ObjectType::Company),
            _ => None,
        }
    }

    fn kind(self) -> Kind {
        match self {
            ObjectType::Contact => Kind::HsContact,
            ObjectType::Company => Kind::HsCompany,
        }
    }

    fn base(self) -> u64 {
        match self {
            ObjectType::Contact => CONTACT_BASE,
            ObjectType::Company => COMPANY_BASE,
        }
    }

    /// All properties, in the order the double renders them.
    fn all_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contact => &[
                "createdate",
                "email",
                "firstname",
                "lastname",
                "phone",
                "mobilephone",
                "date_of_birth",
                "address",
                "city",
                "zip",
                "country",
                "hs_legal_basis",
                "hs_email_optout",
                "hs_object_id",
                "lastmodifieddate",
                "allergies",
                "preferred_store",
                "notes",
            ],
            ObjectType::Company => &[
                "createdate",
                "domain",
                "name",
                "phone",
                "city",
                "country",
                "industry",
                "hs_object_id",
                "lastmodifieddate",
            ],
        }
    }

    /// What HubSpot returns when the client names no properties.
    fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contact => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
            ObjectType::Company => &[
                "createdate",
                "domain",
                "hs_object_id",
                "lastmodifieddate",
                "name",
            ],
        }
    }

    fn upper(self) -> &'static str {
        match self {
            ObjectType::Contact => "CONTACT",
            ObjectType::Company => "COMPANY",
        }
    }
}

/// Returned with any property selection.
const ALWAYS: &[&str] = &["createdate", "hs_object_id", "lastmodifieddate"];
const READ_ONLY: &[&str] = &["createdate", "hs_object_id", "lastmodifieddate"];

fn id_of(ty: ObjectType, index: u64) -> String {
    ty.base().saturating_add(index).to_string()
}

fn index_of(store: &Store, ty: ObjectType, id: &str) -> Option<u64> {
    let index = id.parse::<u64>().ok()?.checked_sub(ty.base())?;
    store.exists(ty.kind(), index).then_some(index)
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |x| s(x.clone()))
}

/// All properties of a record (values are strings or null), with writes applied.
fn properties(store: &Store, ty: ObjectType, index: u64) -> Map<String, Value> {
    let mut props = Map::new();
    let id = id_of(ty, index);
    match ty {
        ObjectType::Contact => {
            let p = store.gen.person(index);
            let created = format!("{}Z", p.created);
            let modified = format!("{}Z", p.modified);
            for (k, v) in [
                ("createdate", s(created)),
                ("email", s(p.email.clone())),
                ("firstname", s(p.first_name)),
                ("lastname", s(p.last_name.clone())),
                ("phone", opt(&p.phone)),
                ("mobilephone", opt(&p.mobile)),
                ("date_of_birth", opt(&p.birthdate)),
                ("address", opt(&p.street)),
                ("city", s(p.city)),
                ("zip", p.postal_code.map_or(Value::Null, s)),
                ("country", s(p.country)),
                ("hs_legal_basis", opt(&p.legal_basis)),
                ("hs_email_optout", s(p.email_opt_out.to_string())),
                ("hs_object_id", s(id)),
                ("lastmodifieddate", s(modified)),
                ("allergies", opt(&p.allergies)),
                ("preferred_store", s(p.preferred_store)),
                ("notes", opt(&p.notes)),
            ] {
                props.insert(k.to_string(), v);
            }
        }
        ObjectType::Company => {
            let c = store.gen.company(index);
            for (k, v) in [
                ("createdate", s(format!("{}Z", c.created))),
                ("domain", s(c.domain.clone())),
                ("name", s(c.name.clone())),
                ("phone", s(c.phone.clone())),
                ("city", s(c.city)),
                ("country", s(c.country)),
                ("industry", s(c.industry)),
                ("hs_object_id", s(id)),
                ("lastmodifieddate", s(format!("{}Z", c.modified))),
            ] {
                props.insert(k.to_string(), v);
            }
        }
    }
    if store.is_created(ty.kind(), index) {
        super::store::blank_except(&mut props, ALWAYS);
    }
    super::store::apply(&mut props, store.patch(ty.kind(), index));
    props
}

/// The object envelope with the selected properties. `selection` of `None` means defaults.
fn object(
    double: &CrmDouble,
    ty: ObjectType,
    index: u64,
    selection: Option<&[String]>,
    associations: &[String],
) -> Value {
    let all = properties(&double.store, ty, index);
    let wanted = |name: &str| match selection {
        None => ty.default_properties().contains(&name),
        Some(sel) => ALWAYS.contains(&name) || sel.iter().any(|x| x == name),
    };
    let props: Map<String, Value> = all
        .iter()
        .filter(|(k, _)| wanted(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let created = all.get("createdate").cloned().unwrap_or(Value::Null);
    let updated = all.get("lastmodifieddate").cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("id".into(), s(id_of(ty, index)));
    out.insert("properties".into(), Value::Object(props));
    out.insert("createdAt".into(), created);
    out.insert("updatedAt".into(), updated);
    out.insert("archived".into(), Value::Bool(false));
    let assoc = association_map(double, ty, index, associations);
    if !assoc.is_empty() {
        out.insert("associations".into(), Value::Object(assoc));
    }
    Value::Object(out)
}

fn association_map(
    double: &CrmDouble,
    ty: ObjectType,
    index: u64,
    wanted: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    if ty != ObjectType::Contact || double.store.is_created(ty.kind(), index) {
        return out;
    }
    if wanted
        .iter()
        .any(|w| w == "companies" || w == "company" || w == "0-2")
    {
        if let Some(a) = double.store.gen.person(index).account {
            let company = id_of(ObjectType::Company, a);
            out.insert(
                "companies".into(),
                json!({ "results": [
                    { "id": company, "type": "contact_to_company" },
                    { "id": company, "type": "contact_to_company_unlabeled" },
                ]}),
            );
        }
    }
    out
}

/// A contact with all properties, as `GET /crm/v3/objects/contacts/{id}?properties=<all>`.
pub(crate) fn contact(double: &CrmDouble, index: u64) -> Value {
    if !double.store.exists(Kind::HsContact, index) {
        return Value::Null;
    }
    let all: Vec<String> = ObjectType::Contact
        .all_properties()
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    object(double, ObjectType::Contact, index, Some(&all), &[])
}

pub(super) fn hs_error(
    double: &CrmDouble,
    status: StatusCode,
    category: &str,
    message: &str,
) -> Reply {
    let n = double.hubspot.errors.fetch_add(1, Ordering::Relaxed) + 1;
    Reply::json_as(
        status,
        CONTENT_TYPE,
        &json!({
            "status": "error",
            "message": message,
            "correlationId": format!("00000000-0000-4000-8000-{n:012x}"),
            "category": category,
        }),
    )
}

pub(super) fn ok(status: StatusCode, body: &Value) -> Reply {
    Reply::json_as(status, CONTENT_TYPE, body)
}

/// Entry point for everything under `/crm/v3/`: the answer with the rate-limit headers every
/// HubSpot response carries (CRM-APIS.md §2.7; apps and SDK retry helpers read them).
pub(crate) fn handle(double: &Arc<CrmDouble>, req: &Req) -> Reply {
    let calls = double.hubspot.calls.fetch_add(1, Ordering::Relaxed) + 1;
    let reply = route(double, req);
    rate_limit_headers(reply, calls, req.path.ends_with("/search"))
}

/// `X-HubSpot-RateLimit-*` as a private app's token gets them: the daily pair always, the
/// interval and secondly ones on every response but search's.
fn rate_limit_headers(reply: Reply, calls: u64, search: bool) -> Reply {
    let reply = reply
        .header("x-hubspot-ratelimit-daily", DAILY_LIMIT.to_string())
        .header(
            "x-hubspot-ratelimit-daily-remaining",
            DAILY_LIMIT.saturating_sub(calls).to_string(),
        );
    if search {
        return reply;
    }
    let in_interval = (calls - 1) % INTERVAL_LIMIT + 1;
    reply
        .header("x-hubspot-ratelimit-max", INTERVAL_LIMIT.to_string())
        .header(
            "x-hubspot-ratelimit-remaining",
            (INTERVAL_LIMIT - in_interval).to_string(),
        )
        .header(
            "x-hubspot-ratelimit-interval-milliseconds",
            INTERVAL_MS.to_string(),
        )
        .header("x-hubspot-ratelimit-secondly", SECONDLY_LIMIT.to_string())
        .header(
            "x-hubspot-ratelimit-secondly-remaining",
            (SECONDLY_LIMIT - 1).to_string(),
        )
}

fn route(double: &Arc<CrmDouble>, req: &Req) -> Reply {
    if !double.auth.allows(req) {
        return hs_error(
            double,
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        );
    }
    if let Some(reply) = metadata_route(double, req) {
        return reply;
    }
    let Some(rest) = req.path.strip_prefix("/crm/v3/objects/") else {
        return hs_error(
            double,
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        );
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some(type_name) = segments.first() else {
        return hs_error(
            double,
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        );
    };
    let Some(ty) = ObjectType::parse(type_name) else {
        return hs_error(
            double,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {type_name}"),
        );
    };
    let m = &req.method;
    match (&segments[1..], m) {
        ([], &Method::GET) => list(double, req, ty, type_name),
        ([], &Method::POST) => create(double, req, ty),
        (["batch", "read"], &Method::POST) => batch_read(double, req, ty),
        (["search"], &Method::POST) => search(double, req, ty),
        ([id], &Method::GET) => get(double, req, ty, id),
        ([id], &Method::PATCH) => update(double, req, ty, id),
        ([] | ["batch", "read"] | ["search" | _], _) => hs_error(
            double,
            StatusCode::METHOD_NOT_ALLOWED,
            "VALIDATION_ERROR",
            &format!("HTTP method {m} is not supported here"),
        ),
        _ => hs_error(
            double,
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        ),
    }
}

/// The metadata routes: property definitions and (custom object) schemas, read only.
fn metadata_route(double: &CrmDouble, req: &Req) -> Option<Reply> {
    let path = req.path.trim_end_matches('/');
    let (properties, rest) = if let Some(r) = path.strip_prefix("/crm/v3/properties/") {
        (true, r)
    } else if let Some(r) = path
        .strip_prefix("/crm/v3/schemas")
        .or_else(|| path.strip_prefix("/crm-object-schemas/v3/schemas"))
    {
        (false, r.trim_start_matches('/'))
    } else {
        return None;
    };
    if req.method != Method::GET {
        return Some(hs_error(
            double,
            StatusCode::METHOD_NOT_ALLOWED,
            "VALIDATION_ERROR",
            &format!("HTTP method {} is not supported here", req.method),
        ));
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    Some(match (properties, segments.as_slice()) {
        (true, [object]) => match req.param("dataSensitivity").as_deref() {
            None | Some("non_sensitive") => {
                metadata::properties(double, object, None, "non_sensitive")
            }
            Some(level @ ("sensitive" | "highly_sensitive")) => {
                metadata::properties(double, object, None, level)
            }
            Some(_) => hs_error(
                double,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "dataSensitivity must be one of non_sensitive, sensitive, highly_sensitive",
            ),
        },
        (true, [object, name]) => metadata::properties(double, object, Some(name), ""),
        (false, []) => metadata::schemas(double, None),
        (false, [object]) => metadata::schemas(double, Some(object)),
        _ => hs_error(
            double,
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        ),
    })
}

/// `properties` / `associations` query parameters (comma lists, or repeated).
fn list_param(req: &Req, name: &str) -> Option<Vec<String>> {
    let values: Vec<String> = req
        .params()
        .into_iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| comma_list(&v))
        .collect();
    (!values.is_empty()).then_some(values)
}

fn get(double: &CrmDouble, req: &Req, ty: ObjectType, id: &str) -> Reply {
    let index = match req.param("idProperty").as_deref() {
        Some("email") if ty == ObjectType::Contact => find_by_email(&double.store, id),
        Some("hs_object_id") | None => index_of(&double.store, ty, id),
        Some(other) => {
            return hs_error(
                double,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("{other} is not a unique property"),
            )
        }
    };
    let Some(index) = index else {
        return hs_error(
            double,
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Object not found.",
        );
    };
    let props = list_param(req, "properties");
    let assoc = list_param(req, "associations").unwrap_or_default();
    ok(
        StatusCode::OK,
        &object(double, ty, index, props.as_deref(), &assoc),
    )
}

/// Finds a contact by e-mail: generated addresses carry their index (`first.last.{i}@...`).
fn find_by_email(store: &Store, email: &str) -> Option<u64> {
    let written = store.find_written(Kind::HsContact, "email", &s(email));
    if let Some(i) = written.first() {
        return Some(*i);
    }
    let local = email.split_once('@')?.0;
    let index: u64 = local.rsplit('.').next()?.parse().ok()?;
    let generated = store.generated(Kind::HsContact);
    (index < generated
        && properties(store, ObjectType::Contact, index).get("email") == Some(&s(email)))
    .then_some(index)
}

fn list(double: &CrmDouble, req: &Req, ty: ObjectType, type_name: &str) -> Reply {
    let limit = match req.param("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if n >= 1 => n.min(MAX_LIST_LIMIT),
            _ => {
                return hs_error(
                    double,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "limit must be a positive integer",
                )
            }
        },
    };
    let total = if req.param("archived").as_deref() == Some("true") {
        0
    } else {
        double.store.total(ty.kind())
    };
    let start = match req.param("after") {
        None => 0,
        Some(a) if a.is_empty() => 0,
        Some(a) => match a.parse::<u64>() {
            Ok(n) => n.saturating_sub(ty.base()),
            Err(_) => {
                return hs_error(
                    double,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "after must be a cursor from paging.next.after",
                )
            }
        },
    };
    let props = list_param(req, "properties");
    let assoc = list_param(req, "associations").unwrap_or_default();
    let end = start.saturating_add(limit).min(total);
    let results: Vec<Value> = (start.min(end)..end)
        .map(|i| object(double, ty, i, props.as_deref(), &assoc))
        .collect();
    let mut body = Map::new();
    body.insert("results".into(), Value::Array(results));
    if end < total {
        let after = id_of(ty, end);
        // Keep the client's parameters, replace the cursor.
        let mut query: Vec<String> = req
            .query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("after="))
            .map(str::to_string)
            .collect();
        query.push(format!("after={after}"));
        let link = format!(
            "https://{}/crm/v3/objects/{type_name}?{}",
            req.host,
            query.join("&")
        );
        body.insert(
            "paging".into(),
            json!({ "next": { "after": after, "link": link } }),
        );
    }
    ok(StatusCode::OK, &Value::Object(body))
}

fn json_body(double: &CrmDouble, req: &Req) -> Result<Value, Reply> {
    serde_json::from_slice(&req.body).map_err(|_| {
        hs_error(
            double,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid input JSON on line 1",
        )
    })
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    let list: Vec<String> = v?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    (!list.is_empty()).then_some(list)
}

fn batch_read(double: &CrmDouble, req: &Req, ty: ObjectType) -> Reply {
    let body = match json_body(double, req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return hs_error(
            double,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "inputs is required",
        );
    };
    if inputs.len() > MAX_BATCH_INPUTS {
        return hs_error(
            double,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Batch input limit of {MAX_BATCH_INPUTS} exceeded"),
        );
    }
    let by_email = match body.get("idProperty").and_then(Value::as_str) {
        None | Some("hs_object_id") => false,
        Some("email") if ty == ObjectType::Contact => true,
        Some(other) => {
            return hs_error(
                double,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("{other} is not a unique property"),
            )
        }
    };
    let props = string_list(body.get("properties"));
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in inputs {
        let id = match input.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let index = if by_email {
            find_by_email(&double.store, &id)
        } else {
            index_of(&double.store, ty, &id)
        };
        match index {
            Some(i) => results.push(object(double, ty, i, props.as_deref(), &[])),
            None => missing.push(s(id)),
        }
    }
    let mut out = Map::new();
    out.insert("status".into(), s("COMPLETE"));
    out.insert("results".into(), Value::Array(results));
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        out.insert("numErrors".into(), json!(1));
        out.insert(
            "errors".into(),
            json!([{
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", ty.upper()),
                "context": { "ids": missing },
            }]),
        );
        StatusCode::MULTI_STATUS
    };
    out.insert("startedAt".into(), s(STARTED_AT));
    out.insert("completedAt".into(), s(COMPLETED_AT));
    ok(status, &Value::Object(out))
}

#[derive(Debug)]
enum Filter {
    Eq(String, String),
    Neq(String, String),
    Has(String),
    NotHas(String),
}

impl Filter {
    fn matches(&self, props: &Map<String, Value>) -> bool {
        let value = |name: &str| props.get(name).and_then(Value::as_str);
        match self {
            // HubSpot compares case-insensitively for string properties.
            Filter::Eq(p, v) => value(p).is_some_and(|x| x.eq_ignore_ascii_case(v)),
            Filter::Neq(p, v) => !value(p).is_some_and(|x| x.eq_ignore_ascii_case(v)),
            Filter::Has(p) => value(p).is_some_and(|x| !x.is_empty()),
            Filter::NotHas(p) => value(p).is_none_or(str::is_empty),
        }
    }
}

fn parse_filters(body: &Value) -> Result<Vec<Vec<Filter>>, String> {
    let Some(groups) = body.get("filterGroups") else {
        return Ok(Vec::new());
    };
    let groups = groups.as_array().ok_or("filterGroups must be an array")?;
    let mut out = Vec::new();
    for group in groups {
        let filters = group
            .get("filters")
            .and_then(Value::as_array)
            .ok_or("each filterGroup needs filters")?;
        let mut parsed = Vec::new();
        for f in filters {
            let name = f
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or("propertyName is required")?
                .to_string();
            let operator = f.get("operator").and_then(Value::as_str).unwrap_or("EQ");
            let value = match f.get("value") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            parsed.push(match (operator, value) {
                ("EQ", Some(v)) => Filter::Eq(name, v),
                ("NEQ", Some(v)) => Filter::Neq(name, v),
                ("HAS_PROPERTY", _) => Filter::Has(name),
                ("NOT_HAS_PROPERTY", _) => Filter::NotHas(name),
                ("EQ" | "NEQ", None) => return Err(format!("{operator} needs a value")),
                (other, _) => {
                    return Err(format!("operator {other} is not supported by the double"))
                }
            });
        }
        out.push(parsed);
    }
    Ok(out)
}

fn search(double: &CrmDouble, req: &Req, ty: ObjectType) -> Reply {
    let body = match json_body(double, req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let groups = match parse_filters(&body) {
        Ok(g) => g,
        Err(m) => return hs_error(double, StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m),
    };
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_SEARCH_LIMIT).contains(&n) => n,
            _ => {
                return hs_error(
                    double,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "limit must be between 1 and 200",
                )
            }
        },
    };
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(a)) if a.is_empty() => 0,
        Some(v) => match v
            .as_str()
            .map(str::parse::<u64>)
            .or_else(|| v.as_u64().map(Ok))
        {
            Some(Ok(n)) => n,
            _ => {
                return hs_error(
                    double,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "after must be a number",
                )
            }
        },
    };
    if after.saturating_add(limit) > MAX_SEARCH_RESULTS {
        return hs_error(
            double,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Search results are limited to 10000 per query",
        );
    }
    let props = string_list(body.get("properties"));
    let total_records = double.store.total(ty.kind());
    let (total, results) = if groups.is_empty() {
        // every record is a hit: the page is the records from `after` on, the total the
        // count (benches search millions of generated contacts; no walk over all of them)
        let end = after.saturating_add(limit).min(total_records);
        let page = (after..end).map(|i| object(double, ty, i, props.as_deref(), &[]));
        (total_records, page.collect())
    } else {
        let mut total: u64 = 0;
        let mut results = Vec::new();
        for i in 0..total_records {
            let p = properties(&double.store, ty, i);
            if !groups.iter().any(|g| g.iter().all(|f| f.matches(&p))) {
                continue;
            }
            if total >= after && total < after + limit {
                results.push(object(double, ty, i, props.as_deref(), &[]));
            }
            total += 1;
        }
        (total, results)
    };
    let mut out = Map::new();
    out.insert("total".into(), json!(total));
    out.insert("results".into(), Value::Array(results));
    let next = after + limit;
    if next < total && next < MAX_SEARCH_RESULTS {
        out.insert(
            "paging".into(),
            json!({ "next": { "after": next.to_string() } }),
        );
    }
    ok(StatusCode::OK, &Value::Object(out))
}

/// Checks written properties and turns every value into HubSpot's string form.
fn writable(double: &CrmDouble, ty: ObjectType, body: &Value) -> Result<Map<String, Value>, Reply> {
    let Some(props) = body.get("properties").and_then(Value::as_object) else {
        return Err(hs_error(
            double,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "properties is required",
        ));
    };
    let mut out = Map::new();
    for (k, v) in props {
        if !ty.all_properties().contains(&k.as_str()) || READ_ONLY.contains(&k.as_str()) {
            return Err(hs_error(
                double,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("Property values were not valid: Property \"{k}\" does not exist"),
            ));
        }
        if k == "hs_legal_basis" {
            let valid = v
                .as_str()
                .is_none_or(|s| s.is_empty() || s.split(';').all(|b| LEGAL_BASES.contains(&b)));
            if !valid {
                return Err(hs_error(
                    double,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "Property values were not valid: hs_legal_basis has an unknown option",
                ));
            }
        }
        let value = match v {
            Value::Null => Value::Null,
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// The object as create/update answer it: written properties plus the system ones.
fn written_object(
    double: &CrmDouble,
    ty: ObjectType,
    index: u64,
    written: &Map<String, Value>,
) -> Value {
    let names: Vec<String> = written.keys().cloned().collect();
    object(double, ty, index, Some(&names), &[])
}

fn create(double: &CrmDouble, req: &Req, ty: ObjectType) -> Reply {
    let body = match json_body(double, req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let fields = match writable(double, ty, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let index = double
        .store
        .create(req.journal(), ty.kind(), fields.clone());
    ok(
        StatusCode::CREATED,
        &written_object(double, ty, index, &fields),
    )
}

fn update(double: &CrmDouble, req: &Req, ty: ObjectType, id: &str) -> Reply {
    let index = match req.param("idProperty").as_deref() {
        Some("email") if ty == ObjectType::Contact => find_by_email(&double.store, id),
        _ => index_of(&double.store, ty, id),
    };
    let Some(index) = index else {
        return hs_error(
            double,
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Object not found.",
        );
    };
    let body = match json_body(double, req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let fields = match writable(double, ty, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    double
        .store
        .update(req.journal(), ty.kind(), index, fields.clone());
    ok(StatusCode::OK, &written_object(double, ty, index, &fields))
}

#[cfg(test)]
mod tests;
