//! The one place where failures become responses, and the vocabulary they are told in.
//!
//! Every phase of the pipeline returns a [`ProxyError`] whose variant says what happened; this
//! module maps each variant to an HTTP status and an RFC 9457 `application/problem+json` body
//! whose `type` is a stable [`ProblemType`] (or, for an export budget in `vendor` style, the
//! CRM's own throttle shape that `budget` renders). The refusals of the parts below the
//! proxy (the policy engine, query minimisation, phase 2, batch tunnels) come in through
//! `From`, and every reason a body could not be inspected is one [`Inspection`], spelled
//! once. Tests pin the mapping and check that docs/problems.md lists exactly the problem
//! types and reasons that exist, so neither a status nor a spelling changes by accident.
//!
//! Messages name reasons, rules and route templates, never field values, raw paths or
//! credentials: problem bodies are read by the app, and apps are exactly whom data
//! minimisation protects the data from.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::body::{self, encoding::DecodeError, json_stream::JsonStreamError, ProxyBody};
use crate::budget::{Exhausted, RefusalStyle};
use crate::dialect::Dialect;
use crate::json::JsonError;
use crate::policy::query::{Carried, QueryRefusal};
use crate::policy::{CsvFailure, Direction, Purpose, Refusal};
use crate::proxy::route::RouteRefusal;
use crate::proxy::tunnel::{Cause, TunnelRefusal};

/// The prefix of every problem `type` URI. The part after it is the stable problem slug that
/// docs/problems.md documents.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:zweck:problem:";

/// A closed set of names, each spelled exactly once: the enum, its spelling and the list of
/// all of them (which the docs tests walk).
macro_rules! vocabulary {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The one spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The stable problem types: `urn:zweck:problem:<slug>`. Apps match on these.
    pub enum ProblemType {
        UnknownApp = "unknown-app",
        PurposeMissing = "purpose-missing",
        PurposeNotGranted = "purpose-not-granted",
        PurposeContained = "purpose-contained",
        AppRevoked = "app-revoked",
        PurposeUnknown = "purpose-unknown",
        NoRoute = "no-route",
        UnknownResource = "unknown-resource",
        BadPath = "bad-path",
        BadHost = "bad-host",
        HeadersTooLarge = "headers-too-large",
        RequestTimeout = "request-timeout",
        MethodOverride = "method-override",
        Unsupported = "unsupported",
        BodyNotAllowed = "body-not-allowed",
        UnsupportedMediaType = "unsupported-media-type",
        RequestNotInspectable = "request-not-inspectable",
        BodyTooLarge = "body-too-large",
        WriteDenied = "write-denied",
        WriteActionNotAllowed = "write-action-not-allowed",
        WriteFieldsDropped = "write-fields-dropped",
        QueryNotAllowed = "query-not-allowed",
        QueryNotCheckable = "query-not-checkable",
        AggregateNotAllowed = "aggregate-not-allowed",
        ConsentFieldMissing = "consent-field-missing",
        Blocked = "blocked",
        RecordWithheld = "record-withheld",
        ResponseNotInspectable = "response-not-inspectable",
        UpstreamUnavailable = "upstream-unavailable",
        UpstreamCredential = "upstream-credential",
        UpstreamTimeout = "upstream-timeout",
        UpstreamMalformed = "upstream-malformed",
        TransferNotPermitted = "transfer-not-permitted",
        AuditUnavailable = "audit-unavailable",
        PolicyFault = "policy-fault",
        Overloaded = "overloaded",
        BudgetExhausted = "budget-exhausted",
        BudgetPageOverCap = "budget-page-over-cap",
        BudgetStoreUnavailable = "budget-store-unavailable",
    }
}

impl ProblemType {
    /// The problem's `title`.
    pub fn title(self) -> &'static str {
        use ProblemType::{
            AggregateNotAllowed, AppRevoked, AuditUnavailable, BadHost, BadPath, Blocked,
            BodyNotAllowed, BodyTooLarge, BudgetExhausted, BudgetPageOverCap,
            BudgetStoreUnavailable, ConsentFieldMissing, HeadersTooLarge, MethodOverride, NoRoute,
            Overloaded, PolicyFault, PurposeContained, PurposeMissing, PurposeNotGranted,
            PurposeUnknown, QueryNotAllowed, QueryNotCheckable, RecordWithheld,
            RequestNotInspectable, RequestTimeout, ResponseNotInspectable, TransferNotPermitted,
            UnknownApp, UnknownResource, Unsupported, UnsupportedMediaType, UpstreamCredential,
            UpstreamMalformed, UpstreamTimeout, UpstreamUnavailable, WriteActionNotAllowed,
            WriteDenied, WriteFieldsDropped,
        };
        match self {
            UnknownApp => "Unknown app",
            PurposeMissing => "Purpose missing",
            PurposeNotGranted => "Purpose not granted",
            PurposeContained => "Purpose contained after an incident",
            AppRevoked => "App revoked",
            PurposeUnknown => "Purpose unknown",
            NoRoute => "No route",
            UnknownResource => "Unknown resource",
            BadPath => "Path not canonical",
            BadHost => "Host missing or ambiguous",
            HeadersTooLarge => "Request headers too large",
            RequestTimeout => "Request body too slow",
            MethodOverride => "Method override refused",
            Unsupported => "Not supported",
            BodyNotAllowed => "Body not allowed",
            UnsupportedMediaType => "Unsupported media type",
            RequestNotInspectable => "Request body not inspectable",
            BodyTooLarge => "Body too large",
            WriteDenied => "Writes denied",
            WriteActionNotAllowed => "Write action not allowed",
            WriteFieldsDropped => "Write would lose fields",
            QueryNotAllowed => "Query not allowed",
            QueryNotCheckable => "Query not checkable",
            AggregateNotAllowed => "Aggregate not allowed",
            ConsentFieldMissing => "Consent field missing",
            Blocked => "Blocked by policy",
            RecordWithheld => "Record withheld",
            ResponseNotInspectable => "Response not inspectable",
            UpstreamUnavailable => "Upstream unavailable",
            UpstreamCredential => "Upstream credential unavailable",
            UpstreamTimeout => "Upstream timeout",
            UpstreamMalformed => "Upstream response malformed",
            TransferNotPermitted => "Transfer not permitted",
            AuditUnavailable => "Transfer log unavailable",
            PolicyFault => "Policy fault",
            Overloaded => "Overloaded",
            BudgetExhausted => "Export budget exhausted",
            BudgetPageOverCap => "Page over the export budget cap",
            BudgetStoreUnavailable => "Export budget store unavailable",
        }
    }
}

vocabulary! {
    /// Why a governed body (or a batch tunnel's part) could not be inspected: the `reason` in
    /// `request-not-inspectable` and `response-not-inspectable`, and in the transfer log's
    /// close record of a stream that failed. docs/problems.md explains each.
    pub enum Inspection {
        // reading the body
        TooLarge = "too-large",
        Truncated = "truncated",
        MediaType = "media-type",
        // content codings
        UnknownContentEncoding = "unknown-content-encoding",
        TooManyContentEncodings = "too-many-content-encodings",
        CorruptContentEncoding = "corrupt-content-encoding",
        DecodedTooLarge = "decoded-too-large",
        CompressionBomb = "compression-bomb",
        // JSON documents (docs/json.md)
        JsonSyntax = "json-syntax",
        DuplicateKey = "duplicate-key",
        TooDeep = "too-deep",
        ByteOrderMark = "byte-order-mark",
        InvalidUtf8 = "invalid-utf8",
        LoneSurrogate = "lone-surrogate",
        TrailingContent = "trailing-content",
        Empty = "empty",
        // JSON list pages governed as a stream
        JsonShape = "json-shape",
        RecordTooLarge = "record-too-large",
        EnvelopeTooLarge = "envelope-too-large",
        Spent = "spent",
        // Bulk CSV results
        CsvRowTooLarge = "csv-row-too-large",
        CsvInvalidUtf8 = "csv-invalid-utf8",
        CsvMalformed = "csv-malformed",
        CsvDelimiter = "csv-delimiter",
        CsvSpent = "csv-spent",
        /// A Bulk results page fetched again (to stream it with its row count) came back
        /// with another number of rows.
        CsvChanged = "csv-changed",
        /// The policy refused a streamed body after its first bytes had gone out.
        Refused = "refused",
        // multipart (`$batch`)
        NotMultipart = "not-multipart",
        MultipartStart = "multipart-start",
        MultipartClose = "multipart-close",
        MultipartDelimiter = "multipart-delimiter",
        MultipartEpilogue = "multipart-epilogue",
        MixedLineEndings = "mixed-line-endings",
        TooManyParts = "too-many-parts",
        PartTooLarge = "part-too-large",
        PartHeader = "part-header",
        PartContentType = "part-content-type",
        PartTransferEncoding = "part-transfer-encoding",
        PartStartLine = "part-start-line",
        PartHttpHeader = "part-http-header",
        PartContentLength = "part-content-length",
        Unwritable = "unwritable",
        NotARequest = "not-a-request",
        NotAResponse = "not-a-response",
        DuplicateContentId = "duplicate-content-id",
        // Salesforce composite and tree envelopes
        EnvelopeShape = "envelope-shape",
        EnvelopeKey = "envelope-key",
        TunnelKind = "tunnel-kind",
        SubrequestShape = "subrequest-shape",
        SubrequestKey = "subrequest-key",
        SubresponseShape = "subresponse-shape",
        HttpHeaders = "http-headers",
        Method = "method",
        Url = "url",
        Status = "status",
        ReferenceId = "reference-id",
        DuplicateReferenceId = "duplicate-reference-id",
        TreeObject = "tree-object",
        TreeRecord = "tree-record",
        TreeAttributes = "tree-attributes",
        TreeType = "tree-type",
        TreeRelationship = "tree-relationship",
        TreeChildren = "tree-children",
        // what a tunnel part may not do
        GetInChangeSet = "get-in-change-set",
        NestedBatch = "nested-batch",
        Reference = "reference",
        BodyNotAllowed = "body-not-allowed",
        BodyOnUngovernedRoute = "body-on-ungoverned-route",
        UnmatchedPart = "unmatched-part",
    }
}

/// What went wrong while handling one request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No credential, or one that names no configured app.
    #[error("the caller is not a known app")]
    UnknownApp,
    /// The app sent no `Zweck-Purpose` and its credential implies none.
    #[error("no purpose given: send the Zweck-Purpose header")]
    PurposeMissing { app: String },
    /// The purpose is not one the app is granted (or does not exist).
    #[error("purpose {purpose:?} is not granted to app {app}")]
    PurposeNotGranted { app: String, purpose: String },
    /// An incident contained this app x purpose (`on_anomaly: block`, or `throttle` for a bulk
    /// export) until an operator clears it.
    #[error("app {app} is contained for purpose {purpose:?} after an incident ({action}); an operator clears it with POST /containment/clear on the admin listener")]
    PurposeContained {
        app: String,
        purpose: String,
        action: &'static str,
    },
    /// The app's credentials were revoked (`zweck apps revoke`, `POST /apps/APP/revoke`).
    #[error("app {app} is revoked: its API keys and certificate are refused until an operator reinstates it")]
    AppRevoked { app: String },
    /// No upstream is configured for this host and path.
    #[error("no upstream serves this host and path")]
    NoRoute,
    /// The path is on a CRM upstream but matches no inventory resource or ungoverned route.
    #[error("this endpoint is not classified; it stays closed until an inventory covers it")]
    UnknownResource,
    /// The path is not in canonical form (dot-segments, encoded `/` or `.`, `//`, ...).
    #[error("the request path is not canonical: {reason}")]
    BadPath { reason: &'static str },
    /// HTTP/1.1 without `Host`, two `Host` headers, one that is not a host, or a `Host` that
    /// names another host than the request target (HTTP/2: `:authority`).
    #[error("the request's host is {reason}")]
    BadHost { reason: &'static str },
    /// The request header block is larger than `limits.max_header_bytes`, or has more
    /// fields than HTTP/1.1's parser takes.
    #[error("the request headers are over their limit of {limit} {unit}")]
    HeadersTooLarge { limit: u64, unit: &'static str },
    /// The request body did not arrive at `limits.body_min_rate` once `body_read_timeout`
    /// was used up.
    #[error("the request body arrived too slowly")]
    RequestTimeout,
    /// A method-override header or `_HttpMethod` parameter was sent.
    #[error("method overrides are refused ({what})")]
    MethodOverride { what: &'static str },
    /// A request header or feature Zweck refuses (e.g. Upgrade, CONNECT).
    #[error("{what} is not supported through Zweck")]
    Unsupported { what: &'static str },
    /// The upstream refused or reset the connection, or answered garbage.
    #[error("the upstream {upstream} could not be reached")]
    UpstreamUnavailable { upstream: String },
    /// The upstream did not answer within its response timeout, or its response body
    /// stalled for longer than its body idle timeout.
    #[error("the upstream {upstream} did not answer in time")]
    UpstreamTimeout { upstream: String },
    /// The upstream's response was not well-framed HTTP (`Content-Length` beside
    /// `Transfer-Encoding`, a transfer coding other than chunked, conflicting lengths, a
    /// folded header): read as the upstream meant it or not, it could smuggle a second
    /// response, so it is refused and its connection dropped.
    #[error("the upstream {upstream} answered with a malformed response")]
    UpstreamMalformed { upstream: String },
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
    /// keys, too deep, a content coding that does not decode).
    #[error("the request body cannot be inspected: {reason}")]
    RequestNotInspectable { reason: Inspection },
    /// A governed response body that could not be fully inspected: never passed on unread.
    #[error("the upstream response cannot be inspected: {reason}")]
    ResponseNotInspectable { reason: Inspection },
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
    /// Minimisation would drop fields of a write (paths, no values); `nothing_left`: even
    /// silent minimisation would leave a record that writes nothing.
    #[error("{}: {}", if *nothing_left { "nothing of this write would remain for the CRM once minimised; the purpose may not write" } else { "this purpose may not write these fields, and the write is not sent without them" }, fields.join(", "))]
    WriteFieldsDropped {
        fields: Vec<String>,
        nothing_left: bool,
    },
    /// A query filters, groups or sorts on fields the purpose may not see (names, no values).
    #[error("the query filters or sorts on fields this purpose may not see: {}", fields.join(", "))]
    QueryNotAllowed { fields: Vec<String> },
    /// A query Zweck could not read, so could not check.
    #[error("the query cannot be checked: {reason}")]
    QueryNotCheckable { reason: &'static str },
    /// An aggregate the purpose may not be given (its reason; the object's name).
    #[error("aggregates over {object} are not available to this purpose: {reason}")]
    AggregateNotAllowed {
        object: String,
        reason: crate::policy::query::AggregateRefusal,
    },
    /// The purpose decides consent from fields the query does not read and Zweck cannot add.
    #[error("the query must read the consent field(s) {}: Zweck cannot add them to it", fields.join(", "))]
    ConsentFieldMissing { fields: Vec<String> },
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
    #[error("{}", exhausted.detail())]
    BudgetExhausted {
        exhausted: Box<Exhausted>,
        dialect: Dialect,
        style: RefusalStyle,
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

/// The RFC 9457 body; `cap`, `class` and `retry_after` are the extension members of an
/// export-budget refusal.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cap: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ProxyError {
    /// A body that could not be inspected, on the side it travelled.
    pub fn not_inspectable(direction: Direction, reason: Inspection) -> ProxyError {
        match direction {
            Direction::Request => ProxyError::RequestNotInspectable { reason },
            Direction::Response => ProxyError::ResponseNotInspectable { reason },
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        use ProxyError::{
            AggregateNotAllowed, AppRevoked, AuditUnavailable, BadHost, BadPath, Blocked,
            BodyNotAllowed, BodyTooLarge, BudgetExhausted, ConsentFieldMissing, HeadersTooLarge,
            MethodOverride, NoRoute, Overloaded, PartRefused, PolicyFault, PurposeContained,
            PurposeMissing, PurposeNotGranted, PurposeUnknown, QueryNotAllowed, QueryNotCheckable,
            RecordWithheld, RequestNotInspectable, RequestTimeout, ResponseNotInspectable,
            TransferNotPermitted, UnknownApp, UnknownResource, Unsupported, UnsupportedMediaType,
            UpstreamCredential, UpstreamMalformed, UpstreamTimeout, UpstreamUnavailable,
            WriteActionNotAllowed, WriteDenied, WriteFieldsDropped,
        };
        match self {
            PartRefused { cause, .. } => cause.status(),
            UnknownApp => StatusCode::UNAUTHORIZED,
            PurposeMissing { .. }
            | PurposeNotGranted { .. }
            | PurposeContained { .. }
            | AppRevoked { .. }
            | PurposeUnknown { .. }
            | UnknownResource
            | Blocked { .. }
            | WriteDenied { .. }
            | WriteActionNotAllowed { .. }
            | WriteFieldsDropped { .. }
            | QueryNotAllowed { .. }
            | AggregateNotAllowed { .. }
            | ConsentFieldMissing { .. }
            | TransferNotPermitted { .. } => StatusCode::FORBIDDEN,
            UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestNotInspectable { .. } | BodyNotAllowed { .. } | QueryNotCheckable { .. } => {
                StatusCode::BAD_REQUEST
            }
            ResponseNotInspectable { .. } => StatusCode::BAD_GATEWAY,
            RecordWithheld => StatusCode::NOT_FOUND,
            PolicyFault => StatusCode::INTERNAL_SERVER_ERROR,
            NoRoute => StatusCode::NOT_FOUND,
            BadPath { .. } | BadHost { .. } | MethodOverride { .. } => StatusCode::BAD_REQUEST,
            HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            UpstreamUnavailable { .. } | UpstreamCredential { .. } | UpstreamMalformed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Overloaded { .. } | AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            BudgetExhausted {
                exhausted,
                dialect,
                style,
            } => budget_status(exhausted, *dialect, *style),
        }
    }

    /// The problem type (`urn:zweck:problem:<slug>`).
    pub fn problem_type(&self) -> ProblemType {
        use ProxyError::{
            AggregateNotAllowed, AppRevoked, AuditUnavailable, BadHost, BadPath, Blocked,
            BodyNotAllowed, BodyTooLarge, BudgetExhausted, ConsentFieldMissing, HeadersTooLarge,
            MethodOverride, NoRoute, Overloaded, PartRefused, PolicyFault, PurposeContained,
            PurposeMissing, PurposeNotGranted, PurposeUnknown, QueryNotAllowed, QueryNotCheckable,
            RecordWithheld, RequestNotInspectable, RequestTimeout, ResponseNotInspectable,
            TransferNotPermitted, UnknownApp, UnknownResource, Unsupported, UnsupportedMediaType,
            UpstreamCredential, UpstreamMalformed, UpstreamTimeout, UpstreamUnavailable,
            WriteActionNotAllowed, WriteDenied, WriteFieldsDropped,
        };
        match self {
            PartRefused { cause, .. } => cause.problem_type(),
            UnknownApp => ProblemType::UnknownApp,
            PurposeMissing { .. } => ProblemType::PurposeMissing,
            PurposeNotGranted { .. } => ProblemType::PurposeNotGranted,
            PurposeContained { .. } => ProblemType::PurposeContained,
            AppRevoked { .. } => ProblemType::AppRevoked,
            NoRoute => ProblemType::NoRoute,
            UnknownResource => ProblemType::UnknownResource,
            BadPath { .. } => ProblemType::BadPath,
            BadHost { .. } => ProblemType::BadHost,
            HeadersTooLarge { .. } => ProblemType::HeadersTooLarge,
            RequestTimeout => ProblemType::RequestTimeout,
            MethodOverride { .. } => ProblemType::MethodOverride,
            Unsupported { .. } => ProblemType::Unsupported,
            UpstreamUnavailable { .. } => ProblemType::UpstreamUnavailable,
            UpstreamTimeout { .. } => ProblemType::UpstreamTimeout,
            UpstreamMalformed { .. } => ProblemType::UpstreamMalformed,
            UpstreamCredential { .. } => ProblemType::UpstreamCredential,
            BodyTooLarge { .. } => ProblemType::BodyTooLarge,
            Overloaded { .. } => ProblemType::Overloaded,
            UnsupportedMediaType { .. } => ProblemType::UnsupportedMediaType,
            RequestNotInspectable { .. } => ProblemType::RequestNotInspectable,
            ResponseNotInspectable { .. } => ProblemType::ResponseNotInspectable,
            BodyNotAllowed { .. } => ProblemType::BodyNotAllowed,
            Blocked { .. } => ProblemType::Blocked,
            WriteDenied { .. } => ProblemType::WriteDenied,
            WriteActionNotAllowed { .. } => ProblemType::WriteActionNotAllowed,
            WriteFieldsDropped { .. } => ProblemType::WriteFieldsDropped,
            QueryNotAllowed { .. } => ProblemType::QueryNotAllowed,
            QueryNotCheckable { .. } => ProblemType::QueryNotCheckable,
            AggregateNotAllowed { .. } => ProblemType::AggregateNotAllowed,
            ConsentFieldMissing { .. } => ProblemType::ConsentFieldMissing,
            RecordWithheld => ProblemType::RecordWithheld,
            PurposeUnknown { .. } => ProblemType::PurposeUnknown,
            PolicyFault => ProblemType::PolicyFault,
            TransferNotPermitted { .. } => ProblemType::TransferNotPermitted,
            AuditUnavailable => ProblemType::AuditUnavailable,
            BudgetExhausted { exhausted, .. } => budget_problem(exhausted),
        }
    }

    /// The app a refusal in phase 1 still knows (its credential named it, its purpose was
    /// the problem): logs, metrics and the transfer log name it.
    pub fn app(&self) -> Option<&str> {
        match self {
            ProxyError::PurposeMissing { app } | ProxyError::PurposeNotGranted { app, .. } => {
                Some(app)
            }
            _ => None,
        }
    }

    /// The stable slug of the problem type, as logs and the transfer log carry it.
    pub fn slug(&self) -> &'static str {
        self.problem_type().as_str()
    }

    /// Builds the response. `request_id` ties it to the logs.
    pub fn to_response(&self, request_id: Option<&str>) -> Response<ProxyBody> {
        self.render(request_id).map(body::full)
    }

    /// Status, headers and body of the response.
    fn render(&self, request_id: Option<&str>) -> Response<Bytes> {
        let status = self.status();
        let vendor = match self {
            ProxyError::BudgetExhausted {
                exhausted,
                dialect,
                style: RefusalStyle::Vendor,
            } => crate::budget::vendor_refusal(*dialect, exhausted, request_id),
            _ => None,
        };
        let (content_type, body) = match vendor {
            Some(shape) => shape,
            None => ("application/problem+json", self.problem(status, request_id)),
        };
        let mut resp = Response::new(Bytes::from(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        match self {
            ProxyError::BudgetExhausted { exhausted, .. } => {
                for (name, value) in exhausted.headers() {
                    h.insert(name, value);
                }
                // (budget refusals have never carried Cache-Control; kept as they were)
                return resp;
            }
            ProxyError::Overloaded { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            _ if status == StatusCode::UNAUTHORIZED => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"zweck\""),
                );
            }
            _ => {}
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    /// The problem+json body.
    fn problem(&self, status: StatusCode, request_id: Option<&str>) -> Vec<u8> {
        let kind = self.problem_type();
        let mut problem = Problem {
            kind: format!("{PROBLEM_TYPE_PREFIX}{kind}"),
            title: kind.title(),
            status: status.as_u16(),
            detail: self.to_string(),
            cap: None,
            class: None,
            retry_after: None,
            request_id,
        };
        if let ProxyError::BudgetExhausted { exhausted, .. } = self {
            problem.cap = Some(exhausted.cap);
            problem.class = exhausted.class.map(super::policy::set::RouteClass::as_str);
            problem.retry_after = exhausted.retry_after_secs();
        }
        serde_json::to_vec(&problem).unwrap_or_default()
    }
}

/// The problem type of a budget refusal: the store is down, the page can never fit, or the
/// budget is spent for now.
fn budget_problem(e: &Exhausted) -> ProblemType {
    if e.store_unavailable {
        ProblemType::BudgetStoreUnavailable
    } else if e.retry_after.is_none() {
        ProblemType::BudgetPageOverCap
    } else {
        ProblemType::BudgetExhausted
    }
}

/// A store that is down is a 503 in every style; a page that can never fit a 403 (retrying
/// would only repeat it); a spent budget a 429, except in Salesforce's own shape, whose
/// `REQUEST_LIMIT_EXCEEDED` is a 403 (CRM-APIS.md §1.8).
fn budget_status(e: &Exhausted, dialect: Dialect, style: RefusalStyle) -> StatusCode {
    match budget_problem(e) {
        ProblemType::BudgetStoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ProblemType::BudgetPageOverCap => StatusCode::FORBIDDEN,
        _ if style == RefusalStyle::Vendor && dialect == Dialect::Salesforce => {
            StatusCode::FORBIDDEN
        }
        _ => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// A refusal made for a purpose: the policy's and a tunnel's refusals convert together with
/// the purpose they were made for, which `write-denied` names.
#[derive(Debug, Clone, Copy)]
pub struct ForPurpose<'a, R>(pub R, pub &'a str);

impl From<ForPurpose<'_, Refusal>> for ProxyError {
    fn from(ForPurpose(refusal, purpose): ForPurpose<'_, Refusal>) -> ProxyError {
        match refusal {
            Refusal::Blocked { category, .. } => ProxyError::Blocked { category },
            Refusal::WriteDenied => ProxyError::WriteDenied {
                purpose: purpose.to_string(),
            },
            Refusal::WriteActionNotAllowed { field_paths } => ProxyError::WriteActionNotAllowed {
                fields: field_paths,
            },
            Refusal::WriteFieldsDropped {
                field_paths,
                nothing_left,
            } => ProxyError::WriteFieldsDropped {
                fields: field_paths,
                nothing_left,
            },
            Refusal::RecordWithheld { .. } => ProxyError::RecordWithheld,
            Refusal::PseudonymKeyMissing | Refusal::NoInventory(_) => ProxyError::PolicyFault,
        }
    }
}

impl From<QueryRefusal> for ProxyError {
    fn from(refusal: QueryRefusal) -> ProxyError {
        match refusal {
            QueryRefusal::NotAllowed { fields } => ProxyError::QueryNotAllowed { fields },
            QueryRefusal::Unreadable(reason) => ProxyError::QueryNotCheckable { reason },
            QueryRefusal::AggregateNotAllowed { object, reason } => {
                ProxyError::AggregateNotAllowed { object, reason }
            }
            QueryRefusal::ConsentFieldMissing { fields } => {
                ProxyError::ConsentFieldMissing { fields }
            }
        }
    }
}

impl From<RouteRefusal> for ProxyError {
    fn from(refusal: RouteRefusal) -> ProxyError {
        match refusal {
            RouteRefusal::BadPath(reason) => ProxyError::BadPath { reason },
            RouteRefusal::MethodOverride(what) => ProxyError::MethodOverride { what },
            RouteRefusal::Connect => ProxyError::Unsupported { what: "CONNECT" },
        }
    }
}

/// A refused tunnel answers with its cause's own problem type (403 `unknown-resource`, 403
/// `write-denied`, 400 `request-not-inspectable`, 502 `response-not-inspectable`, ...),
/// wrapped in [`ProxyError::PartRefused`] to name the part.
impl From<ForPurpose<'_, TunnelRefusal>> for ProxyError {
    fn from(ForPurpose(refusal, purpose): ForPurpose<'_, TunnelRefusal>) -> ProxyError {
        let TunnelRefusal {
            direction,
            part,
            cause,
        } = refusal;
        let inspect = |reason| ProxyError::not_inspectable(direction, reason);
        let cause = match cause {
            Cause::Malformed(reason) | Cause::NotAllowed(reason) => inspect(reason),
            Cause::UnknownResource => ProxyError::UnknownResource,
            Cause::BadUrl(reason) => ProxyError::BadPath { reason },
            Cause::MethodOverride => ProxyError::MethodOverride {
                what: "a method override in a sub-request",
            },
            Cause::Nested => inspect(Inspection::NestedBatch),
            Cause::Reference => inspect(Inspection::Reference),
            Cause::MediaType if direction == Direction::Request => {
                ProxyError::UnsupportedMediaType {
                    expected: "application/json in every part",
                    got: "another media type".into(),
                }
            }
            Cause::MediaType => inspect(Inspection::MediaType),
            Cause::Unmatched => inspect(Inspection::UnmatchedPart),
            Cause::Query(refusal) => refusal.into(),
            Cause::Policy(refusal) => ForPurpose(refusal, purpose).into(),
        };
        if part == 0 {
            cause
        } else {
            ProxyError::PartRefused {
                part,
                cause: Box::new(cause),
            }
        }
    }
}

/// Query minimisation's verdict under the purpose's mode: in shadow mode a refusal is only
/// logged and the request goes on, sending what `unchecked` counts; otherwise it stands.
/// `request_id` or `part` (a tunnel's sub-request) say where in the log.
pub fn enforce_query(
    purpose: &Purpose,
    verdict: Result<Carried, QueryRefusal>,
    unchecked: impl FnOnce() -> Carried,
    request_id: Option<&str>,
    part: Option<usize>,
) -> Result<Carried, QueryRefusal> {
    let (carried, shadowed) = crate::policy::decide::query_verdict(purpose, verdict, unchecked)?;
    if let Some(refusal) = shadowed {
        tracing::warn!(request_id, part, purpose = %purpose.name, %refusal, "shadow mode: query would be refused");
    }
    Ok(carried)
}

impl From<&JsonError> for Inspection {
    fn from(e: &JsonError) -> Inspection {
        match e {
            JsonError::Syntax { .. } => Inspection::JsonSyntax,
            JsonError::DuplicateKey { .. } => Inspection::DuplicateKey,
            JsonError::TooDeep { .. } => Inspection::TooDeep,
            JsonError::TooLarge { .. } => Inspection::TooLarge,
            JsonError::ByteOrderMark => Inspection::ByteOrderMark,
            JsonError::InvalidUtf8 => Inspection::InvalidUtf8,
            JsonError::LoneSurrogate { .. } => Inspection::LoneSurrogate,
            JsonError::TrailingContent { .. } => Inspection::TrailingContent,
            JsonError::Empty => Inspection::Empty,
        }
    }
}

impl<E> From<&JsonStreamError<E>> for Inspection {
    fn from(e: &JsonStreamError<E>) -> Inspection {
        match e {
            JsonStreamError::Json { error, .. } => error.into(),
            JsonStreamError::Syntax { .. } => Inspection::JsonSyntax,
            JsonStreamError::Shape(_) => Inspection::JsonShape,
            JsonStreamError::RecordTooLarge { .. } => Inspection::RecordTooLarge,
            JsonStreamError::EnvelopeTooLarge { .. } => Inspection::EnvelopeTooLarge,
            JsonStreamError::Truncated => Inspection::Truncated,
            JsonStreamError::Callback(_) => Inspection::Refused,
            JsonStreamError::Spent => Inspection::Spent,
        }
    }
}

impl From<&CsvFailure> for Inspection {
    fn from(f: &CsvFailure) -> Inspection {
        use crate::body::csv::CsvError;
        match f {
            CsvFailure::Refused(_) => Inspection::Refused,
            CsvFailure::Malformed(CsvError::RowTooLarge { .. }) => Inspection::CsvRowTooLarge,
            CsvFailure::Malformed(CsvError::InvalidUtf8 { .. }) => Inspection::CsvInvalidUtf8,
            CsvFailure::Malformed(_) => Inspection::CsvMalformed,
            CsvFailure::Delimiter => Inspection::CsvDelimiter,
            CsvFailure::Spent => Inspection::CsvSpent,
        }
    }
}

impl From<&DecodeError> for Inspection {
    fn from(e: &DecodeError) -> Inspection {
        match e {
            DecodeError::TooLarge { .. } => Inspection::DecodedTooLarge,
            DecodeError::RatioExceeded { .. } => Inspection::CompressionBomb,
            DecodeError::Unknown(_) => Inspection::UnknownContentEncoding,
            DecodeError::TooManyCodings => Inspection::TooManyContentEncodings,
            DecodeError::Corrupt(_) | DecodeError::Unavailable(_) => {
                Inspection::CorruptContentEncoding
            }
        }
    }
}

#[cfg(test)]
mod tests;
