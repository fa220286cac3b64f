//! Route patterns: `METHOD /path/with/*/segments`, the one syntax used by config
//! (`ungoverned`) and inventories (operations).
//!
//! A pattern matches a *canonical* path (see `route::canonical_path`), segment by segment:
//! `*` matches exactly one non-empty segment, a final `**` matches any rest (zero or more
//! segments), anything else matches literally. A pattern segment may also be a literal prefix
//! followed by `*` (`v*` matches `v66.0`) or contain `{*}` parentheses forms such as
//! `contacts(*)` (Dataverse keys): `*` inside a segment matches one or more characters other
//! than `/`. Methods are upper-case; `*` as the method matches any. The pattern text is the
//! route template that logs and metrics carry instead of the raw path.
//!
//! A trailing `/` is not significant, on either side: `/sobjects/Contact` and
//! `/sobjects/Contact/` are one route. SDKs differ in which spelling they send
//! (simple-salesforce creates with `POST …/sobjects/Contact/`, queries with `…/query/?q=`) and
//! the CRMs answer both alike, so an inventory that had to list both spellings of every route
//! would sooner or later miss one and refuse a working call. Matching strips at most the one
//! final `/` (the canonical path has no `//`), so a trailing slash can never make a path match
//! a pattern with more or fewer segments: `/sobjects/Contact/` is not
//! `/sobjects/Contact/*`, because `*` needs a non-empty segment.

use http::Method;

/// A compiled `METHOD /path` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    method: Option<Method>,
    segments: Vec<Segment>,
    template: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches any rest of the path (only last).
    Rest,
    /// Matches a segment with `*` wildcards inside (`*` alone = any one segment).
    Glob(Vec<String>),
}

/// Why a pattern did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a route pattern is `METHOD /path`, got {0:?}")]
    Shape(String),
    #[error("unknown HTTP method {0:?}")]
    Method(String),
    #[error("the path of a route pattern starts with `/`: {0:?}")]
    Path(String),
    #[error("`**` may only be the last segment: {0:?}")]
    Rest(String),
}

impl RoutePattern {
    /// Parses `GET /services/data/*/query`.
    pub fn parse(text: &str) -> Result<RoutePattern, PatternError> {
        let text = text.trim();
        let (method, path) = text
            .split_once(' ')
            .ok_or_else(|| PatternError::Shape(text.to_string()))?;
        let path = path.trim();
        let method = match method {
            "*" => None,
            m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Some(
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| PatternError::Method(m.to_string()))?,
            ),
            m => return Err(PatternError::Method(m.to_string())),
        };
        if !path.starts_with('/') || path.contains(' ') {
            return Err(PatternError::Path(path.to_string()));
        }
        let body = path.trim_start_matches('/');
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut segments = Vec::new();
        if !body.is_empty() {
            let parts: Vec<&str> = body.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                if *part == "**" {
                    if i + 1 != parts.len() {
                        return Err(PatternError::Rest(text.to_string()));
                    }
                    segments.push(Segment::Rest);
                } else if part.is_empty() {
                    return Err(PatternError::Path(path.to_string()));
                } else {
                    segments.push(Segment::Glob(part.split('*').map(str::to_string).collect()));
                }
            }
        }
        Ok(RoutePattern {
            method,
            segments,
            template: format!("{} {}", method_text(text), path),
        })
    }

    /// True when both patterns match exactly the same requests (the same method and segments;
    /// the spelling of a trailing `/` does not count).
    pub fn same_route(&self, other: &RoutePattern) -> bool {
        self.method == other.method && self.segments == other.segments
    }

    /// The pattern text, used as the route template in logs and metrics.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// True when `method` and the canonical `path` (no query) match.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if let Some(m) = &self.method {
            if m != method {
                return false;
            }
        }
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        // at most one: the canonical path has no empty segment before its end
        let trimmed = rest.strip_suffix('/').unwrap_or(rest);
        // walked, not collected: every request tries many patterns
        let mut parts = (!trimmed.is_empty())
            .then(|| trimmed.split('/'))
            .into_iter()
            .flatten();
        for seg in &self.segments {
            match seg {
                Segment::Rest => return true,
                Segment::Glob(pieces) => {
                    let Some(part) = parts.next() else {
                        return false;
                    };
                    if !glob_match(pieces, part) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

fn method_text(text: &str) -> &str {
    text.split(' ').next().unwrap_or("*")
}

/// `pieces` is the segment split at `*`; each `*` matches one or more characters.
fn glob_match(pieces: &[String], part: &str) -> bool {
    if pieces.len() == 1 {
        return pieces[0] == part;
    }
    let (first, last) = (&pieces[0], &pieces[pieces.len() - 1]);
    if !part.starts_with(first.as_str()) || part.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &part[first.len()..];
    for (n, piece) in pieces[1..].iter().enumerate() {
        let is_last = n + 2 == pieces.len();
        if is_last {
            // the wildcard before the last piece needs at least one char
            return rest.len() > piece.len() && rest.ends_with(piece.as_str());
        }
        if piece.is_empty() {
            return false; // `**` inside a segment is not allowed
        }
        match rest.get(1..).and_then(|r| r.find(piece.as_str())) {
            Some(pos) => rest = &rest[1 + pos + piece.len()..],
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, method: &str, path: &str) -> bool {
        RoutePattern::parse(p).expect("pattern").matches(
            &Method::from_bytes(method.as_bytes()).expect("method"),
            path,
        )
    }

    #[test]
    fn literal_and_star_segments() {
        assert!(m("GET /services/data/", "GET", "/services/data/"));
        assert!(!m(
            "GET /services/data/",
            "GET",
            "/services/data/v66.0/query"
        ));
        assert!(m(
            "GET /services/data/*/query",
            "GET",
            "/services/data/v66.0/query"
        ));
        assert!(!m(
            "GET /services/data/*/query",
            "POST",
            "/services/data/v66.0/query"
        ));
        assert!(!m(
            "GET /services/data/*/query",
            "GET",
            "/services/data/query"
        ));
        assert!(m("* /a/*", "DELETE", "/a/b"));
    }

    #[test]
    fn globs_inside_segments() {
        assert!(m(
            "GET /api/data/v9.2/contacts(*)",
            "GET",
            "/api/data/v9.2/contacts(6f0c)"
        ));
        assert!(!m(
            "GET /api/data/v9.2/contacts(*)",
            "GET",
            "/api/data/v9.2/contacts()"
        ));
        assert!(!m(
            "GET /api/data/v9.2/contacts(*)",
            "GET",
            "/api/data/v9.2/contacts"
        ));
        assert!(m(
            "GET /services/data/v*/limits",
            "GET",
            "/services/data/v66.0/limits"
        ));
        assert!(!m(
            "GET /services/data/v*/limits",
            "GET",
            "/services/data/x66.0/limits"
        ));
    }

    #[test]
    fn rest_matches_any_tail() {
        assert!(m("GET /__double/**", "GET", "/__double/a/b/c"));
        assert!(m("GET /__double/**", "GET", "/__double/"));
        assert!(m("GET /__double/**", "GET", "/__double"));
        assert!(RoutePattern::parse("GET /a/**/b").is_err());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(RoutePattern::parse("get /a").is_err());
        assert!(RoutePattern::parse("GET a").is_err());
        assert!(RoutePattern::parse("GET").is_err());
        assert!(RoutePattern::parse("GET /a//b").is_err());
    }

    #[test]
    fn a_trailing_slash_is_not_significant_on_either_side() {
        for pattern in [
            "POST /services/data/v*/sobjects/Contact",
            "POST /services/data/v*/sobjects/Contact/",
        ] {
            for path in [
                "/services/data/v66.0/sobjects/Contact",
                "/services/data/v66.0/sobjects/Contact/",
            ] {
                assert!(m(pattern, "POST", path), "{pattern} vs {path}");
            }
        }
        assert!(m(
            "PATCH /services/data/v*/sobjects/Contact/*",
            "PATCH",
            "/services/data/v66.0/sobjects/Contact/003Fict00000001AAA/"
        ));
        assert!(m("GET /services/data/", "GET", "/services/data"));
        assert!(m("GET /", "GET", "/"));
    }

    #[test]
    fn a_trailing_slash_never_adds_or_removes_a_segment() {
        // `*` needs a non-empty segment: the slash is not an empty id
        assert!(!m(
            "PATCH /services/data/v*/sobjects/Contact/*",
            "PATCH",
            "/services/data/v66.0/sobjects/Contact/"
        ));
        assert!(!m(
            "GET /api/data/v*/contacts(*)",
            "GET",
            "/api/data/v9.2/contacts/"
        ));
        // one slash only: an empty segment before the end is never stripped
        assert!(!m(
            "POST /services/data/v*/sobjects/Contact",
            "POST",
            "/services/data/v66.0/sobjects/Contact//"
        ));
        assert!(!m(
            "GET /crm/v3/objects/contacts/*",
            "GET",
            "/crm/v3/objects/contacts//"
        ));
    }

    #[test]
    fn same_route_ignores_the_spelling_of_a_trailing_slash() {
        let p = |t: &str| RoutePattern::parse(t).expect("pattern");
        assert!(p("GET /a/b").same_route(&p("GET /a/b/")));
        assert!(!p("GET /a/b").same_route(&p("POST /a/b")));
        assert!(!p("GET /a/b").same_route(&p("GET /a/b/*")));
        assert!(!p("GET /a/*").same_route(&p("GET /a/**")));
    }

    #[test]
    fn template_is_the_pattern_text() {
        let p = RoutePattern::parse("GET  /services/data/*/query").expect("pattern");
        assert_eq!(p.template(), "GET /services/data/*/query");
    }
}
