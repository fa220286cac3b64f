//! What never crosses Zweck, in either direction, and small header readers the phases share.
//!
//! Hop-by-hop and framing headers are dropped both ways (hyper recomputes framing from the
//! body, which avoids forwarding a stale `Content-Length`). Towards the CRM the app's own
//! credentials, cookies, `Zweck-*` headers and what a client claims about forwarding go too;
//! towards the app, cookies and anything claiming to be Zweck's. The per-dialect allowlists
//! of what may pass are `body/headers.rs`.

use http::{header, HeaderMap, HeaderName};

use crate::body::media;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the framing header hyper recomputes.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "content-length"
    )
}

/// Removes every header `doomed` names, and every header the `Connection` header lists, in
/// one pass over the names (each name is looked at once, nothing is parsed from a string;
/// the profile had this at ~5 % of a pass-through request's instructions).
fn remove_headers(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let gone: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k.as_str()) || doomed(k.as_str()))
        .cloned()
        .collect();
    for name in listed.into_iter().chain(gone) {
        headers.remove(name);
    }
}

/// What never reaches the CRM: hop-by-hop and framing headers, the app's credentials and
/// cookies, Zweck's own headers, and what a client claims about forwarding.
pub fn strip_request_headers(headers: &mut HeaderMap) {
    remove_headers(headers, |k| {
        matches!(
            k,
            "host" | "authorization" | "cookie" | "forwarded" | "x-real-ip"
        ) || k.starts_with("zweck-")
            || k.starts_with("x-forwarded-")
    });
}

/// What never reaches the app: hop-by-hop and framing headers, cookies, anything that
/// claims to be Zweck's.
pub fn strip_response_headers(headers: &mut HeaderMap) {
    remove_headers(headers, |k| k == "set-cookie" || k.starts_with("zweck-"));
}

/// The declared `Content-Length`, when there is a readable one.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `Content-Type` declares JSON (as `body::media` classifies it).
pub fn is_json(headers: &HeaderMap) -> bool {
    media::classify_headers(headers) == media::BodyKind::Json
}

/// A header's value as text; `several values` when it is repeated (so a caller never
/// picks one of two conflicting values).
pub fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    let mut all = headers.get_all(&name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return Some("several values".into());
    }
    first.to_str().ok().map(str::to_string)
}

/// Whether the body carries a content coding other than identity (an unreadable header
/// counts as one).
pub fn has_content_coding(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
        v.to_str().map_or(true, |s| {
            s.split(',')
                .any(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("identity"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_lose_credentials_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer app-key"),
            ("zweck-api-key", "k"),
            ("zweck-purpose", "p"),
            ("zweck-anything", "x"),
            ("cookie", "a=b"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("x-forwarded-for", "10.0.0.1"),
            ("host", "zweck.example"),
            ("accept", "application/json"),
            ("sforce-query-options", "batchSize=200"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().expect("value"));
        }
        strip_request_headers(&mut h);
        let left: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(left, vec!["accept", "sforce-query-options"]);
    }

    #[test]
    fn response_headers_lose_framing_and_cookies() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-length", "10"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "BrowserId=1"),
            ("zweck-policy", "spoofed"),
            ("content-type", "application/json"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().expect("value"));
        }
        strip_response_headers(&mut h);
        let left: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(left, vec!["content-type"]);
    }
}
