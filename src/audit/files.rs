//! The files of one log and recovery after a crash.
//!
//! A log `L` is the active file `L`, sealed segments `L.<first seq, 20 digits>` (so names sort
//! by seq), the on-box checkpoints `L.checkpoints`, and torn tails cut by recovery
//! `L.torn.<seq>`, and the writer's lock file `L.lock` (one writing process per log). Rotation
//! renames the active file to a segment; the chain and the Merkle tree run on across files as
//! if they were one.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::checkpoint::{parse_notes, verify_note, ParsedNote};
use super::error::{AuditError, Damage};
use super::merkle::{leaf_hash, Frontier, Hash};
use super::record::{Head, GENESIS_PREV};
use super::time;

/// Digits of a segment's seq suffix.
const SEQ_DIGITS: usize = 20;

fn with_suffix(log: &Path, suffix: &str) -> PathBuf {
    let mut s = log.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `L.<first seq>`.
pub fn segment_path(log: &Path, first_seq: u64) -> PathBuf {
    with_suffix(log, &format!(".{first_seq:0SEQ_DIGITS$}"))
}

/// `L.checkpoints`.
pub fn checkpoints_path(log: &Path) -> PathBuf {
    with_suffix(log, ".checkpoints")
}

/// `L.lock`: the writer's lock file (held while a process appends to `L`).
pub fn lock_path(log: &Path) -> PathBuf {
    with_suffix(log, ".lock")
}

/// `L.torn.<seq>`: bytes recovery cut off, kept for inspection.
pub fn torn_path(log: &Path, seq: u64) -> PathBuf {
    with_suffix(log, &format!(".torn.{seq}"))
}

/// fsyncs the directory holding `path`, making renames and creations in it durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The sealed segments of a log, ordered by first seq.
pub fn segments(log: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = match log.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = log.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let fname = entry.file_name();
        let Some(f) = fname.to_str() else { continue };
        let Some(rest) = f.strip_prefix(&prefix) else {
            continue;
        };
        if rest.len() == SEQ_DIGITS && rest.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(seq) = rest.parse::<u64>() {
                out.push((seq, dir.join(f)));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every file of a log in chain order: segments, then the active file if it exists.
pub fn chain_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = segments(log)?.into_iter().map(|(_, p)| p).collect();
    if std::fs::metadata(log).is_ok() {
        files.push(log.to_path_buf());
    }
    Ok(files)
}

/// Reads a file's lines. Bounded by the size the file had when opened, so a device or a
/// file that grows while being read never makes this loop forever.
pub(crate) struct Lines {
    reader: BufReader<io::Take<File>>,
    /// Byte offset of the next line.
    pub offset: u64,
    /// 1-based number of the next line.
    pub number: u64,
    pub len: u64,
}

impl Lines {
    pub fn open(path: &Path) -> io::Result<Lines> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        Ok(Lines {
            reader: BufReader::with_capacity(1 << 20, f.take(len)),
            offset: 0,
            number: 1,
            len,
        })
    }

    /// The next line with its `\n` stripped, and whether the `\n` was there.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
        buf.clear();
        let n = self.reader.read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.offset += n as u64;
        self.number += 1;
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
        }
        Ok(Some(complete))
    }
}

/// Why a line does not continue the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("not a log line (JSON error at column {column})")]
    NotALine { column: usize },
    #[error("seq is {found}, expected {expected}")]
    Seq { found: u64, expected: u64 },
    /// The line before it was altered, removed or inserted.
    #[error("prev does not match the SHA-256 of the previous line")]
    Prev,
    /// The last line has no newline (a crash while it was written).
    #[error("last line is incomplete")]
    Incomplete,
}

/// The chain state after the last line: what the writer continues from.
#[derive(Debug, Clone)]
pub(crate) struct ChainState {
    pub next_seq: u64,
    /// SHA-256 of the last line (or the genesis zeros).
    pub prev: Hash,
    pub frontier: Frontier,
}

impl ChainState {
    pub fn new() -> Self {
        Self {
            next_seq: 0,
            prev: GENESIS_PREV,
            frontier: Frontier::new(),
        }
    }

    /// Checks that `line` continues the chain and advances it; `Err` says why not.
    pub fn accept(&mut self, line: &[u8]) -> Result<Head, ChainBreak> {
        let head: Head = serde_json::from_slice(line)
            .map_err(|e| ChainBreak::NotALine { column: e.column() })?;
        if head.seq != self.next_seq {
            return Err(ChainBreak::Seq {
                found: head.seq,
                expected: self.next_seq,
            });
        }
        let mut expected = [0u8; 64];
        // 32 bytes always fit 64 hex digits; no allocation per line (verify reads millions)
        let _ = hex::encode_to_slice(self.prev, &mut expected);
        if head.prev.as_bytes() != expected {
            return Err(ChainBreak::Prev);
        }
        self.advance(line);
        Ok(head)
    }

    /// Advances over a line known to be good.
    pub fn advance(&mut self, line: &[u8]) {
        self.prev = Sha256::digest(line).into();
        self.frontier.push(leaf_hash(line));
        self.next_seq += 1;
    }
}

/// What `open` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Entries in the log after recovery.
    pub entries: u64,
    /// Bytes of a torn tail cut off, and where they were kept.
    pub cut: Option<(u64, PathBuf)>,
    /// Tree size of the newest on-box checkpoint.
    pub last_checkpoint: u64,
}

pub(crate) struct Recovered {
    pub chain: ChainState,
    pub active_first_seq: u64,
    /// Seconds since the epoch of the active file's first entry.
    pub active_started: Option<u64>,
    pub report: RecoveryReport,
}

fn corrupt(path: &Path, reason: Damage) -> AuditError {
    AuditError::Corrupt {
        path: path.display().to_string(),
        reason,
    }
}

/// Reads the whole log, checks the chain, cuts a torn tail of the active file back to the
/// last whole line, and checks no acknowledged entry is missing (an on-box checkpoint
/// larger than the log means entries were lost).
pub(crate) fn recover(log: &Path, key: Option<(&str, &[u8; 32])>) -> Result<Recovered, AuditError> {
    let mut chain = ChainState::new();
    let mut buf = Vec::new();
    for (first, seg) in segments(log).map_err(|e| AuditError::io(log, e))? {
        if first != chain.next_seq {
            return Err(corrupt(
                &seg,
                Damage::SegmentStart {
                    expected: chain.next_seq,
                },
            ));
        }
        let mut lines = Lines::open(&seg).map_err(|e| AuditError::io(&seg, e))?;
        loop {
            let number = lines.number;
            match lines
                .next_line(&mut buf)
                .map_err(|e| AuditError::io(&seg, e))?
            {
                None => break,
                Some(false) => return Err(corrupt(&seg, Damage::SealedMidLine { line: number })),
                Some(true) => {
                    chain
                        .accept(&buf)
                        .map_err(|why| corrupt(&seg, Damage::Line { line: number, why }))?;
                }
            }
        }
    }
    let active_first_seq = chain.next_seq;
    let mut active_started = None;
    let mut report = RecoveryReport::default();
    if std::fs::metadata(log).is_ok() {
        let mut lines = Lines::open(log).map_err(|e| AuditError::io(log, e))?;
        let mut good_len = 0u64;
        let mut bad: Option<(u64, ChainBreak)> = None;
        loop {
            let number = lines.number;
            match lines
                .next_line(&mut buf)
                .map_err(|e| AuditError::io(log, e))?
            {
                None => break,
                Some(complete) => {
                    if bad.is_some() {
                        // After a bad line only torn garbage may follow: a line that still
                        // parses means the middle of the log is damaged, not its tail.
                        if complete && serde_json::from_slice::<Head>(&buf).is_ok() {
                            if let Some((line, why)) = bad.take() {
                                return Err(corrupt(log, Damage::Line { line, why }));
                            }
                        }
                        continue;
                    }
                    let result = if complete {
                        let before = chain.clone();
                        match chain.accept(&buf) {
                            Ok(head) => Ok(head),
                            Err(why) => {
                                chain = before;
                                // A whole line that parses but breaks the chain is damage.
                                if serde_json::from_slice::<Head>(&buf).is_ok() {
                                    return Err(corrupt(log, Damage::Line { line: number, why }));
                                }
                                Err(why)
                            }
                        }
                    } else {
                        Err(ChainBreak::Incomplete)
                    };
                    match result {
                        Ok(head) => {
                            if active_started.is_none() {
                                active_started = time::parse_secs(&head.ts);
                            }
                            good_len = lines.offset;
                        }
                        Err(why) => bad = Some((number, why)),
                    }
                }
            }
        }
        if let Some((number, why)) = bad {
            let cut = lines.len - good_len;
            let saved = torn_path(log, chain.next_seq);
            tracing::warn!(
                log = %log.display(),
                line = number,
                bytes = cut,
                reason = %why,
                "transfer log: torn tail cut back to the last whole line"
            );
            let torn = read_range(log, good_len, cut).map_err(|e| AuditError::io(log, e))?;
            std::fs::write(&saved, torn).map_err(|e| AuditError::io(&saved, e))?;
            let f = OpenOptions::new()
                .write(true)
                .open(log)
                .map_err(|e| AuditError::io(log, e))?;
            f.set_len(good_len).map_err(|e| AuditError::io(log, e))?;
            f.sync_all().map_err(|e| AuditError::io(log, e))?;
            report.cut = Some((cut, saved));
        }
    }
    report.entries = chain.next_seq;
    cut_torn_checkpoint(&checkpoints_path(log))?;
    // The newest on-box checkpoint must not be ahead of the log.
    let cps = read_checkpoints(&checkpoints_path(log)).map_err(|e| AuditError::io(log, e))?;
    for note in cps.into_iter().flatten() {
        let size = match key {
            Some((name, pk)) => match verify_note(&note, name, pk) {
                Ok(cp) => cp.size,
                Err(_) => continue,
            },
            None => match super::checkpoint::Checkpoint::parse_body(&note.body) {
                Ok(cp) => cp.size,
                Err(_) => continue,
            },
        };
        report.last_checkpoint = report.last_checkpoint.max(size);
    }
    if report.last_checkpoint > chain.next_seq {
        return Err(corrupt(
            log,
            Damage::CheckpointAhead {
                checkpointed: report.last_checkpoint,
                entries: chain.next_seq,
            },
        ));
    }
    Ok(Recovered {
        chain,
        active_first_seq,
        active_started,
        report,
    })
}

/// A crash while appending a checkpoint can leave half a note at the end of the on-box
/// checkpoint file; cut it so the file parses whole again. Damage before the last note is
/// left alone for `verify` to report.
fn cut_torn_checkpoint(path: &Path) -> Result<(), AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AuditError::io(path, e)),
    };
    let notes = super::checkpoint::parse_notes_with_end(&text);
    let Some((Err(_), _)) = notes.last() else {
        return Ok(());
    };
    let good = notes
        .iter()
        .rev()
        .skip(1)
        .find(|(r, _)| r.is_ok())
        .map_or(0, |(_, end)| *end);
    tracing::warn!(path = %path.display(), bytes = text.len() - good, "transfer log: torn checkpoint cut");
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| AuditError::io(path, e))?;
    f.set_len(good as u64)
        .map_err(|e| AuditError::io(path, e))?;
    f.sync_all().map_err(|e| AuditError::io(path, e))
}

fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    use std::io::Seek;
    let mut f = File::open(path)?;
    f.seek(io::SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    f.take(len).read_to_end(&mut out)?;
    Ok(out)
}

/// Reads a file of signed notes; a missing file is empty.
pub fn read_checkpoints(path: &Path) -> io::Result<Vec<ParsedNote>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_notes(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Appends a note to a file and syncs it (the off-box file form).
pub(crate) fn append_note(path: &Path, note: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    // One write: a crash between two would leave a note without its separator.
    let mut buf = note.as_bytes().to_vec();
    buf.push(b'\n');
    f.write_all(&buf)?;
    f.sync_data()
}
