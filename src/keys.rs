//! Key lifecycle: `zweck keys rotate tls|audit|pseudonym`. The three kinds rotate on their own
//! because each rotation means something else:
//!
//! - **tls**: new leaf certificates and keys for the listener (and the CRM double), issued by
//!   the dev CA in `certs_dir`. Nothing else notices; a running Zweck picks them up when it
//!   reloads its certificates or restarts. With certificates from your own CA, replace the
//!   files named by `tls:` instead.
//! - **audit**: a new checkpoint signing key. The log is sealed first with the old key (a
//!   final checkpoint, delivered off-box; so Zweck must be stopped: the log's lock is taken),
//!   then the old public key goes into the key history beside `audit.pub` (`audit.keys`) with
//!   the range of tree sizes it signed, and the new key signs from the next entry on.
//!   `zweck audit verify --key audit.keys` verifies the log end to end across rotations.
//! - **pseudonym**: a new pseudonymisation master key with the next version. Every pseudonym
//!   changes (`pz1_...` becomes `pz2_...`): apps can no longer join new pseudonyms with stored
//!   ones. That is the point of rotating (unlinking), so it is never a side effect: it needs
//!   `--yes`, and the old key is kept as `<file>.v<version>` for the controller, who may
//!   need to link old pseudonyms (delete it when no one does).
//!
//! Every file is written atomically ([`crate::secrets::write_atomic`]).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::audit::keys::{KeyFileError, KeyRing};
use crate::audit::{AuditError, AuditLog};
use crate::certs::{self, CertsError, DevPaths};
use crate::config::Config;
use crate::secrets::{self, PseudonymSecret, SecretsError, PUBLIC_MODE, SECRET_MODE};

/// What can be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Tls,
    Audit,
    Pseudonym,
}

impl KeyKind {
    pub fn parse(s: &str) -> Option<KeyKind> {
        Some(match s {
            "tls" => KeyKind::Tls,
            "audit" => KeyKind::Audit,
            "pseudonym" => KeyKind::Pseudonym,
            _ => return None,
        })
    }
}

/// Why a key could not be rotated. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Secret(#[from] SecretsError),
    #[error(transparent)]
    Certs(#[from] CertsError),
    #[error("the config has no audit section: there is no audit signing key to rotate")]
    NoAudit,
    #[error("the transfer log could not be sealed with the old key: {0} (stop Zweck first: the rotation writes the log's final checkpoint)")]
    Seal(AuditError),
    #[error("key history {}: {reason}", path.display())]
    History { path: PathBuf, reason: String },
    #[error("no pseudonym key is configured (pseudonym_key_file, ZWECK_PSEUDONYM_KEY_FILE, or dev: true)")]
    NoPseudonymKey,
    #[error("rotating the pseudonym key changes every pseudonym (pz{from}_... becomes pz{to}_...): apps can no longer join new pseudonyms with ones they stored. Run again with --yes to do it")]
    NotConfirmed { from: u32, to: u32 },
    #[error("{} is not the dev CA's directory ({}: missing): with certificates from your own CA, replace the files tls.cert and tls.key name, then reload", dir.display(), missing.display())]
    NoDevCa { dir: PathBuf, missing: PathBuf },
}

/// The public key file beside a signing key (`audit.key` -> `audit.pub`).
pub fn audit_pub_path(signing_key: &Path) -> PathBuf {
    signing_key.with_extension("pub")
}

/// The key history beside a signing key (`audit.key` -> `audit.keys`).
pub fn audit_history_path(signing_key: &Path) -> PathBuf {
    signing_key.with_extension("keys")
}

/// Rotates one kind of key; returns what it did, one line each.
pub async fn rotate(config: &Config, kind: KeyKind, yes: bool) -> Result<Vec<String>, RotateError> {
    match kind {
        KeyKind::Tls => rotate_tls(config),
        KeyKind::Audit => rotate_audit(config).await,
        KeyKind::Pseudonym => rotate_pseudonym(config, yes),
    }
}

fn rotate_tls(config: &Config) -> Result<Vec<String>, RotateError> {
    let paths = DevPaths::new(&config.certs_dir);
    if !paths.ca_key().exists() {
        return Err(RotateError::NoDevCa {
            dir: config.certs_dir.clone(),
            missing: paths.ca_key(),
        });
    }
    let mut opts = crate::dev::generate_options(config);
    opts.renew_leaves = true;
    let report = certs::generate(&opts)?;
    let mut out: Vec<String> = report
        .created
        .iter()
        .map(|p| format!("renewed {}", p.display()))
        .collect();
    out.push("the CA, the audit signing key, the pseudonym key and API keys are unchanged; reload or restart Zweck to serve the new certificate".into());
    Ok(out)
}

async fn rotate_audit(config: &Config) -> Result<Vec<String>, RotateError> {
    let audit = config.audit.clone().ok_or(RotateError::NoAudit)?;
    let old = secrets::read_audit_key(&audit.signing_key)?;
    let old_pub: [u8; 32] =
        old.public_key_raw()
            .try_into()
            .map_err(|_| SecretsError::Malformed {
                path: audit.signing_key.clone(),
                reason: "expected an Ed25519 private key",
            })?;
    // Seal: the old key signs a checkpoint over every entry, delivered off-box.
    let log = AuditLog::open(audit.clone())
        .await
        .map_err(RotateError::Seal)?;
    let entries = log.stats().entries;
    let origin = log.origin().to_string();
    log.shutdown().await.map_err(RotateError::Seal)?;

    let history_path = audit_history_path(&audit.signing_key);
    let history_err = |reason: String| RotateError::History {
        path: history_path.clone(),
        reason,
    };
    let history = if history_path.exists() {
        KeyRing::read(&history_path).map_err(|e| match e {
            KeyFileError::Unreadable(e) => RotateError::Secret(e),
            other @ KeyFileError::BadLine { .. } => history_err(other.to_string()),
        })?
    } else {
        KeyRing::default()
    };
    if let Some(current) = history
        .keys
        .iter()
        .find(|k| k.last.is_none() && k.origin.as_deref() == Some(origin.as_str()))
    {
        if current.public_key != old_pub {
            return Err(history_err(format!(
                "its key in force for {origin} is not the key in {}",
                audit.signing_key.display()
            )));
        }
    }
    let new = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|_| {
        SecretsError::Malformed {
            path: audit.signing_key.clone(),
            reason: "could not generate an Ed25519 key",
        }
    })?;
    let new_pub: [u8; 32] =
        new.public_key_raw()
            .try_into()
            .map_err(|_| SecretsError::Malformed {
                path: audit.signing_key.clone(),
                reason: "could not generate an Ed25519 key",
            })?;
    let rotated = history.rotated(&origin, old_pub, entries, new_pub);
    // History first: were the key written first and the history lost, the old key's range
    // would be unknown; this way a crash leaves the new key in the history, not yet in use.
    secrets::write_atomic(&history_path, rotated.to_history().as_bytes(), PUBLIC_MODE)?;
    secrets::write_atomic(
        &audit.signing_key,
        new.serialize_pem().as_bytes(),
        SECRET_MODE,
    )?;
    let pub_path = audit_pub_path(&audit.signing_key);
    secrets::write_atomic(
        &pub_path,
        format!("{}\n", STANDARD.encode(new_pub)).as_bytes(),
        PUBLIC_MODE,
    )?;
    Ok(vec![
        format!(
            "sealed {} at {entries} entries with the old key (origin {origin})",
            audit.log.display()
        ),
        format!(
            "wrote {} (the old key signs tree sizes up to {entries}, the new one from {})",
            history_path.display(),
            entries + 1
        ),
        format!(
            "wrote {} and {}",
            audit.signing_key.display(),
            pub_path.display()
        ),
        format!(
            "verify across the rotation with: zweck audit verify {} --key {}",
            audit.log.display(),
            history_path.display()
        ),
    ])
}

fn rotate_pseudonym(config: &Config, yes: bool) -> Result<Vec<String>, RotateError> {
    let path = crate::preflight::pseudonym_key_source(config)
        .map(|(_, path)| path)
        .ok_or(RotateError::NoPseudonymKey)?;
    let old = secrets::read_pseudonym_key(&path)?;
    let next = old.version + 1;
    if !yes {
        return Err(RotateError::NotConfirmed {
            from: old.version,
            to: next,
        });
    }
    let mut retired = path.as_os_str().to_os_string();
    retired.push(format!(".v{}", old.version));
    let retired = PathBuf::from(retired);
    secrets::write_atomic(&retired, old.to_text().as_bytes(), SECRET_MODE)?;
    let new = PseudonymSecret {
        version: next,
        key: secrets::random_bytes()?,
    };
    secrets::write_atomic(&path, new.to_text().as_bytes(), SECRET_MODE)?;
    Ok(vec![
        format!("kept the old key (version {}) as {}: delete it once no one needs to link old pseudonyms", old.version, retired.display()),
        format!("wrote {} (version {next}): pseudonyms are now pz{next}_...; restart Zweck (or reload) to use it", path.display()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse() {
        assert_eq!(KeyKind::parse("tls"), Some(KeyKind::Tls));
        assert_eq!(KeyKind::parse("audit"), Some(KeyKind::Audit));
        assert_eq!(KeyKind::parse("pseudonym"), Some(KeyKind::Pseudonym));
        assert_eq!(KeyKind::parse("all"), None);
        assert_eq!(
            audit_history_path(Path::new("/c/audit.key")),
            Path::new("/c/audit.keys")
        );
    }
}
