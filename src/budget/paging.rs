//! Page-size capping: ask the CRM for no more records than the budget can pay for, and never
//! for more than it would send anyway.
//!
//! Charging is all-or-nothing, so a page larger than what is left would be fetched, filtered
//! and then refused whole. Asking for a smaller page up front turns that into a short page the
//! client simply follows with the next one. Each CRM spells "page size" differently
//! (CRM-APIS.md §1.4, §2.4, §3.4), and each sends a page of its own size when asked for none:
//!
//! | knob ([`PageKnob`]) | routes | range | without it |
//! |---|---|---|---|
//! | `Sforce-Query-Options: batchSize=N` | SOQL `query`/`queryAll` and their next pages | 200..2000 | 2,000 (the documented default and maximum) |
//! | `maxRecords=N` | Bulk API 2.0 results | 1.. | as many as fit (no bound) |
//! | `limit=N` | HubSpot lists | 1..100 | 10 |
//! | `Prefer: odata.maxpagesize=N` | Dataverse lists | 1..5000 | 5,000 |
//!
//! Rules: a cap only ever lowers the page the request would get (what it asked for, or the
//! CRM's size without a knob); a request whose page already fits what is left goes unchanged,
//! so no knob is added that was not needed (an org that pages smaller than documented is never
//! made to page larger). Other routes have no knob (sObject Collections, composite, `$batch`,
//! HubSpot search and batch read, whose sizes are in their bodies or the ids they name): the
//! charge after the response still refuses a page that does not fit.
//!
//! And a floor: a page is never cut below [`PAGE_FLOOR`] records (or below what the request
//! asked for, if that is smaller, or below the budget's largest page). Near the end of a budget
//! that refills slowly, lowering the size to what is left would turn an SDK's "get everything"
//! loop into a crawl of one-record pages that never ends and never backs off; instead the
//! request is refused with 429 and a `Retry-After` of when the floor fits again ([`Capped::Floor`]).
//! Salesforce cannot be asked for fewer than 200 records per SOQL batch: there a page between
//! the floor and 200 is fetched and may still be refused by the charge.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use percent_encoding::percent_decode_str;

use crate::dialect::Dialect;

/// The smallest page Zweck asks a CRM for when the budget is nearly spent (unless the request
/// itself asked for fewer, or the budget's largest page is smaller): below it, refuse and say
/// when to retry.
pub const PAGE_FLOOR: u64 = 10;

const SFORCE_QUERY_OPTIONS: &str = "sforce-query-options";
const SF_BATCH_MIN: u64 = 200;
const SF_BATCH_MAX: u64 = 2000;
const HUBSPOT_DEFAULT_LIMIT: u64 = 10;
const HUBSPOT_MAX_LIMIT: u64 = 100;
const DATAVERSE_MAX_PAGE: u64 = 5000;

/// Where a route's page size is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKnob {
    /// Salesforce SOQL: the `Sforce-Query-Options: batchSize=N` header.
    SforceBatchSize,
    /// Salesforce Bulk API 2.0 results: the `maxRecords` query parameter.
    BulkMaxRecords,
    /// HubSpot list endpoints: the `limit` query parameter.
    HubSpotLimit,
    /// Dataverse lists: the `Prefer: odata.maxpagesize=N` preference.
    ODataMaxPageSize,
}

impl PageKnob {
    /// The knob of a governed list route: `csv` for a Bulk results route, `tunnel` for a
    /// `$batch` or composite request (which has none). `path` is the canonical path.
    pub fn of(
        dialect: Dialect,
        method: &Method,
        path: &str,
        csv: bool,
        tunnel: bool,
    ) -> Option<PageKnob> {
        if method != Method::GET || tunnel {
            return None;
        }
        match dialect {
            Dialect::Salesforce if csv => Some(PageKnob::BulkMaxRecords),
            Dialect::Salesforce => {
                let mut rev = path.trim_end_matches('/').rsplit('/');
                let (last, before) = (rev.next().unwrap_or(""), rev.next().unwrap_or(""));
                let soql = |s: &str| s == "query" || s == "queryAll";
                (soql(last) || soql(before)).then_some(PageKnob::SforceBatchSize)
            }
            Dialect::HubSpot => Some(PageKnob::HubSpotLimit),
            Dialect::Dynamics => Some(PageKnob::ODataMaxPageSize),
            Dialect::Generic => None,
        }
    }

    /// The page the request gets as it stands: the size it asks for (clamped to what the CRM
    /// accepts), or the CRM's own size without one. `None` is no bound (Bulk results without
    /// `maxRecords`, or a size Zweck cannot read, which it replaces).
    pub fn page(self, headers: &HeaderMap, query: Option<&str>) -> Option<u64> {
        match self {
            PageKnob::SforceBatchSize => Some(
                sforce_batch_size(headers)
                    .unwrap_or(SF_BATCH_MAX)
                    .clamp(SF_BATCH_MIN, SF_BATCH_MAX),
            ),
            PageKnob::BulkMaxRecords => param_max(query, "maxRecords")?,
            PageKnob::HubSpotLimit => match param_max(query, "limit") {
                Some(asked) => asked.map(|n| n.clamp(1, HUBSPOT_MAX_LIMIT)),
                None => Some(HUBSPOT_DEFAULT_LIMIT),
            },
            PageKnob::ODataMaxPageSize => Some(
                odata_max_page_size(headers)
                    .unwrap_or(DATAVERSE_MAX_PAGE)
                    .clamp(1, DATAVERSE_MAX_PAGE),
            ),
        }
    }
}

/// What [`cap_page`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capped {
    /// The page fits what is left: the request goes as it is.
    Unchanged,
    /// The knob was lowered to what is left; the new query string (without `?`, `None` when
    /// there is none) for knobs in the query, headers were edited in place for the others.
    Lowered(Option<String>),
    /// Less is left than the floor: refuse until this many records fit (`Retry-After`).
    Floor(u64),
}

/// Caps the page a request asks for at `remaining` records (what the budget has left, never
/// more than its burst), following the module's rules; `largest` is the largest charge the
/// budget can ever take (its smallest burst), which bounds the floor. Call it on governed
/// `list` and `bulk_export` reads after a successful pre-check, not in shadow mode.
pub fn cap_page(
    knob: PageKnob,
    headers: &mut HeaderMap,
    query: Option<&str>,
    remaining: u64,
    largest: u64,
) -> Capped {
    let page = knob.page(headers, query);
    if page.is_some_and(|p| p <= remaining) {
        return Capped::Unchanged;
    }
    let floor = PAGE_FLOOR.min(page.unwrap_or(u64::MAX)).min(largest).max(1);
    if remaining < floor {
        return Capped::Floor(floor);
    }
    // here the page is larger than what is left (or unbounded)
    let size = remaining;
    match knob {
        PageKnob::SforceBatchSize => {
            set_sforce_batch_size(headers, size.clamp(SF_BATCH_MIN, SF_BATCH_MAX));
            Capped::Lowered(query.map(str::to_string))
        }
        PageKnob::ODataMaxPageSize => {
            set_odata_max_page_size(headers, size.clamp(1, DATAVERSE_MAX_PAGE));
            Capped::Lowered(query.map(str::to_string))
        }
        PageKnob::BulkMaxRecords => {
            Capped::Lowered(Some(set_param(query.unwrap_or(""), "maxRecords", size)))
        }
        PageKnob::HubSpotLimit => Capped::Lowered(Some(set_param(
            query.unwrap_or(""),
            "limit",
            size.clamp(1, HUBSPOT_MAX_LIMIT),
        ))),
    }
}

/// Splits `a=1&b=2` into (decoded key, raw pair) without touching the bytes of other pairs.
fn pairs(query: &str) -> impl Iterator<Item = (String, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let key = percent_decode_str(&raw_key.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        (key, pair)
    })
}

/// The largest value of every occurrence of `name`: `None` when absent, `Some(None)` when
/// one of them is not a positive number (Zweck does not guess what the CRM makes of it).
fn param_max(query: Option<&str>, name: &str) -> Option<Option<u64>> {
    let mut found: Option<Option<u64>> = None;
    for (key, pair) in pairs(query.unwrap_or("")) {
        if key != name {
            continue;
        }
        let value = pair.split_once('=').map_or("", |(_, v)| v);
        let n = value.trim().parse::<u64>().ok().filter(|n| *n > 0);
        found = Some(match (found, n) {
            (None, n) => n,
            (Some(Some(a)), Some(b)) => Some(a.max(b)),
            (Some(_), _) => None,
        });
    }
    found
}

/// Sets every occurrence of `name` to `value` (encoded or repeated keys included), or appends
/// `name=value` when absent.
fn set_param(query: &str, name: &str, value: u64) -> String {
    let mut out = String::with_capacity(query.len() + name.len() + 8);
    let mut seen = false;
    for (key, pair) in pairs(query) {
        if !out.is_empty() {
            out.push('&');
        }
        if key == name {
            seen = true;
            out.push_str(name);
            out.push('=');
            out.push_str(&value.to_string());
        } else {
            out.push_str(pair);
        }
    }
    if !seen {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&value.to_string());
    }
    out
}

/// The options of `Sforce-Query-Options` (all values, comma-separated), trimmed.
fn sforce_options(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SFORCE_QUERY_OPTIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_batch_size(opt: &str) -> Option<&str> {
    opt.split_once('=')
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
        .map(|(_, v)| v.trim())
}

/// The batch size the request asks for; an unreadable one counts as none (the CRM's default,
/// which is also its maximum).
fn sforce_batch_size(headers: &HeaderMap) -> Option<u64> {
    sforce_options(headers)
        .iter()
        .filter_map(|o| is_batch_size(o))
        .filter_map(|v| v.parse::<u64>().ok())
        .max()
}

/// `Sforce-Query-Options: batchSize=N`, other options kept.
fn set_sforce_batch_size(headers: &mut HeaderMap, size: u64) {
    let mut options: Vec<String> = sforce_options(headers)
        .into_iter()
        .filter(|o| is_batch_size(o).is_none())
        .collect();
    options.push(format!("batchSize={size}"));
    if let Ok(v) = HeaderValue::from_str(&options.join(", ")) {
        headers.insert(HeaderName::from_static(SFORCE_QUERY_OPTIONS), v);
    }
}

/// The preferences of `Prefer` (RFC 7240; `http` has no constant for it).
fn preferences(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_preferences)
        .collect()
}

fn is_max_page_size(pref: &str) -> Option<&str> {
    let (k, v) = pref.split_once('=').unwrap_or((pref, ""));
    k.trim()
        .eq_ignore_ascii_case("odata.maxpagesize")
        .then(|| v.trim().trim_matches('"'))
}

/// The page size the request prefers; an unreadable one counts as none.
fn odata_max_page_size(headers: &HeaderMap) -> Option<u64> {
    preferences(headers)
        .iter()
        .filter_map(|p| is_max_page_size(p))
        .filter_map(|v| v.parse::<u64>().ok())
        .max()
}

/// `Prefer: odata.maxpagesize=N`, other preferences kept.
fn set_odata_max_page_size(headers: &mut HeaderMap, size: u64) {
    let mut prefs: Vec<String> = preferences(headers)
        .into_iter()
        .filter(|p| is_max_page_size(p).is_none())
        .collect();
    prefs.push(format!("odata.maxpagesize={size}"));
    if let Ok(v) = HeaderValue::from_str(&prefs.join(",")) {
        headers.insert(HeaderName::from_static("prefer"), v);
    }
}

/// Splits a `Prefer` value at commas outside quoted strings.
fn split_preferences(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    const BIG: u64 = 100_000;

    #[test]
    fn knobs_by_route() {
        let get = Method::GET;
        let k = |d, m: &Method, p, csv, tunnel| PageKnob::of(d, m, p, csv, tunnel);
        let sf = Dialect::Salesforce;
        assert_eq!(
            k(sf, &get, "/services/data/v66.0/query", false, false),
            Some(PageKnob::SforceBatchSize)
        );
        assert_eq!(
            k(sf, &get, "/services/data/v66.0/query/", false, false),
            Some(PageKnob::SforceBatchSize)
        );
        assert_eq!(
            k(
                sf,
                &get,
                "/services/data/v66.0/queryAll/01gX-200",
                false,
                false
            ),
            Some(PageKnob::SforceBatchSize)
        );
        assert_eq!(
            k(
                sf,
                &get,
                "/services/data/v66.0/jobs/query/750X/results",
                true,
                false
            ),
            Some(PageKnob::BulkMaxRecords)
        );
        // no knob: collections, basic information, composite, result pages
        assert_eq!(
            k(
                sf,
                &get,
                "/services/data/v66.0/composite/sobjects/Contact",
                false,
                false
            ),
            None
        );
        assert_eq!(
            k(
                sf,
                &get,
                "/services/data/v66.0/sobjects/Contact",
                false,
                false
            ),
            None
        );
        assert_eq!(
            k(
                sf,
                &Method::POST,
                "/services/data/v66.0/composite",
                false,
                true
            ),
            None
        );
        assert_eq!(
            k(
                sf,
                &get,
                "/services/data/v66.0/jobs/query/750X/resultPages",
                false,
                false
            ),
            None
        );
        assert_eq!(
            k(
                Dialect::HubSpot,
                &get,
                "/crm/v3/objects/contacts",
                false,
                false
            ),
            Some(PageKnob::HubSpotLimit)
        );
        assert_eq!(
            k(
                Dialect::HubSpot,
                &Method::POST,
                "/crm/v3/objects/contacts/search",
                false,
                false
            ),
            None
        );
        assert_eq!(
            k(
                Dialect::Dynamics,
                &get,
                "/api/data/v9.2/contacts",
                false,
                false
            ),
            Some(PageKnob::ODataMaxPageSize)
        );
        assert_eq!(
            k(
                Dialect::Dynamics,
                &Method::POST,
                "/api/data/v9.2/$batch",
                false,
                true
            ),
            None
        );
        assert_eq!(k(Dialect::Generic, &get, "/x", false, false), None);
    }

    #[test]
    fn no_knob_is_added_when_the_page_fits() {
        // the issue: batchSize=2000 added to a request that had none
        let mut m = h(&[]);
        assert_eq!(
            cap_page(PageKnob::SforceBatchSize, &mut m, Some("q=x"), 5000, BIG),
            Capped::Unchanged
        );
        assert!(m.is_empty());
        let mut m = h(&[]);
        assert_eq!(
            cap_page(PageKnob::ODataMaxPageSize, &mut m, None, 5000, BIG),
            Capped::Unchanged
        );
        assert!(m.is_empty());
        let mut m = h(&[]);
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, Some("after=5"), 40, BIG),
            Capped::Unchanged
        );
        let mut m = h(&[("sforce-query-options", "batchSize=300")]);
        assert_eq!(
            cap_page(PageKnob::SforceBatchSize, &mut m, Some("q=x"), 1000, BIG),
            Capped::Unchanged
        );
        assert_eq!(m["sforce-query-options"], "batchSize=300");
        let mut m = h(&[]);
        assert_eq!(
            cap_page(
                PageKnob::BulkMaxRecords,
                &mut m,
                Some("maxRecords=10"),
                1234,
                BIG
            ),
            Capped::Unchanged
        );
    }

    #[test]
    fn salesforce_batch_size_is_lowered_only_below_what_the_page_would_be() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page(PageKnob::SforceBatchSize, &mut m, Some("q=x"), 750, BIG),
            Capped::Lowered(Some("q=x".into()))
        );
        assert_eq!(m["sforce-query-options"], "batchSize=750");
        let mut m = h(&[("sforce-query-options", "batchSize=1500, ignored=1")]);
        cap_page(PageKnob::SforceBatchSize, &mut m, Some("q=x"), 1000, BIG);
        assert_eq!(m["sforce-query-options"], "ignored=1, batchSize=1000");
        // never below Salesforce's minimum of 200 (the charge refuses a page that then does not fit)
        let mut m = h(&[]);
        cap_page(PageKnob::SforceBatchSize, &mut m, Some("q=x"), 50, BIG);
        assert_eq!(m["sforce-query-options"], "batchSize=200");
    }

    #[test]
    fn bulk_results_without_max_records_are_unbounded_so_get_one() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page(PageKnob::BulkMaxRecords, &mut m, None, 1234, BIG),
            Capped::Lowered(Some("maxRecords=1234".into()))
        );
        assert_eq!(
            cap_page(
                PageKnob::BulkMaxRecords,
                &mut m,
                Some("locator=abc&maxRecords=50000"),
                1234,
                BIG
            ),
            Capped::Lowered(Some("locator=abc&maxRecords=1234".into()))
        );
    }

    #[test]
    fn hubspot_limit_is_lowered_or_added_only_when_it_must() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page(
                PageKnob::HubSpotLimit,
                &mut m,
                Some("limit=100&after=5"),
                40,
                BIG
            ),
            Capped::Lowered(Some("limit=40&after=5".into()))
        );
        // HubSpot's own page (10) fits 12: unchanged; with 9 left it would be cut below the floor
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, None, 12, BIG),
            Capped::Unchanged
        );
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, None, 9, BIG),
            Capped::Floor(10)
        );
        assert!(m.is_empty());
    }

    #[test]
    fn below_the_floor_the_request_is_refused_not_crawled() {
        let mut m = h(&[]);
        // get_all asks for 100; 3 left: not a page of 3 (then 1, then 1...), a 429
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, Some("limit=100"), 3, BIG),
            Capped::Floor(PAGE_FLOOR)
        );
        assert_eq!(
            cap_page(PageKnob::ODataMaxPageSize, &mut m, None, 0, BIG),
            Capped::Floor(PAGE_FLOOR)
        );
        assert_eq!(
            cap_page(PageKnob::BulkMaxRecords, &mut m, None, 9, BIG),
            Capped::Floor(PAGE_FLOOR)
        );
        assert!(m.is_empty());
        // a request that asks for fewer than the floor has that as its floor
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, Some("limit=4"), 3, BIG),
            Capped::Floor(4)
        );
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, Some("limit=4"), 4, BIG),
            Capped::Unchanged
        );
        // a budget whose largest page is below the floor: its own burst is the floor
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, Some("limit=100"), 5, 5),
            Capped::Lowered(Some("limit=5".into()))
        );
    }

    #[test]
    fn encoded_repeated_or_unreadable_sizes_cannot_slip_past_the_cap() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page(
                PageKnob::HubSpotLimit,
                &mut m,
                Some("%6Cimit=100&limit=9"),
                20,
                BIG
            ),
            Capped::Lowered(Some("limit=20&limit=20".into()))
        );
        assert_eq!(
            cap_page(PageKnob::HubSpotLimit, &mut m, Some("limit=abc"), 20, BIG),
            Capped::Lowered(Some("limit=20".into()))
        );
        assert_eq!(
            cap_page(
                PageKnob::BulkMaxRecords,
                &mut m,
                Some("maxRecords=x&maxRecords=5"),
                20,
                BIG
            ),
            Capped::Lowered(Some("maxRecords=20&maxRecords=20".into()))
        );
    }

    #[test]
    fn dataverse_prefer_is_lowered_and_other_preferences_kept() {
        let mut m = h(&[(
            "prefer",
            "odata.include-annotations=\"*,x\", odata.maxpagesize=5000",
        )]);
        let q = cap_page(
            PageKnob::ODataMaxPageSize,
            &mut m,
            Some("$select=fullname"),
            250,
            BIG,
        );
        assert_eq!(q, Capped::Lowered(Some("$select=fullname".into())));
        assert_eq!(
            m["prefer"],
            "odata.include-annotations=\"*,x\",odata.maxpagesize=250"
        );
        let mut m = h(&[]);
        assert_eq!(
            cap_page(PageKnob::ODataMaxPageSize, &mut m, None, 999_999, BIG),
            Capped::Unchanged
        );
        assert!(m.is_empty());
    }
}
