//! Development mode (`dev: true`): key material made on first start, never committed.
//!
//! The shipped `zweck.yaml` runs the proxy in front of the CRM double with no cloud account.
//! What that needs (a dev CA, server and client certificates, API keys, the CRM double's
//! credentials) is generated per machine into `certs/` the first time, and kept afterwards;
//! a fixed secret in the repository would be a secret every clone shares. Without
//! `dev: true`, nothing is generated: a missing file is an error that names it.

use std::path::Path;

use crate::certs::{self, DevPaths, GenerateOptions, GenerateReport};
use crate::config::{ClientCertMatch, Config, KeyDigest};
use crate::secrets::{self, SecretsError, SECRET_MODE};

/// Why dev material could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Certs(#[from] certs::CertsError),
    #[error(transparent)]
    Secret(#[from] SecretsError),
}

/// The generate options a config implies: a client certificate for every app matched by
/// certificate, an API key for every app whose key hash lives at the dev path.
pub fn generate_options(config: &Config) -> GenerateOptions {
    let paths = DevPaths::new(&config.certs_dir);
    let mut opts = GenerateOptions::new(&config.certs_dir);
    for app in &config.apps {
        match &app.client_cert {
            Some(ClientCertMatch::San(name) | ClientCertMatch::Cn(name)) => {
                opts.client_apps.push(name.clone());
            }
            None => {}
        }
        let dev_hash = paths.api_key_sha256(&app.name);
        if app
            .api_keys
            .iter()
            .any(|k| matches!(&k.sha256, KeyDigest::File(p) if *p == dev_hash))
        {
            opts.api_key_apps.push(app.name.clone());
        }
    }
    opts
}

/// Makes whatever dev material is missing (first start), keeps the rest.
pub fn prepare(config: &Config) -> Result<GenerateReport, DevError> {
    let mut report = certs::generate(&generate_options(config))?;
    for (prefix, path) in tokens(config) {
        if path.exists() {
            report.kept.push(path.to_path_buf());
        } else {
            write_secret(path, &random_token(prefix)?)?;
            report.created.push(path.to_path_buf());
        }
    }
    Ok(report)
}

/// The tokens dev mode makes beside the certificates: the CRM double's credentials and the
/// admin token, with the prefix each random token gets.
fn tokens(config: &Config) -> Vec<(&'static str, &Path)> {
    let mut out = Vec::new();
    if let Some(double) = &config.crm_double {
        if let Some(f) = &double.bearer_file {
            out.push(("crm", f.as_path()));
        }
        if let Some((_, f)) = &double.oauth_client {
            out.push(("crm", f.as_path()));
        }
    }
    if let Some(f) = &config.admin_token_file {
        out.push(("admin", f.as_path()));
    }
    out
}

/// Whether [`prepare`] would make `path` if it were missing: with `dev: true`, everything
/// under `certs_dir` and the tokens above. `zweck config check` does not write files, so it
/// lets these be missing where `serve` would make them on its first start.
pub fn makes(config: &Config, path: &Path) -> bool {
    config.dev
        && (path.starts_with(&config.certs_dir) || tokens(config).iter().any(|(_, p)| *p == path))
}

fn random_token(prefix: &str) -> Result<String, SecretsError> {
    Ok(format!(
        "{prefix}_{}",
        hex::encode(secrets::random_bytes::<24>()?)
    ))
}

/// Written whole or not at all: a crash must not leave half a token that the next start
/// keeps (it only creates what is missing).
fn write_secret(path: &Path, value: &str) -> Result<(), SecretsError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        secrets::ensure_private_dir(dir)?;
    }
    secrets::write_atomic(path, format!("{value}\n").as_bytes(), SECRET_MODE)
}
