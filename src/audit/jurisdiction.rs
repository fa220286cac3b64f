//! Is a flow a transfer to a third country, and may it proceed without a mechanism?
//!
//! GDPR Chapter V applies when personal data leaves the EEA; inside it, DE -> FR is no
//! transfer. The member list and the Commission's adequacy decisions are data
//! (`jurisdictions.txt`), because they change by decision, not by release of Zweck.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::config::OnMissing;
use crate::config::{MechanismKind, TransferMechanism};

/// The shipped jurisdiction data.
const DATA: &str = include_str!("jurisdictions.txt");

/// What the data says about one jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Area {
    /// A member of the EEA.
    Eea,
    /// A third country with an adequacy decision (its reference).
    Adequacy(String),
}

fn table() -> &'static HashMap<String, Area> {
    static TABLE: OnceLock<HashMap<String, Area>> = OnceLock::new();
    TABLE.get_or_init(|| parse(DATA))
}

fn parse(text: &str) -> HashMap<String, Area> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (Some(code), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let area = match kind {
            "eea" => Area::Eea,
            "adequacy" => Area::Adequacy(parts.next().unwrap_or("").trim().to_string()),
            _ => continue,
        };
        out.insert(code.to_ascii_uppercase(), area);
    }
    out
}

/// What the data says about a jurisdiction (ISO 3166-1 alpha-2, any case); `None` for a
/// third country without an adequacy decision.
pub fn area(jurisdiction: &str) -> Option<&'static Area> {
    table().get(&jurisdiction.trim().to_ascii_uppercase())
}

/// True for an EEA member.
pub fn is_eea(jurisdiction: &str) -> bool {
    matches!(area(jurisdiction), Some(Area::Eea))
}

/// The adequacy decision covering a jurisdiction, if any.
pub fn adequacy(jurisdiction: &str) -> Option<&'static str> {
    match area(jurisdiction) {
        Some(Area::Adequacy(r)) => Some(r.as_str()),
        _ => None,
    }
}

/// True when data flowing from the controller's jurisdiction to the upstream's crosses a
/// border that matters: the EEA counts as one area; anything else is compared by code.
pub fn cross_border(controller_jurisdiction: &str, upstream_jurisdiction: &str) -> bool {
    let (c, u) = (
        controller_jurisdiction.trim().to_ascii_uppercase(),
        upstream_jurisdiction.trim().to_ascii_uppercase(),
    );
    if c == u {
        return false;
    }
    !(is_eea(&c) && is_eea(&u))
}

/// What the proxy does with a flow, given its transfer mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechanismDecision {
    /// Not a transfer, or one with a mechanism.
    Allow,
    /// A transfer without a mechanism that proceeds because `on_missing_mechanism: log`.
    LogOnly,
    /// A transfer without a mechanism that is refused (the default).
    Block,
}

/// A cross-border flow whose upstream has `transfer_mechanism: { type: none }` is missing a
/// mechanism; `on_missing` decides whether it is blocked or only logged.
pub fn decide_mechanism(
    cross_border: bool,
    mechanism: &TransferMechanism,
    on_missing: OnMissing,
) -> MechanismDecision {
    if !cross_border || mechanism.kind != MechanismKind::None {
        return MechanismDecision::Allow;
    }
    match on_missing {
        OnMissing::Block => MechanismDecision::Block,
        OnMissing::Log => MechanismDecision::LogOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mech(kind: MechanismKind) -> TransferMechanism {
        TransferMechanism {
            kind,
            reference: None,
            scc_module: None,
        }
    }

    #[test]
    fn eea_is_one_area() {
        assert!(!cross_border("DE", "FR"));
        assert!(!cross_border("de", "NO"));
        assert!(!cross_border("US", "us"));
        assert!(cross_border("DE", "US"));
        assert!(cross_border("DE", "CH"));
        assert!(cross_border("CH", "DE"));
        assert!(cross_border("CH", "GB"));
    }

    #[test]
    fn data_file_parses_completely() {
        let t = parse(DATA);
        assert_eq!(t.values().filter(|a| **a == Area::Eea).count(), 31); // 27 + EL alias + 3
        assert!(adequacy("JP").is_some_and(|r| r.contains("2019/419")));
        assert!(adequacy("US").is_some());
        assert!(adequacy("CN").is_none());
        assert!(adequacy("DE").is_none());
    }

    #[test]
    fn missing_mechanism_blocks_or_logs_only_across_borders() {
        let none = mech(MechanismKind::None);
        let scc = mech(MechanismKind::Scc);
        assert_eq!(
            decide_mechanism(false, &none, OnMissing::Block),
            MechanismDecision::Allow
        );
        assert_eq!(
            decide_mechanism(true, &scc, OnMissing::Block),
            MechanismDecision::Allow
        );
        assert_eq!(
            decide_mechanism(true, &none, OnMissing::Block),
            MechanismDecision::Block
        );
        assert_eq!(
            decide_mechanism(true, &none, OnMissing::Log),
            MechanismDecision::LogOnly
        );
    }
}
