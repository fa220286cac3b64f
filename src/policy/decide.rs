//! The decision: what a purpose may do with one exchange, in the order the proxy asks.
//!
//! The proxy's phases, `zweck policy explain` and `zweck policy test` all call these
//! functions, so what a policy author is told and what the wire does cannot drift apart
//! (`tests/explain_matches_proxy.rs` sends random requests through a real Zweck and compares).
//! The steps, each a function the proxy calls in its own phase:
//!
//! 1. [`route`] (phase 2): the upstream's own `ungoverned` list, then the inventory of its
//!    dialect; a path neither knows is refused as an unknown resource.
//! 2. [`admit`] (phase 3, before any body byte): query minimisation of the URL (which may
//!    rewrite the query: consent fields added), then writes and deletes of a `writes: deny`
//!    purpose.
//! 3. [`request_body`] (phase 3): a read's body is a query (search filters, Bulk query
//!    jobs) and is checked, and perhaps rewritten, as one; a write's body is minimised
//!    (keep, drop, block).
//! 4. [`response_body`] (phase 6): the response minimised for the purpose, with the
//!    [`Shape`] of the query Zweck forwarded (consent fields it added leave again, aggregate
//!    rows are classified by the query's columns).
//!
//! A purpose in `mode: shadow` is refused nothing by query minimisation: the refusal it
//! would have had is returned beside the verdict, for the caller to log. Decisions that a
//! later step adds (rewritten queries, counts policies) belong here, so all three callers
//! get them. [`exchange`] runs the steps in order over one request, for the tools.

use http::Method;
use serde_json::Value;

use super::engine::{apply_with, Direction, FieldDecision, Outcome, Refusal};
use super::query::{self, Carried, QueryRefusal, Reviewed, Shape};
use super::set::{Mode, OpKind, Operation, PolicySet, Purpose, RouteMatch, Writes};
use super::PseudonymKey;
use crate::dialect::Dialect;
use crate::pattern::RoutePattern;

/// Why an exchange is refused: by query minimisation or by the purpose's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error(transparent)]
    Query(#[from] QueryRefusal),
    #[error(transparent)]
    Policy(#[from] Refusal),
}

/// Phase 2's policy half: the upstream's own `ungoverned` entries first (a route an operator
/// declared free of personal data on one upstream), then the inventory of its dialect.
pub fn route<'s>(
    set: &'s PolicySet,
    upstream_ungoverned: &'s [RoutePattern],
    dialect: Dialect,
    method: &Method,
    path: &str,
) -> RouteMatch<'s> {
    if let Some(p) = upstream_ungoverned.iter().find(|p| p.matches(method, path)) {
        return RouteMatch::Ungoverned {
            template: p.template(),
        };
    }
    set.classify(dialect, method, path)
}

/// What passed [`admit`]: a query refusal that a shadow purpose is spared (to be logged),
/// the query to forward instead of the app's (None: unchanged), the shape of its answer and
/// the categories the URL sends to the processor (the proxy records them before forwarding).
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    pub shadowed: Option<QueryRefusal>,
    pub query: Option<String>,
    pub shape: Shape,
    pub carried: Carried,
}

/// Phase 3 before any body byte: query minimisation of the URL, then writes and deletes of
/// a `writes: deny` purpose (refused in shadow mode too: a shadow purpose changes no data).
/// A tunnel's own operation is a read; its write parts are refused part by part.
pub fn admit(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
) -> Result<Admitted, Denial> {
    let (reviewed, shadowed) = match query::review_url(set, purpose, op, path, query) {
        Ok(r) => (r, None),
        // shadow mode: the query goes out as the app wrote it, counted in full
        Err(refusal) => {
            let unchecked = || query::carried_by_url(set, purpose, op, path, query);
            let (carried, shadowed) = query_verdict(purpose, Err(refusal), unchecked)?;
            let reviewed = Reviewed {
                carried,
                ..Reviewed::default()
            };
            (reviewed, shadowed)
        }
    };
    let writes = matches!(op.op(), OpKind::Write | OpKind::Delete);
    if op.tunnel().is_none() && writes && purpose.writes == Writes::Deny {
        return Err(Refusal::WriteDenied.into());
    }
    Ok(Admitted {
        shadowed,
        query: reviewed.query,
        shape: reviewed.shape,
        carried: reviewed.carried,
    })
}

/// A query refusal as enforced, with the categories the query sends: a shadow purpose is
/// spared the refusal (returned beside them, to be logged) and its query goes out as the
/// app wrote it, so `unchecked` counts what that sends.
pub fn query_verdict(
    purpose: &Purpose,
    verdict: Result<Carried, QueryRefusal>,
    unchecked: impl FnOnce() -> Carried,
) -> Result<(Carried, Option<QueryRefusal>), QueryRefusal> {
    match verdict {
        Ok(carried) => Ok((carried, None)),
        Err(refusal) if purpose.mode == Mode::Shadow => Ok((unchecked(), Some(refusal))),
        Err(refusal) => Err(refusal),
    }
}

/// A governed request body, decided: the outcome (with the categories the body's query
/// sends), a query refusal a shadow purpose was spared, and the shape of the answer when the body's query was rewritten in place (plain
/// otherwise: the URL's shape stands).
#[derive(Debug, Clone, Default)]
pub struct BodyDecision {
    pub outcome: Outcome,
    pub shadowed: Option<QueryRefusal>,
    pub shape: Shape,
}

/// Phase 3's body: the query a read's body carries is checked, then the body is minimised
/// (a write's: keep, drop, block only; a read's passes, it is a query, not records).
pub fn request_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &mut Value,
    key: Option<&PseudonymKey>,
) -> Result<BodyDecision, Denial> {
    request_body_traced(set, purpose, op, path, body, key, None)
}

fn request_body_traced(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &mut Value,
    key: Option<&PseudonymKey>,
    trace: Option<&mut Vec<FieldDecision>>,
) -> Result<BodyDecision, Denial> {
    let ((shape, carried), shadowed) = match query::review_query_body(set, purpose, op, path, body)
    {
        Ok(reviewed) => (reviewed, None),
        // shadow mode: the body goes out as the app wrote it, counted in full
        Err(refusal) => {
            let unchecked = || query::carried_by_body(set, purpose, op, path, body);
            let (carried, shadowed) = query_verdict(purpose, Err(refusal), unchecked)?;
            ((Shape::default(), carried), shadowed)
        }
    };
    let mut outcome = apply_with(
        set,
        purpose,
        op,
        Direction::Request,
        body,
        key,
        trace,
        &Shape::default(),
    )?;
    outcome.add_carried(&carried);
    Ok(BodyDecision {
        outcome,
        shadowed,
        shape,
    })
}

/// Phase 6: a governed response body minimised for the purpose; `shape` is what phase 3
/// decided about the query forwarded ([`Admitted::shape`], [`BodyDecision::shape`]).
pub fn response_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    body: &mut Value,
    key: Option<&PseudonymKey>,
    shape: &Shape,
) -> Result<Outcome, Refusal> {
    apply_with(
        set,
        purpose,
        op,
        Direction::Response,
        body,
        key,
        None,
        shape,
    )
}

/// [`response_body`], listing every field decision in `trace` (for live shadow
/// comparison, which compares the active set's decisions with a candidate's).
pub fn response_body_traced(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    body: &mut Value,
    key: Option<&PseudonymKey>,
    shape: &Shape,
    trace: &mut Vec<FieldDecision>,
) -> Result<Outcome, Refusal> {
    apply_with(
        set,
        purpose,
        op,
        Direction::Response,
        body,
        key,
        Some(trace),
        shape,
    )
}

/// One request as the tools describe it.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub dialect: Dialect,
    pub method: &'a Method,
    /// The canonical path.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The upstream's own `ungoverned` entries.
    pub upstream_ungoverned: &'a [RoutePattern],
}

/// The bodies of an exchange the tools decide on: what the app sends, what the CRM answers.
#[derive(Debug, Default)]
pub struct Bodies<'b> {
    pub request: Option<&'b mut Value>,
    pub response: Option<&'b mut Value>,
}

/// What [`exchange`] decided.
#[derive(Debug)]
pub enum Verdict<'s> {
    /// Streams through untouched.
    Ungoverned { template: String },
    /// An `op: metadata` route (describe, `$metadata`, property definitions): the CRM's
    /// answer passes unchanged to any purpose, uncharged and not in the transfer log.
    Metadata { template: String },
    /// Refused as an unknown resource.
    Unknown,
    /// Boxed: an outcome is large beside the other verdicts.
    Governed(Box<Governed<'s>>),
}

/// The decision on a governed exchange.
#[derive(Debug)]
pub struct Governed<'s> {
    pub op: &'s Operation,
    /// The outcome of the last body decided (the response's when there is one), or why the
    /// exchange is refused.
    pub result: Result<Outcome, Denial>,
    /// Query refusals a shadow purpose was spared.
    pub shadowed: Vec<QueryRefusal>,
    /// The query string the proxy forwards instead of the app's, when query minimisation
    /// rewrote it (None: forwarded as sent, or refused before).
    pub forwarded_query: Option<String>,
    /// Every field decision, when tracing was asked for (request body first).
    pub trace: Vec<FieldDecision>,
}

/// The steps of the proxy over one exchange, in its order: route, admit, request body,
/// response body. `trace` lists every field decision (for `explain`).
pub fn exchange<'s>(
    set: &'s PolicySet,
    purpose: &Purpose,
    ex: &Exchange<'s>,
    bodies: Bodies<'_>,
    key: Option<&PseudonymKey>,
    trace: bool,
) -> Verdict<'s> {
    let op = match route(set, ex.upstream_ungoverned, ex.dialect, ex.method, ex.path) {
        RouteMatch::Ungoverned { template } => {
            return Verdict::Ungoverned {
                template: template.to_string(),
            }
        }
        RouteMatch::Metadata { template, .. } => {
            return Verdict::Metadata {
                template: template.to_string(),
            }
        }
        RouteMatch::Unknown => return Verdict::Unknown,
        RouteMatch::Operation(op) => op,
    };
    let mut governed = Governed {
        op,
        result: Ok(Outcome::default()),
        shadowed: Vec::new(),
        forwarded_query: None,
        trace: Vec::new(),
    };
    let result = steps(set, purpose, op, ex, bodies, key, trace, &mut governed);
    governed.result = result;
    Verdict::Governed(Box::new(governed))
}

#[allow(clippy::too_many_arguments)]
fn steps(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    ex: &Exchange<'_>,
    bodies: Bodies<'_>,
    key: Option<&PseudonymKey>,
    trace: bool,
    out: &mut Governed<'_>,
) -> Result<Outcome, Denial> {
    let admitted = admit(set, purpose, op, ex.path, ex.query)?;
    out.shadowed.extend(admitted.shadowed);
    out.forwarded_query = admitted.query;
    let mut shape = admitted.shape;
    let mut last = Outcome::default();
    if let Some(body) = bodies.request {
        let t = trace.then_some(&mut out.trace);
        let d = request_body_traced(set, purpose, op, ex.path, body, key, t)?;
        out.shadowed.extend(d.shadowed);
        if !d.shape.is_plain() {
            shape = d.shape;
        }
        last = d.outcome;
    }
    if let Some(body) = bodies.response {
        let t = trace.then_some(&mut out.trace);
        last = apply_with(set, purpose, op, Direction::Response, body, key, t, &shape)?;
    }
    Ok(last)
}

/// The name of a decision, as table tests expect it and `explain` prints it.
pub fn decision_name(result: &Result<Outcome, Denial>) -> &'static str {
    match result {
        Ok(o) if o.changed && !o.shadow => "minimised",
        Ok(_) => "allowed",
        Err(Denial::Query(QueryRefusal::NotAllowed { .. })) => "query_not_allowed",
        Err(Denial::Query(QueryRefusal::Unreadable(_))) => "query_not_checkable",
        Err(Denial::Query(QueryRefusal::AggregateNotAllowed { .. })) => "aggregate_not_allowed",
        Err(Denial::Query(QueryRefusal::ConsentFieldMissing { .. })) => "consent_field_missing",
        Err(Denial::Policy(r)) => refusal_name(r),
    }
}

/// The decision name of a policy refusal.
pub fn refusal_name(r: &Refusal) -> &'static str {
    match r {
        Refusal::Blocked { .. } => "blocked",
        Refusal::WriteDenied => "write_denied",
        Refusal::WriteActionNotAllowed { .. } => "write_action_not_allowed",
        Refusal::WriteFieldsDropped { .. } => "write_fields_dropped",
        Refusal::RecordWithheld { .. } => "withheld",
        Refusal::PseudonymKeyMissing => "pseudonym_key_missing",
        Refusal::NoInventory(_) => "no_inventory",
    }
}
