//! Reloading: the config, apps and API keys, upstream credentials, TLS certificate and client
//! CA, pseudonym key and policies, replaced live as one.
//!
//! [`everything`] (SIGHUP, `zweck reload`) reads `zweck.yaml` again and runs the checks
//! `serve` runs before it listens ([`crate::preflight::prepare`]) on it; only a state that
//! passes all of them is swapped in, in one step ([`State::swap`]): each request and each new
//! TLS handshake takes one snapshot and keeps it, so in-flight requests and open connections
//! finish on the old state while new ones get the new certificate, client CA, keys and
//! policies. [`policies`] (a change under `policies/`) compiles the policy directory and
//! swaps only the set, after the same cross-checks against the config: a set that drops a
//! purpose the config grants is refused exactly as at start. A broken change keeps the last
//! good state in force and says why, every diagnostic at its file:line:column.
//!
//! What a running process cannot change without a restart (the addresses it listens on, the
//! transfer log, the budget store, resource limits, log format, dev mode, where policies
//! live) is compared with the running config; a reload that changes any of it is refused
//! with the keys named, rather than applied in part. File events are debounced, so an
//! editor's write-rename-chmod dance causes one reload, not three.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::config::{Config, ConfigError};
use crate::diagnostic::Diagnostic;
use crate::policy::PolicySet;
use crate::preflight::{self, Mode};
use crate::state::{Live, State};

/// Why a reload was refused; the last good state stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("{}: these keys changed and need a restart, nothing was reloaded: {}", .file.display(), .keys.join(", "))]
    NeedsRestart {
        file: std::path::PathBuf,
        keys: Vec<&'static str>,
    },
    #[error("development files: {0}")]
    Dev(#[from] crate::dev::DevError),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{d}");
    }
    out
}

/// What a successful reload swapped in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The policy version now in force.
    pub policy: String,
    pub previous_policy: String,
    pub apps: usize,
    pub upstreams: usize,
    pub took: Duration,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "reloaded: policy {} (was {}), {} apps, {} upstreams, in {} ms",
            self.policy,
            self.previous_policy,
            self.apps,
            self.upstreams,
            self.took.as_millis()
        )
    }
}

/// Reloads everything from the config file the process started with.
pub fn everything(state: &State) -> Result<Reloaded, ReloadError> {
    let started = Instant::now();
    let _one_at_a_time = state
        .reloading
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let result = (|| {
        let config = Config::load(&state.config.path)?;
        let keys = restart_only_changes(&state.config, &config);
        if !keys.is_empty() {
            return Err(ReloadError::NeedsRestart {
                file: config.path.clone(),
                keys,
            });
        }
        if config.dev {
            crate::dev::prepare(&config)?;
        }
        let prepared = preflight::prepare(config, Mode::Serve, &state.metrics.pools)
            .map_err(ReloadError::Invalid)?;
        for w in &prepared.warnings {
            tracing::warn!(diagnostic = %w, "policy warning");
        }
        // Serve mode builds every part or fails; an empty list is never swapped in.
        prepared
            .live
            .ok_or_else(|| ReloadError::Invalid(Vec::new()))
    })();
    finish(state, result, started, "configuration")
}

/// Recompiles the policy directory and swaps in the set, keeping the rest.
pub fn policies(state: &State) -> Result<Reloaded, ReloadError> {
    let started = Instant::now();
    let _one_at_a_time = state
        .reloading
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let live = state.live();
    let result = match PolicySet::load(&live.config.policies) {
        Ok((set, warnings)) => {
            for w in &warnings {
                tracing::warn!(diagnostic = %w, "policy warning");
            }
            let problems = preflight::cross_check(&live.config, &set, live.pseudonym_key.is_some());
            if problems.is_empty() {
                Ok(Live {
                    policy: Arc::new(set),
                    ..(*live).clone()
                })
            } else {
                Err(ReloadError::Invalid(problems))
            }
        }
        Err(diagnostics) => Err(ReloadError::Invalid(diagnostics)),
    };
    finish(state, result, started, "policies")
}

/// Swaps a good state in, or logs why not; counts either.
fn finish(
    state: &State,
    result: Result<Live, ReloadError>,
    started: Instant,
    what: &'static str,
) -> Result<Reloaded, ReloadError> {
    let previous = state.live();
    state.metrics.count_reload(result.is_ok());
    match result {
        Ok(live) => {
            let reloaded = Reloaded {
                policy: live.policy.version().to_string(),
                previous_policy: previous.policy.version().to_string(),
                apps: live.config.apps.len(),
                upstreams: live.upstreams.len(),
                took: started.elapsed(),
            };
            state.swap(live);
            tracing::info!(
                what,
                version = %reloaded.policy,
                previous = %reloaded.previous_policy,
                apps = reloaded.apps,
                upstreams = reloaded.upstreams,
                took_ms = reloaded.took.as_millis() as u64,
                "reloaded"
            );
            Ok(reloaded)
        }
        Err(e) => {
            if let ReloadError::Invalid(diagnostics) = &e {
                for d in diagnostics {
                    tracing::error!(diagnostic = %d, "reload refused");
                }
            }
            tracing::error!(
                what,
                error = %e,
                version = %previous.policy.version(),
                "reload failed; keeping the last good state"
            );
            Err(e)
        }
    }
}

/// The keys a running process cannot apply, among those that differ.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut differ = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    differ("listen", running.listen != new.listen);
    differ("admin", running.admin != new.admin);
    differ("dev", running.dev != new.dev);
    differ("certs_dir", running.certs_dir != new.certs_dir);
    differ("policies", running.policies != new.policies);
    differ("log", running.log != new.log);
    differ("limits", running.limits != new.limits);
    differ("crm_double", running.crm_double != new.crm_double);
    differ("audit", running.audit != new.audit);
    differ("budgets", running.budgets != new.budgets);
    keys
}

/// Reloads everything on SIGHUP, and the policies on changes under their directory, until
/// `stop` fires.
pub fn spawn_watchers(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    #[derive(Clone, Copy)]
    enum Ask {
        Everything,
        Policies,
    }
    let (events_tx, mut events_rx) = mpsc::channel::<Ask>(8);
    // The debouncer runs on its own thread; it only nudges the reload task.
    let debouncer = {
        let tx = events_tx.clone();
        notify_debouncer_full::new_debouncer(
            Duration::from_millis(300),
            None,
            move |res: notify_debouncer_full::DebounceEventResult| {
                // only changes: a reload reads the files, and notify reports reads as
                // access events, which would otherwise trigger the next reload forever
                let changed = res.as_ref().is_ok_and(|events| {
                    events.iter().any(|e| {
                        use notify::event::{EventKind, ModifyKind};
                        matches!(
                            e.event.kind,
                            EventKind::Create(_)
                                | EventKind::Modify(
                                    ModifyKind::Data(_)
                                        | ModifyKind::Name(_)
                                        | ModifyKind::Any
                                        | ModifyKind::Other
                                )
                                | EventKind::Remove(_)
                        )
                    })
                });
                if changed {
                    let _ = tx.try_send(Ask::Policies);
                }
            },
        )
    };
    let dir = state.config.policies.clone();
    let debouncer = match debouncer {
        Ok(mut d) => match d.watch(&dir, notify::RecursiveMode::Recursive) {
            Ok(()) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the policy directory; reload with SIGHUP");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no file watcher; reload with SIGHUP");
            None
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let tx = events_tx.clone();
        let mut stop = stop.clone();
        // Registered here, before the spawn, so a SIGHUP right after start-up reloads
        // instead of killing the process with the default action.
        match signal(SignalKind::hangup()) {
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
            Ok(mut hup) => {
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = stopped(&mut stop) => return,
                            got = hup.recv() => {
                                if got.is_none() { return; }
                                tracing::info!("SIGHUP received: reloading configuration, certificates and policies");
                                let _ = tx.send(Ask::Everything).await;
                            }
                        }
                    }
                });
            }
        }
    }
    tokio::spawn(async move {
        let _keep_alive = debouncer;
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return,
                got = events_rx.recv() => {
                    let Some(ask) = got else { return };
                    let state = state.clone();
                    // reading files and compiling policies blocks: off the async workers
                    let _ = tokio::task::spawn_blocking(move || match ask {
                        Ask::Everything => everything(&state).map(drop),
                        Ask::Policies => policies(&state).map(drop),
                    })
                    .await;
                }
            }
        }
    });
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
