//! Bulk API 2.0 query jobs: create, status, CSV results with `Sforce-Locator` paging, and
//! `resultPages`.
//!
//! Jobs complete instantly (the rows are generated on demand). Results are streamed in chunks
//! of rows, so a multi-million-row export costs no more memory than one chunk.

use std::sync::Arc;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use serde_json::{json, Value};

use super::super::reply::Reply;
use super::super::request::Req;
use super::super::CrmDouble;
use super::soql::{self, Item, Parent, Plan};
use super::{error, json_body, ok_json};

/// Jobs kept; the oldest are forgotten first.
const MAX_JOBS: usize = 1000;
/// Rows generated per streamed chunk.
const ROWS_PER_CHUNK: u64 = 1000;
/// Results per page in `resultPages` when the client gives no `maxRecords`.
const DEFAULT_PAGE_RECORDS: u64 = 10_000;
/// Result URLs per `resultPages` response.
const PAGES_PER_RESPONSE: u64 = 5;

#[derive(Debug, Clone)]
pub(crate) struct Job {
    id: String,
    operation: String,
    plan: Arc<Plan>,
    /// CSV header: API names, dotted for parent fields.
    columns: Vec<String>,
    delimiter: (String, u8),
    line_ending: String,
    api_version: String,
    created: &'static str,
}

const CREATED: &str = "2025-01-11T09:00:00.000+0000";

fn delimiter(name: &str) -> Option<u8> {
    Some(match name {
        "COMMA" => b',',
        "TAB" => b'\t',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "CARET" => b'^',
        "BACKQUOTE" => b'`',
        _ => return None,
    })
}

fn columns(double: &CrmDouble, plan: &Plan) -> Result<Vec<String>, &'static str> {
    let Some(items) = &plan.items else {
        // All scalar fields: Bulk does not export compound address fields.
        let sample = super::records::full(double, plan.object, 0, "v66.0").unwrap_or_default();
        return Ok(sample
            .iter()
            .filter(|(_, v)| !v.is_object())
            .map(|(k, _)| k.clone())
            .filter(|k| k != "attributes" && !k.ends_with("Address"))
            .collect());
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Field(f) => out.push(f.clone()),
            Item::Parent { rel, fields } => {
                let rel = match rel {
                    Parent::Account => "Account",
                    Parent::Individual => "Individual",
                };
                out.extend(fields.iter().map(|f| format!("{rel}.{f}")));
            }
            Item::Cases { .. } => {
                return Err("Bulk API 2.0 does not support parent-to-child (nested) queries")
            }
        }
    }
    Ok(out)
}

fn job_json(job: &Job, complete: bool, processed: u64) -> Value {
    let mut v = json!({
        "id": job.id,
        "operation": job.operation,
        "object": job.plan.object.name(),
        "createdById": super::records::OWNER_ID,
        "createdDate": job.created,
        "systemModstamp": job.created,
        "state": if complete { "JobComplete" } else { "UploadComplete" },
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        // Parsed from text so the number keeps its form (`66.0`) under arbitrary_precision.
        "apiVersion": serde_json::from_str::<Value>(job.api_version.trim_start_matches('v')).unwrap_or(Value::Null),
    });
    if let Some(obj) = v.as_object_mut() {
        if complete {
            obj.insert("jobType".into(), json!("V2Query"));
        }
        obj.insert("lineEnding".into(), json!(job.line_ending));
        obj.insert("columnDelimiter".into(), json!(job.delimiter.0));
        if complete {
            obj.insert("numberRecordsProcessed".into(), json!(processed));
        }
    }
    v
}

/// `POST .../jobs/query`
pub(crate) fn create(double: &CrmDouble, req: &Req, ver: &str) -> Reply {
    let body = match json_body(req) {
        Ok(v) => v,
        Err(e) => return e.reply(),
    };
    let text = |k: &str, default: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let operation = text("operation", "");
    if operation != "query" && operation != "queryAll" {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "operation must be query or queryAll",
        );
    }
    let delimiter_name = text("columnDelimiter", "COMMA");
    let Some(delimiter_byte) = delimiter(&delimiter_name) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "invalid columnDelimiter",
        );
    };
    let line_ending = text("lineEnding", "LF");
    if line_ending != "LF" && line_ending != "CRLF" {
        return error(StatusCode::BAD_REQUEST, "INVALIDJOB", "invalid lineEnding");
    }
    if text("contentType", "CSV") != "CSV" {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "contentType must be CSV",
        );
    }
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "INVALIDJOB", "query is required");
    };
    let plan = match soql::compile(double, query) {
        Ok(p) => p,
        Err(e) => return e.reply(),
    };
    let columns = match columns(double, &plan) {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, "INVALIDJOB", m),
    };
    let job = Job {
        id: double.salesforce.next_id("750"),
        operation,
        plan: Arc::new(plan),
        columns,
        delimiter: (delimiter_name, delimiter_byte),
        line_ending,
        api_version: ver.to_string(),
        created: CREATED,
    };
    let reply = ok_json(StatusCode::OK, &job_json(&job, false, 0));
    let state = &double.salesforce;
    let mut jobs = state
        .jobs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut order = state
        .job_order
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if order.len() >= MAX_JOBS {
        if let Some(old) = order.pop_front() {
            jobs.remove(&old);
        }
    }
    order.push_back(job.id.clone());
    jobs.insert(job.id.clone(), job);
    reply
}

fn find(double: &CrmDouble, id: &str) -> Option<Job> {
    let jobs = double
        .salesforce
        .jobs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    jobs.get(id).cloned()
}

fn job_not_found() -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// `GET .../jobs/query/{id}`
pub(crate) fn status(double: &CrmDouble, id: &str) -> Reply {
    let Some(job) = find(double, id) else {
        return job_not_found();
    };
    let processed = soql::total(double, &job.plan);
    ok_json(StatusCode::OK, &job_json(&job, true, processed))
}

fn encode_locator(offset: u64) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(offset.to_string())
}

fn decode_locator(locator: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(locator.trim_end_matches('='))
        .ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// Parses `locator` and `maxRecords`; `Err` is the error reply.
fn paging(req: &Req) -> Result<(u64, Option<u64>), Reply> {
    let offset = match req.param("locator") {
        None => 0,
        Some(l) if l.is_empty() => 0,
        Some(l) => decode_locator(&l)
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, "INVALIDLOCATOR", "Invalid locator"))?,
    };
    let max = match req.param("maxRecords") {
        None => None,
        Some(m) => Some(m.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "INVALIDPARAMETER",
                "maxRecords must be a positive integer",
            )
        })?),
    };
    Ok((offset, max))
}

/// One CSV cell: always quoted, quotes doubled; null is empty, booleans are `true`/`false`.
pub(crate) fn cell(out: &mut BytesMut, value: Option<&Value>) {
    out.put_u8(b'"');
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    };
    for b in text.bytes() {
        if b == b'"' {
            out.put_u8(b'"');
        }
        out.put_u8(b);
    }
    out.put_u8(b'"');
}

fn lookup<'a>(row: &'a serde_json::Map<String, Value>, column: &str) -> Option<&'a Value> {
    match column.split_once('.') {
        Some((rel, field)) => row.get(rel)?.get(field),
        None => row.get(column),
    }
}

/// `GET .../jobs/query/{id}/results?locator=&maxRecords=`
pub(crate) fn results(double: &Arc<CrmDouble>, req: &Req, id: &str) -> Reply {
    let Some(job) = find(double, id) else {
        return job_not_found();
    };
    let (offset, max) = match paging(req) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let total = soql::total(double, &job.plan);
    let start = offset.min(total);
    let end = max.map_or(total, |m| start.saturating_add(m).min(total));
    let next = if end < total {
        encode_locator(end)
    } else {
        "null".to_string()
    };
    let (_, sep) = job.delimiter;
    let eol: &'static [u8] = if job.line_ending == "CRLF" {
        b"\r\n"
    } else {
        b"\n"
    };

    let mut header = BytesMut::new();
    for (n, c) in job.columns.iter().enumerate() {
        if n > 0 {
            header.put_u8(sep);
        }
        cell(&mut header, Some(&Value::String(c.clone())));
    }
    header.put_slice(eol);
    let mut header = Some(header.freeze());
    let double = Arc::clone(double);
    let mut cursor = start;
    let ver = job.api_version.clone();
    let next_chunk = move || -> Option<Bytes> {
        if let Some(h) = header.take() {
            return Some(h);
        }
        if cursor >= end {
            return None;
        }
        let stop = cursor.saturating_add(ROWS_PER_CHUNK).min(end);
        let mut out = BytesMut::with_capacity(((stop - cursor) * 160) as usize);
        for i in cursor..stop {
            let row = soql::row(&double, &job.plan, i, &ver).unwrap_or_default();
            for (n, c) in job.columns.iter().enumerate() {
                if n > 0 {
                    out.put_u8(sep);
                }
                cell(&mut out, lookup(&row, c));
            }
            out.put_slice(eol);
        }
        cursor = stop;
        Some(out.freeze())
    };
    Reply::new(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/csv; charset=UTF-8")
        .header("sforce-locator", next)
        .header("sforce-numberofrecords", (end - start).to_string())
        .stream(None, Box::new(next_chunk))
}

/// `GET .../jobs/query/{id}/resultPages?locator=&maxRecords=` (API 58.0+)
pub(crate) fn result_pages(double: &CrmDouble, req: &Req, id: &str, ver: &str) -> Reply {
    let Some(job) = find(double, id) else {
        return job_not_found();
    };
    let (offset, max) = match paging(req) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let per_page = max.unwrap_or(DEFAULT_PAGE_RECORDS);
    let total = soql::total(double, &job.plan);
    let base = format!("/services/data/{ver}/jobs/query/{}", job.id);
    let mut pages = Vec::new();
    let mut at = offset.min(total);
    while at < total && (pages.len() as u64) < PAGES_PER_RESPONSE {
        pages.push(json!({ "resultUrl": format!("{base}/results?locator={}&maxRecords={per_page}", encode_locator(at)) }));
        at = at.saturating_add(per_page);
    }
    let done = at >= total;
    let next = if done {
        Value::Null
    } else {
        json!(format!(
            "{base}/resultPages?locator={}&maxRecords={per_page}",
            encode_locator(at)
        ))
    };
    ok_json(
        StatusCode::OK,
        &json!({ "resultPages": pages, "nextRecordsUrl": next, "done": done }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_like_bulk_results() {
        let mut out = BytesMut::new();
        cell(&mut out, Some(&json!("a \"quoted\", value")));
        out.put_u8(b',');
        cell(&mut out, Some(&json!(true)));
        out.put_u8(b',');
        cell(&mut out, Some(&Value::Null));
        out.put_u8(b',');
        cell(&mut out, None);
        out.put_u8(b',');
        cell(&mut out, Some(&json!(12)));
        assert_eq!(&out[..], br#""a ""quoted"", value","true","","","12""#);
    }

    #[test]
    fn locators_look_like_the_fixture() {
        assert_eq!(encode_locator(0), "MA");
        assert_eq!(encode_locator(1000), "MTAwMA");
        assert_eq!(decode_locator("MTAwMA"), Some(1000));
        assert_eq!(decode_locator("MTAwMA=="), Some(1000));
        assert_eq!(decode_locator("!!"), None);
    }
}
