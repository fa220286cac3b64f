//! Batch tunnels: OData `$batch` (Dataverse) and Salesforce `/composite`, `/composite/batch`
//! and `/composite/tree/{SObject}`, governed part by part.
//!
//! A tunnel carries many sub-requests in one body, which makes it the classic way around a
//! per-route policy: a write the purpose may not make, or a read of an endpoint nobody
//! classified, hidden inside an innocent-looking `POST /$batch`. Zweck therefore governs every
//! sub-request **as if it had been sent alone**:
//!
//! - its URL is canonicalised exactly like a top-level path ([`crate::proxy::route::canonical_path`],
//!   see `target.rs`);
//!   relative URLs are resolved against the service root, absolute URLs must name an accepted
//!   origin (the upstream's or Zweck's own) and the same service root, and every sub-request
//!   is forwarded in canonical form, so what was matched is what the CRM acts on;
//! - method overrides (headers or `_HttpMethod`) are refused, by the same rules as phase 2;
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
//! Entry points: [`govern_request`] in phase 3, [`govern_response`] in phase 6. Errors
//! ([`TunnelRefusal`]) name part numbers, reasons and route templates, never values; `error.rs`
//! turns them into the cause's own problem type.

pub mod batch;
pub mod composite;
mod target;

use bytes::Bytes;
use serde_json::Value;

use crate::body::multipart::{MultipartError, MultipartLimits};
use crate::dialect::Dialect;
use crate::error::Inspection;
use crate::json::JsonLimits;
use crate::links::LinkRewriter;
use crate::policy::query::{self, Carried, Shape};
use crate::policy::{
    self, Direction, OpKind, Operation, Outcome, PolicySet, PseudonymKey, Purpose, Refusal,
    RouteMatch, Writes,
};
use crate::proxy::route::Route;
use crate::state::State;

pub use crate::policy::TunnelKind;
pub(crate) use target::{
    references_ok, resolve_target, service_root, value_references_ok, UrlForm,
};

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

impl<'a> Tunnel<'a> {
    /// A tunnel request on `route`: its parts may address the upstream's origin or Zweck's.
    pub fn new(dialect: Dialect, kind: TunnelKind, route: &'a Route) -> Tunnel<'a> {
        Tunnel {
            dialect,
            kind,
            path: &route.path,
            origins: &route.upstream.origins,
        }
    }
}

/// The caps of `limits` on a tunnel: default multipart caps, the governed JSON caps.
fn limits(state: &State) -> TunnelLimits {
    TunnelLimits {
        multipart: Default::default(),
        json: crate::proxy::buffer::json_limits(state),
    }
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
    /// What query minimisation knows of its answer (consent fields added, aggregate columns).
    pub shape: Shape,
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
    Malformed(Inspection),
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
    NotAllowed(Inspection),
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
}

/// Governs a tunnel request: parses it, classifies and filters every sub-request, and
/// rebuilds the body. Refuses the whole tunnel when one sub-request is refused.
pub fn govern_request(
    cx: &Cx<'_>,
    content_type: &str,
    body: &[u8],
) -> Result<GovernedRequest, TunnelRefusal> {
    match cx.tunnel.kind {
        TunnelKind::OdataBatch => batch::govern_request(cx, content_type, body),
        TunnelKind::SfComposite
        | TunnelKind::SfCompositeBatch
        | TunnelKind::SfTree
        | TunnelKind::SfGraph => composite::govern_request(cx, content_type, body),
    }
}

/// Governs a tunnel response: parses it, matches each sub-response to its sub-request and
/// filters it with that sub-request's operation, and rebuilds the body. `links`, when given,
/// rewrites absolute upstream links in part headers and JSON sub-bodies.
pub fn govern_response(
    cx: &Cx<'_>,
    request: &GovernedRequest,
    content_type: &str,
    body: &[u8],
    links: Option<&LinkRewriter>,
) -> Result<GovernedResponse, TunnelRefusal> {
    match request.kind {
        TunnelKind::OdataBatch => batch::govern_response(cx, request, content_type, body, links),
        TunnelKind::SfComposite
        | TunnelKind::SfCompositeBatch
        | TunnelKind::SfTree
        | TunnelKind::SfGraph => composite::govern_response(cx, request, content_type, body, links),
    }
}

/// What governing a tunnel needs: the policy snapshot, the caller's purpose, the pseudonym
/// key, the tunnel and its caps.
pub struct Cx<'a> {
    pub set: &'a PolicySet,
    pub purpose: &'a Purpose,
    pub key: Option<&'a PseudonymKey>,
    pub tunnel: Tunnel<'a>,
    pub limits: TunnelLimits,
}

impl<'a> Cx<'a> {
    /// The tunnel of a governed request on `route`, for `purpose`, under the proxy's caps.
    pub fn new(
        state: &'a State,
        route: &'a Route,
        purpose: &'a Purpose,
        dialect: Dialect,
        kind: TunnelKind,
    ) -> Cx<'a> {
        Cx {
            set: &route.policy,
            purpose,
            key: route.pseudonym_key.as_ref(),
            tunnel: Tunnel::new(dialect, kind, route),
            limits: limits(state),
        }
    }
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
            _ => return Err(refuse(Cause::NotAllowed(Inspection::Method))),
        };
        if in_change_set && method == http::Method::GET {
            return Err(refuse(Cause::NotAllowed(Inspection::GetInChangeSet)));
        }
        match self.set.classify(self.tunnel.dialect, &method, path) {
            RouteMatch::Unknown => Err(refuse(Cause::UnknownResource)),
            // metadata describes objects, no customer data: it passes as ungoverned parts do
            RouteMatch::Ungoverned { template } | RouteMatch::Metadata { template, .. } => {
                Ok(PartRoute::Ungoverned {
                    template: template.to_string(),
                })
            }
            RouteMatch::Operation(op) if op.tunnel().is_some() => Err(refuse(Cause::Nested)),
            RouteMatch::Operation(op) => Ok(PartRoute::Governed(op.clone())),
        }
    }

    /// Query minimisation of one sub-request's URL (SOQL in `q`, OData options, HubSpot
    /// `idProperty`), as for a top-level request: the URL to forward (`forward` with the
    /// purpose's consent fields added to its query), the shape of the part's answer and the
    /// categories the URL sends.
    pub fn review_query_url(
        &self,
        part: usize,
        route: &PartRoute,
        path: &str,
        forward: &str,
    ) -> Result<(String, Shape, Carried), TunnelRefusal> {
        let PartRoute::Governed(op) = route else {
            return Ok((forward.to_string(), Shape::default(), Carried::new()));
        };
        let (target, query) = match forward.split_once('?') {
            Some((t, q)) => (t, Some(q)),
            None => (forward, None),
        };
        let (set, purpose) = (self.set, self.purpose);
        match query::review_url(set, purpose, op, path, query) {
            Ok(reviewed) => Ok(match reviewed.query {
                Some(q) => (format!("{target}?{q}"), reviewed.shape, reviewed.carried),
                None => (forward.to_string(), reviewed.shape, reviewed.carried),
            }),
            // shadow mode: the part goes out as the app wrote it, counted in full
            Err(refusal) => {
                let carried = self.query_verdict(part, Err(refusal), || {
                    query::carried_by_url(set, purpose, op, path, query)
                })?;
                Ok((forward.to_string(), Shape::default(), carried))
            }
        }
    }

    /// Query minimisation of one sub-request's body (a Bulk query job, a search), as for a
    /// top-level request: the purpose's consent fields are added in place; the shape of the
    /// part's answer and the categories the body's query sends are returned.
    pub fn review_query_body(
        &self,
        part: usize,
        route: &PartRoute,
        path: &str,
        body: &mut Value,
    ) -> Result<(Shape, Carried), TunnelRefusal> {
        let PartRoute::Governed(op) = route else {
            return Ok((Shape::default(), Carried::new()));
        };
        let (set, purpose) = (self.set, self.purpose);
        match query::review_query_body(set, purpose, op, path, body) {
            Ok(reviewed) => Ok(reviewed),
            Err(refusal) => {
                let carried = self.query_verdict(part, Err(refusal), || {
                    query::carried_by_body(set, purpose, op, path, body)
                })?;
                Ok((Shape::default(), carried))
            }
        }
    }

    /// A refusal sinks the part; in shadow mode it is only logged.
    fn query_verdict(
        &self,
        part: usize,
        verdict: Result<Carried, query::QueryRefusal>,
        unchecked: impl FnOnce() -> Carried,
    ) -> Result<Carried, TunnelRefusal> {
        crate::error::enforce_query(self.purpose, verdict, unchecked, None, Some(part))
            .map_err(|refusal| TunnelRefusal::new(Direction::Request, part, Cause::Query(refusal)))
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
                return Err(refuse(Cause::NotAllowed(Inspection::BodyOnUngovernedRoute)))
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
            return Err(refuse(Cause::NotAllowed(Inspection::BodyNotAllowed)));
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

    /// Governs one sub-response body (the answer to `plan`). `Ok(None)` means the single
    /// record of the part is withheld from the purpose: the caller answers the part with a 404.
    pub fn response_body(
        &self,
        part: usize,
        plan: &PartPlan,
        body: &mut Value,
    ) -> Result<Option<Outcome>, TunnelRefusal> {
        let PartRoute::Governed(op) = &plan.route else {
            return Ok(Some(Outcome::default()));
        };
        match policy::apply_shaped(
            self.set,
            self.purpose,
            op,
            Direction::Response,
            body,
            self.key,
            &plan.shape,
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

/// The reason for a multipart error, and the part it names.
pub(crate) fn multipart_refusal(direction: Direction, e: &MultipartError) -> TunnelRefusal {
    use Inspection as I;
    use MultipartError as M;
    let malformed = |part: usize, reason| (part, Cause::Malformed(reason));
    let (part, cause) = match e {
        M::NotMultipart => malformed(0, I::NotMultipart),
        M::MissingStart => malformed(0, I::MultipartStart),
        M::MissingClose => malformed(0, I::MultipartClose),
        M::BadDelimiter { part } => malformed(*part, I::MultipartDelimiter),
        M::Epilogue => malformed(0, I::MultipartEpilogue),
        M::TooManyParts { .. } => malformed(0, I::TooManyParts),
        M::PartTooLarge { part, .. } => malformed(*part, I::PartTooLarge),
        M::TooDeep { part } => (*part, Cause::Nested),
        M::PartHeader { part } => malformed(*part, I::PartHeader),
        M::PartContentType { part } => malformed(*part, I::PartContentType),
        M::TransferEncoding { part } => malformed(*part, I::PartTransferEncoding),
        M::StartLine { part } => malformed(*part, I::PartStartLine),
        M::HttpHeader { part } => malformed(*part, I::PartHttpHeader),
        M::ContentLength { part } => malformed(*part, I::PartContentLength),
        M::InnerTransferEncoding { part } => malformed(*part, I::PartTransferEncoding),
        M::MixedLineEndings => malformed(0, I::MixedLineEndings),
        M::Unwritable { part } => malformed(*part, I::Unwritable),
    };
    TunnelRefusal::new(direction, part, cause)
}

#[cfg(test)]
mod tests;
