//! `POST /api/data/v9.2/$batch`: a small `multipart/mixed` reader and writer.
//!
//! Each `application/http` part is parsed into a request and run through the same router as a
//! top-level call (the outer `Authorization` is passed down); change sets are answered inside a
//! `changesetresponse_…` part. Enough for tests that count records inside batches; not a full
//! OData batch implementation (no `$1` references, no atomic rollback).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::super::reply::Reply;
use super::super::request::Req;
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

/// Parses an embedded HTTP request and runs it; returns the serialised HTTP response.
fn run(double: &Arc<CrmDouble>, outer: &Req, text: &str) -> String {
    let (head, body) = split_head(text);
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return serialise(dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Malformed request line in batch part.",
        ));
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return serialise(dv_error(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Invalid method in batch part.",
        ));
    };
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
        return serialise(dv_error(
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
    let body = Bytes::from(body.trim_end_matches(['\r', '\n']).to_string());
    let req = Req::new(method, &target, headers, body, outer.host.clone());
    serialise(double.route(&req))
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
    let response_boundary = format!("batchresponse_{}", boundary_id());
    let mut out = String::new();
    for entry in entries {
        out.push_str(&format!("--{response_boundary}\r\n"));
        match entry {
            Entry::Single {
                content_id,
                request,
            } => {
                out.push_str(
                    "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
                );
                if let Some(id) = content_id {
                    out.push_str(&format!("Content-ID: {id}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&run(double, req, &request));
                out.push_str("\r\n");
            }
            Entry::ChangeSet(set) => {
                let change_boundary = format!("changesetresponse_{}", boundary_id());
                out.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary={change_boundary}\r\n\r\n"
                ));
                for (content_id, request) in set {
                    out.push_str(&format!(
                        "--{change_boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                    ));
                    if let Some(id) = content_id {
                        out.push_str(&format!("Content-ID: {id}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&run(double, req, &request));
                    out.push_str("\r\n");
                }
                out.push_str(&format!("--{change_boundary}--\r\n"));
            }
        }
    }
    out.push_str(&format!("--{response_boundary}--\r\n"));
    Reply::new(StatusCode::OK)
        .header(
            http::header::CONTENT_TYPE,
            format!("multipart/mixed; boundary={response_boundary}"),
        )
        .header("odata-version", "4.0")
        .body(out)
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
