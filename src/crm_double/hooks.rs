//! Test hooks under `/__double/`: behaviours no real CRM offers on demand.
//!
//! * `stall`: accepts the request and never answers (handled in `mod.rs`, because it needs the
//!   shutdown signal); the "too slow upstream".
//! * `large?bytes=N&chunk=M`: N bytes of `application/octet-stream` in chunks of M, yielding
//!   between chunks; for "shutdown while a large body is in flight". Byte `k` is `k % 251`, so a
//!   receiver can check that every byte arrived in order.
//! * `echo-headers`: the request headers as JSON; which headers reached the CRM.
//! * `echo`: the request body back with its content type (for conformance tests).

use bytes::BytesMut;
use http::header::CONTENT_TYPE;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::reply::Reply;
use super::request::Req;

const DEFAULT_CHUNK: u64 = 16 * 1024;
const MAX_CHUNK: u64 = 4 * 1024 * 1024;

pub(crate) fn handle(req: &Req) -> Reply {
    match req.path.as_str() {
        "/__double/large" => large(req),
        "/__double/echo-headers" => echo_headers(req),
        "/__double/echo" => echo(req),
        _ => Reply::json(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown test hook"}),
        ),
    }
}

/// The request body back, with its content type: lets tests send any document through a
/// governed route and see what the policy let pass in both directions.
fn echo(req: &Req) -> Reply {
    let ctype = req
        .header("content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    Reply::new(StatusCode::OK)
        .header(CONTENT_TYPE, ctype)
        .body(req.body.clone())
}

fn large(req: &Req) -> Reply {
    let number = |name: &str, default: u64| -> Result<u64, Reply> {
        match req.param(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| {
                Reply::json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": format!("{name} must be a non-negative integer")}),
                )
            }),
        }
    };
    let total = match number("bytes", 1024 * 1024) {
        Ok(n) => n,
        Err(reply) => return reply,
    };
    let chunk = match number("chunk", DEFAULT_CHUNK) {
        Ok(n) => n.clamp(1, MAX_CHUNK),
        Err(reply) => return reply,
    };
    let mut sent: u64 = 0;
    Reply::new(StatusCode::OK)
        .header(CONTENT_TYPE, "application/octet-stream")
        .stream(
            Some(total),
            Box::new(move || {
                if sent >= total {
                    return None;
                }
                let n = chunk.min(total - sent);
                let mut buf = BytesMut::with_capacity(n as usize);
                buf.extend((sent..sent + n).map(|k| (k % 251) as u8));
                sent += n;
                Some(buf.freeze())
            }),
        )
}

fn echo_headers(req: &Req) -> Reply {
    let mut out = Map::new();
    for name in req.headers.keys() {
        let values: Vec<Value> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        out.insert(name.as_str().to_string(), value);
    }
    Reply::json(StatusCode::OK, &Value::Object(out))
}

/// The expected content of `/__double/large`.
#[cfg(test)]
pub(crate) fn large_body(total: u64) -> bytes::Bytes {
    bytes::Bytes::from((0..total).map(|k| (k % 251) as u8).collect::<Vec<u8>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    fn get(path: &str, headers: HeaderMap) -> Reply {
        handle(&Req::new(
            Method::GET,
            path,
            headers,
            Bytes::new(),
            "h".into(),
        ))
    }

    #[test]
    fn large_streams_exactly_n_bytes() {
        let r = get("/__double/large?bytes=1000&chunk=64", HeaderMap::new());
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.into_bytes(), large_body(1000));
        let r = get("/__double/large?bytes=0", HeaderMap::new());
        assert!(r.into_bytes().is_empty());
        let r = get("/__double/large?bytes=-1", HeaderMap::new());
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn echo_returns_all_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-one", HeaderValue::from_static("1"));
        h.append("x-two", HeaderValue::from_static("a"));
        h.append("x-two", HeaderValue::from_static("b"));
        let r = get("/__double/echo-headers", h);
        let v: Value = serde_json::from_slice(&r.into_bytes()).unwrap_or_default();
        assert_eq!(v, json!({"x-one": "1", "x-two": ["a", "b"]}));
    }
}
