//! What one log line says. The proxy fills a [`TransferRecord`]; the writer prefixes `seq`,
//! `ts` and `prev`. Field order is the declaration order below and is part of the format
//! (docs/transfer-log.md): serde_json writes struct fields in order, compactly, and every
//! number is an unsigned integer, so one record has exactly one encoding.
//!
//! Nothing here may hold a personal value, a credential, a raw path or a query string: the
//! route is the inventory template, categories are taxonomy names, counts are counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::TransferMechanism;

/// Whether a line covers a whole exchange or one end of a streamed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The body was inspected whole; this line is the only one for this direction.
    Complete,
    /// A streamed body is about to flow (appended before its first byte).
    Intent,
    /// A streamed body has ended (appended after its last byte) with final counts.
    Close,
}

/// Which way the data went: the policy's own `Direction` (`to_processor` for the request,
/// `from_processor` for the response).
pub use crate::policy::Direction;

/// What Zweck did with the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    Minimised,
    Blocked,
    RateLimited,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Minimised => "minimised",
            Decision::Blocked => "blocked",
            Decision::RateLimited => "rate_limited",
        }
    }
}

/// One exchange in one direction, as the proxy reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferRecord {
    pub stage: Stage,
    /// Zweck's request id (the same as in tracing events).
    pub request_id: String,
    pub app: String,
    pub purpose: String,
    /// fideslang data use of the purpose.
    pub data_use: String,
    /// Art. 6(1) basis by name (`consent`, `contract`, ...).
    pub legal_basis: String,
    pub direction: Direction,
    /// The upstream's name in zweck.yaml.
    pub upstream: String,
    pub processor: String,
    /// The upstream's host (authority of its base URL), never the caller's.
    pub host: String,
    /// The upstream's jurisdiction (ISO 3166-1 alpha-2).
    pub jurisdiction: String,
    /// From [`super::cross_border`] (controller vs upstream jurisdiction).
    pub cross_border: bool,
    pub transfer_mechanism: TransferMechanism,
    pub method: String,
    /// The inventory route template (never the raw path or query).
    pub route: String,
    /// Categories present in the body Zweck received.
    pub categories_received: Vec<String>,
    /// Categories present in the body Zweck passed on.
    pub categories_delivered: Vec<String>,
    /// Records delivered (after consent filtering).
    pub records: u64,
    /// Records per part of a `$batch` or composite request; empty otherwise.
    pub parts: Vec<u64>,
    /// Body bytes passed on.
    pub bytes: u64,
    /// Fields per action name (`keep`, `drop`, `mask`, ...).
    pub actions: BTreeMap<String, u64>,
    pub decision: Decision,
    /// HTTP status released to the caller (for `intent`: the upstream's status so far).
    pub status: u16,
    pub policy_version: String,
    /// Problem type of a refusal (`purpose-not-granted`, ...); `null` otherwise.
    pub reason: Option<String>,
    /// When the policies came from a signed bundle: its label and signer's key id (absent
    /// for a policy directory, so such lines are unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_bundle: Option<crate::policy::bundle::Provenance>,
}

/// The transfer mechanism as read back from a line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
pub struct LoggedMechanism {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub scc_module: Option<String>,
}

/// A log line as read back by the auditor tools.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub ts: String,
    pub prev: String,
    pub stage: Stage,
    pub request_id: String,
    pub app: String,
    pub purpose: String,
    pub data_use: String,
    pub legal_basis: String,
    pub direction: Direction,
    pub upstream: String,
    pub processor: String,
    pub host: String,
    pub jurisdiction: String,
    pub cross_border: bool,
    pub transfer_mechanism: LoggedMechanism,
    pub method: String,
    pub route: String,
    pub categories_received: Vec<String>,
    pub categories_delivered: Vec<String>,
    pub records: u64,
    pub parts: Vec<u64>,
    pub bytes: u64,
    pub actions: BTreeMap<String, u64>,
    pub decision: Decision,
    pub status: u16,
    pub policy_version: String,
    pub reason: Option<String>,
    #[serde(default)]
    pub policy_bundle: Option<crate::policy::bundle::Provenance>,
}

/// The chain fields only: what recovery and `verify` need from a line.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Head {
    pub seq: u64,
    pub ts: String,
    pub prev: String,
}

/// The `prev` of the first line ever: 64 zeros.
pub const GENESIS_PREV: [u8; 32] = [0u8; 32];

/// Builds a line (without `\n`) from the writer's fields and the record's encoding.
/// `body` is `serde_json::to_vec(&record)`: an object, so it starts with `{`.
pub(crate) fn line(seq: u64, ts: &str, prev: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let head = format!(
        "{{\"seq\":{seq},\"ts\":\"{ts}\",\"prev\":\"{}\",",
        hex::encode(prev)
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.get(1..).unwrap_or_default());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::MechanismKind;

    pub(crate) fn sample() -> TransferRecord {
        TransferRecord {
            stage: Stage::Complete,
            request_id: "r-1".into(),
            app: "newsletter-tool".into(),
            purpose: "newsletter".into(),
            data_use: "marketing.communications.email".into(),
            legal_basis: "consent".into(),
            direction: Direction::Response,
            upstream: "salesforce".into(),
            processor: "Salesforce, Inc.".into(),
            host: "example.my.salesforce.com".into(),
            jurisdiction: "US".into(),
            cross_border: true,
            transfer_mechanism: TransferMechanism {
                kind: MechanismKind::Dpf,
                reference: Some("2023/1795".into()),
                scc_module: None,
            },
            method: "GET".into(),
            route: "/services/data/*/query".into(),
            categories_received: vec!["user.contact.email".into()],
            categories_delivered: vec!["user.contact.email".into()],
            records: 2,
            parts: vec![],
            bytes: 120,
            actions: BTreeMap::from([("keep".to_string(), 2)]),
            decision: Decision::Allowed,
            status: 200,
            policy_version: "abc".into(),
            reason: None,
            policy_bundle: None,
        }
    }

    #[test]
    fn line_is_canonical_and_reads_back() {
        let body = serde_json::to_vec(&sample()).expect("encode");
        let l = line(7, "2025-01-01T00:00:00.000Z", &GENESIS_PREV, &body);
        let text = String::from_utf8(l).expect("utf8");
        assert!(text.starts_with(&format!(
            "{{\"seq\":7,\"ts\":\"2025-01-01T00:00:00.000Z\",\"prev\":\"{}\",\"stage\":\"complete\",\"request_id\":\"r-1\",",
            "0".repeat(64)
        )));
        assert!(text.contains(r#""transfer_mechanism":{"type":"dpf","ref":"2023/1795"},"#));
        assert!(text.ends_with(r#""status":200,"policy_version":"abc","reason":null}"#));
        let e: Entry = serde_json::from_str(&text).expect("reads back");
        assert_eq!(e.seq, 7);
        assert_eq!(e.transfer_mechanism.kind, "dpf");
        assert_eq!(e.decision, Decision::Allowed);
        assert_eq!(e.policy_bundle, None);
    }

    #[test]
    fn a_bundle_s_label_and_signer_follow_the_reason() {
        let mut r = sample();
        r.policy_bundle = Some(crate::policy::bundle::Provenance {
            label: "release-7".into(),
            signer: "0123456789abcdef".into(),
        });
        let body = serde_json::to_vec(&r).expect("encode");
        let text = String::from_utf8(line(0, "t", &GENESIS_PREV, &body)).expect("utf8");
        assert!(
            text.ends_with(r#""reason":null,"policy_bundle":{"label":"release-7","signer":"0123456789abcdef"}}"#),
            "{text}"
        );
        let e: Entry = serde_json::from_str(&text).expect("reads back");
        assert_eq!(
            e.policy_bundle.map(|b| b.signer).as_deref(),
            Some("0123456789abcdef")
        );
    }
}
