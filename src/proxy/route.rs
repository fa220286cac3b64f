//! Phase 2, route: canonicalise the path, refuse method tricks, pick the upstream.
//!
//! Zweck matches policies on paths, so it must see the path the CRM will act on. Rather than
//! guess how each CRM normalises (`/a/./b`, `%2F`, `//`), it refuses every form where the
//! answer could differ: dot-segments, percent-encoded `/`, `.` or `\`, empty segments,
//! control characters. Percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2),
//! and the canonical path is what gets forwarded, so what was matched is what the CRM sees.
//! Method overrides (`X-HTTP-Method-Override` and friends, Salesforce `_HttpMethod`) would
//! let a POST act as a DELETE behind the policy's back and are refused outright.

use http::{HeaderMap, HeaderName, Method, Uri};

use crate::error::ProxyError;

/// Headers that ask a server to treat the request as another method.
const OVERRIDE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Query parameters that do the same.
const OVERRIDE_PARAMS: [&str; 2] = ["_httpmethod", "_method"];

/// The canonical path of a request, or why it has none.
pub fn canonical_path(path: &str) -> Result<String, ProxyError> {
    let bad = |reason| ProxyError::BadPath { reason };
    if !path.starts_with('/') {
        return Err(bad("not an absolute path"));
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(bad("malformed percent-encoding"))?;
                match hex {
                    b'/' | b'\\' => return Err(bad("percent-encoded slash")),
                    b'.' => return Err(bad("percent-encoded dot")),
                    0..=0x1f | 0x7f => return Err(bad("encoded control character")),
                    c if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'~' => {
                        out.push(c as char)
                    }
                    c => {
                        out.push('%');
                        out.push_str(&format!("{c:02X}"));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(bad("backslash")),
            b';' => return Err(bad("path parameters")),
            0..=0x20 | 0x7f..=0xff => return Err(bad("raw control, space or non-ASCII byte")),
            _ => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    let body = &out[1..];
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (n, seg) in segments.iter().enumerate() {
        if *seg == "." || *seg == ".." {
            return Err(bad("dot-segment"));
        }
        // an empty segment is only allowed as the last one (a trailing slash) or for `/`
        if seg.is_empty() && n != last {
            return Err(bad("empty segment (//)"));
        }
    }
    Ok(out)
}

/// Refuses method overrides in headers or in the query string.
pub fn refuse_method_override(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ProxyError> {
    for h in &OVERRIDE_HEADERS {
        if headers.contains_key(h) {
            return Err(ProxyError::MethodOverride {
                what: "a method-override header",
            });
        }
    }
    if let Some(q) = uri.query() {
        for pair in q.split('&') {
            let name = pair.split('=').next().unwrap_or("");
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if OVERRIDE_PARAMS
                .iter()
                .any(|p| decoded.eq_ignore_ascii_case(p))
            {
                return Err(ProxyError::MethodOverride {
                    what: "a _HttpMethod parameter",
                });
            }
        }
    }
    if method == Method::CONNECT {
        return Err(ProxyError::Unsupported { what: "CONNECT" });
    }
    Ok(())
}

/// The host the request was sent to (`:authority` or `Host`), lower-case, without port.
pub fn request_host(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let lower = |host: &str| host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(a) = uri.authority() {
        return Some(lower(a.host()));
    }
    let h = headers.get(http::header::HOST)?.to_str().ok()?;
    let auth: http::uri::Authority = h.parse().ok()?;
    Some(lower(auth.host()))
}

/// How an upstream is selected: by path prefix and/or host.
#[derive(Debug, Clone)]
pub struct RouteRule {
    pub path_prefix: Option<String>,
    pub host: Option<String>,
}

impl RouteRule {
    /// A score when the rule matches (higher is more specific), else None.
    pub fn score(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let mut score = 0;
        if let Some(h) = &self.host {
            if host != Some(h.as_str()) {
                return None;
            }
            score += 1_000_000;
        }
        if let Some(p) = &self.path_prefix {
            let matches =
                path.starts_with(p.as_str()) || (p.ends_with('/') && path == &p[..p.len() - 1]);
            if !matches {
                return None;
            }
            score += p.len();
        }
        Some(score)
    }
}

/// Picks the most specific rule; ties go to the first configured.
pub fn select<'a, T>(
    rules: impl IntoIterator<Item = (&'a RouteRule, T)>,
    host: Option<&str>,
    path: &str,
) -> Option<T> {
    let mut best: Option<(usize, T)> = None;
    for (rule, item) in rules {
        if let Some(s) = rule.score(host, path) {
            if best.as_ref().is_none_or(|(b, _)| s > *b) {
                best = Some((s, item));
            }
        }
    }
    best.map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass_and_unreserved_escapes_are_decoded() {
        assert_eq!(canonical_path("/").as_deref(), Ok("/"));
        assert_eq!(
            canonical_path("/services/data/v66.0/query").as_deref(),
            Ok("/services/data/v66.0/query")
        );
        assert_eq!(
            canonical_path("/services/dat%61/").as_deref(),
            Ok("/services/data/")
        );
        assert_eq!(
            canonical_path("/api/data/v9.2/contacts(emailaddress1='a%40b')").as_deref(),
            Ok("/api/data/v9.2/contacts(emailaddress1='a%40b')")
        );
        assert_eq!(canonical_path("/a/b%2a").as_deref(), Ok("/a/b%2A"));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for p in [
            "/services/data/../sobjects",
            "/services/./data",
            "/services/data/..",
            "/a/%2e%2e/b",
            "/a/%2E/b",
            "/a%2Fb",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "//services/data",
            "/services//data",
            "/a;x=1/b",
            "/a%00b",
            "/a%zz",
            "/a%2",
            "relative",
        ] {
            assert!(
                matches!(canonical_path(p), Err(ProxyError::BadPath { .. })),
                "{p} must be refused"
            );
        }
    }

    #[test]
    fn method_overrides_are_refused() {
        let uri: Uri = "/services/data/v66.0/sobjects/Contact/1?_HttpMethod=DELETE"
            .parse()
            .expect("uri");
        assert!(refuse_method_override(&Method::POST, &uri, &HeaderMap::new()).is_err());
        let uri: Uri = "/x?a=1&%5FMethod=PATCH".parse().expect("uri");
        assert!(refuse_method_override(&Method::POST, &uri, &HeaderMap::new()).is_err());
        let mut h = HeaderMap::new();
        h.insert("x-http-method-override", "DELETE".parse().expect("v"));
        let uri: Uri = "/x".parse().expect("uri");
        assert!(refuse_method_override(&Method::POST, &uri, &h).is_err());
        assert!(refuse_method_override(&Method::GET, &uri, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn most_specific_rule_wins() {
        let sf = RouteRule {
            path_prefix: Some("/services/data/".into()),
            host: None,
        };
        let sf_host = RouteRule {
            path_prefix: Some("/services/data/".into()),
            host: Some("sf.zweck.internal".into()),
        };
        let hs = RouteRule {
            path_prefix: Some("/crm/".into()),
            host: None,
        };
        let rules = [(&sf, "sf"), (&sf_host, "sf-host"), (&hs, "hs")];
        assert_eq!(select(rules, None, "/services/data/v66.0"), Some("sf"));
        assert_eq!(
            select(rules, Some("sf.zweck.internal"), "/services/data/"),
            Some("sf-host")
        );
        assert_eq!(select(rules, None, "/services/data"), Some("sf"));
        assert_eq!(select(rules, None, "/crm/v3/objects/contacts"), Some("hs"));
        assert_eq!(select(rules, None, "/other"), None);
    }
}
