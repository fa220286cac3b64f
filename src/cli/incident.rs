//! `zweck incident open | list | close`: argument definitions and the glue from a config
//! (time zone, log, keys, off-box copies, signing key, DPO) to [`crate::incident::report`].
//!
//! The config is optional: `--config FILE` or `zweck.yaml` in the working directory when it
//! exists. Without one, `--log`, `--key` and `--sign` say what it would have, and times are
//! shown in UTC.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::audit::{CliReport, Format, KeyRing, Offbox, VerifyOptions};
use crate::config::Config;
use crate::incident::report::{self, clock, draft::Controller, facts::Scope, store::Store};

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Verify the transfer log, compute what flowed in the incident's window and write the
    /// Art. 33(3) notification draft (markdown, HTML, JSON), each with a detached signature.
    Open(Box<OpenArgs>),
    /// List the incidents in the store with their deadline and time left.
    List {
        /// The config (default: zweck.yaml when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The transfer log whose store to list (default: audit.log of the config).
        #[arg(long)]
        log: Option<PathBuf>,
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Close an incident (its record stays in the store).
    Close {
        id: String,
        /// Why it is closed (a short text: never a personal value).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        log: Option<PathBuf>,
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

/// `zweck incident open`'s arguments.
#[derive(Debug, clap::Args)]
pub struct OpenArgs {
    /// When the controller became aware of the breach: RFC 3339, or a local time in
    /// controller.time_zone (2026-12-07T09:30). The 72 hours run from here.
    #[arg(long)]
    detected_at: String,
    /// Only this app's transfers and events.
    #[arg(long)]
    app: Option<String>,
    /// Only this purpose's transfers and events.
    #[arg(long)]
    purpose: Option<String>,
    /// Only transfers that carried this category (or one below it).
    #[arg(long)]
    category: Option<String>,
    /// Start of the window (default: the first incident entry for this app and purpose).
    #[arg(long)]
    since: Option<String>,
    /// End of the window, inclusive (default: now).
    #[arg(long)]
    until: Option<String>,
    /// Transfer logs (default: audit.log of the config); several are one fleet.
    #[arg(long = "log", value_name = "FILE")]
    logs: Vec<PathBuf>,
    /// The config (default: zweck.yaml when it exists): time zone, log, keys, DPO.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the drafts go (default: <store>/<incident id>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// md, html or json (default: all three).
    #[arg(long)]
    format: Option<String>,
    /// The public key or key history that verifies the log (default: certs_dir's
    /// audit.keys, else audit.pub).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Off-box checkpoint files (default: audit.offbox of the config when it is a file).
    #[arg(long)]
    offbox: Vec<PathBuf>,
    /// The key that signs the drafts (default: audit.signing_key of the config).
    #[arg(long)]
    sign: Option<PathBuf>,
    /// The incident store (default: incidents/ beside the first log).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Compute the window's end and the time left as of this instant (default: now), to
    /// regenerate a draft as it stood.
    #[arg(long)]
    as_of: Option<String>,
}

fn usage(message: impl std::fmt::Display) -> CliReport {
    CliReport {
        text: format!("{message}\n"),
        exit_code: 2,
    }
}

/// The config named, or `zweck.yaml` when it exists.
fn load_config(path: Option<&Path>) -> Result<Option<Config>, CliReport> {
    let (path, named) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("zweck.yaml"), false),
    };
    if !named && !path.exists() {
        return Ok(None);
    }
    Config::load(&path).map(Some).map_err(usage)
}

fn zone(config: Option<&Config>) -> TimeZone {
    config
        .and_then(|c| c.controller.time_zone.clone())
        .unwrap_or(TimeZone::UTC)
}

fn logs_of(given: Vec<PathBuf>, config: Option<&Config>) -> Result<Vec<PathBuf>, CliReport> {
    if !given.is_empty() {
        return Ok(given);
    }
    match config.and_then(|c| c.audit.as_ref()) {
        Some(a) => Ok(vec![a.log.clone()]),
        None => Err(usage(
            "no transfer log: give --log FILE or a config with an audit section",
        )),
    }
}

fn store_of(
    store: Option<PathBuf>,
    log: Option<PathBuf>,
    config: Option<&Config>,
) -> Result<Store, CliReport> {
    let logs = match (&store, log) {
        (Some(_), _) => Vec::new(),
        (None, Some(l)) => vec![l],
        (None, None) => logs_of(Vec::new(), config)?,
    };
    report::store_for(store, &logs).ok_or_else(|| usage("no incident store: give --store DIR"))
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// Runs one incident command.
pub fn run(command: IncidentCommand) -> CliReport {
    match command_report(command) {
        Ok(r) | Err(r) => r,
    }
}

fn command_report(command: IncidentCommand) -> Result<CliReport, CliReport> {
    match command {
        IncidentCommand::Open(args) => {
            let OpenArgs {
                detected_at,
                app,
                purpose,
                category,
                since,
                until,
                logs,
                config,
                out,
                format,
                key,
                offbox,
                sign,
                store,
                as_of,
            } = *args;
            let config = load_config(config.as_deref())?;
            let config = config.as_ref();
            let tz = zone(config);
            let instant = |flag: &'static str, v: Option<String>| {
                v.map(|v| clock::parse_instant(flag, &v, &tz).map_err(usage))
                    .transpose()
            };
            let detected_at =
                clock::parse_instant("--detected-at", &detected_at, &tz).map_err(usage)?;
            let since = instant("--since", since)?;
            let until = instant("--until", until)?;
            let as_of = instant("--as-of", as_of)?.unwrap_or_else(now);
            if let (Some(s), Some(u)) = (since, until) {
                if s > u {
                    return Err(usage("the window is empty: --since is after --until"));
                }
            }
            let formats = match format.as_deref() {
                None => Vec::new(),
                Some(f) => vec![Format::parse(f)
                    .filter(|f| matches!(f, Format::Markdown | Format::Html | Format::Json))
                    .ok_or_else(|| {
                        usage(format!("unknown format {f:?}: expected md, html or json"))
                    })?],
            };
            let logs = logs_of(logs, config)?;
            let key = key.or_else(|| {
                config.map(|c| {
                    let history = c.certs_dir.join("audit.keys");
                    if history.exists() {
                        history
                    } else {
                        c.certs_dir.join("audit.pub")
                    }
                })
            });
            let keys = match &key {
                Some(k) => KeyRing::read(k).map_err(|e| usage(format!("UNVERIFIED: key {e}")))?,
                None => KeyRing::default(),
            };
            let offbox = if offbox.is_empty() {
                match config.and_then(|c| c.audit.as_ref()).map(|a| &a.offbox) {
                    Some(Offbox::File(f)) => vec![f.clone()],
                    _ => Vec::new(),
                }
            } else {
                offbox
            };
            let sign = sign
                .or_else(|| config.and_then(|c| c.audit.as_ref()).map(|a| a.signing_key.clone()))
                .ok_or_else(|| usage("the drafts are signed: give --sign KEY (certs/audit.key) or a config with an audit section"))?;
            let store =
                report::store_for(store, &logs).ok_or_else(|| usage("no incident store"))?;
            let opts = report::OpenOptions {
                evidence: VerifyOptions {
                    logs,
                    keys,
                    offbox,
                    origin: None,
                    progress: false,
                },
                scope: Scope {
                    app,
                    purpose,
                    category,
                },
                detected_at,
                since,
                until,
                as_of,
                time_zone: tz,
                controller: controller(config),
                store,
                formats,
                out,
                sign,
            };
            Ok(report::open(&opts))
        }
        IncidentCommand::List { config, log, store } => {
            let config = load_config(config.as_deref())?;
            let store = store_of(store, log, config.as_ref())?;
            Ok(report::list(&store, &zone(config.as_ref()), now()))
        }
        IncidentCommand::Close {
            id,
            reason,
            config,
            log,
            store,
        } => {
            let config = load_config(config.as_deref())?;
            let store = store_of(store, log, config.as_ref())?;
            Ok(report::close(
                &store,
                &id,
                reason,
                now(),
                &zone(config.as_ref()),
            ))
        }
    }
}

/// Who the controller is: `controller.name`, else the policies' controller; the DPO and the
/// data subjects from `record_of_processing`.
fn controller(config: Option<&Config>) -> Controller {
    let Some(c) = config else {
        return Controller::default();
    };
    let policies = crate::cli::policy::load_source(&c.policy_source()).ok();
    let named = policies.as_ref().map(|p| p.controller().clone());
    Controller {
        name: c
            .controller
            .name
            .clone()
            .or_else(|| named.as_ref().map(|n| n.name.clone())),
        contact: named.and_then(|n| n.contact),
        dpo: c.record_of_processing.dpo.clone(),
        data_subjects: c.record_of_processing.data_subjects.clone(),
    }
}
