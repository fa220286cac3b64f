//! Phase 9, respond: the answer as the app sees it, for every request however far it got.
//!
//! Runs last, always. A failure becomes its response here (built by `error.rs`, the one
//! place that turns errors into responses, and logged as a refusal with ids and names only).
//! Then every response is stamped: `Zweck-Request-Id` (ties it to the logs), `Zweck-Policy`
//! (the policy version that decided it, once routed) and, on a success with an export
//! budget, the `RateLimit` headers; and it is counted in `zweck_requests_total`. It has no
//! errors of its own.

use std::sync::Arc;

use http::{HeaderValue, Method, Response};

use super::route::Route;
use super::{Arrival, Ctx, Flow, Reached};
use crate::body::ProxyBody;
use crate::budget::Allowance;
use crate::caller::Caller;
use crate::error::ProxyError;
use crate::metrics::{Label, RequestLabels};
use crate::state::State;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "zweck-request-id";

/// The response header naming the policy version that decided the exchange.
pub const POLICY_HEADER: &str = "zweck-policy";

/// What phase 9 can tell about a request.
struct Seen<'a> {
    request_id: &'a str,
    method: &'a Method,
    caller: Option<&'a Caller>,
    route: Option<&'a Route>,
    template: &'a str,
    allowance: Option<&'a Allowance>,
}

impl Reached {
    fn seen(&self) -> Seen<'_> {
        fn before_route<'a>(a: &'a Arrival, caller: Option<&'a Caller>) -> Seen<'a> {
            Seen {
                request_id: &a.request_id,
                method: &a.method,
                caller,
                route: None,
                template: "-",
                allowance: None,
            }
        }
        fn routed<'a, F: Flow>(ctx: &'a Ctx<F>, allowance: Option<&'a Allowance>) -> Seen<'a> {
            Seen {
                request_id: &ctx.request_id,
                method: &ctx.method,
                caller: Some(&ctx.caller),
                route: Some(&ctx.route),
                template: ctx.template(),
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

/// Phase 9. Answers the request: the pipeline's response or the refusal's, stamped and
/// counted.
pub fn respond(
    state: &State,
    reached: &Reached,
    result: Result<Response<ProxyBody>, ProxyError>,
) -> Response<ProxyBody> {
    let seen = reached.seen();
    // a refusal in phase 1 may still know the app its credential named
    let named: Option<Arc<str>> = match (&seen.caller, &result) {
        (None, Err(err)) => err.app().map(Arc::from),
        _ => None,
    };
    let app = seen.caller.map(|c| &c.app).or(named.as_ref());
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => refused(&seen, app, &err),
    };
    stamp(&seen, &mut resp);
    let status = resp.status().as_u16();
    state.metrics.count_request(&RequestLabels {
        upstream: Label::new(seen.route.map(|r| &r.upstream.label)),
        app: Label::new(app),
        purpose: Label::new(seen.caller.map(|c| &c.purpose)),
        status,
    });
    tracing::debug!(request_id = %seen.request_id, method = %seen.method, route = seen.template, status, "answered");
    resp
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
