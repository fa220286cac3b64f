//! Checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes, Ed25519.
//!
//! Why these formats: transparency-log tooling and witnesses already read them, so an auditor
//! can check Zweck's tree heads with tools that do not trust Zweck. A note is
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root>\ntime <RFC 3339 UTC>\n\n— <key name> <base64(key hash || signature)>\n
//! ```
//!
//! The signature is Ed25519 over the body (every byte up to and including the `\n` before the
//! blank line); the key hash is the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || pubkey)`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::error::KeyRejected;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The signature type byte of Ed25519 in signed notes.
const ED25519_TYPE: u8 = 0x01;
/// Starts every signature line: an em dash and a space.
pub const SIG_PREFIX: &str = "\u{2014} ";

/// A tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The extension lines after the root (Zweck writes one: `time <RFC 3339>`).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body: what is signed.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// The `time` extension, if present.
    pub fn time(&self) -> Option<&str> {
        self.extensions.iter().find_map(|e| e.strip_prefix("time "))
    }

    /// Parses a note body.
    pub fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let text = body.strip_suffix('\n').ok_or(NoteError::NoFinalNewline)?;
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(NoteError::NoOrigin)?;
        let size = lines
            .next()
            .and_then(|l| {
                if l.len() > 1 && l.starts_with('0') {
                    None
                } else {
                    l.parse::<u64>().ok()
                }
            })
            .ok_or(NoteError::BadSize)?;
        let root_b64 = lines.next().ok_or(NoteError::NoRoot)?;
        let root: Hash = STANDARD
            .decode(root_b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(NoteError::BadRoot)?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(std::string::String::is_empty) {
            return Err(NoteError::EmptyExtension);
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }
}

/// A signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_hash: [u8; 4],
    pub signature: Vec<u8>,
}

/// A signed note as read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The body, ending in `\n`.
    pub body: String,
    pub signatures: Vec<NoteSignature>,
    /// 1-based line of the note's first line in its file (for messages).
    pub line: usize,
}

/// Why a note (or its checkpoint body) does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("checkpoint body does not end with a newline")]
    NoFinalNewline,
    #[error("no origin line")]
    NoOrigin,
    #[error("tree size is not a decimal number")]
    BadSize,
    #[error("no root hash line")]
    NoRoot,
    #[error("root hash is not base64 of 32 bytes")]
    BadRoot,
    #[error("empty extension line")]
    EmptyExtension,
    #[error("note has no signature lines")]
    NoSignatures,
    #[error("last signature line is incomplete")]
    IncompleteSignature,
    #[error("signature line has no key name")]
    NoKeyName,
    #[error("signature is not base64")]
    SignatureNotBase64,
    #[error("signature is too short")]
    SignatureTooShort,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(NoteError),
    #[error("no signature by key {0} with the expected key hash")]
    NoSignature(String),
    #[error("signature by {0} does not verify")]
    BadSignature(String),
}

/// The signed-note key hash of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || pubkey)[..4].
pub fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, ED25519_TYPE]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The verifier key string of the signed-note ecosystem: `name+<hex key hash>+<base64(0x01 || pubkey)>`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    let mut k = vec![ED25519_TYPE];
    k.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, public_key)),
        STANDARD.encode(k)
    )
}

/// Loads an Ed25519 key from PKCS#8 DER (v2 as ring writes it, or v1).
pub fn key_from_pkcs8(der: &[u8]) -> Result<Ed25519KeyPair, KeyRejected> {
    Ed25519KeyPair::from_pkcs8(der).or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
}

/// The raw public key of a signing key.
pub fn public_key(key: &Ed25519KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(key.public_key().as_ref());
    out
}

/// Signs a checkpoint as key `name`; returns the whole note (body, blank line, signature line).
pub fn sign(cp: &Checkpoint, name: &str, key: &Ed25519KeyPair) -> String {
    let body = cp.body();
    let sig = key.sign(body.as_bytes());
    let mut blob = key_hash(name, &public_key(key)).to_vec();
    blob.extend_from_slice(sig.as_ref());
    format!("{body}\n{SIG_PREFIX}{name} {}\n", STANDARD.encode(blob))
}

/// A note, or the 1-based line where a malformed one starts and why.
pub type ParsedNote = Result<SignedNote, (usize, NoteError)>;

/// Splits a file of concatenated notes (each followed by a blank line) into notes.
/// Malformed notes come back as errors with their line number.
pub fn parse_notes(text: &str) -> Vec<ParsedNote> {
    parse_notes_with_end(text)
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

/// [`parse_notes`] plus the byte offset just after each note (and its trailing blank line),
/// so recovery can cut a torn last note.
pub fn parse_notes_with_end(text: &str) -> Vec<(ParsedNote, usize)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut starts = Vec::with_capacity(lines.len());
    let mut pos = 0;
    for l in &lines {
        starts.push(pos);
        pos += l.len() + 1;
    }
    let end_at = |i: usize| starts.get(i).copied().unwrap_or(text.len()).min(text.len());
    let mut out = Vec::new();
    let mut i = 0;
    // A file ends with "\n", so the final split element is empty.
    while i < lines.len() {
        if lines[i].is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        let mut body = String::new();
        while i < lines.len() && !lines[i].is_empty() {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        if i + 1 >= lines.len() {
            out.push((Err((start + 1, NoteError::NoSignatures)), text.len()));
            break;
        }
        i += 1; // the blank line
        let mut sigs = Vec::new();
        let mut bad = None;
        while i < lines.len() && lines[i].starts_with(SIG_PREFIX) {
            match parse_sig_line(lines[i]) {
                Ok(s) => sigs.push(s),
                Err(e) => bad = Some(e),
            }
            i += 1;
        }
        // A signature line is whole only with its newline (the last split element has none).
        if i == lines.len() && !sigs.is_empty() && !text.ends_with('\n') {
            bad = Some(NoteError::IncompleteSignature);
        }
        let mut end = end_at(i);
        if i + 1 < lines.len() && lines[i].is_empty() {
            end = end_at(i + 1);
        }
        if let Some(e) = bad {
            out.push((Err((start + 1, e)), end));
        } else if sigs.is_empty() {
            out.push((Err((start + 1, NoteError::NoSignatures)), end));
        } else {
            out.push((
                Ok(SignedNote {
                    body,
                    signatures: sigs,
                    line: start + 1,
                }),
                end,
            ));
        }
    }
    out
}

fn parse_sig_line(line: &str) -> Result<NoteSignature, NoteError> {
    let rest = line.strip_prefix(SIG_PREFIX).unwrap_or(line);
    let (name, b64) = rest.split_once(' ').ok_or(NoteError::NoKeyName)?;
    let blob = STANDARD
        .decode(b64)
        .map_err(|_| NoteError::SignatureNotBase64)?;
    if blob.len() < 5 {
        return Err(NoteError::SignatureTooShort);
    }
    Ok(NoteSignature {
        name: name.to_string(),
        key_hash: [blob[0], blob[1], blob[2], blob[3]],
        signature: blob[4..].to_vec(),
    })
}

/// Verifies a note's signature by key `name` / `public_key` and parses its checkpoint.
pub fn verify_note(
    note: &SignedNote,
    name: &str,
    public_key: &[u8; 32],
) -> Result<Checkpoint, CheckpointError> {
    let cp = Checkpoint::parse_body(&note.body).map_err(CheckpointError::Malformed)?;
    let want = key_hash(name, public_key);
    let sig = note
        .signatures
        .iter()
        .find(|s| s.name == name && s.key_hash == want)
        .ok_or_else(|| CheckpointError::NoSignature(name.to_string()))?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(note.body.as_bytes(), &sig.signature)
        .map_err(|_| CheckpointError::BadSignature(name.to_string()))?;
    Ok(cp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn key() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        key_from_pkcs8(doc.as_ref()).expect("key")
    }

    #[test]
    fn sign_parse_verify_round_trip_and_tamper() {
        let k = key();
        let pk = public_key(&k);
        let cp = Checkpoint {
            origin: "zweck.example/log".into(),
            size: 42,
            root: [7u8; 32],
            extensions: vec!["time 2025-01-01T00:00:00Z".into()],
        };
        let note = sign(&cp, "zweck.example/log", &k);
        assert!(note.starts_with("zweck.example/log\n42\n"));
        assert!(note.contains("\n\n\u{2014} zweck.example/log "));
        let two = format!("{note}\n{note}\n");
        let notes = parse_notes(&two);
        assert_eq!(notes.len(), 2);
        let n = notes[0].clone().expect("note");
        let got = verify_note(&n, "zweck.example/log", &pk).expect("verifies");
        assert_eq!(got, cp);
        assert_eq!(got.time(), Some("2025-01-01T00:00:00Z"));
        // A different size with the same signature fails.
        let forged = SignedNote {
            body: n.body.replace("\n42\n", "\n41\n"),
            ..n.clone()
        };
        assert_eq!(
            verify_note(&forged, "zweck.example/log", &pk),
            Err(CheckpointError::BadSignature("zweck.example/log".into()))
        );
        // Another key is not found by its key hash.
        let other = public_key(&key());
        assert!(matches!(
            verify_note(&n, "zweck.example/log", &other),
            Err(CheckpointError::NoSignature(_))
        ));
    }

    #[test]
    fn a_torn_last_note_is_found_with_the_end_of_the_good_ones() {
        let k = key();
        let cp = Checkpoint {
            origin: "o".into(),
            size: 1,
            root: [1u8; 32],
            extensions: vec![],
        };
        let note = format!("{}\n", sign(&cp, "o", &k));
        for cut in [3, note.len() - 20, note.len() - 2] {
            let text = format!("{note}{}", &note[..cut]);
            let notes = parse_notes_with_end(&text);
            assert_eq!(notes.len(), 2, "cut {cut}");
            assert!(notes[0].0.is_ok());
            assert_eq!(notes[0].1, note.len(), "cut {cut}");
            assert!(notes[1].0.is_err(), "cut {cut}");
        }
    }

    #[test]
    fn key_hash_follows_the_signed_note_spec() {
        let pk = [9u8; 32];
        let mut pre = b"name\n\x01".to_vec();
        pre.extend_from_slice(&pk);
        let d = Sha256::digest(&pre);
        assert_eq!(key_hash("name", &pk), [d[0], d[1], d[2], d[3]]);
        assert!(verifier_key("name", &pk).starts_with(&format!("name+{}+", hex::encode(&d[..4]))));
    }
}
