//! Key and secret files: the one place that reads them and the one place that writes them.
//!
//! Production reads these files on every start (the pseudonymisation key, the audit signing
//! key, API key digests, upstream and CRM-double tokens); development also writes them
//! ([`crate::certs`], [`crate::dev`]). Keeping both halves here keeps the rules in one place:
//!
//! - Errors name the file and the reason, never the content: a key that fails to parse must
//!   not end up in a log line (parsers' own messages may quote their input, so they are
//!   replaced by a fixed reason).
//! - Files are written to a temporary file in the same directory, created with its final mode
//!   by `open(2)` itself (never chmod-ed afterwards, so a key is never readable by others for
//!   a moment), synced and renamed into place: a crash leaves the old file or the whole new
//!   one, never half a key that a later run would keep.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rcgen::KeyPair;
use sha2::{Digest, Sha256};

/// Mode of private keys, API keys, tokens and the pseudonymisation key.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of certificates, public keys and hashes: nothing secret in them.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of directories holding secrets.
const DIR_MODE: u32 = 0o700;

/// Why a key or secret file could not be read or written. Messages name the file and the
/// reason, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot {action} {}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{} is not usable: {reason}", path.display())]
    Malformed { path: PathBuf, reason: &'static str },
    #[error("{} is open to every user of the machine (mode {mode:04o}): `chmod 600` it, or 640 with a group only Zweck's user is in", path.display())]
    Exposed { path: PathBuf, mode: u32 },
    // getrandom is built without `std` here, so its error is no `std::error::Error` source.
    #[error("the operating system's random number generator failed: {cause}")]
    Random { cause: getrandom::Error },
}

/// Lowercase hex SHA-256 of `bytes`, the form of an API key digest file (`<app>.sha256`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuses a secret file that every user of the machine may read or write (the "others"
/// bits of its mode), as OpenSSH does for private keys: a key anyone can read is no longer
/// Zweck's alone. Group access is allowed, so a package can give the file to root and
/// Zweck's group (0640).
pub fn check_private(path: &Path) -> Result<(), SecretsError> {
    let meta = fs::metadata(path).map_err(|source| io_error(path, "read", source))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o006 != 0 {
        return Err(SecretsError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Reads an API key digest file: 64 hex characters, surrounding whitespace ignored.
pub fn read_api_key_sha256(path: &Path) -> Result<[u8; 32], SecretsError> {
    read_hex_32(path, "expected 64 hex characters (a SHA-256)")
}

/// Reads an API key file (`<app>.key`): the key without its trailing newline. The digest file
/// is the SHA-256 of exactly these bytes.
pub fn read_api_key(path: &Path) -> Result<String, SecretsError> {
    let text = read_text(path)?;
    let key = text.trim();
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(malformed(path, "expected one API key on one line"));
    }
    Ok(key.to_owned())
}

/// Reads a token or client secret file (a bearer token, an OAuth2 client secret):
/// surrounding whitespace is ignored and an empty file is an error, so a token that was
/// never filled in stops the start instead of sending `Bearer ` upstream.
pub fn read_token(path: &Path) -> Result<String, SecretsError> {
    let text = read_text(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(malformed(path, "it is empty"));
    }
    Ok(token.to_owned())
}

/// Reads `audit.pub`: the raw 32-byte Ed25519 public key, base64 on one line.
pub fn read_audit_pub(path: &Path) -> Result<[u8; 32], SecretsError> {
    const REASON: &str = "expected base64 of a 32-byte Ed25519 public key";
    let text = read_text(path)?;
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| malformed(path, REASON))?;
    bytes.try_into().map_err(|_| malformed(path, REASON))
}

/// Reads `audit.key`: an Ed25519 private key (PKCS#8 PEM) that signs transfer-log checkpoints;
/// its `public_key_raw()` is what `audit.pub` holds.
pub fn read_audit_key(path: &Path) -> Result<KeyPair, SecretsError> {
    let key = read_key_pair(path)?;
    if key.algorithm() != &rcgen::PKCS_ED25519 {
        return Err(malformed(path, "expected an Ed25519 private key"));
    }
    Ok(key)
}

/// A pseudonymisation master key and its version (the `N` of `pzN_` in every pseudonym).
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymSecret {
    pub version: u32,
    pub key: [u8; 32],
}

impl std::fmt::Debug for PseudonymSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PseudonymSecret")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl PseudonymSecret {
    /// The file's text: `v<version>:<64 hex>` (version 1 is written as bare hex, the form
    /// every earlier key file has).
    pub fn to_text(&self) -> String {
        if self.version == 1 {
            format!("{}\n", hex::encode(self.key))
        } else {
            format!("v{}:{}\n", self.version, hex::encode(self.key))
        }
    }
}

/// Reads the pseudonymisation master key: 64 hex characters (version 1), or
/// `v<version>:<64 hex>` as `zweck keys rotate pseudonym` writes it.
pub fn read_pseudonym_key(path: &Path) -> Result<PseudonymSecret, SecretsError> {
    const REASON: &str = "expected 64 hex characters (32 bytes), or v<version>:<64 hex characters>";
    let text = read_text(path)?;
    let text = text.trim();
    let (version, hex_key) = match text.split_once(':') {
        Some((v, k)) => {
            let version = v
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| malformed(path, REASON))?;
            (version, k)
        }
        None => (1, text),
    };
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut key).map_err(|_| malformed(path, REASON))?;
    Ok(PseudonymSecret { version, key })
}

/// Reads a PKCS#8 PEM private key of any algorithm rcgen knows.
pub(crate) fn read_key_pair(path: &Path) -> Result<KeyPair, SecretsError> {
    let pem = read_text(path)?;
    // rcgen's parse errors may quote the PEM framing; report only that the key is unusable.
    KeyPair::from_pem(&pem).map_err(|_| malformed(path, "expected a PKCS#8 PEM private key"))
}

/// The file's bytes, or `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SecretsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(path, "read", source)),
    }
}

fn read_hex_32(path: &Path, reason: &'static str) -> Result<[u8; 32], SecretsError> {
    let text = read_text(path)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| malformed(path, reason))?;
    Ok(out)
}

pub(crate) fn read_text(path: &Path) -> Result<String, SecretsError> {
    let bytes = fs::read(path).map_err(|source| io_error(path, "read", source))?;
    String::from_utf8(bytes).map_err(|_| malformed(path, "expected UTF-8 text"))
}

/// Creates `dir` (and its parents) with mode 0700 if it is missing.
pub fn ensure_private_dir(dir: &Path) -> Result<(), SecretsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| io_error(dir, "create directory", source))
}

/// Writes `contents` to a temporary file beside `path` created with `mode`, then renames it over
/// `path`: readers see the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), SecretsError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io_error(
            path,
            "write",
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        ));
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        hex::encode(random_bytes::<6>()?)
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = written {
        // Best effort: the temporary file may not exist if opening it failed.
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path, "write", source));
    }
    // Make the rename itself durable; failing to is no reason to fail the write.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// `N` bytes from the operating system's random number generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], SecretsError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|cause| SecretsError::Random { cause })?;
    Ok(bytes)
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> SecretsError {
    SecretsError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// A file that exists but cannot be used, for `reason` (never its content).
pub(crate) fn malformed(path: &Path, reason: &'static str) -> SecretsError {
    SecretsError::Malformed {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn malformed_hash_files_are_rejected_without_quoting_them() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("app.sha256");
        fs::write(&path, "zk_this-is-a-key-not-a-hash\n").unwrap();
        let err = read_api_key_sha256(&path).unwrap_err();
        assert!(err.to_string().contains("app.sha256"), "{err}");
        assert!(!err.to_string().contains("zk_"), "{err}");
        let missing = read_api_key_sha256(&tmp.path().join("missing.sha256")).unwrap_err();
        assert!(matches!(missing, SecretsError::Io { .. }), "{missing:?}");
    }

    #[test]
    fn secrets_open_to_others_are_refused_and_group_access_is_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.key");
        fs::write(&path, "x").unwrap();
        for (mode, ok) in [(0o600, true), (0o640, true), (0o644, false), (0o602, false)] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let r = check_private(&path);
            assert_eq!(r.is_ok(), ok, "{mode:o}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().contains(&format!("{mode:04o}")), "{e}");
                assert!(e.to_string().contains("audit.key"), "{e}");
            }
        }
        assert!(matches!(
            check_private(&tmp.path().join("missing")),
            Err(SecretsError::Io { .. })
        ));
    }

    #[test]
    fn tokens_are_trimmed_and_an_empty_one_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upstream.token");
        fs::write(&path, "  tok-Fict0001\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "tok-Fict0001");
        fs::write(&path, "\n \n").unwrap();
        let err = read_token(&path).unwrap_err();
        assert!(matches!(err, SecretsError::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains("upstream.token"), "{err}");
        let err = read_token(&tmp.path().join("missing")).unwrap_err();
        assert!(matches!(err, SecretsError::Io { .. }), "{err:?}");
    }

    #[test]
    fn unparsable_keys_are_named_but_never_quoted() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.key");
        fs::write(&path, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNhdWNl\n").unwrap();
        let err = read_audit_key(&path).unwrap_err();
        assert!(err.to_string().contains("audit.key"), "{err}");
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        fs::write(&path, [0xff, 0xfe, b's']).unwrap();
        let err = read_pseudonym_key(&path).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        fs::write(&path, p256.serialize_pem()).unwrap();
        let err = read_audit_key(&path).unwrap_err();
        assert!(err.to_string().contains("Ed25519"), "{err}");
    }

    #[test]
    fn atomic_writes_replace_whole_files_with_the_mode_given_and_leave_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            DIR_MODE
        );
        let path = dir.join("pseudonym.key");
        write_atomic(&path, b"first\n", SECRET_MODE).unwrap();
        write_atomic(&path, b"second\n", SECRET_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SECRET_MODE);
        let names: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let err = write_atomic(&tmp.path().join("missing/dir/x"), b"x", SECRET_MODE).unwrap_err();
        assert!(matches!(err, SecretsError::Io { .. }), "{err:?}");
    }
}
