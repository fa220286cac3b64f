//! Reloading: the config, apps and API keys, upstream credentials, TLS certificate and client
//! CA, pseudonym key and policies, replaced live as one.
//!
//! [`everything`] (SIGHUP, `zweck reload`) reads `zweck.yaml` again and runs the checks
//! `serve` runs before it listens ([`crate::preflight::prepare`]) on it; only a state that
//! passes all of them is swapped in, in one step ([`State::swap`]): each request and each new
//! TLS handshake takes one snapshot and keeps it, so in-flight requests and open connections
//! finish on the old state while new ones get the new certificate, client CA, keys and
//! policies. [`policies`] (a change under `policies/`, or to the signed bundle) compiles the
//! policy directory, or verifies and compiles the bundle, and swaps only the set, after the same cross-checks against the config: a set that drops a
//! purpose the config grants is refused exactly as at start. A broken change keeps the last
//! good state in force and says why, every diagnostic at its file:line:column. Both paths
//! load through [`Config::policy_source`]: a bundle's signature is checked on every load,
//! and an unsigned or untrusted bundle is refused like a broken file.
//!
//! A candidate policy directory (`policies.candidate`, compared on real traffic by
//! [`crate::shadow`]) enforces nothing; it has its own holder ([`Policies`]) and watcher.
//!
//! What a running process cannot change without a restart (the addresses it listens on, the
//! transfer log, the budget store, resource limits, log format, dev mode, where policies
//! live) is compared with the running config; a reload that changes any of it is refused
//! with the keys named, rather than applied in part. File events are debounced, so an
//! editor's write-rename-chmod dance causes one reload, not three.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::config::{Config, ConfigError};
use crate::diagnostic::Diagnostic;
use crate::policy::source::PolicySource;
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
    let result = match live.config.policy_source().load() {
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
            let (bundle, signer) = provenance(&live.policy);
            tracing::info!(
                what,
                version = %reloaded.policy,
                bundle,
                signer,
                previous = %reloaded.previous_policy,
                apps = reloaded.apps,
                upstreams = reloaded.upstreams,
                took_ms = reloaded.took.as_millis() as u64,
                "reloaded"
            );
            state.swap(live);
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
    differ(
        "policies.trusted_keys",
        running.policy_trust != new.policy_trust,
    );
    differ(
        "policies.candidate",
        running.policy_candidate != new.policy_candidate,
    );
    differ("log", running.log != new.log);
    differ("limits", running.limits != new.limits);
    differ("crm_double", running.crm_double != new.crm_double);
    differ("audit", running.audit != new.audit);
    differ("budgets", running.budgets != new.budgets);
    differ("incidents", running.incidents != new.incidents);
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
    // where policies live is restart-only: the source the process started with
    let source = state.config.policy_source();
    let debouncer = {
        let tx = events_tx.clone();
        watch_policies(&source, move || {
            let _ = tx.try_send(Ask::Policies);
        })
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

/// A policy set with its own reload: the shadow candidate (`policies.candidate`), which
/// enforces nothing and is reloaded on SIGHUP and on changes under its directory.
pub struct Policies {
    source: PolicySource,
    tx: watch::Sender<Arc<PolicySet>>,
}

/// Why loading failed: every error, each printable as `file:line:column: ...`.
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in {}:\n{}", .diagnostics.len(), .dir.display(), render(.diagnostics))]
pub struct PolicyLoadError {
    pub dir: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl Policies {
    /// Loads a policy directory; warnings are logged, errors returned.
    pub fn load(dir: &Path) -> Result<Policies, PolicyLoadError> {
        Policies::load_from(PolicySource::Dir(dir.to_path_buf()))
    }

    /// Loads the policies from a directory or a verified bundle.
    pub fn load_from(source: PolicySource) -> Result<Policies, PolicyLoadError> {
        let set = load_logged(&source)?;
        let (tx, _) = watch::channel(Arc::new(set));
        Ok(Policies { source, tx })
    }

    /// The set in force now; hold it for the whole request.
    pub fn current(&self) -> Arc<PolicySet> {
        self.tx.borrow().clone()
    }

    /// Compiles the directory again and swaps it in when it has no errors.
    pub fn reload(&self) -> Result<String, PolicyLoadError> {
        match load_logged(&self.source) {
            Ok(set) => {
                let version = set.version().to_string();
                let old = self.current().version().to_string();
                self.tx.send_replace(Arc::new(set));
                if old != version {
                    let current = self.current();
                    let (bundle, signer) = provenance(&current);
                    tracing::info!(%version, previous = %old, bundle, signer, "candidate policies reloaded");
                }
                Ok(version)
            }
            Err(e) => {
                tracing::error!(
                    errors = e.diagnostics.len(),
                    version = %self.current().version(),
                    "candidate policy reload failed; keeping the last good candidate"
                );
                Err(e)
            }
        }
    }

    /// Reloads on SIGHUP and on changes under the directory until `stop` fires.
    pub fn spawn_watchers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let (events_tx, mut events_rx) = mpsc::channel::<()>(8);
        // The debouncer runs on its own thread; it only nudges the reload task.
        let debouncer = {
            let tx = events_tx.clone();
            watch_policies(&self.source, move || {
                let _ = tx.try_send(());
            })
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
                                    tracing::info!("SIGHUP received: reloading candidate policies");
                                    let _ = tx.send(()).await;
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
                        if got.is_none() { return; }
                        let _ = self.reload();
                    }
                }
            }
        });
    }
}

/// What to watch for a source: a directory recursively, a bundle's directory (its file and
/// signature are replaced by rename).
/// Watches where `source`'s policies live and calls `on_change` (from the debouncer's own
/// thread) when they change; `None`, with a warning, where the platform cannot watch: SIGHUP
/// still reloads.
fn watch_policies(
    source: &PolicySource,
    on_change: impl Fn() + Send + 'static,
) -> Option<
    notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
> {
    let concerned = source.clone();
    let debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(300),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            // only changes: a reload reads the files, and notify reports reads as access
            // events, which would otherwise trigger the next reload forever
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
                    ) && e.event.paths.iter().any(|p| concerned.concerns(p))
                })
            });
            if changed {
                on_change();
            }
        },
    );
    let (path, mode) = watch_target(source);
    match debouncer {
        Ok(mut d) => match d.watch(path, mode) {
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
    }
}

fn watch_target(source: &PolicySource) -> (&Path, notify::RecursiveMode) {
    let (path, recursive) = source.watch_path();
    let mode = if recursive {
        notify::RecursiveMode::Recursive
    } else {
        notify::RecursiveMode::NonRecursive
    };
    (path, mode)
}

/// The bundle label and signer of a set, for logs (none for a directory).
pub fn provenance(set: &PolicySet) -> (Option<&str>, Option<&str>) {
    match set.bundle() {
        Some(b) => (Some(b.label.as_str()), Some(b.signer.as_str())),
        None => (None, None),
    }
}

fn load_logged(source: &PolicySource) -> Result<PolicySet, PolicyLoadError> {
    let dir = source.watch_path().0;
    match source.load() {
        Ok((set, warnings)) => {
            for w in &warnings {
                tracing::warn!(diagnostic = %w, "policy warning");
            }
            Ok(set)
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                tracing::error!(diagnostic = %d, "policy error");
            }
            Err(PolicyLoadError {
                dir: dir.to_path_buf(),
                diagnostics,
            })
        }
    }
}
