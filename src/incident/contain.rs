//! Containment without a restart: which app x purpose is throttled or blocked, after an
//! incident or by an operator's hand (`POST /containment/contain`, `zweck apps contain`),
//! until an operator clears it.
//!
//! Lives beside the live state, not in it: a reload swaps config and policies but must not
//! lift a containment, and the state file keeps it across restarts (so a restart does not
//! lift it silently either). The request path asks [`Containment::of`] once per request; with
//! nothing contained that is one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::audit::event::{Action, By};
use crate::audit::OnAnomaly;

/// One contained app x purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contained {
    pub app: String,
    pub purpose: String,
    /// `throttle` or `block`.
    pub action: OnAnomaly,
    /// The incident that led to it (`inc-<seq>`), once recorded; `None` when an operator
    /// contained it by hand.
    pub incident: Option<String>,
    /// When it took effect, RFC 3339 UTC.
    pub since: String,
    /// Who took the step in force by hand (`admin`, `cli`); absent for the detector's, so a
    /// state file without a step by hand stays readable by versions before steps by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<By>,
    /// The operator's reason of a step by hand (`None` for the detector's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an operator contains with by hand (`action=` of `POST /containment/contain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Bulk exports refused, the export budget shrunk by `incidents.throttle_factor`.
    Throttle,
    /// Every request of the app for the purpose refused.
    Block,
}

impl Measure {
    /// `throttle` or `block`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Measure> {
        match text {
            "throttle" => Some(Measure::Throttle),
            "block" => Some(Measure::Block),
            _ => None,
        }
    }

    /// The containment in force, as the detector's `on_anomaly` names it.
    pub fn on_anomaly(self) -> OnAnomaly {
        match self {
            Measure::Throttle => OnAnomaly::Throttle,
            Measure::Block => OnAnomaly::Block,
        }
    }

    /// The `action` of its `containment` entry.
    pub fn action(self) -> Action {
        match self {
            Measure::Throttle => Action::Throttle,
            Measure::Block => Action::Block,
        }
    }
}

/// What a containment by hand did, against what was in force for the app x purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing was contained: this is now.
    New(Contained),
    /// `throttle` was in force and this `block` replaced it.
    Stronger(Contained),
    /// The same action is already in force: nothing changed.
    Same(Contained),
    /// A stronger action (`block`) is in force: nothing changed (clearing is the way down).
    Weaker(Contained),
}

/// A revoked app: its API keys and certificate are refused until reinstated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    pub app: String,
    pub reason: String,
    /// When it took effect, RFC 3339 UTC.
    pub since: String,
}

/// What is contained now.
#[derive(Debug, Default)]
pub struct Containment {
    /// How many app x purpose pairs are contained and apps revoked: the request path skips
    /// the maps at 0.
    count: AtomicUsize,
    apps: DashMap<Box<str>, HashMap<Box<str>, Contained>, foldhash::fast::RandomState>,
    revoked: DashMap<Box<str>, Revoked, foldhash::fast::RandomState>,
}

impl Containment {
    /// Whether `app`'s credentials are revoked.
    pub fn is_revoked(&self, app: &str) -> bool {
        self.count.load(Ordering::Acquire) != 0 && self.revoked.contains_key(app)
    }

    /// Revokes `app`; false when it already was.
    pub fn revoke(&self, r: Revoked) -> bool {
        if self.revoked.contains_key(r.app.as_str()) {
            return false;
        }
        self.revoked.insert(r.app.as_str().into(), r);
        self.count.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Lifts a revocation; returns what was lifted.
    pub fn reinstate(&self, app: &str) -> Option<Revoked> {
        let (_, r) = self.revoked.remove(app)?;
        self.count.fetch_sub(1, Ordering::AcqRel);
        Some(r)
    }

    /// Every revoked app, sorted.
    pub fn revoked(&self) -> Vec<Revoked> {
        let mut all: Vec<Revoked> = self.revoked.iter().map(|r| r.value().clone()).collect();
        all.sort_by(|a, b| a.app.cmp(&b.app));
        all
    }

    /// What applies to `app` x `purpose` (`None` on the common path).
    pub fn of(&self, app: &str, purpose: &str) -> Option<OnAnomaly> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.apps.get(app)?.get(purpose).map(|c| c.action)
    }

    /// Contains `app` x `purpose` (`block` wins over `throttle`); returns whether it changed.
    pub fn set(&self, c: Contained) -> bool {
        let mut purposes = self.apps.entry(c.app.as_str().into()).or_default();
        match purposes.get_mut(c.purpose.as_str()) {
            Some(old) if old.action == OnAnomaly::Block || old.action == c.action => {
                if old.incident.is_none() {
                    old.incident = c.incident;
                }
                false
            }
            Some(old) => {
                *old = c;
                true
            }
            None => {
                purposes.insert(c.purpose.as_str().into(), c);
                self.count.fetch_add(1, Ordering::AcqRel);
                true
            }
        }
    }

    /// Contains `app` x `purpose` by hand: a new containment or a stronger action takes
    /// effect at once; the same or a weaker one changes nothing. A replaced `throttle` keeps
    /// its incident, so the eventual `clear` still names what started it.
    pub fn contain(&self, c: Contained) -> Step {
        let mut purposes = self.apps.entry(c.app.as_str().into()).or_default();
        match purposes.get_mut(c.purpose.as_str()) {
            Some(old) if old.action == c.action => Step::Same(old.clone()),
            Some(old) if strength(old.action) > strength(c.action) => Step::Weaker(old.clone()),
            Some(old) => {
                let incident = old.incident.take();
                *old = Contained { incident, ..c };
                Step::Stronger(old.clone())
            }
            None => {
                purposes.insert(c.purpose.as_str().into(), c.clone());
                self.count.fetch_add(1, Ordering::AcqRel);
                Step::New(c)
            }
        }
    }

    /// Records the incident id of a containment taken before its entry was durable.
    pub fn name_incident(&self, app: &str, purpose: &str, incident: &str) {
        if let Some(mut purposes) = self.apps.get_mut(app) {
            if let Some(c) = purposes.get_mut(purpose) {
                c.incident.get_or_insert_with(|| incident.to_string());
            }
        }
    }

    /// Lifts the containment of `app` x `purpose`; returns what was lifted.
    pub fn clear(&self, app: &str, purpose: &str) -> Option<Contained> {
        let mut purposes = self.apps.get_mut(app)?;
        let lifted = purposes.remove(purpose)?;
        self.count.fetch_sub(1, Ordering::AcqRel);
        Some(lifted)
    }

    /// Everything contained, sorted (`GET /containment`, the state file).
    pub fn list(&self) -> Vec<Contained> {
        let mut all: Vec<Contained> = self
            .apps
            .iter()
            .flat_map(|a| a.values().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by(|a, b| (&a.app, &a.purpose).cmp(&(&b.app, &b.purpose)));
        all
    }
}

/// How strongly an action contains: `block` over `throttle` over `alert` (which contains
/// nothing).
fn strength(action: OnAnomaly) -> u8 {
    match action {
        OnAnomaly::Alert => 0,
        OnAnomaly::Throttle => 1,
        OnAnomaly::Block => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(action: OnAnomaly) -> Contained {
        Contained {
            app: "a".into(),
            purpose: "p".into(),
            action,
            incident: None,
            since: "2026-12-07T08:00:00Z".into(),
            by: None,
            reason: None,
        }
    }

    fn by_hand(action: OnAnomaly) -> Contained {
        Contained {
            by: Some(By::Admin),
            reason: Some("investigation".into()),
            ..step(action)
        }
    }

    #[test]
    fn by_hand_new_same_stronger_and_weaker() {
        let c = Containment::default();
        assert_eq!(
            c.contain(by_hand(OnAnomaly::Throttle)),
            Step::New(by_hand(OnAnomaly::Throttle))
        );
        assert_eq!(c.of("a", "p"), Some(OnAnomaly::Throttle));
        assert!(matches!(
            c.contain(by_hand(OnAnomaly::Throttle)),
            Step::Same(_)
        ));
        assert_eq!(c.list().len(), 1);
        assert!(matches!(
            c.contain(by_hand(OnAnomaly::Block)),
            Step::Stronger(_)
        ));
        assert_eq!(c.of("a", "p"), Some(OnAnomaly::Block));
        assert!(
            matches!(c.contain(by_hand(OnAnomaly::Throttle)), Step::Weaker(old) if old.action == OnAnomaly::Block)
        );
        assert_eq!(c.of("a", "p"), Some(OnAnomaly::Block), "block stays");
        assert!(matches!(
            c.contain(by_hand(OnAnomaly::Block)),
            Step::Same(_)
        ));
        assert!(c.clear("a", "p").is_some());
        assert_eq!(c.of("a", "p"), None, "the count went back to 0");
    }

    #[test]
    fn a_stronger_step_by_hand_keeps_the_detectors_incident() {
        let c = Containment::default();
        assert!(c.set(Contained {
            incident: Some("inc-7".into()),
            ..step(OnAnomaly::Throttle)
        }));
        assert!(matches!(
            c.contain(by_hand(OnAnomaly::Block)),
            Step::Stronger(_)
        ));
        let now = &c.list()[0];
        assert_eq!(now.action, OnAnomaly::Block);
        assert_eq!(now.incident.as_deref(), Some("inc-7"));
        assert_eq!(now.by, Some(By::Admin));
        assert_eq!(now.reason.as_deref(), Some("investigation"));
    }

    #[test]
    fn the_detectors_containment_is_written_as_before_steps_by_hand() {
        let old = r#"{"app":"a","purpose":"p","action":"block","incident":null,"since":"t"}"#;
        let c: Contained = serde_json::from_str(old).expect("reads");
        assert_eq!(c.by, None);
        assert_eq!(serde_json::to_string(&c).expect("writes"), old);
        let by_hand = serde_json::to_string(&by_hand(OnAnomaly::Block)).expect("writes");
        assert!(
            by_hand.ends_with(r#","by":"admin","reason":"investigation"}"#),
            "{by_hand}"
        );
    }

    #[test]
    fn contain_escalate_name_and_clear() {
        let c = Containment::default();
        assert_eq!(c.of("a", "p"), None);
        assert!(c.set(step(OnAnomaly::Throttle)));
        assert_eq!(c.of("a", "p"), Some(OnAnomaly::Throttle));
        assert_eq!(c.of("a", "q"), None);
        assert!(c.set(step(OnAnomaly::Block)));
        assert!(!c.set(step(OnAnomaly::Throttle)), "block stays");
        c.name_incident("a", "p", "inc-7");
        assert_eq!(c.list()[0].incident.as_deref(), Some("inc-7"));
        assert_eq!(c.clear("a", "p").map(|s| s.action), Some(OnAnomaly::Block));
        assert_eq!(c.of("a", "p"), None);
        assert!(c.clear("a", "p").is_none());
        assert!(c.list().is_empty());
    }

    #[test]
    fn revoke_and_reinstate() {
        let c = Containment::default();
        let r = Revoked {
            app: "a".into(),
            reason: "key-leaked".into(),
            since: "t".into(),
        };
        assert!(!c.is_revoked("a"));
        assert!(c.revoke(r.clone()));
        assert!(!c.revoke(r.clone()));
        assert!(c.is_revoked("a") && !c.is_revoked("b"));
        assert_eq!(
            c.of("a", "p"),
            None,
            "revocation is not a purpose's containment"
        );
        assert_eq!(c.revoked(), vec![r.clone()]);
        assert_eq!(c.reinstate("a"), Some(r));
        assert!(!c.is_revoked("a"));
        assert_eq!(c.reinstate("a"), None);
    }
}
