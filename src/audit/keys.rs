//! The keys that may have signed a log's checkpoints: one public key, or a key history.
//!
//! The audit signing key rotates (`zweck keys rotate audit`), and a rotated log must still
//! verify end to end. Rotation therefore keeps the retired public key, with the range of tree
//! sizes whose checkpoints it signed, in a key history file beside `audit.pub`
//! (`audit.keys`). Verifying with the history accepts a checkpoint only from the key that was
//! in force for its size, so a retired key that leaks later cannot vouch for a checkpoint
//! beyond its range. The signature line's key hash tells the keys apart (docs/transfer-log.md
//! §5), so no key is tried blindly.
//!
//! A history line is `<origin> <first size> <last size or -> <base64 raw Ed25519 key>`; `#`
//! starts a comment. `--key` reads either form: a file with one base64 key (`audit.pub`,
//! valid for every origin and size) or a history.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::checkpoint::{key_hash, verify_note, Checkpoint, CheckpointError, SignedNote};
use crate::secrets::{self, SecretsError};

/// One key and where it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The origin (= key name) it signs for; `None`: any.
    pub origin: Option<String>,
    /// Smallest tree size it may sign (1 for the first key).
    pub first: u64,
    /// Largest tree size it may sign; `None`: open (the key in force).
    pub last: Option<u64>,
    pub public_key: [u8; 32],
}

impl KeyEntry {
    fn covers(&self, origin: &str, size: u64) -> bool {
        self.origin.as_deref().is_none_or(|o| o == origin)
            && size >= self.first
            && self.last.is_none_or(|l| size <= l)
    }
}

/// The keys a verifier trusts. Empty: signatures cannot be checked (and reports say so).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    pub keys: Vec<KeyEntry>,
}

/// Why a checkpoint's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("{0}")]
    Checkpoint(CheckpointError),
    #[error("no signature by a known key (if the audit key was rotated, pass the key history, e.g. --key certs/audit.keys)")]
    UnknownKey,
    #[error("signed by a key that may only sign tree sizes {first}..{}, not {size} (a retired key)", last.map_or("-".to_string(), |l| l.to_string()))]
    OutOfRange {
        size: u64,
        first: u64,
        last: Option<u64>,
    },
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Unreadable(#[from] SecretsError),
    #[error("{path}:{line}: expected `<origin> <first size> <last size or -> <base64 Ed25519 public key>`")]
    BadLine { path: String, line: usize },
}

impl KeyRing {
    /// One key for every origin and size (`audit.pub`).
    pub fn single(public_key: [u8; 32]) -> KeyRing {
        KeyRing {
            keys: vec![KeyEntry {
                origin: None,
                first: 0,
                last: None,
                public_key,
            }],
        }
    }

    /// Whether any key is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Reads `audit.pub` (one base64 key) or a key history.
    pub fn read(path: &Path) -> Result<KeyRing, KeyFileError> {
        let text = secrets::read_text(path)?;
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if let [(_, only)] = lines.as_slice() {
            if !only.contains(' ') {
                return Ok(KeyRing::single(secrets::read_audit_pub(path)?));
            }
        }
        let bad = |line| KeyFileError::BadLine {
            path: path.display().to_string(),
            line,
        };
        let mut keys = Vec::new();
        for (n, line) in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [origin, first, last, key] = f.as_slice() else {
                return Err(bad(n));
            };
            let first: u64 = first.parse().map_err(|_| bad(n))?;
            let last = match *last {
                "-" => None,
                l => Some(l.parse::<u64>().map_err(|_| bad(n))?),
            };
            let public_key: [u8; 32] = STANDARD
                .decode(key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad(n))?;
            if last.is_some_and(|l| l < first) {
                return Err(bad(n));
            }
            keys.push(KeyEntry {
                origin: Some((*origin).to_string()),
                first,
                last,
                public_key,
            });
        }
        Ok(KeyRing { keys })
    }

    /// Verifies a note's signature by the key in force for its origin and size.
    pub fn verify(&self, note: &SignedNote) -> Result<Checkpoint, SignatureError> {
        let cp = Checkpoint::parse_body(&note.body)
            .map_err(|e| SignatureError::Checkpoint(CheckpointError::Malformed(e)))?;
        let signed_by = |k: &KeyEntry| {
            let want = key_hash(&cp.origin, &k.public_key);
            note.signatures
                .iter()
                .any(|s| s.name == cp.origin && s.key_hash == want)
        };
        let candidates: Vec<&KeyEntry> = self
            .keys
            .iter()
            .filter(|k| k.origin.as_deref().is_none_or(|o| o == cp.origin))
            .filter(|k| signed_by(k))
            .collect();
        let Some(key) = candidates
            .iter()
            .find(|k| k.covers(&cp.origin, cp.size))
            .or(candidates.first())
        else {
            return Err(SignatureError::UnknownKey);
        };
        if !key.covers(&cp.origin, cp.size) {
            return Err(SignatureError::OutOfRange {
                size: cp.size,
                first: key.first,
                last: key.last,
            });
        }
        verify_note(note, &cp.origin, &key.public_key).map_err(SignatureError::Checkpoint)
    }

    /// The history after retiring the key in force for `origin` at tree size `last` and
    /// putting `new` in force from `last + 1`. A key that signed nothing (`last` 0) is not
    /// kept.
    pub fn rotated(&self, origin: &str, old: [u8; 32], last: u64, new: [u8; 32]) -> KeyRing {
        let mut keys: Vec<KeyEntry> = self
            .keys
            .iter()
            .filter(|k| !(k.last.is_none() && k.origin.as_deref().is_none_or(|o| o == origin)))
            .cloned()
            .collect();
        let first = keys
            .iter()
            .filter(|k| k.origin.as_deref() == Some(origin))
            .filter_map(|k| k.last)
            .max()
            .map_or(1, |l| l + 1);
        if last >= first {
            keys.push(KeyEntry {
                origin: Some(origin.to_string()),
                first,
                last: Some(last),
                public_key: old,
            });
        }
        keys.push(KeyEntry {
            origin: Some(origin.to_string()),
            first: last + 1,
            last: None,
            public_key: new,
        });
        KeyRing { keys }
    }

    /// The history file's text.
    pub fn to_history(&self) -> String {
        let mut out = String::from(
            "# Zweck audit signing keys, oldest first (docs/transfer-log.md, \"Key history\"):\n\
             # <origin> <first tree size> <last tree size or - while in force> <base64 Ed25519 public key>\n",
        );
        for k in &self.keys {
            out.push_str(&format!(
                "{} {} {} {}\n",
                k.origin.as_deref().unwrap_or("*"),
                k.first,
                k.last.map_or("-".to_string(), |l| l.to_string()),
                STANDARD.encode(k.public_key)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::{key_from_pkcs8, parse_notes, public_key, sign};
    use ring::signature::Ed25519KeyPair;

    fn key() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("keygen");
        key_from_pkcs8(doc.as_ref()).expect("key")
    }

    fn note(size: u64, k: &Ed25519KeyPair) -> SignedNote {
        let cp = Checkpoint {
            origin: "o".into(),
            size,
            root: [size as u8; 32],
            extensions: vec![],
        };
        parse_notes(&sign(&cp, "o", k))
            .pop()
            .expect("one")
            .expect("parses")
    }

    #[test]
    fn a_rotated_history_accepts_each_key_only_in_its_range() {
        let (old, new) = (key(), key());
        let ring = KeyRing::default().rotated("o", public_key(&old), 10, public_key(&new));
        assert_eq!(ring.keys.len(), 2);
        assert_eq!(ring.verify(&note(10, &old)).map(|c| c.size), Ok(10));
        assert_eq!(ring.verify(&note(11, &new)).map(|c| c.size), Ok(11));
        assert!(matches!(
            ring.verify(&note(11, &old)),
            Err(SignatureError::OutOfRange { size: 11, .. })
        ));
        assert!(matches!(
            ring.verify(&note(5, &new)),
            Err(SignatureError::OutOfRange { .. })
        ));
        assert_eq!(
            ring.verify(&note(3, &key())),
            Err(SignatureError::UnknownKey)
        );
        // a second rotation keeps both retired ranges
        let newest = key();
        let ring = ring.rotated("o", public_key(&new), 30, public_key(&newest));
        assert_eq!(
            ring.keys
                .iter()
                .map(|k| (k.first, k.last))
                .collect::<Vec<_>>(),
            [(1, Some(10)), (11, Some(30)), (31, None)]
        );
        // the history file round-trips
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.keys");
        std::fs::write(&path, ring.to_history()).expect("write");
        assert_eq!(KeyRing::read(&path).expect("reads"), ring);
        assert_eq!(ring.verify(&note(20, &new)).map(|c| c.size), Ok(20));
    }

    #[test]
    fn key_files_are_a_single_key_or_well_formed_lines() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k");
        let pk = public_key(&key());
        std::fs::write(&path, format!("{}\n", STANDARD.encode(pk))).expect("write");
        assert_eq!(KeyRing::read(&path).expect("single"), KeyRing::single(pk));
        for bad in [
            "o 1 2\n",
            "o x - AAAA\n",
            "o 5 2 AAAA\n",
            "o 1 - notbase64\n",
        ] {
            std::fs::write(&path, bad).expect("write");
            assert!(
                matches!(
                    KeyRing::read(&path),
                    Err(KeyFileError::BadLine { line: 1, .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            KeyRing::read(&dir.path().join("missing")),
            Err(KeyFileError::Unreadable(_))
        ));
    }
}
