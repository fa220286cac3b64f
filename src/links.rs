//! Absolute links that point at the upstream are rewritten to Zweck's `public_url`.
//!
//! Dataverse `@odata.nextLink` and `OData-EntityId`, HubSpot `paging.next.link` and any
//! `Location` are absolute URLs on the CRM's host (CRM-APIS.md §5). A client that follows one
//! would talk to the CRM directly and bypass every policy, so each such link is turned into
//! the same path on Zweck. Only links whose origin is exactly the upstream's are touched.

use aho_corasick::AhoCorasick;
use http::{header, HeaderMap, HeaderName};
use serde_json::Value;

/// Response headers that carry absolute links.
const LINK_HEADERS: [HeaderName; 3] = [
    header::LOCATION,
    header::CONTENT_LOCATION,
    HeaderName::from_static("odata-entityid"),
];

/// Maps one upstream origin to the public URL.
#[derive(Debug, Clone)]
pub struct LinkRewriter {
    origins: Vec<String>,
    public_url: String,
    /// Finds the upstream's authorities in a body, in any letter case (`None` if it could not
    /// be built: then every body is parsed).
    authorities: Option<AhoCorasick>,
    /// The origins' first bytes, lower case ([`LinkRewriter::first_bytes`]).
    starts: Vec<u8>,
}

impl LinkRewriter {
    /// `origin` is `https://host[:port]` of the upstream; `public_url` the same for Zweck.
    pub fn new(origin: &str, public_url: &str) -> LinkRewriter {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let mut origins = vec![origin.clone()];
        // https://host and https://host:443 are the same origin
        if let Some(bare) = origin.strip_suffix(":443") {
            origins.push(bare.to_string());
        } else if origin.matches(':').count() == 1 {
            origins.push(format!("{origin}:443"));
        }
        let authorities: Vec<&str> = origins
            .iter()
            .map(|o| o.split_once("://").map_or(o.as_str(), |(_, a)| a))
            .filter(|a| !a.is_empty())
            .collect();
        let authorities = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&authorities)
            .ok();
        let mut starts: Vec<u8> = origins
            .iter()
            .filter_map(|o| o.as_bytes().first())
            .map(u8::to_ascii_lowercase)
            .collect();
        starts.dedup();
        LinkRewriter {
            public_url: public_url.trim_end_matches('/').to_string(),
            origins,
            authorities,
            starts,
        }
    }

    /// The rewritten link, when `value` points at the upstream.
    pub fn rewrite(&self, value: &str) -> Option<String> {
        for origin in &self.origins {
            let Some(head) = value.get(..origin.len()) else {
                continue;
            };
            if !head.eq_ignore_ascii_case(origin) {
                continue;
            }
            let rest = &value[origin.len()..];
            if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
                return Some(format!("{}{}", self.public_url, rest));
            }
        }
        None
    }

    /// The first bytes (lower case) a string must start with to be rewritten: a link starts
    /// with its origin's scheme.
    pub fn first_bytes(&self) -> &[u8] {
        &self.starts
    }

    /// False when `body` cannot contain a link to the upstream: its authority (`host[:port]`)
    /// does not occur anywhere, in any letter case. Lets an ungoverned body skip the parse.
    pub fn may_link(&self, body: &[u8]) -> bool {
        self.authorities.as_ref().is_none_or(|ac| ac.is_match(body))
    }

    /// False when no string of the JSON document `body` can be an upstream link: its
    /// authority does not occur, and no escape (`\u0063rm.example.com`) could spell it.
    pub fn may_link_json(&self, body: &[u8]) -> bool {
        self.may_link(body) || body.contains(&b'\\')
    }

    /// Rewrites the link headers in place; returns how many changed.
    pub fn rewrite_headers(&self, headers: &mut HeaderMap) -> usize {
        let mut n = 0;
        for name in LINK_HEADERS {
            let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            if let Some(new) = self.rewrite(v).and_then(|s| s.parse().ok()) {
                headers.insert(name, new);
                n += 1;
            }
        }
        n
    }

    /// Rewrites every string value of a JSON document that is an upstream link.
    pub fn rewrite_json(&self, value: &mut Value) -> usize {
        match value {
            Value::String(s) => match self.rewrite(s) {
                Some(new) => {
                    *s = new;
                    1
                }
                None => 0,
            },
            Value::Array(items) => items.iter_mut().map(|v| self.rewrite_json(v)).sum(),
            Value::Object(map) => map.values_mut().map(|v| self.rewrite_json(v)).sum(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw() -> LinkRewriter {
        LinkRewriter::new(
            "https://contoso.crm4.dynamics.com",
            "https://zweck.example:8443",
        )
    }

    #[test]
    fn only_the_upstream_origin_is_rewritten() {
        let r = rw();
        assert_eq!(
            r.rewrite("https://contoso.crm4.dynamics.com/api/data/v9.2/contacts?$skiptoken=x")
                .as_deref(),
            Some("https://zweck.example:8443/api/data/v9.2/contacts?$skiptoken=x")
        );
        assert_eq!(
            r.rewrite("HTTPS://CONTOSO.crm4.dynamics.com:443/x")
                .as_deref(),
            Some("https://zweck.example:8443/x")
        );
        assert_eq!(
            r.rewrite("https://contoso.crm4.dynamics.com.evil.example/x"),
            None
        );
        assert_eq!(r.rewrite("https://other.example/x"), None);
        assert_eq!(r.rewrite("/services/data/v66.0/query/01g-2000"), None);
    }

    #[test]
    fn json_links_anywhere_in_the_document() {
        let mut v = serde_json::json!({
            "@odata.nextLink": "https://contoso.crm4.dynamics.com/api/data/v9.2/contacts?$skiptoken=1",
            "paging": {"next": {"link": "https://contoso.crm4.dynamics.com/crm/v3/objects/contacts?after=2"}},
            "value": [{"name": "https://contoso.crm4.dynamics.com"}],
            "n": 1
        });
        assert_eq!(rw().rewrite_json(&mut v), 3);
        assert!(!v.to_string().contains("dynamics.com"));
    }

    #[test]
    fn an_escaped_authority_may_be_a_link() {
        let r = rw();
        let body = br#"{"next":"https://cont\u006fso.crm4.dynamics.com/x"}"#;
        assert!(!r.may_link(body));
        assert!(r.may_link_json(body));
        assert!(!r.may_link_json(br#"{"next":"/x"}"#));
    }

    #[test]
    fn bodies_without_the_upstream_authority_are_skipped() {
        let r = rw();
        assert!(r.may_link(br#"{"l":"https://CONTOSO.crm4.dynamics.com/x"}"#));
        assert!(r.may_link(br#"{"l":"https:\/\/contoso.crm4.dynamics.com\/x"}"#));
        assert!(!r.may_link(br#"{"l":"https://other.example/x","n":1}"#));
    }

    #[test]
    fn headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "odata-entityid",
            "https://contoso.crm4.dynamics.com/api/data/v9.2/contacts(1)"
                .parse()
                .expect("v"),
        );
        h.insert("location", "/relative".parse().expect("v"));
        assert_eq!(rw().rewrite_headers(&mut h), 1);
        assert_eq!(
            h["odata-entityid"],
            "https://zweck.example:8443/api/data/v9.2/contacts(1)"
        );
        assert_eq!(h["location"], "/relative");
    }
}
