//! sObject Collections (`/composite/sobjects`), Composite (`/composite`) and Composite
//! Graph (`/composite/graph`).
//!
//! Composite runs each subrequest through the same router as a top-level call, so a
//! subrequest behaves exactly like the endpoint it names (auth included: the outer
//! `Authorization` header is passed down). `@{ref.path}` references are resolved against the
//! bodies of earlier subrequests.
//!
//! `allOrNone: true` is one transaction, as in Salesforce: the subrequests write through one
//! journal, the first that fails rolls all of them back, and every other subrequest answers
//! `400 PROCESSING_HALTED` (the ones that had run too). The outer flag also makes each sObject
//! Collections subrequest all-or-none, and a collection with a failed record fails the unit.
//! Each graph of a composite graph is such a unit of its own.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::super::reply::Reply;
use super::super::request::{comma_list, Req};
use super::super::store::Journal;
use super::super::CrmDouble;
use super::records::{self, SObject};
use super::{error, json_body, ok_json, route, validate};

/// Composite accepts at most this many subrequests.
const MAX_SUBREQUESTS: usize = 25;
/// Collections accept at most this many records / ids.
const MAX_RECORDS: usize = 200;
const MAX_IDS: usize = 2000;

/// A record that passed validation: its object, its index when updating, and its fields.
type Checked = (SObject, Option<u64>, Map<String, Value>);

/// `POST` (create) or `PATCH` (update) `/composite/sobjects`.
pub(crate) fn save(double: &CrmDouble, req: &Req) -> Reply {
    let body = match json_body(req) {
        Ok(v) => v,
        Err(e) => return e.reply(),
    };
    // inside an all-or-none composite the outer flag wins (Salesforce's allOrNone docs)
    let all_or_none = req.journal().is_some()
        || body
            .get("allOrNone")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let Some(list) = body.get("records").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "records is required",
        );
    };
    if list.len() > MAX_RECORDS {
        return error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            &format!("record limit reached. cannot submit more than {MAX_RECORDS} records into this call"),
        );
    }
    let creating = req.method == Method::POST;
    // Validate everything first so allOrNone can refuse the whole batch.
    let checked: Vec<Result<Checked, Value>> = list
        .iter()
        .map(|record| {
            let fail = |code: &str, message: String| json!({ "statusCode": code, "message": message, "fields": [] });
            let Some(fields) = record.as_object() else {
                return Err(fail("JSON_PARSER_ERROR", "record must be an object".into()));
            };
            let type_name = fields
                .get("attributes")
                .and_then(|a| a.get("type"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(object) = SObject::parse(type_name) else {
                return Err(fail("INVALID_TYPE", format!("sObject type '{type_name}' is not supported.")));
            };
            let index = if creating {
                None
            } else {
                let id = fields.get("Id").and_then(Value::as_str).unwrap_or_default();
                match records::parse_id(object.prefix(), id).filter(|i| double.store.exists(object.kind(), *i)) {
                    Some(i) => Some(i),
                    None => return Err(fail("INVALID_ID_FIELD", format!("invalid record id: {id}"))),
                }
            };
            validate(double, object, fields, creating)
                .map(|f| (object, index, f))
                .map_err(|e| e.json())
        })
        .collect();
    let any_failed = checked.iter().any(Result::is_err);
    let results: Vec<Value> = checked
        .into_iter()
        .map(|r| match r {
            Err(e) => json!({ "success": false, "errors": [e] }),
            Ok(_) if all_or_none && any_failed => json!({
                "success": false,
                "errors": [{ "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": [] }]
            }),
            Ok((object, Some(index), fields)) => {
                double.store.update(req.journal(), object.kind(), index, fields);
                json!({ "id": records::id(object.prefix(), index), "success": true, "errors": [] })
            }
            Ok((object, None, fields)) => {
                let index = double.store.create(req.journal(), object.kind(), fields);
                json!({ "id": records::id(object.prefix(), index), "success": true, "errors": [] })
            }
        })
        .collect();
    ok_json(StatusCode::OK, &Value::Array(results))
}

/// `GET /composite/sobjects/{Object}?ids=&fields=` or `POST` with `{ids, fields}`.
pub(crate) fn retrieve(double: &CrmDouble, req: &Req, object: SObject, ver: &str) -> Reply {
    let (ids, fields) = if req.method == Method::GET {
        (
            req.param("ids").map(|s| comma_list(&s)).unwrap_or_default(),
            req.param("fields")
                .map(|s| comma_list(&s))
                .unwrap_or_default(),
        )
    } else {
        let body = match json_body(req) {
            Ok(v) => v,
            Err(e) => return e.reply(),
        };
        let strings = |key: &str| -> Vec<String> {
            body.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        (strings("ids"), strings("fields"))
    };
    if ids.is_empty() || fields.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "ids and fields are required",
        );
    }
    if ids.len() > MAX_IDS {
        return error(StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT", "too many ids");
    }
    let sample = records::full(double, object, 0, ver).unwrap_or_default();
    let mut canonical = Vec::with_capacity(fields.len());
    for f in &fields {
        match records::canonical(&sample, f) {
            Some(c) => canonical.push(c),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!("No such column '{f}' on sobject of type {}", object.name()),
                )
            }
        }
    }
    let rows: Vec<Value> = ids
        .iter()
        .map(|id| {
            records::parse_id(object.prefix(), id)
                .and_then(|i| records::full(double, object, i, ver))
                .map_or(Value::Null, |r| {
                    Value::Object(records::pick(&r, &canonical))
                })
        })
        .collect();
    ok_json(StatusCode::OK, &Value::Array(rows))
}

/// `POST /composite`.
pub(crate) fn composite(double: &Arc<CrmDouble>, req: &Req, ver: &str) -> Reply {
    let body = match json_body(req) {
        Ok(v) => v,
        Err(e) => return e.reply(),
    };
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(subrequests) = body.get("compositeRequest").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "compositeRequest is required",
        );
    };
    if subrequests.len() > MAX_SUBREQUESTS {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_BATCH_SIZE",
            &format!("Limit of {MAX_SUBREQUESTS} subrequests exceeded"),
        );
    }
    let (responses, _) = run_unit(double, req, subrequests, all_or_none, ver);
    ok_json(StatusCode::OK, &json!({ "compositeResponse": responses }))
}

/// Composite graph accepts at most this many nodes in all.
const MAX_GRAPH_NODES: usize = 500;

/// `POST /composite/graph`: each graph runs as an all-or-none composite of its own (one
/// transaction per graph); a graph that fails is rolled back alone, `isSuccessful: false`,
/// and the others stand.
pub(crate) fn graph(double: &Arc<CrmDouble>, req: &Req, ver: &str) -> Reply {
    let body = match json_body(req) {
        Ok(v) => v,
        Err(e) => return e.reply(),
    };
    let Some(graphs) = body.get("graphs").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "graphs is required",
        );
    };
    let mut nodes = 0;
    for g in graphs {
        let Some(subs) = g.get("compositeRequest").and_then(Value::as_array) else {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_GRAPH",
                "every graph needs a compositeRequest",
            );
        };
        nodes += subs.len();
    }
    if nodes > MAX_GRAPH_NODES {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_BATCH_SIZE",
            &format!("Limit of {MAX_GRAPH_NODES} nodes exceeded"),
        );
    }
    let answers: Vec<Value> = graphs
        .iter()
        .map(|g| {
            let subs = g
                .get("compositeRequest")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let (responses, failed) = run_unit(double, req, subs, true, ver);
            json!({
                "graphId": g.get("graphId").cloned().unwrap_or(Value::Null),
                "graphResponse": { "compositeResponse": responses },
                "isSuccessful": !failed,
            })
        })
        .collect();
    ok_json(StatusCode::OK, &json!({ "graphs": answers }))
}

/// Runs the subrequests of one composite request (`all_or_none`: as one transaction that the
/// first failure rolls back, every other subrequest then answering `PROCESSING_HALTED`): the
/// responses, and whether the unit failed and was rolled back.
fn run_unit(
    double: &Arc<CrmDouble>,
    req: &Req,
    subrequests: &[Value],
    all_or_none: bool,
    ver: &str,
) -> (Vec<Value>, bool) {
    let journal = all_or_none.then(|| Arc::new(Journal::default()));
    let mut done: Vec<(String, Value)> = Vec::new();
    let mut responses = Vec::new();
    let mut failed = None;
    for (i, sub) in subrequests.iter().enumerate() {
        let reference = sub
            .get("referenceId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if failed.is_some() {
            responses.push(halted(&reference));
            continue;
        }
        let (status, headers, body) = run_subrequest(double, req, sub, &done, ver, journal.clone());
        if journal.is_some() && (status >= 400 || has_failed_record(&body)) {
            failed = Some(i);
        }
        done.push((reference.clone(), body.clone()));
        responses.push(json!({
            "body": body,
            "httpHeaders": headers,
            "httpStatusCode": status,
            "referenceId": reference,
        }));
    }
    if let (Some(failed), Some(journal)) = (failed, &journal) {
        double.store.rollback(journal);
        for (i, response) in responses.iter_mut().enumerate() {
            if i != failed {
                let reference = response["referenceId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                *response = halted(&reference);
            }
        }
    }
    (responses, failed.is_some())
}

/// The answer of a subrequest rolled back (or never run) because another one failed.
fn halted(reference: &str) -> Value {
    json!({
        "body": [{ "errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed." }],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": reference,
    })
}

/// An sObject Collections answer (`[{success, errors}]`) with a record that failed.
fn has_failed_record(body: &Value) -> bool {
    body.as_array().is_some_and(|results| {
        results
            .iter()
            .any(|r| r.get("success").and_then(Value::as_bool) == Some(false))
    })
}

fn run_subrequest(
    double: &Arc<CrmDouble>,
    outer: &Req,
    sub: &Value,
    done: &[(String, Value)],
    ver: &str,
    journal: Option<Arc<Journal>>,
) -> (u16, Value, Value) {
    let fail = |message: &str| {
        (
            400,
            json!({}),
            json!([{ "errorCode": "INVALID_INPUT", "message": message }]),
        )
    };
    let method = sub
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return fail("invalid method");
    };
    let Some(url) = sub.get("url").and_then(Value::as_str) else {
        return fail("url is required");
    };
    let url = match resolve(url, done) {
        Ok(u) => u,
        Err(m) => return fail(&m),
    };
    let prefix = format!("/services/data/{ver}/");
    if !url.starts_with(&prefix) {
        return fail(&format!("The url must start with {prefix}"));
    }
    let bare = url.trim_end_matches('/');
    if bare.ends_with("/composite") || bare.ends_with("/composite/graph") {
        return fail("composite subrequests cannot be nested");
    }
    let body = match sub.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(b) => match resolve(&b.to_string(), done) {
            Ok(text) => Bytes::from(text),
            Err(m) => return fail(&m),
        },
    };
    let mut headers = HeaderMap::new();
    if let Some(auth) = outer.headers.get(http::header::AUTHORIZATION) {
        headers.insert(http::header::AUTHORIZATION, auth.clone());
    }
    if let Some(extra) = sub.get("httpHeaders").and_then(Value::as_object) {
        for (k, v) in extra {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                headers.insert(name, value);
            }
        }
    }
    if !body.is_empty() {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let mut req = Req::new(method, &url, headers, body, outer.host.clone());
    req.journal = journal;
    let reply = route(double, &req);
    let status = reply.status.as_u16();
    let mut response_headers = Map::new();
    if status == 201 {
        // Salesforce reports where a created record lives.
        let location = reply
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = reply.into_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let location = location.or_else(|| {
            let id = body.get("id")?.as_str()?;
            let object = url.trim_end_matches('/').rsplit('/').next()?;
            Some(format!("/services/data/{ver}/sobjects/{object}/{id}"))
        });
        if let Some(l) = location {
            response_headers.insert("Location".into(), Value::String(l));
        }
        return (status, Value::Object(response_headers), body);
    }
    let bytes = reply.into_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, Value::Object(response_headers), body)
}

/// Replaces each `@{ref.path}` with the value found in an earlier subrequest's body.
fn resolve(text: &str, done: &[(String, Value)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated reference")?;
        let expr = &after[..end];
        let (reference, path) = expr.split_once('.').unwrap_or((expr, ""));
        let body = done
            .iter()
            .find(|(r, _)| r == reference)
            .map(|(_, b)| b)
            .ok_or_else(|| format!("Invalid reference specified. No value for {expr} found"))?;
        let value = walk(body, path)
            .ok_or_else(|| format!("Invalid reference specified. No value for {expr} found"))?;
        match value {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Follows `a.b[0].c` through a JSON value.
fn walk<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let n: usize = index.trim_end_matches(']').parse().ok()?;
            current = current.get(n)?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_references() {
        let done = vec![
            (
                "refAccount".to_string(),
                json!({"id": "001FictA", "success": true}),
            ),
            ("q".to_string(), json!({"records": [{"Id": "003X"}]})),
        ];
        assert_eq!(
            resolve("x='@{refAccount.id}'", &done).ok().as_deref(),
            Some("x='001FictA'")
        );
        assert_eq!(
            resolve("@{q.records[0].Id}/@{refAccount.success}", &done)
                .ok()
                .as_deref(),
            Some("003X/true")
        );
        assert!(resolve("@{nope.id}", &done).is_err());
        assert!(resolve("@{refAccount.id", &done).is_err());
    }
}
