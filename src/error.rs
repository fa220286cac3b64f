//! The one place where failures become responses.
//!
//! Every phase of the pipeline returns a [`ProxyError`] whose variant says what happened; this
//! module maps each variant to an HTTP status and an RFC 9457 `application/problem+json` body
//! with a stable `type` URI. A test pins the whole mapping, so a status never changes by
//! accident. Messages name reasons, rules and route templates, never field values, raw paths
//! or credentials: problem bodies are read by the app, and apps are exactly whom data
//! minimisation protects the data from.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::body::{self, ProxyBody};

/// The prefix of every problem `type` URI. The part after it is the stable problem slug that
/// docs/problems.md documents.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:zweck:problem:";

/// What went wrong while handling one request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No credential, or one that names no configured app.
    #[error("the caller is not a known app")]
    UnknownApp,
    /// The app sent no `Zweck-Purpose` and its credential implies none.
    #[error("no purpose given: send the Zweck-Purpose header")]
    PurposeMissing,
    /// The purpose is not one the app is granted (or does not exist).
    #[error("purpose {purpose:?} is not granted to app {app}")]
    PurposeNotGranted { app: String, purpose: String },
    /// No upstream is configured for this host and path.
    #[error("no upstream serves this host and path")]
    NoRoute,
    /// The path is on a CRM upstream but matches no inventory resource or ungoverned route.
    #[error("this endpoint is not classified; it stays closed until an inventory covers it")]
    UnknownResource,
    /// The path is not in canonical form (dot-segments, encoded `/` or `.`, `//`, ...).
    #[error("the request path is not canonical: {reason}")]
    BadPath { reason: &'static str },
    /// A method-override header or `_HttpMethod` parameter was sent.
    #[error("method overrides are refused ({what})")]
    MethodOverride { what: &'static str },
    /// A request header or feature Zweck refuses (e.g. Upgrade, CONNECT).
    #[error("{what} is not supported through Zweck")]
    Unsupported { what: &'static str },
    /// The upstream refused or reset the connection, or answered garbage.
    #[error("the upstream {upstream} could not be reached")]
    UpstreamUnavailable { upstream: String },
    /// The upstream did not answer within its response timeout.
    #[error("the upstream {upstream} did not answer in time")]
    UpstreamTimeout { upstream: String },
    /// Zweck could not obtain the upstream's own credential (token endpoint down, file gone).
    #[error("the credential for upstream {upstream} is not available")]
    UpstreamCredential { upstream: String },
    /// The request body is larger than `limits.max_body_bytes`.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// A governed body of a media type Zweck cannot inspect (or none at all).
    #[error("a governed request body must be {expected}; got {got}")]
    UnsupportedMediaType { expected: &'static str, got: String },
    /// A governed request body that could not be fully inspected (malformed, duplicate
    /// keys, too deep, encoded).
    #[error("the request body cannot be inspected: {reason}")]
    RequestNotInspectable { reason: &'static str },
    /// A governed response body that could not be fully inspected: never passed on unread.
    #[error("the upstream response cannot be inspected: {reason}")]
    ResponseNotInspectable { reason: &'static str },
    /// A body on GET, HEAD or DELETE of a governed route.
    #[error("a {method} request carries no body on a governed route")]
    BodyNotAllowed { method: String },
    /// A `block` rule met data of this category.
    #[error("data of category {category} may not flow for this purpose")]
    Blocked { category: String },
    /// The purpose may not write or delete.
    #[error("purpose {purpose} may not write or delete")]
    WriteDenied { purpose: String },
    /// A write carries fields whose rule would alter values stored in the CRM.
    #[error("this write carries fields the purpose may only see altered: {}", fields.join(", "))]
    WriteActionNotAllowed { fields: Vec<String> },
    /// A query filters, groups or sorts on fields the purpose may not see (names, no values).
    #[error("the query filters or sorts on fields this purpose may not see: {}", fields.join(", "))]
    QueryNotAllowed { fields: Vec<String> },
    /// A query Zweck could not read, so could not check.
    #[error("the query cannot be checked: {reason}")]
    QueryNotCheckable { reason: &'static str },
    /// The one record of the response is withheld from this purpose (no consent, unknown type).
    #[error("the record is not available for this purpose")]
    RecordWithheld,
    /// The purpose named by the app is not defined by the policies in force.
    #[error("purpose {purpose:?} is not defined by the policies in force")]
    PurposeUnknown { purpose: String },
    /// A cross-border flow to an upstream without a transfer mechanism (Art. 44-49).
    #[error("no transfer mechanism is configured for upstream {upstream} in {jurisdiction}, outside the controller's area")]
    TransferNotPermitted {
        upstream: String,
        jurisdiction: String,
    },
    /// The export budget cannot pay for this exchange (or the shared store is down for a
    /// bulk export). Answered in the configured style, with RateLimit headers.
    #[error("the export budget is exhausted")]
    BudgetExhausted {
        exhausted: Box<crate::budget::Exhausted>,
        dialect: crate::dialect::Dialect,
        style: crate::budget::RefusalStyle,
    },
    /// The transfer log cannot be written: no personal data flows without its record.
    #[error("the transfer log is unavailable; no personal data flows without its record")]
    AuditUnavailable,
    /// A policy fault on Zweck's side (e.g. a pseudonym key missing after a reload).
    #[error("the policy could not be applied; see Zweck's log")]
    PolicyFault,
    /// One sub-request (or sub-response) of a `$batch` or composite tunnel was refused, and
    /// with it the whole tunnel. Answered with the cause's status and problem type; the
    /// detail names the part (1-based, in body order).
    #[error("part {part} of the batch: {cause}")]
    PartRefused { part: usize, cause: Box<ProxyError> },
    /// Too many concurrent buffered bodies (`limits.buffered_total`).
    #[error("Zweck is out of buffer space; retry later")]
    Overloaded { retry_after: Duration },
}

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ProxyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            PartRefused { cause, .. } => cause.status(),
            UnknownApp => StatusCode::UNAUTHORIZED,
            PurposeMissing
            | PurposeNotGranted { .. }
            | PurposeUnknown { .. }
            | UnknownResource
            | Blocked { .. }
            | WriteDenied { .. }
            | WriteActionNotAllowed { .. }
            | QueryNotAllowed { .. }
            | TransferNotPermitted { .. } => StatusCode::FORBIDDEN,
            UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestNotInspectable { .. } | BodyNotAllowed { .. } | QueryNotCheckable { .. } => {
                StatusCode::BAD_REQUEST
            }
            ResponseNotInspectable { .. } => StatusCode::BAD_GATEWAY,
            RecordWithheld => StatusCode::NOT_FOUND,
            PolicyFault => StatusCode::INTERNAL_SERVER_ERROR,
            NoRoute => StatusCode::NOT_FOUND,
            BadPath { .. } | MethodOverride { .. } => StatusCode::BAD_REQUEST,
            Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            UpstreamUnavailable { .. } | UpstreamCredential { .. } => StatusCode::BAD_GATEWAY,
            UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Overloaded { .. } | AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            BudgetExhausted {
                exhausted,
                dialect,
                style,
            } => exhausted.status(*dialect, *style),
        }
    }

    /// The stable slug of the problem type (`urn:zweck:problem:<slug>`).
    pub fn slug(&self) -> &'static str {
        use ProxyError::*;
        match self {
            PartRefused { cause, .. } => cause.slug(),
            UnknownApp => "unknown-app",
            PurposeMissing => "purpose-missing",
            PurposeNotGranted { .. } => "purpose-not-granted",
            NoRoute => "no-route",
            UnknownResource => "unknown-resource",
            BadPath { .. } => "bad-path",
            MethodOverride { .. } => "method-override",
            Unsupported { .. } => "unsupported",
            UpstreamUnavailable { .. } => "upstream-unavailable",
            UpstreamTimeout { .. } => "upstream-timeout",
            UpstreamCredential { .. } => "upstream-credential",
            BodyTooLarge { .. } => "body-too-large",
            Overloaded { .. } => "overloaded",
            UnsupportedMediaType { .. } => "unsupported-media-type",
            RequestNotInspectable { .. } => "request-not-inspectable",
            ResponseNotInspectable { .. } => "response-not-inspectable",
            BodyNotAllowed { .. } => "body-not-allowed",
            Blocked { .. } => "blocked",
            WriteDenied { .. } => "write-denied",
            WriteActionNotAllowed { .. } => "write-action-not-allowed",
            QueryNotAllowed { .. } => "query-not-allowed",
            QueryNotCheckable { .. } => "query-not-checkable",
            RecordWithheld => "record-withheld",
            PurposeUnknown { .. } => "purpose-unknown",
            PolicyFault => "policy-fault",
            TransferNotPermitted { .. } => "transfer-not-permitted",
            AuditUnavailable => "audit-unavailable",
            BudgetExhausted { exhausted, .. } => exhausted.slug(),
        }
    }

    fn title(&self) -> &'static str {
        use ProxyError::*;
        match self {
            PartRefused { cause, .. } => cause.title(),
            UnknownApp => "Unknown app",
            PurposeMissing => "Purpose missing",
            PurposeNotGranted { .. } => "Purpose not granted",
            NoRoute => "No route",
            UnknownResource => "Unknown resource",
            BadPath { .. } => "Path not canonical",
            MethodOverride { .. } => "Method override refused",
            Unsupported { .. } => "Not supported",
            UpstreamUnavailable { .. } => "Upstream unavailable",
            UpstreamTimeout { .. } => "Upstream timeout",
            UpstreamCredential { .. } => "Upstream credential unavailable",
            BodyTooLarge { .. } => "Body too large",
            Overloaded { .. } => "Overloaded",
            UnsupportedMediaType { .. } => "Unsupported media type",
            RequestNotInspectable { .. } => "Request body not inspectable",
            ResponseNotInspectable { .. } => "Response not inspectable",
            BodyNotAllowed { .. } => "Body not allowed",
            Blocked { .. } => "Blocked by policy",
            WriteDenied { .. } => "Writes denied",
            WriteActionNotAllowed { .. } => "Write action not allowed",
            QueryNotAllowed { .. } => "Query not allowed",
            QueryNotCheckable { .. } => "Query not checkable",
            RecordWithheld => "Record withheld",
            PurposeUnknown { .. } => "Purpose unknown",
            PolicyFault => "Policy fault",
            TransferNotPermitted { .. } => "Transfer not permitted",
            AuditUnavailable => "Transfer log unavailable",
            BudgetExhausted { .. } => "Export budget exhausted",
        }
    }

    /// Builds the problem+json response. `request_id` ties it to the logs.
    pub fn to_response(&self, request_id: Option<&str>) -> Response<ProxyBody> {
        if let ProxyError::BudgetExhausted {
            exhausted,
            dialect,
            style,
        } = self
        {
            let resp = crate::budget::refusal_response(*dialect, *style, exhausted, request_id);
            return resp.map(body::full);
        }
        let status = self.status();
        let problem = Problem {
            kind: format!("{PROBLEM_TYPE_PREFIX}{}", self.slug()),
            title: self.title(),
            status: status.as_u16(),
            detail: self.to_string(),
            request_id,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = Response::new(body::full(Bytes::from(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"zweck\""),
            );
        }
        if let ProxyError::Overloaded { retry_after } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Pins the whole mapping: a status or slug never changes by accident.
    #[test]
    fn every_error_has_a_pinned_status_and_slug() {
        let up = || "salesforce".to_string();
        let table: Vec<(ProxyError, u16, &str)> = vec![
            (ProxyError::UnknownApp, 401, "unknown-app"),
            (ProxyError::PurposeMissing, 403, "purpose-missing"),
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
                    reason: "duplicate-key",
                },
                400,
                "request-not-inspectable",
            ),
            (
                ProxyError::ResponseNotInspectable { reason: "syntax" },
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
        ];
        for (err, status, slug) in table {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.slug(), slug, "{err:?}");
        }
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
}
