//! `zweck audit verify LOG...`: chain, checkpoints, signatures and off-box coverage; names
//! the first bad record. The reports run the same verification first ([`verify_fleet`]) and
//! state its result, so what an auditor signs off always says whether the log behind it held.
//!
//! What each check catches: `prev` catches an edited, removed, inserted or reordered line
//! (at the line after it); `seq` catches a gap or duplicate; a checkpoint's Merkle root
//! catches an edit of the newest lines, which no later `prev` covers; a checkpoint larger
//! than the log (on-box or, decisively, off-box) catches a cut-off tail; signatures make
//! checkpoints unforgeable without the key.
//!
//! Three outcomes per log: verified; tampered (exit 1: something does not match); unverified
//! (exit 2: something needed to decide is missing or unreadable: the log, an off-box file that
//! was named, the key, or which origin is this log's). Several logs are one fleet: each
//! instance writes its own log under its own origin, and one shared off-box file may hold all
//! their checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::checkpoint::{parse_notes, Checkpoint, SignedNote, SIG_PREFIX};
use super::files::{self, ChainBreak, ChainState, Lines};
use super::keys::KeyRing;
use super::merkle::Hash;
use super::CliReport;

/// Print progress every this many bytes.
const PROGRESS_STEP: u64 = 64 << 20;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Active log paths; each one's rotated segments and `.checkpoints` are found next to it.
    pub logs: Vec<PathBuf>,
    /// The keys that may have signed (`audit.pub` or a key history). Empty: signatures are
    /// not checked, and the log is not verified.
    pub keys: KeyRing,
    /// Off-box checkpoint files (notes of other origins in them are ignored). Each must exist.
    pub offbox: Vec<PathBuf>,
    /// The origin to expect, for a single log whose on-box checkpoints are gone; by default
    /// the one in its on-box checkpoints.
    pub origin: Option<String>,
    /// Progress lines on stderr for big logs.
    pub progress: bool,
}

/// The outcome for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Verified,
    /// Something needed to decide is missing or unreadable (exit 2).
    Unverified(String),
    /// Something does not match (exit 1).
    Tampered(String),
}

/// The newest checkpoint of a log, as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newest {
    pub size: u64,
    pub root: Hash,
    pub time: Option<String>,
    /// The whole signed note (body, blank line, signature lines).
    pub note: String,
}

/// What verifying one log found.
#[derive(Debug, Clone)]
pub struct LogCheck {
    pub log: PathBuf,
    pub origin: Option<String>,
    pub status: Status,
    /// Entries whose chain was checked (all of them when verified).
    pub entries: u64,
    pub files: usize,
    pub onbox: usize,
    pub offbox: usize,
    pub signatures_checked: bool,
    pub newest: Option<Newest>,
    /// Tree size of the newest off-box checkpoint of this origin (0: none).
    pub offbox_size: u64,
    /// Merkle root of the first `entries` entries.
    pub root: Hash,
    /// Facts an auditor should know that are no failure (uncovered tail, torn note, ...).
    pub notes: Vec<String>,
}

/// What verifying several logs (one fleet) found.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub logs: Vec<LogCheck>,
    /// Whether off-box files were given.
    pub offbox_given: bool,
    /// Facts about the fleet as a whole (origins in the off-box files without a log).
    pub notes: Vec<String>,
}

impl Fleet {
    /// 0 verified, 1 tampered, 2 unverified.
    pub fn exit_code(&self) -> i32 {
        if self
            .logs
            .iter()
            .any(|l| matches!(l.status, Status::Tampered(_)))
        {
            1
        } else if self.verified() {
            0
        } else {
            2
        }
    }

    /// Every log verified.
    pub fn verified(&self) -> bool {
        !self.logs.is_empty() && self.logs.iter().all(|l| l.status == Status::Verified)
    }

    /// `VERIFIED`, `TAMPERED` or `UNVERIFIED`.
    pub fn word(&self) -> &'static str {
        match self.exit_code() {
            0 => "VERIFIED",
            1 => "TAMPERED",
            _ => "UNVERIFIED",
        }
    }

    pub fn entries(&self) -> u64 {
        self.logs.iter().map(|l| l.entries).sum()
    }

    /// One line: the verdict and what it rests on.
    pub fn summary(&self) -> String {
        let cps: usize = self.logs.iter().map(|l| l.onbox + l.offbox).sum();
        let offbox: usize = self.logs.iter().map(|l| l.offbox).sum();
        let covered: u64 = self.logs.iter().map(|l| l.offbox_size.min(l.entries)).sum();
        let signatures = if self.logs.iter().all(|l| l.signatures_checked) {
            "signatures verified"
        } else {
            "signatures NOT checked"
        };
        let offbox_text = if self.offbox_given {
            format!(
                "off-box copies ({offbox}) cover {covered} of {} entries",
                self.entries()
            )
        } else {
            "no off-box copies given".to_string()
        };
        format!(
            "{}: {} log(s), {} entries, {cps} checkpoints, {signatures}, {offbox_text}",
            self.word(),
            self.logs.len(),
            self.entries()
        )
    }

    /// The report `zweck audit verify` prints: one paragraph per log, then fleet notes.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for l in &self.logs {
            match &l.status {
                Status::Verified => {
                    let _ = writeln!(
                        out,
                        "OK {}: {} records in {} file(s), chain intact",
                        l.log.display(),
                        l.entries,
                        l.files
                    );
                }
                Status::Tampered(why) => {
                    let _ = writeln!(out, "TAMPERED {}: {why}", l.log.display());
                }
                Status::Unverified(why) => {
                    let _ = writeln!(out, "UNVERIFIED {}: {why}", l.log.display());
                }
            }
            for line in l.details() {
                let _ = writeln!(out, "  {line}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

impl LogCheck {
    /// The lines under a log's verdict.
    pub fn details(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(o) = &self.origin {
            out.push(format!("origin: {o}"));
        }
        out.push(format!(
            "checkpoints: {} on-box, {} off-box{}",
            self.onbox,
            self.offbox,
            if self.signatures_checked {
                ", signatures verified"
            } else {
                "; signatures NOT checked (no --key given)"
            }
        ));
        if let Some(n) = &self.newest {
            out.push(format!(
                "newest checkpoint: size {} root {} ({})",
                n.size,
                STANDARD.encode(n.root),
                n.time.as_deref().unwrap_or("no time")
            ));
        }
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        out
    }
}

/// Verifies every log; one paragraph per log.
pub fn verify(opts: &VerifyOptions) -> CliReport {
    if opts.logs.is_empty() {
        return CliReport::new("no log given\n".into(), 2);
    }
    let fleet = verify_fleet(opts, &mut |_, _| {});
    CliReport::new(fleet.render_text(), fleet.exit_code())
}

/// A line that continued the chain: the log's index in the fleet and the line's bytes.
pub type Visit<'v> = dyn FnMut(usize, &[u8]) + 'v;

/// Verifies a fleet of logs. `visit` sees every line whose chain checked, in order, so a
/// report reads the log once; a log that fails stops being visited at its first bad line.
pub fn verify_fleet(opts: &VerifyOptions, visit: &mut Visit<'_>) -> Fleet {
    let mut fleet = Fleet {
        offbox_given: !opts.offbox.is_empty(),
        ..Fleet::default()
    };
    // Off-box files, read once for the whole fleet; each one named must exist.
    let mut offbox_notes = Vec::new();
    let mut offbox_failure = None;
    for p in &opts.offbox {
        match std::fs::metadata(p) {
            Ok(_) => match load_notes(p) {
                Ok(notes) => offbox_notes.push((p.clone(), notes)),
                Err(f) => offbox_failure = Some(f),
            },
            Err(e) => {
                offbox_failure = Some(Failure::Unverified(format!(
                    "off-box file {}: {e}: a cut-off tail cannot be ruled out without it",
                    p.display()
                )));
            }
        }
    }
    // Each log's origin from its on-box checkpoints, so the others can be told apart.
    let onbox: Vec<Result<Notes, Failure>> = opts
        .logs
        .iter()
        .map(|l| load_notes(&files::checkpoints_path(l)))
        .collect();
    let claimed: Vec<Option<String>> = onbox
        .iter()
        .map(|n| n.as_ref().ok().and_then(Notes::origin))
        .collect();
    for (i, log) in opts.logs.iter().enumerate() {
        let others: BTreeSet<&str> = claimed
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, o)| o.as_deref())
            .collect();
        let mut check = LogCheck {
            log: log.clone(),
            origin: None,
            status: Status::Verified,
            entries: 0,
            files: 0,
            onbox: 0,
            offbox: 0,
            signatures_checked: !opts.keys.is_empty(),
            newest: None,
            offbox_size: 0,
            root: super::merkle::root(&[]),
            notes: Vec::new(),
        };
        let result = match &onbox[i] {
            Err(f) => Err(f.clone()),
            Ok(notes) => {
                let cx = LogCx {
                    opts,
                    onbox: notes,
                    offbox: &offbox_notes,
                    others: &others,
                    index: i,
                };
                cx.verify(&mut check, visit)
            }
        };
        check.status = match (result, &offbox_failure) {
            (Err(Failure::Tampered(why)), _) => Status::Tampered(why),
            (Err(Failure::Unverified(why)), _) => Status::Unverified(why),
            (Ok(()), Some(Failure::Unverified(why) | Failure::Tampered(why))) => {
                Status::Unverified(why.clone())
            }
            (Ok(()), None) if opts.keys.is_empty() => Status::Unverified(
                "signatures not checked: give the signer's public key (--key certs/audit.pub, or the key history certs/audit.keys)".into(),
            ),
            (Ok(()), None) => Status::Verified,
        };
        fleet.logs.push(check);
    }
    fleet_checks(&mut fleet, &offbox_notes);
    fleet
}

/// Two logs under one origin cannot be told apart in a shared off-box file; origins there
/// without a log given are instances the report leaves out.
fn fleet_checks(fleet: &mut Fleet, offbox: &[(PathBuf, Notes)]) {
    let mut by_origin: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, l) in fleet.logs.iter().enumerate() {
        if let Some(o) = &l.origin {
            by_origin.entry(o.clone()).or_default().push(i);
        }
    }
    for (origin, idx) in &by_origin {
        if idx.len() > 1 {
            let names: Vec<String> = idx
                .iter()
                .map(|i| fleet.logs[*i].log.display().to_string())
                .collect();
            for i in idx {
                if !matches!(fleet.logs[*i].status, Status::Tampered(_)) {
                    fleet.logs[*i].status = Status::Unverified(format!(
                        "logs {} all sign as origin {origin}: give each instance its own audit.origin",
                        names.join(", ")
                    ));
                }
            }
        }
    }
    let seen: BTreeSet<String> = offbox
        .iter()
        .flat_map(|(_, n)| n.notes.iter())
        .filter_map(|(_, n)| Checkpoint::parse_body(&n.body).ok().map(|c| c.origin))
        .collect();
    let missing: Vec<&String> = seen
        .iter()
        .filter(|o| !by_origin.contains_key(*o))
        .collect();
    if !missing.is_empty() {
        fleet.notes.push(format!(
            "the off-box files hold checkpoints of {} origin(s) whose log was not given: {} (an instance left out of this verification)",
            missing.len(),
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
}

#[derive(Debug, Clone)]
enum Failure {
    Tampered(String),
    Unverified(String),
}

/// The notes of one checkpoint file, and whether its last note was torn.
#[derive(Debug, Clone, Default)]
struct Notes {
    path: PathBuf,
    notes: Vec<(String, SignedNote)>,
    torn: bool,
}

impl Notes {
    fn origin(&self) -> Option<String> {
        self.notes
            .iter()
            .find_map(|(_, n)| Checkpoint::parse_body(&n.body).ok().map(|c| c.origin))
    }
}

/// Reads a checkpoint file (a missing one is empty). A malformed note is tampering, except
/// a torn last one (a crash while it was appended; the next start cuts an on-box one), which
/// is skipped and reported.
fn load_notes(path: &Path) -> Result<Notes, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Notes {
                path: path.to_path_buf(),
                ..Notes::default()
            })
        }
        Err(e) => return Err(Failure::Unverified(format!("{}: {e}", path.display()))),
    };
    let notes = parse_notes(&text);
    let count = notes.len();
    let mut out = Notes {
        path: path.to_path_buf(),
        ..Notes::default()
    };
    for (i, n) in notes.into_iter().enumerate() {
        match n {
            Ok(note) => out
                .notes
                .push((format!("{}:{}", path.display(), note.line), note)),
            Err(_) if i + 1 == count && !text.ends_with("\n\n") => out.torn = true,
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

/// A checkpoint and where it came from.
struct Found {
    cp: Checkpoint,
    note: SignedNote,
    source: String,
    offbox: bool,
}

/// One log's verification.
struct LogCx<'a> {
    opts: &'a VerifyOptions,
    onbox: &'a Notes,
    offbox: &'a [(PathBuf, Notes)],
    /// Origins the fleet's other logs claim.
    others: &'a BTreeSet<&'a str>,
    index: usize,
}

impl LogCx<'_> {
    /// The origin: given, or the on-box checkpoints', or the only off-box origin no other
    /// log of the fleet claims.
    fn origin(&self) -> Result<Option<String>, Failure> {
        if let Some(o) = &self.opts.origin {
            return Ok(Some(o.clone()));
        }
        if let Some(o) = self.onbox.origin() {
            return Ok(Some(o));
        }
        let candidates: BTreeSet<String> = self
            .offbox
            .iter()
            .flat_map(|(_, n)| n.notes.iter())
            .filter_map(|(_, n)| Checkpoint::parse_body(&n.body).ok().map(|c| c.origin))
            .filter(|o| !self.others.contains(o.as_str()))
            .collect();
        match candidates.len() {
            0 | 1 => Ok(candidates.into_iter().next()),
            n => Err(Failure::Unverified(format!(
                "the log has no on-box checkpoints and the off-box files hold {n} origins: name this log's with --origin"
            ))),
        }
    }

    fn verify(&self, check: &mut LogCheck, visit: &mut Visit<'_>) -> Result<(), Failure> {
        let log = &check.log.clone();
        let files = files::chain_files(log)
            .map_err(|e| Failure::Unverified(format!("cannot list its files: {e}")))?;
        if files.is_empty() {
            return Err(Failure::Unverified(
                "no such log (no active file, no segments)".into(),
            ));
        }
        check.files = files.len();
        let origin = self.origin()?;
        check.origin.clone_from(&origin);
        let found = self.checkpoints(origin.as_deref(), check)?;
        for torn in [self.onbox]
            .into_iter()
            .chain(self.offbox.iter().map(|(_, n)| n))
            .filter(|n| n.torn)
        {
            check.notes.push(format!(
                "the last note of {} is torn (a crash while it was written); it was skipped{}",
                torn.path.display(),
                if std::ptr::eq(torn, self.onbox) {
                    " and is cut at the next start"
                } else {
                    ""
                }
            ));
        }
        let (entries, last_matched, torn) = self.chain(log, &files, &found, check, visit)?;
        check.entries = entries;
        if let Some(f) = found.iter().rev().find(|f| f.cp.size > entries) {
            return Err(Failure::Tampered(format!(
                "the log holds {entries} records but checkpoint at {} commits to {}: records from seq {entries} on were removed{}",
                f.source,
                f.cp.size,
                if f.offbox { " (caught by the off-box copy)" } else { "" }
            )));
        }
        check.onbox = found.iter().filter(|f| !f.offbox).count();
        check.offbox = found.iter().filter(|f| f.offbox).count();
        check.offbox_size = found
            .iter()
            .filter(|f| f.offbox)
            .map(|f| f.cp.size)
            .max()
            .unwrap_or(0);
        check.newest = found.last().map(|f| Newest {
            size: f.cp.size,
            root: f.cp.root,
            time: f.cp.time().map(str::to_string),
            note: note_text(&f.note),
        });
        if last_matched < entries {
            check.notes.push(format!(
                "records {last_matched}..{} are not covered by a checkpoint yet",
                entries - 1
            ));
        }
        if self.opts.offbox.is_empty() {
            check.notes.push("no off-box checkpoints given; a cut-off tail after the newest on-box checkpoint cannot be detected".into());
        } else if check.offbox_size < entries {
            check.notes.push(format!(
                "records {}..{} are not covered by an off-box checkpoint: a cut there would go unnoticed",
                check.offbox_size,
                entries - 1
            ));
        }
        if let Some(n) = torn {
            check.notes.push(format!("line {n} of the active file is torn (crash); it was never acknowledged and is cut at the next start"));
        }
        Ok(())
    }

    /// This origin's checkpoints, on-box first, each signature checked; sorted by size.
    fn checkpoints(&self, origin: Option<&str>, check: &LogCheck) -> Result<Vec<Found>, Failure> {
        let mut found = Vec::new();
        let sources =
            std::iter::once((false, self.onbox)).chain(self.offbox.iter().map(|(_, n)| (true, n)));
        for (is_off, notes) in sources {
            for (src, note) in &notes.notes {
                let cp = Checkpoint::parse_body(&note.body).map_err(|why| {
                    Failure::Tampered(format!("checkpoint at {src} is malformed: {why}"))
                })?;
                if Some(cp.origin.as_str()) != origin {
                    if is_off {
                        continue; // another instance's checkpoint
                    }
                    return Err(Failure::Tampered(format!(
                        "checkpoint at {src} has origin {:?}, expected {:?}",
                        cp.origin,
                        origin.unwrap_or("")
                    )));
                }
                if check.signatures_checked {
                    self.opts
                        .keys
                        .verify(note)
                        .map_err(|e| Failure::Tampered(format!("checkpoint at {src}: {e}")))?;
                }
                found.push(Found {
                    cp,
                    note: note.clone(),
                    source: src.clone(),
                    offbox: is_off,
                });
            }
        }
        found.sort_by_key(|f| f.cp.size);
        Ok(found)
    }

    /// Walks every line: the chain, and each checkpoint's root at its size. Returns the
    /// entries, the largest matched checkpoint size and a torn last line.
    fn chain(
        &self,
        log: &Path,
        files: &[PathBuf],
        found: &[Found],
        check: &mut LogCheck,
        visit: &mut Visit<'_>,
    ) -> Result<(u64, u64, Option<u64>), Failure> {
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
        let segments = files::segments(log).map_err(|e| Failure::Unverified(e.to_string()))?;
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
                .map_err(|e| Failure::Unverified(format!("{}: {e}", file.display())))?;
            loop {
                let number = lines.number;
                let before = lines.offset;
                let complete = match lines.next_line(&mut buf) {
                    Ok(None) => break,
                    Ok(Some(c)) => c,
                    Err(e) => return Err(Failure::Unverified(format!("{}: {e}", file.display()))),
                };
                done_bytes += lines.offset - before;
                if self.opts.progress && done_bytes >= next_progress {
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
                        // A crash left half a line that was never acknowledged; the next
                        // start cuts it. Not tampering by itself (a checkpoint beyond it is).
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
                check.entries = chain.next_seq;
                visit(self.index, &buf);
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
        check.root = chain.frontier.root();
        Ok((chain.next_seq, last_matched, torn))
    }
}

/// A note as it appears in a checkpoint file: body, blank line, signature lines.
pub(crate) fn note_text(n: &SignedNote) -> String {
    let mut out = format!("{}\n", n.body);
    for s in &n.signatures {
        let mut blob = s.key_hash.to_vec();
        blob.extend_from_slice(&s.signature);
        let _ = writeln!(out, "{SIG_PREFIX}{} {}", s.name, STANDARD.encode(blob));
    }
    out
}
