//! The `zweck` command line: serve, demo, certs, crm-double, config check.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zweck::certs::{self, DevPaths};
use zweck::config::Config;
use zweck::crm_double::{CrmDouble, CrmDoubleConfig};
use zweck::{dev, runtime, server, tls};

/// mimalloc instead of glibc malloc: the JSON document model allocates a String per key and
/// value, and glibc's malloc/free were ~29 % of the instructions of a governed 98 KB response
/// under callgrind (docs/performance.md, "Profile").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "zweck",
    version,
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
    /// Check, test and explain policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Read, verify and summarise transfer logs (for auditors).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Rotate TLS certificates, the audit signing key or the pseudonym key, each on its own.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check a config file and print every problem with file:line:column.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate inventories and purposes; exit 1 with every diagnostic.
    Check {
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
    /// Run the table tests in <dir>/tests/*.yaml through the engine the proxy uses.
    Test {
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
    /// Show which rule fires for each field of a body, without printing values.
    Explain {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
        #[arg(long)]
        app: String,
        #[arg(long)]
        purpose: String,
        /// GET, POST, PATCH, ...
        method: String,
        /// The request URL or path, e.g. /services/data/v66.0/query?q=...
        url: String,
        /// The body to explain (a response for reads, the request for writes).
        #[arg(long)]
        body: Option<PathBuf>,
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
    Check {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => serve(&config, false).await,
        Command::Demo { config } => serve(&config, true).await,
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
            for p in &report.created {
                println!("created {}", p.display());
            }
            for p in &report.kept {
                println!("kept    {}", p.display());
            }
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
            println!("CRM double on https://{listen} ({contacts} contacts, seed {seed})");
            double.serve(listener, tls, signal).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { command } => policy_command(command),
        Command::Audit { command } => audit_command(command),
        Command::Keys {
            command: KeysCommand::Rotate { kind, config, yes },
        } => {
            let Some(kind) = zweck::keys::KeyKind::parse(&kind) else {
                eprintln!("unknown key kind {kind:?}: expected tls, audit or pseudonym");
                return Ok(ExitCode::from(2));
            };
            let config = Config::load(&config)?;
            for line in zweck::keys::rotate(&config, kind, yes).await? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
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

fn audit_command(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let report = audit_report(command).unwrap_or_else(|refused| refused);
    print!("{}", report.text);
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
            let (set, _) = zweck::policy::PolicySet::load(&config.policies).map_err(|d| {
                usage(
                    d.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
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

fn policy_command(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { dir } => {
            let report = zweck::policy::check(&dir);
            print!("{report}");
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Test { dir } => {
            let report = zweck::policy::testing::run_dir(&dir);
            print!("{report}");
            Ok(if report.is_ok() && report.passed() > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Explain {
            config,
            app,
            purpose,
            method,
            url,
            body,
        } => {
            let config = Config::load(&config)?;
            let granted = config
                .app(&app)
                .with_context(|| format!("no app {app} in the config"))?;
            anyhow::ensure!(
                granted.purposes.contains(&purpose),
                "app {app} is not granted purpose {purpose}"
            );
            let uri: http::Uri = url.parse().context("not a URL or path")?;
            let path = zweck::proxy::route::canonical_path(uri.path())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let host = uri.host().map(str::to_ascii_lowercase);
            let rules: Vec<_> = config
                .upstreams
                .iter()
                .map(|u| {
                    (
                        zweck::proxy::route::RouteRule {
                            path_prefix: u.path_prefix.clone(),
                            host: u.host.clone(),
                        },
                        u,
                    )
                })
                .collect();
            let upstream = zweck::proxy::route::select(
                rules.iter().map(|(r, u)| (r, *u)),
                host.as_deref(),
                &path,
            )
            .context("no upstream serves this path")?;
            let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .context("not an HTTP method")?;
            let doc = match body {
                Some(f) => {
                    let bytes = std::fs::read(&f)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    zweck::json::parse(&bytes, &zweck::json::JsonLimits::default())
                        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
                }
                None => serde_json::Value::Null,
            };
            let (set, _) = zweck::policy::PolicySet::load(&config.policies).map_err(|d| {
                anyhow::anyhow!(
                    "{}",
                    d.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })?;
            let explanation =
                zweck::policy::explain(&set, upstream.dialect, &purpose, &method, &path, &doc)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{explanation}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(path: &Path, demo: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    // Handlers first: "Zweck listening" is a readiness signal, and a SIGTERM right after it
    // must drain, not kill.
    let signal = server::shutdown_signal();
    let running = runtime::start(config.clone()).await?;
    if demo {
        print_demo(&config, running.proxy_addr);
    }
    signal.await;
    let drained = running.shutdown().await;
    tracing::info!(?drained, "stopped");
    Ok(ExitCode::SUCCESS)
}

fn print_demo(config: &Config, addr: SocketAddr) {
    let paths = DevPaths::new(&config.certs_dir);
    let base = format!("https://{addr}");
    println!(
        "\nZweck is running on {base} in front of the CRM double. Try, in another terminal:\n"
    );
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
        println!(
            "  # app {} with its client certificate: an ungoverned route, then a minimised query\n  curl {tls} {base}/services/data/\n  curl {tls} '{base}/services/data/v66.0/query?q=SELECT+Id,FirstName,Email,MobilePhone,Birthdate,HasOptedOutOfEmail+FROM+Contact+LIMIT+3'\n",
            app.name,
        );
        break;
    }
    for app in &config.apps {
        let key = paths.api_key(&app.name);
        if key.exists() {
            println!(
                "  # app {} with its API key, sent like an SDK's access token\n  curl --cacert {} -H \"Authorization: Bearer $(cat {})\" '{base}/crm/v3/objects/contacts?limit=2'\n",
                app.name,
                paths.ca_cert().display(),
                key.display()
            );
            break;
        }
    }
    println!(
        "  # no credential: 401 problem+json\n  curl --cacert {} {base}/services/data/\n",
        paths.ca_cert().display()
    );
}
