//! Signed policy bundles: a policy directory as one tar archive with a detached Ed25519
//! signature, so production loads only policies a trusted key approved.
//!
//! `zweck policy bundle` writes the archive and its `.sig`; `serve` with `policies: { bundle,
//! trusted_keys }` verifies both on start and on every reload and keeps the last good set when
//! a bundle is unsigned, signed wrongly or by a key it does not trust. The transfer log names
//! the bundle's label and signer beside the policy version of every entry.
//!
//! Format (docs/policy.md, "Signed bundles"):
//!
//! - the archive is a POSIX tar; its first entry is `zweck-bundle.json`
//!   (`{"format": "zweck-policy-bundle-1", "label", "policy_version", "files"}`), then every
//!   file of the policy directory under `policies/`, sorted by path, with mode 0644, mtime 0
//!   and owner 0, so the same directory always makes the same bytes;
//! - the signature file has three lines: `zweck-policy-bundle-signature-1`, `key <base64 of
//!   the 32-byte Ed25519 public key>`, `signature <base64 of the 64-byte signature>`; the
//!   signature is over the bytes `zweck-policy-bundle-1\n` followed by the whole archive;
//! - a signer is named by its key id: the first 8 bytes of SHA-256 over the public key, hex.
//!
//! The policy version of a bundle is the version of the directory it was made from (the same
//! hash over the same files), so `Zweck-Policy` does not change when a team starts bundling.

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::compile::{version_of, Source};

/// The name of the manifest entry.
pub const MANIFEST: &str = "zweck-bundle.json";
const FORMAT: &str = "zweck-policy-bundle-1";
const SIGNATURE_HEADER: &str = "zweck-policy-bundle-signature-1";
/// What is signed: this, then the archive.
const DOMAIN: &[u8] = b"zweck-policy-bundle-1\n";
/// The policy files live under this directory in the archive.
const PREFIX: &str = "policies/";
/// Bounds on what a bundle may hold (a policy directory is a few files of YAML).
const MAX_FILES: usize = 10_000;
const MAX_BYTES: u64 = 64 << 20;

/// Why a bundle was refused. Messages name files and keys, never policy content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle has no signature file ({0})")]
    Unsigned(String),
    #[error("the signature file is malformed: {0}")]
    BadSignatureFile(&'static str),
    #[error("the bundle is signed by key {0}, which is not among trusted_keys")]
    UntrustedSigner(String),
    #[error("the signature does not match the bundle (signed by key {0}): it was altered or signed by someone else")]
    BadSignature(String),
    #[error("the archive is malformed: {0}")]
    Malformed(String),
    #[error("the manifest says policy version {manifest}, the files hash to {files}")]
    VersionMismatch { manifest: String, files: String },
    #[error("no trusted key is configured: a bundle must be verified")]
    NoTrustedKeys,
}

/// What a verified bundle says about itself: what the transfer log records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The label given when it was made (a release name, a git commit).
    pub label: String,
    /// The key id of the key that signed it.
    pub signer: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    label: String,
    policy_version: String,
    files: usize,
}

/// The key id of a public key: SHA-256 over its 32 bytes, first 8 bytes, hex.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

/// The archive of a policy directory's files (as `compile::read_dir` reads them).
pub fn build(sources: &[Source], label: &str) -> Result<Vec<u8>, BundleError> {
    let mut sorted: Vec<&Source> = sources.iter().collect();
    sorted.sort_by(|a, b| a.rel.cmp(&b.rel));
    let manifest = Manifest {
        format: FORMAT.to_string(),
        label: label.to_string(),
        policy_version: version_of(sources),
        files: sorted.len(),
    };
    let manifest =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut append = |path: &str, bytes: &[u8]| -> Result<(), BundleError> {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(path)
            .map_err(|e| BundleError::Malformed(format!("{path}: {e}")))?;
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append(&header, bytes)
            .map_err(|e| BundleError::Malformed(e.to_string()))
    };
    append(MANIFEST, &manifest)?;
    for s in sorted {
        append(&format!("{PREFIX}{}", s.rel), &s.bytes)?;
    }
    builder
        .into_inner()
        .map_err(|e| BundleError::Malformed(e.to_string()))
}

/// The signature file's text for an archive.
pub fn sign(archive: &[u8], key: &Ed25519KeyPair) -> String {
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(archive);
    let signature = key.sign(&message);
    format!(
        "{SIGNATURE_HEADER}\nkey {}\nsignature {}\n",
        STANDARD.encode(key.public_key().as_ref()),
        STANDARD.encode(signature.as_ref())
    )
}

/// Verifies an archive against its signature file and the trusted keys, then unpacks it:
/// the policy files (relative paths, as read from a directory) and the bundle's provenance.
pub fn open(
    archive: &[u8],
    signature: Option<&str>,
    trusted: &[[u8; 32]],
    name: &str,
) -> Result<(Vec<Source>, Provenance), BundleError> {
    if trusted.is_empty() {
        return Err(BundleError::NoTrustedKeys);
    }
    let signature = signature.ok_or_else(|| BundleError::Unsigned(format!("{name}.sig")))?;
    let (key, sig) = parse_signature(signature)?;
    let signer = key_id(&key);
    if !trusted.contains(&key) {
        return Err(BundleError::UntrustedSigner(signer));
    }
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(archive);
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&message, &sig)
        .map_err(|_| BundleError::BadSignature(signer.clone()))?;
    let (manifest, sources) = unpack(archive, name)?;
    let files = version_of(&sources);
    if manifest.policy_version != files || manifest.format != FORMAT {
        return Err(BundleError::VersionMismatch {
            manifest: manifest.policy_version,
            files,
        });
    }
    Ok((
        sources,
        Provenance {
            label: manifest.label,
            signer,
        },
    ))
}

fn parse_signature(text: &str) -> Result<([u8; 32], Vec<u8>), BundleError> {
    let bad = BundleError::BadSignatureFile;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(SIGNATURE_HEADER) {
        return Err(bad("the first line is not zweck-policy-bundle-signature-1"));
    }
    let field = |line: Option<&str>, name: &str| -> Option<Vec<u8>> {
        let rest = line?.strip_prefix(name)?.strip_prefix(' ')?;
        STANDARD.decode(rest.trim()).ok()
    };
    let key: [u8; 32] = field(lines.next(), "key")
        .and_then(|k| k.try_into().ok())
        .ok_or(bad(
            "expected `key <base64 of a 32-byte Ed25519 public key>`",
        ))?;
    let sig = field(lines.next(), "signature")
        .filter(|s| s.len() == 64)
        .ok_or(bad(
            "expected `signature <base64 of a 64-byte Ed25519 signature>`",
        ))?;
    Ok((key, sig))
}

/// The manifest and the policy files of an archive. Only regular files under `policies/`
/// with plain relative paths are accepted.
fn unpack(archive: &[u8], name: &str) -> Result<(Manifest, Vec<Source>), BundleError> {
    let bad = |m: String| BundleError::Malformed(m);
    let mut tar = tar::Archive::new(archive);
    let mut manifest = None;
    let mut sources = Vec::new();
    let mut total = 0u64;
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(format!("{path} is not a regular file")));
        }
        let size = entry.header().size().map_err(|e| bad(e.to_string()))?;
        total = total.saturating_add(size);
        if total > MAX_BYTES || sources.len() >= MAX_FILES {
            return Err(bad("the bundle is larger than 64 MiB or 10000 files".into()));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(e.to_string()))?;
        if path == MANIFEST && manifest.is_none() {
            manifest = Some(
                serde_json::from_slice::<Manifest>(&bytes)
                    .map_err(|_| bad("the manifest is not a bundle manifest".into()))?,
            );
            continue;
        }
        let Some(rel) = path.strip_prefix(PREFIX) else {
            return Err(bad(format!("{path} is outside policies/")));
        };
        if rel.is_empty()
            || rel
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad(format!("{path} is not a plain relative path")));
        }
        if sources.iter().any(|s: &Source| s.rel == rel) {
            return Err(bad(format!("{path} appears twice")));
        }
        sources.push(Source {
            rel: rel.to_string(),
            display: format!("{name}:{rel}").into(),
            bytes,
        });
    }
    let manifest = manifest.ok_or_else(|| bad(format!("no {MANIFEST}")))?;
    if manifest.files != sources.len() {
        return Err(bad(format!(
            "the manifest lists {} files, the archive holds {}",
            manifest.files,
            sources.len()
        )));
    }
    sources.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((manifest, sources))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn key() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("key")
    }

    fn public(k: &Ed25519KeyPair) -> [u8; 32] {
        k.public_key().as_ref().try_into().expect("32 bytes")
    }

    fn sources() -> Vec<Source> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        super::super::compile::read_dir(&dir).expect("shipped")
    }

    #[test]
    fn a_signed_bundle_opens_with_the_directory_s_version() {
        let (k, src) = (key(), sources());
        let archive = build(&src, "release-7").expect("build");
        assert_eq!(
            archive,
            build(&src, "release-7").expect("again"),
            "deterministic"
        );
        let sig = sign(&archive, &k);
        let (files, prov) = open(&archive, Some(&sig), &[public(&k)], "b.tar").expect("opens");
        assert_eq!(version_of(&files), version_of(&src));
        assert_eq!(files.len(), src.len());
        assert_eq!(prov.label, "release-7");
        assert_eq!(prov.signer, key_id(&public(&k)));
        assert_eq!(prov.signer.len(), 16);
    }

    #[test]
    fn unsigned_altered_and_untrusted_bundles_are_refused() {
        let (k, other, src) = (key(), key(), sources());
        let archive = build(&src, "x").expect("build");
        let sig = sign(&archive, &k);
        let trusted = [public(&k)];
        assert!(matches!(
            open(&archive, None, &trusted, "b"),
            Err(BundleError::Unsigned(_))
        ));
        assert!(matches!(
            open(&archive, Some(&sig), &[], "b"),
            Err(BundleError::NoTrustedKeys)
        ));
        let by_other = sign(&archive, &other);
        assert!(matches!(
            open(&archive, Some(&by_other), &trusted, "b"),
            Err(BundleError::UntrustedSigner(_))
        ));
        // one byte of a policy file changed after signing
        let mut altered = archive.clone();
        let at = altered
            .windows(8)
            .position(|w| w == b"purposes")
            .expect("a file name")
            + 2048;
        altered[at] ^= 1;
        assert!(matches!(
            open(&altered, Some(&sig), &trusted, "b"),
            Err(BundleError::BadSignature(_))
        ));
        // a signature of another key pasted in with the trusted key's id line
        let forged = sig.replace(
            sig.lines().nth(2).expect("sig line"),
            by_other.lines().nth(2).expect("sig line"),
        );
        assert!(matches!(
            open(&archive, Some(&forged), &trusted, "b"),
            Err(BundleError::BadSignature(_))
        ));
        assert!(matches!(
            open(&archive, Some("nonsense"), &trusted, "b"),
            Err(BundleError::BadSignatureFile(_))
        ));
    }

    #[test]
    fn a_signed_archive_with_paths_outside_the_policies_is_refused() {
        let k = key();
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in [
            (MANIFEST, &br#"{"format":"zweck-policy-bundle-1","label":"x","policy_version":"0","files":1}"#[..]),
            ("etc/passwd", &b"x"[..]),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_path(path).expect("path");
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, bytes).expect("append");
        }
        let archive = b.into_inner().expect("tar");
        let sig = sign(&archive, &k);
        let e = open(&archive, Some(&sig), &[public(&k)], "b").expect_err("refused");
        assert!(e.to_string().contains("outside policies/"), "{e}");
    }
}
