//! Page-size capping: ask the CRM for no more records than the budget can pay for.
//!
//! Charging is all-or-nothing, so a page larger than what is left would be fetched, filtered
//! and then refused whole. Asking for a smaller page up front turns that into a short page the
//! client simply follows with the next one. Each CRM spells "page size" differently
//! (CRM-APIS.md §1.4, §2.4, §3.4):
//!
//! | dialect    | knob                                   | range      |
//! |------------|----------------------------------------|------------|
//! | Salesforce | `Sforce-Query-Options: batchSize=N`     | 200..2000  |
//! | Salesforce | `maxRecords=N` (Bulk 2.0 results)       | 1..        |
//! | HubSpot    | `limit=N` (list endpoints)              | 1..100     |
//! | Dataverse  | `Prefer: odata.maxpagesize=N`           | 1..5000    |
//!
//! Capping only ever lowers a size the client asked for. Salesforce cannot be asked for fewer
//! than 200 records per SOQL batch, and HubSpot's search and batch-read endpoints carry
//! `limit` in the JSON body, which this function does not touch: in both cases the charge
//! after the response still refuses a page that does not fit.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;

use crate::dialect::Dialect;

const SFORCE_QUERY_OPTIONS: &str = "sforce-query-options";
const SF_BATCH_MIN: u64 = 200;
const SF_BATCH_MAX: u64 = 2000;
const HUBSPOT_DEFAULT_LIMIT: u64 = 10;
const DATAVERSE_MAX_PAGE: u64 = 5000;

/// Caps the page the request asks for at `max` records (what is left, which is never more
/// than the burst): edits `headers` in place and returns the new query string (without `?`;
/// `None` when there is none). Call it on `list` and `bulk_export` routes after a successful
/// pre-check, not in shadow mode. `max` of 0 is treated as 1: an empty budget is the
/// pre-check's business, not this function's.
///
/// Salesforce gets both knobs: the `batchSize` header (SOQL; ignored elsewhere) and, unless
/// the query is a SOQL `q=` or an sObject Collections `ids=` request, `maxRecords` (Bulk API
/// 2.0 results and result pages).
pub fn cap_page_size(
    dialect: Dialect,
    headers: &mut HeaderMap,
    query: Option<&str>,
    max: u64,
) -> Option<String> {
    let max = max.max(1);
    match dialect {
        Dialect::Salesforce => {
            cap_sforce_batch(headers, max);
            let soql_or_ids = query.is_some_and(|q| has_param(q, "q") || has_param(q, "ids"));
            if soql_or_ids {
                query.map(str::to_string)
            } else {
                Some(cap_param(query.unwrap_or(""), "maxRecords", max, None))
            }
        }
        Dialect::HubSpot => {
            let q = query.unwrap_or("");
            if has_param(q, "limit") || max < HUBSPOT_DEFAULT_LIMIT {
                Some(cap_param(q, "limit", max, Some(HUBSPOT_DEFAULT_LIMIT)))
            } else {
                query.map(str::to_string)
            }
        }
        Dialect::Dynamics => {
            cap_prefer_maxpagesize(headers, max.min(DATAVERSE_MAX_PAGE));
            query.map(str::to_string)
        }
        Dialect::Generic => query.map(str::to_string),
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

fn has_param(query: &str, name: &str) -> bool {
    pairs(query).any(|(k, _)| k == name)
}

/// Sets every occurrence of `name` to min(its value, max) (an unparsable value becomes max),
/// or appends `name=min(default, max)` when absent (`default` None: `max`).
fn cap_param(query: &str, name: &str, max: u64, default: Option<u64>) -> String {
    let mut out = String::with_capacity(query.len() + name.len() + 8);
    let mut seen = false;
    for (key, pair) in pairs(query) {
        if !out.is_empty() {
            out.push('&');
        }
        if key == name {
            seen = true;
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            let n = value.trim().parse::<u64>().ok().filter(|n| *n > 0);
            let capped = n.map_or(max, |n| n.min(max));
            out.push_str(name);
            out.push('=');
            out.push_str(&capped.to_string());
        } else {
            out.push_str(pair);
        }
    }
    if !seen {
        if !out.is_empty() {
            out.push('&');
        }
        let v = default.map_or(max, |d| d.min(max));
        out.push_str(name);
        out.push('=');
        out.push_str(&v.to_string());
    }
    out
}

/// `Sforce-Query-Options: batchSize=N`, lowering an existing batchSize, clamped to 200..2000;
/// other options in the header are kept.
fn cap_sforce_batch(headers: &mut HeaderMap, max: u64) {
    let name = HeaderName::from_static(SFORCE_QUERY_OPTIONS);
    let existing: Vec<String> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut asked = None;
    let mut others = Vec::new();
    for opt in existing {
        match opt.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("batchSize") => {
                asked = v.trim().parse::<u64>().ok();
            }
            _ => others.push(opt),
        }
    }
    let size = asked
        .unwrap_or(SF_BATCH_MAX)
        .min(max)
        .clamp(SF_BATCH_MIN, SF_BATCH_MAX);
    others.push(format!("batchSize={size}"));
    if let Ok(v) = HeaderValue::from_str(&others.join(", ")) {
        headers.insert(name, v);
    }
}

/// `Prefer: odata.maxpagesize=N`, lowering an existing one; other preferences are kept.
fn cap_prefer_maxpagesize(headers: &mut HeaderMap, max: u64) {
    // `http` has no constant for `Prefer` (RFC 7240).
    let name = HeaderName::from_static("prefer");
    let existing: Vec<String> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_preferences)
        .collect();
    let mut asked = None;
    let mut others = Vec::new();
    for pref in existing {
        let (k, v) = pref.split_once('=').unwrap_or((pref.as_str(), ""));
        if k.trim().eq_ignore_ascii_case("odata.maxpagesize") {
            asked = v.trim().trim_matches('"').parse::<u64>().ok();
        } else {
            others.push(pref);
        }
    }
    let size = asked.unwrap_or(DATAVERSE_MAX_PAGE).min(max).max(1);
    others.push(format!("odata.maxpagesize={size}"));
    if let Ok(v) = HeaderValue::from_str(&others.join(",")) {
        headers.insert(name, v);
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

    #[test]
    fn salesforce_soql_gets_the_header_only() {
        let mut m = h(&[]);
        let q = cap_page_size(
            Dialect::Salesforce,
            &mut m,
            Some("q=SELECT+Id+FROM+Contact"),
            750,
        );
        assert_eq!(q.as_deref(), Some("q=SELECT+Id+FROM+Contact"));
        assert_eq!(m["sforce-query-options"], "batchSize=750");
    }

    #[test]
    fn salesforce_batch_size_never_goes_below_200_or_above_2000() {
        let mut m = h(&[]);
        cap_page_size(Dialect::Salesforce, &mut m, Some("q=x"), 5);
        assert_eq!(m["sforce-query-options"], "batchSize=200");
        let mut m = h(&[]);
        cap_page_size(Dialect::Salesforce, &mut m, Some("q=x"), 50_000);
        assert_eq!(m["sforce-query-options"], "batchSize=2000");
    }

    #[test]
    fn salesforce_keeps_a_smaller_batch_size_the_client_asked_for() {
        let mut m = h(&[("sforce-query-options", "batchSize=300")]);
        cap_page_size(Dialect::Salesforce, &mut m, Some("q=x"), 1000);
        assert_eq!(m["sforce-query-options"], "batchSize=300");
        let mut m = h(&[("sforce-query-options", "batchSize=1500")]);
        cap_page_size(Dialect::Salesforce, &mut m, Some("q=x"), 1000);
        assert_eq!(m["sforce-query-options"], "batchSize=1000");
    }

    #[test]
    fn salesforce_bulk_results_get_max_records() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page_size(Dialect::Salesforce, &mut m, None, 1234).as_deref(),
            Some("maxRecords=1234")
        );
        let q = cap_page_size(
            Dialect::Salesforce,
            &mut m,
            Some("locator=abc&maxRecords=50000"),
            1234,
        );
        assert_eq!(q.as_deref(), Some("locator=abc&maxRecords=1234"));
        let q = cap_page_size(
            Dialect::Salesforce,
            &mut m,
            Some("locator=abc&maxRecords=10"),
            1234,
        );
        assert_eq!(q.as_deref(), Some("locator=abc&maxRecords=10"));
    }

    #[test]
    fn salesforce_collections_are_left_alone() {
        let mut m = h(&[]);
        let q = cap_page_size(Dialect::Salesforce, &mut m, Some("ids=a,b&fields=Id"), 1);
        assert_eq!(q.as_deref(), Some("ids=a,b&fields=Id"));
    }

    #[test]
    fn hubspot_limit_is_lowered_or_added_only_below_the_default() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page_size(Dialect::HubSpot, &mut m, Some("limit=100&after=5"), 40).as_deref(),
            Some("limit=40&after=5")
        );
        assert_eq!(
            cap_page_size(Dialect::HubSpot, &mut m, Some("after=5"), 40).as_deref(),
            Some("after=5")
        );
        assert_eq!(
            cap_page_size(Dialect::HubSpot, &mut m, Some("after=5"), 3).as_deref(),
            Some("after=5&limit=3")
        );
        assert_eq!(
            cap_page_size(Dialect::HubSpot, &mut m, None, 3).as_deref(),
            Some("limit=3")
        );
        assert!(m.is_empty());
    }

    #[test]
    fn encoded_or_repeated_keys_cannot_slip_past_the_cap() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page_size(Dialect::HubSpot, &mut m, Some("%6Cimit=100&limit=90"), 7).as_deref(),
            Some("limit=7&limit=7")
        );
        assert_eq!(
            cap_page_size(Dialect::HubSpot, &mut m, Some("limit=abc"), 7).as_deref(),
            Some("limit=7")
        );
    }

    #[test]
    fn dataverse_prefer_is_lowered_and_other_preferences_kept() {
        let mut m = h(&[(
            "prefer",
            "odata.include-annotations=\"*,x\", odata.maxpagesize=5000",
        )]);
        let q = cap_page_size(Dialect::Dynamics, &mut m, Some("$select=fullname"), 250);
        assert_eq!(q.as_deref(), Some("$select=fullname"));
        assert_eq!(
            m["prefer"],
            "odata.include-annotations=\"*,x\",odata.maxpagesize=250"
        );
        let mut m = h(&[]);
        cap_page_size(Dialect::Dynamics, &mut m, None, 999_999);
        assert_eq!(m["prefer"], "odata.maxpagesize=5000");
    }

    #[test]
    fn generic_is_untouched_and_zero_means_one() {
        let mut m = h(&[]);
        assert_eq!(
            cap_page_size(Dialect::Generic, &mut m, Some("a=1"), 0).as_deref(),
            Some("a=1")
        );
        assert!(m.is_empty());
        assert_eq!(
            cap_page_size(Dialect::HubSpot, &mut m, None, 0).as_deref(),
            Some("limit=1")
        );
    }
}
