//! From one exchange to its transfer records (phase 8), and the Art. 44-49 gate.
//!
//! The proxy knows, per governed exchange, who asked, for which purpose, which processor in
//! which country received or sent what categories and how many records. This module turns
//! that context into `audit::TransferRecord`s: route templates instead of paths, category
//! names and counts instead of values. It also decides, before anything is forwarded, whether
//! a cross-border flow may happen at all: a flow to a third country whose upstream has no
//! transfer mechanism is refused unless the config says `on_missing_mechanism: log`.

use crate::audit::{
    self, Decision, Direction, MechanismDecision, OnMissing, Stage, TransferRecord,
};
use crate::policy::{Outcome, PolicySet};
use crate::state::{State, UpstreamEntry};

/// What one filtered body carried.
#[derive(Debug, Clone)]
pub struct BodyReport {
    pub outcome: Outcome,
    /// Bytes passed on after filtering.
    pub bytes: u64,
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
        .map(audit::AuditLog::on_missing_mechanism)
        .unwrap_or(OnMissing::Block);
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
