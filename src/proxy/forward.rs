//! Phase 5, forward: the request goes to the upstream.
//!
//! Runs once the request may go (on a governed route after the budget and the transfer
//! log's record of it). It changes one thing: the upstream's own credential is added (a
//! static token, or an OAuth2 client-credentials token Zweck fetches and caches; the app's
//! credential never reaches the CRM). The request then goes out on the upstream's pooled
//! rustls client. Its errors: `upstream-credential` (502: no token to be had),
//! `upstream-unavailable` (502: refused or reset), `upstream-malformed` (502: a response
//! whose framing could smuggle another; its connection is dropped) and `upstream-timeout`
//! (504: no response head within the response timeout; a body that stalls later fails where
//! it is read). Client and credentials are `upstream.rs`.

use std::time::Instant;

use http::{header, Request, Response};

use super::route::Route;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::state::State;
use crate::upstream::UpstreamBody;

/// Phase 5. Adds the upstream's credential and sends the request; the time to the response
/// head goes to the upstream latency histogram.
pub async fn forward(
    state: &State,
    route: &Route,
    mut req: Request<ProxyBody>,
) -> Result<Response<UpstreamBody>, ProxyError> {
    let entry = &route.upstream;
    if let Some(auth) = entry.upstream.authorization().await? {
        req.headers_mut().insert(header::AUTHORIZATION, auth);
    }
    let started = Instant::now();
    let resp = entry.upstream.send(req).await;
    let seconds = started.elapsed().as_secs_f64();
    entry
        .latency
        .get_or_init(|| state.metrics.upstream_latency_of(&entry.label))
        .observe(seconds);
    resp
}
