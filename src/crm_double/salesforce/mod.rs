//! Salesforce REST under `/services/data/`: versions, limits, sObject CRUD, SOQL with paging,
//! sObject Collections, Composite and Bulk API 2.0 query jobs.
//!
//! Errors use Salesforce's shape, a JSON array `[{"message","errorCode"}]`, and every response
//! carries `Sforce-Limit-Info` like the real API.

mod aggregate;
mod bulk;
mod composite;
mod describe;
mod records;
mod soql;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::reply::Reply;
use super::request::{comma_list, Req};
use super::CrmDouble;
use records::SObject;

/// Query cursors kept for follow-up pages; the oldest are forgotten first.
const MAX_CURSORS: usize = 10_000;
/// The daily API allocation the double reports.
const DAILY_API_REQUESTS: u64 = 100_000;

/// Server-side state: query cursors and Bulk jobs, both bounded.
#[derive(Default)]
pub(crate) struct State {
    cursors: Mutex<Cursors>,
    jobs: Mutex<HashMap<String, bulk::Job>>,
    job_order: Mutex<VecDeque<String>>,
    counter: AtomicU64,
    api_usage: AtomicU64,
}

#[derive(Default)]
struct Cursors {
    plans: HashMap<String, (Arc<soql::Plan>, u64)>,
    order: VecDeque<String>,
}

impl State {
    fn next_id(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        records::id(prefix, n)
    }

    pub(crate) fn new_cursor(&self, plan: Arc<soql::Plan>, batch: u64) -> String {
        let cursor = self.next_id("01g");
        let mut cursors = self
            .cursors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cursors.order.len() >= MAX_CURSORS {
            if let Some(old) = cursors.order.pop_front() {
                cursors.plans.remove(&old);
            }
        }
        cursors.order.push_back(cursor.clone());
        cursors.plans.insert(cursor.clone(), (plan, batch));
        cursor
    }

    pub(crate) fn cursor(&self, cursor: &str) -> Option<(Arc<soql::Plan>, u64)> {
        let cursors = self
            .cursors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cursors.plans.get(cursor).map(|(p, b)| (Arc::clone(p), *b))
    }
}

/// A Salesforce error, rendered as `[{"message","errorCode"}]`.
#[derive(Debug)]
pub(crate) struct SfError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl SfError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        SfError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn reply(self) -> Reply {
        error(self.status, self.code, &self.message)
    }
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    ok_json(status, &json!([{ "message": message, "errorCode": code }]))
}

pub(crate) fn ok_json(status: StatusCode, body: &Value) -> Reply {
    Reply::json(status, body)
}

fn not_found() -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

fn method_not_allowed(method: &Method, allowed: &str) -> Reply {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
    .header(http::header::ALLOW, allowed)
}

/// `vNN.N`
fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

/// A contact as `GET /services/data/v66.0/sobjects/Contact/{id}` returns it.
pub(crate) fn contact(double: &CrmDouble, index: u64) -> Value {
    records::full(double, SObject::Contact, index, "v66.0").map_or(Value::Null, Value::Object)
}

/// Entry point for everything under `/services/data`.
pub(crate) fn handle(double: &Arc<CrmDouble>, req: &Req) -> Reply {
    let usage = double.salesforce.api_usage.fetch_add(1, Ordering::Relaxed) + 1;
    let reply = route(double, req);
    reply.header(
        "sforce-limit-info",
        format!("api-usage={usage}/{DAILY_API_REQUESTS}"),
    )
}

fn route(double: &Arc<CrmDouble>, req: &Req) -> Reply {
    let rest = req.path.strip_prefix("/services/data").unwrap_or_default();
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        // The versions list needs no session, as on the real API.
        return if req.method == Method::GET {
            versions()
        } else {
            method_not_allowed(&req.method, "GET,HEAD")
        };
    }
    let (ver, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if !valid_version(ver) {
        return not_found();
    }
    if !double.auth.allows(req) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
        .header(http::header::WWW_AUTHENTICATE, "Token");
    }
    let segments: Vec<&str> = tail
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let m = &req.method;
    match segments.as_slice() {
        [] => match *m {
            Method::GET => resources(ver),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        ["limits"] => match *m {
            Method::GET => limits(double),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        [resource @ ("query" | "queryAll")] => match *m {
            Method::GET => soql::start(double, req, ver, resource),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        [resource @ ("query" | "queryAll"), locator] => match *m {
            Method::GET => soql::more(double, req, ver, resource, locator),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        // the Tooling API's query: the double knows FieldDefinition only
        ["tooling", "query"] => match *m {
            Method::GET => soql::start(double, req, ver, "query"),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        ["sobjects"] => match *m {
            Method::GET => describe::global(ver),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        ["sobjects", object, "describe"] => match *m {
            Method::GET => describe::describe(object, ver),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        ["sobjects", object, "describe", "layouts"] => match *m {
            Method::GET => describe::layouts(object, false),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        ["sobjects", object, "describe", "layouts", _] => match *m {
            Method::GET => describe::layouts(object, true),
            _ => method_not_allowed(m, "GET,HEAD"),
        },
        ["sobjects", object] => match (SObject::parse(object), m) {
            (None, _) => not_found(),
            (Some(_), &Method::GET) => describe::basic_info(double, object, ver),
            (Some(o), &Method::POST) => create(double, req, o),
            (Some(_), _) => method_not_allowed(m, "GET,POST,HEAD"),
        },
        ["sobjects", object, id] => match (SObject::parse(object), m) {
            (None, _) => not_found(),
            (Some(o), &Method::GET) => get(double, req, o, id, ver),
            (Some(o), &Method::PATCH) => update(double, req, o, id),
            (Some(o), &Method::DELETE) => delete(double, req, o, id),
            (Some(_), _) => method_not_allowed(m, "GET,PATCH,DELETE,HEAD"),
        },
        ["sobjects", object, field, value] => match SObject::parse(object) {
            None => not_found(),
            Some(o) => by_key(double, req, o, field, value, ver),
        },
        ["composite"] => match *m {
            Method::POST => composite::composite(double, req, ver),
            _ => method_not_allowed(m, "POST"),
        },
        ["composite", "graph"] => match *m {
            Method::POST => composite::graph(double, req, ver),
            _ => method_not_allowed(m, "POST"),
        },
        ["composite", "sobjects"] => match *m {
            Method::POST | Method::PATCH => composite::save(double, req),
            _ => method_not_allowed(m, "POST,PATCH"),
        },
        ["composite", "sobjects", object] => match (SObject::parse(object), m) {
            (None, _) => not_found(),
            (Some(o), &Method::GET | &Method::POST) => composite::retrieve(double, req, o, ver),
            (Some(_), _) => method_not_allowed(m, "GET,POST"),
        },
        ["jobs", "query"] => match *m {
            Method::POST => bulk::create(double, req, ver),
            _ => method_not_allowed(m, "POST"),
        },
        ["jobs", "query", id] => match *m {
            Method::GET => bulk::status(double, id),
            _ => method_not_allowed(m, "GET"),
        },
        ["jobs", "query", id, "results"] => match *m {
            Method::GET => bulk::results(double, req, id),
            _ => method_not_allowed(m, "GET"),
        },
        ["jobs", "query", id, "resultPages"] => match *m {
            Method::GET => bulk::result_pages(double, req, id, ver),
            _ => method_not_allowed(m, "GET"),
        },
        _ => not_found(),
    }
}

fn versions() -> Reply {
    let labels = [
        ("60.0", "Spring '24"),
        ("61.0", "Summer '24"),
        ("62.0", "Winter '25"),
        ("63.0", "Spring '25"),
        ("64.0", "Summer '25"),
        ("65.0", "Winter '26"),
        ("66.0", "Spring '26"),
    ];
    let list: Vec<Value> = labels
        .iter()
        .map(|(v, l)| json!({ "label": l, "url": format!("/services/data/v{v}"), "version": v }))
        .collect();
    ok_json(StatusCode::OK, &Value::Array(list))
}

fn resources(ver: &str) -> Reply {
    let base = format!("/services/data/{ver}");
    ok_json(
        StatusCode::OK,
        &json!({
            "sobjects": format!("{base}/sobjects"),
            "query": format!("{base}/query"),
            "queryAll": format!("{base}/queryAll"),
            "composite": format!("{base}/composite"),
            "jobs": format!("{base}/jobs"),
            "limits": format!("{base}/limits"),
        }),
    )
}

fn limits(double: &CrmDouble) -> Reply {
    let used = double.salesforce.api_usage.load(Ordering::Relaxed);
    let jobs = double.salesforce.jobs.lock().map_or(0, |j| j.len()) as u64;
    ok_json(
        StatusCode::OK,
        &json!({
            "DailyApiRequests": { "Max": DAILY_API_REQUESTS, "Remaining": DAILY_API_REQUESTS.saturating_sub(used) },
            "DailyBulkV2QueryJobs": { "Max": 10000, "Remaining": 10000u64.saturating_sub(jobs) },
            "DailyBulkV2QueryFileStorageMB": { "Max": 976562, "Remaining": 976562 },
            "DailyAsyncApexExecutions": { "Max": 250000, "Remaining": 250000 },
            "DataStorageMB": { "Max": 5120, "Remaining": 5120 },
        }),
    )
}

/// Parses a JSON request body, answering Salesforce's `JSON_PARSER_ERROR` otherwise.
pub(crate) fn json_body(req: &Req) -> Result<Value, SfError> {
    serde_json::from_slice(&req.body).map_err(|e| {
        SfError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("Unexpected JSON at line {} column {}", e.line(), e.column()),
        )
    })
}

fn get(double: &CrmDouble, req: &Req, object: SObject, id: &str, ver: &str) -> Reply {
    let record =
        records::parse_id(object.prefix(), id).and_then(|i| records::full(double, object, i, ver));
    let Some(record) = record else {
        return not_found();
    };
    let Some(fields) = req.param("fields") else {
        return ok_json(StatusCode::OK, &Value::Object(record));
    };
    let mut picked = Vec::new();
    for name in comma_list(&fields) {
        match records::canonical(&record, &name) {
            Some(f) => picked.push(f),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!(
                        "No such column '{name}' on sobject of type {}",
                        object.name()
                    ),
                )
            }
        }
    }
    ok_json(
        StatusCode::OK,
        &Value::Object(records::pick(&record, &picked)),
    )
}

/// A save problem of one record, in SaveResult form.
pub(crate) struct SaveError {
    code: &'static str,
    message: String,
    fields: Vec<String>,
}

impl SaveError {
    fn json(&self) -> Value {
        json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}

/// Checks a create/update body and maps its keys to canonical field names.
pub(crate) fn validate(
    double: &CrmDouble,
    object: SObject,
    body: &Map<String, Value>,
    creating: bool,
) -> Result<Map<String, Value>, SaveError> {
    let sample = records::full(double, object, 0, "v66.0").unwrap_or_default();
    let mut out = Map::new();
    for (key, value) in body {
        if key == "attributes" || (key == "Id" && !creating) {
            continue;
        }
        let Some(field) = records::canonical(&sample, key).filter(|f| !object.read_only(f)) else {
            return Err(SaveError {
                code: "INVALID_FIELD",
                message: format!(
                    "No such column '{key}' on sobject of type {}",
                    object.name()
                ),
                fields: vec![key.clone()],
            });
        };
        if field == "Email" {
            let valid = match value {
                Value::Null => true,
                Value::String(s) => s
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.')),
                _ => false,
            };
            if !valid {
                let shown = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                return Err(SaveError {
                    code: "INVALID_EMAIL_ADDRESS",
                    message: format!("Email: invalid email address: {shown}"),
                    fields: vec!["Email".into()],
                });
            }
        }
        out.insert(field, value.clone());
    }
    if creating {
        let missing: Vec<String> = object
            .required()
            .into_iter()
            .filter(|f| out.get(*f).is_none_or(Value::is_null))
            .map(std::string::ToString::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(SaveError {
                code: "REQUIRED_FIELD_MISSING",
                message: format!("Required fields are missing: [{}]", missing.join(", ")),
                fields: missing,
            });
        }
    }
    Ok(out)
}

fn create(double: &CrmDouble, req: &Req, object: SObject) -> Reply {
    let body = match json_body(req) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "Expected a JSON object",
            )
        }
        Err(e) => return e.reply(),
    };
    match validate(double, object, &body, true) {
        Ok(fields) => {
            let index = double.store.create(req.journal(), object.kind(), fields);
            let id = records::id(object.prefix(), index);
            ok_json(
                StatusCode::CREATED,
                &json!({ "id": id, "errors": [], "success": true }),
            )
        }
        Err(e) => ok_json(
            StatusCode::BAD_REQUEST,
            &json!([{ "message": e.message, "errorCode": e.code, "fields": e.fields }]),
        ),
    }
}

fn delete(double: &CrmDouble, req: &Req, object: SObject, id: &str) -> Reply {
    match records::parse_id(object.prefix(), id) {
        Some(index) if double.store.delete(req.journal(), object.kind(), index) => {
            Reply::new(StatusCode::NO_CONTENT)
        }
        _ => not_found(),
    }
}

/// The records whose key field (`Id` or an External ID field) equals `value`.
fn find_by_key(double: &CrmDouble, object: SObject, field: &str, value: &str) -> Vec<u64> {
    let kind = object.kind();
    if field == "Id" {
        return records::parse_id(object.prefix(), value)
            .filter(|i| double.store.exists(kind, *i))
            .into_iter()
            .collect();
    }
    let wanted = Value::String(value.to_string());
    let mut hits: Vec<u64> = double
        .store
        .find_written(kind, field, &wanted)
        .into_iter()
        .filter(|i| double.store.exists(kind, *i))
        .collect();
    // a generated contact keeps its generated key unless a write replaced it
    if let Some(i) = records::parse_external_id(value).filter(|_| object == SObject::Contact) {
        let current = records::full(double, object, i, "v66.0").and_then(|r| r.get(field).cloned());
        if current.as_ref() == Some(&wanted) && !hits.contains(&i) {
            hits.push(i);
        }
    }
    hits.sort_unstable();
    hits
}

/// `/sobjects/{Object}/{field}/{value}`: read, upsert or delete by a key field.
fn by_key(
    double: &CrmDouble,
    req: &Req,
    object: SObject,
    field: &str,
    value: &str,
    ver: &str,
) -> Reply {
    let m = &req.method;
    if !matches!(*m, Method::GET | Method::PATCH | Method::DELETE) {
        return method_not_allowed(m, "GET,PATCH,DELETE,HEAD");
    }
    let Some(field) = object.schema().and_then(|o| o.field(field)).map(|f| f.name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {field}"),
        );
    };
    if !object.is_key_field(field) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            &format!(
                "Field {field} is not an External ID or indexed field for {}",
                object.name()
            ),
        );
    }
    let hits = find_by_key(double, object, field, value);
    if hits.len() > 1 {
        let urls: Vec<String> = hits
            .iter()
            .map(|i| {
                format!(
                    "/services/data/{ver}/sobjects/{}/{}",
                    object.name(),
                    records::id(object.prefix(), *i)
                )
            })
            .collect();
        return ok_json(StatusCode::MULTIPLE_CHOICES, &json!(urls));
    }
    let found = hits.first().copied();
    match (m, found) {
        (&Method::GET, Some(i)) => get(double, req, object, &records::id(object.prefix(), i), ver),
        (&Method::DELETE, Some(i)) => delete(double, req, object, &records::id(object.prefix(), i)),
        (&Method::GET | &Method::DELETE, None) => not_found(),
        (_, found) => upsert(double, req, object, field, value, found),
    }
}

/// PATCH by a key field: an update when a record has the key, else a create carrying it.
/// Answers as API 46.0 and later do: 200 or 201 with `{id, success, errors, created}`.
fn upsert(
    double: &CrmDouble,
    req: &Req,
    object: SObject,
    field: &str,
    value: &str,
    found: Option<u64>,
) -> Reply {
    let mut body = match json_body(req) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "Expected a JSON object",
            )
        }
        Err(e) => return e.reply(),
    };
    if field == "Id" && found.is_none() {
        return not_found();
    }
    if found.is_none() {
        body.insert(field.to_string(), Value::String(value.to_string()));
    }
    match validate(double, object, &body, found.is_none()) {
        Ok(fields) => {
            let (index, status) = match found {
                Some(i) => {
                    double.store.update(req.journal(), object.kind(), i, fields);
                    (i, StatusCode::OK)
                }
                None => (
                    double.store.create(req.journal(), object.kind(), fields),
                    StatusCode::CREATED,
                ),
            };
            ok_json(
                status,
                &json!({
                    "id": records::id(object.prefix(), index),
                    "success": true,
                    "errors": [],
                    "created": found.is_none(),
                }),
            )
        }
        Err(e) => ok_json(
            StatusCode::BAD_REQUEST,
            &json!([{ "message": e.message, "errorCode": e.code, "fields": e.fields }]),
        ),
    }
}

fn update(double: &CrmDouble, req: &Req, object: SObject, id: &str) -> Reply {
    let Some(index) =
        records::parse_id(object.prefix(), id).filter(|i| double.store.exists(object.kind(), *i))
    else {
        return not_found();
    };
    let body = match json_body(req) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "Expected a JSON object",
            )
        }
        Err(e) => return e.reply(),
    };
    match validate(double, object, &body, false) {
        Ok(fields) => {
            double
                .store
                .update(req.journal(), object.kind(), index, fields);
            Reply::new(StatusCode::NO_CONTENT)
        }
        Err(e) => ok_json(
            StatusCode::BAD_REQUEST,
            &json!([{ "message": e.message, "errorCode": e.code, "fields": e.fields }]),
        ),
    }
}

#[cfg(test)]
mod tests;
