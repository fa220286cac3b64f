//! `zweck audit verify LOG...`: chain, checkpoints, signatures; names the first bad record.
//!
//! What each check catches: `prev` catches an edited, removed, inserted or reordered line
//! (at the line after it); `seq` catches a gap or duplicate; a checkpoint's Merkle root
//! catches an edit of the newest lines, which no later `prev` covers; a checkpoint larger
//! than the log (on-box or, decisively, off-box) catches a cut-off tail; signatures make
//! checkpoints unforgeable without the key.
//!
//! Exit codes: 0 everything verified, 1 tampered (or damaged), 2 unreadable.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::checkpoint::{parse_notes, verify_note, Checkpoint, SignedNote};
use super::files::{self, ChainBreak, ChainState, Lines};
use super::CliReport;

/// Print progress every this many bytes.
const PROGRESS_STEP: u64 = 64 << 20;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Active log paths; each one's rotated segments and `.checkpoints` are found next to it.
    pub logs: Vec<PathBuf>,
    /// The checkpoint signer's raw Ed25519 public key (`audit.pub`). Without it signatures
    /// are not checked, and the report says so.
    pub public_key: Option<[u8; 32]>,
    /// Off-box checkpoint files (notes of other origins in them are ignored).
    pub offbox: Vec<PathBuf>,
    /// The origin (= key name) to expect; by default the one in the on-box checkpoints.
    pub origin: Option<String>,
    /// Progress lines on stderr for big logs.
    pub progress: bool,
}

/// Verifies every log; one paragraph per log.
pub fn verify(opts: &VerifyOptions) -> CliReport {
    let mut text = String::new();
    let (mut tampered, mut unreadable) = (false, false);
    if opts.logs.is_empty() {
        return CliReport::new("no log given\n".into(), 2);
    }
    for log in &opts.logs {
        match verify_one(log, opts) {
            Ok(ok) => text.push_str(&ok),
            Err(Failure::Tampered(why)) => {
                tampered = true;
                let _ = writeln!(text, "TAMPERED {}: {why}", log.display());
            }
            Err(Failure::Unreadable(why)) => {
                unreadable = true;
                let _ = writeln!(text, "UNREADABLE {}: {why}", log.display());
            }
        }
    }
    let code = if tampered {
        1
    } else if unreadable {
        2
    } else {
        0
    };
    CliReport::new(text, code)
}

enum Failure {
    Tampered(String),
    Unreadable(String),
}

/// A checkpoint and where it came from.
struct Found {
    cp: Checkpoint,
    source: String,
    offbox: bool,
}

/// Reads a checkpoint file. A malformed note is tampering, except a torn last one (a crash
/// while it was appended; the next start cuts it), which is skipped.
fn load_notes(path: &Path) -> Result<Vec<(String, SignedNote)>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Failure::Unreadable(format!("{}: {e}", path.display()))),
    };
    let notes = parse_notes(&text);
    let count = notes.len();
    let mut out = Vec::new();
    for (i, n) in notes.into_iter().enumerate() {
        match n {
            Ok(note) => out.push((format!("{}:{}", path.display(), note.line), note)),
            Err(_) if i + 1 == count && !text.ends_with("\n\n") => {}
            Err((line, why)) => {
                return Err(Failure::Tampered(format!(
                    "checkpoint at {}:{line} is malformed: {why}",
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

fn verify_one(log: &Path, opts: &VerifyOptions) -> Result<String, Failure> {
    let files = files::chain_files(log)
        .map_err(|e| Failure::Unreadable(format!("cannot list its files: {e}")))?;
    if files.is_empty() {
        return Err(Failure::Unreadable(
            "no such log (no active file, no segments)".into(),
        ));
    }
    // Checkpoints: on-box first, then off-box.
    let onbox = load_notes(&files::checkpoints_path(log))?;
    let mut offbox = Vec::new();
    for p in &opts.offbox {
        offbox.extend(load_notes(p)?);
    }
    let parsed = |notes: &[(String, SignedNote)]| -> Vec<(String, Checkpoint)> {
        notes
            .iter()
            .filter_map(|(src, n)| Some((src.clone(), Checkpoint::parse_body(&n.body).ok()?)))
            .collect()
    };
    let origin = opts.origin.clone().or_else(|| {
        parsed(&onbox)
            .first()
            .map(|(_, c)| c.origin.clone())
            .or_else(|| {
                let origins: BTreeSet<String> =
                    parsed(&offbox).into_iter().map(|(_, c)| c.origin).collect();
                (origins.len() == 1).then(|| origins.into_iter().next().unwrap_or_default())
            })
    });
    let mut found: Vec<Found> = Vec::new();
    for (is_off, notes) in [(false, &onbox), (true, &offbox)] {
        for (src, note) in notes {
            let cp = Checkpoint::parse_body(&note.body).map_err(|why| {
                Failure::Tampered(format!("checkpoint at {src} is malformed: {why}"))
            })?;
            if Some(&cp.origin) != origin.as_ref() {
                if is_off {
                    continue; // another instance's checkpoint
                }
                return Err(Failure::Tampered(format!(
                    "checkpoint at {src} has origin {:?}, expected {:?}",
                    cp.origin,
                    origin.as_deref().unwrap_or("")
                )));
            }
            if let Some(pk) = &opts.public_key {
                verify_note(note, &cp.origin, pk)
                    .map_err(|e| Failure::Tampered(format!("checkpoint at {src}: {e}")))?;
            }
            found.push(Found {
                cp,
                source: src.clone(),
                offbox: is_off,
            });
        }
    }
    found.sort_by_key(|f| f.cp.size);

    let total_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut done_bytes = 0u64;
    let mut next_progress = PROGRESS_STEP;
    let mut chain = ChainState::new();
    let mut next_cp = 0usize;
    let mut last_matched = 0u64;
    let mut buf = Vec::new();
    let mut torn = None;
    let segments = files::segments(log).map_err(|e| Failure::Unreadable(e.to_string()))?;
    for (fi, file) in files.iter().enumerate() {
        if let Some((first, _)) = segments.get(fi) {
            if *first != chain.next_seq {
                return Err(Failure::Tampered(format!(
                    "segment {} should start at seq {} (a segment is missing or renamed)",
                    file.display(),
                    chain.next_seq
                )));
            }
        }
        let is_active = fi + 1 == files.len() && file.as_path() == log;
        let mut lines = Lines::open(file)
            .map_err(|e| Failure::Unreadable(format!("{}: {e}", file.display())))?;
        loop {
            let number = lines.number;
            let before = lines.offset;
            let complete = match lines.next_line(&mut buf) {
                Ok(None) => break,
                Ok(Some(c)) => c,
                Err(e) => return Err(Failure::Unreadable(format!("{}: {e}", file.display()))),
            };
            done_bytes += lines.offset - before;
            if opts.progress && done_bytes >= next_progress {
                eprintln!(
                    "verify {}: {} of {} MiB",
                    log.display(),
                    done_bytes >> 20,
                    total_bytes >> 20
                );
                next_progress += PROGRESS_STEP;
            }
            if !complete {
                if is_active {
                    // A crash left half a line that was never acknowledged; the next start
                    // cuts it. Not tampering by itself (a checkpoint beyond it still is).
                    torn = Some(number);
                    break;
                }
                return Err(Failure::Tampered(format!(
                    "record seq {} ({}:{number}): sealed segment ends mid-line",
                    chain.next_seq,
                    file.display()
                )));
            }
            let seq = chain.next_seq;
            chain.accept(&buf).map_err(|why| {
                let hint = if why == ChainBreak::Prev && seq > 0 {
                    format!(" (record {} was altered, or a line was removed or inserted before this one)", seq - 1)
                } else {
                    String::new()
                };
                Failure::Tampered(format!(
                    "first bad record is seq {seq} ({}:{number}): {why}{hint}",
                    file.display()
                ))
            })?;
            while next_cp < found.len() && found[next_cp].cp.size <= chain.next_seq {
                let f = &found[next_cp];
                if f.cp.size == chain.next_seq {
                    if f.cp.root != chain.frontier.root() {
                        return Err(Failure::Tampered(format!(
                            "checkpoint at {} (size {}) does not match the log: a record in seq {}..{} was altered",
                            f.source,
                            f.cp.size,
                            last_matched,
                            f.cp.size - 1
                        )));
                    }
                    last_matched = f.cp.size;
                }
                next_cp += 1;
            }
        }
    }
    let entries = chain.next_seq;
    if let Some(f) = found.iter().rev().find(|f| f.cp.size > entries) {
        return Err(Failure::Tampered(format!(
            "the log holds {entries} records but checkpoint at {} commits to {}: records from seq {entries} on were removed{}",
            f.source,
            f.cp.size,
            if f.offbox { " (caught by the off-box copy)" } else { "" }
        )));
    }
    let mut out = format!(
        "OK {}: {entries} records in {} file(s), chain intact\n",
        log.display(),
        files.len()
    );
    let (on, off) = (
        found.iter().filter(|f| !f.offbox).count(),
        found.iter().filter(|f| f.offbox).count(),
    );
    let _ = writeln!(
        out,
        "  checkpoints: {on} on-box, {off} off-box, roots match{}",
        if opts.public_key.is_some() {
            ", signatures verified"
        } else {
            "; signatures NOT checked (no public key given)"
        }
    );
    if let Some(f) = found.last() {
        let _ = writeln!(
            out,
            "  newest checkpoint: size {} root {} ({})",
            f.cp.size,
            STANDARD.encode(f.cp.root),
            f.cp.time().unwrap_or("no time")
        );
    }
    if last_matched < entries {
        let _ = writeln!(
            out,
            "  note: records {last_matched}..{} are not covered by a checkpoint yet",
            entries - 1
        );
    }
    if opts.offbox.is_empty() {
        let _ = writeln!(
            out,
            "  note: no off-box checkpoints given; a cut-off tail after the newest on-box checkpoint cannot be detected"
        );
    }
    if let Some(n) = torn {
        let _ = writeln!(
            out,
            "  note: line {n} of the active file is torn (crash); it was never acknowledged and is cut at the next start"
        );
    }
    Ok(out)
}
