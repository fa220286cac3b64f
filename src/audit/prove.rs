//! `zweck audit prove SEQ`: an RFC 6962 inclusion proof of one record against a signed
//! checkpoint, verified on the spot.
//!
//! The proof is what an auditor hands to a third party: with the record's line, the proof
//! hashes and the signed checkpoint (ideally the off-box copy), anyone can check that the
//! record is in the log the key holder committed to, without seeing any other record.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::checkpoint::{Checkpoint, SignedNote};
use super::files::{self, Lines};
use super::keys::{KeyRing, SignatureError};
use super::merkle::{inclusion_proof, leaf_hash, root, verify_inclusion, Hash};
use super::CliReport;

/// What to prove.
#[derive(Debug, Clone, Default)]
pub struct ProveOptions {
    /// The active log path.
    pub log: PathBuf,
    pub seq: u64,
    /// `audit.pub` or the key history; without a key the checkpoint's signature is not
    /// checked, and the proof is not verified (exit 2).
    pub keys: KeyRing,
    /// Off-box checkpoint files; preferred over on-box ones of the same size. Each must
    /// exist.
    pub offbox: Vec<PathBuf>,
}

/// A proof and what it was checked against.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    pub seq: u64,
    pub line: String,
    pub leaf: Hash,
    pub checkpoint: Checkpoint,
    pub note: String,
    pub source: String,
    pub path: Vec<Hash>,
}

/// Why no proof could be given. [`ProveError::exit_code`] is what the command exits with.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("UNREADABLE {}: {reason}", log.display())]
    Unreadable { log: PathBuf, reason: io::Error },
    #[error("UNREADABLE {}: no such log", log.display())]
    NoSuchLog { log: PathBuf },
    #[error("UNREADABLE off-box file {}: {reason}", path.display())]
    Offbox { path: PathBuf, reason: io::Error },
    #[error("the log holds {entries} records; there is no seq {seq}")]
    NoSuchRecord { entries: u64, seq: u64 },
    #[error("TAMPERED checkpoint at {at}: {reason}")]
    TamperedCheckpoint { at: String, reason: SignatureError },
    #[error("no checkpoint covers seq {seq} yet (the log holds {entries} records); one is written every checkpoint_every entries and at shutdown")]
    NotCovered { seq: u64, entries: u64 },
    #[error(
        "TAMPERED: the log's first {size} records do not hash to the root checkpoint {at} signs"
    )]
    RootMismatch { size: u64, at: String },
    #[error("cannot build the proof")]
    NoPath,
    #[error("the inclusion proof does not verify")]
    ProofFails,
}

impl ProveError {
    /// 1 when something was tampered with, 2 when the proof cannot be given.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProveError::TamperedCheckpoint { .. }
            | ProveError::RootMismatch { .. }
            | ProveError::ProofFails => 1,
            ProveError::Unreadable { .. }
            | ProveError::NoSuchLog { .. }
            | ProveError::Offbox { .. }
            | ProveError::NoSuchRecord { .. }
            | ProveError::NotCovered { .. }
            | ProveError::NoPath => 2,
        }
    }
}

/// Builds and verifies the proof of record `seq`.
pub fn prove(opts: &ProveOptions) -> CliReport {
    match build(opts) {
        Ok((p, signed)) => {
            let mut out = String::new();
            let _ = writeln!(out, "record seq {}:", p.seq);
            let _ = writeln!(out, "  {}", p.line);
            let _ = writeln!(
                out,
                "leaf hash SHA-256(0x00 || line): {}",
                hex::encode(p.leaf)
            );
            let _ = writeln!(
                out,
                "checkpoint ({}): origin {} size {} root {}{}",
                p.source,
                p.checkpoint.origin,
                p.checkpoint.size,
                STANDARD.encode(p.checkpoint.root),
                if signed {
                    ", signature verified"
                } else {
                    ", signature NOT checked (no public key given)"
                }
            );
            let _ = writeln!(
                out,
                "inclusion proof (RFC 6962 PATH({}, D[{}]), {} hashes, hex):",
                p.seq,
                p.checkpoint.size,
                p.path.len()
            );
            for h in &p.path {
                let _ = writeln!(out, "  {}", hex::encode(h));
            }
            let _ = writeln!(out, "signed checkpoint:");
            for l in p.note.lines() {
                let _ = writeln!(out, "  {l}");
            }
            if signed {
                let _ = writeln!(
                    out,
                    "VERIFIED: record {} is leaf {} of the tree of size {} the checkpoint commits to",
                    p.seq, p.seq, p.checkpoint.size
                );
                CliReport::new(out, 0)
            } else {
                let _ = writeln!(
                    out,
                    "UNVERIFIED: record {} is leaf {} of the tree of size {} in this checkpoint, but without --key nothing shows who signed the checkpoint",
                    p.seq, p.seq, p.checkpoint.size
                );
                CliReport::new(out, 2)
            }
        }
        Err(why) => CliReport::new(format!("{why}\n"), why.exit_code()),
    }
}

/// The proof and whether the checkpoint's signature was checked.
pub fn build(opts: &ProveOptions) -> Result<(InclusionProof, bool), ProveError> {
    let unreadable = |reason| ProveError::Unreadable {
        log: opts.log.clone(),
        reason,
    };
    let mut leaves = Vec::new();
    let mut wanted = None;
    let mut buf = Vec::new();
    let files = files::chain_files(&opts.log).map_err(unreadable)?;
    if files.is_empty() {
        return Err(ProveError::NoSuchLog {
            log: opts.log.clone(),
        });
    }
    for f in &files {
        let mut lines = Lines::open(f).map_err(unreadable)?;
        while let Some(complete) = lines.next_line(&mut buf).map_err(unreadable)? {
            if !complete {
                break;
            }
            if leaves.len() as u64 == opts.seq {
                wanted = Some(String::from_utf8_lossy(&buf).into_owned());
            }
            leaves.push(leaf_hash(&buf));
        }
    }
    let line = wanted.ok_or(ProveError::NoSuchRecord {
        entries: leaves.len() as u64,
        seq: opts.seq,
    })?;
    for p in &opts.offbox {
        std::fs::metadata(p).map_err(|reason| ProveError::Offbox {
            path: p.clone(),
            reason,
        })?;
    }
    // Candidate checkpoints: off-box first, so an equal size prefers the off-box copy.
    let mut notes: Vec<(String, SignedNote)> = Vec::new();
    let sources: Vec<PathBuf> = opts
        .offbox
        .iter()
        .cloned()
        .chain(std::iter::once(files::checkpoints_path(&opts.log)))
        .collect();
    for p in &sources {
        for n in files::read_checkpoints(p)
            .map_err(unreadable)?
            .into_iter()
            .flatten()
        {
            notes.push((format!("{}:{}", p.display(), n.line), n));
        }
    }
    let onbox_origin = notes
        .iter()
        .rev()
        .find_map(|(_, n)| Checkpoint::parse_body(&n.body).ok().map(|c| c.origin));
    let mut best: Option<(Checkpoint, String, String)> = None;
    for (src, n) in &notes {
        let Ok(cp) = Checkpoint::parse_body(&n.body) else {
            continue;
        };
        if Some(&cp.origin) != onbox_origin.as_ref()
            || cp.size <= opts.seq
            || cp.size > leaves.len() as u64
        {
            continue;
        }
        if !opts.keys.is_empty() {
            opts.keys
                .verify(n)
                .map_err(|reason| ProveError::TamperedCheckpoint {
                    at: src.clone(),
                    reason,
                })?;
        }
        if best.as_ref().is_none_or(|(b, _, _)| cp.size > b.size) {
            best = Some((cp, src.clone(), super::verify::note_text(n)));
        }
    }
    let (checkpoint, source, note) = best.ok_or(ProveError::NotCovered {
        seq: opts.seq,
        entries: leaves.len() as u64,
    })?;
    let size = checkpoint.size;
    if root(&leaves[..size as usize]) != checkpoint.root {
        return Err(ProveError::RootMismatch { size, at: source });
    }
    let path = inclusion_proof(&leaves, opts.seq, size).ok_or(ProveError::NoPath)?;
    let leaf = leaves[opts.seq as usize];
    if !verify_inclusion(&leaf, opts.seq, size, &path, &checkpoint.root) {
        return Err(ProveError::ProofFails);
    }
    Ok((
        InclusionProof {
            seq: opts.seq,
            line,
            leaf,
            checkpoint,
            note,
            source,
            path,
        },
        !opts.keys.is_empty(),
    ))
}
