//! What a budget says on the wire: `RateLimit` headers, and the CRM-native shapes of its
//! refusals (`error.rs`, the one place errors become responses, sends them).
//!
//! Headers follow the IETF httpapi ratelimit-headers draft in its structured-field form:
//! `RateLimit-Policy: "export";q=50000;w=3600` (quota and window) and
//! `RateLimit: "export";r=123;t=10` (remaining and seconds until full). A class sub-limit is
//! named `"export-<class>"`.
//!
//! Refusals can copy the CRM's own throttle shape (CRM-APIS.md §1.8, §2.7, §3.6), because
//! the official SDKs decide whether and how long to back off from exactly that shape:
//! Salesforce 403 `REQUEST_LIMIT_EXCEEDED`, HubSpot 429 with a `policyName`, Dataverse 429
//! with `0x80072322` and `Retry-After`. The default is a 429 problem+json (`error.rs`). A
//! page that can never fit (over the burst, or a closed class) is a 403 whose body names the
//! cap, in no style a throttle: retrying it would only repeat the refusal. A shared store
//! that is down (bulk exports fail closed) is a 503 problem with `Retry-After`.

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::json;

use super::{Allowance, Exhausted};
use crate::dialect::Dialect;
use crate::policy::RouteClass;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// How a refusal is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefusalStyle {
    /// RFC 9457 problem+json, the same in every dialect.
    #[default]
    Problem,
    /// The upstream CRM's own throttle response, so its SDKs back off as they would there.
    Vendor,
}

fn policy_name(class: Option<RouteClass>) -> &'static str {
    match class {
        None => "export",
        Some(RouteClass::Single) => "export-single",
        Some(RouteClass::List) => "export-list",
        Some(RouteClass::BulkExport) => "export-bulk_export",
    }
}

/// `"name";a=x;b=y`, the structured-field item both headers carry: written directly (every
/// governed response has two), not through `format!`.
fn item(name: &str, (a, x): (&str, u64), (b, y): (&str, u64)) -> Option<HeaderValue> {
    let (mut x_digits, mut y_digits) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (x, y) = (x_digits.format(x), y_digits.format(y));
    let mut s = String::with_capacity(name.len() + a.len() + b.len() + x.len() + y.len() + 6);
    for part in ["\"", name, "\";", a, "=", x, ";", b, "=", y] {
        s.push_str(part);
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
}

/// Whole seconds, rounded up: a client told "0" would retry at once.
fn secs_ceil(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Allowance {
    /// `RateLimit-Policy` and `RateLimit` for a governed response.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let name = policy_name(self.class);
        let mut out = Vec::with_capacity(2);
        if let Some(v) = item(name, ("q", self.limit), ("w", secs_ceil(self.window))) {
            out.push((RATELIMIT_POLICY, v));
        }
        if let Some(v) = item(name, ("r", self.remaining), ("t", secs_ceil(self.reset))) {
            out.push((RATELIMIT, v));
        }
        out
    }
}

impl Exhausted {
    /// `RateLimit-Policy`, `RateLimit` (nothing left) and, when waiting helps, `Retry-After`.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let name = policy_name(self.class);
        let mut out = Vec::with_capacity(3);
        if !self.window.is_zero() {
            if let Some(v) = item(name, ("q", self.limit), ("w", secs_ceil(self.window))) {
                out.push((RATELIMIT_POLICY, v));
            }
        }
        if let Some(secs) = self.retry_after_secs() {
            if let Some(v) = item(name, ("r", 0), ("t", secs)) {
                out.push((RATELIMIT, v));
            }
            if let Ok(v) = HeaderValue::from_str(itoa::Buffer::new().format(secs)) {
                out.push((RETRY_AFTER, v));
            }
        }
        out
    }

    /// The `Retry-After` seconds of a refusal that waiting helps (at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|w| secs_ceil(w).max(1))
    }

    /// A human sentence without field values: counts, class, seconds (the problem's
    /// `detail`).
    pub fn detail(&self) -> String {
        let scope = match self.class {
            None => "the export budget of this app and purpose".to_string(),
            Some(c) => format!("the {} export budget of this app and purpose", c.as_str()),
        };
        match self.retry_after {
            _ if self.store_unavailable => format!(
                "{scope} is kept in a shared store that cannot be reached; bulk exports wait for it"
            ),
            None if self.cap == 0 => format!("{scope} allows no records on this route"),
            None => format!(
                "a response of {} records can never fit {scope}: at most {} records per response; ask for smaller pages",
                self.requested, self.cap
            ),
            Some(w) => format!(
                "{scope} is used up ({} records per {} s); retry after {} s",
                self.limit,
                secs_ceil(self.window),
                secs_ceil(w).max(1)
            ),
        }
    }
}

/// The CRM's own throttle response for `e` in `dialect` (`budgets.refusal: vendor`): content
/// type and body, for `error.rs` to send with the status and headers of the refusal. `None`
/// where no CRM shape applies (a generic upstream, a shared store that is down): those are
/// answered as problem+json in every style. `request_id` is HubSpot's `correlationId`.
pub fn vendor_refusal(
    dialect: Dialect,
    e: &Exhausted,
    request_id: Option<&str>,
) -> Option<(&'static str, Vec<u8>)> {
    if e.store_unavailable {
        return None;
    }
    let detail = e.detail();
    let (content_type, body) = match dialect {
        Dialect::Salesforce => {
            let code = if e.is_retryable() {
                "REQUEST_LIMIT_EXCEEDED"
            } else {
                "LIMIT_EXCEEDED"
            };
            (
                "application/json;charset=UTF-8",
                json!([{ "message": format!("Zweck: {detail}"), "errorCode": code }]),
            )
        }
        Dialect::HubSpot => {
            let correlation = request_id.unwrap_or_default();
            let body = match e.retry_after {
                // The SDKs back off 10 s per attempt on TEN_SECONDLY_ROLLING and give up on
                // DAILY: a long wait is told as DAILY so they do not hammer.
                Some(w) if w <= std::time::Duration::from_secs(10) => json!({
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": correlation,
                    "policyName": "TEN_SECONDLY_ROLLING",
                }),
                Some(_) => json!({
                    "status": "error",
                    "message": "You have reached your daily limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": correlation,
                    "policyName": "DAILY",
                }),
                None => json!({
                    "status": "error",
                    "message": format!("Zweck: {detail}"),
                    "correlationId": correlation,
                    "category": "VALIDATION_ERROR",
                }),
            };
            ("application/json;charset=utf-8", body)
        }
        Dialect::Dynamics => {
            let (code, message) = match e.retry_after {
                Some(_) => (
                    "0x80072322",
                    format!(
                        "Number of records exceeded the limit of {} over time window of {} seconds.",
                        e.limit,
                        secs_ceil(e.window)
                    ),
                ),
                None => ("0x80040220", format!("Zweck: {detail}")),
            };
            (
                "application/json; odata.metadata=minimal",
                json!({ "error": { "code": code, "message": message } }),
            )
        }
        Dialect::Generic => return None,
    };
    Some((content_type, serde_json::to_vec(&body).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allowance_headers_are_structured_fields() {
        let a = Allowance {
            remaining: 123,
            limit: 50_000,
            window: Duration::from_secs(3600),
            reset: Duration::from_millis(9_001),
            class: None,
        };
        let h = a.headers();
        assert_eq!(h[0].0, "ratelimit-policy");
        assert_eq!(h[0].1, "\"export\";q=50000;w=3600");
        assert_eq!(h[1].0, "ratelimit");
        assert_eq!(h[1].1, "\"export\";r=123;t=10");
        let a = Allowance {
            class: Some(RouteClass::BulkExport),
            ..a
        };
        assert_eq!(a.headers()[1].1, "\"export-bulk_export\";r=123;t=10");
    }

    #[test]
    fn a_class_limit_is_named_after_its_class() {
        for c in [RouteClass::Single, RouteClass::List, RouteClass::BulkExport] {
            assert_eq!(policy_name(Some(c)), format!("export-{}", c.as_str()));
        }
    }
}
