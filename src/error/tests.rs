//! The mapping pinned: every error's status and problem type, the problem body, budget
//! refusals in each style, and docs/problems.md in step with the code.

use std::collections::BTreeSet;
use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http_body_util::BodyExt;

use super::*;

/// One error of every problem type, with its pinned status: a status or slug never changes
/// by accident, and no problem type exists that no error produces.
fn table() -> Vec<(ProxyError, u16, &'static str)> {
    let up = || "salesforce".to_string();
    let budget = |retry: Option<u64>, store_unavailable| ProxyError::BudgetExhausted {
        exhausted: Box::new(Exhausted {
            store_unavailable,
            ..spent(retry)
        }),
        dialect: Dialect::Salesforce,
        style: RefusalStyle::Problem,
    };
    vec![
        (ProxyError::UnknownApp, 401, "unknown-app"),
        (
            ProxyError::PurposeMissing { app: "a".into() },
            403,
            "purpose-missing",
        ),
        (
            ProxyError::PurposeNotGranted {
                app: "a".into(),
                purpose: "p".into(),
            },
            403,
            "purpose-not-granted",
        ),
        (ProxyError::NoRoute, 404, "no-route"),
        (ProxyError::UnknownResource, 403, "unknown-resource"),
        (
            ProxyError::BadPath {
                reason: "dot-segment",
            },
            400,
            "bad-path",
        ),
        (ProxyError::BadHost { reason: "missing" }, 400, "bad-host"),
        (
            ProxyError::HeadersTooLarge {
                limit: 65536,
                unit: "bytes",
            },
            431,
            "headers-too-large",
        ),
        (ProxyError::RequestTimeout, 408, "request-timeout"),
        (
            ProxyError::MethodOverride {
                what: "X-HTTP-Method-Override",
            },
            400,
            "method-override",
        ),
        (
            ProxyError::Unsupported { what: "Upgrade" },
            501,
            "unsupported",
        ),
        (
            ProxyError::UpstreamUnavailable { upstream: up() },
            502,
            "upstream-unavailable",
        ),
        (
            ProxyError::UpstreamTimeout { upstream: up() },
            504,
            "upstream-timeout",
        ),
        (
            ProxyError::UpstreamMalformed { upstream: up() },
            502,
            "upstream-malformed",
        ),
        (
            ProxyError::UpstreamCredential { upstream: up() },
            502,
            "upstream-credential",
        ),
        (
            ProxyError::BodyTooLarge { limit: 10 },
            413,
            "body-too-large",
        ),
        (
            ProxyError::Overloaded {
                retry_after: Duration::from_secs(2),
            },
            503,
            "overloaded",
        ),
        (
            ProxyError::UnsupportedMediaType {
                expected: "JSON",
                got: "text/plain".into(),
            },
            415,
            "unsupported-media-type",
        ),
        (
            ProxyError::RequestNotInspectable {
                reason: Inspection::DuplicateKey,
            },
            400,
            "request-not-inspectable",
        ),
        (
            ProxyError::ResponseNotInspectable {
                reason: Inspection::JsonSyntax,
            },
            502,
            "response-not-inspectable",
        ),
        (
            ProxyError::BodyNotAllowed {
                method: "GET".into(),
            },
            400,
            "body-not-allowed",
        ),
        (
            ProxyError::Blocked {
                category: "user.financial".into(),
            },
            403,
            "blocked",
        ),
        (
            ProxyError::WriteDenied {
                purpose: "newsletter".into(),
            },
            403,
            "write-denied",
        ),
        (
            ProxyError::WriteActionNotAllowed {
                fields: vec!["$.Email".into()],
            },
            403,
            "write-action-not-allowed",
        ),
        (
            ProxyError::WriteFieldsDropped {
                fields: vec!["$.Phone".into()],
                nothing_left: false,
            },
            403,
            "write-fields-dropped",
        ),
        (
            ProxyError::QueryNotAllowed {
                fields: vec!["Contact.Phone".into()],
            },
            403,
            "query-not-allowed",
        ),
        (
            ProxyError::QueryNotCheckable {
                reason: "an unterminated string",
            },
            400,
            "query-not-checkable",
        ),
        (
            ProxyError::AggregateNotAllowed {
                object: "Contact".into(),
                reason: crate::policy::query::AggregateRefusal::RecordsFiltered,
            },
            403,
            "aggregate-not-allowed",
        ),
        (
            ProxyError::ConsentFieldMissing {
                fields: vec!["tickets.hs_consent".into()],
            },
            403,
            "consent-field-missing",
        ),
        (ProxyError::RecordWithheld, 404, "record-withheld"),
        (
            ProxyError::PurposeUnknown {
                purpose: "x".into(),
            },
            403,
            "purpose-unknown",
        ),
        (ProxyError::PolicyFault, 500, "policy-fault"),
        (
            ProxyError::TransferNotPermitted {
                upstream: "u".into(),
                jurisdiction: "US".into(),
            },
            403,
            "transfer-not-permitted",
        ),
        (ProxyError::AuditUnavailable, 503, "audit-unavailable"),
        (
            ProxyError::PurposeContained {
                app: "bi-export".into(),
                purpose: "analytics".into(),
                action: "block",
            },
            403,
            "purpose-contained",
        ),
        (
            ProxyError::AppRevoked {
                app: "bi-export".into(),
            },
            403,
            "app-revoked",
        ),
        (budget(Some(1500), false), 429, "budget-exhausted"),
        (budget(None, false), 403, "budget-page-over-cap"),
        (budget(Some(1000), true), 503, "budget-store-unavailable"),
        (
            ProxyError::PartRefused {
                part: 3,
                cause: Box::new(ProxyError::UnknownResource),
            },
            403,
            "unknown-resource",
        ),
        (
            ProxyError::PartRefused {
                part: 1,
                cause: Box::new(ProxyError::WriteDenied {
                    purpose: "newsletter".into(),
                }),
            },
            403,
            "write-denied",
        ),
    ]
}

#[test]
fn every_error_has_a_pinned_status_and_slug() {
    for (err, status, slug) in table() {
        assert_eq!(err.status().as_u16(), status, "{err:?}");
        assert_eq!(err.slug(), slug, "{err:?}");
    }
}

#[test]
fn every_problem_type_is_produced_by_an_error() {
    let produced: BTreeSet<&str> = table().iter().map(|(e, _, _)| e.slug()).collect();
    let all: BTreeSet<&str> = ProblemType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(produced, all);
}

#[test]
fn vocabularies_spell_each_value_once() {
    for (name, words) in [
        (
            "problem types",
            ProblemType::ALL
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            "inspection reasons",
            Inspection::ALL.iter().map(|r| r.as_str()).collect(),
        ),
    ] {
        let unique: BTreeSet<&str> = words.iter().copied().collect();
        assert_eq!(unique.len(), words.len(), "{name} spelled twice");
        for w in words {
            let kebab = !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            assert!(kebab, "{name}: {w:?} is not lower-case kebab");
        }
    }
}

/// The rows of the first Markdown table after `heading` in docs/problems.md: the word in
/// backticks in each row's first cell.
fn documented(heading: &str) -> BTreeSet<String> {
    let doc = include_str!("../../docs/problems.md");
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/problems.md has no {heading:?}"));
    let mut rows = BTreeSet::new();
    let mut in_table = false;
    for line in doc[start..].lines().skip(1) {
        let Some(cell) = line.strip_prefix("| `") else {
            if in_table && !line.starts_with('|') {
                break;
            }
            continue;
        };
        in_table = true;
        let word = cell.split('`').next().unwrap_or_default();
        assert!(rows.insert(word.to_string()), "{word} documented twice");
    }
    rows
}

#[test]
fn docs_list_exactly_the_problem_types() {
    let code: BTreeSet<String> = ProblemType::ALL
        .iter()
        .map(|t| t.as_str().to_string())
        .collect();
    assert_eq!(documented("| type (`urn:zweck:problem:...`)"), code);
}

#[test]
fn docs_list_exactly_the_inspection_reasons() {
    let code: BTreeSet<String> = Inspection::ALL
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    assert_eq!(documented("| reason |"), code);
}

#[tokio::test]
async fn problem_body_is_rfc9457() {
    let resp = ProxyError::UnknownApp.to_response(Some("r-1"));
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["type"], "urn:zweck:problem:unknown-app");
    assert_eq!(v["status"], 401);
    assert_eq!(v["request_id"], "r-1");
    assert!(v["title"].is_string() && v["detail"].is_string());
}

#[test]
fn tunnel_and_query_refusals_convert_to_their_causes() {
    let query: ProxyError = QueryRefusal::Unreadable("fetchXml").into();
    assert_eq!(query.slug(), "query-not-checkable");
    let route: ProxyError = RouteRefusal::Connect.into();
    assert_eq!(
        (route.status().as_u16(), route.slug()),
        (501, "unsupported")
    );
    let part = TunnelRefusal {
        direction: Direction::Response,
        part: 2,
        cause: Cause::Malformed(Inspection::PartHeader),
    };
    let err = ProxyError::from(ForPurpose(part, "support"));
    assert_eq!(
        (err.status().as_u16(), err.slug()),
        (502, "response-not-inspectable")
    );
    assert_eq!(
        err.to_string(),
        "part 2 of the batch: the upstream response cannot be inspected: part-header"
    );
}

// Budget refusals, in each style (moved from budget/refusal.rs with the rendering).

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

fn refusal_response(
    dialect: Dialect,
    style: RefusalStyle,
    e: &Exhausted,
    request_id: Option<&str>,
) -> Response<Bytes> {
    ProxyError::BudgetExhausted {
        exhausted: Box::new(e.clone()),
        dialect,
        style,
    }
    .render(request_id)
}

fn json_of(r: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(r.body()).expect("json body")
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
