//! Breach support (GDPR Art. 33): detect anomalous flows per app x purpose, record each
//! detection as an `incident` entry in the transfer log, count it, contain it, and keep what
//! was learned across restarts (docs/detection.md explains the method and how to tune it);
//! afterwards, `report` turns the verified transfer log into the facts of an incident and the
//! Art. 33(3) notification draft (`zweck incident open`, `list`, `close`).
//!
//! Why here and inline: Zweck is the one place that sees every flow with its app, purpose,
//! categories, processor, country and record count, and the transfer log already holds them
//! tamper-evidently. Detection reads the same counts the committed record carries, after it is
//! durable ([`crate::proxy::log`]), never a value; an incident entry joins the same chain so the
//! notification's facts and their order can be verified.
//!
//! Modules: `detect` (baseline, rules, clock; pure and O(1) per record), `config` (the
//! `incidents:` section), `contain` (which app x purpose is throttled or blocked), `alert`
//! (signed webhook alerts from bounded queues), `report` (the Art. 33 facts and draft).
//! [`Incidents`] is the running part: the detector, the metric, the transfer-log appends (off
//! the request path, on a spawned task) and the state file.

pub mod alert;
pub mod config;
pub mod contain;
pub mod detect;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::audit::event::{Action, By, ContainmentEntry, IncidentEntry, Kind};
use crate::audit::{AuditLog, Event, OnAnomaly, TransferRecord};
use crate::policy::{PolicySet, RouteClass};

pub use config::{IncidentsConfig, RawIncidents};
pub use contain::{Contained, Containment, Measure, Revoked, Step};
pub use detect::{
    Clock, Detection, Detector, Learned, ManualClock, Observation, Settings, SystemClock,
};

/// Labels of `zweck_incidents_total`: the rule and what the purpose asked for. Both are
/// closed sets (6 x 3), so the series stay bounded whatever apps and purposes exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct IncidentLabels {
    pub rule: &'static str,
    pub on_anomaly: &'static str,
}

/// Whether a containment step's entry is in the transfer log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Durable at this `seq`.
    At(u64),
    /// No transfer log is configured.
    NoLog,
    /// The append failed (the process log says why); the step is in force regardless.
    Failed,
}

/// The running detector with its outputs.
pub struct Incidents {
    /// Whether the detector runs (`incidents:` configured).
    detect: bool,
    /// `incidents.throttle_factor`.
    throttle_factor: f64,
    detector: Detector,
    containment: Containment,
    log: Option<AuditLog>,
    raised: Family<IncidentLabels, Counter>,
    alerts: Option<alert::Alerts>,
    state_file: Option<PathBuf>,
    /// One state-file write at a time (they share the temporary file).
    saving: tokio::sync::Mutex<()>,
    /// One operator step at a time, from its effect to its entry: two operators' steps on
    /// the same app x purpose (a contain and a clear) reach the log in the order they took
    /// effect.
    operator: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Incidents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incidents")
            .field("detector", &self.detector)
            .field("state_file", &self.state_file)
            .finish_non_exhaustive()
    }
}

/// The state file's path when the config names none: beside the transfer log.
pub fn default_state_file(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".incidents.json");
    PathBuf::from(name)
}

impl Incidents {
    /// A detector with what the state file holds (if it exists). A state file that does not
    /// read is kept aside (`.bad`) and learning starts afresh, with a warning: detection
    /// never stops Zweck from starting.
    pub fn new(
        config: &IncidentsConfig,
        log: Option<AuditLog>,
        log_path: Option<&Path>,
        clock: Arc<dyn Clock>,
    ) -> Incidents {
        let detector = Detector::new(config.settings.clone(), clock);
        let state_file = config
            .state_file
            .clone()
            .or_else(|| log_path.map(default_state_file));
        let containment = Containment::default();
        if let Some(path) = &state_file {
            match load(path) {
                Ok(Some(mut learned)) => {
                    for r in std::mem::take(&mut learned.revoked) {
                        tracing::warn!(app = %r.app, "app revoked before the restart stays revoked until reinstated");
                        containment.revoke(r);
                    }
                    for c in std::mem::take(&mut learned.contained) {
                        tracing::warn!(app = %c.app, purpose = %c.purpose, action = c.action.as_str(), "containment from before the restart stays in force until cleared");
                        containment.set(c);
                    }
                    detector.restore(learned);
                }
                Ok(None) => {}
                Err(why) => {
                    let mut aside = path.as_os_str().to_owned();
                    aside.push(".bad");
                    let _ = std::fs::rename(path, &aside);
                    tracing::warn!(file = %path.display(), error = %why, "incident state file unreadable: kept aside as .bad, learning starts afresh");
                }
            }
        }
        Incidents {
            detect: config.detect,
            throttle_factor: config.throttle_factor,
            detector,
            containment,
            log,
            raised: Family::default(),
            alerts: None,
            state_file,
            saving: tokio::sync::Mutex::new(()),
            operator: tokio::sync::Mutex::new(()),
        }
    }

    /// With webhook alerts (started by the caller, see [`alert::Alerts::start`]).
    pub fn with_alerts(mut self, alerts: alert::Alerts) -> Incidents {
        self.alerts = Some(alerts);
        self
    }

    /// Registers `zweck_incidents_total` (and `zweck_incident_alerts_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "incidents",
            "Incidents raised by the detector, by rule and on_anomaly",
            self.raised.clone(),
        );
        if let Some(alerts) = &self.alerts {
            alerts.register(registry);
        }
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// What applies to `app` x `purpose` now (`None` on the common path: one atomic load).
    pub fn contained(&self, app: &str, purpose: &str) -> Option<OnAnomaly> {
        self.containment.of(app, purpose)
    }

    /// Everything contained now.
    pub fn containment(&self) -> Vec<Contained> {
        self.containment.list()
    }

    /// Lifts a containment: appends its `clear` entry and persists. `None` when nothing was
    /// contained. Errors when the entry cannot be written (the containment is lifted anyway:
    /// an operator decided, and the process log says it).
    pub async fn clear(&self, app: &str, purpose: &str, by: By, reason: &str) -> Option<Contained> {
        let _in_order = self.operator.lock().await;
        let lifted = self.containment.clear(app, purpose)?;
        tracing::warn!(app, purpose, by = ?by, "containment cleared");
        self.append_containment(ContainmentEntry {
            kind: Kind::Containment,
            action: Action::Clear,
            app: app.to_string(),
            purpose: Some(purpose.to_string()),
            incident: lifted.incident.clone(),
            by,
            reason: reason.to_string(),
        })
        .await;
        self.save_now().await;
        Some(lifted)
    }

    /// Contains `app` x `purpose` by an operator's hand, with the effect the detector's
    /// containment has (the next request, also on an open connection, meets it): a new or
    /// stronger action takes effect, its `containment` entry (no incident) is appended before
    /// this returns, and the state file is written. The same or a weaker action than the one
    /// in force changes nothing and appends nothing (`None`). The caller checks that the app
    /// and purpose exist.
    pub async fn contain_by_hand(
        &self,
        app: &str,
        purpose: &str,
        measure: Measure,
        by: By,
        reason: &str,
    ) -> (Step, Option<Logged>) {
        let action = measure.on_anomaly();
        let _in_order = self.operator.lock().await;
        let step = self.containment.contain(Contained {
            app: app.to_string(),
            purpose: purpose.to_string(),
            action,
            incident: None,
            since: crate::audit::time_secs(self.detector.now_ms()),
            by: Some(by),
            reason: Some(reason.to_string()),
        });
        if !matches!(step, Step::New(_) | Step::Stronger(_)) {
            return (step, None);
        }
        tracing::warn!(app, purpose, action = action.as_str(), by = ?by, "contained by hand");
        let logged = self
            .append_containment(ContainmentEntry {
                kind: Kind::Containment,
                action: measure.action(),
                app: app.to_string(),
                purpose: Some(purpose.to_string()),
                incident: None,
                by,
                reason: reason.to_string(),
            })
            .await;
        self.save_now().await;
        (step, Some(logged))
    }

    /// The budget factor for `caller` when an incident throttled its purpose.
    pub fn throttle(&self, caller: &crate::caller::Caller) -> Option<f64> {
        (self.containment.of(&caller.app, &caller.purpose)? == OnAnomaly::Throttle)
            .then_some(self.throttle_factor)
    }

    /// Whether `app`'s credentials are revoked (one atomic load when nothing is).
    pub fn revoked(&self, app: &str) -> bool {
        self.containment.is_revoked(app)
    }

    /// Every revoked app.
    pub fn revocations(&self) -> Vec<Revoked> {
        self.containment.revoked()
    }

    /// Revokes every credential of `app` at once (the next request, also on an open
    /// connection, is refused), appends the `revoke` entry and persists. False when the app
    /// already was revoked.
    pub async fn revoke(&self, app: &str, by: By, reason: &str) -> bool {
        let _in_order = self.operator.lock().await;
        let fresh = self.containment.revoke(Revoked {
            app: app.to_string(),
            reason: reason.to_string(),
            since: crate::audit::time_secs(self.detector.now_ms()),
        });
        if !fresh {
            return false;
        }
        tracing::warn!(app, by = ?by, "app revoked: its API keys and certificate are refused");
        self.append_app_step(Action::Revoke, app, by, reason).await;
        self.save_now().await;
        true
    }

    /// Lifts a revocation, appends the `reinstate` entry and persists.
    pub async fn reinstate(&self, app: &str, by: By, reason: &str) -> Option<Revoked> {
        let _in_order = self.operator.lock().await;
        let lifted = self.containment.reinstate(app)?;
        tracing::warn!(app, by = ?by, "app reinstated");
        self.append_app_step(Action::Reinstate, app, by, reason)
            .await;
        self.save_now().await;
        Some(lifted)
    }

    async fn append_app_step(&self, action: Action, app: &str, by: By, reason: &str) {
        self.append_containment(ContainmentEntry {
            kind: Kind::Containment,
            action,
            app: app.to_string(),
            purpose: None,
            incident: None,
            by,
            reason: reason.to_string(),
        })
        .await;
    }

    async fn append_containment(&self, entry: ContainmentEntry) -> Logged {
        let Some(log) = self.log.as_ref() else {
            return Logged::NoLog;
        };
        match log.append_event(Event::Containment(entry)).await {
            Ok(seq) => Logged::At(seq),
            Err(e) => {
                tracing::error!(error = %e, "transfer log append failed for a containment step");
                Logged::Failed
            }
        }
    }

    /// Takes the containment a purpose's `on_anomaly` asks for at once (the next request
    /// already meets it), then records incident and step in the log and persists.
    fn contain(self: &Arc<Self>, d: &Detection, on_anomaly: OnAnomaly, entry: IncidentEntry) {
        let action = match on_anomaly {
            OnAnomaly::Alert => None,
            OnAnomaly::Throttle => Some(Action::Throttle),
            OnAnomaly::Block => Some(Action::Block),
        };
        let changed = action.is_some()
            && self.containment.set(Contained {
                app: d.app.clone(),
                purpose: d.purpose.clone(),
                action: on_anomaly,
                incident: None,
                since: crate::audit::time_secs(self.detector.now_ms()),
                // absent for the detector: its state files stay readable by older versions
                by: None,
                reason: None,
            });
        let this = self.clone();
        tokio::spawn(async move {
            let (app, purpose) = (entry.app.clone(), entry.purpose.clone());
            let alert = this.alerts.is_some().then(|| entry.clone());
            let seq = this.record(entry).await;
            let incident = seq.map(crate::audit::event::incident_id);
            if let (Some(alerts), Some(mut entry)) = (&this.alerts, alert) {
                entry.incident = incident.clone().unwrap_or_default();
                let origin = this.log.as_ref().map(AuditLog::origin);
                alerts.send(&alert::alert_body(&entry, seq, origin));
            }
            let (Some(action), true) = (action, changed) else {
                return;
            };
            if let Some(id) = &incident {
                this.containment.name_incident(&app, &purpose, id);
            }
            this.append_containment(ContainmentEntry {
                kind: Kind::Containment,
                action,
                app,
                purpose: Some(purpose),
                incident,
                by: By::Detector,
                reason: "on-anomaly".into(),
            })
            .await;
            this.save_now().await;
        });
    }

    /// Feeds one committed transfer record. On the common path nothing fires and nothing is
    /// allocated; a detection is recorded on a spawned task, so the request that caused it is
    /// not delayed by the extra append.
    pub fn observe(
        self: &Arc<Self>,
        record: &TransferRecord,
        class: Option<RouteClass>,
        policy: &PolicySet,
    ) {
        if !self.detect {
            return;
        }
        let fired = self.detector.observe(&Observation::of(record, class));
        if fired.is_empty() {
            return;
        }
        for d in fired {
            let on_anomaly = on_anomaly_of(policy, &d.purpose);
            self.raised
                .get_or_create(&IncidentLabels {
                    rule: d.rule.as_str(),
                    on_anomaly: on_anomaly.as_str(),
                })
                .inc();
            tracing::warn!(
                rule = d.rule.as_str(),
                app = %d.app,
                purpose = %d.purpose,
                observed = d.observed,
                "incident detected"
            );
            let entry = entry_of(&d, on_anomaly);
            self.contain(&d, on_anomaly, entry);
        }
    }

    /// Appends the incident entry; returns its seq.
    async fn record(&self, entry: IncidentEntry) -> Option<u64> {
        let log = self.log.as_ref()?;
        match log.append_event(Event::Incident(entry)).await {
            Ok(seq) => Some(seq),
            Err(e) => {
                tracing::error!(error = %e, "transfer log append failed for an incident");
                None
            }
        }
    }

    /// Writes what was learned, if anything changed since the last time.
    pub async fn persist(&self) {
        if self.detector.take_dirty() {
            self.save_now().await;
        }
    }

    /// Writes the state file now (learned state and containment).
    async fn save_now(&self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let _one_at_a_time = self.saving.lock().await;
        let mut learned = self.detector.snapshot();
        learned.contained = self.containment.list();
        learned.revoked = self.containment.revoked();
        let result = tokio::task::spawn_blocking(move || save(&path, &learned)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // try again next time
                self.detector.mark_dirty();
                tracing::error!(error = %e, "incident state file not written");
            }
            Err(e) => tracing::error!(error = %e, "incident state task"),
        }
    }

    /// Persists every `every` until `stop` resolves, then once more.
    pub async fn run_persistence(
        self: Arc<Self>,
        every: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => self.persist().await,
            }
        }
        self.persist().await;
    }
}

/// The purpose's `on_anomaly` (alert when the purpose is unknown).
pub fn on_anomaly_of(policy: &PolicySet, purpose: &str) -> OnAnomaly {
    policy
        .purpose(purpose)
        .map_or(OnAnomaly::Alert, |p| p.on_anomaly)
}

/// The incident entry of a detection (its id is filled in by the writer).
pub fn entry_of(d: &Detection, on_anomaly: OnAnomaly) -> IncidentEntry {
    IncidentEntry {
        kind: Kind::Incident,
        incident: String::new(),
        rule: d.rule,
        app: d.app.clone(),
        purpose: d.purpose.clone(),
        upstream: d.upstream.clone(),
        processor: d.processor.clone(),
        jurisdiction: d.jurisdiction.clone(),
        categories: d.categories.clone(),
        window_start: crate::audit::time_secs(d.window_start_ms),
        window_end: crate::audit::time_secs(d.window_end_ms),
        observed: d.observed,
        baseline: d.baseline.map(|b| b.round() as u64),
        threshold: d.threshold.map(|t| t.round() as u64),
        on_anomaly,
    }
}

/// The state file's errors.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not an incident state file: {source}")]
    Format {
        path: String,
        source: serde_json::Error,
    },
}

fn load(path: &Path) -> Result<Option<Learned>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateFileError::Format {
            path: path.display().to_string(),
            source,
        })
}

/// Writes atomically: a temporary file beside it, synced, then renamed over it.
fn save(path: &Path, learned: &Learned) -> Result<(), StateFileError> {
    let io = |source| StateFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = serde_json::to_vec(learned).map_err(|source| StateFileError::Format {
        path: path.display().to_string(),
        source,
    })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_data().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_round_trips_and_a_bad_one_is_kept_aside() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.jsonl.incidents.json");
        let clock = ManualClock::at(1_796_601_600_000);
        let config = IncidentsConfig {
            detect: true,
            throttle_factor: 0.1,
            settings: Settings::default(),
            state_file: Some(path.clone()),
            webhooks: Vec::new(),
            alerts: alert::AlertSettings::default(),
        };
        let first = Incidents::new(&config, None, None, clock.clone());
        let cats = vec!["user.contact.email".to_string()];
        let mut r = crate::audit::record::tests::sample();
        r.categories_delivered = cats;
        first.detector.observe(&Observation::of(&r, None));
        save(&path, &first.detector.snapshot()).expect("save");
        let second = Incidents::new(&config, None, None, clock.clone());
        assert_eq!(second.detector.snapshot(), first.detector.snapshot());

        std::fs::write(&path, b"{not json").expect("write");
        let third = Incidents::new(&config, None, None, clock);
        assert!(third.detector.snapshot().apps.is_empty());
        assert!(dir.path().join("t.jsonl.incidents.json.bad").exists());
        assert_eq!(
            default_state_file(Path::new("/var/lib/zweck/transfers.jsonl")),
            PathBuf::from("/var/lib/zweck/transfers.jsonl.incidents.json")
        );
    }
}
