//! Phase 8, log: the transfer records of a governed exchange, and the Art. 44-49 gate.
//!
//! Runs on governed routes only (ungoverned ones carry no personal data), before each
//! direction flows: data to the processor is logged before it is forwarded, data from the
//! processor before the response is released, and every refusal gets its record too. It
//! changes nothing in the exchange. Its errors: `transfer-not-permitted` (403: a flow to a
//! third country whose upstream has no transfer mechanism, unless the config says
//! `on_missing_mechanism: log`) and `audit-unavailable` (503: a log that cannot be written
//! stops the flow).
//!
//! The proxy knows, per governed exchange, who asked, for which purpose, which processor in
//! which country received or sent what categories and how many records. This module turns
//! that context into `audit::TransferRecord`s: route templates instead of paths, category
//! names and counts instead of values.
//!
//! Refusals before a governed context exists are recorded too when the caller's credential
//! named an app (`purpose-missing`, `purpose-not-granted`) or the path reached a CRM upstream
//! that no inventory classifies (`unknown-resource`): an attempt at personal data the policy
//! stopped is what an auditor asks about. A refusal on an ungoverned route, or of an unknown
//! caller, names no personal data and no app and is not recorded.

use super::route::{Governance, Route};
use super::{Arrival, Ctx, Governed};
use crate::audit::{
    self, Decision, Direction, MechanismDecision, OnMissing, Stage, TransferRecord,
};
use crate::error::ProxyError;
use crate::policy::{Outcome, PolicySet, RouteClass};
use crate::state::{State, UpstreamEntry};

/// What one filtered body carried.
#[derive(Debug, Clone)]
pub struct BodyReport {
    pub outcome: Outcome,
    /// Bytes passed on after filtering.
    pub bytes: u64,
    /// Records per part of a batch tunnel, in body order (the record's `parts`); empty
    /// otherwise.
    pub parts: Vec<u64>,
}

/// Everything about an exchange a transfer record needs.
pub struct Exchange<'a> {
    pub request_id: &'a str,
    pub app: &'a str,
    pub purpose: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub policy: &'a PolicySet,
    pub upstream: &'a UpstreamEntry,
}

/// Whether the upstream's jurisdiction is outside the controller's area (EU/EEA is one).
pub fn is_cross_border(policy: &PolicySet, upstream: &UpstreamEntry) -> bool {
    audit::cross_border(
        &policy.controller().jurisdiction,
        &upstream.upstream.config.jurisdiction,
    )
}

/// The Art. 44-49 gate: may personal data flow to this upstream at all?
pub fn mechanism_decision(
    state: &State,
    policy: &PolicySet,
    upstream: &UpstreamEntry,
) -> MechanismDecision {
    let on_missing = state
        .audit
        .as_ref()
        .map_or(OnMissing::Block, audit::AuditLog::on_missing_mechanism);
    audit::decide_mechanism(
        is_cross_border(policy, upstream),
        &upstream.upstream.config.transfer_mechanism,
        on_missing,
    )
}

/// The record of one direction of an exchange. `body` is what the policy saw and passed on
/// (None for a refusal before any body was read).
pub fn record(
    x: &Exchange<'_>,
    direction: Direction,
    body: Option<&BodyReport>,
    decision: Decision,
    status: u16,
    reason: Option<&str>,
) -> TransferRecord {
    let purpose = x.policy.purpose(x.purpose);
    let cfg = &x.upstream.upstream.config;
    let (received, delivered, records, actions, bytes) = match body {
        Some(b) => (
            b.outcome.received_names(),
            b.outcome.delivered_names(),
            b.outcome.records,
            b.outcome.action_counts(),
            b.bytes,
        ),
        None => (Vec::new(), Vec::new(), 0, Default::default(), 0),
    };
    TransferRecord {
        stage: Stage::Complete,
        request_id: x.request_id.to_string(),
        app: x.app.to_string(),
        purpose: x.purpose.to_string(),
        data_use: purpose.map(|p| p.data_use.clone()).unwrap_or_default(),
        legal_basis: purpose
            .map(|p| p.legal_basis.as_str().to_string())
            .unwrap_or_default(),
        direction,
        upstream: cfg.name.clone(),
        processor: cfg.processor.clone(),
        host: cfg
            .url
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default(),
        jurisdiction: cfg.jurisdiction.clone(),
        cross_border: is_cross_border(x.policy, x.upstream),
        transfer_mechanism: cfg.transfer_mechanism.clone(),
        method: x.method.to_string(),
        route: x.route.to_string(),
        categories_received: received,
        categories_delivered: delivered,
        records,
        parts: Vec::new(),
        bytes,
        actions,
        decision,
        status,
        policy_version: x.policy.version().to_string(),
        reason: reason.map(str::to_string),
        policy_bundle: x.policy.bundle().cloned(),
    }
}

/// allowed or minimised, from what the policy did.
pub fn decision_of(body: &BodyReport) -> Decision {
    if body.outcome.changed && !body.outcome.shadow {
        Decision::Minimised
    } else {
        Decision::Allowed
    }
}

impl Ctx<Governed> {
    /// The exchange as the transfer log sees it.
    pub fn exchange(&self) -> Exchange<'_> {
        Exchange {
            request_id: &self.request_id,
            app: &self.caller.app,
            purpose: &self.caller.purpose,
            method: self.method.as_str(),
            route: self.flow.op.template(),
            policy: &self.route.policy,
            upstream: &self.route.upstream,
        }
    }
}

/// The Art. 44-49 gate, before anything is forwarded: a cross-border flow to an upstream
/// without a transfer mechanism is refused (`on_missing_mechanism: block`, the default) or
/// only logged (`log`).
pub fn permit_transfer(state: &State, ctx: &Ctx<Governed>) -> Result<(), ProxyError> {
    let upstream = &ctx.route.upstream;
    match mechanism_decision(state, &ctx.route.policy, upstream) {
        MechanismDecision::Allow => Ok(()),
        MechanismDecision::LogOnly => {
            tracing::warn!(request_id = %ctx.request_id, upstream = upstream.upstream.name(), "cross-border transfer without a transfer mechanism (on_missing_mechanism: log)");
            Ok(())
        }
        MechanismDecision::Block => Err(ProxyError::TransferNotPermitted {
            upstream: upstream.upstream.name().to_string(),
            jurisdiction: upstream.upstream.config.jurisdiction.clone(),
        }),
    }
}

/// Phase 8. Appends the transfer record of one direction and waits for it to be durable.
/// A direction without a body is not logged. `preparing` is the exchange's announcement to
/// the log writer ([`audit::AuditLog::preparing`]): taken (ended) when a record is sent, left
/// as it is when there is none (a read's request), so the writer is not woken for nothing.
pub async fn append(
    state: &State,
    ctx: &Ctx<Governed>,
    direction: Direction,
    status: u16,
    preparing: &mut Option<audit::Preparing>,
) -> Result<(), ProxyError> {
    let Some(log) = &state.audit else {
        return Ok(());
    };
    let Some(body) = body_of(ctx, direction) else {
        // Nothing to record yet, but a failed log could not record the answer either: stop
        // before anything reaches the processor.
        if direction == Direction::Request && log.has_failed() {
            return Err(ProxyError::AuditUnavailable);
        }
        return Ok(());
    };
    let mut record = record(
        &ctx.exchange(),
        direction,
        Some(body),
        decision_of(body),
        status,
        None,
    );
    record.parts = body.parts.clone();
    match log.append_prepared(&record, preparing.take()).await {
        Ok(_) => {
            detect(state, &record, Some(ctx.flow.op.class()), &ctx.route.policy);
            Ok(())
        }
        Err(e) => {
            tracing::error!(request_id = %ctx.request_id, error = %e, "transfer log append failed: the flow stops");
            Err(ProxyError::AuditUnavailable)
        }
    }
}

/// The record of a refused governed exchange (best effort: the refusal stands whether or
/// not the log can take it). A refusal after forwarding is the answer's.
pub async fn refusal(state: &State, ctx: &Ctx<Governed>, err: &ProxyError) {
    let Some(log) = &state.audit else {
        return;
    };
    if matches!(err, ProxyError::AuditUnavailable) {
        return;
    }
    let direction = if ctx.flow.forwarded {
        Direction::Response
    } else {
        Direction::Request
    };
    let decision = if matches!(err, ProxyError::BudgetExhausted { .. }) {
        Decision::RateLimited
    } else {
        Decision::Blocked
    };
    let record = record(
        &ctx.exchange(),
        direction,
        body_of(ctx, direction),
        decision,
        err.status().as_u16(),
        Some(err.slug()),
    );
    match log.append_record(&record).await {
        Ok(_) => detect(state, &record, Some(ctx.flow.op.class()), &ctx.route.policy),
        Err(e) => {
            tracing::error!(request_id = %ctx.request_id, error = %e, "transfer log append failed for a refusal");
        }
    }
}

/// The record of a refusal in phase 1 or 2 (best effort, like [`refusal`]): `app` is what the
/// credential named, `purpose` what was asked for (empty when nothing was). `route` is
/// located again (in the request's `live` snapshot) for the record only when phase 1
/// refused, so the answer does not change.
#[allow(clippy::too_many_arguments)]
pub async fn early_refusal<B>(
    state: &State,
    live: &crate::state::Live,
    arrival: &Arrival,
    app: &str,
    purpose: &str,
    located: Option<&Route>,
    req: &http::Request<B>,
    err: &ProxyError,
) {
    let Some(log) = &state.audit else {
        return;
    };
    let relocated;
    let route = match located {
        Some(route) => route,
        None => match super::route::locate(live, req) {
            Ok(route) => {
                relocated = route;
                &relocated
            }
            Err(_) => return, // no upstream: nothing could have reached a processor
        },
    };
    let (template, class) = match route.governance(&arrival.method) {
        Ok(Governance::Governed(op)) => (op.template().to_string(), Some(op.class())),
        // no personal data on these routes: nothing for the transfer log
        Ok(Governance::Ungoverned(_) | Governance::Metadata(_)) => return,
        Err(_) => (UNCLASSIFIED_ROUTE.to_string(), None),
    };
    let x = Exchange {
        request_id: &arrival.request_id,
        app,
        purpose,
        method: arrival.method.as_str(),
        route: &template,
        policy: &route.policy,
        upstream: &route.upstream,
    };
    let record = record(
        &x,
        Direction::Request,
        None,
        Decision::Blocked,
        err.status().as_u16(),
        Some(err.slug()),
    );
    match log.append_record(&record).await {
        Ok(_) => detect(state, &record, class, &route.policy),
        Err(e) => {
            tracing::error!(request_id = %arrival.request_id, error = %e, "transfer log append failed for a refusal");
        }
    }
}

/// Feeds a committed record to the incident detector, when one runs (`incidents:`): after
/// the record is durable, from the counts it carries.
fn detect(state: &State, record: &TransferRecord, class: Option<RouteClass>, policy: &PolicySet) {
    if let Some(incidents) = &state.incidents {
        incidents.observe(record, class, policy);
    }
}

/// What a streamed export needs to feed the detector from its own task: the close record is
/// committed after the request's phases have returned.
pub struct Feed {
    incidents: std::sync::Arc<crate::incident::Incidents>,
    policy: std::sync::Arc<PolicySet>,
    class: RouteClass,
}

impl Feed {
    /// The detector's feed for a governed exchange, when one runs.
    pub fn of(state: &State, ctx: &Ctx<Governed>) -> Option<Feed> {
        state.incidents.as_ref().map(|incidents| Feed {
            incidents: incidents.clone(),
            policy: ctx.route.policy.clone(),
            class: ctx.flow.op.class(),
        })
    }

    /// Feeds a committed record.
    pub fn observe(&self, record: &TransferRecord) {
        self.incidents
            .observe(record, Some(self.class), &self.policy);
    }
}

/// The `route` of a record whose path matched no inventory operation (`unknown-resource`).
pub const UNCLASSIFIED_ROUTE: &str = "-";

/// The filtered body of one direction, if there was one.
fn body_of(ctx: &Ctx<Governed>, direction: Direction) -> Option<&BodyReport> {
    match direction {
        Direction::Request => ctx.flow.sent.as_ref(),
        Direction::Response => ctx.flow.received.as_ref(),
    }
}
