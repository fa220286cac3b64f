//! Per-dialect header allowlists, both directions.
//!
//! Personal data does not only travel in bodies: CRMs echo record values into debug and error
//! headers, SDKs add tracing headers with user ids, and clients send cookies. So headers pass
//! only when a dialect's allowlist names them (CRM-APIS.md §1.9, §2.8, §3.7); everything else
//! is dropped. The lists are data ([`allowlist`]) so docs and `policy explain` can print them.
//!
//! What is deliberately *not* on any list, because the pipeline sets it itself:
//! - `authorization` and every `zweck-*` header: the app's credential never reaches the CRM;
//!   Zweck injects the upstream's own credential *after* filtering.
//! - `accept-encoding` (request): Zweck asks only for codings it can decode
//!   ([`super::encoding::acceptable_encodings`]).
//! - `host`, hop-by-hop headers (`connection`, `transfer-encoding`, `te`, `upgrade`, ...):
//!   hyper and the upstream client own framing.
//!
//! `content-length` and `content-encoding` are allowed in both directions: they describe the
//! bytes as forwarded, and the pipeline rewrites both whenever it changes a body.
//! Response `location` and `odata-entityid` hold absolute upstream URLs that the links phase
//! rewrites to Zweck's public URL. They name the record a write created or changed, and pass
//! only when their last segment addresses it by its id (a Salesforce id, a HubSpot number, a
//! Dataverse `set(GUID)`): a CRM that answered with an alternate key
//! (`contacts(emailaddress1='…')`) would put a field's value in a header no policy reads, so
//! such a link is dropped ([`filter_record_links`]).
//!
//! The other headers SDKs read carry numbers, cursors or tags, no field values:
//! `Sforce-Limit-Info` (API usage), `Sforce-Locator` (an opaque cursor),
//! `Sforce-NumberOfRecords` (set by Zweck to the rows delivered), `X-HubSpot-RateLimit-*`,
//! `Preference-Applied` (the preferences the CRM applied), `ETag` (a record version).

use http::header::HeaderName;
use http::HeaderMap;

use crate::dialect::Dialect;

/// One allowlist entry. Names are lowercase, as `http` stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRule {
    /// This exact header name.
    Exact(&'static str),
    /// Every header whose name starts with this prefix (e.g. `x-ms-ratelimit-`).
    Prefix(&'static str),
}

impl HeaderRule {
    /// Whether this rule admits `name` (lowercase).
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HeaderRule::Exact(exact) => name == *exact,
            HeaderRule::Prefix(prefix) => name.starts_with(prefix) && name.len() > prefix.len(),
        }
    }
}

/// The headers a dialect lets through, per direction.
#[derive(Debug, Clone, Copy)]
pub struct Allowlist {
    /// App -> CRM.
    pub request: &'static [HeaderRule],
    /// CRM -> app.
    pub response: &'static [HeaderRule],
}

impl Allowlist {
    /// Whether a request header may reach the CRM.
    pub fn allows_request(&self, name: &str) -> bool {
        self.request.iter().any(|rule| rule.matches(name))
    }

    /// Whether a response header may reach the app.
    pub fn allows_response(&self, name: &str) -> bool {
        self.response.iter().any(|rule| rule.matches(name))
    }
}

use HeaderRule::{Exact, Prefix};

/// Generic JSON APIs: content negotiation, framing and conditional requests only.
const GENERIC: Allowlist = Allowlist {
    request: &[
        Exact("accept"),
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
        Exact("if-match"),
        Exact("if-none-match"),
        Exact("if-modified-since"),
    ],
    response: &[
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
        Exact("etag"),
        Exact("last-modified"),
        Exact("location"),
        Exact("retry-after"),
    ],
};

/// Salesforce REST, Composite and Bulk API 2.0 (CRM-APIS.md §1.9).
const SALESFORCE: Allowlist = Allowlist {
    request: &[
        Exact("accept"),
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
        Exact("sforce-query-options"),
        Exact("sforce-call-options"),
        Exact("if-match"),
        Exact("if-none-match"),
        Exact("if-modified-since"),
        Exact("if-unmodified-since"),
        Exact("x-prettyprint"),
    ],
    response: &[
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
        Exact("sforce-limit-info"),
        Exact("sforce-locator"),
        Exact("sforce-numberofrecords"),
        Exact("location"),
        Exact("etag"),
        Exact("last-modified"),
        Exact("retry-after"),
    ],
};

/// HubSpot CRM v3 (CRM-APIS.md §2.7, §2.8).
const HUBSPOT: Allowlist = Allowlist {
    request: &[
        Exact("accept"),
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
    ],
    response: &[
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
        Exact("location"),
        Exact("retry-after"),
        Exact("x-hubspot-correlation-id"),
        Prefix("x-hubspot-ratelimit-"),
    ],
};

/// Dynamics 365 / Dataverse Web API (CRM-APIS.md §3.6, §3.7).
const DYNAMICS: Allowlist = Allowlist {
    request: &[
        Exact("accept"),
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
        Exact("odata-maxversion"),
        Exact("odata-version"),
        Exact("prefer"),
        Exact("if-match"),
        Exact("if-none-match"),
    ],
    response: &[
        Exact("content-type"),
        Exact("content-length"),
        Exact("content-encoding"),
        Exact("odata-entityid"),
        Exact("odata-version"),
        Exact("location"),
        Exact("preference-applied"),
        Exact("etag"),
        Exact("retry-after"),
        Exact("x-ms-service-request-id"),
        Prefix("x-ms-ratelimit-"),
    ],
};

/// The allowlists of a dialect.
pub fn allowlist(dialect: Dialect) -> &'static Allowlist {
    match dialect {
        Dialect::Salesforce => &SALESFORCE,
        Dialect::HubSpot => &HUBSPOT,
        Dialect::Dynamics => &DYNAMICS,
        Dialect::Generic => &GENERIC,
    }
}

/// Drops every request header the dialect does not allow. Returns how many distinct header
/// names were removed (for metrics; the names themselves may be anything a client invents).
pub fn filter_request_headers(dialect: Dialect, headers: &mut HeaderMap) -> usize {
    let list = allowlist(dialect);
    retain(headers, |name| list.allows_request(name))
}

/// Drops every response header the dialect does not allow, and record links that do not
/// address their record by id ([`filter_record_links`]). Returns how many distinct header
/// names were removed.
pub fn filter_response_headers(dialect: Dialect, headers: &mut HeaderMap) -> usize {
    let list = allowlist(dialect);
    retain(headers, |name| list.allows_response(name)) + filter_record_links(dialect, headers)
}

/// The response headers that name the record a write created or changed (names, not strings:
/// a string is parsed into a name again by every lookup).
static RECORD_LINKS: [HeaderName; 2] = [
    http::header::LOCATION,
    HeaderName::from_static("odata-entityid"),
];

/// Drops `Location` and `OData-EntityId` values whose last path segment is not a record id of
/// the dialect (generic upstreams are not checked: they have no id form). Returns how many
/// header names were removed.
pub fn filter_record_links(dialect: Dialect, headers: &mut HeaderMap) -> usize {
    if dialect == Dialect::Generic {
        return 0;
    }
    let mut removed = 0;
    for name in &RECORD_LINKS {
        let ok = headers
            .get_all(name)
            .iter()
            .all(|v| v.to_str().is_ok_and(|v| addresses_by_id(dialect, v)));
        if !ok {
            headers.remove(name);
            removed += 1;
            tracing::info!(
                header = name.as_str(),
                "a record link that is no id was dropped"
            );
        }
    }
    removed
}

/// Whether a link's last path segment is a record id: Salesforce 15 or 18 alphanumerics,
/// HubSpot digits, Dataverse `entityset(GUID)`.
fn addresses_by_id(dialect: Dialect, link: &str) -> bool {
    let path = link.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    match dialect {
        Dialect::Salesforce => matches!(last.len(), 15 | 18) && alnum(last),
        Dialect::HubSpot => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
        Dialect::Dynamics => last
            .split_once('(')
            .and_then(|(set, key)| Some((set, key.strip_suffix(')')?)))
            .is_some_and(|(set, key)| !set.is_empty() && is_guid(key.trim_matches(['{', '}']))),
        Dialect::Generic => true,
    }
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn retain(headers: &mut HeaderMap, keep: impl Fn(&str) -> bool) -> usize {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| !keep(name.as_str()))
        .cloned()
        .collect();
    for name in &doomed {
        headers.remove(name);
    }
    doomed.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const ALL: [Dialect; 4] = [
        Dialect::Salesforce,
        Dialect::HubSpot,
        Dialect::Dynamics,
        Dialect::Generic,
    ];

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn salesforce_request() {
        let mut headers = map(&[
            ("Accept", "application/json"),
            ("Sforce-Query-Options", "batchSize=1000"),
            ("Authorization", "Bearer app-token"),
            ("Zweck-Purpose", "newsletter"),
            ("Cookie", "sid=1"),
            ("X-Debug-User", "jane@example.com"),
            ("Accept-Encoding", "gzip"),
            ("If-Match", "\"1\""),
        ]);
        let removed = filter_request_headers(Dialect::Salesforce, &mut headers);
        assert_eq!(removed, 5);
        assert_eq!(
            names(&headers),
            ["accept", "if-match", "sforce-query-options"]
        );
    }

    #[test]
    fn salesforce_response() {
        let mut headers = map(&[
            ("Content-Type", "text/csv"),
            ("Sforce-Locator", "null"),
            ("Sforce-NumberOfRecords", "2"),
            ("Sforce-Limit-Info", "api-usage=18/5000"),
            ("Set-Cookie", "BrowserId=x"),
            ("X-SFDC-Request-Id", "abc"),
            ("Strict-Transport-Security", "max-age=1"),
        ]);
        filter_response_headers(Dialect::Salesforce, &mut headers);
        assert_eq!(
            names(&headers),
            [
                "content-type",
                "sforce-limit-info",
                "sforce-locator",
                "sforce-numberofrecords"
            ]
        );
    }

    #[test]
    fn hubspot_ratelimit_prefix() {
        let mut headers = map(&[
            ("X-HubSpot-RateLimit-Daily", "250000"),
            ("X-HubSpot-RateLimit-Daily-Remaining", "249999"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ("X-HubSpot-RateLimit-", "bare prefix"),
            ("X-HubSpot-Debug", "email=jane@example.com"),
            ("Content-Type", "application/json"),
        ]);
        filter_response_headers(Dialect::HubSpot, &mut headers);
        assert_eq!(
            names(&headers),
            [
                "content-type",
                "x-hubspot-ratelimit-daily",
                "x-hubspot-ratelimit-daily-remaining",
                "x-hubspot-ratelimit-interval-milliseconds"
            ]
        );
    }

    #[test]
    fn dynamics_both_ways() {
        let mut request = map(&[
            ("OData-MaxVersion", "4.0"),
            ("OData-Version", "4.0"),
            ("Prefer", "odata.maxpagesize=500"),
            ("MSCRMCallerID", "00000000-0000-0000-0000-000000000001"),
            ("X-HTTP-Method", "DELETE"),
        ]);
        filter_request_headers(Dialect::Dynamics, &mut request);
        assert_eq!(
            names(&request),
            ["odata-maxversion", "odata-version", "prefer"]
        );
        let mut response = map(&[
            ("x-ms-ratelimit-burst-remaining-xrm-requests", "5999"),
            ("x-ms-ratelimit-time-remaining-xrm-requests", "1199"),
            (
                "OData-EntityId",
                "https://org.crm4.dynamics.com/api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-000000000001)",
            ),
            ("Preference-Applied", "odata.maxpagesize=500"),
            ("REQ_ID", "x"),
            ("x-ms-diagnostics", "user jane"),
        ]);
        filter_response_headers(Dialect::Dynamics, &mut response);
        assert_eq!(
            names(&response),
            [
                "odata-entityid",
                "preference-applied",
                "x-ms-ratelimit-burst-remaining-xrm-requests",
                "x-ms-ratelimit-time-remaining-xrm-requests"
            ]
        );
    }

    #[test]
    fn record_links_pass_only_when_they_address_a_record_by_id() {
        let cases = [
            (Dialect::Dynamics, "odata-entityid", "https://org.crm4.dynamics.com/api/data/v9.2/contacts(6f0c1a2b-0000-4000-8000-000000000001)", true),
            (Dialect::Dynamics, "odata-entityid", "https://zweck.test/api/data/v9.2/contacts({6F0C1A2B-0000-4000-8000-000000000001})", true),
            (Dialect::Dynamics, "odata-entityid", "https://org.crm4.dynamics.com/api/data/v9.2/contacts(emailaddress1='jane@example.com')", false),
            (Dialect::Dynamics, "location", "https://org/api/data/v9.2/contacts(firstname='Jane',lastname='Doe')", false),
            (Dialect::Salesforce, "location", "/services/data/v66.0/sobjects/Contact/003Fict00000001AAA", true),
            (Dialect::Salesforce, "location", "/services/data/v66.0/sobjects/Contact/Email/jane@example.com", false),
            (Dialect::HubSpot, "location", "https://api.hubapi.com/crm/v3/objects/contacts/51000001", true),
            (Dialect::HubSpot, "location", "https://api.hubapi.com/crm/v3/objects/contacts/jane@example.com?idProperty=email", false),
        ];
        for (dialect, name, value, passes) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).expect("value"));
            filter_response_headers(dialect, &mut headers);
            assert_eq!(headers.contains_key(name), passes, "{dialect}: {value}");
        }
        // one bad value of several takes the header with it
        let mut headers = map(&[
            (
                "location",
                "/services/data/v66.0/sobjects/Contact/003Fict00000001AAA",
            ),
            ("location", "/services/data/v66.0/sobjects/Contact/Email/x"),
        ]);
        assert_eq!(filter_record_links(Dialect::Salesforce, &mut headers), 1);
        assert!(headers.is_empty());
    }

    #[test]
    fn multi_valued_headers_go_whole() {
        let mut headers = map(&[
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("ETag", "\"x\""),
        ]);
        let removed = filter_response_headers(Dialect::Generic, &mut headers);
        assert_eq!(removed, 1);
        assert_eq!(names(&headers), ["etag"]);
    }

    #[test]
    fn credentials_and_framing_never_pass() {
        for dialect in ALL {
            let list = allowlist(dialect);
            for name in [
                "authorization",
                "proxy-authorization",
                "cookie",
                "set-cookie",
                "zweck-purpose",
                "zweck-api-key",
                "host",
                "connection",
                "transfer-encoding",
                "te",
                "upgrade",
                "accept-encoding",
                "x-http-method-override",
                "forwarded",
                "x-forwarded-for",
            ] {
                assert!(!list.allows_request(name), "{dialect}: request {name}");
                assert!(!list.allows_response(name), "{dialect}: response {name}");
            }
        }
    }

    #[test]
    fn lists_are_lowercase_and_unique() {
        for dialect in ALL {
            let list = allowlist(dialect);
            for rules in [list.request, list.response] {
                let mut seen = std::collections::HashSet::new();
                for rule in rules {
                    let (HeaderRule::Exact(name) | HeaderRule::Prefix(name)) = rule;
                    assert_eq!(*name, name.to_ascii_lowercase());
                    assert!(HeaderName::from_bytes(name.as_bytes()).is_ok(), "{name}");
                    assert!(seen.insert(*name), "{dialect}: duplicate {name}");
                }
            }
        }
    }

    #[test]
    fn content_negotiation_passes_everywhere() {
        for dialect in ALL {
            let list = allowlist(dialect);
            assert!(list.allows_request("content-type"));
            assert!(list.allows_request("accept"));
            assert!(list.allows_response("content-type"));
            assert!(list.allows_response("retry-after"));
        }
    }
}
