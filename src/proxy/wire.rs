//! Before phase 1: the request head as HTTP requires it, whichever protocol carried it.
//!
//! Runs first, on the head alone, before anything depends on it. Changes nothing. Its
//! errors:
//!
//! - `bad-host` (400): RFC 9112 §3.2 requires a server to refuse an HTTP/1.1 request without
//!   `Host`, with two `Host` lines or with one that is not a host. Zweck routes by host, so
//!   a request that names two hosts (a `Host` that disagrees with HTTP/2's `:authority`, RFC
//!   9113 §8.3.1, or with an absolute request target) could be routed for one and read by the
//!   CRM for the other: refused too, as is an HTTP/2 request that names no host at all.
//! - `headers-too-large` (431): the header block over `limits.max_header_bytes`, counted on
//!   both protocols the way HTTP/2 counts it (RFC 9113 §6.5.2: name + value + 32 bytes per
//!   field, the request line's method, target and authority as pseudo-header fields), so one
//!   number means the same on HTTP/1.1 and HTTP/2. The HTTP layer cuts off a block over twice
//!   the limit before it gets here (`server.rs`). At most [`MAX_HEADER_FIELDS`] fields on
//!   either protocol (HTTP/1.1's parser refuses more with a bare 431 before Zweck sees them).

use http::uri::Authority;
use http::{header, HeaderMap, Request, Version};

use crate::error::ProxyError;

/// What each field costs on top of its name and value (RFC 9113 §6.5.2).
const FIELD_OVERHEAD: u64 = 32;

/// The most header fields a request may have: the fixed limit of hyper's HTTP/1.1 parser
/// (which answers a bare 431 beyond it), enforced on HTTP/2 too so both protocols take the
/// same requests. Raising it on HTTP/1.1 would move every request head's parse onto the heap.
pub const MAX_HEADER_FIELDS: usize = 100;

/// Checks the head of a request: its host and the size of its header block.
pub fn check<B>(req: &Request<B>, max_header_bytes: u64) -> Result<(), ProxyError> {
    host(req.version(), req.uri().authority(), req.headers())?;
    let fields = req.headers().len();
    if fields > MAX_HEADER_FIELDS {
        tracing::debug!(
            fields,
            limit = MAX_HEADER_FIELDS,
            "too many request header fields"
        );
        return Err(ProxyError::HeadersTooLarge {
            limit: MAX_HEADER_FIELDS as u64,
            unit: "fields",
        });
    }
    let size = header_block_size(req);
    if size > max_header_bytes {
        tracing::debug!(size, limit = max_header_bytes, "request headers too large");
        return Err(ProxyError::HeadersTooLarge {
            limit: max_header_bytes,
            unit: "bytes",
        });
    }
    Ok(())
}

/// One `Host`, a host name, and the same host as the request target's authority.
fn host(
    version: Version,
    target: Option<&Authority>,
    headers: &HeaderMap,
) -> Result<(), ProxyError> {
    let bad = |reason| Err(ProxyError::BadHost { reason });
    let mut hosts = headers.get_all(header::HOST).iter();
    let Some(value) = hosts.next() else {
        return match (version, target) {
            (Version::HTTP_11, _) => bad("missing (HTTP/1.1 requires Host)"),
            (Version::HTTP_2 | Version::HTTP_3, None) => bad("missing (no :authority, no Host)"),
            _ => Ok(()),
        };
    };
    if hosts.next().is_some() {
        return bad("given twice");
    }
    // RFC 9112 §3.2: empty when the target has no authority; then nothing to compare
    if value.is_empty() {
        return match target {
            None => Ok(()),
            Some(_) => bad("empty beside a request target that names one"),
        };
    }
    let Some(named) = value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<Authority>().ok())
        .filter(|a| !a.as_str().contains('@'))
    else {
        return bad("not a host name");
    };
    match target {
        Some(target) if !same_origin(target, &named) => {
            bad("different from the request target's authority")
        }
        _ => Ok(()),
    }
}

/// Whether two authorities name the same host and port (443 when none is given: Zweck
/// listens on TLS only).
fn same_origin(a: &Authority, b: &Authority) -> bool {
    let host = |x: &Authority| x.host().trim_end_matches('.').to_ascii_lowercase();
    host(a) == host(b) && a.port_u16().unwrap_or(443) == b.port_u16().unwrap_or(443)
}

/// The header block's size as HTTP/2 counts it (RFC 9113 §6.5.2).
fn header_block_size<B>(req: &Request<B>) -> u64 {
    let pseudo = |name: &str, value: usize| (name.len() + value) as u64 + FIELD_OVERHEAD;
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len());
    let mut size = pseudo(":method", req.method().as_str().len())
        + pseudo(":scheme", "https".len())
        + pseudo(":path", target);
    if let Some(a) = uri.authority() {
        size += pseudo(":authority", a.as_str().len());
    }
    for (name, value) in req.headers() {
        size += pseudo(name.as_str(), value.len());
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::get(uri).version(version);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).expect("request")
    }

    fn slug(r: Result<(), ProxyError>) -> &'static str {
        r.err().map_or("ok", |e| e.slug())
    }

    #[test]
    fn host_rules() {
        let h1 = Version::HTTP_11;
        let h2 = Version::HTTP_2;
        let cases = [
            (req(h1, "/a", &["zweck.example"]), "ok"),
            (req(h1, "/a", &["zweck.example:8443"]), "ok"),
            (req(h1, "/a", &[]), "bad-host"),
            (req(Version::HTTP_10, "/a", &[]), "ok"),
            (req(h1, "/a", &["a.example", "a.example"]), "bad-host"),
            (req(h1, "/a", &["a.example", "b.example"]), "bad-host"),
            (req(h1, "/a", &["not a host"]), "bad-host"),
            (req(h1, "/a", &["user@a.example"]), "bad-host"),
            (req(h1, "/a", &[""]), "ok"),
            (req(h1, "https://a.example/x", &["A.Example"]), "ok"),
            (req(h1, "https://a.example/x", &["a.example:443"]), "ok"),
            (req(h1, "https://a.example/x", &["b.example"]), "bad-host"),
            (
                req(h1, "https://a.example/x", &["a.example:8443"]),
                "bad-host",
            ),
            (req(h1, "https://a.example/x", &[""]), "bad-host"),
            (req(h2, "https://a.example/x", &[]), "ok"),
            (req(h2, "https://a.example/x", &["a.example"]), "ok"),
            (req(h2, "https://a.example/x", &["b.example"]), "bad-host"),
            (req(h2, "/x", &[]), "bad-host"),
            (req(h2, "/x", &["a.example"]), "ok"),
        ];
        for (i, (r, want)) in cases.into_iter().enumerate() {
            let got = slug(host(r.version(), r.uri().authority(), r.headers()));
            assert_eq!(got, want, "case {i}: {:?} {:?}", r.uri(), r.headers());
        }
    }

    #[test]
    fn header_block_is_counted_as_http2_counts_it() {
        let r = Request::post("https://a.example/p?q=1")
            .version(Version::HTTP_2)
            .header("x-a", "12345")
            .body(())
            .expect("request");
        let want = (7 + 4 + 32) + (7 + 5 + 32) + (5 + 6 + 32) + (10 + 9 + 32) + (3 + 5 + 32);
        assert_eq!(header_block_size(&r), want);
        assert!(check(&r, want).is_ok());
        assert_eq!(slug(check(&r, want - 1)), "headers-too-large");
    }
}
