//! Batch tunnels: OData `$batch` (Dataverse) and Salesforce `/composite`, `/composite/batch`
//! and `/composite/tree/{SObject}`, governed part by part.
//!
//! A tunnel carries many sub-requests in one body, which makes it the classic way around a
//! per-route policy: a write the purpose may not make, or a read of an endpoint nobody
//! classified, hidden inside an innocent-looking `POST /$batch`. Zweck therefore governs every
//! sub-request **as if it had been sent alone**:
//!
//! - its URL is canonicalised exactly like a top-level path ([`crate::proxy::route::canonical_path`]);
//!   relative URLs are resolved against the service root, absolute URLs must name an accepted
//!   origin (the upstream's or Zweck's own) and the same service root, and every sub-request
//!   is forwarded in canonical form, so what was matched is what the CRM acts on;
//! - method overrides (headers or `_HttpMethod`) are refused;
//! - it is classified with the same [`PolicySet::classify`]: one unclassified sub-request
//!   refuses the **whole** tunnel (`unknown-resource`, naming the part), and a sub-request that
//!   is itself a tunnel is refused (no nesting);
//! - writes and deletes of a purpose with `writes: deny` are refused, write bodies go through
//!   [`policy::apply`] with [`Direction::Request`] (keep, drop, block only);
//! - on the way back each sub-response is matched to its sub-request (in order; `Content-ID` or
//!   `referenceId` where present) and filtered with that sub-request's operation and
//!   [`Direction::Response`]. A sub-body Zweck cannot parse is refused (fail closed). A single
//!   record withheld from the purpose becomes a 404 part, as it would be alone.
//!
//! Salesforce `@{ref.field}` references are resolved by Salesforce, *inside* the CRM, from
//! the unfiltered results of earlier sub-requests: a reference could copy a value the purpose
//! may not see into a write or a query. Zweck does not resolve them; it accepts only id
//! references (`@{refAccount.id}`, `@{q.records[0].Id}`), whose values are system ids.
//!
//! Entry points: [`govern_request`] before forwarding, [`govern_response`] on the answer.
//! Errors ([`TunnelRefusal`]) name part numbers, reasons and route templates, never values.

pub mod batch;
pub mod composite;

use bytes::Bytes;
use serde_json::Value;

use crate::body::multipart::{MultipartError, MultipartLimits};
use crate::dialect::Dialect;
use crate::error::ProxyError;
use crate::json::JsonLimits;
use crate::links::LinkRewriter;
use crate::policy::{
    self, Direction, OpKind, Operation, Outcome, PolicySet, PseudonymKey, Purpose, Refusal,
    RouteMatch, Writes,
};

pub use crate::policy::TunnelKind;

/// The tunnel request being governed.
#[derive(Debug, Clone, Copy)]
pub struct Tunnel<'a> {
    /// The upstream's dialect: sub-requests are classified in its inventory.
    pub dialect: Dialect,
    /// What kind of tunnel (from the operation's `tunnel:` key).
    pub kind: TunnelKind,
    /// The canonical path of the tunnel request (`/api/data/v9.2/$batch`,
    /// `/services/data/v66.0/composite`, `/services/data/v66.0/composite/tree/Account`).
    pub path: &'a str,
    /// Origins (`https://host[:port]`) an absolute sub-request URL may name: the upstream's
    /// and Zweck's `public_url`. Any other origin is refused.
    pub origins: &'a [String],
}

/// Caps on a tunnel.
#[derive(Debug, Clone, Copy, Default)]
pub struct TunnelLimits {
    /// Multipart caps (`max_parts` also caps composite sub-requests and tree records).
    pub multipart: MultipartLimits,
    /// Caps on the JSON documents (the composite body, each `$batch` part body).
    pub json: JsonLimits,
}

/// How a sub-request was classified.
#[derive(Debug, Clone)]
pub enum PartRoute {
    /// An inventory operation: its bodies are governed by it, both ways.
    Governed(Operation),
    /// An `ungoverned` route: no personal data, its response passes untouched.
    Ungoverned { template: String },
}

impl PartRoute {
    /// The route template, for logs and the transfer log.
    pub fn template(&self) -> &str {
        match self {
            PartRoute::Governed(op) => op.template(),
            PartRoute::Ungoverned { template } => template,
        }
    }
    /// The operation, when governed.
    pub fn operation(&self) -> Option<&Operation> {
        match self {
            PartRoute::Governed(op) => Some(op),
            PartRoute::Ungoverned { .. } => None,
        }
    }
}

/// One sub-request as governed on the way to the CRM.
#[derive(Debug, Clone)]
pub struct PartPlan {
    /// 1-based position in body order (change-set members and nested tree records included).
    pub index: usize,
    /// `Content-ID` ($batch) or `referenceId` (composite, tree), when the app gave one.
    pub id: Option<String>,
    /// The sub-request's method.
    pub method: String,
    /// How it was classified; the response side filters with the same operation.
    pub route: PartRoute,
    /// What the request policy did to its body (default when it had none).
    pub outcome: Outcome,
    /// Bytes of its body as forwarded (0 without a body).
    pub bytes: u64,
}

/// How the response must line up with the request (per top-level item of a `$batch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A single part: its plan index.
    Single(usize),
    /// A change set: its members' plan indices.
    ChangeSet(Vec<usize>),
}

/// A governed tunnel request.
#[derive(Debug, Clone)]
pub struct GovernedRequest {
    pub kind: TunnelKind,
    pub dialect: Dialect,
    /// The rewritten tunnel body to forward.
    pub body: Bytes,
    /// Its `Content-Type` (for `$batch`, the boundary quoted; for composite, JSON).
    pub content_type: String,
    /// Every sub-request in body order.
    pub parts: Vec<PartPlan>,
    /// `$batch` layout (top-level items), for matching the response.
    pub(crate) layout: Vec<Item>,
}

impl GovernedRequest {
    /// All part outcomes merged: what the transfer record of the request direction carries.
    pub fn outcome(&self) -> Outcome {
        merged(self.parts.iter().map(|p| &p.outcome))
    }
    /// Records per part (the transfer log's `parts`).
    pub fn records_per_part(&self) -> Vec<u64> {
        self.parts.iter().map(|p| p.outcome.records).collect()
    }
    /// The most permissive view of the tunnel as a whole: true when any part writes or deletes.
    pub fn writes(&self) -> bool {
        self.parts.iter().any(|p| {
            p.route
                .operation()
                .is_some_and(|op| op.op() != OpKind::Read)
        })
    }
}

/// One sub-response as governed on the way back.
#[derive(Debug, Clone)]
pub struct PartRecord {
    /// The `PartPlan::index` of the sub-request it answers.
    pub index: usize,
    /// `Content-ID` / `referenceId` as answered.
    pub id: Option<String>,
    /// The sub-response's HTTP status (after a withheld record became 404).
    pub status: Option<u16>,
    /// The route template of the sub-request.
    pub route: String,
    /// What the response policy did to its body.
    pub outcome: Outcome,
    /// The sub-response's headers as rebuilt (allowlisted; links rewritten when a rewriter
    /// was given).
    pub headers: Vec<(String, String)>,
    /// The single record of the part was withheld and the part answered 404.
    pub withheld: bool,
}

/// A governed tunnel response.
#[derive(Debug, Clone)]
pub struct GovernedResponse {
    /// The rebuilt body.
    pub body: Bytes,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Every sub-response in body order.
    pub parts: Vec<PartRecord>,
}

impl GovernedResponse {
    /// All part outcomes merged: what the transfer record of the response direction carries.
    pub fn outcome(&self) -> Outcome {
        merged(self.parts.iter().map(|p| &p.outcome))
    }
    /// Records per part (the transfer log's `parts`).
    pub fn records_per_part(&self) -> Vec<u64> {
        self.parts.iter().map(|p| p.outcome.records).collect()
    }
}

/// Why a tunnel was refused. `part` is 1-based (0: the tunnel body as a whole). Never carries
/// a value from a body or URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} part {part}: {cause}", match direction { Direction::Request => "request", Direction::Response => "response" })]
pub struct TunnelRefusal {
    pub direction: Direction,
    pub part: usize,
    pub cause: Cause,
}

/// The reason of a [`TunnelRefusal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cause {
    /// The tunnel body or a part is not well-formed (multipart, JSON, envelope shape).
    #[error("malformed ({0})")]
    Malformed(&'static str),
    /// A sub-request names a route no inventory classifies.
    #[error("the sub-request's endpoint is not classified")]
    UnknownResource,
    /// A sub-request URL that is not canonical, names a foreign origin or leaves the service root.
    #[error("the sub-request URL is refused ({0})")]
    BadUrl(&'static str),
    /// A method-override header or `_HttpMethod` parameter in a sub-request.
    #[error("method overrides are refused")]
    MethodOverride,
    /// Something the tunnel does not allow (GET in a change set, a body on GET, ...).
    #[error("not allowed in a tunnel ({0})")]
    NotAllowed(&'static str),
    /// A tunnel inside a tunnel.
    #[error("nested batches are refused")]
    Nested,
    /// A Salesforce `@{...}` reference to anything but an id.
    #[error("only id references (@{{ref.id}}) are accepted")]
    Reference,
    /// A sub-body in a media type Zweck cannot inspect.
    #[error("a sub-body must be JSON")]
    MediaType,
    /// The policy refused the part.
    #[error("{0}")]
    Policy(Refusal),
    /// Query minimisation refused the part's query.
    #[error("{0}")]
    Query(crate::policy::query::QueryRefusal),
    /// A sub-response that answers no sub-request (count, order or id).
    #[error("the sub-response answers no sub-request")]
    Unmatched,
}

impl TunnelRefusal {
    pub(crate) fn new(direction: Direction, part: usize, cause: Cause) -> TunnelRefusal {
        TunnelRefusal {
            direction,
            part,
            cause,
        }
    }

    /// The problem the proxy answers with: the cause's own problem type (403
    /// `unknown-resource`, 403 `write-denied`, 400 `request-not-inspectable`, 502
    /// `response-not-inspectable`, ...), wrapped in [`ProxyError::PartRefused`] to name the
    /// part. `purpose` names the purpose in `write-denied`.
    pub fn to_proxy_error(&self, purpose: &str) -> ProxyError {
        let request = self.direction == Direction::Request;
        let inspect = |reason: &'static str| {
            if request {
                ProxyError::RequestNotInspectable { reason }
            } else {
                ProxyError::ResponseNotInspectable { reason }
            }
        };
        let cause = match &self.cause {
            Cause::Malformed(reason) => inspect(reason),
            Cause::UnknownResource => ProxyError::UnknownResource,
            Cause::BadUrl(reason) => ProxyError::BadPath { reason },
            Cause::MethodOverride => ProxyError::MethodOverride {
                what: "a method override in a sub-request",
            },
            Cause::NotAllowed(what) => inspect(what),
            Cause::Nested => inspect("nested-batch"),
            Cause::Reference => inspect("reference"),
            Cause::MediaType if request => ProxyError::UnsupportedMediaType {
                expected: "application/json in every part",
                got: "another media type".into(),
            },
            Cause::MediaType => inspect("media-type"),
            Cause::Unmatched => inspect("unmatched-part"),
            Cause::Query(crate::policy::query::QueryRefusal::NotAllowed { fields }) => {
                ProxyError::QueryNotAllowed {
                    fields: fields.clone(),
                }
            }
            Cause::Query(crate::policy::query::QueryRefusal::Unreadable(reason)) => {
                ProxyError::QueryNotCheckable { reason }
            }
            Cause::Policy(r) => match r {
                Refusal::Blocked { category, .. } => ProxyError::Blocked {
                    category: category.clone(),
                },
                Refusal::WriteDenied => ProxyError::WriteDenied {
                    purpose: purpose.to_string(),
                },
                Refusal::WriteActionNotAllowed { field_paths } => {
                    ProxyError::WriteActionNotAllowed {
                        fields: field_paths.clone(),
                    }
                }
                Refusal::RecordWithheld { .. } => ProxyError::RecordWithheld,
                Refusal::PseudonymKeyMissing | Refusal::NoInventory(_) => ProxyError::PolicyFault,
            },
        };
        if self.part == 0 {
            cause
        } else {
            ProxyError::PartRefused {
                part: self.part,
                cause: Box::new(cause),
            }
        }
    }
}

/// Governs a tunnel request: parses it, classifies and filters every sub-request, and
/// rebuilds the body. Refuses the whole tunnel when one sub-request is refused.
#[allow(clippy::too_many_arguments)]
pub fn govern_request(
    set: &PolicySet,
    purpose: &Purpose,
    tunnel: &Tunnel<'_>,
    content_type: &str,
    body: &[u8],
    key: Option<&PseudonymKey>,
    limits: &TunnelLimits,
) -> Result<GovernedRequest, TunnelRefusal> {
    let cx = Cx {
        set,
        purpose,
        key,
        tunnel,
        limits,
    };
    match tunnel.kind {
        TunnelKind::OdataBatch => batch::govern_request(&cx, content_type, body),
        TunnelKind::SfComposite | TunnelKind::SfCompositeBatch | TunnelKind::SfTree => {
            composite::govern_request(&cx, content_type, body)
        }
    }
}

/// Governs a tunnel response: parses it, matches each sub-response to its sub-request and
/// filters it with that sub-request's operation, and rebuilds the body. `links`, when given,
/// rewrites absolute upstream links in part headers and JSON sub-bodies.
#[allow(clippy::too_many_arguments)]
pub fn govern_response(
    set: &PolicySet,
    purpose: &Purpose,
    tunnel: &Tunnel<'_>,
    request: &GovernedRequest,
    content_type: &str,
    body: &[u8],
    key: Option<&PseudonymKey>,
    limits: &TunnelLimits,
    links: Option<&LinkRewriter>,
) -> Result<GovernedResponse, TunnelRefusal> {
    let cx = Cx {
        set,
        purpose,
        key,
        tunnel,
        limits,
    };
    match request.kind {
        TunnelKind::OdataBatch => batch::govern_response(&cx, request, content_type, body, links),
        TunnelKind::SfComposite | TunnelKind::SfCompositeBatch | TunnelKind::SfTree => {
            composite::govern_response(&cx, request, content_type, body, links)
        }
    }
}

/// What every step needs.
pub(crate) struct Cx<'a> {
    pub set: &'a PolicySet,
    pub purpose: &'a Purpose,
    pub key: Option<&'a PseudonymKey>,
    pub tunnel: &'a Tunnel<'a>,
    pub limits: &'a TunnelLimits,
}

impl Cx<'_> {
    /// Classifies one sub-request (canonical path, no query).
    pub fn classify(
        &self,
        part: usize,
        method: &str,
        path: &str,
        in_change_set: bool,
    ) -> Result<PartRoute, TunnelRefusal> {
        let refuse = |cause| TunnelRefusal::new(Direction::Request, part, cause);
        let method = match method {
            "GET" => http::Method::GET,
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "PATCH" => http::Method::PATCH,
            "DELETE" => http::Method::DELETE,
            _ => return Err(refuse(Cause::NotAllowed("method"))),
        };
        if in_change_set && method == http::Method::GET {
            return Err(refuse(Cause::NotAllowed("get-in-change-set")));
        }
        match self.set.classify(self.tunnel.dialect, &method, path) {
            RouteMatch::Unknown => Err(refuse(Cause::UnknownResource)),
            RouteMatch::Ungoverned { template } => Ok(PartRoute::Ungoverned {
                template: template.to_string(),
            }),
            RouteMatch::Operation(op) if op.tunnel().is_some() => Err(refuse(Cause::Nested)),
            RouteMatch::Operation(op) => Ok(PartRoute::Governed(op.clone())),
        }
    }

    /// Query minimisation of one sub-request's URL (SOQL in `q`, OData options, HubSpot
    /// `idProperty`), as for a top-level request.
    pub fn check_query_url(
        &self,
        part: usize,
        route: &PartRoute,
        path: &str,
        forward: &str,
    ) -> Result<(), TunnelRefusal> {
        let PartRoute::Governed(op) = route else {
            return Ok(());
        };
        let query = forward.split_once('?').map(|(_, q)| q);
        let verdict = crate::policy::query::check_url(self.set, self.purpose, op, path, query);
        self.query_verdict(part, verdict)
    }

    /// Query minimisation of one sub-request's body (a Bulk query job, a search), as for a
    /// top-level request.
    pub fn check_query_body(
        &self,
        part: usize,
        route: &PartRoute,
        path: &str,
        body: &Value,
    ) -> Result<(), TunnelRefusal> {
        let PartRoute::Governed(op) = route else {
            return Ok(());
        };
        let verdict = crate::policy::query::check_body(self.set, self.purpose, op, path, body);
        self.query_verdict(part, verdict)
    }

    /// A refusal sinks the part; in shadow mode it is only logged.
    fn query_verdict(
        &self,
        part: usize,
        verdict: Result<(), crate::policy::query::QueryRefusal>,
    ) -> Result<(), TunnelRefusal> {
        match verdict {
            Ok(()) => Ok(()),
            Err(refusal) if self.purpose.mode == crate::policy::Mode::Shadow => {
                tracing::warn!(purpose = %self.purpose.name, part, %refusal, "shadow mode: query would be refused");
                Ok(())
            }
            Err(refusal) => Err(TunnelRefusal::new(
                Direction::Request,
                part,
                Cause::Query(refusal),
            )),
        }
    }

    /// Governs one sub-request body (None: the sub-request has none). Writes and deletes of
    /// a `writes: deny` purpose are refused with or without a body, in shadow mode too, as
    /// the proxy does for a top-level request.
    pub fn request_body(
        &self,
        part: usize,
        method: &str,
        route: &PartRoute,
        body: Option<&mut Value>,
    ) -> Result<Outcome, TunnelRefusal> {
        let refuse = |cause| TunnelRefusal::new(Direction::Request, part, cause);
        let op = match route {
            PartRoute::Governed(op) => op,
            PartRoute::Ungoverned { .. } if body.is_some() => {
                return Err(refuse(Cause::NotAllowed("body-on-ungoverned-route")))
            }
            PartRoute::Ungoverned { .. } => return Ok(Outcome::default()),
        };
        if op.op() != OpKind::Read && self.purpose.writes == Writes::Deny {
            return Err(refuse(Cause::Policy(Refusal::WriteDenied)));
        }
        let Some(body) = body else {
            return Ok(Outcome::default());
        };
        if matches!(method, "GET" | "HEAD" | "DELETE") {
            return Err(refuse(Cause::NotAllowed("body-not-allowed")));
        }
        policy::apply(
            self.set,
            self.purpose,
            op,
            Direction::Request,
            body,
            self.key,
        )
        .map_err(|r| refuse(Cause::Policy(r)))
    }

    /// Governs one sub-response body. `Ok(None)` means the single record of the part is
    /// withheld from the purpose: the caller answers the part with a 404.
    pub fn response_body(
        &self,
        part: usize,
        route: &PartRoute,
        body: &mut Value,
    ) -> Result<Option<Outcome>, TunnelRefusal> {
        let PartRoute::Governed(op) = route else {
            return Ok(Some(Outcome::default()));
        };
        match policy::apply(
            self.set,
            self.purpose,
            op,
            Direction::Response,
            body,
            self.key,
        ) {
            Ok(o) => Ok(Some(o)),
            Err(Refusal::RecordWithheld { .. }) => Ok(None),
            Err(r) => Err(TunnelRefusal::new(
                Direction::Response,
                part,
                Cause::Policy(r),
            )),
        }
    }
}

/// The outcome of a part whose record was withheld (it answers 404).
pub(crate) fn withheld_outcome() -> Outcome {
    let mut o = Outcome::default();
    o.actions.insert("record_removed", 1);
    o.changed = true;
    o
}

/// Sums part outcomes.
pub(crate) fn merged<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Outcome {
    let mut out = Outcome::default();
    for o in outcomes {
        out.records += o.records;
        for (k, n) in &o.actions {
            *out.actions.entry(*k).or_insert(0) += n;
        }
        for (k, n) in &o.rules {
            *out.rules.entry(k.clone()).or_insert(0) += n;
        }
        out.categories_received
            .extend(o.categories_received.iter().copied());
        out.categories_delivered
            .extend(o.categories_delivered.iter().copied());
        out.changed |= o.changed;
        out.shadow |= o.shadow;
        if out.shadow_refusal.is_none() {
            out.shadow_refusal = o.shadow_refusal.clone();
        }
    }
    out
}

/// How a sub-request URL may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlForm {
    /// OData: relative to the service root (`contacts?$top=1`), an absolute path or an
    /// absolute URI.
    ServiceRelative,
    /// Salesforce `/composite/batch`: relative to `/services/data/` (`v66.0/sobjects/...`)
    /// or an absolute path.
    DataRelative,
    /// Salesforce `/composite`: an absolute path (`/services/data/v66.0/...`).
    AbsolutePath,
}

/// A resolved sub-request URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The canonical path, for classification.
    pub path: String,
    /// The URL to forward: canonical, in the form the app used (relative stays relative;
    /// an absolute URI becomes an absolute path).
    pub forward: String,
}

/// The service root of the tunnel: `/api/data/v9.2/`, `/services/data/v66.0/`.
pub(crate) fn service_root(tunnel: &Tunnel<'_>) -> Option<String> {
    match tunnel.kind {
        TunnelKind::OdataBatch => {
            let (root, _) = tunnel.path.rsplit_once('/')?;
            Some(format!("{root}/"))
        }
        _ => {
            let rest = tunnel.path.strip_prefix("/services/data/")?;
            let version = rest.split('/').next().filter(|v| !v.is_empty())?;
            Some(format!("/services/data/{version}/"))
        }
    }
}

/// Normalises an origin for comparison: lowercase, no trailing `/`, no default port.
fn normal_origin(origin: &str) -> String {
    let o = origin.trim_end_matches('/').to_ascii_lowercase();
    if let Some(bare) = o.strip_suffix(":443").filter(|_| o.starts_with("https://")) {
        return bare.to_string();
    }
    if let Some(bare) = o.strip_suffix(":80").filter(|_| o.starts_with("http://")) {
        return bare.to_string();
    }
    o
}

/// Resolves, checks and canonicalises one sub-request URL.
pub(crate) fn resolve_target(
    tunnel: &Tunnel<'_>,
    part: usize,
    raw: &str,
    form: UrlForm,
) -> Result<Target, TunnelRefusal> {
    let bad = |reason| TunnelRefusal::new(Direction::Request, part, Cause::BadUrl(reason));
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("empty, space, control or non-ASCII byte"));
    }
    if raw.contains('#') {
        return Err(bad("fragment"));
    }
    let root = service_root(tunnel).ok_or(bad("no service root"))?;
    let lower = raw.to_ascii_lowercase();
    // (path and query as written, was it relative?)
    let (full, relative): (String, bool) =
        if lower.starts_with("https://") || lower.starts_with("http://") {
            if form != UrlForm::ServiceRelative {
                return Err(bad("absolute URI"));
            }
            let scheme_end = raw.find("://").map_or(0, |i| i + 3);
            let rest = &raw[scheme_end..];
            let auth_len = rest.find(['/', '?']).unwrap_or(rest.len());
            let authority = &rest[..auth_len];
            if authority.is_empty() || authority.contains('@') {
                return Err(bad("authority"));
            }
            let origin = normal_origin(&raw[..scheme_end + auth_len]);
            if !tunnel.origins.iter().any(|o| normal_origin(o) == origin) {
                return Err(bad("foreign origin"));
            }
            let tail = &rest[auth_len..];
            if tail.is_empty() || tail.starts_with('?') {
                (format!("/{tail}"), false)
            } else {
                (tail.to_string(), false)
            }
        } else if raw.starts_with("//") || has_scheme(raw) {
            return Err(bad("scheme or network-path reference"));
        } else if raw.starts_with('/') {
            (raw.to_string(), false)
        } else {
            match form {
                UrlForm::ServiceRelative => (format!("{root}{raw}"), true),
                UrlForm::DataRelative => (format!("/services/data/{raw}"), true),
                UrlForm::AbsolutePath => return Err(bad("relative URL")),
            }
        };
    let (path, query) = match full.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (full.as_str(), None),
    };
    let canonical = crate::proxy::route::canonical_path(path).map_err(|e| match e {
        ProxyError::BadPath { reason } => bad(reason),
        _ => bad("not canonical"),
    })?;
    if !canonical.starts_with(&root) {
        return Err(bad("outside the service root"));
    }
    if let Some(q) = query {
        for pair in q.split('&') {
            let name = pair.split('=').next().unwrap_or("");
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if ["_httpmethod", "_method"]
                .iter()
                .any(|p| decoded.eq_ignore_ascii_case(p))
            {
                return Err(TunnelRefusal::new(
                    Direction::Request,
                    part,
                    Cause::MethodOverride,
                ));
            }
        }
    }
    let shown = if relative {
        let base = match form {
            UrlForm::ServiceRelative => root.as_str(),
            _ => "/services/data/",
        };
        canonical[base.len()..].to_string()
    } else {
        canonical.clone()
    };
    let forward = match query {
        Some(q) => format!("{shown}?{q}"),
        None => shown,
    };
    Ok(Target {
        path: canonical,
        forward,
    })
}

/// RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"` at the start.
fn has_scheme(raw: &str) -> bool {
    raw.split_once(':').is_some_and(|(head, _)| {
        head.starts_with(|c: char| c.is_ascii_alphabetic())
            && head
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    })
}

/// Headers that ask a server to treat a request as another method.
pub(crate) fn is_override_header(name: &str) -> bool {
    [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether every `@{...}` in `text` is an id reference: `@{name(.name|[n])*}` whose last
/// name is `id` (any case). Percent-encoded braces are refused too.
pub(crate) fn references_ok(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if lower.contains("%7b") || lower.contains("%7d") {
        return false;
    }
    let mut rest = text;
    while let Some(at) = rest.find("@{") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return false;
        };
        if !id_reference(&after[..end]) {
            return false;
        }
        rest = &after[end + 1..];
    }
    true
}

fn id_reference(expr: &str) -> bool {
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let mut names = Vec::new();
    for piece in expr.split('.') {
        // name[0][1]
        let (name, mut idx) = match piece.find('[') {
            Some(i) => (&piece[..i], &piece[i..]),
            None => (piece, ""),
        };
        if !word(name) {
            return false;
        }
        while !idx.is_empty() {
            let Some(close) = idx.find(']') else {
                return false;
            };
            let n = &idx[1..close];
            if !idx.starts_with('[') || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            idx = &idx[close + 1..];
        }
        names.push(name);
    }
    names.len() >= 2 && names.last().is_some_and(|n| n.eq_ignore_ascii_case("id"))
}

/// Whether every key and string value of a JSON document passes [`references_ok`].
pub(crate) fn value_references_ok(v: &Value) -> bool {
    match v {
        Value::String(s) => references_ok(s),
        Value::Array(items) => items.iter().all(value_references_ok),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| !k.contains("@{") && references_ok(k) && value_references_ok(v)),
        _ => true,
    }
}

/// A static reason for a multipart error, and the part it names.
pub(crate) fn multipart_refusal(direction: Direction, e: &MultipartError) -> TunnelRefusal {
    use MultipartError as M;
    let (part, cause) = match e {
        M::NotMultipart => (0, Cause::Malformed("not-multipart")),
        M::MissingStart => (0, Cause::Malformed("multipart-start")),
        M::MissingClose => (0, Cause::Malformed("multipart-close")),
        M::BadDelimiter { part } => (*part, Cause::Malformed("multipart-delimiter")),
        M::Epilogue => (0, Cause::Malformed("multipart-epilogue")),
        M::TooManyParts { .. } => (0, Cause::Malformed("too-many-parts")),
        M::PartTooLarge { part, .. } => (*part, Cause::Malformed("part-too-large")),
        M::TooDeep { part } => (*part, Cause::Nested),
        M::PartHeader { part } => (*part, Cause::Malformed("part-header")),
        M::PartContentType { part } => (*part, Cause::Malformed("part-content-type")),
        M::TransferEncoding { part } => (*part, Cause::Malformed("part-transfer-encoding")),
        M::StartLine { part } => (*part, Cause::Malformed("part-start-line")),
        M::HttpHeader { part } => (*part, Cause::Malformed("part-http-header")),
        M::ContentLength { part } => (*part, Cause::Malformed("part-content-length")),
        M::InnerTransferEncoding { part } => (*part, Cause::Malformed("part-transfer-encoding")),
        M::MixedLineEndings => (0, Cause::Malformed("mixed-line-endings")),
        M::Unwritable { part } => (*part, Cause::Malformed("unwritable")),
    };
    TunnelRefusal::new(direction, part, cause)
}

#[cfg(test)]
mod tests;
