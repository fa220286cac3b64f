//! Detached signatures of reports: `--sign KEY --output FILE` writes `FILE.sig`, and
//! `zweck audit verify-report FILE` checks it.
//!
//! The signature is a C2SP signed note (the format of the checkpoints, so the same tools read
//! it) by the key name `zweck-report`. Its body binds the report's bytes to the state of the
//! logs it was computed from:
//!
//! ```text
//! zweck-report/v1
//! sha256 <hex SHA-256 of the report file>
//! format <table|csv|json|html|markdown>
//! verification <VERIFIED|UNVERIFIED|TAMPERED>
//! log <origin> <entries> <base64 Merkle root of those entries>      (one per log)
//! checkpoint <base64 of the newest signed checkpoint note of a log>  (one per log that has one)
//! ```
//!
//! The body's first line can never parse as a checkpoint (its second line is no tree size),
//! and the key name differs from every origin, so a report signature is never mistaken for a
//! checkpoint or the other way round. The checkpoints inside carry their own signatures:
//! `verify-report` checks both, and with `--log` also that each log still holds exactly the
//! entries the report was computed from (the root of its first `entries` entries).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::Ed25519KeyPair;
use sha2::{Digest, Sha256};

use super::checkpoint::{self, parse_notes, Checkpoint};
use super::files::{self, ChainState, Lines};
use super::keys::KeyRing;
use super::merkle::Hash;
use super::verify::Fleet;
use super::CliReport;

/// The signed-note key name of report signatures.
pub const REPORT_KEY_NAME: &str = "zweck-report";
const HEADER: &str = "zweck-report/v1";

/// Why a report could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
}

/// Loads an Ed25519 signing key (PKCS#8 PEM, as `audit.key`).
pub fn load_key(path: &Path) -> Result<Ed25519KeyPair, SignError> {
    let err = |reason: String| SignError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let kp = crate::secrets::read_audit_key(path).map_err(|e| err(e.to_string()))?;
    checkpoint::key_from_pkcs8(&kp.serialize_der()).map_err(|e| err(e.to_string()))
}

/// The `.sig` text for `report` (the file's bytes) computed from `fleet`.
pub fn sign(report: &[u8], format: &str, fleet: &Fleet, key: &Ed25519KeyPair) -> String {
    let mut body = format!(
        "{HEADER}\nsha256 {}\nformat {format}\nverification {}\n",
        hex::encode(Sha256::digest(report)),
        fleet.word()
    );
    for l in &fleet.logs {
        let _ = writeln!(
            body,
            "log {} {} {}",
            l.origin.as_deref().unwrap_or("-"),
            l.entries,
            STANDARD.encode(l.root)
        );
    }
    for n in fleet.logs.iter().filter_map(|l| l.newest.as_ref()) {
        let _ = writeln!(body, "checkpoint {}", STANDARD.encode(&n.note));
    }
    let sig = key.sign(body.as_bytes());
    let mut blob = checkpoint::key_hash(REPORT_KEY_NAME, &checkpoint::public_key(key)).to_vec();
    blob.extend_from_slice(sig.as_ref());
    format!(
        "{body}\n{}{REPORT_KEY_NAME} {}\n",
        checkpoint::SIG_PREFIX,
        STANDARD.encode(blob)
    )
}

/// What `verify-report` checks.
#[derive(Debug, Clone, Default)]
pub struct ReportCheckOptions {
    pub report: PathBuf,
    /// Default: `<report>.sig`.
    pub signature: Option<PathBuf>,
    pub keys: KeyRing,
    /// Logs to check the report's log states against (matched by origin).
    pub logs: Vec<PathBuf>,
}

/// A log state a report names.
struct Stated {
    origin: String,
    entries: u64,
    root: Hash,
}

/// Checks a report against its signature. Exit 0 verified, 1 does not match, 2 cannot be
/// checked (missing file, no key).
pub fn verify_report(opts: &ReportCheckOptions) -> CliReport {
    match check(opts) {
        Ok(text) => CliReport::new(text, 0),
        Err((text, code)) => CliReport::new(text, code),
    }
}

fn check(opts: &ReportCheckOptions) -> Result<String, (String, i32)> {
    let unreadable =
        |what: &Path, e: std::io::Error| (format!("UNVERIFIED {}: {e}\n", what.display()), 2);
    let tampered = |why: String| (format!("TAMPERED: {why}\n"), 1);
    if opts.keys.is_empty() {
        return Err((
            "UNVERIFIED: give the signer's public key (--key certs/audit.pub or the key history)\n"
                .into(),
            2,
        ));
    }
    let sig_path = opts.signature.clone().unwrap_or_else(|| {
        let mut p = opts.report.as_os_str().to_os_string();
        p.push(".sig");
        PathBuf::from(p)
    });
    let bytes = std::fs::read(&opts.report).map_err(|e| unreadable(&opts.report, e))?;
    let sig_text = std::fs::read_to_string(&sig_path).map_err(|e| unreadable(&sig_path, e))?;
    let note = match parse_notes(&sig_text).as_slice() {
        [Ok(n)] => n.clone(),
        _ => {
            return Err(tampered(format!(
                "{} is not one signed note",
                sig_path.display()
            )))
        }
    };
    let signed = opts
        .keys
        .keys
        .iter()
        .any(|k| verify_note_named(&note, &k.public_key).is_ok());
    if !signed {
        return Err(tampered(format!(
            "{} is not signed by a given key",
            sig_path.display()
        )));
    }
    let lines: Vec<&str> = note.body.lines().collect();
    if lines.first() != Some(&HEADER) {
        return Err(tampered("not a zweck report signature".into()));
    }
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    if field("sha256") != Some(digest.as_str()) {
        return Err(tampered(format!(
            "{} does not match its signature: its bytes were changed",
            opts.report.display()
        )));
    }
    let mut out = format!(
        "OK {}: the signature by {} covers these bytes (format {}, logs {})\n",
        opts.report.display(),
        REPORT_KEY_NAME,
        field("format").unwrap_or("?"),
        field("verification").unwrap_or("?")
    );
    let mut stated = Vec::new();
    for l in lines.iter().filter_map(|l| l.strip_prefix("log ")) {
        let f: Vec<&str> = l.split(' ').collect();
        let parsed = match f.as_slice() {
            [origin, entries, root] => entries
                .parse::<u64>()
                .ok()
                .zip(
                    STANDARD
                        .decode(root)
                        .ok()
                        .and_then(|b| <Hash>::try_from(b).ok()),
                )
                .map(|(entries, root)| Stated {
                    origin: (*origin).to_string(),
                    entries,
                    root,
                }),
            _ => None,
        };
        stated.push(parsed.ok_or_else(|| tampered("a malformed log line".into()))?);
    }
    for c in lines.iter().filter_map(|l| l.strip_prefix("checkpoint ")) {
        let text = STANDARD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| tampered("a malformed checkpoint line".into()))?;
        let Some(Ok(cp_note)) = parse_notes(&text).pop() else {
            return Err(tampered(
                "an embedded checkpoint is not a signed note".into(),
            ));
        };
        let cp = opts
            .keys
            .verify(&cp_note)
            .map_err(|e| tampered(format!("the embedded checkpoint: {e}")))?;
        let Some(s) = stated.iter().find(|s| s.origin == cp.origin) else {
            return Err(tampered(format!(
                "a checkpoint of {} names no log",
                cp.origin
            )));
        };
        if cp.size > s.entries {
            return Err(tampered(format!(
                "the checkpoint of {} covers {} entries, the report only {}",
                cp.origin, cp.size, s.entries
            )));
        }
        let _ = writeln!(
            out,
            "  computed from {}: {} entries; checkpoint size {} ({}) signature verified",
            cp.origin,
            s.entries,
            cp.size,
            cp.time().unwrap_or("no time")
        );
    }
    for log in &opts.logs {
        let origin = log_origin(log).ok_or_else(|| {
            (
                format!(
                    "UNVERIFIED {}: no on-box checkpoint names its origin\n",
                    log.display()
                ),
                2,
            )
        })?;
        let Some(s) = stated.iter().find(|s| s.origin == origin) else {
            return Err(tampered(format!(
                "the report names no log of origin {origin} ({})",
                log.display()
            )));
        };
        match root_at(log, s.entries) {
            Ok(root) if root == s.root => {
                let _ = writeln!(
                    out,
                    "  {}: its first {} entries are exactly those the report was computed from",
                    log.display(),
                    s.entries
                );
            }
            Ok(_) => {
                return Err(tampered(format!(
                    "{}: its first {} entries are not those the report was computed from",
                    log.display(),
                    s.entries
                )))
            }
            Err(why) => return Err(why),
        }
    }
    let _ = writeln!(out, "VERIFIED");
    Ok(out)
}

fn verify_note_named(
    note: &checkpoint::SignedNote,
    pk: &[u8; 32],
) -> Result<(), checkpoint::CheckpointError> {
    // checkpoint::verify_note parses a checkpoint body, which a report body is not
    let want = checkpoint::key_hash(REPORT_KEY_NAME, pk);
    let sig = note
        .signatures
        .iter()
        .find(|s| s.name == REPORT_KEY_NAME && s.key_hash == want)
        .ok_or_else(|| checkpoint::CheckpointError::NoSignature(REPORT_KEY_NAME.into()))?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk)
        .verify(note.body.as_bytes(), &sig.signature)
        .map_err(|_| checkpoint::CheckpointError::BadSignature(REPORT_KEY_NAME.into()))?;
    Ok(())
}

fn log_origin(log: &Path) -> Option<String> {
    files::read_checkpoints(&files::checkpoints_path(log))
        .ok()?
        .into_iter()
        .flatten()
        .find_map(|n| Checkpoint::parse_body(&n.body).ok().map(|c| c.origin))
}

/// The Merkle root of a log's first `size` entries, checking their chain.
fn root_at(log: &Path, size: u64) -> Result<Hash, (String, i32)> {
    let unreadable = |e: std::io::Error| (format!("UNVERIFIED {}: {e}\n", log.display()), 2);
    let mut chain = ChainState::new();
    let mut buf = Vec::new();
    for f in files::chain_files(log).map_err(unreadable)? {
        let mut lines = Lines::open(&f).map_err(unreadable)?;
        while chain.next_seq < size {
            match lines.next_line(&mut buf).map_err(unreadable)? {
                Some(true) => {
                    chain.accept(&buf).map_err(|why| {
                        (
                            format!(
                                "TAMPERED {}: seq {}: {why}\n",
                                log.display(),
                                chain.next_seq
                            ),
                            1,
                        )
                    })?;
                }
                _ => break,
            }
        }
    }
    if chain.next_seq < size {
        return Err((
            format!(
                "TAMPERED {}: holds {} entries, the report was computed from {size}\n",
                log.display(),
                chain.next_seq
            ),
            1,
        ));
    }
    Ok(chain.frontier.root())
}
