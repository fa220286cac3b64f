//! Phase 6, response: the upstream's answer as the app may see it.
//!
//! Runs on the response head, after forward. It may change the headers (hop-by-hop and
//! framing dropped, since hyper recomputes them from the body and a stale `Content-Length`
//! must not go on; cookies dropped; the dialect's allowlist applied; absolute links to the
//! upstream rewritten to Zweck) and the body. A governed body is read, decoded, parsed,
//! minimised for the purpose and re-encoded for the app (on the span path, `policy::span`, when it
//! covers the body: the same bytes without a tree of the page); one too large to buffer goes on as a
//! stream (`stream.rs`); nothing governed goes on unread. On an ungoverned route small JSON
//! bodies have their links rewritten and everything else streams through untouched.
//!
//! Its errors: `response-not-inspectable` (502: not JSON or the route's CSV, encoded in a
//! way Zweck cannot decode, too large, malformed, truncated), the policy's refusals
//! (`blocked`, `record-withheld`, `policy-fault`) and `upstream-unavailable` when the
//! upstream body fails.

use crate::upstream::{BodyStalled, UpstreamBody};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response};

use super::buffer::{self, json_limits, Read};
use super::headers::strip_response_headers;
use super::headers::{content_length, has_content_coding, header_str, is_json};
use super::log::BodyReport;
use super::route::Route;
use super::{stream, tunnel, Ctx, Governed, Ungoverned};
use crate::body::{self, encoding, media, ProxyBody};
use crate::error::{ForPurpose, Inspection, ProxyError};
use crate::json;
use crate::links::LinkRewriter;
use crate::policy::{self, Direction, Outcome};
use crate::state::State;

/// Phase 6 on a governed route: nothing goes on before the policy has seen it.
pub async fn governed(
    state: &State,
    ctx: &mut Ctx<Governed>,
    resp: Response<UpstreamBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, incoming) = resp.into_parts();
    head(&ctx.route, &mut parts.headers);
    let status = parts.status.as_u16();
    let body = governed_body(state, ctx, &mut parts.headers, incoming, status).await?;
    Ok(Response::from_parts(parts, body))
}

/// Phase 6 on an ungoverned route: links rewritten in small identity-coded JSON bodies,
/// everything else streamed through untouched.
pub async fn ungoverned(
    state: &State,
    ctx: &Ctx<Ungoverned>,
    resp: Response<UpstreamBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, incoming) = resp.into_parts();
    let declared_len = content_length(&parts.headers);
    head(&ctx.route, &mut parts.headers);
    let limit = state.config.limits.buffer_bytes;
    let small = declared_len.is_some_and(|n| n <= limit);
    let body = if small && !has_content_coding(&parts.headers) && is_json(&parts.headers) {
        let upstream = || ctx.route.upstream.upstream.name().to_string();
        let bytes = body::collect_limited(incoming, limit as usize)
            .await
            .map_err(|e| match e {
                body::CollectError::Stream(e) if BodyStalled::of(e.as_ref()).is_some() => {
                    ProxyError::UpstreamTimeout {
                        upstream: upstream(),
                    }
                }
                _ => ProxyError::UpstreamUnavailable {
                    upstream: upstream(),
                },
            })?;
        body::full(rewrite_json_links(state, &ctx.route.upstream.links, bytes))
    } else {
        body::stream(incoming)
    };
    Ok(Response::from_parts(parts, body))
}

/// What both paths do to the head: what never reaches the app goes, links are rewritten.
fn head(route: &Route, headers: &mut HeaderMap) {
    strip_response_headers(headers);
    let dialect = route.upstream.upstream.config.dialect;
    crate::body::headers::filter_response_headers(dialect, headers);
    route.upstream.links.rewrite_headers(headers);
}

/// The governed body: none, a tunnel's parts, a Bulk CSV stream, or JSON (buffered, or
/// streamed when it is a list page too large to buffer).
async fn governed_body(
    state: &State,
    ctx: &mut Ctx<Governed>,
    headers: &mut HeaderMap,
    incoming: UpstreamBody,
    status: u16,
) -> Result<ProxyBody, ProxyError> {
    if http_body::Body::is_end_stream(&incoming) {
        ctx.compare_candidate(state, None, Ok(&[]));
        return Ok(body::empty());
    }
    if ctx.flow.op.tunnel().is_some() {
        ctx.shadow_not_compared(state);
        return tunnel_body(state, ctx, headers, incoming).await;
    }
    let csv = ctx.flow.op.format() == policy::BodyFormat::Csv
        && media::classify_headers(headers) == media::BodyKind::Csv;
    // The two streamed paths are boxed: their futures are 5-6 KB, and inline they would be
    // part of (and copied with) every governed exchange's future, a ~1 KB page's too; they
    // run for large bodies, where one allocation is nothing.
    if csv {
        ctx.shadow_not_compared(state);
        return Box::pin(super::csv::results(state, ctx, headers, incoming, status)).await;
    }
    match json_body(state, ctx, headers, incoming).await? {
        Json::Filtered(bytes, outcome) => {
            ctx.flow.received = Some(BodyReport {
                outcome,
                bytes: bytes.len() as u64,
                parts: Vec::new(),
            });
            Ok(body::full(bytes))
        }
        Json::Overflow(prefix, rest) => {
            ctx.shadow_not_compared(state);
            Box::pin(stream::list(state, ctx, headers, prefix, rest, status)).await
        }
    }
}

/// A governed JSON response: filtered whole, or handed on to be streamed.
enum Json {
    Filtered(Bytes, Outcome),
    Overflow(Bytes, UpstreamBody),
}

/// Reads, parses and filters a governed JSON response; nothing goes on unread.
async fn json_body(
    state: &State,
    ctx: &Ctx<Governed>,
    headers: &mut HeaderMap,
    incoming: UpstreamBody,
) -> Result<Json, ProxyError> {
    let not = |reason| ProxyError::ResponseNotInspectable { reason };
    if !is_json(headers) {
        return Err(not(Inspection::MediaType));
    }
    // the reservation is held until the body has been filtered and serialised
    let (bytes, _reservation) = match buffer::read_or_overflow(state, headers, incoming).await? {
        Read::Decoded(bytes, reservation) => (bytes, reservation),
        Read::Overflow(prefix, rest) => return Ok(Json::Overflow(prefix, rest)),
    };
    // the span path first: no tree of the page; it hands back whatever it does not cover
    if let Some((out, outcome)) = ctx.filter_response_span(state, &bytes)? {
        return Ok(Json::Filtered(
            encode_for_app(ctx, headers, Bytes::from(out)),
            outcome,
        ));
    }
    let mut doc = json::parse(&bytes, &json_limits(state)).map_err(|e| not((&e).into()))?;
    let outcome = ctx.filter_response(state, &mut doc)?;
    ctx.route.upstream.links.rewrite_json(&mut doc);
    let out = json::to_bytes_sized(&doc, bytes.len());
    Ok(Json::Filtered(encode_for_app(ctx, headers, out), outcome))
}

/// Re-encoded when the app asked for a coding Zweck speaks, else identity.
fn encode_for_app(ctx: &Ctx<Governed>, headers: &mut HeaderMap, out: Bytes) -> Bytes {
    let Some(coding) = ctx
        .flow
        .accept_encoding
        .as_deref()
        .and_then(encoding::negotiate)
    else {
        return out;
    };
    let (Ok(encoded), Ok(v)) = (
        encoding::encode(&out, coding),
        HeaderValue::from_str(coding.as_str()),
    ) else {
        return out;
    };
    headers.insert(header::CONTENT_ENCODING, v);
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    encoded
}

/// The tunnel's response: every part filtered with its own request's operation.
async fn tunnel_body(
    state: &State,
    ctx: &mut Ctx<Governed>,
    headers: &mut HeaderMap,
    incoming: UpstreamBody,
) -> Result<ProxyBody, ProxyError> {
    let Some(request) = ctx.flow.tunnel.as_ref() else {
        return Err(ProxyError::PolicyFault);
    };
    let ctype = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
    let (bytes, _reservation) =
        buffer::read_decoded(state, headers, incoming, Direction::Response).await?;
    let purpose = ctx.purpose()?;
    let cx = tunnel::Cx::new(state, &ctx.route, purpose, request.dialect, request.kind);
    let links = Some(&ctx.route.upstream.links);
    let governed = tunnel::govern_response(&cx, request, &ctype, &bytes, links).map_err(|e| {
        tracing::info!(request_id = %ctx.request_id, refusal = %e, "tunnel response refused");
        ProxyError::from(ForPurpose(e, &purpose.name))
    })?;
    if let Ok(v) = HeaderValue::from_str(&governed.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let outcome = governed.outcome();
    ctx.log_outcome(Direction::Response, &outcome);
    ctx.flow.received = Some(BodyReport {
        outcome,
        bytes: governed.body.len() as u64,
        parts: governed.records_per_part(),
    });
    Ok(body::full(governed.body))
}

/// Rewrites upstream links in an ungoverned JSON body; anything it cannot parse goes on as
/// it came.
fn rewrite_json_links(state: &State, links: &LinkRewriter, bytes: Bytes) -> Bytes {
    // most ungoverned bodies carry no upstream link: skip the parse (9 % of pass-through CPU)
    if !links.may_link_json(&bytes) {
        return bytes;
    }
    let Ok(mut doc) = json::parse(&bytes, &json_limits(state)) else {
        return bytes;
    };
    if links.rewrite_json(&mut doc) == 0 {
        return bytes;
    }
    json::to_bytes(&doc)
}
