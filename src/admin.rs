//! The admin listener (127.0.0.1:9901 by default, the port Envoy users know): `/healthz`,
//! `/readyz`, `/metrics` in Prometheus text and `/shadow` (what a candidate policy would do
//! differently, JSON: names and counts). Plain HTTP on loopback: it carries no personal data,
//! and putting it on its own address keeps it off the public listener.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::body::{self, ProxyBody};
use crate::state::State;

/// Serves the admin endpoints until `shutdown` completes.
pub async fn run(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let svc = service_fn(move |req| answer(state.clone(), req));
        let conn = auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(tcp), svc)
            .into_owned();
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = watched.await;
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), graceful.shutdown()).await;
}

/// Ready when started and the transfer log can be written: a failed log refuses every
/// governed request (fail closed), so a load balancer should send traffic elsewhere.
fn readiness(state: &State) -> (StatusCode, &'static str, String) {
    if !state.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_string(),
        );
    }
    if state.audit.as_ref().is_some_and(|a| a.failure().is_some()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: the transfer log cannot be written; governed requests are refused until a restart\n"
                .to_string(),
        );
    }
    (StatusCode::OK, "text/plain", "ready\n".to_string())
}

/// The transfer log's state as gauges, read at scrape time.
fn refresh_transfer_log_gauges(state: &State) {
    let Some(audit) = &state.audit else {
        return;
    };
    let m = &state.metrics;
    m.transfer_log_failed
        .set(i64::from(audit.failure().is_some()));
    m.transfer_log_offbox_failing
        .set(i64::from(audit.offbox_error().is_some()));
    m.transfer_log_entries
        .set(i64::try_from(audit.stats().entries).unwrap_or(i64::MAX));
}

/// `GET /shadow`: what the candidate policy would do differently, per purpose x field
/// (counts and names, never values); 404 without a candidate.
fn shadow_report(state: &State) -> (StatusCode, &'static str, String) {
    let Some(shadow) = &state.shadow else {
        return (
            StatusCode::NOT_FOUND,
            "text/plain",
            "no candidate policy: set policies.candidate to compare one on real traffic\n"
                .to_string(),
        );
    };
    let report = serde_json::json!({
        "active_version": state.policies.current().version(),
        "candidate": shadow.report(),
    });
    match serde_json::to_string_pretty(&report) {
        Ok(text) => (StatusCode::OK, "application/json", text + "\n"),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "cannot render the report\n".to_string(),
        ),
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (status, ctype, text) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&Method::GET, "/readyz") => readiness(&state),
        (&Method::GET, "/shadow") => shadow_report(&state),
        (&Method::GET, "/drift") => (
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&state.metrics.drift.snapshot()).unwrap_or_default(),
        ),
        (&Method::GET, "/metrics") => {
            refresh_transfer_log_gauges(&state);
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                state.metrics.render(),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}
