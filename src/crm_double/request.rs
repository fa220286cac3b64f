//! A received request, already read in full, in the form every handler takes.
//!
//! Sub-requests of Salesforce `composite` and Dataverse `$batch` are built as the same type, so
//! they go through the same handlers (and the same auth check) as top-level calls.

use bytes::Bytes;
use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

pub(crate) struct Req {
    pub method: Method,
    /// Percent-decoded path, used for routing.
    pub path: String,
    /// Raw query string (without `?`), if any.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2), used to build absolute links.
    pub host: String,
    /// The atomic unit (change set, `allOrNone` composite) a sub-request writes in.
    pub journal: Option<std::sync::Arc<super::store::Journal>>,
}

impl Req {
    /// Builds a request from a path-and-query as it appears on the wire (or inside a batch).
    pub fn new(
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
        host: String,
    ) -> Req {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_and_query, None),
        };
        Req {
            method,
            path: percent_decode_str(path).decode_utf8_lossy().into_owned(),
            query,
            headers,
            body,
            host,
            journal: None,
        }
    }

    /// The journal of the atomic unit this request writes in, if any.
    pub fn journal(&self) -> Option<&super::store::Journal> {
        self.journal.as_deref()
    }

    /// All query parameters, decoded (`+` is a space, as browsers and SDKs send SOQL).
    pub fn params(&self) -> Vec<(String, String)> {
        self.query.as_deref().map(parse_form).unwrap_or_default()
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Parses `application/x-www-form-urlencoded` (also used for query strings).
pub(crate) fn parse_form(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

pub(crate) fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Splits a comma list, trimming blanks and dropping empty items.
pub(crate) fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_and_path() {
        let r = Req::new(
            Method::GET,
            "/a%28b%29?q=SELECT+Id,Name+FROM+Contact&x=%24y&flag",
            HeaderMap::new(),
            Bytes::new(),
            "h".into(),
        );
        assert_eq!(r.path, "/a(b)");
        assert_eq!(r.param("q").as_deref(), Some("SELECT Id,Name FROM Contact"));
        assert_eq!(r.param("x").as_deref(), Some("$y"));
        assert_eq!(r.param("flag").as_deref(), Some(""));
        assert_eq!(r.param("nope"), None);
        assert_eq!(comma_list(" a, b,,c "), vec!["a", "b", "c"]);
    }
}
