//! The admin listener (127.0.0.1:9901 by default, the port Envoy users know): `/healthz`,
//! `/readyz`, `/metrics` in Prometheus text, `/shadow` (what a candidate policy would do
//! differently, JSON: names and counts) and `POST /reload`. Plain HTTP on loopback: it
//! carries no personal data, and putting it on its own address keeps it off the public
//! listener.
//!
//! Reading is open (probes and scrapers carry no credentials); changing state is not:
//! `POST /reload` needs `Authorization: Bearer <token>` with the token of `admin_token_file`,
//! compared in constant time, and is refused (403) when no token is configured. A reload
//! runs on a blocking thread and answers with its outcome: 200 and what was swapped in, or
//! 409 and every diagnostic that kept the last good state in force.

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
    let stats = audit.stats();
    m.transfer_log_entries
        .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
    // the writer counts; a scrape copies (fetch_max: concurrent scrapes never go backwards)
    m.transfer_log_appends
        .inner()
        .fetch_max(stats.appends, std::sync::atomic::Ordering::Relaxed);
    m.transfer_log_syncs
        .inner()
        .fetch_max(stats.syncs, std::sync::atomic::Ordering::Relaxed);
    m.transfer_log_window_timeouts
        .inner()
        .fetch_max(stats.window_timeouts, std::sync::atomic::Ordering::Relaxed);
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
        "active_version": state.live().policy.version(),
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

/// Whether the request carries the admin token; constant time in the token's bytes.
fn authorised(token: &str, headers: &http::HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}

/// The admin token check of the state-changing and incident endpoints: `Err` is the answer.
fn admin_only(
    state: &State,
    headers: &http::HeaderMap,
) -> Result<(), (StatusCode, &'static str, String)> {
    let Some(token) = state.live().admin_token.clone() else {
        return Err((
            StatusCode::FORBIDDEN,
            "text/plain",
            "off: set admin_token_file in the config\n".to_string(),
        ));
    };
    if !authorised(&token, headers) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "send Authorization: Bearer <the token of admin_token_file>\n".to_string(),
        ));
    }
    Ok(())
}

/// `GET /containment`: what incidents contained (apps, purposes, actions, incident ids).
fn containment(state: &State, headers: &http::HeaderMap) -> (StatusCode, &'static str, String) {
    if let Err(answer) = admin_only(state, headers) {
        return answer;
    }
    let (contained, revoked) = state
        .incidents
        .as_ref()
        .map(|i| (i.containment(), i.revocations()))
        .unwrap_or_default();
    let text = serde_json::to_string_pretty(
        &serde_json::json!({ "contained": contained, "revoked": revoked }),
    )
    .unwrap_or_default();
    (StatusCode::OK, "application/json", text + "\n")
}

/// The query parameters of a step: (app, purpose, reason, by).
fn step_params(query: Option<&str>) -> [Option<String>; 4] {
    let mut out: [Option<String>; 4] = Default::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match &*k {
            "app" => 0,
            "purpose" => 1,
            "reason" => 2,
            "by" => 3,
            _ => continue,
        };
        out[slot] = Some(v.into_owned());
    }
    out
}

/// A reason as the log takes it: short, printable, or the default slug.
fn reason_or(reason: Option<String>, default: &str) -> String {
    reason
        .filter(|r| !r.is_empty() && r.len() <= 200 && !r.chars().any(char::is_control))
        .unwrap_or_else(|| default.to_string())
}

/// `POST /apps/APP/revoke[?reason=R]` and `POST /apps/APP/reinstate[?reason=R]`.
async fn app_step(
    state: &State,
    headers: &http::HeaderMap,
    path: &str,
    query: Option<&str>,
) -> (StatusCode, &'static str, String) {
    if let Err(answer) = admin_only(state, headers) {
        return answer;
    }
    let text = |status, t: String| (status, "text/plain", t);
    let Some((app, step)) = path
        .strip_prefix("/apps/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return text(
            StatusCode::NOT_FOUND,
            "POST /apps/APP/revoke or /apps/APP/reinstate\n".into(),
        );
    };
    let Some(incidents) = &state.incidents else {
        return text(StatusCode::NOT_FOUND, "not available\n".into());
    };
    let app = percent_encoding::percent_decode_str(app).decode_utf8_lossy();
    let app = app.as_ref();
    if !state.live().config.apps.iter().any(|a| a.name == app) {
        return text(StatusCode::NOT_FOUND, "no such app in the config\n".into());
    }
    let [_, _, reason, by] = step_params(query);
    let by = match by.as_deref() {
        Some("cli") => crate::audit::event::By::Cli,
        _ => crate::audit::event::By::Admin,
    };
    match step {
        "revoke" => {
            let reason = reason_or(reason, "revoked-by-operator");
            if incidents.revoke(app, by, &reason).await {
                text(StatusCode::OK, format!("{app} revoked: its API keys and certificate are refused from the next request on\n"))
            } else {
                text(StatusCode::OK, format!("{app} was already revoked\n"))
            }
        }
        "reinstate" => {
            let reason = reason_or(reason, "reinstated-by-operator");
            match incidents.reinstate(app, by, &reason).await {
                Some(_) => text(StatusCode::OK, format!("{app} reinstated\n")),
                None => text(StatusCode::NOT_FOUND, format!("{app} is not revoked\n")),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "POST /apps/APP/revoke or /apps/APP/reinstate\n".into(),
        ),
    }
}

/// `POST /containment/clear?app=A&purpose=P[&reason=R]`: lifts a containment and logs it.
async fn clear_containment(
    state: &State,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> (StatusCode, &'static str, String) {
    if let Err(answer) = admin_only(state, headers) {
        return answer;
    }
    let Some(incidents) = &state.incidents else {
        return (
            StatusCode::NOT_FOUND,
            "text/plain",
            "no incident detection: add an incidents section to the config\n".to_string(),
        );
    };
    let [app, purpose, reason, _] = step_params(query);
    let (Some(app), Some(purpose)) = (app, purpose) else {
        return (
            StatusCode::BAD_REQUEST,
            "text/plain",
            "name the app and the purpose: POST /containment/clear?app=APP&purpose=PURPOSE\n"
                .to_string(),
        );
    };
    let reason = reason_or(reason, "cleared-by-operator");
    match incidents
        .clear(&app, &purpose, crate::audit::event::By::Admin, &reason)
        .await
    {
        Some(lifted) => (
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&serde_json::json!({ "cleared": lifted })).unwrap_or_default()
                + "\n",
        ),
        None => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "that app and purpose are not contained\n".to_string(),
        ),
    }
}

/// `POST /reload`: authorised, then [`crate::reload::everything`] off the async workers.
async fn reload(
    state: Arc<State>,
    headers: &http::HeaderMap,
) -> (StatusCode, &'static str, String) {
    let Some(token) = state.live().admin_token.clone() else {
        return (
            StatusCode::FORBIDDEN,
            "text/plain",
            "reload over the admin listener is off: set admin_token_file in the config\n"
                .to_string(),
        );
    };
    if !authorised(&token, headers) {
        tracing::warn!("admin reload refused: missing or wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "send Authorization: Bearer <the token of admin_token_file>\n".to_string(),
        );
    }
    tracing::info!("admin reload requested");
    let st = state.clone();
    match tokio::task::spawn_blocking(move || crate::reload::everything(&st)).await {
        Ok(Ok(done)) => (StatusCode::OK, "text/plain", format!("{done}\n")),
        Ok(Err(e)) => (
            StatusCode::CONFLICT,
            "text/plain",
            format!("reload refused; the last good state stays in force:\n{e}\n"),
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "the reload task failed; the last good state stays in force\n".to_string(),
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
        (&Method::POST, "/reload") => reload(state.clone(), req.headers()).await,
        (&Method::GET, "/containment") => containment(&state, req.headers()),
        (&Method::POST, "/containment/clear") => {
            clear_containment(&state, req.headers(), req.uri().query()).await
        }
        (&Method::POST, path) if path.starts_with("/apps/") => {
            app_step(&state, req.headers(), path, req.uri().query()).await
        }
        (_, "/containment" | "/containment/clear") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /containment, POST /containment/clear?app=APP&purpose=PURPOSE\n".to_string(),
        ),
        (_, "/reload") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "POST /reload\n".to_string(),
        ),
        (&Method::GET, "/metrics") => {
            refresh_transfer_log_gauges(&state);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            state
                .metrics
                .ready
                .set(i64::from(readiness(&state).0 == StatusCode::OK));
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                state.metrics.scrape(&state.live(), now),
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
