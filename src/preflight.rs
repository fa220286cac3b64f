//! Everything `serve` checks before it listens, as one function.
//!
//! `serve` calls [`prepare`] before it binds an address, `zweck config check` calls it and
//! prints what it found, and every reload calls it before it swaps anything in: there is no
//! second list of checks that could pass a config the others refuse. It reads every file the
//! config names (certificates, keys, tokens, API key digests, the policies), checks that
//! secrets are not open to every user of the machine, builds the TLS config and the upstream
//! clients, compiles the policies and checks them against the config (every granted purpose
//! defined, a pseudonym key for purposes that pseudonymise). Every problem is collected, each
//! at the line of the key that names the file, so one run shows all of them.
//!
//! What it leaves to `serve` is what cannot be done beside a running instance without
//! disturbing it: binding the addresses, taking the transfer log's writer lock (and
//! recovering its tail), connecting to Redis.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::caller::Identities;
use crate::certs::DevPaths;
use crate::config::{Config, KeyDigest, SecretSource, UpstreamAuth};
use crate::diagnostic::{chain, Diagnostic};
use crate::metrics::PoolGauges;
use crate::policy::{Action, PolicySet, PseudonymKey};
use crate::secrets;
use crate::state::{Live, UpstreamEntry, WatchedCert};
use crate::tls;
use crate::upstream::UpstreamSetupError;

/// The environment variable naming the pseudonymisation master key file.
pub const PSEUDONYM_KEY_ENV: &str = "ZWECK_PSEUDONYM_KEY_FILE";

/// Where the pseudonym master key is read from, and the setting that names it:
/// `ZWECK_PSEUDONYM_KEY_FILE`, else `pseudonym_key_file`, else in dev mode the generated one
/// (`zweck keys rotate pseudonym` rotates the same file).
pub fn pseudonym_key_source(config: &Config) -> Option<(&'static str, PathBuf)> {
    match std::env::var_os(PSEUDONYM_KEY_ENV) {
        Some(p) => Some((PSEUDONYM_KEY_ENV, PathBuf::from(p))),
        None => match &config.pseudonym_key_file {
            Some(p) => Some(("pseudonym_key_file", p.clone())),
            None if config.dev => Some((
                "certs_dir",
                DevPaths::new(&config.certs_dir).pseudonym_key(),
            )),
            None => None,
        },
    }
}

/// The shortest admin token accepted (`openssl rand -hex 32` makes 64 characters).
const MIN_ADMIN_TOKEN: usize = 32;

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serve` and reloads: every file must be there.
    Serve,
    /// `zweck config check`: with `dev: true`, files that `serve` would make on its first
    /// start may be missing.
    Check,
}

/// What passed.
#[derive(Debug)]
pub struct Prepared {
    /// The parts a reload swaps; `None` only in [`Mode::Check`] when development files are
    /// still to be made (everything else was checked).
    pub live: Option<Live>,
    pub warnings: Vec<Diagnostic>,
}

/// Runs every check and builds the live parts; every problem on failure.
pub fn prepare(
    mut config: Config,
    mode: Mode,
    pools: &PoolGauges,
) -> Result<Prepared, Vec<Diagnostic>> {
    let mut c = Checker {
        mode,
        errors: Vec::new(),
        pending: false,
        certificates: Vec::new(),
    };
    let tls = c.server_tls(&config);
    let admin_token = c.admin_token(&config);
    c.api_keys(&mut config);
    let (pseudonym_key, key_configured) = c.pseudonym_key(&config);
    let upstreams = c.upstreams(&config, pools);
    c.crm_double(&config);
    c.audit(&config);
    let (policy, warnings) = c.policies(&config);
    if let Some(set) = &policy {
        // a configured key that failed to read has its own error already
        c.errors.extend(cross_check(&config, set, key_configured));
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let (Some(tls), Some(policy), Some(upstreams), false) = (tls, policy, upstreams, c.pending)
    else {
        return Ok(Prepared {
            live: None,
            warnings,
        });
    };
    let live = Live {
        identities: Arc::new(Identities::new(&config)),
        config: Arc::new(config),
        upstreams,
        policy: Arc::new(policy),
        pseudonym_key,
        tls,
        admin_token,
        certificates: c.certificates,
    };
    Ok(Prepared {
        live: Some(live),
        warnings,
    })
}

/// What the policies must hold for this config: every purpose an app is granted, and a
/// pseudonym key when a purpose pseudonymises. `serve` refuses a set that fails this, and so
/// does every reload, policy-only ones included.
pub fn cross_check(config: &Config, set: &PolicySet, has_pseudonym_key: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for app in &config.apps {
        for purpose in &app.purposes {
            if set.purpose(purpose).is_none() {
                out.push(config.diagnostic(
                    &format!("apps.{}", app.name),
                    format!(
                        "app {} is granted purpose {purpose:?}, which the policies in {} do not define",
                        app.name,
                        config.policies.display()
                    ),
                ));
            }
        }
    }
    if !has_pseudonym_key {
        if let Some(p) = set
            .purposes()
            .iter()
            .find(|p| p.rules.iter().any(|r| r.action == Action::Pseudonymise))
        {
            out.push(config.diagnostic(
                "pseudonym_key_file",
                format!(
                    "purpose {} pseudonymises, but no pseudonym key is configured: set pseudonym_key_file or {PSEUDONYM_KEY_ENV} to a file holding 64 hex characters (`zweck certs generate` makes one)",
                    p.name
                ),
            ));
        }
    }
    out
}

struct Checker {
    mode: Mode,
    errors: Vec<Diagnostic>,
    /// A file dev mode would make is missing (check mode only).
    pending: bool,
    certificates: Vec<WatchedCert>,
}

impl Checker {
    fn error(&mut self, config: &Config, key: &str, message: impl std::fmt::Display) {
        self.errors.push(config.diagnostic(key, message));
    }

    /// Whether `path` is a file to read. A missing one is an error, unless `zweck config
    /// check` looks at a dev config that `serve` would make it for.
    fn present(&mut self, config: &Config, key: &str, path: &Path) -> bool {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => true,
            Ok(_) => {
                self.error(config, key, format!("{} is not a file", path.display()));
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.mode == Mode::Check && crate::dev::makes(config, path) {
                    self.pending = true;
                } else {
                    let hint = if config.dev {
                        ""
                    } else {
                        " (with dev: true, serve makes development files; in production provide it)"
                    };
                    self.error(config, key, format!("{} is missing{hint}", path.display()));
                }
                false
            }
            Err(e) => {
                self.error(config, key, format!("cannot read {}: {e}", path.display()));
                false
            }
        }
    }

    /// [`Self::present`], and not open to every user of the machine.
    fn secret(&mut self, config: &Config, key: &str, path: &Path) -> bool {
        if !self.present(config, key, path) {
            return false;
        }
        match secrets::check_private(path) {
            Ok(()) => true,
            Err(e) => {
                self.error(config, key, chain(&e));
                false
            }
        }
    }

    fn watch(&mut self, source: &str, file: &Path, certs: &[rustls_pki_types::CertificateDer]) {
        for expiry in tls::expiries(certs) {
            self.certificates.push(WatchedCert {
                source: source.to_string(),
                file: file.to_path_buf(),
                expiry,
            });
        }
    }

    /// The listener's certificate, key and client CA, each checked on its own line.
    fn server_tls(&mut self, config: &Config) -> Option<Arc<rustls::ServerConfig>> {
        let files = &config.tls;
        let mut ok = true;
        let certs = if self.present(config, "tls.cert", &files.cert) {
            match tls::load_certs(&files.cert) {
                Ok(certs) => {
                    self.watch("tls.cert", &files.cert, &certs[..1]);
                    Some(certs)
                }
                Err(e) => {
                    self.error(config, "tls.cert", chain(&e));
                    None
                }
            }
        } else {
            None
        };
        let key = if self.secret(config, "tls.key", &files.key) {
            tls::load_key(&files.key)
                .map_err(|e| self.error(config, "tls.key", chain(&e)))
                .ok()
        } else {
            None
        };
        let client_ca = match &files.client_ca {
            None => None,
            Some(ca) if self.present(config, "tls.client_ca", ca) => {
                match tls::load_certs(ca).and_then(|certs| {
                    self.watch("tls.client_ca", ca, &certs);
                    tls::roots_from(ca)
                }) {
                    Ok(roots) => Some(roots),
                    Err(e) => {
                        self.error(config, "tls.client_ca", chain(&e));
                        ok = false;
                        None
                    }
                }
            }
            Some(_) => {
                ok = false;
                None
            }
        };
        let (certs, key) = (certs?, key?);
        if !ok {
            return None;
        }
        tls::server_config_from(certs, key, client_ca)
            .map_err(|e| self.error(config, "tls.key", chain(&e)))
            .ok()
    }

    fn admin_token(&mut self, config: &Config) -> Option<Arc<str>> {
        let path = config.admin_token_file.as_deref()?;
        if !self.secret(config, "admin_token_file", path) {
            return None;
        }
        match secrets::read_token(path) {
            Ok(t) if t.len() >= MIN_ADMIN_TOKEN => Some(Arc::from(t)),
            Ok(_) => {
                self.error(
                    config,
                    "admin_token_file",
                    format!(
                        "{} holds fewer than {MIN_ADMIN_TOKEN} characters: make one with `openssl rand -hex 32`",
                        path.display()
                    ),
                );
                None
            }
            Err(e) => {
                self.error(config, "admin_token_file", chain(&e));
                None
            }
        }
    }

    /// Reads every `sha256_file` of an API key into the config.
    fn api_keys(&mut self, config: &mut Config) {
        let mut resolved = Vec::new();
        for (a, app) in config.apps.iter().enumerate() {
            for (k, key) in app.api_keys.iter().enumerate() {
                let KeyDigest::File(path) = &key.sha256 else {
                    continue;
                };
                let at = format!("apps.{}.api_keys[{k}]", app.name);
                if !self.present(config, &at, path) {
                    continue;
                }
                match secrets::read_api_key_sha256(path) {
                    Ok(d) => resolved.push((a, k, d)),
                    Err(e) => self.error(config, &at, chain(&e)),
                }
            }
        }
        for (a, k, d) in resolved {
            config.apps[a].api_keys[k].sha256 = KeyDigest::Inline(d);
        }
    }

    /// The key of [`pseudonym_key_source`], its version prefixing every pseudonym; and
    /// whether one is configured at all (read or not).
    fn pseudonym_key(&mut self, config: &Config) -> (Option<PseudonymKey>, bool) {
        let Some((key, path)) = pseudonym_key_source(config) else {
            return (None, false);
        };
        if !self.secret(config, key, &path) {
            return (None, true);
        }
        match secrets::read_pseudonym_key(&path) {
            Ok(k) => (Some(PseudonymKey::with_version(&k.key, k.version)), true),
            Err(e) => {
                self.error(config, key, chain(&e));
                (None, true)
            }
        }
    }

    /// Every upstream's client and credential; `None` when one failed.
    fn upstreams(
        &mut self,
        config: &Config,
        pools: &PoolGauges,
    ) -> Option<Vec<Arc<UpstreamEntry>>> {
        let mut out = Vec::new();
        let before = self.errors.len();
        for u in &config.upstreams {
            let at = |what: &str| format!("upstreams.{}.{what}", u.name);
            let mut ready = true;
            if let Some(ca) = &u.ca {
                ready &= self.present(config, &at("ca"), ca);
                if let Ok(certs) = tls::load_certs(ca) {
                    self.watch(&at("ca"), ca, &certs);
                }
            }
            let secret_file = match &u.auth {
                Some(UpstreamAuth::BearerFile(p)) => Some(p),
                Some(UpstreamAuth::OAuth2ClientCredentials {
                    secret: SecretSource::File(p),
                    ..
                }) => Some(p),
                _ => None,
            };
            if let Some(p) = secret_file {
                ready &= self.secret(config, &at("auth"), p);
            }
            if !ready {
                continue;
            }
            match UpstreamEntry::new(u.clone(), &config.public_url, pools) {
                Ok(entry) => out.push(Arc::new(entry)),
                Err(UpstreamSetupError::Tls { source, .. }) => {
                    self.error(config, &at("ca"), chain(&source));
                }
                Err(UpstreamSetupError::CredentialFile { source, .. }) => {
                    self.error(config, &at("auth"), chain(&source));
                }
                Err(UpstreamSetupError::Pool { source, .. }) => {
                    self.error(config, &at("url"), chain(&source));
                }
                Err(UpstreamSetupError::Credential { what, reason, .. }) => {
                    self.error(
                        config,
                        &at("auth"),
                        format!("cannot read the credential from {what}: {reason}"),
                    );
                }
            }
        }
        (self.errors.len() == before && out.len() == config.upstreams.len()).then_some(out)
    }

    /// The embedded CRM double's certificate and credentials.
    fn crm_double(&mut self, config: &Config) {
        let Some(double) = &config.crm_double else {
            return;
        };
        let paths = DevPaths::new(&config.certs_dir);
        let (cert, key) = (paths.crm_double_cert(), paths.crm_double_key());
        if self.present(config, "crm_double", &cert) && self.secret(config, "crm_double", &key) {
            if let Err(e) = tls::simple_server_config(&cert, &key) {
                self.error(config, "crm_double", chain(&e));
            }
        }
        let mut tokens = Vec::new();
        if let Some(f) = &double.bearer_file {
            tokens.push(("crm_double.bearer_file", f));
        }
        if let Some((_, f)) = &double.oauth_client {
            tokens.push(("crm_double.oauth_secret_file", f));
        }
        for (key, path) in tokens {
            if self.secret(config, key, path) {
                if let Err(e) = secrets::read_token(path) {
                    self.error(config, key, chain(&e));
                }
            }
        }
    }

    /// The transfer log's signing key (the log itself is opened by `serve`).
    fn audit(&mut self, config: &Config) {
        let Some(audit) = &config.audit else {
            return;
        };
        let key = "audit.signing_key";
        if self.secret(config, key, &audit.signing_key) {
            if let Err(e) = secrets::read_audit_key(&audit.signing_key) {
                self.error(config, key, chain(&e));
            }
        }
    }

    /// The policies in force, loaded as `serve` loads them: a directory, or a bundle whose
    /// signature is verified against `policies.trusted_keys`; and the candidate directory,
    /// which must compile too (it is loaded at start beside the set in force).
    fn policies(&mut self, config: &Config) -> (Option<PolicySet>, Vec<Diagnostic>) {
        let (exists, what) = match config.policy_trust {
            None => (config.policies.is_dir(), "a directory"),
            Some(_) => (config.policies.is_file(), "a file (policies.bundle)"),
        };
        if !exists {
            self.error(
                config,
                "policies",
                format!("{} is not {what}", config.policies.display()),
            );
            return (None, Vec::new());
        }
        if let Some(candidate) = &config.policy_candidate {
            if !candidate.is_dir() {
                self.error(
                    config,
                    "policies",
                    format!(
                        "policies.candidate: {} is not a directory",
                        candidate.display()
                    ),
                );
            } else if let Err(diagnostics) = PolicySet::load(candidate) {
                self.errors.extend(diagnostics);
            }
        }
        match config.policy_source().load() {
            Ok((set, warnings)) => (Some(set), warnings),
            Err(diagnostics) => {
                self.errors.extend(diagnostics);
                (None, Vec::new())
            }
        }
    }
}
