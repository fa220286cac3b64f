//! The per-request pipeline, phase by phase (DESIGN.md §1).
//!
//! [`handle`] runs the phases in order over a [`Ctx`]; each phase is a plain function whose
//! doc says when it runs, what it may change and what its error means. Every failure is a
//! [`ProxyError`] turned into a problem+json response in exactly one place (`error.rs`); the
//! service itself never fails, because a hyper service that errors drops the connection
//! without an answer.
//!
//! The order matters: identify before route, so an unknown caller learns nothing about which
//! paths exist; route (with path canonicalisation) before anything reads the body, so the
//! policy is chosen for the path the CRM will really act on; the transfer record is appended
//! before the response is released, so nothing flows that the log does not show.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response};
use hyper::body::Incoming;

use crate::audit::{self, Decision, MechanismDecision};
use crate::body::{self, encoding, media, BoxError, ProxyBody};
use crate::caller::Caller;
use crate::error::ProxyError;
use crate::json::{self, JsonLimits};
use crate::metrics::{RequestLabels, UpstreamLabels};

pub mod log;
pub mod route;
pub mod stream;
pub mod tunnel;
use self::log::{BodyReport, Exchange};
use crate::policy::{
    self, Direction, OpKind, Operation, Outcome, PolicySet, Refusal, RouteClass, RouteMatch, Writes,
};
use crate::state::{State, UpstreamEntry};
use crate::tls::PeerIdentity;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "zweck-request-id";

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The verified client certificate's names, when one was presented.
    pub identity: Option<PeerIdentity>,
}

/// The response header naming the policy version that decided the exchange.
pub const POLICY_HEADER: &str = "zweck-policy";

/// How a route is governed.
#[derive(Debug, Clone)]
pub enum Governance {
    /// Listed as carrying no personal data: streamed through untouched (links aside).
    Ungoverned { template: String },
    /// An inventory operation: every body is parsed and filtered for the purpose.
    Governed { op: Operation },
}

/// Per-request context, filled in as the phases run.
#[derive(Debug)]
pub struct Ctx {
    pub request_id: String,
    pub started: Instant,
    pub caller: Option<Caller>,
    pub upstream: Option<Arc<UpstreamEntry>>,
    pub governance: Option<Governance>,
    /// The policy snapshot this request uses from start to end.
    pub policy: Option<Arc<PolicySet>>,
    pub method: http::Method,
    /// The filtered request body that went to the processor (governed writes).
    pub sent: Option<BodyReport>,
    /// The filtered response body that came back (governed responses).
    pub received: Option<BodyReport>,
    /// Whether the request was handed to the upstream.
    pub forwarded: bool,
    /// The export budget left after this exchange (for RateLimit headers).
    pub allowance: Option<crate::budget::Allowance>,
    /// The app's Accept-Encoding, for re-encoding a filtered response.
    pub accept_encoding: Option<String>,
    /// A governed `$batch` / composite request: its parts, to govern the response part by part.
    pub tunnel: Option<crate::proxy::tunnel::GovernedRequest>,
    /// Records per part of the tunnel response.
    pub tunnel_parts_received: Vec<u64>,
}

impl Ctx {
    fn template(&self) -> &str {
        match &self.governance {
            Some(Governance::Ungoverned { template }) => template,
            Some(Governance::Governed { op }) => op.template(),
            None => "-",
        }
    }

    /// The exchange as the transfer log sees it; None unless the route is governed and the
    /// caller is known.
    fn exchange(&self) -> Option<Exchange<'_>> {
        let Some(Governance::Governed { op }) = &self.governance else {
            return None;
        };
        let caller = self.caller.as_ref()?;
        Some(Exchange {
            request_id: &self.request_id,
            app: &caller.app,
            purpose: &caller.purpose,
            method: self.method.as_str(),
            route: op.template(),
            policy: self.policy.as_deref()?,
            upstream: self.upstream.as_deref()?,
        })
    }
}

/// The route decision of phase 2.
struct Routed {
    upstream: Arc<UpstreamEntry>,
    canonical_path: String,
    governance: Governance,
    policy: Arc<PolicySet>,
}

/// Entry point for every request on the listener.
pub async fn handle(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let mut ctx = Ctx {
        request_id: state.next_request_id(),
        started: Instant::now(),
        caller: None,
        upstream: None,
        governance: None,
        policy: None,
        method: req.method().clone(),
        sent: None,
        received: None,
        forwarded: false,
        allowance: None,
        accept_encoding: None,
        tunnel: None,
        tunnel_parts_received: Vec::new(),
    };
    let method = req.method().clone();
    let mut resp = match pipeline(&state, &conn, &mut ctx, req).await {
        Ok(resp) => resp,
        Err(err) => {
            log_refusal(&state, &ctx, &err).await;
            tracing::info!(
                request_id = %ctx.request_id,
                app = ctx.caller.as_ref().map(|c| &*c.app).unwrap_or("-"),
                purpose = ctx.caller.as_ref().map(|c| &*c.purpose).unwrap_or("-"),
                route = ctx.template(),
                problem = err.slug(),
                status = err.status().as_u16(),
                "request refused"
            );
            err.to_response(Some(&ctx.request_id))
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    if let Some(set) = &ctx.policy {
        if let Ok(v) = HeaderValue::from_str(set.version()) {
            resp.headers_mut().insert(POLICY_HEADER, v);
        }
    }
    if resp.status().is_success() {
        if let Some(a) = &ctx.allowance {
            for (name, value) in a.headers() {
                resp.headers_mut().insert(name, value);
            }
        }
    }
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            upstream: ctx
                .upstream
                .as_ref()
                .map(|u| u.upstream.name().to_string())
                .unwrap_or_else(|| "-".into()),
            app: ctx
                .caller
                .as_ref()
                .map(|c| c.app.to_string())
                .unwrap_or_else(|| "-".into()),
            purpose: ctx
                .caller
                .as_ref()
                .map(|c| c.purpose.to_string())
                .unwrap_or_else(|| "-".into()),
            status: resp.status().as_u16(),
        })
        .inc();
    tracing::debug!(request_id = %ctx.request_id, %method, route = ctx.template(), status = resp.status().as_u16(), "answered");
    Ok(resp)
}

async fn pipeline(
    state: &State,
    conn: &ConnInfo,
    ctx: &mut Ctx,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let caller = identify(state, conn, req.headers())?;
    ctx.caller = Some(caller.clone());
    let routed = route(state, &req)?;
    ctx.upstream = Some(routed.upstream.clone());
    ctx.governance = Some(routed.governance.clone());
    ctx.policy = Some(routed.policy.clone());
    let mut upstream_req = filter_request(state, ctx, &caller, &routed, req).await?;
    precheck(state, ctx, &mut upstream_req).await?;
    permit_transfer(state, ctx)?;
    append(state, ctx, audit::Direction::ToProcessor, 0).await?;
    ctx.forwarded = true;
    let resp = forward(state, &routed, upstream_req).await?;
    let resp = filter_response(state, ctx, &caller, &routed, resp).await?;
    charge(state, ctx).await?;
    append(
        state,
        ctx,
        audit::Direction::FromProcessor,
        resp.status().as_u16(),
    )
    .await?;
    Ok(respond(resp))
}

/// Phase 1. Who is calling, for which purpose. Fails with 401 (unknown app) or 403 (purpose
/// missing or not granted) before anything else about the request is looked at.
fn identify(state: &State, conn: &ConnInfo, headers: &HeaderMap) -> Result<Caller, ProxyError> {
    state.identities.identify(conn.identity.as_ref(), headers)
}

/// Phase 2. Canonicalises the path, refuses method overrides, picks the upstream and decides
/// how the route is governed. A path on an upstream that matches nothing classified is
/// refused (403 `unknown-resource`): new endpoints stay closed until someone classifies them.
fn route(state: &State, req: &Request<Incoming>) -> Result<Routed, ProxyError> {
    route::refuse_method_override(req.method(), req.uri(), req.headers())?;
    let canonical_path = route::canonical_path(req.uri().path())?;
    let host = route::request_host(req.uri(), req.headers());
    let upstream = route::select(
        state.upstreams.iter().map(|u| (&u.upstream.rule, u)),
        host.as_deref(),
        &canonical_path,
    )
    .ok_or(ProxyError::NoRoute)?
    .clone();
    let policy = state.policies.current();
    let ungoverned = upstream
        .upstream
        .config
        .ungoverned
        .iter()
        .find(|p| p.matches(req.method(), &canonical_path));
    let governance = match ungoverned {
        Some(p) => Governance::Ungoverned {
            template: p.template().to_string(),
        },
        None => match policy.classify(
            upstream.upstream.config.dialect,
            req.method(),
            &canonical_path,
        ) {
            RouteMatch::Ungoverned { template } => Governance::Ungoverned {
                template: template.to_string(),
            },
            RouteMatch::Operation(op) => Governance::Governed { op: op.clone() },
            // New endpoints stay closed until an inventory classifies them.
            RouteMatch::Unknown => return Err(ProxyError::UnknownResource),
        },
    };
    Ok(Routed {
        upstream,
        canonical_path,
        governance,
        policy,
    })
}

/// Phase 3. Builds the request for the upstream: canonical path, headers filtered (hop-by-hop,
/// the app's credentials, `Zweck-*`, cookies and client addresses never reach the CRM),
/// framing left to hyper, the upstream's own credential injected. On ungoverned routes the
/// body streams through under the hard size cap.
async fn filter_request(
    state: &State,
    ctx: &mut Ctx,
    caller: &Caller,
    routed: &Routed,
    req: Request<Incoming>,
) -> Result<Request<ProxyBody>, ProxyError> {
    let (parts, incoming) = req.into_parts();
    if let Governance::Governed { op } = &routed.governance {
        refuse_on_governed(&parts.headers)?;
        let purpose = purpose_of(&routed.policy, caller)?;
        query_check(
            ctx,
            purpose,
            policy::query::check_url(
                &routed.policy,
                purpose,
                op,
                &routed.canonical_path,
                parts.uri.query(),
            ),
        )?;
        // a tunnel's own operation is a read; its write parts are refused inside it
        if op.tunnel().is_none()
            && matches!(op.op(), OpKind::Write | OpKind::Delete)
            && purpose.writes == Writes::Deny
        {
            return Err(ProxyError::WriteDenied {
                purpose: purpose.name.clone(),
            });
        }
    }
    let limit = state.config.limits.max_body_bytes;
    if let Some(len) = content_length(&parts.headers) {
        if len > limit {
            return Err(ProxyError::BodyTooLarge { limit });
        }
    }
    let upstream = &routed.upstream.upstream;
    let uri = upstream.uri_for(&routed.canonical_path, parts.uri.query())?;
    ctx.accept_encoding = header_str(&parts.headers, header::ACCEPT_ENCODING);
    let mut headers = parts.headers;
    strip_request_headers(&mut headers);
    // Per-dialect allowlist: personal data also travels in debug and error headers.
    crate::body::headers::filter_request_headers(upstream.config.dialect, &mut headers);
    headers.remove(header::ACCEPT_ENCODING);
    if let Governance::Governed { op } = &routed.governance {
        // only what Zweck can decode and parse comes back
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(encoding::acceptable_encodings()),
        );
        // the media type the route's parser handles (Bulk results are CSV; their JSON
        // error bodies are still accepted and inspected)
        let accept = match op.format() {
            policy::BodyFormat::Csv => "text/csv, application/json",
            _ => "application/json",
        };
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
    }
    // Ungoverned routes ask for identity, so absolute links in small JSON bodies can be
    // rewritten and nothing arrives in a coding the app did not ask for.
    if let Some(auth) = upstream.authorization().await? {
        headers.insert(header::AUTHORIZATION, auth);
    }
    // An empty body that claims a media type is a (malformed) governed body, not no body.
    let declares_body = headers.contains_key(header::CONTENT_TYPE)
        && !matches!(parts.method.as_str(), "GET" | "HEAD" | "DELETE");
    let governed = matches!(routed.governance, Governance::Governed { .. });
    let body = if http_body::Body::is_end_stream(&incoming) && !(governed && declares_body) {
        body::empty()
    } else if let Governance::Governed { op } = &routed.governance {
        let method = parts.method.as_str();
        if matches!(method, "GET" | "HEAD" | "DELETE") {
            return Err(ProxyError::BodyNotAllowed {
                method: method.to_string(),
            });
        }
        if op.tunnel().is_some() {
            let bytes =
                tunnel_request_body(state, ctx, caller, routed, op, &mut headers, incoming).await?;
            let mut out = Request::new(body::full(bytes));
            *out.method_mut() = parts.method;
            *out.uri_mut() = uri;
            *out.headers_mut() = headers;
            return Ok(out);
        }
        let (bytes, outcome) =
            governed_request_body(state, ctx, caller, routed, op, &mut headers, incoming).await?;
        ctx.sent = Some(BodyReport {
            outcome,
            bytes: bytes.len() as u64,
        });
        body::full(bytes)
    } else {
        body::stream(http_body_util::Limited::new(incoming, limit as usize))
    };
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    Ok(out)
}

/// Headers that would let a governed body slip past inspection.
fn refuse_on_governed(headers: &HeaderMap) -> Result<(), ProxyError> {
    if headers.contains_key(header::RANGE) {
        return Err(ProxyError::Unsupported {
            what: "Range on a governed route",
        });
    }
    if headers.contains_key(header::UPGRADE) {
        return Err(ProxyError::Unsupported {
            what: "Upgrade on a governed route",
        });
    }
    Ok(())
}

/// Query minimisation's verdict: refused, or in shadow mode logged and let through.
fn query_check(
    ctx: &Ctx,
    purpose: &policy::Purpose,
    verdict: Result<(), policy::query::QueryRefusal>,
) -> Result<(), ProxyError> {
    let Err(refusal) = verdict else {
        return Ok(());
    };
    if purpose.mode == policy::Mode::Shadow {
        tracing::warn!(request_id = %ctx.request_id, purpose = %purpose.name, %refusal, "shadow mode: query would be refused");
        return Ok(());
    }
    Err(match refusal {
        policy::query::QueryRefusal::NotAllowed { fields } => {
            ProxyError::QueryNotAllowed { fields }
        }
        policy::query::QueryRefusal::Unreadable(reason) => ProxyError::QueryNotCheckable { reason },
    })
}

fn purpose_of<'a>(set: &'a PolicySet, caller: &Caller) -> Result<&'a policy::Purpose, ProxyError> {
    set.purpose(&caller.purpose)
        .ok_or_else(|| ProxyError::PurposeUnknown {
            purpose: caller.purpose.to_string(),
        })
}

fn json_limits(state: &State) -> JsonLimits {
    JsonLimits {
        max_depth: state.config.limits.json_depth,
        max_bytes: state.config.limits.buffer_bytes as usize,
    }
}

/// Reads, parses and filters a governed request body (writes: keep, drop, block only).
async fn governed_request_body(
    state: &State,
    ctx: &Ctx,
    caller: &Caller,
    routed: &Routed,
    op: &Operation,
    headers: &mut HeaderMap,
    incoming: Incoming,
) -> Result<(Bytes, Outcome), ProxyError> {
    match media::classify_headers(headers) {
        media::BodyKind::Json => {}
        other => {
            return Err(ProxyError::UnsupportedMediaType {
                expected: "application/json",
                got: other.name().to_string(),
            })
        }
    }
    // an unknown coding is a media-type problem (415), not a malformed body
    encoding::content_codings(headers).map_err(|_| ProxyError::UnsupportedMediaType {
        expected: "a body in gzip, deflate, br, zstd or identity",
        got: "an unknown Content-Encoding".into(),
    })?;
    // decoded: the CRM receives exactly what was inspected
    let (bytes, _reservation) = read_decoded(state, headers, incoming, true).await?;
    let mut doc = json::parse(&bytes, &json_limits(state))
        .map_err(|e| ProxyError::RequestNotInspectable { reason: e.reason() })?;
    let purpose = purpose_of(&routed.policy, caller)?;
    query_check(
        ctx,
        purpose,
        policy::query::check_body(&routed.policy, purpose, op, &routed.canonical_path, &doc),
    )?;
    let outcome = filter_document(state, ctx, caller, routed, op, Direction::Request, &mut doc)?;
    headers.remove(header::CONTENT_LENGTH);
    let out = if outcome.changed && !outcome.shadow {
        json::to_bytes_sized(&doc, bytes.len())
    } else {
        bytes
    };
    Ok((out, outcome))
}

/// Reads a whole governed body (any media type) under the buffer budget, decoded.
async fn read_decoded(
    state: &State,
    headers: &mut HeaderMap,
    incoming: Incoming,
    request: bool,
) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit), ProxyError> {
    let bad = |reason: &'static str| {
        if request {
            ProxyError::RequestNotInspectable { reason }
        } else {
            ProxyError::ResponseNotInspectable { reason }
        }
    };
    let mut reservation = reserve_buffer(state, headers)?;
    let codings =
        encoding::content_codings(headers).map_err(|_| bad("unknown-content-encoding"))?;
    let limit = state.config.limits.buffer_bytes;
    let raw = body::collect_limited(incoming, limit as usize)
        .await
        .map_err(|e| match e {
            body::CollectError::TooLarge { .. } if request => ProxyError::BodyTooLarge { limit },
            body::CollectError::TooLarge { .. } => bad("too-large"),
            body::CollectError::Stream(_) => bad("truncated"),
        })?;
    grow_buffer(state, &mut reservation, raw.len())?;
    let bytes = encoding::decode_bytes(&raw, &codings, &decode_limits(state))
        .map_err(|e| bad(decode_reason(&e)))?;
    grow_buffer(state, &mut reservation, raw.len() + bytes.len())?;
    headers.remove(header::CONTENT_ENCODING);
    Ok((bytes, reservation))
}

fn tunnel_limits(state: &State) -> crate::proxy::tunnel::TunnelLimits {
    crate::proxy::tunnel::TunnelLimits {
        multipart: Default::default(),
        json: json_limits(state),
    }
}

/// A `$batch` or composite request: every part governed as if sent alone.
async fn tunnel_request_body(
    state: &State,
    ctx: &mut Ctx,
    caller: &Caller,
    routed: &Routed,
    op: &Operation,
    headers: &mut HeaderMap,
    incoming: Incoming,
) -> Result<Bytes, ProxyError> {
    let Some(kind) = op.tunnel() else {
        return Err(ProxyError::PolicyFault);
    };
    let ctype = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
    let (bytes, _reservation) = read_decoded(state, headers, incoming, true).await?;
    let purpose = purpose_of(&routed.policy, caller)?;
    let origins = tunnel_origins(state, routed);
    let tunnel = crate::proxy::tunnel::Tunnel {
        dialect: op.dialect(),
        kind,
        path: &routed.canonical_path,
        origins: &origins,
    };
    let governed = crate::proxy::tunnel::govern_request(
        &routed.policy,
        purpose,
        &tunnel,
        &ctype,
        &bytes,
        state.pseudonym_key.as_ref(),
        &tunnel_limits(state),
    )
    .map_err(|e| {
        tracing::info!(request_id = %ctx.request_id, refusal = %e, "tunnel refused");
        e.to_proxy_error(&purpose.name)
    })?;
    if let Ok(v) = HeaderValue::from_str(&governed.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.remove(header::CONTENT_LENGTH);
    let out = governed.body.clone();
    let outcome = governed.outcome();
    log_outcome(ctx, "to_processor", &outcome);
    if governed.writes() {
        ctx.sent = Some(BodyReport {
            outcome,
            bytes: out.len() as u64,
        });
    }
    ctx.tunnel = Some(governed);
    Ok(out)
}

/// The origins a tunnel's parts may address: the upstream's and Zweck's own public URL.
fn tunnel_origins(state: &State, routed: &Routed) -> [String; 2] {
    [
        routed.upstream.upstream.origin.clone(),
        state.config.public_url.clone(),
    ]
}

/// The tunnel's response: every part filtered with its own request's operation.
async fn tunnel_response_body(
    state: &State,
    ctx: &mut Ctx,
    caller: &Caller,
    routed: &Routed,
    headers: &mut HeaderMap,
    incoming: Incoming,
) -> Result<Bytes, ProxyError> {
    let Some(request) = ctx.tunnel.as_ref() else {
        return Err(ProxyError::PolicyFault);
    };
    let ctype = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
    let (bytes, _reservation) = read_decoded(state, headers, incoming, false).await?;
    let purpose = purpose_of(&routed.policy, caller)?;
    let origins = tunnel_origins(state, routed);
    let tunnel = crate::proxy::tunnel::Tunnel {
        dialect: request.dialect,
        kind: request.kind,
        path: &routed.canonical_path,
        origins: &origins,
    };
    let governed = crate::proxy::tunnel::govern_response(
        &routed.policy,
        purpose,
        &tunnel,
        request,
        &ctype,
        &bytes,
        state.pseudonym_key.as_ref(),
        &tunnel_limits(state),
        Some(&routed.upstream.links),
    )
    .map_err(|e| {
        tracing::info!(request_id = %ctx.request_id, refusal = %e, "tunnel response refused");
        e.to_proxy_error(&purpose.name)
    })?;
    if let Ok(v) = HeaderValue::from_str(&governed.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let outcome = governed.outcome();
    log_outcome(ctx, "from_processor", &outcome);
    ctx.tunnel_parts_received = governed.records_per_part();
    ctx.received = Some(BodyReport {
        outcome,
        bytes: governed.body.len() as u64,
    });
    Ok(governed.body)
}

/// A Bulk CSV result: governed as a stream (see `export.rs`), charged per chunk, with intent
/// and close records in the transfer log.
#[allow(clippy::too_many_arguments)]
async fn streamed_export(
    state: &State,
    ctx: &mut Ctx,
    caller: &Caller,
    routed: &Routed,
    op: &Operation,
    headers: &mut HeaderMap,
    incoming: Incoming,
    status: u16,
) -> Result<ProxyBody, ProxyError> {
    let purpose = purpose_of(&routed.policy, caller)?;
    let decoder = stream_decoder(state, headers)?;
    let governor = policy::csv_plan(
        &routed.policy,
        purpose,
        op,
        state.pseudonym_key.as_ref(),
        &policy::CsvJob::default(),
    )
    .map_err(|r| refusal(ctx, r))?
    .governor(Default::default());
    let governor = Box::new(crate::proxy::stream::CsvStream {
        governor,
        policy: routed.policy.clone(),
    });
    headers.remove("sforce-numberofrecords"); // counts change with filtering
    start_stream(
        state, ctx, headers, decoder, governor, None, incoming, status,
    )
    .await
}

/// The start every governed stream shares: budget stream, intent record, the first output
/// produced (a refusal at the header or envelope is still an ordinary error response), then
/// the rest through the channel body of `export.rs`.
#[allow(clippy::too_many_arguments)]
async fn start_stream(
    state: &State,
    ctx: &Ctx,
    headers: &mut HeaderMap,
    decoder: Option<encoding::Decoder>,
    governor: Box<dyn crate::proxy::stream::StreamGovernor>,
    prefix: Option<Bytes>,
    incoming: Incoming,
    status: u16,
) -> Result<ProxyBody, ProxyError> {
    use crate::proxy::stream::{StartFailure, StreamFailure};
    let not = |reason| ProxyError::ResponseNotInspectable { reason };
    let charge = budget_scope(ctx)
        .map(|(key, budget, class, shadow, _)| state.budgets.stream(key, budget, class, shadow));
    let record = ctx.exchange().map(|x| {
        log::record(
            &x,
            audit::Direction::FromProcessor,
            None,
            Decision::Minimised,
            status,
            None,
        )
    });
    let mut export = crate::proxy::stream::Export {
        upstream: incoming,
        decoder,
        governor,
        prefix,
        charge,
        log: state.audit.clone(),
        record,
    };
    let (first, ended) = crate::proxy::stream::prime(&mut export)
        .await
        .map_err(|e| match e {
            StartFailure::Governor(StreamFailure::Refused(r)) => refusal(ctx, r),
            StartFailure::Governor(StreamFailure::Reason(r)) => not(r),
            StartFailure::Decode(r) => not(r),
            StartFailure::Truncated => not("truncated"),
        })?;
    // sent as identity, framed by hyper
    headers.remove(header::CONTENT_ENCODING);
    tracing::info!(request_id = %ctx.request_id, route = ctx.template(), "streaming a governed body");
    crate::proxy::stream::start(export, first, ended)
        .await
        .map_err(|_| ProxyError::AuditUnavailable)
}

/// A decoder for a streamed body's content codings (caps: max_body_bytes, decoded_ratio).
fn stream_decoder(
    state: &State,
    headers: &HeaderMap,
) -> Result<Option<encoding::Decoder>, ProxyError> {
    let not = |reason| ProxyError::ResponseNotInspectable { reason };
    let codings = encoding::content_codings(headers).map_err(|_| not("content-encoding"))?;
    if codings.is_empty() {
        return Ok(None);
    }
    let limits = encoding::Limits::new(
        state.config.limits.max_body_bytes as usize,
        state.config.limits.decoded_ratio,
    );
    encoding::Decoder::new(&codings, limits)
        .map(Some)
        .map_err(|e| not(decode_reason(&e)))
}

/// Applies the caller's purpose to one parsed body and logs the decision (counts only).
fn filter_document(
    state: &State,
    ctx: &Ctx,
    caller: &Caller,
    routed: &Routed,
    op: &Operation,
    direction: Direction,
    doc: &mut serde_json::Value,
) -> Result<Outcome, ProxyError> {
    let purpose = purpose_of(&routed.policy, caller)?;
    let outcome = policy::apply(
        &routed.policy,
        purpose,
        op,
        direction,
        doc,
        state.pseudonym_key.as_ref(),
    )
    .map_err(|r| refusal(ctx, r))?;
    let label = match direction {
        Direction::Request => "to_processor",
        Direction::Response => "from_processor",
    };
    log_outcome(ctx, label, &outcome);
    Ok(outcome)
}

/// Maps an engine refusal to the response error (never with values).
fn refusal(ctx: &Ctx, r: Refusal) -> ProxyError {
    tracing::info!(
        request_id = %ctx.request_id,
        route = ctx.template(),
        refusal = %r,
        "policy refused the exchange"
    );
    match r {
        Refusal::Blocked { category, .. } => ProxyError::Blocked { category },
        Refusal::WriteDenied => ProxyError::WriteDenied {
            purpose: ctx
                .caller
                .as_ref()
                .map(|c| c.purpose.to_string())
                .unwrap_or_default(),
        },
        Refusal::WriteActionNotAllowed { field_paths } => ProxyError::WriteActionNotAllowed {
            fields: field_paths,
        },
        Refusal::RecordWithheld { .. } => ProxyError::RecordWithheld,
        Refusal::PseudonymKeyMissing | Refusal::NoInventory(_) => {
            tracing::error!(request_id = %ctx.request_id, "policy fault");
            ProxyError::PolicyFault
        }
    }
}

/// One decision event per filtered body: rule ids and counts, never values.
fn log_outcome(ctx: &Ctx, direction: &'static str, o: &Outcome) {
    let app = ctx.caller.as_ref().map(|c| &*c.app).unwrap_or("-");
    let purpose = ctx.caller.as_ref().map(|c| &*c.purpose).unwrap_or("-");
    if o.shadow {
        tracing::info!(
            request_id = %ctx.request_id, app, purpose, route = ctx.template(), direction,
            records = o.records, would_change = o.changed, rules = ?o.rules, actions = ?o.actions,
            would_refuse = o.shadow_refusal.as_ref().map(|r| r.to_string()),
            "shadow: policy not enforced"
        );
    } else {
        tracing::info!(
            request_id = %ctx.request_id, app, purpose, route = ctx.template(), direction,
            records = o.records, changed = o.changed, rules = ?o.rules, actions = ?o.actions,
            "policy applied"
        );
    }
}

/// Reserves room for one buffered body in the global buffer budget (`limits.buffered_total`),
/// held until the body has been filtered and serialised: the declared size up front, or
/// 64 KiB for a body of unknown size, topped up by [`grow_buffer`] once its size is known.
fn reserve_buffer(
    state: &State,
    headers: &HeaderMap,
) -> Result<tokio::sync::OwnedSemaphorePermit, ProxyError> {
    let cap = state.config.limits.buffer_bytes;
    let bytes = content_length(headers).unwrap_or(64 * 1024).min(cap);
    acquire_kib(state, bytes)
}

/// Tops a reservation up to `actual` bytes.
fn grow_buffer(
    state: &State,
    permit: &mut tokio::sync::OwnedSemaphorePermit,
    actual: usize,
) -> Result<(), ProxyError> {
    let held = permit.num_permits() as u64 * 1024;
    if (actual as u64) > held {
        permit.merge(acquire_kib(state, actual as u64 - held)?);
    }
    Ok(())
}

fn acquire_kib(state: &State, bytes: u64) -> Result<tokio::sync::OwnedSemaphorePermit, ProxyError> {
    let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    state
        .buffers
        .clone()
        .try_acquire_many_owned(kib)
        .map_err(|_| {
            tracing::warn!("buffered_total exhausted: refusing a governed body");
            ProxyError::Overloaded {
                retry_after: std::time::Duration::from_secs(1),
            }
        })
}

fn decode_limits(state: &State) -> encoding::Limits {
    encoding::Limits::new(
        state.config.limits.buffer_bytes as usize,
        state.config.limits.decoded_ratio,
    )
}

fn decode_reason(e: &encoding::DecodeError) -> &'static str {
    match e {
        encoding::DecodeError::TooLarge { .. } => "decoded-too-large",
        encoding::DecodeError::RatioExceeded { .. } => "compression-bomb",
        encoding::DecodeError::Unknown(_) => "unknown-content-encoding",
        encoding::DecodeError::TooManyCodings => "too-many-content-encodings",
        _ => "corrupt-content-encoding",
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    let mut all = headers.get_all(&name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return Some("several values".into());
    }
    first.to_str().ok().map(str::to_string)
}

fn has_content_coding(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("identity"))
            })
            .unwrap_or(true)
    })
}

/// Phase 4. Export budget pre-check (export budgets arrive in their own issue).
async fn precheck(
    state: &State,
    ctx: &mut Ctx,
    req: &mut Request<ProxyBody>,
) -> Result<(), ProxyError> {
    let Some((key, budget, class, shadow, dialect)) = budget_scope(ctx) else {
        return Ok(());
    };
    let allowance = state
        .budgets
        .precheck(&key, &budget, class, shadow)
        .await
        .map_err(|e| budget_refusal(state, dialect, e))?;
    // ask only for what may still be delivered, so pages fit instead of being refused
    if !shadow && class != RouteClass::Single {
        let query = req.uri().query().map(str::to_string);
        if let Some(new_query) = crate::budget::cap_page_size(
            dialect,
            req.headers_mut(),
            query.as_deref(),
            allowance.remaining,
        ) {
            let path = req.uri().path().to_string();
            let target = if new_query.is_empty() {
                path
            } else {
                format!("{path}?{new_query}")
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = target.parse().ok();
            if let Ok(uri) = http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    ctx.allowance = Some(allowance);
    Ok(())
}

/// The budget that governs this exchange: governed reads of a purpose with an
/// `export_budget`. Writes export nothing and are not charged.
fn budget_scope(
    ctx: &Ctx,
) -> Option<(
    crate::budget::BudgetKey,
    policy::ExportBudget,
    RouteClass,
    bool,
    crate::dialect::Dialect,
)> {
    let Some(Governance::Governed { op }) = &ctx.governance else {
        return None;
    };
    if op.op() != OpKind::Read {
        return None;
    }
    let caller = ctx.caller.as_ref()?;
    let purpose = ctx.policy.as_ref()?.purpose(&caller.purpose)?;
    let budget = purpose.export_budget.clone()?;
    Some((
        crate::budget::BudgetKey::new(caller.app.to_string(), caller.purpose.to_string()),
        budget,
        op.class(),
        purpose.mode == policy::Mode::Shadow,
        op.dialect(),
    ))
}

fn budget_refusal(
    state: &State,
    dialect: crate::dialect::Dialect,
    e: crate::budget::Exhausted,
) -> ProxyError {
    ProxyError::BudgetExhausted {
        exhausted: Box::new(e),
        dialect,
        style: state.config.refusal_style,
    }
}

/// Phase 5. Sends the request with the upstream's pooled client. Refused or reset is 502,
/// no response head within the response timeout is 504.
async fn forward(
    state: &State,
    routed: &Routed,
    req: Request<ProxyBody>,
) -> Result<Response<Incoming>, ProxyError> {
    let upstream = &routed.upstream.upstream;
    let started = Instant::now();
    let resp = upstream.send(req).await;
    state
        .metrics
        .upstream_latency
        .get_or_create(&UpstreamLabels {
            upstream: upstream.name().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// Phase 6. Filters the response: hop-by-hop and framing headers dropped (hyper recomputes
/// them from the body, which avoids forwarding a stale Content-Length), cookies dropped,
/// absolute links to the upstream rewritten. Small JSON bodies on ungoverned routes have
/// their links rewritten; everything else on them streams through untouched.
async fn filter_response(
    state: &State,
    ctx: &mut Ctx,
    caller: &Caller,
    routed: &Routed,
    resp: Response<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, incoming) = resp.into_parts();
    let declared_len = content_length(&parts.headers);
    strip_response_headers(&mut parts.headers);
    crate::body::headers::filter_response_headers(
        routed.upstream.upstream.config.dialect,
        &mut parts.headers,
    );
    let links = &routed.upstream.links;
    links.rewrite_headers(&mut parts.headers);
    if let Governance::Governed { op } = &routed.governance {
        let body = if http_body::Body::is_end_stream(&incoming) {
            body::empty()
        } else if op.tunnel().is_some() {
            let bytes =
                tunnel_response_body(state, ctx, caller, routed, &mut parts.headers, incoming)
                    .await?;
            body::full(bytes)
        } else if op.format() == policy::BodyFormat::Csv
            && media::classify_headers(&parts.headers) == media::BodyKind::Csv
        {
            let status = parts.status.as_u16();
            streamed_export(
                state,
                ctx,
                caller,
                routed,
                op,
                &mut parts.headers,
                incoming,
                status,
            )
            .await?
        } else {
            let status = parts.status.as_u16();
            match governed_response_body(
                state,
                ctx,
                caller,
                routed,
                op,
                &mut parts.headers,
                incoming,
            )
            .await?
            {
                GovernedBody::Full(bytes, outcome) => {
                    ctx.received = Some(BodyReport {
                        outcome,
                        bytes: bytes.len() as u64,
                    });
                    body::full(bytes)
                }
                GovernedBody::Overflow(prefix, rest) => {
                    streamed_list(
                        state,
                        ctx,
                        caller,
                        routed,
                        op,
                        &mut parts.headers,
                        prefix,
                        rest,
                        status,
                    )
                    .await?
                }
            }
        };
        return Ok(Response::from_parts(parts, body));
    }
    let small = declared_len.is_some_and(|n| n <= state.config.limits.buffer_bytes);
    let identity = !has_content_coding(&parts.headers);
    let body = if small && identity && is_json(&parts.headers) {
        let limit = state.config.limits.buffer_bytes as usize;
        let bytes = body::collect_limited(incoming, limit).await.map_err(|_| {
            ProxyError::UpstreamUnavailable {
                upstream: routed.upstream.upstream.name().to_string(),
            }
        })?;
        body::full(rewrite_json_links(state, links, bytes))
    } else {
        body::stream(incoming)
    };
    Ok(Response::from_parts(parts, body))
}

/// A filtered response body, or one too large to buffer (to be streamed).
enum GovernedBody {
    Full(Bytes, Outcome),
    Overflow(Bytes, Incoming),
}

enum Collected {
    Whole(Bytes),
    /// The bytes read so far and the rest of the body.
    Overflow(Bytes, Incoming),
}

/// Collects up to `limit` bytes; past it, hands back what was read and the rest.
async fn collect_or_overflow(mut incoming: Incoming, limit: usize) -> Result<Collected, BoxError> {
    use http_body_util::BodyExt;
    // sized from Content-Length when there is one (growing by doubling copied ~2x the body)
    let hint = http_body::Body::size_hint(&incoming).lower() as usize;
    let mut buf = bytes::BytesMut::with_capacity(hint.min(limit.saturating_add(1)));
    while let Some(frame) = incoming.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Collected::Overflow(buf.freeze(), incoming));
            }
        }
    }
    Ok(Collected::Whole(buf.freeze()))
}

/// A JSON list page larger than `limits.buffer_bytes`: governed record by record as a
/// stream with bounded memory, charged per chunk, with intent and close records.
#[allow(clippy::too_many_arguments)]
async fn streamed_list(
    state: &State,
    ctx: &mut Ctx,
    caller: &Caller,
    routed: &Routed,
    op: &Operation,
    headers: &mut HeaderMap,
    prefix: Bytes,
    incoming: Incoming,
    status: u16,
) -> Result<ProxyBody, ProxyError> {
    let not = |reason| ProxyError::ResponseNotInspectable { reason };
    let paths = routed.policy.record_paths(op);
    let Some(array_key) = paths
        .first()
        .and_then(|p| crate::body::json_stream::array_key_of(p))
        .map(str::to_string)
    else {
        // single records and nested shapes are not streamed: too large is too large
        return Err(not("too-large"));
    };
    let purpose = purpose_of(&routed.policy, caller)?.clone();
    let decoder = stream_decoder(state, headers)?;
    let applier = |set: Arc<PolicySet>, purpose: policy::Purpose, op: Operation| {
        let key = state.pseudonym_key.clone();
        let links = routed.upstream.links.clone();
        move |page: &mut serde_json::Value| {
            let o = policy::apply(&set, &purpose, &op, Direction::Response, page, key.as_ref())?;
            links.rewrite_json(page);
            Ok(o)
        }
    };
    let limits = crate::body::json_stream::JsonStreamLimits {
        max_depth: state.config.limits.json_depth,
        ..Default::default()
    };
    let governor = crate::proxy::stream::JsonStream::new(
        &array_key,
        limits,
        applier(routed.policy.clone(), purpose.clone(), op.clone()),
        applier(routed.policy.clone(), purpose, op.clone()),
    );
    start_stream(
        state,
        ctx,
        headers,
        decoder,
        Box::new(governor),
        Some(prefix),
        incoming,
        status,
    )
    .await
}

/// Reads, parses and filters a governed response body; nothing goes on unread.
async fn governed_response_body(
    state: &State,
    ctx: &Ctx,
    caller: &Caller,
    routed: &Routed,
    op: &Operation,
    headers: &mut HeaderMap,
    incoming: Incoming,
) -> Result<GovernedBody, ProxyError> {
    let not = |reason| ProxyError::ResponseNotInspectable { reason };
    if media::classify_headers(headers) != media::BodyKind::Json {
        return Err(not("media-type"));
    }
    let codings = encoding::content_codings(headers).map_err(|_| not("content-encoding"))?;
    let limit = state.config.limits.buffer_bytes as usize;
    // larger than the buffer: a list page goes on as a stream (see export.rs)
    if content_length(headers).is_some_and(|n| n > limit as u64) {
        return Ok(GovernedBody::Overflow(Bytes::new(), incoming));
    }
    let mut reservation = reserve_buffer(state, headers)?;
    let raw = match collect_or_overflow(incoming, limit)
        .await
        .map_err(|_| not("truncated"))?
    {
        Collected::Whole(raw) => raw,
        Collected::Overflow(prefix, rest) => return Ok(GovernedBody::Overflow(prefix, rest)),
    };
    grow_buffer(state, &mut reservation, raw.len())?;
    let bytes = encoding::decode_bytes(&raw, &codings, &decode_limits(state))
        .map_err(|e| not(decode_reason(&e)))?;
    grow_buffer(state, &mut reservation, raw.len() + bytes.len())?;
    headers.remove(header::CONTENT_ENCODING);
    let mut doc = json::parse(&bytes, &json_limits(state)).map_err(|e| not(e.reason()))?;
    let outcome = filter_document(
        state,
        ctx,
        caller,
        routed,
        op,
        Direction::Response,
        &mut doc,
    )?;
    routed.upstream.links.rewrite_json(&mut doc);
    let out = json::to_bytes_sized(&doc, bytes.len());
    // re-encoded when the app asked for a coding Zweck speaks, else identity
    if let Some(coding) = ctx.accept_encoding.as_deref().and_then(encoding::negotiate) {
        if let Ok(encoded) = encoding::encode(&out, coding) {
            if let Ok(v) = HeaderValue::from_str(coding.as_str()) {
                headers.insert(header::CONTENT_ENCODING, v);
                headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
                return Ok(GovernedBody::Full(encoded, outcome));
            }
        }
    }
    Ok(GovernedBody::Full(out, outcome))
}

fn rewrite_json_links(state: &State, links: &crate::links::LinkRewriter, bytes: Bytes) -> Bytes {
    // most ungoverned bodies carry no upstream link: skip the parse (9 % of pass-through CPU)
    if !links.may_link(&bytes) {
        return bytes;
    }
    let Ok(mut doc) = json::parse(&bytes, &json_limits(state)) else {
        // unparsable: an ungoverned body goes on as it came
        return bytes;
    };
    if links.rewrite_json(&mut doc) == 0 {
        return bytes;
    }
    json::to_bytes(&doc)
}

/// Phase 7. Charges the records the engine actually delivered. A response larger than what
/// is left is refused whole, never silently truncated (logged as `rate_limited`).
async fn charge(state: &State, ctx: &mut Ctx) -> Result<(), ProxyError> {
    let Some((key, budget, class, shadow, dialect)) = budget_scope(ctx) else {
        return Ok(());
    };
    let records = ctx.received.as_ref().map_or(0, |b| b.outcome.records);
    if records == 0 {
        return Ok(());
    }
    let allowance = state
        .budgets
        .charge(&key, &budget, class, records, shadow)
        .await
        .map_err(|e| budget_refusal(state, dialect, e))?;
    ctx.allowance = Some(allowance);
    Ok(())
}

/// The Art. 44-49 gate, before anything is forwarded on a governed route: a cross-border
/// flow to an upstream without a transfer mechanism is refused (`on_missing_mechanism: block`,
/// the default) or only logged (`log`).
fn permit_transfer(state: &State, ctx: &Ctx) -> Result<(), ProxyError> {
    let (Some(Governance::Governed { .. }), Some(policy), Some(upstream)) =
        (&ctx.governance, &ctx.policy, &ctx.upstream)
    else {
        return Ok(());
    };
    match log::mechanism_decision(state, policy, upstream) {
        MechanismDecision::Allow => Ok(()),
        MechanismDecision::LogOnly => {
            tracing::warn!(request_id = %ctx.request_id, upstream = upstream.upstream.name(), "cross-border transfer without a transfer mechanism (on_missing_mechanism: log)");
            Ok(())
        }
        MechanismDecision::Block => Err(ProxyError::TransferNotPermitted {
            upstream: upstream.upstream.name().to_string(),
            jurisdiction: upstream.upstream.config.jurisdiction.clone(),
        }),
    }
}

/// Phase 8. Appends the transfer record of one direction and waits for it to be durable:
/// data to the processor is logged before it is forwarded, data from the processor before
/// the response is released. A log that cannot be written stops the flow (503). Ungoverned
/// routes carry no personal data and are not logged; nor is a direction without a body.
async fn append(
    state: &State,
    ctx: &Ctx,
    direction: audit::Direction,
    status: u16,
) -> Result<(), ProxyError> {
    let Some(log) = &state.audit else {
        return Ok(());
    };
    let Some(x) = ctx.exchange() else {
        return Ok(());
    };
    let body = match direction {
        audit::Direction::ToProcessor => ctx.sent.as_ref(),
        audit::Direction::FromProcessor => ctx.received.as_ref(),
    };
    let Some(body) = body else {
        return Ok(());
    };
    let mut record = log::record(
        &x,
        direction,
        Some(body),
        log::decision_of(body),
        status,
        None,
    );
    record.parts = match direction {
        audit::Direction::ToProcessor => ctx
            .tunnel
            .as_ref()
            .map(|t| t.records_per_part())
            .unwrap_or_default(),
        audit::Direction::FromProcessor => ctx.tunnel_parts_received.clone(),
    };
    match log.append(record).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(request_id = %ctx.request_id, error = %e, "transfer log append failed: the flow stops");
            Err(ProxyError::AuditUnavailable)
        }
    }
}

/// Every refusal of a governed exchange gets its record too (best effort: the refusal
/// stands whether or not the log can take it).
async fn log_refusal(state: &State, ctx: &Ctx, err: &ProxyError) {
    let (Some(log), Some(x)) = (&state.audit, ctx.exchange()) else {
        return;
    };
    if matches!(err, ProxyError::AuditUnavailable) {
        return;
    }
    let direction = if ctx.forwarded {
        audit::Direction::FromProcessor
    } else {
        audit::Direction::ToProcessor
    };
    let body = match direction {
        audit::Direction::ToProcessor => ctx.sent.as_ref(),
        audit::Direction::FromProcessor => ctx.received.as_ref(),
    };
    let decision = if matches!(err, ProxyError::BudgetExhausted { .. }) {
        Decision::RateLimited
    } else {
        Decision::Blocked
    };
    let record = log::record(
        &x,
        direction,
        body,
        decision,
        err.status().as_u16(),
        Some(err.slug()),
    );
    if let Err(e) = log.append(record).await {
        tracing::error!(request_id = %ctx.request_id, error = %e, "transfer log append failed for a refusal");
    }
}

/// Phase 9. The response as the app sees it.
fn respond(resp: Response<ProxyBody>) -> Response<ProxyBody> {
    resp
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the framing header hyper recomputes.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "content-length"
    )
}

/// Removes every header `doomed` names, and every header the `Connection` header lists, in
/// one pass over the names (each name is looked at once, nothing is parsed from a string;
/// the profile had this at ~5 % of a pass-through request's instructions).
fn remove_headers(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let gone: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k.as_str()) || doomed(k.as_str()))
        .cloned()
        .collect();
    for name in listed.into_iter().chain(gone) {
        headers.remove(name);
    }
}

/// What never reaches the CRM: hop-by-hop and framing headers, the app's credentials and
/// cookies, Zweck's own headers, and what a client claims about forwarding.
fn strip_request_headers(headers: &mut HeaderMap) {
    remove_headers(headers, |k| {
        matches!(
            k,
            "host" | "authorization" | "cookie" | "forwarded" | "x-real-ip"
        ) || k.starts_with("zweck-")
            || k.starts_with("x-forwarded-")
    });
}

/// What never reaches the app: hop-by-hop and framing headers, cookies, anything that
/// claims to be Zweck's.
fn strip_response_headers(headers: &mut HeaderMap) {
    remove_headers(headers, |k| k == "set-cookie" || k.starts_with("zweck-"));
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn is_json(headers: &HeaderMap) -> bool {
    media::classify_headers(headers) == media::BodyKind::Json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_lose_credentials_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer app-key"),
            ("zweck-api-key", "k"),
            ("zweck-purpose", "p"),
            ("zweck-anything", "x"),
            ("cookie", "a=b"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("x-forwarded-for", "10.0.0.1"),
            ("host", "zweck.example"),
            ("accept", "application/json"),
            ("sforce-query-options", "batchSize=200"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().expect("value"));
        }
        strip_request_headers(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept", "sforce-query-options"]);
    }

    #[test]
    fn response_headers_lose_framing_and_cookies() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-length", "10"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "BrowserId=1"),
            ("zweck-policy", "spoofed"),
            ("content-type", "application/json"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().expect("value"));
        }
        strip_response_headers(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["content-type"]);
    }
}
