//! The live policy set: loaded at start, reloaded on SIGHUP and on file change, from a
//! directory or a signed bundle (verified on every load: an unsigned or untrusted bundle keeps
//! the last good set, like a broken file).
//!
//! A reload compiles the whole directory first and swaps only a set that compiled without
//! errors, through a `watch` channel: each request takes one snapshot (`current()`) and uses
//! it from start to end, so a request never sees half of an old and half of a new policy, and
//! its response and transfer record name exactly the version that decided it. A broken file
//! keeps the last good set in force and logs every diagnostic. File events are debounced, so
//! an editor's write-rename-chmod dance causes one reload, not three.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::policy::source::PolicySource;
use crate::policy::{Diagnostic, PolicySet};

/// The policy set in force and the means to replace it.
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

fn render(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
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
                    tracing::info!(%version, previous = %old, bundle, signer, "policies reloaded");
                }
                Ok(version)
            }
            Err(e) => {
                tracing::error!(
                    errors = e.diagnostics.len(),
                    version = %self.current().version(),
                    "policy reload failed; keeping the last good policies"
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
            let source = self.source.clone();
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
                            ) && e.event.paths.iter().any(|p| source.concerns(p))
                        })
                    });
                    if changed {
                        let _ = tx.try_send(());
                    }
                },
            )
        };
        let (path, recursive) = self.source.watch_path();
        let mode = if recursive {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        let debouncer = match debouncer {
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
                                    tracing::info!("SIGHUP received: reloading policies");
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

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
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
