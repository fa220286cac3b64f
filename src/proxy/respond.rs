//! Phase 9, respond: the answer as the app sees it, for every request however far it got.
//!
//! Runs last, always. A failure becomes its response here (built by `error.rs`, the one
//! place that turns errors into responses, and logged as a refusal with ids and names only).
//! Then every response is stamped: `Zweck-Request-Id` (ties it to the logs), `Zweck-Policy`
//! (the policy version that decided it, once routed) and, on a success with an export
//! budget, the `RateLimit` headers; and it is counted in `zweck_requests_total`. It has no
//! errors of its own.
//!
//! The answer's body is wrapped so the exchange is accounted for when its last byte has gone
//! (or the client went away): one access-log event per request, governed or not (target
//! `zweck::access`: request id, app, purpose, method, route template, upstream, status,
//! problem type, upstream status, bytes in and out, duration; never a raw path or query
//! string), and its duration in `zweck_request_duration_seconds`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::metrics::histogram::Histogram;

use super::route::Route;
use super::{Arrival, Ctx, Flow, Reached};
use crate::body::{BoxError, ProxyBody};
use crate::budget::Allowance;
use crate::caller::Caller;
use crate::error::ProxyError;
use crate::metrics::{Label, RequestLabels, RequestMetricCache};
use crate::state::State;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "zweck-request-id";

/// The response header naming the policy version that decided the exchange.
pub const POLICY_HEADER: &str = "zweck-policy";

/// What phase 9 can tell about a request.
struct Seen<'a> {
    request_id: &'a str,
    started: Instant,
    method: &'a Method,
    caller: Option<&'a Caller>,
    route: Option<&'a Route>,
    template: &'a str,
    class: &'static str,
    upstream_status: Option<u16>,
    allowance: Option<&'a Allowance>,
}

impl Reached {
    fn seen(&self) -> Seen<'_> {
        fn before_route<'a>(a: &'a Arrival, caller: Option<&'a Caller>) -> Seen<'a> {
            Seen {
                request_id: &a.request_id,
                started: a.started,
                method: &a.method,
                caller,
                route: None,
                template: "-",
                class: "-",
                upstream_status: None,
                allowance: None,
            }
        }
        fn routed<'a, F: Flow>(ctx: &'a Ctx<F>, allowance: Option<&'a Allowance>) -> Seen<'a> {
            Seen {
                request_id: &ctx.request_id,
                started: ctx.started,
                method: &ctx.method,
                caller: Some(&ctx.caller),
                route: Some(&ctx.route),
                template: ctx.template(),
                class: ctx.flow.class(),
                upstream_status: ctx.upstream_status,
                allowance,
            }
        }
        match self {
            Reached::Arrived(a) => before_route(a, None),
            Reached::Identified(a, caller) => before_route(a, Some(caller)),
            Reached::Governed(ctx) => routed(ctx, ctx.flow.allowance.as_ref()),
            Reached::Ungoverned(ctx) => routed(ctx, None),
        }
    }
}

/// Phase 9. Answers the request: the pipeline's response or the refusal's, stamped, counted,
/// and accounted for in the access log once its body is done. `bytes_in` is the request
/// body's declared length; `cache` holds the metric handles of the connection's last request.
pub fn respond(
    state: &State,
    cache: &RequestMetricCache,
    reached: &Reached,
    result: Result<Response<ProxyBody>, ProxyError>,
    bytes_in: Option<u64>,
) -> Response<ProxyBody> {
    let seen = reached.seen();
    // a refusal in phase 1 may still know the app its credential named
    let named: Option<Arc<str>> = match (&seen.caller, &result) {
        (None, Err(err)) => err.app().map(Arc::from),
        _ => None,
    };
    let app = seen.caller.map(|c| &c.app).or(named.as_ref());
    let (mut resp, problem) = match result {
        Ok(resp) => (resp, None),
        Err(err) => {
            state.metrics.count_refusal(err.slug());
            (refused(&seen, app, &err), Some(err.slug()))
        }
    };
    stamp(&seen, &mut resp);
    let status = resp.status().as_u16();
    let labels = RequestLabels {
        upstream: Label::new(seen.route.map(|r| &r.upstream.label)),
        app: Label::new(app),
        purpose: Label::new(seen.caller.map(|c| &c.purpose)),
        status,
    };
    let duration = state.metrics.count_request(cache, labels, seen.class);
    let entry = tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
        .then(|| AccessEntry::new(&seen, status, problem, bytes_in));
    resp.map(|body| {
        Accounted {
            body,
            started: seen.started,
            bytes_out: 0,
            duration,
            entry,
            finished: false,
        }
        .boxed_unsync()
    })
}

/// The target of access-log events (`RUST_LOG=zweck::access=off` turns them off).
pub const ACCESS_TARGET: &str = "zweck::access";

/// The access-log fields known when the response head goes out.
struct AccessEntry {
    request_id: String,
    method: Method,
    app: Option<Arc<str>>,
    purpose: Option<Arc<str>>,
    upstream: Option<Arc<str>>,
    route: String,
    status: u16,
    problem: Option<&'static str>,
    upstream_status: Option<u16>,
    bytes_in: Option<u64>,
}

impl AccessEntry {
    fn new(
        seen: &Seen<'_>,
        status: u16,
        problem: Option<&'static str>,
        bytes_in: Option<u64>,
    ) -> Self {
        AccessEntry {
            request_id: seen.request_id.to_string(),
            method: seen.method.clone(),
            app: seen.caller.map(|c| c.app.clone()),
            purpose: seen.caller.map(|c| c.purpose.clone()),
            upstream: seen.route.map(|r| r.upstream.label.clone()),
            route: seen.template.to_string(),
            status,
            problem,
            upstream_status: seen.upstream_status,
            bytes_in,
        }
    }

    /// One event: names, counts and the route template only.
    fn emit(&self, bytes_out: u64, duration: std::time::Duration, complete: bool) {
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = %self.request_id,
            app = self.app.as_deref().unwrap_or("-"),
            purpose = self.purpose.as_deref().unwrap_or("-"),
            method = %self.method,
            route = %self.route,
            upstream = self.upstream.as_deref().unwrap_or("-"),
            status = self.status,
            problem = self.problem.unwrap_or("-"),
            upstream_status = self.upstream_status,
            bytes_in = self.bytes_in,
            bytes_out,
            duration_ms = duration.as_secs_f64() * 1000.0,
            complete,
            "access"
        );
    }
}

/// The answer's body, counted; the exchange is accounted for when it ends or is dropped.
struct Accounted {
    body: ProxyBody,
    started: Instant,
    bytes_out: u64,
    duration: Histogram,
    entry: Option<AccessEntry>,
    finished: bool,
}

impl Accounted {
    /// Once: at the end of the body, or when it is dropped before (`complete: false`).
    fn finish(&mut self, complete: bool) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let took = self.started.elapsed();
        self.duration.observe(took.as_secs_f64());
        if let Some(entry) = &self.entry {
            entry.emit(self.bytes_out, took, complete);
        }
    }
}

impl Body for Accounted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes_out += data.len() as u64;
                }
                if self.body.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Accounted {
    fn drop(&mut self) {
        // a body hyper never polled to its end: empty (HEAD, 204), or the client went away
        let complete = self.body.is_end_stream();
        self.finish(complete);
    }
}

/// The refusal's response (`error.rs`), and one log event without values.
fn refused(seen: &Seen<'_>, app: Option<&Arc<str>>, err: &ProxyError) -> Response<ProxyBody> {
    tracing::info!(
        request_id = %seen.request_id,
        app = app.map_or("-", |a| &**a),
        purpose = seen.caller.map_or("-", |c| &*c.purpose),
        route = seen.template,
        problem = err.slug(),
        status = err.status().as_u16(),
        "request refused"
    );
    err.to_response(Some(seen.request_id))
}

/// The request id, the policy version and (on a success) what is left of the budget.
fn stamp(seen: &Seen<'_>, resp: &mut Response<ProxyBody>) {
    let success = resp.status().is_success();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(seen.request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    if let Some(route) = seen.route {
        if let Ok(v) = HeaderValue::from_str(route.policy.version()) {
            headers.insert(POLICY_HEADER, v);
        }
    }
    if let (true, Some(allowance)) = (success, seen.allowance) {
        for (name, value) in allowance.headers() {
            headers.insert(name, value);
        }
    }
}
