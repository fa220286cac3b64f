//! `POST /api/data/v9.2/$batch`: a small `multipart/mixed` reader and writer.
//!
//! Each `application/http` part is parsed into a request and run through the same router as a
//! top-level call (the outer `Authorization` is passed down); change sets are answered inside a
//! `changesetresponse_…` part. As in Dataverse (execute-batch-operations-using-web-api):
//!
//! - a change set is one transaction: its members write through one journal, and the first
//!   member that fails rolls back the ones before it; the change set then answers with that
//!   member's error alone (one `application/http` part, its `Content-ID`), no later member runs;
//! - `$N` in a member's target (or as an `@odata.bind` value) is the entity an earlier member of
//!   the same change set created with `Content-ID: N`;
//! - the batch stops at the first failed item (a failed request or change set) and answers
//!   `400`, unless `Prefer: odata.continue-on-error` asks it to go on (then `200`).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::super::reply::Reply;
use super::super::request::Req;
use super::super::store::Journal;
use super::super::CrmDouble;
use super::{dv_error, ROOT};

/// Dataverse accepts at most this many requests per batch.
const MAX_REQUESTS: usize = 1000;

/// A fresh boundary id in the fictitious-GUID form; random so it never occurs in a body.
fn boundary_id() -> String {
    let mut buf = [0u8; 6];
    let _ = getrandom::fill(&mut buf);
    format!("0b2d4f60-0000-4000-8000-{}", hex::encode(buf))
}

/// The `boundary` parameter of a multipart content type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a part into its header block and body at the first blank line.
fn split_head(part: &str) -> (&str, &str) {
    if let Some(i) = part.find("\r\n\r\n") {
        (&part[..i], &part[i + 4..])
    } else if let Some(i) = part.find("\n\n") {
        (&part[..i], &part[i + 2..])
    } else {
        (part, "")
    }
}

fn headers_of(block: &str) -> Vec<(String, String)> {
    block
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// The parts between `--boundary` delimiters, up to the closing `--boundary--`.
fn parts<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    for chunk in body.split(delimiter.as_str()).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        out.push(chunk.trim_start_matches(['\r', '\n']));
    }
    out
}

enum Entry {
    Single {
        content_id: Option<String>,
        request: String,
    },
    ChangeSet(Vec<(Option<String>, String)>),
}

fn read_entries(body: &str, boundary: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for part in parts(body, boundary) {
        let (head, rest) = split_head(part);
        let headers = headers_of(head);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let content_type = get("content-type").unwrap_or_default();
        if content_type
            .to_ascii_lowercase()
            .starts_with("multipart/mixed")
        {
            let inner = boundary_of(&content_type)?;
            let mut set = Vec::new();
            for p in parts(rest, &inner) {
                let (h, r) = split_head(p);
                let hs = headers_of(h);
                let id = hs
                    .iter()
                    .find(|(k, _)| k == "content-id")
                    .map(|(_, v)| v.clone());
                set.push((id, r.to_string()));
            }
            entries.push(Entry::ChangeSet(set));
        } else if content_type
            .to_ascii_lowercase()
            .starts_with("application/http")
        {
            entries.push(Entry::Single {
                content_id: get("content-id"),
                request: rest.to_string(),
            });
        } else {
            return Err(format!(
                "unsupported batch part content type '{content_type}'"
            ));
        }
    }
    Ok(entries)
}

fn boundary_of(content_type: &str) -> Result<String, String> {
    boundary(content_type).ok_or_else(|| "multipart content type without boundary".to_string())
}

/// What running one part gave: its status, the entity it created (`Location`), and the
/// serialised HTTP response.
struct Ran {
    status: u16,
    location: Option<String>,
    text: String,
}

impl Ran {
    fn of(reply: Reply) -> Ran {
        let location = reply
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ran {
            status: reply.status.as_u16(),
            location,
            text: serialise(reply),
        }
    }
}

/// The change set a part runs in: its journal and the entities its members created so far
/// (`Content-ID` -> `Location`).
struct Unit {
    journal: Arc<Journal>,
    created: Vec<(String, String)>,
}

/// `$N` -> the path of the entity created by the member with `Content-ID: N`.
fn reference(unit: Option<&Unit>, text: &str) -> Option<String> {
    let id = text.strip_prefix('$')?;
    let location = &unit?.created.iter().find(|(c, _)| c == id)?.1;
    let path = match location.find("://") {
        Some(i) => location[i + 3..]
            .find('/')
            .map_or("/", |j| &location[i + 3 + j..]),
        None => location.as_str(),
    };
    Some(path.to_string())
}

/// Parses an embedded HTTP request and runs it.
fn run(double: &Arc<CrmDouble>, outer: &Req, text: &str, unit: Option<&Unit>) -> Ran {
    let (head, body) = split_head(text);
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Ran::of(dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Malformed request line in batch part.",
        ));
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Ran::of(dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Invalid method in batch part.",
        ));
    };
    let referenced = if target.starts_with('$') {
        match reference(unit, target) {
            Some(path) => Some(path),
            None => {
                return Ran::of(dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80060888",
                    &format!(
                        "Content-ID Reference: '{target}' does not exist in the batch context."
                    ),
                ))
            }
        }
    } else {
        None
    };
    let target = referenced.as_deref().unwrap_or(target);
    // Absolute URLs lose scheme and host; relative ones are relative to the service root.
    let target = match target.find("://") {
        Some(i) => {
            let after = &target[i + 3..];
            after.find('/').map_or("/", |j| &after[j..]).to_string()
        }
        None if target.starts_with('/') => target.to_string(),
        None => format!("{ROOT}/{target}"),
    };
    if target.starts_with(&format!("{ROOT}/$batch")) {
        return Ran::of(dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Nested $batch requests are not allowed.",
        ));
    }
    let mut headers = HeaderMap::new();
    if let Some(auth) = outer.headers.get(http::header::AUTHORIZATION) {
        headers.insert(http::header::AUTHORIZATION, auth.clone());
    }
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            ) {
                headers.append(name, value);
            }
        }
    }
    let body = body.trim_end_matches(['\r', '\n']);
    let body = match bind_references(body, unit) {
        Some(b) => b,
        None => body.to_string(),
    };
    let mut req = Req::new(
        method,
        &target,
        headers,
        Bytes::from(body),
        outer.host.clone(),
    );
    req.journal = unit.map(|u| Arc::clone(&u.journal));
    Ran::of(double.route(&req))
}

/// A JSON body whose `...@odata.bind` values name `$N`, with the entity paths put in (None:
/// nothing to replace).
fn bind_references(body: &str, unit: Option<&Unit>) -> Option<String> {
    let mut doc: serde_json::Value = serde_json::from_str(body).ok()?;
    let mut changed = false;
    for (k, v) in doc.as_object_mut()?.iter_mut() {
        if !k.ends_with("@odata.bind") {
            continue;
        }
        if let Some(path) = v.as_str().and_then(|t| reference(unit, t)) {
            *v = serde_json::Value::String(path);
            changed = true;
        }
    }
    changed.then(|| doc.to_string())
}

fn serialise(reply: Reply) -> String {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        reply.status.as_u16(),
        reply.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in reply.headers.iter() {
        out.push_str(&format!(
            "{}: {}\r\n",
            name.as_str(),
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    out.push_str("\r\n");
    let body = reply.into_bytes();
    out.push_str(&String::from_utf8_lossy(&body));
    out
}

pub(crate) fn batch(double: &Arc<CrmDouble>, req: &Req) -> Reply {
    let content_type = req.header("content-type").unwrap_or_default();
    let Some(boundary) = boundary(content_type).filter(|_| {
        content_type
            .to_ascii_lowercase()
            .starts_with("multipart/mixed")
    }) else {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "The batch request must have a \"Content-Type\" header of multipart/mixed with a boundary.",
        );
    };
    let text = String::from_utf8_lossy(&req.body);
    let entries = match read_entries(&text, &boundary) {
        Ok(e) => e,
        Err(m) => return dv_error(StatusCode::BAD_REQUEST, "0x80060888", &m),
    };
    let count: usize = entries
        .iter()
        .map(|e| match e {
            Entry::Single { .. } => 1,
            Entry::ChangeSet(set) => set.len(),
        })
        .sum();
    if count > MAX_REQUESTS {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            &format!("The maximum number of requests in a batch is {MAX_REQUESTS}."),
        );
    }
    let continue_on_error = req
        .header("prefer")
        .is_some_and(|p| p.to_ascii_lowercase().contains("odata.continue-on-error"));
    let response_boundary = format!("batchresponse_{}", boundary_id());
    let mut out = String::new();
    let mut failed = false;
    for entry in entries {
        if failed && !continue_on_error {
            break;
        }
        out.push_str(&format!("--{response_boundary}\r\n"));
        match entry {
            Entry::Single {
                content_id,
                request,
            } => {
                let ran = run(double, req, &request, None);
                failed |= ran.status >= 400;
                http_part(&mut out, content_id.as_deref(), &ran.text);
            }
            Entry::ChangeSet(set) => {
                let mut unit = Unit {
                    journal: Arc::new(Journal::default()),
                    created: Vec::new(),
                };
                let mut answers = Vec::new();
                let mut error = None;
                for (content_id, request) in set {
                    let ran = run(double, req, &request, Some(&unit));
                    if ran.status >= 400 {
                        error = Some((content_id, ran.text));
                        break;
                    }
                    if let (Some(id), Some(location)) = (&content_id, &ran.location) {
                        unit.created.push((id.clone(), location.clone()));
                    }
                    answers.push((content_id, ran.text));
                }
                match error {
                    // the whole change set rolled back: its failing member answers for it
                    Some((content_id, text)) => {
                        double.store.rollback(&unit.journal);
                        failed = true;
                        http_part(&mut out, content_id.as_deref(), &text);
                    }
                    None => {
                        let change_boundary = format!("changesetresponse_{}", boundary_id());
                        out.push_str(&format!(
                            "Content-Type: multipart/mixed; boundary={change_boundary}\r\n\r\n"
                        ));
                        for (content_id, text) in answers {
                            out.push_str(&format!("--{change_boundary}\r\n"));
                            http_part(&mut out, content_id.as_deref(), &text);
                        }
                        out.push_str(&format!("--{change_boundary}--\r\n"));
                    }
                }
            }
        }
    }
    out.push_str(&format!("--{response_boundary}--\r\n"));
    let status = if failed && !continue_on_error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Reply::new(status)
        .header(
            http::header::CONTENT_TYPE,
            format!("multipart/mixed; boundary={response_boundary}"),
        )
        .header("odata-version", "4.0")
        .body(out)
}

/// One `application/http` part (after its delimiter line).
fn http_part(out: &mut String, content_id: Option<&str>, text: &str) {
    out.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(text);
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_boundaries_and_parts() {
        assert_eq!(
            boundary("multipart/mixed; boundary=\"batch_1\"").as_deref(),
            Some("batch_1")
        );
        assert_eq!(boundary("multipart/mixed;boundary=b").as_deref(), Some("b"));
        assert_eq!(boundary("application/json"), None);
        let body = "--b\r\nA\r\n--b\r\nB\r\n--b--\r\n";
        assert_eq!(parts(body, "b"), vec!["A\r\n", "B\r\n"]);
    }
}
