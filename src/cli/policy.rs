//! `zweck policy ...`: check, test, explain (and the policy workflow around them).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::policy::{self, PolicySet};

/// The policy directory: `zweck policy check policies` or `--dir policies` (default
/// `policies`).
#[derive(Debug, Clone, Args)]
pub struct PolicyDir {
    /// The policy directory (default: policies).
    #[arg(value_name = "DIR")]
    positional: Option<PathBuf>,
    /// The policy directory, as an option.
    #[arg(long = "dir", value_name = "DIR", conflicts_with = "positional")]
    option: Option<PathBuf>,
}

impl PolicyDir {
    /// The directory named, or `policies`.
    pub fn path(&self) -> PathBuf {
        self.option
            .clone()
            .or_else(|| self.positional.clone())
            .unwrap_or_else(|| PathBuf::from("policies"))
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate inventories and purposes; exit 1 with every diagnostic.
    Check {
        #[command(flatten)]
        dir: PolicyDir,
    },
    /// Run the table tests in <dir>/tests/*.yaml through the decision the proxy uses.
    Test {
        #[command(flatten)]
        dir: PolicyDir,
        /// Also report which rules, consent signals and inventory fields no test exercises.
        #[arg(long)]
        coverage: bool,
        /// Fail (exit 1) when fewer than this percentage of the reachable rules and consent
        /// signals are exercised; implies --coverage.
        #[arg(long, value_name = "PERCENT")]
        min_coverage: Option<f64>,
    },
    /// Show what the proxy decides for one request and which rule fires for each field,
    /// without printing values.
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
        /// The body the CRM answers with for reads, or the body a write sends.
        #[arg(long)]
        body: Option<PathBuf>,
        /// The body the app sends with a read (a search, a Bulk query job).
        #[arg(long)]
        request_body: Option<PathBuf>,
    },
    /// Write the JSON Schemas of inventories, purposes and table tests (for editors).
    Schema {
        /// The directory to write inventory.schema.json, purposes.schema.json and
        /// tests.schema.json to.
        #[arg(long, default_value = "policies/schema")]
        out: PathBuf,
        /// Exit 1 when the files there differ from what this Zweck generates; write nothing.
        #[arg(long)]
        check: bool,
    },
    /// What a policy change does per purpose, resource and field; exit 1 when any purpose
    /// gains exposure (so CI can ask for a second reviewer), 2 when a side does not load.
    Diff {
        /// The old policies: a directory, or a git revision (its policy directory is
        /// --git-path).
        old: String,
        /// The new policies: a directory, or a git revision.
        new: String,
        /// The policy directory inside the repository, for git revisions (relative to the
        /// current directory).
        #[arg(long, default_value = "policies")]
        git_path: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
    },
    /// Write a policy directory as one signed bundle: OUT (a tar) and OUT.sig (a detached
    /// Ed25519 signature), for `policies: { bundle, trusted_keys }`.
    Bundle {
        #[command(flatten)]
        dir: PolicyDir,
        /// The Ed25519 private key (PKCS#8 PEM) that signs the bundle.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The bundle file to write; the signature goes to FILE.sig.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// What the bundle calls itself in the transfer log (a release name, a git commit).
        #[arg(long)]
        label: String,
    },
    /// Make an Ed25519 key pair to sign bundles: DIR/policy.key (private, 0600) and
    /// DIR/policy.pub (the public key a `trusted_keys` entry names).
    Keygen {
        /// The directory to write policy.key and policy.pub to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        overwrite: bool,
    },
}

/// How `policy diff` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
    Markdown,
}

/// Runs a `zweck policy` command.
pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { dir } => {
            let report = policy::check(&dir.path());
            out!("{report}");
            Ok(exit(report.is_ok()))
        }
        PolicyCommand::Test {
            dir,
            coverage,
            min_coverage,
        } => {
            let report = policy::testing::run_dir(&dir.path());
            out!("{report}");
            let mut ok = report.is_ok() && report.passed() > 0;
            if let (true, Some(c)) = (coverage || min_coverage.is_some(), &report.coverage) {
                out!("{c}");
                if let Some(min) = min_coverage {
                    if c.rules_percent() + 1e-9 < min {
                        outln!(
                            "coverage {:.1} % is below --min-coverage {min} %",
                            c.rules_percent()
                        );
                        ok = false;
                    }
                }
            }
            Ok(exit(ok))
        }
        PolicyCommand::Explain {
            config,
            app,
            purpose,
            method,
            url,
            body,
            request_body,
        } => explain(&config, &app, &purpose, &method, &url, body, request_body),
        PolicyCommand::Schema { out, check } => {
            let mut stale = Vec::new();
            if !check {
                std::fs::create_dir_all(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
            }
            for (name, schema) in policy::schema::generate() {
                let path = out.join(name);
                let text = policy::schema::render(&schema);
                if check {
                    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                        stale.push(path);
                    }
                } else {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    outln!("wrote {}", path.display());
                }
            }
            for p in &stale {
                outln!(
                    "{} differs from the generated schema: run `zweck policy schema --out {}`",
                    p.display(),
                    out.display()
                );
            }
            Ok(exit(stale.is_empty()))
        }
        PolicyCommand::Diff {
            old,
            new,
            git_path,
            format,
        } => {
            let load_side = |spec: &str| -> anyhow::Result<PolicySet> {
                let sources = sources_of(spec, &git_path)?;
                policy::compile::compile(&sources)
                    .map(|(set, _)| set)
                    .map_err(|d| {
                        anyhow::anyhow!(
                            "{spec} does not load:\n{}",
                            d.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join("\n")
                        )
                    })
            };
            let (old_set, new_set) = match (load_side(&old), load_side(&new)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            let d = policy::diff::diff(&old_set, &new_set);
            match format {
                DiffFormat::Text => out!("{d}"),
                DiffFormat::Markdown => out!("{}", d.markdown()),
                DiffFormat::Json => outln!("{}", serde_json::to_string_pretty(&d)?),
            }
            Ok(exit(!d.gains_exposure()))
        }
        PolicyCommand::Bundle {
            dir,
            key,
            out,
            label,
        } => bundle(&dir.path(), &key, &out, &label),
        PolicyCommand::Keygen { out, overwrite } => keygen(&out, overwrite),
    }
}

/// `zweck policy bundle`: only a directory that compiles without errors is bundled.
fn bundle(dir: &Path, key: &Path, out: &Path, label: &str) -> anyhow::Result<ExitCode> {
    use policy::bundle;
    let report = policy::check(dir);
    if !report.is_ok() {
        out!("{report}");
        anyhow::bail!("{} does not compile: nothing bundled", dir.display());
    }
    let sources = policy::compile::read_dir(dir).map_err(|d| {
        anyhow::anyhow!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let pair = crate::secrets::read_audit_key(key)?;
    let signer = crate::audit::checkpoint::key_from_pkcs8(&pair.serialize_der())
        .map_err(|_| anyhow::anyhow!("{}: expected an Ed25519 private key", key.display()))?;
    let archive = bundle::build(&sources, label)?;
    let signature = bundle::sign(&archive, &signer);
    let sig_path = policy::source::signature_path(out);
    std::fs::write(out, &archive).with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::write(&sig_path, signature)
        .with_context(|| format!("cannot write {}", sig_path.display()))?;
    let public: [u8; 32] = ring::signature::KeyPair::public_key(&signer)
        .as_ref()
        .try_into()
        .context("an Ed25519 public key has 32 bytes")?;
    outln!(
        "wrote {} ({} files, policy version {}) and {}, signed by key {}",
        out.display(),
        sources.len(),
        policy::compile::version_of(&sources),
        sig_path.display(),
        bundle::key_id(&public)
    );
    Ok(ExitCode::SUCCESS)
}

/// `zweck policy keygen`: policy.key (PKCS#8 PEM, 0600) and policy.pub (base64, one line).
fn keygen(out: &Path, overwrite: bool) -> anyhow::Result<ExitCode> {
    use base64::Engine as _;
    let (key_path, pub_path) = (out.join("policy.key"), out.join("policy.pub"));
    anyhow::ensure!(
        overwrite || !key_path.exists(),
        "{} exists: pass --overwrite to replace it (bundles it signed then need the old key's policy.pub to verify)",
        key_path.display()
    );
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .context("cannot generate an Ed25519 key")?;
    crate::secrets::write_atomic(&key_path, pair.serialize_pem().as_bytes(), 0o600)?;
    let public = base64::engine::general_purpose::STANDARD.encode(pair.public_key_raw());
    crate::secrets::write_atomic(&pub_path, format!("{public}\n").as_bytes(), 0o644)?;
    let id: [u8; 32] = pair
        .public_key_raw()
        .try_into()
        .context("an Ed25519 public key has 32 bytes")?;
    outln!(
        "wrote {} and {} (key id {})",
        key_path.display(),
        pub_path.display(),
        policy::bundle::key_id(&id)
    );
    Ok(ExitCode::SUCCESS)
}

/// The files of one side of a diff: a directory as it is, or the policy directory of a
/// git revision, read with the git binary (`git ls-tree`, `git show`).
pub fn sources_of(spec: &str, git_path: &Path) -> anyhow::Result<Vec<policy::compile::Source>> {
    let dir = Path::new(spec);
    if dir.is_dir() {
        return policy::compile::read_dir(dir).map_err(|d| {
            anyhow::anyhow!(
                "{}",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    }
    let prefix = git_path.to_string_lossy().trim_end_matches('/').to_string();
    let git = |args: &[&str]| -> anyhow::Result<Vec<u8>> {
        let out = std::process::Command::new("git")
            .args(args)
            .output()
            .context("cannot run git")?;
        anyhow::ensure!(
            out.status.success(),
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(out.stdout)
    };
    anyhow::ensure!(
        !spec.starts_with('-'),
        "{spec} is neither a directory nor a git revision"
    );
    let listing = git(&["ls-tree", "-r", "-z", "--name-only", spec, "--", &prefix])
        .with_context(|| format!("{spec} is neither a directory nor a git revision"))?;
    let mut sources = Vec::new();
    for path in listing.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        let Some(rel) = path.strip_prefix(&format!("{prefix}/")) else {
            continue;
        };
        let bytes = git(&["show", &format!("{spec}:./{path}")])?;
        sources.push(policy::compile::Source {
            rel: rel.to_string(),
            display: PathBuf::from(format!("{spec}:{path}")),
            bytes,
        });
    }
    anyhow::ensure!(
        !sources.is_empty(),
        "revision {spec} has no files under {prefix}/"
    );
    sources.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(sources)
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Loads the policies of a config (a directory or a verified bundle) or fails with every
/// diagnostic.
pub fn load_source(source: &policy::source::PolicySource) -> anyhow::Result<PolicySet> {
    source.load().map(|(set, _)| set).map_err(|d| {
        anyhow::anyhow!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn read_json(file: Option<PathBuf>) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(f) = file else { return Ok(None) };
    let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
    let doc = crate::json::parse(&bytes, &crate::json::JsonLimits::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
    Ok(Some(doc))
}

fn explain(
    config: &Path,
    app: &str,
    purpose: &str,
    method: &str,
    url: &str,
    body: Option<PathBuf>,
    request_body: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let granted = config
        .app(app)
        .with_context(|| format!("no app {app} in the config"))?;
    anyhow::ensure!(
        granted.purposes.iter().any(|p| p == purpose),
        "app {app} is not granted purpose {purpose}"
    );
    let uri: http::Uri = url.parse().context("not a URL or path")?;
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .context("not an HTTP method")?;
    let uri_path = uri.path().to_string();
    crate::proxy::route::refuse_method_override(&method, &uri, &http::HeaderMap::new())
        .map_err(|e| anyhow::anyhow!("the proxy refuses this request: {e}"))?;
    let path = crate::proxy::route::canonical_path(&uri_path)
        .map_err(|e| anyhow::anyhow!("the proxy refuses this request: {e}"))?;
    let host = uri.host().map(str::to_ascii_lowercase);
    let rules: Vec<_> = config
        .upstreams
        .iter()
        .map(|u| {
            (
                crate::proxy::route::RouteRule {
                    path_prefix: u.path_prefix.clone(),
                    host: u.host.clone(),
                },
                u,
            )
        })
        .collect();
    let upstream =
        crate::proxy::route::select(rules.iter().map(|(r, u)| (r, *u)), host.as_deref(), &path)
            .context("no upstream serves this path (the proxy answers 404 no-route)")?;
    let set = load_source(&config.policy_source())?;
    let (mut request, mut response) = (read_json(request_body)?, read_json(body)?);
    // a write's `--body` is what it sends
    if request.is_none() && !matches!(method.as_str(), "GET" | "HEAD") {
        if let Some(route) = set.classify(upstream.dialect, &method, &path).operation() {
            if route.op() != policy::OpKind::Read {
                request = response.take();
            }
        }
    }
    let explanation = policy::explain(
        &set,
        purpose,
        &policy::ExplainRequest {
            dialect: upstream.dialect,
            method: &method,
            path: &path,
            query: uri.query(),
            upstream_ungoverned: &upstream.ungoverned,
            request_body: request.as_ref(),
            response_body: response.as_ref(),
        },
    )?;
    out!("{explanation}");
    Ok(ExitCode::SUCCESS)
}
