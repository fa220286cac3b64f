//! The `zweck` command line: serve, demo, reload, certs, keys, crm-double, policy, inventory,
//! audit, incident, config check.
//!
//! Output goes through [`out`] and [`say`]: a reader that goes away (`zweck ... | head`) ends
//! the output quietly instead of panicking, as Rust's `print!` does on a closed pipe (Rust
//! ignores SIGPIPE, so the write fails with EPIPE). The command's own exit code stands.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zweck::certs::{self, DevPaths};
use zweck::config::{Config, LogFormat};
use zweck::crm_double::{CrmDouble, CrmDoubleConfig};
use zweck::preflight::{self, Mode};
use zweck::{dev, logging, runtime, server, tls};

/// mimalloc instead of glibc malloc: the JSON document model allocates a String per key and
/// value, and glibc's malloc/free were ~29 % of the instructions of a governed 98 KB response
/// under callgrind (docs/performance.md, "Profile").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "zweck",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ZWECK_BUILD_COMMIT"), ")"),
    about = "Purpose-bound GDPR proxy for cloud-CRM APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (and the CRM double when the config has a crm_double section).
    Serve {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
    /// Run the proxy in front of the CRM double and print curl commands that go through it.
    Demo {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
    /// Ask a running Zweck to reload its config, certificates, keys and policies (through
    /// the admin listener, with the token of admin_token_file); prints the outcome.
    Reload {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
    /// Development certificates and keys.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Run the built-in CRM double on its own.
    CrmDouble {
        #[arg(long, default_value = "127.0.0.1:9443")]
        listen: SocketAddr,
        /// Directory with crm-double.pem and crm-double.key (see `zweck certs generate`).
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
        #[arg(long, default_value_t = 1000)]
        contacts: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Check, test, explain, diff, bundle and describe policies.
    Policy {
        #[command(subcommand)]
        command: zweck::cli::policy::PolicyCommand,
    },
    /// Read, verify and summarise transfer logs (for auditors).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Personal-data breaches: the facts from the verified log, the 72-hour deadline and the
    /// Art. 33(3) notification draft (docs/incidents.md).
    Incident {
        #[command(subcommand)]
        command: zweck::cli::incident::IncidentCommand,
    },
    /// Rotate TLS certificates, the audit signing key or the pseudonym key, each on its own.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Build inventories from what the CRM says about its own fields.
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
    },
    /// Check a config file and print every problem with file:line:column.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Revoke or reinstate an app's API keys and certificate, or contain or clear one of its
    /// purposes, on a running Zweck (through the admin listener, with the token of
    /// admin_token_file).
    Apps {
        #[command(subcommand)]
        command: zweck::cli::apps::AppsCommand,
    },
}

#[derive(Subcommand)]
enum InventoryCommand {
    /// Read an upstream's metadata and write an inventory with a suggested category and its
    /// evidence per field, plus a review report (docs/onboarding.md).
    Discover {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
        /// The upstream (by its name in the config) to read.
        #[arg(long)]
        upstream: String,
        /// Only these objects (comma-separated API names); default: every record object.
        #[arg(long, value_delimiter = ',')]
        objects: Option<Vec<String>>,
        /// Write the inventory here (default: standard output); the review report goes next
        /// to it as FILE.review.md and FILE.review.json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Merge into this inventory: add new fields and objects, change nothing, report
        /// conflicts and removed fields.
        #[arg(long)]
        merge: Option<PathBuf>,
        /// Read this many records per object and run detectors (e-mail, phone, IBAN, card,
        /// date of birth, postal code) on the fields left for review; only counts are kept.
        #[arg(long, default_value_t = 0)]
        sample: u32,
    },
    /// Ask a running Zweck (its admin listener) which fields governed bodies carried that the
    /// inventory does not classify, and print them as a YAML patch to review.
    Drift {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
        /// The admin listener (default: `admin` of the config).
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make the dev CA, server, CRM-double and client certificates, the audit signing key,
    /// the pseudonymisation master key and API keys for the apps of a config.
    Generate {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
        /// Output directory (default: the config's certs_dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace the CA and every certificate instead of only making missing ones. Never
        /// replaces the audit signing key, the pseudonym key or API keys (see `zweck keys
        /// rotate`).
        #[arg(long)]
        force: bool,
    },
}

/// What verifies a log: the signer's key, the off-box copies, the origin.
#[derive(clap::Args)]
struct EvidenceArgs {
    /// The signer's public key (certs/audit.pub) or, after a rotation, the key history
    /// (certs/audit.keys).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Off-box checkpoint files (each must exist), to detect a cut-off tail.
    #[arg(long)]
    offbox: Vec<PathBuf>,
    /// The origin to expect when a log's on-box checkpoints are gone.
    #[arg(long)]
    origin: Option<String>,
    /// Show progress on stderr.
    #[arg(long)]
    progress: bool,
}

/// Where a report goes.
#[derive(clap::Args)]
struct OutputArgs {
    /// Report even when the logs do not verify; every page then says UNVERIFIED.
    #[arg(long)]
    unverified: bool,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Sign the report with this Ed25519 key (certs/audit.key): writes <output>.sig.
    #[arg(long, requires = "output")]
    sign: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain, checkpoints, signatures and off-box coverage; names the first bad
    /// record. Several logs are one fleet. Exit 0 verified, 1 tampered, 2 unverified.
    Verify {
        /// Active log files (rotated segments and checkpoints are found beside each).
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        #[command(flatten)]
        evidence: EvidenceArgs,
    },
    /// Verify, then summarise flows by processor, country, mechanism, category, purpose, app
    /// and period.
    Report {
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Comma-separated: processor,country,mechanism,category,purpose,app,day,month
        #[arg(long, default_value = "processor,country,mechanism")]
        by: String,
        /// table, csv, json or html
        #[arg(long, default_value = "table")]
        format: String,
        /// From this date (inclusive) or RFC 3339 time, UTC.
        #[arg(long)]
        since: Option<String>,
        /// Up to this date (inclusive: the whole day) or RFC 3339 time (inclusive).
        #[arg(long)]
        until: Option<String>,
        /// One month: 2026-11.
        #[arg(long, conflicts_with_all = ["since", "until", "quarter"])]
        month: Option<String>,
        /// One quarter: 2026-Q4.
        #[arg(long, conflicts_with_all = ["since", "until"])]
        quarter: Option<String>,
        #[command(flatten)]
        evidence: EvidenceArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The Art. 30(1) record of processing, from config and policies, reconciled with the
    /// verified logs.
    Ropa {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// markdown, html, json or csv
        #[arg(long, default_value = "markdown")]
        format: String,
        #[command(flatten)]
        evidence: EvidenceArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// An RFC 6962 inclusion proof of one record against the newest checkpoint.
    Prove {
        log: PathBuf,
        seq: u64,
        /// The signer's public key or key history; without it the proof is not verified.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        offbox: Vec<PathBuf>,
    },
    /// Check a report against its detached signature (<report>.sig) and, with --log, against
    /// the logs it was computed from.
    VerifyReport {
        report: PathBuf,
        /// The signature file (default: <report>.sig).
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The signer's public key or key history.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Logs whose state the report names (matched by origin).
        #[arg(long)]
        log: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate one kind of key: tls (certificates from the dev CA), audit (checkpoint signing
    /// key, kept verifiable through the key history) or pseudonym (every pseudonym changes).
    Rotate {
        /// tls, audit or pseudonym
        kind: String,
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
        /// Confirm a pseudonym key rotation (every pseudonym changes).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Run every check `serve` runs before it listens; print each problem once; exit 1 on
    /// any error.
    Check {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
}

/// Writes to stdout; a reader that went away is no error (the rest is dropped quietly).
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// Writes to stderr; there is nowhere to report a failure of that.
fn say(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
}

/// An error as one message: diagnostics as they are (each line has its position and
/// severity), anything else after `error: ` with each source said once.
fn describe(e: &anyhow::Error) -> String {
    let diagnostics = e
        .downcast_ref::<zweck::config::ConfigError>()
        .is_some_and(|c| matches!(c, zweck::config::ConfigError::Invalid(_)))
        || e.downcast_ref::<runtime::StartError>()
            .is_some_and(|s| matches!(s, runtime::StartError::Invalid(_)));
    if diagnostics {
        return format!("{e}\n");
    }
    let mut text = String::from("error: ");
    for (i, cause) in e.chain().enumerate() {
        let cause = cause.to_string();
        if i == 0 {
            text.push_str(&cause);
        } else if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text.push('\n');
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("error: cannot start the runtime: {e}\n"));
            return ExitCode::FAILURE;
        }
    };
    // serve and demo log in the config's format, so they set up logging once it is read
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        logging::init(LogFormat::Text);
    }
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            say(&describe(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => serve(&config, false).await,
        Command::Demo { config } => serve(&config, true).await,
        Command::Reload { config } => reload(&config).await,
        Command::Apps { command } => {
            admin_post(
                command.config(),
                &command.target(),
                std::time::Duration::from_secs(30),
            )
            .await
        }
        Command::Certs {
            command: CertsCommand::Generate { config, dir, force },
        } => {
            let config = Config::load(&config)?;
            let mut opts = dev::generate_options(&config);
            if let Some(dir) = dir {
                opts.dir = dir;
            }
            opts.overwrite = force;
            let report = certs::generate(&opts)?;
            let mut text = String::new();
            for p in &report.created {
                text.push_str(&format!("created {}\n", p.display()));
            }
            for p in &report.kept {
                text.push_str(&format!("kept    {}\n", p.display()));
            }
            out(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CrmDouble {
            listen,
            certs,
            contacts,
            seed,
        } => {
            let paths = DevPaths::new(&certs);
            let tls = tls::simple_server_config(&paths.crm_double_cert(), &paths.crm_double_key())
                .context("the CRM double needs a certificate: run `zweck certs generate`")?;
            let signal = server::shutdown_signal();
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let double = CrmDouble::new(CrmDoubleConfig {
                contacts,
                seed,
                ..CrmDoubleConfig::default()
            });
            out(&format!(
                "CRM double on https://{listen} ({contacts} contacts, seed {seed})\n"
            ))?;
            double.serve(listener, tls, signal).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { command } => zweck::cli::policy::run(command),
        Command::Inventory {
            command:
                InventoryCommand::Discover {
                    config,
                    upstream,
                    objects,
                    out,
                    merge,
                    sample,
                },
        } => discover(&config, &upstream, objects, out, merge, sample).await,
        Command::Inventory {
            command: InventoryCommand::Drift { config, admin },
        } => drift(&config, admin).await,
        Command::Audit { command } => audit_command(command),
        Command::Incident { command } => {
            let report = zweck::cli::incident::run(command);
            out(&report.text)?;
            Ok(ExitCode::from(report.exit_code.clamp(0, 255) as u8))
        }
        Command::Keys {
            command: KeysCommand::Rotate { kind, config, yes },
        } => {
            let Some(kind) = zweck::keys::KeyKind::parse(&kind) else {
                say(&format!(
                    "unknown key kind {kind:?}: expected tls, audit or pseudonym\n"
                ));
                return Ok(ExitCode::from(2));
            };
            let config = Config::load(&config)?;
            for line in zweck::keys::rotate(&config, kind, yes).await? {
                out(&format!("{line}\n"))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => config_check(&config),
    }
}

/// `zweck config check`: [`preflight::prepare`], the function `serve` runs before it
/// listens, in check mode; every finding printed once.
fn config_check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("{e}\n"));
            return Ok(ExitCode::FAILURE);
        }
    };
    let certs_dir = config.certs_dir.clone();
    match preflight::prepare(config, Mode::Check, &zweck::metrics::PoolGauges::default()) {
        Ok(prepared) => {
            let mut text = String::new();
            for w in &prepared.warnings {
                text.push_str(&format!("{w}\n"));
            }
            text.push_str(&format!("{}: ok", path.display()));
            if prepared.live.is_none() {
                text.push_str(&format!(
                    " (dev: true; development files missing under {} are made by the first `serve`)",
                    certs_dir.display()
                ));
            }
            text.push('\n');
            out(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            let text: String = diagnostics.iter().map(|d| format!("{d}\n")).collect();
            say(&text);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A usage problem of an audit command: printed, exit 2.
fn usage(message: impl std::fmt::Display) -> zweck::audit::CliReport {
    zweck::audit::CliReport {
        text: format!("{message}\n"),
        exit_code: 2,
    }
}

fn keys(path: Option<&Path>) -> Result<zweck::audit::KeyRing, zweck::audit::CliReport> {
    match path {
        None => Ok(zweck::audit::KeyRing::default()),
        Some(p) => {
            zweck::audit::KeyRing::read(p).map_err(|e| usage(format!("UNVERIFIED: key {e}")))
        }
    }
}

fn evidence(
    logs: Vec<PathBuf>,
    e: EvidenceArgs,
) -> Result<zweck::audit::VerifyOptions, zweck::audit::CliReport> {
    Ok(zweck::audit::VerifyOptions {
        logs,
        keys: keys(e.key.as_deref())?,
        offbox: e.offbox,
        origin: e.origin,
        progress: e.progress,
    })
}

fn format(f: &str, allowed: &[&str]) -> Result<zweck::audit::Format, zweck::audit::CliReport> {
    zweck::audit::Format::parse(f)
        .filter(|p| allowed.contains(&p.name()))
        .ok_or_else(|| {
            usage(format!(
                "unknown format {f:?}: expected one of {}",
                allowed.join(", ")
            ))
        })
}

/// `zweck reload`: `POST /reload` on the admin listener with the admin token.
async fn reload(path: &Path) -> anyhow::Result<ExitCode> {
    // a reload compiles every policy: generous, but bounded
    admin_post(path, "/reload", std::time::Duration::from_secs(120)).await
}

/// `POST <target>` on the admin listener of the config at `path`, with the admin token;
/// prints the answer.
async fn admin_post(
    path: &Path,
    target: &str,
    limit: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    use http_body_util::BodyExt;
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            say(&format!(
                "{e}\nnothing was sent: the running instance keeps its state\n"
            ));
            return Ok(ExitCode::FAILURE);
        }
    };
    let admin = config.admin.context(
        "the config has no admin listener, which this command talks to: set `admin` (a reload also works with SIGHUP)",
    )?;
    let token_file = config.admin_token_file.as_deref().context(
        "admin_token_file is not set: the admin listener changes nothing without it (a reload also works with SIGHUP)",
    )?;
    let token = zweck::secrets::read_token(token_file)?;
    // an admin listener on every address is reached on loopback
    let addr = match admin.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, admin.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, admin.port()))
        }
        _ => admin,
    };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| {
                format!("cannot reach the admin listener on {addr}: is Zweck running?")
            })?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::post(target)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    let (status, text) = tokio::time::timeout(limit, exchange)
        .await
        .with_context(|| {
            format!(
                "the admin listener did not answer within {} s",
                limit.as_secs()
            )
        })??;
    if status.is_success() {
        out(&text)?;
        Ok(ExitCode::SUCCESS)
    } else {
        say(&text);
        Ok(ExitCode::FAILURE)
    }
}

/// `zweck inventory drift`: GET /drift on the admin listener, printed as a YAML patch.
async fn drift(config: &Path, admin: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    use http_body_util::BodyExt;
    let addr = match admin {
        Some(a) => a,
        None => Config::load(config)?
            .admin
            .context("the config has no `admin` listener: pass --admin HOST:PORT")?,
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{addr}/drift").parse()?;
    let resp = client
        .get(uri)
        .await
        .with_context(|| format!("asking the admin listener on {addr}"))?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the admin listener answered {}",
        resp.status()
    );
    let body = resp.into_body().collect().await?.to_bytes();
    let snapshot: zweck::drift::Snapshot =
        serde_json::from_slice(&body).context("the admin listener's /drift is not a drift view")?;
    print!("{}", zweck::drift::patch(&snapshot));
    Ok(ExitCode::SUCCESS)
}

/// `zweck inventory discover`.
async fn discover(
    config: &Path,
    upstream: &str,
    objects: Option<Vec<String>>,
    out: Option<PathBuf>,
    merge: Option<PathBuf>,
    sample: u32,
) -> anyhow::Result<ExitCode> {
    use zweck::discover::{self, report::Report, yaml};
    let config = Config::load(config)?;
    let (found, classified) = discover::discover_and_classify(
        &config.upstreams,
        upstream,
        &discover::Options { objects },
        sample,
    )
    .await?;
    let (text, outcome) = match &merge {
        Some(path) => {
            let existing = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let (text, outcome) = yaml::merge(&existing, &found, &classified)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (text, Some(outcome))
        }
        None => (yaml::render(&found, &classified), None),
    };
    let report = Report::new(&found, &classified, outcome);
    match &out {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            let md = path.with_extension("review.md");
            let json = path.with_extension("review.json");
            std::fs::write(&md, report.markdown())
                .with_context(|| format!("writing {}", md.display()))?;
            std::fs::write(&json, report.json())
                .with_context(|| format!("writing {}", json.display()))?;
            println!("{}: {}", path.display(), report.summary());
            println!("review: {} and {}", md.display(), json.display());
            if let Some(m) = &report.merge {
                println!(
                    "merge: {} fields and {} objects added, {} conflicts, {} removed (see the review)",
                    m.added_fields.len(),
                    m.added_objects.len(),
                    m.conflicts.len(),
                    m.removed.len()
                );
            }
        }
        None => {
            print!("{text}");
            eprintln!("{}", report.summary());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_command(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let report = audit_report(command).unwrap_or_else(|refused| refused);
    out(&report.text)?;
    Ok(ExitCode::from(report.exit_code.clamp(0, 255) as u8))
}

fn audit_report(command: AuditCommand) -> Result<zweck::audit::CliReport, zweck::audit::CliReport> {
    use zweck::audit;
    Ok(match command {
        AuditCommand::Verify { logs, evidence: e } => audit::verify(&evidence(logs, e)?),
        AuditCommand::Report {
            logs,
            by,
            format: f,
            since,
            until,
            month,
            quarter,
            evidence: e,
            output,
        } => {
            let group_by = by
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| {
                    audit::Dimension::parse(d.trim()).ok_or_else(|| {
                        usage(format!("unknown dimension {d:?}: expected processor, country, mechanism, category, purpose, app, day or month"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let period = audit::Period::parse(&audit::PeriodArgs {
                since,
                until,
                month,
                quarter,
            })
            .map_err(usage)?;
            let opts = audit::ReportOptions {
                evidence: evidence(logs, e)?,
                group_by,
                period,
                format: format(&f, &["table", "csv", "json", "html"])?,
                unverified: output.unverified,
            };
            audit::report_to(
                &opts,
                &audit::Output {
                    path: output.output,
                    sign: output.sign,
                },
            )
        }
        AuditCommand::Ropa {
            config,
            logs,
            format: f,
            evidence: e,
            output,
        } => {
            let format = format(&f, &["markdown", "html", "json", "csv"])?;
            let config = Config::load(&config).map_err(usage)?;
            let set = zweck::cli::policy::load_source(&config.policy_source()).map_err(usage)?;
            let opts = audit::RopaOptions {
                evidence: evidence(logs, e)?,
                format,
                unverified: output.unverified,
            };
            audit::ropa_to(
                &set,
                &config,
                &opts,
                &audit::Output {
                    path: output.output,
                    sign: output.sign,
                },
            )
        }
        AuditCommand::Prove {
            log,
            seq,
            key,
            offbox,
        } => audit::prove(&audit::ProveOptions {
            log,
            seq,
            keys: keys(key.as_deref())?,
            offbox,
        }),
        AuditCommand::VerifyReport {
            report,
            signature,
            key,
            log,
        } => audit::verify_report(&audit::ReportCheckOptions {
            report,
            signature,
            keys: keys(key.as_deref())?,
            logs: log,
        }),
    })
}

async fn serve(path: &Path, demo: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    logging::init(config.log.format);
    // Handlers first: "Zweck listening" is a readiness signal, and a SIGTERM right after it
    // must drain, not kill.
    let signal = server::shutdown_signal();
    let running = runtime::start(config.clone()).await?;
    if demo {
        out(&demo_text(&config, running.proxy_addr))?;
    }
    signal.await;
    let drained = running.shutdown().await;
    tracing::info!(?drained, "stopped");
    Ok(ExitCode::SUCCESS)
}

fn demo_text(config: &Config, addr: SocketAddr) -> String {
    let mut text = String::new();
    let paths = DevPaths::new(&config.certs_dir);
    let base = format!("https://{addr}");
    text.push_str(&format!(
        "\nZweck is running on {base} in front of the CRM double. Try, in another terminal:\n\n"
    ));
    for app in &config.apps {
        let Some(m) = &app.client_cert else { continue };
        let name = match m {
            zweck::config::ClientCertMatch::San(n) | zweck::config::ClientCertMatch::Cn(n) => n,
        };
        let tls = format!(
            "--cacert {} --cert {} --key {}",
            paths.ca_cert().display(),
            paths.client_cert(name).display(),
            paths.client_key(name).display()
        );
        text.push_str(&format!(
            "  # app {} with its client certificate: an ungoverned route, then a minimised query\n  curl {tls} {base}/services/data/\n  curl {tls} '{base}/services/data/v66.0/query?q=SELECT+Id,FirstName,Email,MobilePhone,Birthdate,HasOptedOutOfEmail+FROM+Contact+LIMIT+3'\n\n",
            app.name,
        ));
        break;
    }
    for app in &config.apps {
        let key = paths.api_key(&app.name);
        if key.exists() {
            text.push_str(&format!(
                "  # app {} with its API key, sent like an SDK's access token\n  curl --cacert {} -H \"Authorization: Bearer $(cat {})\" '{base}/crm/v3/objects/contacts?limit=2'\n\n",
                app.name,
                paths.ca_cert().display(),
                key.display()
            ));
            break;
        }
    }
    text.push_str(&format!(
        "  # no credential: 401 problem+json\n  curl --cacert {} {base}/services/data/\n\n",
        paths.ca_cert().display()
    ));
    text
}
