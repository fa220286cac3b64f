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

use std::sync::Arc;

use http::Method;

/// A compiled `METHOD /path` pattern. Shared when cloned: every governed request carries its
/// operation's pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    method: Option<Method>,
    segments: Arc<[Segment]>,
    template: Arc<str>,
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
            segments: segments.into(),
            template: format!("{} {}", method_text(text), path).into(),
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
        let mut rest = rest.strip_suffix('/').unwrap_or(rest);
        // walked segment by segment, as `split('/')` would cut them, without its searcher
        // (short segments are found faster byte by byte)
        let mut more = !rest.is_empty();
        for seg in self.segments.iter() {
            match seg {
                Segment::Rest => return true,
                Segment::Glob(pieces) => {
                    if !more {
                        return false;
                    }
                    let part = match rest.bytes().position(|b| b == b'/') {
                        Some(end) => {
                            let part = &rest[..end];
                            rest = &rest[end + 1..];
                            part
                        }
                        None => {
                            more = false;
                            rest
                        }
                    };
                    if !glob_match(pieces, part) {
                        return false;
                    }
                }
            }
        }
        !more
    }
}

/// The patterns of one ordered list that can match a request, in list order: an index by
/// method and number of path segments. A request tries only the patterns that could match
/// it, and still in the list's order, so the first match is the one a scan of the whole list
/// finds (`find` is that scan with the hopeless patterns skipped; a test compares the two on
/// every shipped inventory). Built once when the list is compiled.
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    /// `buckets[slot * width + n]`: the positions of the patterns a request whose method has
    /// `slot` and whose path has `n` segments (`n == width - 1`: more than any pattern names)
    /// may match, ascending.
    buckets: Vec<Vec<u32>>,
    width: usize,
}

/// Methods with a bucket of their own; any other method shares the last slot.
const METHOD_SLOTS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

fn method_slot(method: &Method) -> usize {
    METHOD_SLOTS
        .iter()
        .position(|m| m == method)
        .unwrap_or(METHOD_SLOTS.len())
}

/// The number of segments `matches` walks in a canonical path: one final `/` does not count.
fn path_segments(path: &str) -> usize {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let trimmed = rest.strip_suffix('/').unwrap_or(rest);
    if trimmed.is_empty() {
        0
    } else {
        trimmed.bytes().filter(|b| *b == b'/').count() + 1
    }
}

impl RoutePattern {
    /// The segments before a final `**`, and whether there is one.
    fn arity(&self) -> (usize, bool) {
        match self.segments.last() {
            Some(Segment::Rest) => (self.segments.len() - 1, true),
            _ => (self.segments.len(), false),
        }
    }

    /// Whether a request of a method in `slot` (the last slot: any method without one of its
    /// own) can match: the pattern's method decides, an unlisted method is left to `matches`.
    fn may_take_slot(&self, slot: usize) -> bool {
        match &self.method {
            None => true,
            Some(m) => method_slot(m) == slot,
        }
    }
}

impl RouteIndex {
    /// The index of `patterns`, in their order.
    pub fn new<'p>(patterns: impl IntoIterator<Item = &'p RoutePattern>) -> RouteIndex {
        let patterns: Vec<&RoutePattern> = patterns.into_iter().collect();
        // the overflow column holds paths longer than every pattern: only `**` ones match
        let width = patterns.iter().map(|p| p.arity().0).max().unwrap_or(0) + 2;
        let slots = METHOD_SLOTS.len() + 1;
        let mut buckets = vec![Vec::new(); slots * width];
        for (pos, p) in patterns.iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            let (fixed, rest) = p.arity();
            for slot in (0..slots).filter(|s| p.may_take_slot(*s)) {
                for n in 0..width {
                    if (rest && n >= fixed) || n == fixed {
                        buckets[slot * width + n].push(pos);
                    }
                }
            }
        }
        RouteIndex { buckets, width }
    }

    /// The positions of the patterns that may match `method` and the canonical `path`,
    /// ascending: every pattern that matches is among them.
    pub fn candidates(&self, method: &Method, path: &str) -> &[u32] {
        if self.width == 0 {
            return &[];
        }
        let n = path_segments(path).min(self.width - 1);
        self.buckets
            .get(method_slot(method) * self.width + n)
            .map_or(&[], Vec::as_slice)
    }

    /// The first of `items` (the list the index was built from, `pattern` naming each
    /// item's pattern) that matches: the item `items.iter().find(|i| pattern(i).matches(..))`
    /// finds.
    pub fn find<'p, T: 'p>(
        &self,
        items: &'p [T],
        pattern: impl Fn(&'p T) -> &'p RoutePattern,
        method: &Method,
        path: &str,
    ) -> Option<&'p T> {
        self.candidates(method, path)
            .iter()
            .filter_map(|pos| items.get(*pos as usize))
            .find(|item| pattern(item).matches(method, path))
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

    /// The index finds what a scan of the whole list finds: the first match, on lists of
    /// random patterns (methods, `*`, globs in segments, `**`) and random paths.
    mod index_is_the_scan {
        use super::*;
        use proptest::prelude::*;

        const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "PURGE", "*"];
        const SEGMENTS: [&str; 7] = ["a", "b", "*", "v*", "c(*)", "**", "a*b"];
        const PARTS: [&str; 7] = ["a", "b", "v1", "c(x)", "axb", "ab", "c()"];

        fn pattern() -> impl Strategy<Value = String> {
            (
                prop::sample::select(&METHODS[..]),
                prop::collection::vec(prop::sample::select(&SEGMENTS[..]), 0..5),
                any::<bool>(),
            )
                .prop_map(|(m, segs, slash)| {
                    // `**` only last, as `parse` requires
                    let mut segs: Vec<&str> = segs.into_iter().filter(|s| *s != "**").collect();
                    if slash {
                        segs.push("**");
                    }
                    format!("{m} /{}", segs.join("/"))
                })
        }

        fn request() -> impl Strategy<Value = (Method, String)> {
            (
                prop::sample::select(&["GET", "POST", "DELETE", "PURGE", "PUT"][..]),
                prop::collection::vec(prop::sample::select(&PARTS[..]), 0..7),
                any::<bool>(),
            )
                .prop_map(|(m, parts, slash)| {
                    let mut path = format!("/{}", parts.join("/"));
                    if slash && path != "/" {
                        path.push('/');
                    }
                    (Method::from_bytes(m.as_bytes()).expect("method"), path)
                })
        }

        proptest! {
            #[test]
            fn on_random_lists(
                texts in prop::collection::vec(pattern(), 0..16),
                requests in prop::collection::vec(request(), 1..32),
            ) {
                let patterns: Vec<RoutePattern> = texts
                    .iter()
                    .map(|t| RoutePattern::parse(t).expect("generated pattern"))
                    .collect();
                let index = RouteIndex::new(&patterns);
                for (method, path) in &requests {
                    let scan = patterns.iter().position(|p| p.matches(method, path));
                    let found = index
                        .find(&patterns, |p| p, method, path)
                        .map(|p| std::ptr::from_ref(p) as usize);
                    let scanned = scan.map(|i| std::ptr::from_ref(&patterns[i]) as usize);
                    prop_assert_eq!(found, scanned, "{} {} in {:?}", method, path, texts);
                }
            }
        }

        /// `matches` as it was written before it walked bytes: with `split('/')`.
        fn by_split(p: &RoutePattern, method: &Method, path: &str) -> bool {
            if p.method.as_ref().is_some_and(|m| m != method) {
                return false;
            }
            let Some(rest) = path.strip_prefix('/') else {
                return false;
            };
            let trimmed = rest.strip_suffix('/').unwrap_or(rest);
            let mut parts = (!trimmed.is_empty())
                .then(|| trimmed.split('/'))
                .into_iter()
                .flatten();
            for seg in p.segments.iter() {
                match seg {
                    Segment::Rest => return true,
                    Segment::Glob(pieces) => match parts.next() {
                        Some(part) if glob_match(pieces, part) => {}
                        _ => return false,
                    },
                }
            }
            parts.next().is_none()
        }

        proptest! {
            #[test]
            fn matching_walks_segments_as_split_cuts_them(
                text in pattern(),
                (method, path) in request(),
                doubled in any::<bool>(),
            ) {
                let p = RoutePattern::parse(&text).expect("generated pattern");
                // empty segments too, which canonical paths never have
                let path = if doubled { path.replacen('/', "//", 2) } else { path };
                prop_assert_eq!(p.matches(&method, &path), by_split(&p, &method, &path), "{} {} {}", text, method, path);
            }
        }

        #[test]
        fn an_empty_list_matches_nothing() {
            let index = RouteIndex::new(&[] as &[RoutePattern]);
            assert!(index.candidates(&Method::GET, "/a").is_empty());
            assert!(RouteIndex::default()
                .find(&[] as &[RoutePattern], |p| p, &Method::GET, "/")
                .is_none());
        }
    }

    #[test]
    fn template_is_the_pattern_text() {
        let p = RoutePattern::parse("GET  /services/data/*/query").expect("pattern");
        assert_eq!(p.template(), "GET /services/data/*/query");
    }
}
