//! The admin listener (127.0.0.1:9901 by default, the port Envoy users know): `/healthz`,
//! `/readyz`, `/metrics` in Prometheus text, `/shadow` (what a candidate policy would do
//! differently, JSON: names and counts) and `POST /reload`. Plain HTTP on loopback: it
//! carries no personal data, and putting it on its own address keeps it off the public
//! listener.
//!
//! With the admin token, the incident side: `GET /containment`, `POST /containment/contain`
//! (an operator contains one app x purpose by hand), `POST /containment/clear` and
//! `POST /apps/APP/revoke|reinstate`; each step is logged before it is answered.
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

/// An answer: status, content type, body.
type Answer = (StatusCode, &'static str, String);

fn bad_request(text: impl Into<String>) -> Answer {
    (StatusCode::BAD_REQUEST, "text/plain", text.into() + "\n")
}

/// The query parameters of a containment step, each at most once.
#[derive(Debug, Default)]
struct StepParams {
    app: Option<String>,
    purpose: Option<String>,
    action: Option<String>,
    reason: Option<String>,
    by: Option<String>,
}

impl StepParams {
    /// Unknown parameters are ignored; a parameter given twice is refused (which one would
    /// count is a guess an operator should not have to make).
    fn parse(query: Option<&str>) -> Result<StepParams, Answer> {
        let mut out = StepParams::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match &*k {
                "app" => &mut out.app,
                "purpose" => &mut out.purpose,
                "action" => &mut out.action,
                "reason" => &mut out.reason,
                "by" => &mut out.by,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(bad_request(format!("{k} is given more than once")));
            }
        }
        Ok(out)
    }

    /// The reason as the log takes it: the default slug when absent or empty, refused when
    /// longer than 200 characters or with a control character (nothing changes then).
    fn reason(&self, default: &str) -> Result<String, Answer> {
        match self.reason.as_deref() {
            None | Some("") => Ok(default.to_string()),
            Some(r) if r.chars().count() > 200 => Err(bad_request(
                "reason is longer than 200 characters: nothing was changed",
            )),
            Some(r) if r.chars().any(char::is_control) => Err(bad_request(
                "reason has a control character: nothing was changed",
            )),
            Some(r) => Ok(r.to_string()),
        }
    }

    /// Who takes the step: `admin` (default) or `cli` (what `zweck apps ...` sends).
    fn by(&self) -> Result<crate::audit::event::By, Answer> {
        use crate::audit::event::By;
        match self.by.as_deref() {
            None | Some("admin") => Ok(By::Admin),
            Some("cli") => Ok(By::Cli),
            Some(_) => Err(bad_request("by is admin or cli: nothing was changed")),
        }
    }
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
    let params = match StepParams::parse(query) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let by = match params.by() {
        Ok(by) => by,
        Err(answer) => return answer,
    };
    match step {
        "revoke" => {
            let reason = match params.reason("revoked-by-operator") {
                Ok(r) => r,
                Err(answer) => return answer,
            };
            if incidents.revoke(app, by, &reason).await {
                text(StatusCode::OK, format!("{app} revoked: its API keys and certificate are refused from the next request on\n"))
            } else {
                text(StatusCode::OK, format!("{app} was already revoked\n"))
            }
        }
        "reinstate" => {
            let reason = match params.reason("reinstated-by-operator") {
                Ok(r) => r,
                Err(answer) => return answer,
            };
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
/// The app need not be in the config any more: a containment outlives a reload that removed
/// its app, and must stay clearable.
async fn clear_containment(
    state: &State,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Answer {
    let (incidents, params) = match step_of(state, headers, query) {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    let (Some(app), Some(purpose)) = (&params.app, &params.purpose) else {
        return bad_request(
            "name the app and the purpose: POST /containment/clear?app=APP&purpose=PURPOSE",
        );
    };
    let (reason, by) = match (params.reason("cleared-by-operator"), params.by()) {
        (Ok(reason), Ok(by)) => (reason, by),
        (Err(answer), _) | (_, Err(answer)) => return answer,
    };
    match incidents.clear(app, purpose, by, &reason).await {
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

/// The admin token, the incident state and the parameters every containment step needs.
fn step_of<'s>(
    state: &'s State,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Result<(&'s crate::incident::Incidents, StepParams), Answer> {
    admin_only(state, headers)?;
    let incidents = state.incidents.as_deref().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "containment is not available in this process\n".to_string(),
        )
    })?;
    Ok((incidents, StepParams::parse(query)?))
}

/// `POST /containment/contain?app=A&purpose=P&action=block|throttle[&reason=R]`: contains
/// one app x purpose by hand (docs/detection.md, "Containing by hand"). The same action
/// again changes nothing (200); `block` replaces `throttle` (200, a new entry); `throttle`
/// where `block` is in force is refused (409): clearing is the way down.
async fn contain(state: &State, headers: &http::HeaderMap, query: Option<&str>) -> Answer {
    use crate::incident::{Logged, Measure, Step};
    let (incidents, params) = match step_of(state, headers, query) {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    let usage =
        "POST /containment/contain?app=APP&purpose=PURPOSE&action=block|throttle[&reason=R]";
    let (Some(app), Some(purpose), Some(action)) = (&params.app, &params.purpose, &params.action)
    else {
        return bad_request(format!("name the app, the purpose and the action: {usage}"));
    };
    let Some(measure) = Measure::parse(action) else {
        return bad_request(format!("action is block or throttle: {usage}"));
    };
    let (reason, by) = match (params.reason("contained-by-operator"), params.by()) {
        (Ok(reason), Ok(by)) => (reason, by),
        (Err(answer), _) | (_, Err(answer)) => return answer,
    };
    let not_found = |text: &str| (StatusCode::NOT_FOUND, "text/plain", text.to_string());
    {
        let live = state.live();
        let Some(granted) = live.config.apps.iter().find(|a| &a.name == app) else {
            return not_found("no such app in the config: nothing was changed\n");
        };
        if !granted.purposes.contains(purpose.as_str()) {
            return not_found("the app is not granted that purpose: nothing was changed\n");
        }
    }
    let (step, logged) = incidents
        .contain_by_hand(app, purpose, measure, by, &reason)
        .await;
    let json = |status, step: &str, c: &crate::incident::Contained, seq: Option<u64>| {
        let body = serde_json::json!({ "step": step, "contained": c, "seq": seq });
        (
            status,
            "application/json",
            serde_json::to_string(&body).unwrap_or_default() + "\n",
        )
    };
    if logged == Some(Logged::Failed) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "contained and in force, but its transfer-log entry could not be written (the process log says why)\n"
                .to_string(),
        );
    }
    let seq = match logged {
        Some(Logged::At(seq)) => Some(seq),
        _ => None,
    };
    match step {
        Step::New(c) => json(StatusCode::OK, "contained", &c, seq),
        Step::Stronger(c) => json(StatusCode::OK, "stronger", &c, seq),
        Step::Same(c) => json(StatusCode::OK, "unchanged", &c, None),
        Step::Weaker(c) => (
            StatusCode::CONFLICT,
            "text/plain",
            format!(
                "{app} is already contained with {} for {purpose}: nothing was changed (clear it first to contain with less)\n",
                c.action.as_str()
            ),
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
        (&Method::POST, "/containment/contain") => {
            contain(&state, req.headers(), req.uri().query()).await
        }
        (&Method::POST, path) if path.starts_with("/apps/") => {
            app_step(&state, req.headers(), path, req.uri().query()).await
        }
        (_, "/containment" | "/containment/clear" | "/containment/contain") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /containment, POST /containment/contain?app=APP&purpose=PURPOSE&action=block|throttle, POST /containment/clear?app=APP&purpose=PURPOSE\n".to_string(),
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
