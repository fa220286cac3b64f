//! Phase 3, request: the request as the CRM will receive it.
//!
//! Runs after route, before the budget is asked and anything is sent. It may change the
//! request head (canonical path, headers filtered: hop-by-hop, the app's credentials,
//! `Zweck-*`, cookies and client addresses never reach the CRM; framing is left to hyper) and,
//! on a governed route, the body: read whole, decoded, parsed and minimised for the purpose
//! (writes may only keep, drop or block), so the CRM receives exactly what was inspected.
//! Ungoverned bodies stream through under the hard size cap. The upstream's own credential
//! is added later, by phase 5.
//!
//! Its errors: the purpose may not do this (`write-denied`, `write-action-not-allowed`,
//! `blocked`, `query-not-allowed`, `purpose-unknown`), or the request cannot be inspected
//! (`request-not-inspectable`, `query-not-checkable`, `unsupported-media-type`,
//! `body-not-allowed`, `body-too-large`, `unsupported`).

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri};

use super::buffer::{self, json_limits};
use super::headers::{content_length, header_str, strip_request_headers};
use super::intake::AppBody;
use super::log::BodyReport;
use super::route::Route;
use super::{tunnel, Ctx, Governed, Ungoverned};
use crate::body::{self, encoding, media, ProxyBody};
use crate::error::{ForPurpose, ProxyError};
use crate::json;
use crate::policy::query::Carried;
use crate::policy::{self, Direction, Outcome};
use crate::state::State;

/// Phase 3 on a governed route: refusals first (before any byte of the body is read), then
/// the head, then the body minimised.
pub async fn governed(
    state: &State,
    ctx: &mut Ctx<Governed>,
    req: Request<AppBody>,
) -> Result<Request<ProxyBody>, ProxyError> {
    let (mut parts, incoming) = req.into_parts();
    if state.shadow.is_some() {
        // the app's query, before query minimisation rewrites it
        ctx.flow.shadow_query = parts.uri.query().map(str::to_string);
    }
    let carried = admit(state, ctx, &mut parts)?;
    // kept before `head` drops it: a filtered response is re-encoded for the app
    ctx.flow.accept_encoding = header_str(&parts.headers, header::ACCEPT_ENCODING);
    let uri = head(state, &ctx.route, &mut parts)?;
    ask_for_inspectable(ctx, &mut parts.headers);
    let body = governed_body(state, ctx, &parts.method, &mut parts.headers, incoming).await?;
    record_carried(ctx, carried);
    Ok(build(parts, uri, body))
}

/// Personal data in the URL (a predicate, a lookup by e-mail) goes to the processor like a
/// body does: its categories join the request direction's report, so phase 8 appends a
/// `to_processor` record before anything is forwarded (also for a GET without a body).
fn record_carried(ctx: &mut Ctx<Governed>, carried: Carried) {
    if carried.is_empty() {
        return;
    }
    let sent = ctx.flow.sent.get_or_insert_with(|| BodyReport {
        outcome: Outcome::default(),
        bytes: 0,
        parts: Vec::new(),
    });
    sent.outcome.add_carried(&carried);
}

/// Phase 3 on an ungoverned route: the head filtered, the body streamed under the cap.
pub fn ungoverned(
    state: &State,
    ctx: &Ctx<Ungoverned>,
    req: Request<AppBody>,
) -> Result<Request<ProxyBody>, ProxyError> {
    let (mut parts, incoming) = req.into_parts();
    let uri = head(state, &ctx.route, &mut parts)?;
    // the body caps itself at `limits.max_body_bytes` (intake.rs)
    let body = if http_body::Body::is_end_stream(&incoming) {
        body::empty()
    } else {
        body::stream(incoming)
    };
    Ok(build(parts, uri, body))
}

/// A fresh request for the upstream (not `from_parts`: the app's HTTP version and
/// extensions stay behind).
fn build(parts: Parts, uri: Uri, body: ProxyBody) -> Request<ProxyBody> {
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = parts.headers;
    out
}

/// What both paths do to the head: the size cap, the target on the upstream, and the
/// headers that never reach the CRM. `Accept-Encoding` goes too: ungoverned routes ask for
/// identity, so absolute links in small JSON bodies can be rewritten and nothing arrives in
/// a coding the app did not ask for; governed routes ask for what Zweck decodes.
fn head(state: &State, route: &Route, parts: &mut Parts) -> Result<Uri, ProxyError> {
    let limit = state.config.limits.max_body_bytes;
    if content_length(&parts.headers).is_some_and(|len| len > limit) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let upstream = &route.upstream.upstream;
    let uri = upstream.uri_for(&route.path, parts.uri.query())?;
    strip_request_headers(&mut parts.headers);
    // Per-dialect allowlist: personal data also travels in debug and error headers.
    crate::body::headers::filter_request_headers(upstream.config.dialect, &mut parts.headers);
    parts.headers.remove(header::ACCEPT_ENCODING);
    Ok(uri)
}

/// What a governed request is refused for before its body is read: features that would let
/// a body slip past inspection, the purpose's query minimisation on the URL, and writes of
/// a `writes: deny` purpose (a tunnel's own operation is a read; its write parts are refused
/// inside it). A query the purpose decides consent for gets its consent fields added here,
/// so everything after (the transfer record included) sees the query as forwarded. Returns
/// the categories the URL sends.
fn admit(state: &State, ctx: &mut Ctx<Governed>, parts: &mut Parts) -> Result<Carried, ProxyError> {
    for (name, what) in [
        (header::RANGE, "Range on a governed route"),
        (header::UPGRADE, "Upgrade on a governed route"),
    ] {
        if parts.headers.contains_key(name) {
            return Err(ProxyError::Unsupported { what });
        }
    }
    let purpose = ctx.purpose()?;
    let admitted = policy::decide::admit(
        &ctx.route.policy,
        purpose,
        &ctx.flow.op,
        &ctx.route.path,
        parts.uri.query(),
    )
    .map_err(|d| {
        ctx.compare_candidate(state, None, Err(()));
        ctx.denied(d)
    })?;
    ctx.log_shadowed(purpose, admitted.shadowed.as_ref());
    if let Some(query) = admitted.query {
        parts.uri = with_query(&parts.uri, &query)?;
    }
    ctx.flow.shape = admitted.shape;
    Ok(admitted.carried)
}

/// `uri` with its query string replaced (the path, scheme and authority as they were).
fn with_query(uri: &Uri, query: &str) -> Result<Uri, ProxyError> {
    let mut p = uri.clone().into_parts();
    p.path_and_query = Some(format!("{}?{query}", uri.path()).parse().map_err(|_| {
        ProxyError::QueryNotCheckable {
            reason: "a rewritten query that is no valid URI",
        }
    })?);
    Uri::from_parts(p).map_err(|_| ProxyError::QueryNotCheckable {
        reason: "a rewritten query that is no valid URI",
    })
}

/// Only what Zweck can decode and parse may come back: its codings, and the media type the
/// route's parser handles (Bulk results are CSV; their JSON error bodies are still accepted
/// and inspected).
fn ask_for_inspectable(ctx: &Ctx<Governed>, headers: &mut HeaderMap) {
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static(encoding::acceptable_encodings()),
    );
    let accept = match ctx.flow.op.format() {
        policy::BodyFormat::Csv => "text/csv, application/json",
        policy::BodyFormat::Json => "application/json",
    };
    headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
}

/// The governed body: none, a tunnel's parts, or one JSON document. An empty body that
/// claims a media type is a (malformed) governed body, not no body.
async fn governed_body(
    state: &State,
    ctx: &mut Ctx<Governed>,
    method: &Method,
    headers: &mut HeaderMap,
    incoming: AppBody,
) -> Result<ProxyBody, ProxyError> {
    let bodiless = matches!(method.as_str(), "GET" | "HEAD" | "DELETE");
    let declares_body = headers.contains_key(header::CONTENT_TYPE) && !bodiless;
    if http_body::Body::is_end_stream(&incoming) && !declares_body {
        return Ok(body::empty());
    }
    if bodiless {
        return Err(ProxyError::BodyNotAllowed {
            method: method.to_string(),
        });
    }
    if let Some(kind) = ctx.flow.op.tunnel() {
        return tunnel_body(state, ctx, kind, headers, incoming).await;
    }
    let (bytes, outcome) = json_body(state, ctx, headers, incoming).await?;
    if sends_personal_data(&ctx.flow.op, &outcome) {
        ctx.flow.sent = Some(BodyReport {
            outcome,
            bytes: bytes.len() as u64,
            parts: Vec::new(),
        });
    }
    Ok(body::full(bytes))
}

/// Whether a governed body goes on record before it is forwarded (docs/transfer-log.md,
/// "What is on record"): every write body, and a read's body that names personal data (a
/// search filter, free text, a lookup by property: their categories are in `outcome`) or in
/// which the policy found anything at all. A read's body of field lists, sorts, limits and
/// cursors sends nothing personal: like such a query string or a tunnel's read part, it has
/// no `to_processor` record (its answer has its `from_processor` one), which spares the
/// exchange a second durable append.
fn sends_personal_data(op: &policy::Operation, outcome: &Outcome) -> bool {
    op.op() != policy::OpKind::Read
        || outcome.records > 0
        || !outcome.actions.is_empty()
        || !outcome.categories_received.is_empty()
        || !outcome.categories_delivered.is_empty()
        || !outcome.unclassified.is_empty()
}

/// Reads, parses and filters a governed JSON request body (writes: keep, drop, block only).
async fn json_body(
    state: &State,
    ctx: &mut Ctx<Governed>,
    headers: &mut HeaderMap,
    incoming: AppBody,
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
    let (bytes, _reservation) =
        buffer::read_decoded(state, headers, incoming, Direction::Request).await?;
    let mut doc = json::parse(&bytes, &json_limits(state)).map_err(|e| {
        ProxyError::RequestNotInspectable {
            reason: (&e).into(),
        }
    })?;
    let purpose = ctx.purpose()?;
    let decided = policy::decide::request_body(
        &ctx.route.policy,
        purpose,
        &ctx.flow.op,
        &ctx.route.path,
        &mut doc,
        ctx.route.pseudonym_key.as_ref(),
    )
    .map_err(|d| ctx.denied(d))?;
    ctx.log_shadowed(purpose, decided.shadowed.as_ref());
    // the body's query rewritten (consent fields added): its shape is the answer's
    let rewritten = !decided.shape.is_plain();
    if rewritten {
        ctx.flow.shape = decided.shape;
    }
    let outcome = decided.outcome;
    ctx.log_outcome(Direction::Request, &outcome);
    state
        .metrics
        .drift
        .record(&ctx.route.upstream.label, &outcome.unclassified);
    headers.remove(header::CONTENT_LENGTH);
    let out = if rewritten || (outcome.changed && !outcome.shadow) {
        json::to_bytes_sized(&doc, bytes.len())
    } else {
        bytes
    };
    Ok((out, outcome))
}

/// A `$batch` or composite request: every part governed as if sent alone.
async fn tunnel_body(
    state: &State,
    ctx: &mut Ctx<Governed>,
    kind: policy::TunnelKind,
    headers: &mut HeaderMap,
    incoming: AppBody,
) -> Result<ProxyBody, ProxyError> {
    let ctype = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
    let (bytes, _reservation) =
        buffer::read_decoded(state, headers, incoming, Direction::Request).await?;
    let purpose = ctx.purpose()?;
    let cx = tunnel::Cx::new(state, &ctx.route, purpose, ctx.flow.op.dialect(), kind);
    let governed = tunnel::govern_request(&cx, &ctype, &bytes).map_err(|e| {
        tracing::info!(request_id = %ctx.request_id, refusal = %e, "tunnel refused");
        ProxyError::from(ForPurpose(e, &purpose.name))
    })?;
    if let Ok(v) = HeaderValue::from_str(&governed.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.remove(header::CONTENT_LENGTH);
    let outcome = governed.outcome();
    ctx.log_outcome(Direction::Request, &outcome);
    // writes, and reads whose queries send personal data, go on record before forwarding
    if governed.writes() || !outcome.categories_delivered.is_empty() {
        ctx.flow.sent = Some(BodyReport {
            outcome,
            bytes: governed.body.len() as u64,
            parts: governed.records_per_part(),
        });
    }
    let out = governed.body.clone();
    ctx.flow.tunnel = Some(governed);
    Ok(body::full(out))
}
