//! Phase 2, route: canonicalise the path, refuse method tricks, pick the upstream, and decide
//! once whether the route is governed.
//!
//! Runs after identify and before anything reads the body. Changes nothing: it returns a
//! [`Route`] and its [`Governance`] that the rest of the pipeline follows. Its errors: `bad-path` and
//! `method-override` (400), `unsupported` (501, CONNECT), `no-route` (404) and
//! `unknown-resource` (403: new endpoints stay closed until an inventory classifies them).
//!
//! Zweck matches policies on paths, so it must see the path the CRM will act on. Rather than
//! guess how each CRM normalises (`/a/./b`, `%2F`, `//`), it refuses every form where the
//! answer could differ: dot-segments, percent-encoded `/`, `.` or `\`, empty segments,
//! control characters. Percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2),
//! and the canonical path is what gets forwarded, so what was matched is what the CRM sees.
//! Method overrides (`X-HTTP-Method-Override` and friends, Salesforce `_HttpMethod`) would
//! let a POST act as a DELETE behind the policy's back and are refused outright, here and in
//! every part of a batch tunnel.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method, Request, Uri};

use crate::error::ProxyError;
use crate::policy::{Operation, PolicySet, RouteMatch};
use crate::state::{Live, UpstreamEntry};

/// Why a request is refused before it is routed: its path or method could mean something
/// else to the CRM than to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteRefusal {
    /// The path is not in canonical form.
    #[error("the request path is not canonical: {0}")]
    BadPath(&'static str),
    /// A method-override header or query parameter.
    #[error("method overrides are refused ({0})")]
    MethodOverride(&'static str),
    /// CONNECT would open a tunnel past every policy.
    #[error("CONNECT is not supported through Zweck")]
    Connect,
}

/// Headers that ask a server to treat the request as another method.
const OVERRIDE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Query parameters that do the same.
const OVERRIDE_PARAMS: [&str; 2] = ["_httpmethod", "_method"];

/// Where a request goes: what phase 2 decided, for every later phase.
#[derive(Debug)]
pub struct Route {
    pub upstream: Arc<UpstreamEntry>,
    /// The canonical path: what the policy matched and what the CRM receives.
    pub path: String,
    /// The policy snapshot this request uses from start to end.
    pub policy: Arc<PolicySet>,
    /// The pseudonymisation key of the same snapshot.
    pub pseudonym_key: Option<crate::policy::PseudonymKey>,
}

/// How a route is governed: the decision of phase 2, taken once.
#[derive(Debug)]
pub enum Governance {
    /// An inventory operation: its bodies are governed.
    Governed(Operation),
    /// Listed as carrying no personal data; the template it matched.
    Ungoverned(String),
    /// An `op: metadata` operation (describe, properties, `$metadata`): passes unchanged
    /// like an ungoverned route, counted as metadata; the template it matched.
    Metadata(String),
}

/// Phase 2, first half: the canonical path and the upstream it goes to (refusing method
/// overrides), before the inventory is asked; [`Route::governance`] is the second half. Two
/// steps, so that a refusal of a path no inventory classifies still knows its upstream for
/// the transfer log.
pub fn locate<B>(live: &Live, req: &Request<B>) -> Result<Route, ProxyError> {
    refuse_method_override(req.method(), req.uri(), req.headers())?;
    let path = canonical_path(req.uri().path())?;
    // read only when some upstream selects by host: a rule without one ignores it
    let by_host = live
        .upstreams
        .iter()
        .any(|u| u.upstream.rule.host.is_some());
    let host = by_host
        .then(|| request_host(req.uri(), req.headers()))
        .flatten();
    let upstream = select(
        live.upstreams.iter().map(|u| (&u.upstream.rule, u)),
        host.as_deref(),
        &path,
    )
    .ok_or(ProxyError::NoRoute)?
    .clone();
    Ok(Route {
        upstream,
        path,
        policy: live.policy.clone(),
        pseudonym_key: live.pseudonym_key.clone(),
    })
}

impl Route {
    /// The second half of phase 2: how `method` on this route is governed.
    pub fn governance(&self, method: &Method) -> Result<Governance, ProxyError> {
        governance(&self.upstream, &self.policy, method, &self.path)
    }
}

/// The upstream's `ungoverned` list first, then the inventory of its dialect. A path that
/// matches neither is refused (403 `unknown-resource`): new endpoints stay closed until an
/// inventory classifies them.
fn governance(
    upstream: &UpstreamEntry,
    policy: &PolicySet,
    method: &Method,
    path: &str,
) -> Result<Governance, ProxyError> {
    let config = &upstream.upstream.config;
    match crate::policy::decide::route(policy, &config.ungoverned, config.dialect, method, path) {
        RouteMatch::Ungoverned { template } => Ok(Governance::Ungoverned(template.to_string())),
        RouteMatch::Metadata { template, .. } => Ok(Governance::Metadata(template.to_string())),
        RouteMatch::Operation(op) => Ok(Governance::Governed(op.clone())),
        RouteMatch::Unknown => Err(ProxyError::UnknownResource),
    }
}

/// The canonical path of a request, or why it has none (always [`RouteRefusal::BadPath`]).
pub fn canonical_path(path: &str) -> Result<String, RouteRefusal> {
    let bad = RouteRefusal::BadPath;
    if !path.starts_with('/') {
        return Err(bad("not an absolute path"));
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        // a run of bytes that stay as they are, copied at once
        let run = bytes[i..]
            .iter()
            .position(|b| !stays(*b))
            .map_or(bytes.len(), |n| i + n);
        out.push_str(&path[i..run]);
        i = run;
        let Some(&b) = bytes.get(i) else {
            break;
        };
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
                        out.push(c as char);
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
            // `stays` holds every other byte
            _ => return Err(bad("raw control, space or non-ASCII byte")),
        }
    }
    let mut segments = out[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        if seg == "." || seg == ".." {
            return Err(bad("dot-segment"));
        }
        // an empty segment is only allowed as the last one (a trailing slash) or for `/`
        if seg.is_empty() && segments.peek().is_some() {
            return Err(bad("empty segment (//)"));
        }
    }
    Ok(out)
}

/// A byte of a path that the canonical path keeps as it is: not `%`, `\\`, `;`, a control
/// character, a space or a non-ASCII byte.
fn stays(b: u8) -> bool {
    !matches!(b, b'%' | b'\\' | b';' | 0..=0x20 | 0x7f..=0xff)
}

/// Refuses method overrides in headers or in the query string, and CONNECT.
pub fn refuse_method_override(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), RouteRefusal> {
    if OVERRIDE_HEADERS.iter().any(|h| headers.contains_key(h)) {
        return Err(RouteRefusal::MethodOverride("a method-override header"));
    }
    if uri.query().is_some_and(overrides_method) {
        return Err(RouteRefusal::MethodOverride("a _HttpMethod parameter"));
    }
    if method == Method::CONNECT {
        return Err(RouteRefusal::Connect);
    }
    Ok(())
}

/// Whether a header (any letter case) asks for another method: for headers that are not in
/// a `HeaderMap`, such as a tunnel part's.
pub fn is_override_header(name: &str) -> bool {
    OVERRIDE_HEADERS
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_str()))
}

/// Whether a query string carries a method-override parameter (names percent-decoded, any
/// letter case).
pub fn overrides_method(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        OVERRIDE_PARAMS
            .iter()
            .any(|p| decoded.eq_ignore_ascii_case(p))
    })
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
                matches!(canonical_path(p), Err(RouteRefusal::BadPath(_))),
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

    /// The byte-at-a-time canonicalisation this module had before runs were copied whole:
    /// the two must agree on every path, refusals and their reasons included.
    fn byte_at_a_time(path: &str) -> Result<String, RouteRefusal> {
        let bad = RouteRefusal::BadPath;
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
                            out.push(c as char);
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
        let segments: Vec<&str> = out[1..].split('/').collect();
        let last = segments.len().saturating_sub(1);
        for (n, seg) in segments.iter().enumerate() {
            if *seg == "." || *seg == ".." {
                return Err(bad("dot-segment"));
            }
            if seg.is_empty() && n != last {
                return Err(bad("empty segment (//)"));
            }
        }
        Ok(out)
    }

    proptest::proptest! {
        #[test]
        fn canonical_path_is_the_byte_at_a_time_one(
            parts in proptest::collection::vec(
                proptest::sample::select(&[
                    "/", "a", "v66.0", ".", "..", "%61", "%2F", "%2e", "%5C", "%40", "%7f", "%0a",
                    "%zz", "%4", "%+f", "\\", ";", " ", "\t", "é", "(x)", "~", "'",
                ][..]),
                0..12,
            ),
            absolute in proptest::bool::ANY,
        ) {
            let path = format!("{}{}", if absolute { "/" } else { "" }, parts.concat());
            proptest::prop_assert_eq!(canonical_path(&path), byte_at_a_time(&path), "{:?}", path);
        }
    }
}
