//! What a budget says on the wire: `RateLimit` headers and refusals.
//!
//! Headers follow the IETF httpapi ratelimit-headers draft in its structured-field form:
//! `RateLimit-Policy: "export";q=50000;w=3600` (quota and window) and
//! `RateLimit: "export";r=123;t=10` (remaining and seconds until full). A class sub-limit is
//! named `"export-<class>"`.
//!
//! Refusals can copy the CRM's own throttle shape (CRM-APIS.md §1.8, §2.7, §3.6), because
//! the official SDKs decide whether and how long to back off from exactly that shape:
//! Salesforce 403 `REQUEST_LIMIT_EXCEEDED`, HubSpot 429 with a `policyName`, Dataverse 429
//! with `0x80072322` and `Retry-After`. The default is a 429 problem+json. A page that can
//! never fit (over the burst, or a closed class) is a 403 whose body names the cap, in no
//! style a throttle: retrying it would only repeat the refusal. A shared store that is down
//! (bulk exports fail closed) is a 503 problem with `Retry-After`.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use serde_json::json;

use super::{Allowance, Exhausted};
use crate::dialect::Dialect;
use crate::error::PROBLEM_TYPE_PREFIX;
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

fn policy_name(class: Option<RouteClass>) -> String {
    match class {
        None => "export".to_string(),
        Some(c) => format!("export-{}", c.as_str()),
    }
}

/// Whole seconds, rounded up: a client told "0" would retry at once.
fn secs_ceil(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_str(&s).ok()
}

impl Allowance {
    /// `RateLimit-Policy` and `RateLimit` for a governed response.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let name = policy_name(self.class);
        let mut out = Vec::with_capacity(2);
        if let Some(v) = value(format!(
            "\"{name}\";q={};w={}",
            self.limit,
            secs_ceil(self.window)
        )) {
            out.push((RATELIMIT_POLICY, v));
        }
        if let Some(v) = value(format!(
            "\"{name}\";r={};t={}",
            self.remaining,
            secs_ceil(self.reset)
        )) {
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
            if let Some(v) = value(format!(
                "\"{name}\";q={};w={}",
                self.limit,
                secs_ceil(self.window)
            )) {
                out.push((RATELIMIT_POLICY, v));
            }
        }
        if let Some(wait) = self.retry_after {
            let secs = secs_ceil(wait).max(1);
            if let Some(v) = value(format!("\"{name}\";r=0;t={secs}")) {
                out.push((RATELIMIT, v));
            }
            if let Some(v) = value(secs.to_string()) {
                out.push((RETRY_AFTER, v));
            }
        }
        out
    }

    /// The stable problem slug (`urn:zweck:problem:<slug>`).
    pub fn slug(&self) -> &'static str {
        if self.store_unavailable {
            "budget-store-unavailable"
        } else if self.retry_after.is_none() {
            "budget-page-over-cap"
        } else {
            "budget-exhausted"
        }
    }

    /// The HTTP status of the refusal in the given style.
    pub fn status(&self, dialect: Dialect, style: RefusalStyle) -> StatusCode {
        if self.store_unavailable {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        if self.retry_after.is_none() {
            return StatusCode::FORBIDDEN;
        }
        match (style, dialect) {
            (RefusalStyle::Vendor, Dialect::Salesforce) => StatusCode::FORBIDDEN,
            _ => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// A human sentence without field values: counts, class, seconds.
    fn detail(&self) -> String {
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

/// The refusal response for `e`: status, body and headers (`RateLimit*`, `Retry-After`).
/// `request_id` ties it to the logs (and is HubSpot's `correlationId`).
pub fn refusal_response(
    dialect: Dialect,
    style: RefusalStyle,
    e: &Exhausted,
    request_id: Option<&str>,
) -> Response<Bytes> {
    let status = e.status(dialect, style);
    let detail = e.detail();
    let vendor = style == RefusalStyle::Vendor && !e.store_unavailable;
    let (content_type, body) = match (vendor, dialect) {
        (true, Dialect::Salesforce) => {
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
        (true, Dialect::HubSpot) => {
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
        (true, Dialect::Dynamics) => {
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
        _ => {
            let title = match e.slug() {
                "budget-store-unavailable" => "Export budget store unavailable",
                "budget-page-over-cap" => "Page over the export budget cap",
                _ => "Export budget exhausted",
            };
            let mut problem = json!({
                "type": format!("{PROBLEM_TYPE_PREFIX}{}", e.slug()),
                "title": title,
                "status": status.as_u16(),
                "detail": detail,
                "cap": e.cap,
            });
            if let Some(c) = e.class {
                problem["class"] = json!(c.as_str());
            }
            if let Some(w) = e.retry_after {
                problem["retry_after"] = json!(secs_ceil(w).max(1));
            }
            if let Some(id) = request_id {
                problem["request_id"] = json!(id);
            }
            ("application/problem+json", problem)
        }
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = Response::new(Bytes::from(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (k, v) in e.headers() {
        h.insert(k, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spent(retry: Option<u64>) -> Exhausted {
        Exhausted {
            retry_after: retry.map(Duration::from_millis),
            cap: 5000,
            class: None,
            limit: 50_000,
            window: Duration::from_secs(3600),
            requested: 1,
            store_unavailable: false,
        }
    }

    fn json_of(r: &Response<Bytes>) -> serde_json::Value {
        serde_json::from_slice(r.body()).expect("json body")
    }

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
    fn default_refusal_is_a_429_problem_with_retry_after() {
        let r = refusal_response(
            Dialect::Salesforce,
            RefusalStyle::Problem,
            &spent(Some(1500)),
            Some("req-1"),
        );
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        assert_eq!(r.headers()["ratelimit"], "\"export\";r=0;t=2");
        assert_eq!(r.headers()["ratelimit-policy"], "\"export\";q=50000;w=3600");
        let v = json_of(&r);
        assert_eq!(v["type"], "urn:zweck:problem:budget-exhausted");
        assert_eq!(v["status"], 429);
        assert_eq!(v["request_id"], "req-1");
    }

    #[test]
    fn salesforce_vendor_refusal_is_403_request_limit_exceeded() {
        let r = refusal_response(
            Dialect::Salesforce,
            RefusalStyle::Vendor,
            &spent(Some(1000)),
            None,
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let v = json_of(&r);
        assert_eq!(v[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
        assert!(v[0]["message"].is_string());
        assert_eq!(r.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn hubspot_vendor_refusal_names_the_policy_sdks_back_off_on() {
        let r = refusal_response(
            Dialect::HubSpot,
            RefusalStyle::Vendor,
            &spent(Some(3000)),
            Some("c-1"),
        );
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let v = json_of(&r);
        assert_eq!(v["errorType"], "RATE_LIMIT");
        assert_eq!(v["policyName"], "TEN_SECONDLY_ROLLING");
        assert_eq!(
            v["message"],
            "You have reached your ten_secondly_rolling limit."
        );
        assert_eq!(v["correlationId"], "c-1");
        let r = refusal_response(
            Dialect::HubSpot,
            RefusalStyle::Vendor,
            &spent(Some(600_000)),
            None,
        );
        assert_eq!(json_of(&r)["policyName"], "DAILY");
    }

    #[test]
    fn dataverse_vendor_refusal_is_429_with_its_code() {
        let r = refusal_response(
            Dialect::Dynamics,
            RefusalStyle::Vendor,
            &spent(Some(30_000)),
            None,
        );
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[RETRY_AFTER], "30");
        assert_eq!(json_of(&r)["error"]["code"], "0x80072322");
    }

    #[test]
    fn a_page_that_can_never_fit_is_a_non_retryable_403_naming_the_cap() {
        let mut e = spent(None);
        e.requested = 8000;
        for (d, s) in [
            (Dialect::Generic, RefusalStyle::Problem),
            (Dialect::Salesforce, RefusalStyle::Vendor),
            (Dialect::HubSpot, RefusalStyle::Vendor),
            (Dialect::Dynamics, RefusalStyle::Vendor),
        ] {
            let r = refusal_response(d, s, &e, None);
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{d}");
            assert!(r.headers().get(RETRY_AFTER).is_none(), "{d}");
            let body = String::from_utf8_lossy(r.body()).into_owned();
            assert!(body.contains("5000"), "{d}: {body}");
            assert!(!body.contains("REQUEST_LIMIT_EXCEEDED") && !body.contains("RATE_LIMIT\""));
        }
        let v = json_of(&refusal_response(
            Dialect::Generic,
            RefusalStyle::Problem,
            &e,
            None,
        ));
        assert_eq!(v["type"], "urn:zweck:problem:budget-page-over-cap");
        assert_eq!(v["cap"], 5000);
    }

    #[test]
    fn store_unavailable_is_a_503_in_every_style() {
        let mut e = spent(Some(1000));
        e.store_unavailable = true;
        let r = refusal_response(Dialect::HubSpot, RefusalStyle::Vendor, &e, None);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            json_of(&r)["type"],
            "urn:zweck:problem:budget-store-unavailable"
        );
        assert_eq!(r.headers()[RETRY_AFTER], "1");
    }
}
