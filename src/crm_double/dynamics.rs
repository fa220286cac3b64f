//! Dataverse Web API v9.2 under `/api/data/v9.2/`: service document, contacts (get, list with
//! `Prefer: odata.maxpagesize` and `$skiptoken` paging, create, update) and `$batch`.
//!
//! `@odata.context`, `@odata.nextLink` and `OData-EntityId` are absolute URLs built from the
//! request's Host, as the real service does; these are the links a proxy has to rewrite.
//! `Prefer: odata.include-annotations="*"` adds the FormattedValue and lookup annotations that a
//! redactor must treat as PII too. Errors use `{"error":{"code","message"}}`.

mod apply;
mod batch;
mod metadata;

use std::sync::Arc;

use http::{Method, StatusCode};
use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};
use serde_json::{json, Map, Value};

use super::reply::Reply;
use super::request::{comma_list, Req};
use super::store::{apply, blank_except, Kind};
use super::CrmDouble;

const ROOT: &str = "/api/data/v9.2";
const CONTENT_TYPE: &str = "application/json; odata.metadata=minimal";
/// Default and maximum page size (`Prefer: odata.maxpagesize`).
const MAX_PAGE: u64 = 5000;
const CONTACT_GUID: &str = "6f0c1a2b";
const ACCOUNT_GUID: &str = "2b9d3c4e";
const FORMATTED: &str = "@OData.Community.Display.V1.FormattedValue";
const BOOLEAN_COLUMNS: &[&str] = &[
    "donotemail",
    "donotbulkemail",
    "donotphone",
    "donotpostalmail",
    "donotfax",
];
const READ_ONLY: &[&str] = &[
    "contactid",
    "fullname",
    "createdon",
    "modifiedon",
    "_parentcustomerid_value",
    "@odata.etag",
];

/// `xxxxxxxx-0000-4000-8000-<index as 12 hex digits>`
fn guid(prefix: &str, index: u64) -> String {
    format!("{prefix}-0000-4000-8000-{index:012x}")
}

fn parse_guid(prefix: &str, s: &str) -> Option<u64> {
    let s = s
        .trim_matches(|c| c == '{' || c == '}')
        .to_ascii_lowercase();
    let rest = s.strip_prefix(prefix)?.strip_prefix("-0000-4000-8000-")?;
    if rest.len() != 12 {
        return None;
    }
    u64::from_str_radix(rest, 16).ok()
}

fn dv_error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::json_as(
        status,
        CONTENT_TYPE,
        &json!({ "error": { "code": code, "message": message } }),
    )
    .header("odata-version", "4.0")
}

fn ok(status: StatusCode, body: &Value) -> Reply {
    Reply::json_as(status, CONTENT_TYPE, body)
        .header("odata-version", "4.0")
        .header("x-ms-ratelimit-burst-remaining-xrm-requests", "5999")
}

fn no_such_property(name: &str, entity: &str) -> Reply {
    dv_error(
        StatusCode::BAD_REQUEST,
        "0x80060888",
        &format!(
            "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'."
        ),
    )
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |x| s(x.clone()))
}

/// All columns of a contact, writes applied, no annotations.
fn full(double: &CrmDouble, index: u64) -> Option<Map<String, Value>> {
    let store = &double.store;
    if !store.exists(Kind::DvContact, index) {
        return None;
    }
    let p = store.gen.person(index);
    let etag = 81_000_000u64
        .wrapping_add(index.wrapping_mul(10) % 10_000_000)
        .wrapping_add(store.version(Kind::DvContact, index));
    let mut record = Map::new();
    for (k, v) in [
        ("@odata.etag", s(format!("W/\"{etag}\""))),
        ("contactid", s(guid(CONTACT_GUID, index))),
        ("firstname", s(p.first_name)),
        ("lastname", s(p.last_name.clone())),
        ("fullname", s(p.full_name())),
        ("emailaddress1", s(p.email.clone())),
        ("telephone1", opt(&p.phone)),
        ("mobilephone", opt(&p.mobile)),
        ("birthdate", opt(&p.birthdate)),
        ("jobtitle", s(p.title)),
        ("address1_line1", opt(&p.street)),
        ("address1_city", s(p.city)),
        ("address1_postalcode", p.postal_code.map_or(Value::Null, s)),
        ("address1_country", s(p.country)),
        ("donotemail", Value::Bool(p.email_opt_out)),
        ("donotbulkemail", Value::Bool(p.bulk_email_opt_out)),
        ("donotphone", Value::Bool(p.do_not_call)),
        ("donotpostalmail", Value::Bool(false)),
        ("donotfax", Value::Bool(p.fax_opt_out)),
        ("msdyn_gdproptout", Value::Bool(p.gdpr_opt_out)),
        (
            "_parentcustomerid_value",
            p.account.map_or(Value::Null, |a| s(guid(ACCOUNT_GUID, a))),
        ),
        ("createdon", s(format!("{}Z", &p.created[..19]))),
        ("modifiedon", s(format!("{}Z", &p.modified[..19]))),
        ("cr123_allergies", opt(&p.allergies)),
        ("cr123_preferredstore", s(p.preferred_store)),
        ("cr123_notes", opt(&p.notes)),
    ] {
        record.insert(k.to_string(), v);
    }
    if store.is_created(Kind::DvContact, index) {
        blank_except(
            &mut record,
            &["@odata.etag", "contactid", "createdon", "modifiedon"],
        );
        for b in BOOLEAN_COLUMNS.iter().chain(&["msdyn_gdproptout"]) {
            record.insert(b.to_string(), Value::Bool(false));
        }
    }
    apply(&mut record, store.patch(Kind::DvContact, index));
    let text = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_string);
    let fullname = match (text("firstname"), text("lastname")) {
        (Some(f), Some(l)) => s(format!("{f} {l}")),
        (Some(x), None) | (None, Some(x)) => s(x),
        (None, None) => Value::Null,
    };
    record.insert("fullname".into(), fullname);
    Some(record)
}

fn account(double: &CrmDouble, index: u64) -> Option<Map<String, Value>> {
    if index >= double.store.gen.companies() {
        return None;
    }
    let c = double.store.gen.company(index);
    let mut m = Map::new();
    for (k, v) in [
        (
            "@odata.etag",
            s(format!("W/\"{}\"", 81_050_000u64.wrapping_add(index))),
        ),
        ("name", s(c.name.clone())),
        ("telephone1", s(c.phone.clone())),
        ("websiteurl", s(format!("https://{}", c.domain))),
        ("address1_city", s(c.city)),
        ("address1_country", s(c.country)),
        ("createdon", s(format!("{}Z", &c.created[..19]))),
        ("accountid", s(guid(ACCOUNT_GUID, index))),
    ] {
        m.insert(k.to_string(), v);
    }
    Some(m)
}

/// A contact with all columns, as an element of `value[]` (no annotations).
pub(crate) fn contact(double: &CrmDouble, index: u64) -> Value {
    full(double, index).map_or(Value::Null, Value::Object)
}

/// What the client asked for: `$select`, `$expand` and annotations.
struct Shape {
    select: Option<Vec<String>>,
    /// `Some(columns)` when `parentcustomerid_account` is expanded (empty: all columns).
    expand: Option<Vec<String>>,
    annotations: bool,
}

fn parse_shape(req: &Req, prefer: &Prefer) -> Result<Shape, Reply> {
    let sample = full_sample();
    let select = match req.param("$select") {
        None => None,
        Some(list) => {
            let cols = comma_list(&list);
            if let Some(bad) = cols.iter().find(|c| !sample.contains(&c.as_str())) {
                return Err(no_such_property(bad, "contact"));
            }
            Some(cols)
        }
    };
    let expand = match req.param("$expand") {
        None => None,
        Some(e) => {
            let e = e.trim();
            let (nav, options) = match e.split_once('(') {
                Some((n, rest)) => (n.trim(), rest.strip_suffix(')').unwrap_or(rest)),
                None => (e, ""),
            };
            if nav != "parentcustomerid_account" {
                return Err(dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80060888",
                    &format!("Could not find a property named '{nav}' on type 'Microsoft.Dynamics.CRM.contact'."),
                ));
            }
            let mut cols = Vec::new();
            for option in options.split(';').filter(|o| !o.trim().is_empty()) {
                match option.trim().split_once('=') {
                    Some(("$select", list)) => cols = comma_list(list),
                    _ => {
                        return Err(dv_error(
                            StatusCode::BAD_REQUEST,
                            "0x80060888",
                            "Only $select is supported inside $expand by the double.",
                        ))
                    }
                }
            }
            let account_cols = [
                "name",
                "telephone1",
                "websiteurl",
                "address1_city",
                "address1_country",
                "createdon",
                "accountid",
            ];
            if let Some(bad) = cols.iter().find(|c| !account_cols.contains(&c.as_str())) {
                return Err(no_such_property(bad, "account"));
            }
            Some(cols)
        }
    };
    Ok(Shape {
        select,
        expand,
        annotations: prefer.annotations.is_some(),
    })
}

fn full_sample() -> Vec<&'static str> {
    vec![
        "contactid",
        "firstname",
        "lastname",
        "fullname",
        "emailaddress1",
        "telephone1",
        "mobilephone",
        "birthdate",
        "jobtitle",
        "address1_line1",
        "address1_city",
        "address1_postalcode",
        "address1_country",
        "donotemail",
        "donotbulkemail",
        "donotphone",
        "donotpostalmail",
        "donotfax",
        "msdyn_gdproptout",
        "_parentcustomerid_value",
        "createdon",
        "modifiedon",
        "cr123_allergies",
        "cr123_preferredstore",
        "cr123_notes",
    ]
}

/// Renders one record the way the request asked.
fn shape(double: &CrmDouble, record: &Map<String, Value>, shape: &Shape) -> Map<String, Value> {
    let mut out = Map::new();
    let put = |out: &mut Map<String, Value>, key: &str| {
        let value = record.get(key).cloned().unwrap_or(Value::Null);
        if shape.annotations {
            annotate(double, out, key, &value);
        } else {
            out.insert(key.to_string(), value);
        }
    };
    for key in ["@odata.etag", "contactid"] {
        out.insert(
            key.to_string(),
            record.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    match &shape.select {
        Some(cols) => {
            for c in cols.iter().filter(|c| c.as_str() != "contactid") {
                put(&mut out, c);
            }
        }
        None => {
            for c in record
                .keys()
                .filter(|k| !matches!(k.as_str(), "@odata.etag" | "contactid"))
            {
                put(&mut out, c);
            }
        }
    }
    if let Some(cols) = &shape.expand {
        let parent = record
            .get("_parentcustomerid_value")
            .and_then(Value::as_str)
            .and_then(|g| parse_guid(ACCOUNT_GUID, g))
            .and_then(|a| account(double, a));
        let value = match parent {
            None => Value::Null,
            Some(a) if cols.is_empty() => Value::Object(a),
            Some(a) => {
                let mut m = Map::new();
                m.insert(
                    "@odata.etag".into(),
                    a.get("@odata.etag").cloned().unwrap_or(Value::Null),
                );
                for c in cols.iter().filter(|c| c.as_str() != "accountid") {
                    m.insert(c.clone(), a.get(c).cloned().unwrap_or(Value::Null));
                }
                m.insert(
                    "accountid".into(),
                    a.get("accountid").cloned().unwrap_or(Value::Null),
                );
                Value::Object(m)
            }
        };
        out.insert("parentcustomerid_account".into(), value);
    }
    out
}

/// Inserts a column and, after it, the annotations the real service adds for it.
fn annotate(double: &CrmDouble, out: &mut Map<String, Value>, key: &str, value: &Value) {
    out.insert(key.to_string(), value.clone());
    if BOOLEAN_COLUMNS.contains(&key) {
        if let Some(b) = value.as_bool() {
            out.insert(
                format!("{key}{FORMATTED}"),
                s(if b { "Do Not Allow" } else { "Allow" }),
            );
        }
    } else if key == "_parentcustomerid_value" {
        let name = value
            .as_str()
            .and_then(|g| parse_guid(ACCOUNT_GUID, g))
            .and_then(|a| account(double, a))
            .and_then(|a| a.get("name").cloned());
        if let Some(name) = name {
            out.insert(format!("{key}{FORMATTED}"), name);
            out.insert(
                format!("{key}@Microsoft.Dynamics.CRM.associatednavigationproperty"),
                s("parentcustomerid_account"),
            );
            out.insert(
                format!("{key}@Microsoft.Dynamics.CRM.lookuplogicalname"),
                s("account"),
            );
        }
    }
}

/// The `Prefer` preferences the double understands.
#[derive(Default)]
struct Prefer {
    max_page: Option<u64>,
    annotations: Option<String>,
    representation: bool,
}

impl Prefer {
    fn parse(req: &Req) -> Prefer {
        let mut p = Prefer::default();
        for header in req.headers.get_all("prefer") {
            let Ok(text) = header.to_str() else { continue };
            for item in split_outside_quotes(text) {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                match k.trim() {
                    "odata.maxpagesize" => p.max_page = v.trim().parse().ok().filter(|n| *n > 0),
                    "odata.include-annotations" => {
                        p.annotations = Some(v.trim().trim_matches('"').to_string());
                    }
                    "return" => p.representation = v.trim() == "representation",
                    _ => {}
                }
            }
        }
        p
    }

    /// `Preference-Applied` for a read.
    fn applied(&self, page: u64) -> Option<String> {
        let mut parts = Vec::new();
        if self.max_page.is_some() {
            parts.push(format!("odata.maxpagesize={page}"));
        }
        if let Some(a) = &self.annotations {
            parts.push(format!("odata.include-annotations=\"{a}\""));
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

fn split_outside_quotes(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.into_iter().filter(|x| !x.is_empty()).collect()
}

/// Entry point for everything under `/api/data/v9.2`.
pub(crate) fn handle(double: &Arc<CrmDouble>, req: &Req) -> Reply {
    if !double.auth.allows(req) {
        return dv_error(
            StatusCode::UNAUTHORIZED,
            "0x80072560",
            "The bearer token is missing, invalid or expired.",
        )
        .header(http::header::WWW_AUTHENTICATE, "Bearer");
    }
    let rest = req
        .path
        .strip_prefix(ROOT)
        .unwrap_or_default()
        .trim_start_matches('/');
    let m = &req.method;
    if rest.is_empty() {
        return match *m {
            Method::GET => service_document(req),
            _ => dv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "The requested resource does not support this method.",
            ),
        };
    }
    if rest == "$batch" {
        return match *m {
            Method::POST => batch::batch(double, req),
            _ => dv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "The requested resource does not support this method.",
            ),
        };
    }
    let rest = rest.trim_end_matches('/');
    if rest == "$metadata" || rest.starts_with("EntityDefinitions") {
        return match *m {
            Method::GET if rest == "$metadata" => metadata::csdl(),
            Method::GET => metadata::entity_definitions(req, rest),
            _ => dv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "The requested resource does not support this method.",
            ),
        };
    }
    if rest == "contacts" {
        return match *m {
            Method::GET => list(double, req),
            Method::POST => create(double, req),
            _ => dv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "The requested resource does not support this method.",
            ),
        };
    }
    if let Some(key) = rest
        .strip_prefix("contacts(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let index =
            parse_guid(CONTACT_GUID, key).filter(|i| double.store.exists(Kind::DvContact, *i));
        let Some(index) = index else {
            return dv_error(
                StatusCode::NOT_FOUND,
                "0x80040217",
                &format!(
                    "contact With Id = {} Does Not Exist",
                    key.trim_matches(|c| c == '{' || c == '}')
                ),
            );
        };
        return match *m {
            Method::GET => get(double, req, index),
            Method::PATCH => update(double, req, index),
            _ => dv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "The requested resource does not support this method.",
            ),
        };
    }
    let segment = rest.split(['(', '/', '?']).next().unwrap_or(rest);
    dv_error(
        StatusCode::NOT_FOUND,
        "0x80060888",
        &format!("Resource not found for the segment '{segment}'."),
    )
}

fn service_document(req: &Req) -> Reply {
    let sets: Vec<Value> = ["contacts", "accounts"]
        .iter()
        .map(|n| json!({ "name": n, "kind": "EntitySet", "url": n }))
        .collect();
    ok(
        StatusCode::OK,
        &json!({ "@odata.context": format!("https://{}{ROOT}/$metadata", req.host), "value": sets }),
    )
}

fn context(req: &Req, shape: &Shape, entity: bool) -> String {
    let mut cols: Vec<String> = shape.select.clone().unwrap_or_default();
    if let Some(e) = &shape.expand {
        cols.push(format!("parentcustomerid_account({})", e.join(",")));
    }
    let list = if cols.is_empty() {
        String::new()
    } else {
        format!("({})", cols.join(","))
    };
    let suffix = if entity { "/$entity" } else { "" };
    format!(
        "https://{}{ROOT}/$metadata#contacts{list}{suffix}",
        req.host
    )
}

fn get(double: &CrmDouble, req: &Req, index: u64) -> Reply {
    let prefer = Prefer::parse(req);
    let shape_spec = match parse_shape(req, &prefer) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(record) = full(double, index) else {
        return dv_error(
            StatusCode::NOT_FOUND,
            "0x80040217",
            "contact Does Not Exist",
        );
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), s(context(req, &shape_spec, true)));
    body.extend(shape(double, &record, &shape_spec));
    let mut reply = ok(StatusCode::OK, &Value::Object(body));
    if let Some(a) = &prefer.annotations {
        reply = reply.header(
            "preference-applied",
            format!("odata.include-annotations=\"{a}\""),
        );
    }
    reply
}

/// One `col eq value` clause of `$filter`.
struct Clause {
    column: String,
    value: Value,
}

fn parse_filter(filter: &str) -> Result<Vec<Clause>, Reply> {
    let unsupported = || {
        dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "The double supports $filter only as `column eq value` joined by `and`.",
        )
    };
    let mut clauses = Vec::new();
    for part in filter.split(" and ") {
        let mut words = part.trim().splitn(3, ' ');
        let (Some(column), Some(op), Some(value)) = (words.next(), words.next(), words.next())
        else {
            return Err(unsupported());
        };
        if op != "eq" || !full_sample().contains(&column) {
            return Err(unsupported());
        }
        let value = value.trim();
        let value = if let Some(text) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''))
        {
            s(text.replace("''", "'"))
        } else {
            match value {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                other => match parse_guid(ACCOUNT_GUID, other)
                    .or_else(|| parse_guid(CONTACT_GUID, other))
                {
                    Some(_) => s(other.to_ascii_lowercase()),
                    None => return Err(unsupported()),
                },
            }
        };
        clauses.push(Clause {
            column: column.to_string(),
            value,
        });
    }
    Ok(clauses)
}

/// Characters escaped in the `$skiptoken` value (the fixture's encoding).
const TOKEN: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'%')
    .add(b'#')
    .add(b'&')
    .add(b'+')
    .add(b'?')
    .add(b'{')
    .add(b'}');

/// A paging cookie like Dataverse's, carrying the page number and the last contact id.
fn skiptoken(page: u64, first: u64, last: u64) -> String {
    let inner = format!(
        "<cookie page=\"{}\"><contactid last=\"{{{}}}\" first=\"{{{}}}\" /></cookie>",
        page.saturating_sub(1),
        guid(CONTACT_GUID, last).to_uppercase(),
        guid(CONTACT_GUID, first).to_uppercase()
    );
    let inner = utf8_percent_encode(&inner, NON_ALPHANUMERIC)
        .to_string()
        .to_ascii_lowercase();
    let cookie =
        format!("<cookie pagenumber=\"{page}\" pagingcookie=\"{inner}\" istracking=\"False\" />");
    utf8_percent_encode(&cookie, TOKEN).to_string()
}

/// `(page number, index after the last one served)` from a `$skiptoken` (already URL-decoded once).
fn parse_skiptoken(token: &str) -> Option<(u64, u64)> {
    let page_at = token.find("pagenumber=\"")? + "pagenumber=\"".len();
    let page: u64 = token[page_at..].split('"').next()?.parse().ok()?;
    let inner = percent_decode_str(token).decode_utf8_lossy();
    let last_at = inner.find("last=\"{")? + "last=\"{".len();
    let last = parse_guid(CONTACT_GUID, inner.get(last_at..last_at + 36)?)?;
    Some((page, last.checked_add(1)?))
}

fn list(double: &CrmDouble, req: &Req) -> Reply {
    if let Some(apply) = req.param("$apply") {
        return apply::answer(double, &req.host, &apply);
    }
    let prefer = Prefer::parse(req);
    let shape_spec = match parse_shape(req, &prefer) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page_size = prefer.max_page.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let top = match req.param("$top") {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80060888",
                    "Invalid value for $top.",
                )
            }
        },
    };
    let clauses = match req.param("$filter") {
        None => Vec::new(),
        Some(f) => match parse_filter(&f) {
            Ok(c) => c,
            Err(r) => return r,
        },
    };
    let (page_number, start) = match req.param("$skiptoken") {
        None => (1, 0),
        Some(t) => match parse_skiptoken(&t) {
            Some(p) => p,
            None => {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80060888",
                    "The $skiptoken is not valid.",
                )
            }
        },
    };
    // $top caps the whole result; earlier pages were full.
    let served_before = page_number.saturating_sub(1).saturating_mul(page_size);
    let remaining_top = top.map(|t| t.saturating_sub(served_before));
    let take = remaining_top.map_or(page_size, |r| r.min(page_size));
    let total = double.store.total(Kind::DvContact);
    let matches = |r: &Map<String, Value>| {
        clauses
            .iter()
            .all(|c| r.get(&c.column).is_some_and(|v| *v == c.value))
    };

    let mut rows = Vec::new();
    let (mut first, mut last, mut more) = (None, None, false);
    let mut i = start;
    while i < total {
        if let Some(record) = full(double, i) {
            if matches(&record) {
                if rows.len() as u64 >= take {
                    more = true;
                    break;
                }
                first.get_or_insert(i);
                last = Some(i);
                rows.push(Value::Object(shape(double, &record, &shape_spec)));
            }
        }
        i += 1;
    }
    if remaining_top.is_some_and(|r| r <= take) {
        more = false;
    }
    let mut body = Map::new();
    body.insert("@odata.context".into(), s(context(req, &shape_spec, false)));
    if req.param("$count").as_deref() == Some("true") {
        let count = if clauses.is_empty() {
            total
        } else {
            (0..total)
                .filter(|i| full(double, *i).is_some_and(|r| matches(&r)))
                .count() as u64
        };
        body.insert("@odata.count".into(), json!(count));
    }
    body.insert("value".into(), Value::Array(rows));
    if let (true, Some(first), Some(last)) = (more, first, last) {
        let mut query: Vec<String> = req
            .query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|p| {
                !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken=")
            })
            .map(str::to_string)
            .collect();
        query.push(format!(
            "$skiptoken={}",
            skiptoken(page_number.saturating_add(1), first, last)
        ));
        body.insert(
            "@odata.nextLink".into(),
            s(format!(
                "https://{}{ROOT}/contacts?{}",
                req.host,
                query.join("&")
            )),
        );
    }
    let mut reply = ok(StatusCode::OK, &Value::Object(body));
    if let Some(applied) = prefer.applied(page_size) {
        reply = reply.header("preference-applied", applied);
    }
    reply
}

/// Checks a create/update body; `parentcustomerid_account@odata.bind` sets the account lookup.
fn writable(body: &Value) -> Result<Map<String, Value>, Reply> {
    let Some(fields) = body.as_object() else {
        return Err(dv_error(
            StatusCode::BAD_REQUEST,
            "0x80048d19",
            "The request body must be a JSON object.",
        ));
    };
    let sample = full_sample();
    let mut out = Map::new();
    for (k, v) in fields {
        if k == "parentcustomerid_account@odata.bind" {
            let target = v.as_str().unwrap_or_default();
            let guid = target
                .rsplit_once("accounts(")
                .and_then(|(_, g)| g.strip_suffix(')'))
                .and_then(|g| parse_guid(ACCOUNT_GUID, g).map(|_| g.to_ascii_lowercase()));
            match guid {
                Some(g) => out.insert("_parentcustomerid_value".into(), s(g)),
                None => {
                    return Err(dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80048d19",
                        "Invalid @odata.bind reference.",
                    ))
                }
            };
            continue;
        }
        if !sample.contains(&k.as_str()) || READ_ONLY.contains(&k.as_str()) {
            return Err(dv_error(
                StatusCode::BAD_REQUEST,
                "0x80048d19",
                &format!("Error identified in Payload provided by the user for Entity :'contacts'. The property '{k}' does not exist on type 'Microsoft.Dynamics.CRM.contact'."),
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

fn json_body(req: &Req) -> Result<Value, Reply> {
    serde_json::from_slice(&req.body).map_err(|_| {
        dv_error(
            StatusCode::BAD_REQUEST,
            "0x80048d19",
            "The request body is not valid JSON.",
        )
    })
}

fn create(double: &CrmDouble, req: &Req) -> Reply {
    let fields = match json_body(req).and_then(|b| writable(&b)) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let index = double.store.create(req.journal(), Kind::DvContact, fields);
    written(double, req, index, StatusCode::CREATED)
}

fn update(double: &CrmDouble, req: &Req, index: u64) -> Reply {
    let fields = match json_body(req).and_then(|b| writable(&b)) {
        Ok(f) => f,
        Err(r) => return r,
    };
    double
        .store
        .update(req.journal(), Kind::DvContact, index, fields);
    written(double, req, index, StatusCode::OK)
}

/// 204 + `OData-EntityId`, or the record with `Prefer: return=representation`.
fn written(double: &CrmDouble, req: &Req, index: u64, with_body: StatusCode) -> Reply {
    let entity = format!(
        "https://{}{ROOT}/contacts({})",
        req.host,
        guid(CONTACT_GUID, index)
    );
    let prefer = Prefer::parse(req);
    if !prefer.representation {
        return Reply::new(StatusCode::NO_CONTENT)
            .header("odata-version", "4.0")
            .header("odata-entityid", &entity)
            .header(http::header::LOCATION, &entity);
    }
    let shape_spec = match parse_shape(req, &prefer) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let record = full(double, index).unwrap_or_default();
    let mut body = Map::new();
    body.insert("@odata.context".into(), s(context(req, &shape_spec, true)));
    body.extend(shape(double, &record, &shape_spec));
    ok(with_body, &Value::Object(body))
        .header("odata-entityid", &entity)
        .header("preference-applied", "return=representation")
}

#[cfg(test)]
mod tests;
