//! Sub-request URLs and references: what a part of a tunnel may address.
//!
//! Every sub-request URL is resolved against the tunnel's service root, checked (an
//! absolute URL must name an accepted origin, nothing may leave the service root) and
//! canonicalised exactly like a top-level path, so what was matched is what the CRM acts
//! on. Salesforce `@{...}` references are accepted only when they name an id.

use serde_json::Value;

use super::{Cause, Tunnel, TunnelKind, TunnelRefusal};
use crate::policy::Direction;
use crate::proxy::route::{self, RouteRefusal};

/// How a sub-request URL may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlForm {
    /// OData: relative to the service root (`contacts?$top=1`), an absolute path or an
    /// absolute URI.
    ServiceRelative,
    /// Salesforce `/composite/batch`: relative to `/services/data/` (`v66.0/sobjects/...`)
    /// or an absolute path.
    DataRelative,
    /// Salesforce `/composite`: an absolute path (`/services/data/v66.0/...`).
    AbsolutePath,
}

/// A resolved sub-request URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The canonical path, for classification.
    pub path: String,
    /// The URL to forward: canonical, in the form the app used (relative stays relative;
    /// an absolute URI becomes an absolute path).
    pub forward: String,
}

/// The service root of the tunnel: `/api/data/v9.2/`, `/services/data/v66.0/`.
pub(crate) fn service_root(tunnel: &Tunnel<'_>) -> Option<String> {
    match tunnel.kind {
        TunnelKind::OdataBatch => {
            let (root, _) = tunnel.path.rsplit_once('/')?;
            Some(format!("{root}/"))
        }
        _ => {
            let rest = tunnel.path.strip_prefix("/services/data/")?;
            let version = rest.split('/').next().filter(|v| !v.is_empty())?;
            Some(format!("/services/data/{version}/"))
        }
    }
}

/// Normalises an origin for comparison: lowercase, no trailing `/`, no default port.
fn normal_origin(origin: &str) -> String {
    let o = origin.trim_end_matches('/').to_ascii_lowercase();
    if let Some(bare) = o.strip_suffix(":443").filter(|_| o.starts_with("https://")) {
        return bare.to_string();
    }
    if let Some(bare) = o.strip_suffix(":80").filter(|_| o.starts_with("http://")) {
        return bare.to_string();
    }
    o
}

/// Resolves, checks and canonicalises one sub-request URL.
pub(crate) fn resolve_target(
    tunnel: &Tunnel<'_>,
    part: usize,
    raw: &str,
    form: UrlForm,
) -> Result<Target, TunnelRefusal> {
    let bad = |reason| TunnelRefusal::new(Direction::Request, part, Cause::BadUrl(reason));
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("empty, space, control or non-ASCII byte"));
    }
    if raw.contains('#') {
        return Err(bad("fragment"));
    }
    let root = service_root(tunnel).ok_or(bad("no service root"))?;
    let (full, relative) = as_written(tunnel, raw, form, &root).map_err(bad)?;
    let (path, query) = match full.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (full.as_str(), None),
    };
    let canonical = route::canonical_path(path).map_err(|e| match e {
        RouteRefusal::BadPath(reason) => bad(reason),
        _ => bad("not canonical"),
    })?;
    if !canonical.starts_with(&root) {
        return Err(bad("outside the service root"));
    }
    if query.is_some_and(route::overrides_method) {
        return Err(TunnelRefusal::new(
            Direction::Request,
            part,
            Cause::MethodOverride,
        ));
    }
    let shown = if relative {
        let base = match form {
            UrlForm::ServiceRelative => root.as_str(),
            _ => "/services/data/",
        };
        canonical[base.len()..].to_string()
    } else {
        canonical.clone()
    };
    let forward = match query {
        Some(q) => format!("{shown}?{q}"),
        None => shown,
    };
    Ok(Target {
        path: canonical,
        forward,
    })
}

/// The path and query a sub-request URL names, as written, and whether it was relative;
/// or why it is refused.
fn as_written(
    tunnel: &Tunnel<'_>,
    raw: &str,
    form: UrlForm,
    root: &str,
) -> Result<(String, bool), &'static str> {
    let lower = raw.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        if form != UrlForm::ServiceRelative {
            return Err("absolute URI");
        }
        return Ok((of_absolute_uri(tunnel, raw)?, false));
    }
    if raw.starts_with("//") || has_scheme(raw) {
        return Err("scheme or network-path reference");
    }
    if raw.starts_with('/') {
        return Ok((raw.to_string(), false));
    }
    match form {
        UrlForm::ServiceRelative => Ok((format!("{root}{raw}"), true)),
        UrlForm::DataRelative => Ok((format!("/services/data/{raw}"), true)),
        UrlForm::AbsolutePath => Err("relative URL"),
    }
}

/// The path and query of an absolute `http(s)` URI, which must name an accepted origin.
fn of_absolute_uri(tunnel: &Tunnel<'_>, raw: &str) -> Result<String, &'static str> {
    let scheme_end = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[scheme_end..];
    let auth_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    if authority.is_empty() || authority.contains('@') {
        return Err("authority");
    }
    let origin = normal_origin(&raw[..scheme_end + auth_len]);
    if !tunnel.origins.iter().any(|o| normal_origin(o) == origin) {
        return Err("foreign origin");
    }
    let tail = &rest[auth_len..];
    Ok(if tail.is_empty() || tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    })
}

/// RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"` at the start.
fn has_scheme(raw: &str) -> bool {
    raw.split_once(':').is_some_and(|(head, _)| {
        head.starts_with(|c: char| c.is_ascii_alphabetic())
            && head
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    })
}

/// Whether every `@{...}` in `text` is an id reference: `@{name(.name|[n])*}` whose last
/// name is `id` (any case). Percent-encoded braces are refused too.
pub(crate) fn references_ok(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if lower.contains("%7b") || lower.contains("%7d") {
        return false;
    }
    let mut rest = text;
    while let Some(at) = rest.find("@{") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return false;
        };
        if !id_reference(&after[..end]) {
            return false;
        }
        rest = &after[end + 1..];
    }
    true
}

fn id_reference(expr: &str) -> bool {
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let mut names = Vec::new();
    for piece in expr.split('.') {
        // name[0][1]
        let (name, mut idx) = match piece.find('[') {
            Some(i) => (&piece[..i], &piece[i..]),
            None => (piece, ""),
        };
        if !word(name) {
            return false;
        }
        while !idx.is_empty() {
            let Some(close) = idx.find(']') else {
                return false;
            };
            let n = &idx[1..close];
            if !idx.starts_with('[') || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            idx = &idx[close + 1..];
        }
        names.push(name);
    }
    names.len() >= 2 && names.last().is_some_and(|n| n.eq_ignore_ascii_case("id"))
}

/// Whether every key and string value of a JSON document passes [`references_ok`].
pub(crate) fn value_references_ok(v: &Value) -> bool {
    match v {
        Value::String(s) => references_ok(s),
        Value::Array(items) => items.iter().all(value_references_ok),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| !k.contains("@{") && references_ok(k) && value_references_ok(v)),
        _ => true,
    }
}
