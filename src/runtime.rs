//! Starting and stopping a whole Zweck: the proxy listener, the admin listener and, when the
//! config has a `crm_double` section, the embedded CRM double. `main` and the integration
//! tests use the same code, so what the tests start is what users run.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::{AuditError, AuditLog};
use crate::budget::{BudgetError, Budgets};
use crate::certs::DevPaths;
use crate::config::Config;
use crate::crm_double::{CrmDouble, CrmDoubleConfig, OAuthClient};
use crate::diagnostic::Diagnostic;
use crate::incident::{Incidents, IncidentsConfig, SystemClock};
use crate::metrics::Metrics;
use crate::preflight::{self, Mode};
use crate::reload::Policies;
use crate::server::{self, Drained};
use crate::state::State;
use crate::{dev, tls};

/// Why Zweck could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// What [`preflight::prepare`] found: every problem, each at its file:line:column.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    #[error(transparent)]
    Dev(#[from] dev::DevError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("transfer log: {0}")]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Alerts(#[from] crate::incident::alert::AlertError),
    #[error("budgets: {0}")]
    Budgets(#[from] BudgetError),
    #[error("candidate policies: {0}")]
    Candidate(#[from] crate::reload::PolicyLoadError),
    #[error("CRM double credential: {0}")]
    CrmDoubleCredential(#[source] crate::secrets::SecretsError),
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A running Zweck.
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub crm_double_addr: Option<SocketAddr>,
    pub crm_double: Option<Arc<CrmDouble>>,
    pub state: Arc<State>,
    stop: watch::Sender<bool>,
    proxy: JoinHandle<Drained>,
    others: Vec<JoinHandle<()>>,
    maintenance: JoinHandle<()>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Prepares dev material (when `dev: true`), starts the CRM double (when configured), the
/// admin listener and the proxy.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.dev {
        let report = dev::prepare(&config)?;
        for path in &report.created {
            tracing::info!(file = %path.display(), "created development file");
        }
    }
    let mut metrics = Metrics::new();
    let prepared = preflight::prepare(config.clone(), Mode::Serve, &metrics.pools)
        .map_err(StartError::Invalid)?;
    for w in &prepared.warnings {
        tracing::warn!(diagnostic = %w, "policy warning");
    }
    let Some(live) = prepared.live else {
        // only `config check` may find development files still to be made
        return Err(StartError::Invalid(Vec::new()));
    };
    let (bundle, signer) = crate::reload::provenance(&live.policy);
    tracing::info!(version = %live.policy.version(), bundle, signer, "policies loaded");
    let (stop, stop_rx) = watch::channel(false);
    let shadow = match &config.policy_candidate {
        Some(dir) => {
            let candidate = Arc::new(Policies::load_from(
                crate::policy::source::PolicySource::Dir(dir.clone()),
            )?);
            tracing::info!(version = %candidate.current().version(), "candidate policies loaded: compared on real traffic, enforcing nothing");
            candidate.clone().spawn_watchers(stop_rx.clone());
            Some(Arc::new(crate::shadow::Shadow::new(candidate)))
        }
        None => None,
    };
    let mut others = Vec::new();

    let mut crm_double = None;
    let mut crm_double_addr = None;
    if let Some(settings) = config.crm_double.clone() {
        let paths = DevPaths::new(&config.certs_dir);
        let double_tls =
            tls::simple_server_config(&paths.crm_double_cert(), &paths.crm_double_key())?;
        let read = |path: &std::path::Path| {
            crate::secrets::read_token(path).map_err(StartError::CrmDoubleCredential)
        };
        let mut cfg = CrmDoubleConfig {
            contacts: settings.contacts,
            seed: settings.seed,
            ..CrmDoubleConfig::default()
        };
        if let Some(f) = &settings.bearer_file {
            cfg.static_tokens.push(read(f)?);
        }
        if let Some((id, f)) = &settings.oauth_client {
            cfg.oauth_clients.push(OAuthClient {
                client_id: id.clone(),
                client_secret: read(f)?,
            });
        }
        let listener = bind(settings.listen).await?;
        crm_double_addr = listener.local_addr().ok();
        let double = CrmDouble::new(cfg);
        crm_double = Some(double.clone());
        let rx = stop_rx.clone();
        others.push(tokio::spawn(async move {
            if let Err(e) = double.serve(listener, double_tls, stopped(rx)).await {
                tracing::error!(error = %e, "CRM double stopped");
            }
        }));
        if let Some(addr) = crm_double_addr {
            tracing::info!(%addr, "CRM double listening");
        }
    }

    let audit = match &config.audit {
        Some(a) => {
            // an off-box file's directory is made like the log's (it lives elsewhere by design)
            if let crate::audit::Offbox::File(path) = &a.offbox {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StartError::CreateDir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
            }
            let log = AuditLog::open(a.clone()).await?;
            tracing::info!(log = %a.log.display(), "transfer log open");
            Some(log)
        }
        None => {
            tracing::warn!("no audit section: governed flows are not written to a transfer log");
            None
        }
    };
    let budgets = match &config.budgets {
        Some(raw) => Budgets::from_config(raw).await?,
        None => Budgets::local(),
    };
    // runs until aborted at shutdown: it never ends by itself
    let maintenance = budgets.spawn_maintenance(std::time::Duration::from_secs(60));
    metrics.register_with(|r| budgets.metrics().register(r));
    // always: revocation and containment work without detection too
    let incidents = {
        let c = config
            .incidents
            .clone()
            .unwrap_or_else(IncidentsConfig::without_detection);
        let log_path = config.audit.as_ref().map(|a| a.log.as_path());
        let incidents = Incidents::new(&c, audit.clone(), log_path, Arc::new(SystemClock));
        let incidents = if c.webhooks.is_empty() {
            incidents
        } else {
            incidents.with_alerts(crate::incident::alert::Alerts::start(
                &c.webhooks,
                c.alerts,
            )?)
        };
        Some(Arc::new(incidents))
    };
    let mut state = State::new(config.clone(), live, metrics, audit, budgets);
    if let Some(shadow) = shadow {
        state = state.with_shadow(shadow);
    }
    if let Some(incidents) = incidents {
        let rx = stop_rx.clone();
        let persisted = incidents.clone();
        others.push(tokio::spawn(async move {
            persisted
                .run_persistence(std::time::Duration::from_secs(30), stopped(rx))
                .await;
        }));
        state = state.with_incidents(incidents);
    }
    let state = Arc::new(state);
    crate::reload::spawn_watchers(state.clone(), stop_rx.clone());
    let mut admin_addr = None;
    if let Some(addr) = config.admin {
        let listener = bind(addr).await?;
        admin_addr = listener.local_addr().ok();
        let rx = stop_rx.clone();
        let st = state.clone();
        others.push(tokio::spawn(async move {
            crate::admin::run(listener, st, stopped(rx)).await;
        }));
        if let Some(addr) = admin_addr {
            tracing::info!(%addr, reload = config.admin_token_file.is_some(), "admin listening");
        }
    }

    let listener = bind(config.listen).await?;
    let proxy_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let proxy = tokio::spawn(server::run(listener, state.clone(), stopped(stop_rx)));
    tracing::info!(addr = %proxy_addr, public_url = %config.public_url, "Zweck listening");
    Ok(Running {
        proxy_addr,
        admin_addr,
        crm_double_addr,
        crm_double,
        state,
        stop,
        proxy,
        others,
        maintenance,
    })
}

impl Running {
    /// Stops accepting, drains in-flight requests within the grace period, stops the rest.
    pub async fn shutdown(self) -> Drained {
        let _ = self.stop.send(true);
        let drained = self.proxy.await.unwrap_or(Drained::GraceExpired);
        self.maintenance.abort();
        for task in self.others {
            let _ = task.await;
        }
        // last: the final checkpoint, after every in-flight request has its record
        if let Some(log) = &self.state.audit {
            if let Err(e) = log.shutdown().await {
                tracing::error!(error = %e, "transfer log shutdown");
            }
        }
        drained
    }

    /// A handle that triggers shutdown from elsewhere (e.g. a test) without owning `Running`.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}
