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
        /// Replace existing files instead of only making missing ones.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain, checkpoints and signatures; names the first bad record.
    /// Exit 0 intact, 1 tampered, 2 unreadable.
    Verify {
        /// Active log files (rotated segments and checkpoints are found beside each).
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// The signer's public key (certs/audit.pub).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Off-box checkpoint files, to detect a cut-off tail.
        #[arg(long)]
        offbox: Vec<PathBuf>,
        /// Show progress on stderr.
        #[arg(long)]
        progress: bool,
    },
    /// Summarise flows by processor, country, mechanism, category, purpose, app and period.
    Report {
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Comma-separated: processor,country,mechanism,category,purpose,app,day,month
        #[arg(long, default_value = "processor,country,mechanism")]
        by: String,
        /// table, csv or json
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// The Art. 30(1) record of processing, from config and policies, reconciled with logs.
    Ropa {
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
        logs: Vec<PathBuf>,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// An RFC 6962 inclusion proof of one record against the newest checkpoint.
    Prove {
        log: PathBuf,
        seq: u64,
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        offbox: Vec<PathBuf>,
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
    use zweck::audit;
    let key = |path: Option<PathBuf>| -> anyhow::Result<Option<[u8; 32]>> {
        path.map(|p| zweck::secrets::read_audit_pub(&p).map_err(anyhow::Error::from))
            .transpose()
    };
    let format = |f: &str| audit::Format::parse(f).with_context(|| format!("unknown format {f}"));
    let report = match command {
        AuditCommand::Verify {
            logs,
            key: k,
            offbox,
            progress,
        } => audit::verify(&audit::VerifyOptions {
            logs,
            public_key: key(k)?,
            offbox,
            origin: None,
            progress,
        }),
        AuditCommand::Report {
            logs,
            by,
            format: f,
            since,
            until,
        } => {
            let group_by = by
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| {
                    audit::Dimension::parse(d.trim())
                        .with_context(|| format!("unknown dimension {d}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            audit::report(&audit::ReportOptions {
                logs,
                group_by,
                since,
                until,
                format: format(&f)?,
            })
        }
        AuditCommand::Ropa {
            config,
            logs,
            format: f,
        } => {
            let config = Config::load(&config)?;
            let set = zweck::cli::policy::load_source(&config.policy_source())?;
            audit::ropa(&set, &config.upstreams, &logs, format(&f)?)
        }
        AuditCommand::Prove {
            log,
            seq,
            key: k,
            offbox,
        } => audit::prove(&audit::ProveOptions {
            log,
            seq,
            public_key: key(k)?,
            offbox,
        }),
    };
    print!("{}", report.text);
    Ok(ExitCode::from(report.exit_code.clamp(0, 255) as u8))
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
