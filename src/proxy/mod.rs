//! The per-request pipeline: nine phases, one file each (DESIGN.md §1).
//!
//! | phase | file | runs | may change | its errors mean |
//! |---|---|---|---|---|
//! | 1 identify | [`identify`] | first, on the headers and the TLS peer | nothing | the caller is unknown (401) or the purpose is not theirs (403) |
//! | 2 route | [`route`] | second | nothing: decides upstream, canonical path and governance | the path is ambiguous (400), unrouted (404) or unclassified (403) |
//! | 3 request | [`request`] | before anything is sent | the request head; a governed body, minimised | the request breaks the purpose's policy or cannot be inspected |
//! | 4 budget | [`budget`] | governed reads, before forwarding | the page size asked for | the export budget cannot pay (429/403/503) |
//! | 5 forward | [`forward`] | once the request may go | the upstream's own credential | the upstream is down (502) or slow (504) |
//! | 6 response | [`response`] | on the response head | headers, links; a governed body, minimised | the response cannot be inspected (502) or is refused |
//! | 7 charge | [`budget`] | governed reads, after filtering | nothing | the records delivered do not fit the budget |
//! | 8 log | [`log`] | before each governed direction flows | nothing | the transfer log cannot be written (503): nothing flows |
//! | 9 respond | [`respond`] | last, for every request | the response headers (request id, policy, RateLimit) | none: every failure is answered here |
//!
//! [`handle`] runs the phases over a context that grows with them: an [`Arrival`] (known from
//! the first byte), then a routed [`Ctx`] that holds the caller and the route as plain
//! fields. Route decides once whether the route is governed; from there the two paths are
//! separate functions, `governed` (phases 3 to 8, every body parsed and filtered) and
//! `ungoverned` (phases 3, 5, 6: streamed untouched, links aside). Every failure is a
//! [`ProxyError`] turned into a response in one place (`error.rs`), called from phase 9; the
//! service itself never fails, because a hyper service that errors drops the connection
//! without an answer.
//!
//! The order matters: identify before route, so an unknown caller learns nothing about which
//! paths exist; route (with path canonicalisation) before anything reads the body, so the
//! policy is chosen for the path the CRM will really act on; the transfer record is appended
//! before data flows, so nothing flows that the log does not show.
//!
//! Beside the phases: [`wire`] (before phase 1: one `Host`, agreeing with the target, and a
//! header block under the limit), [`intake`] (the app's request body: paced, capped, and
//! drained when a refusal leaves it unread, so the answer reaches the client on HTTP/1.1
//! and HTTP/2), [`headers`] (what never crosses), [`buffer`] (governed bodies read under the
//! global buffer budget), [`csv`] (Bulk results with their row count), [`stream`] (governed
//! bodies too large to buffer) and [`tunnel`] (`$batch` and composite requests, governed
//! part by part).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::audit;
use crate::body::ProxyBody;
use crate::budget::Allowance;
use crate::caller::Caller;
use crate::error::{ForPurpose, ProxyError};
use crate::policy::decide::Denial;
use crate::policy::query::{QueryRefusal, Shape};
use crate::policy::{self, Direction, Operation, Outcome, Purpose, Refusal};
use crate::state::State;
use crate::tls::PeerIdentity;

pub mod budget;
pub mod buffer;
pub mod csv;
pub mod forward;
pub mod headers;
pub mod identify;
pub mod intake;
pub mod log;
pub mod request;
pub mod respond;
pub mod response;
pub mod route;
pub mod stream;
pub mod tunnel;
pub mod wire;

use self::budget::BudgetScope;
use self::intake::{AppBody, IntakeLimits};
use self::log::BodyReport;
use self::route::{Governance, Route};

pub use self::respond::{POLICY_HEADER, REQUEST_ID_HEADER};

/// What the server knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The verified client certificate's names, when one was presented.
    pub identity: Option<PeerIdentity>,
    /// The metric handles of the connection's last answered request.
    pub metrics: crate::metrics::RequestMetricCache,
}

/// What is known of every request from its first byte.
#[derive(Debug)]
pub struct Arrival {
    pub request_id: String,
    pub started: Instant,
    pub method: Method,
}

/// The context of a request once phases 1 and 2 have run: who calls for which purpose, and
/// where the request goes. `F` is what the path of the route adds: [`Governed`] or
/// [`Ungoverned`].
#[derive(Debug)]
pub struct Ctx<F> {
    pub request_id: String,
    pub started: Instant,
    pub method: Method,
    pub caller: Caller,
    pub route: Route,
    pub flow: F,
    /// The upstream's status, once it answered (the access log's `upstream_status`).
    pub upstream_status: Option<u16>,
}

/// A route that carries no personal data: streamed through untouched (links aside).
#[derive(Debug)]
pub struct Ungoverned {
    /// The route template it matched (for logs).
    pub template: String,
    /// An `op: metadata` operation rather than an `ungoverned` entry: counted as metadata
    /// (`zweck_metadata_requests_total`), otherwise treated alike.
    pub metadata: bool,
}

/// An inventory operation: every body is parsed and filtered for the purpose, and the
/// phases record here what they did.
#[derive(Debug)]
pub struct Governed {
    pub op: Operation,
    /// The export budget the exchange is charged to: reads of a purpose with one.
    pub budget: Option<BudgetScope>,
    /// The app's Accept-Encoding, for re-encoding a filtered response (phase 3 keeps it).
    pub accept_encoding: Option<String>,
    /// A governed `$batch` / composite request: its parts, to govern the response part by
    /// part (phase 3 sets it, phase 6 reads it).
    pub tunnel: Option<tunnel::GovernedRequest>,
    /// What query minimisation knows of the answer (consent fields it added to the query,
    /// an aggregate's columns): phase 3 sets it, phase 6 filters with it.
    pub shape: Shape,
    /// The filtered request body that went to the processor (writes), for the log.
    pub sent: Option<BodyReport>,
    /// The filtered response body that came back, for the charge and the log.
    pub received: Option<BodyReport>,
    /// Whether the request was handed to the upstream (a refusal after it is logged as the
    /// answer's).
    pub forwarded: bool,
    /// A Bulk results request, kept to fetch a page again whose rows are too large to hold
    /// (`csv.rs`).
    pub refetch: Option<csv::Refetch>,
    /// The export budget left after this exchange (phases 4 and 7; RateLimit headers).
    pub allowance: Option<Allowance>,
    /// The URL's query, kept only while a candidate policy is compared (`crate::shadow`).
    pub shadow_query: Option<String>,
}

/// What a route's path contributes to logs and metrics.
pub trait Flow {
    /// The route template the request matched.
    fn template(&self) -> &str;
    /// The route class label: the inventory's class, or `ungoverned`.
    fn class(&self) -> &'static str;
}

impl Flow for Ungoverned {
    fn template(&self) -> &str {
        &self.template
    }

    fn class(&self) -> &'static str {
        "ungoverned"
    }
}

impl Flow for Governed {
    fn template(&self) -> &str {
        self.op.template()
    }

    fn class(&self) -> &'static str {
        self.op.class().as_str()
    }
}

impl<F: Flow> Ctx<F> {
    fn new(arrival: Arrival, caller: Caller, route: Route, flow: F) -> Ctx<F> {
        let Arrival {
            request_id,
            started,
            method,
        } = arrival;
        Ctx {
            request_id,
            started,
            method,
            caller,
            route,
            flow,
            upstream_status: None,
        }
    }

    /// The route template the request matched.
    pub fn template(&self) -> &str {
        self.flow.template()
    }
}

impl Ctx<Governed> {
    /// The purpose the caller asked for, as the policy snapshot defines it.
    pub fn purpose(&self) -> Result<&Purpose, ProxyError> {
        self.route
            .policy
            .purpose(&self.caller.purpose)
            .ok_or_else(|| ProxyError::PurposeUnknown {
                purpose: self.caller.purpose.to_string(),
            })
    }

    /// Minimises one parsed response body for the purpose and logs the decision (counts
    /// only).
    pub fn filter_response(
        &self,
        state: &State,
        doc: &mut serde_json::Value,
    ) -> Result<Outcome, ProxyError> {
        let (set, purpose, op) = (&self.route.policy, self.purpose()?, &self.flow.op);
        let key = self.route.pseudonym_key.as_ref();
        let shape = &self.flow.shape;
        let result = if state.shadow.is_none() {
            policy::decide::response_body(set, purpose, op, doc, key, shape)
        } else {
            // the candidate decides an untouched copy; the active decision is traced
            let mut copy = doc.clone();
            let mut trace = Vec::new();
            let r =
                policy::decide::response_body_traced(set, purpose, op, doc, key, shape, &mut trace);
            let active = r.as_ref().map(|_| trace.as_slice()).map_err(|_| ());
            self.compare_candidate(state, Some(&mut copy), active);
            r
        };
        let outcome = result.map_err(|r| self.refused(r))?;
        self.response_decided(state, &outcome);
        Ok(outcome)
    }

    /// [`Ctx::filter_response`] on the span path (`policy::span`), upstream links rewritten
    /// as well: the minimised body and its outcome, or None when the body is for the DOM path
    /// (anything the span path does not cover, every refusal, live shadow comparison).
    pub fn filter_response_span(
        &self,
        state: &State,
        bytes: &[u8],
    ) -> Result<Option<(Vec<u8>, Outcome)>, ProxyError> {
        // an unknown purpose is the DOM path's to report, after its parse error if any
        let (None, Ok(purpose)) = (&state.shadow, self.purpose()) else {
            return Ok(None);
        };
        let (set, op) = (&self.route.policy, &self.flow.op);
        let links = Some(&self.route.upstream.links);
        let limits = buffer::json_limits(state);
        let key = self.route.pseudonym_key.as_ref();
        match policy::span::response(
            set,
            purpose,
            op,
            bytes,
            &limits,
            key,
            &self.flow.shape,
            links,
        ) {
            Ok(m) => {
                self.response_decided(state, &m.outcome);
                Ok(Some((m.body, m.outcome)))
            }
            Err(fallback) => {
                tracing::trace!(request_id = %self.request_id, fallback = fallback.as_str(), "governed response on the DOM path");
                Ok(None)
            }
        }
    }

    /// A response's decision logged (counts only) and its unknown fields counted.
    fn response_decided(&self, state: &State, outcome: &Outcome) {
        self.log_outcome(Direction::Response, outcome);
        state
            .metrics
            .drift
            .record(&self.route.upstream.label, &outcome.unclassified);
    }

    /// Live shadow comparison (`crate::shadow`): the candidate policy's decision on this
    /// exchange (an untouched copy of the response body, when there is one) beside the
    /// active set's (its field decisions, or `Err` when it refused), counted. Nothing here
    /// changes what goes on the wire.
    pub fn compare_candidate(
        &self,
        state: &State,
        response: Option<&mut serde_json::Value>,
        active: Result<&[policy::FieldDecision], ()>,
    ) {
        let Some(shadow) = &state.shadow else {
            return;
        };
        let candidate = shadow.candidate.current();
        let upstream = &self.route.upstream.upstream.config;
        let ex = policy::decide::Exchange {
            dialect: upstream.dialect,
            method: &self.method,
            path: &self.route.path,
            query: self.flow.shadow_query.as_deref(),
            upstream_ungoverned: &upstream.ungoverned,
        };
        let key = self.route.pseudonym_key.as_ref();
        let c = policy::compare::compare_exchange(
            &candidate,
            &self.caller.purpose,
            &ex,
            response,
            key,
            active,
        );
        shadow.record(candidate.version(), &self.caller.purpose, &c);
    }

    /// An exchange whose body the shadow comparison does not see (streamed, CSV, tunnels).
    pub fn shadow_not_compared(&self, state: &State) {
        if let Some(shadow) = &state.shadow {
            shadow.not_compared(&self.caller.purpose);
        }
    }

    /// A refusal of the decision (query minimisation or policy), logged and turned into the
    /// response error.
    pub fn denied(&self, denial: Denial) -> ProxyError {
        match denial {
            Denial::Policy(r) => self.refused(r),
            Denial::Query(q) => {
                tracing::info!(
                    request_id = %self.request_id,
                    route = self.template(),
                    refusal = %q,
                    "query minimisation refused the request"
                );
                q.into()
            }
        }
    }

    /// A query refusal a purpose in shadow mode was spared: logged, never enforced.
    pub fn log_shadowed(&self, purpose: &Purpose, shadowed: Option<&QueryRefusal>) {
        if let Some(refusal) = shadowed {
            tracing::warn!(request_id = %self.request_id, purpose = %purpose.name, %refusal, "shadow mode: query would be refused");
        }
    }

    /// A policy refusal, logged (never with values) and turned into the response error.
    pub fn refused(&self, refusal: Refusal) -> ProxyError {
        tracing::info!(
            request_id = %self.request_id,
            route = self.template(),
            %refusal,
            "policy refused the exchange"
        );
        if matches!(
            refusal,
            Refusal::PseudonymKeyMissing | Refusal::NoInventory(_)
        ) {
            tracing::error!(request_id = %self.request_id, "policy fault");
        }
        ForPurpose(refusal, &self.caller.purpose).into()
    }

    /// One decision event per filtered body: rule ids and counts, never values.
    pub fn log_outcome(&self, direction: Direction, o: &Outcome) {
        let (app, purpose) = (&*self.caller.app, &*self.caller.purpose);
        let route = self.template();
        let direction = match direction {
            Direction::Request => "to_processor",
            Direction::Response => "from_processor",
        };
        if o.shadow {
            tracing::info!(
                request_id = %self.request_id, app, purpose, route, direction,
                records = o.records, would_change = o.changed, rules = ?o.rules, actions = ?o.actions,
                would_refuse = o.shadow_refusal.as_ref().map(std::string::ToString::to_string),
                "shadow: policy not enforced"
            );
        } else {
            tracing::info!(
                request_id = %self.request_id, app, purpose, route, direction,
                records = o.records, changed = o.changed, rules = ?o.rules, actions = ?o.actions,
                "policy applied"
            );
        }
    }
}

/// How far a request got before it was answered: what phase 9 can tell about it.
#[derive(Debug)]
pub enum Reached {
    /// Refused in phase 1.
    Arrived(Arrival),
    /// Refused in phase 2.
    Identified(Arrival, Caller),
    /// Boxed: a governed context is large (operation, budget, body reports).
    Governed(Box<Ctx<Governed>>),
    Ungoverned(Ctx<Ungoverned>),
}

/// Entry point for every request on the listener.
pub async fn handle(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let arrival = Arrival {
        request_id: state.next_request_id(),
        started: Instant::now(),
        method: req.method().clone(),
    };
    // what the client declared it sends (Content-Length; hyper refuses a body that differs)
    let bytes_in = http_body::Body::size_hint(req.body()).exact();
    let limits = IntakeLimits::from(&state.config.limits);
    let (parts, incoming) = req.into_parts();
    let body = AppBody::new(incoming, &parts.headers, limits, &arrival.request_id);
    let req = Request::from_parts(parts, body);
    let (reached, result) = pipeline(&state, &conn, arrival, req).await;
    Ok(respond::respond(
        &state,
        &conn.metrics,
        &reached,
        result,
        bytes_in,
    ))
}

/// Phases 1 and 2, then the path the route decided on.
async fn pipeline(
    state: &State,
    conn: &ConnInfo,
    arrival: Arrival,
    req: Request<AppBody>,
) -> (Reached, Result<Response<ProxyBody>, ProxyError>) {
    // the head as HTTP requires it, before anything depends on it
    if let Err(err) = wire::check(&req, state.config.limits.max_header_bytes) {
        return (Reached::Arrived(arrival), Err(err));
    }
    // one snapshot of what a reload may replace, for the whole request
    let live = state.live();
    // 1
    let caller = match identify::identify(&live, conn, req.headers()) {
        Ok(caller) => caller,
        Err(err) => {
            if let Some(app) = err.app() {
                let purpose = match &err {
                    ProxyError::PurposeNotGranted { purpose, .. } => purpose.as_str(),
                    _ => "",
                };
                // boxed like the governed phases: a refusal's log append is a large future
                Box::pin(log::early_refusal(
                    state, &live, &arrival, app, purpose, None, &req, &err,
                ))
                .await;
            }
            return (Reached::Arrived(arrival), Err(err));
        }
    };
    // 2
    let located = route::locate(&live, &req).map(|r| {
        let governance = r.governance(req.method());
        (r, governance)
    });
    // a route's refusal, a revoked app or an incident's containment (on_anomaly) stops here,
    // before anything flows, with its own transfer record
    let (route, governance) = match located {
        Ok((route, governance)) => {
            let admitted = governance.and_then(|g| match contained(state, &caller, &g) {
                Some(err) => Err(err),
                None => Ok(g),
            });
            match admitted {
                Ok(governance) => (route, governance),
                Err(err) => {
                    let (app, purpose) = (&*caller.app, &*caller.purpose);
                    Box::pin(log::early_refusal(
                        state,
                        &live,
                        &arrival,
                        app,
                        purpose,
                        Some(&route),
                        &req,
                        &err,
                    ))
                    .await;
                    return (Reached::Identified(arrival, caller), Err(err));
                }
            }
        }
        Err(err) => return (Reached::Identified(arrival, caller), Err(err)),
    };
    match governance {
        Governance::Governed(op) => {
            let mut budget = BudgetScope::of(&op, &caller, &route.policy);
            if let Some(factor) = state.incidents.as_ref().and_then(|i| i.throttle(&caller)) {
                budget = budget.map(|b| b.throttled(factor));
            }
            let flow = Governed {
                op,
                budget,
                accept_encoding: None,
                tunnel: None,
                shape: Shape::default(),
                sent: None,
                received: None,
                forwarded: false,
                refetch: None,
                allowance: None,
                shadow_query: None,
            };
            let mut ctx = Box::new(Ctx::new(arrival, caller, route, flow));
            // boxed: the governed phases' future is many KB, and inline it would be part of
            // (and copied with) every request's future, ungoverned ones too
            let result = Box::pin(governed(state, &mut ctx, req)).await;
            (Reached::Governed(ctx), result)
        }
        Governance::Ungoverned(template) => {
            let flow = Ungoverned {
                template,
                metadata: false,
            };
            let mut ctx = Ctx::new(arrival, caller, route, flow);
            let result = ungoverned(state, &mut ctx, req).await;
            (Reached::Ungoverned(ctx), result)
        }
        Governance::Metadata(template) => {
            let flow = Ungoverned {
                template,
                metadata: true,
            };
            let mut ctx = Ctx::new(arrival, caller, route, flow);
            let result = ungoverned(state, &mut ctx, req).await;
            (Reached::Ungoverned(ctx), result)
        }
    }
}

/// Phases 3 to 8 of a governed route. Every refusal gets its transfer record too.
async fn governed(
    state: &State,
    ctx: &mut Ctx<Governed>,
    req: Request<AppBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let result = governed_phases(state, ctx, req).await;
    if let Err(err) = &result {
        log::refusal(state, ctx, err).await;
    }
    result
}

async fn governed_phases(
    state: &State,
    ctx: &mut Ctx<Governed>,
    req: Request<AppBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    // In flight: the log writer may wait for this request's records to share a sync. The
    // announcement pauses while the request waits for its own record to be durable.
    let announce = || state.audit.as_ref().map(audit::AuditLog::preparing);
    let mut preparing = announce();
    let mut out = request::governed(state, ctx, req).await?; // 3
    budget::precheck(state, ctx, &mut out).await?; // 4
    log::permit_transfer(state, ctx)?; // 8: may it flow at all, and its record first
    log::append(state, ctx, audit::Direction::Request, 0, &mut preparing).await?;
    if preparing.is_none() {
        preparing = announce();
    }
    ctx.flow.forwarded = true;
    if ctx.flow.op.format() == policy::BodyFormat::Csv {
        ctx.flow.refetch = csv::Refetch::of(&out);
    }
    let resp = forward::forward(state, &ctx.route, out).await?; // 5
    ctx.upstream_status = Some(resp.status().as_u16());
    let resp = response::governed(state, ctx, resp).await?; // 6
    budget::charge(state, ctx).await?; // 7
    let status = resp.status().as_u16();
    log::append(
        state,
        ctx,
        audit::Direction::Response,
        status,
        &mut preparing,
    )
    .await?; // 8
    Ok(resp)
}

/// Phases 3, 5 and 6 of an ungoverned or metadata route: no personal data, so no budget and
/// no transfer record. Any purpose the caller was granted may read metadata (phase 1 checked
/// the grant): describing objects and fields is what an SDK does before it reads records.
async fn ungoverned(
    state: &State,
    ctx: &mut Ctx<Ungoverned>,
    req: Request<AppBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    if ctx.flow.metadata {
        state.metrics.count_metadata(
            &ctx.route.upstream.label,
            &ctx.caller.app,
            &ctx.caller.purpose,
        );
        tracing::debug!(request_id = %ctx.request_id, route = ctx.template(), "metadata passes unchanged");
    }
    // streamed: a forward that fails because the app's body failed is the app's fault
    let watch = req.body().watch();
    let out = request::ungoverned(state, ctx, req)?; // 3
    let resp = forward::forward(state, &ctx.route, out)
        .await
        .map_err(|e| watch.explain(e))?; // 5
    ctx.upstream_status = Some(resp.status().as_u16());
    response::ungoverned(state, ctx, resp).await // 6
}

/// The refusal a revocation or containment asks for: a revoked app is refused outright,
/// `block` refuses every request of the app x purpose, `throttle` its bulk exports
/// (`class: bulk_export`).
fn contained(
    state: &State,
    caller: &crate::caller::Caller,
    governance: &Governance,
) -> Option<ProxyError> {
    let incidents = state.incidents.as_ref()?;
    if incidents.revoked(&caller.app) {
        return Some(ProxyError::AppRevoked {
            app: caller.app.to_string(),
        });
    }
    let action = incidents.contained(&caller.app, &caller.purpose)?;
    let refuse = match action {
        crate::audit::OnAnomaly::Alert => false,
        crate::audit::OnAnomaly::Block => true,
        crate::audit::OnAnomaly::Throttle => matches!(
            governance,
            Governance::Governed(op) if op.class() == policy::RouteClass::BulkExport
        ),
    };
    refuse.then(|| ProxyError::PurposeContained {
        app: caller.app.to_string(),
        purpose: caller.purpose.to_string(),
        action: action.as_str(),
    })
}
