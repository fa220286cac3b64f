//! `zweck audit report`: who received what, where, on which basis, summed over log entries.
//!
//! A report verifies first: the logs are read once, through [`verify_fleet`], and every line
//! whose chain checked is summed as it goes by. The output states the verification's result
//! (entries, checkpoints, signatures, off-box coverage); a log that does not verify gets no
//! report unless `--unverified` is given, and then every page says so.
//!
//! Rows group entries by any of processor, country, mechanism, category, purpose, app and
//! period (day or month, UTC). A category row counts an entry once per category it
//! delivered, so category rows add up to more than the entries: the output says so and ends
//! with a total row that counts each entry once. `intent` lines of streamed bodies are not
//! counted as transfers (their `close` line carries the counts); blocked and rate-limited
//! entries are counted as refused, since nothing (or less) was transferred.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{self, Lines};
use super::period::{log_millis, Period};
use super::record::{Decision, Entry, Stage};
use super::verify::{verify_fleet, Fleet, Status, VerifyOptions};
use super::CliReport;

/// A grouping key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Processor,
    Country,
    Mechanism,
    Category,
    Purpose,
    App,
    Day,
    Month,
}

impl Dimension {
    /// Parses `processor`, `country`, `mechanism`, `category`, `purpose`, `app`, `day`,
    /// `month` (`period` = `month`).
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "processor" => Dimension::Processor,
            "country" | "jurisdiction" => Dimension::Country,
            "mechanism" => Dimension::Mechanism,
            "category" => Dimension::Category,
            "purpose" => Dimension::Purpose,
            "app" => Dimension::App,
            "day" => Dimension::Day,
            "month" | "period" => Dimension::Month,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Processor => "processor",
            Dimension::Country => "country",
            Dimension::Mechanism => "mechanism",
            Dimension::Category => "category",
            Dimension::Purpose => "purpose",
            Dimension::App => "app",
            Dimension::Day => "day",
            Dimension::Month => "month",
        }
    }
}

/// Output format of the auditor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Plain text columns (`report`).
    #[default]
    Table,
    Csv,
    Json,
    /// One self-contained page: inline CSS and SVG, no script, no network.
    Html,
    /// Markdown (`ropa`).
    Markdown,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "html" => Format::Html,
            "markdown" | "md" => Format::Markdown,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
            Format::Markdown => "markdown",
        }
    }
}

/// What to report.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// The logs and what verifies them (keys, off-box files, origin).
    pub evidence: VerifyOptions,
    /// Grouping, outermost first; empty = processor, country, mechanism.
    pub group_by: Vec<Dimension>,
    pub period: Period,
    pub format: Format,
    /// Report even when verification fails, marking every page of the output.
    pub unverified: bool,
}

/// One row's sums.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Transfers (entries other than `intent`).
    pub transfers: u64,
    pub records: u64,
    pub bytes: u64,
    /// Entries whose decision is `minimised`.
    pub minimised: u64,
    /// Entries refused (`blocked`, `rate_limited`).
    pub refused: u64,
    pub cross_border: u64,
}

impl Totals {
    fn add(&mut self, e: &Line<'_>) {
        self.transfers += 1;
        self.records += e.records;
        self.bytes += e.bytes;
        match e.decision {
            Decision::Minimised => self.minimised += 1,
            Decision::Blocked | Decision::RateLimited => self.refused += 1,
            Decision::Allowed => {}
        }
        if e.cross_border {
            self.cross_border += 1;
        }
    }

    fn cells(&self) -> [u64; 6] {
        [
            self.transfers,
            self.records,
            self.bytes,
            self.minimised,
            self.refused,
            self.cross_border,
        ]
    }
}

/// The column names after the dimensions.
pub const TOTAL_COLUMNS: [&str; 6] = [
    "transfers",
    "records",
    "bytes",
    "minimised",
    "refused",
    "cross_border",
];

/// Why a log's entries could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: io::Error },
    #[error("{}: no such log", path.display())]
    NoSuchLog { path: PathBuf },
    #[error("{}:{line}: not a transfer record: {reason}", path.display())]
    NotARecord {
        path: PathBuf,
        line: u64,
        reason: serde_json::Error,
    },
}

/// Calls `visit` with every whole line of a log (all segments, then the active file; a torn
/// last line is skipped), without checking the chain: what `--unverified` reports read.
pub fn read_lines(log: &Path, visit: &mut dyn FnMut(&[u8])) -> Result<(), ReadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |reason| ReadError::Io { path, reason }
    };
    let mut buf = Vec::new();
    let files = files::chain_files(log).map_err(io(log))?;
    if files.is_empty() {
        return Err(ReadError::NoSuchLog {
            path: log.to_path_buf(),
        });
    }
    for f in files {
        let mut lines = Lines::open(&f).map_err(io(&f))?;
        while let Some(true) = lines.next_line(&mut buf).map_err(io(&f))? {
            visit(&buf);
        }
    }
    Ok(())
}

/// Reads every whole transfer entry of a log, unverified (event entries are skipped).
pub fn read_entries(log: &Path) -> Result<Vec<Entry>, ReadError> {
    let mut out = Vec::new();
    let mut bad = None;
    let mut line = 0u64;
    read_lines(log, &mut |buf| {
        line += 1;
        match serde_json::from_slice(buf) {
            Ok(e) => out.push(e),
            // incident and containment entries are not transfers
            Err(_) if super::event::is_event(buf) => {}
            Err(reason) if bad.is_none() => {
                bad = Some(ReadError::NotARecord {
                    path: log.to_path_buf(),
                    line,
                    reason,
                });
            }
            Err(_) => {}
        }
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// What the report reads of a line: borrowed where the text has no escapes.
#[derive(Debug, Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    stage: Stage,
    #[serde(borrow)]
    app: Cow<'a, str>,
    #[serde(borrow)]
    purpose: Cow<'a, str>,
    #[serde(borrow)]
    processor: Cow<'a, str>,
    #[serde(borrow)]
    jurisdiction: Cow<'a, str>,
    cross_border: bool,
    #[serde(borrow)]
    transfer_mechanism: Mechanism<'a>,
    #[serde(borrow)]
    categories_delivered: Vec<Cow<'a, str>>,
    records: u64,
    bytes: u64,
    decision: Decision,
    #[serde(borrow)]
    policy_version: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct Mechanism<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// Names as small numbers, so a million entries cost lookups, not allocations.
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }
    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// At most this many grouping dimensions.
const MAX_DIMS: usize = 8;
type Key = [u32; MAX_DIMS];

/// Decisions in the order reports show them.
pub const DECISIONS: [Decision; 4] = [
    Decision::Allowed,
    Decision::Minimised,
    Decision::Blocked,
    Decision::RateLimited,
];

fn decision_index(d: Decision) -> usize {
    match d {
        Decision::Allowed => 0,
        Decision::Minimised => 1,
        Decision::Blocked => 2,
        Decision::RateLimited => 3,
    }
}

/// Everything a report shows, summed in one pass over the entries.
#[derive(Debug, Default)]
pub struct Aggregate {
    names: Names,
    dims: Vec<Dimension>,
    period: Period,
    rows: HashMap<Key, Totals>,
    /// Each entry in the period once.
    pub total: Totals,
    /// Cross-border transfers by (UTC day, country, processor, mechanism).
    over_time: HashMap<(i64, u32, u32, u32), Totals>,
    /// By (purpose, app, category delivered).
    categories: HashMap<(u32, u32, u32), Totals>,
    /// Entries per decision, by purpose.
    decisions: HashMap<u32, [u64; 4]>,
    /// Per policy version: first and last time seen, entries.
    policies: HashMap<u32, (i64, i64, u64)>,
    /// Times of the first and last entry in the period.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// `intent` lines (not counted as transfers).
    pub intents: u64,
    /// Event entries (`incident`, `containment`): in the chain, not transfers.
    pub events: u64,
    /// Lines that could not be read as transfer records (line, reason) and entries whose
    /// time is not one.
    pub bad: Option<String>,
}

impl Aggregate {
    pub fn new(dims: &[Dimension], period: Period) -> Aggregate {
        Aggregate {
            dims: dims.iter().copied().take(MAX_DIMS).collect(),
            period,
            ..Aggregate::default()
        }
    }

    /// Adds one log line.
    pub fn add_line(&mut self, bytes: &[u8]) {
        let line: Line<'_> = match serde_json::from_slice(bytes) {
            Ok(l) => l,
            Err(_) if super::event::is_event(bytes) => {
                self.events += 1;
                return;
            }
            Err(e) => {
                self.bad
                    .get_or_insert_with(|| format!("a line is not a transfer record: {e}"));
                return;
            }
        };
        let Some(t) = log_millis(&line.ts) else {
            self.bad
                .get_or_insert_with(|| "a line's ts is not a time".to_string());
            return;
        };
        if !self.period.contains(t) {
            return;
        }
        if line.stage == Stage::Intent {
            self.intents += 1;
            return;
        }
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
        self.total.add(&line);
        self.group(&line);
        let purpose = self.names.id(&line.purpose);
        let app = self.names.id(&line.app);
        self.decisions.entry(purpose).or_default()[decision_index(line.decision)] += 1;
        let version = self.names.id(&line.policy_version);
        let p = self.policies.entry(version).or_insert((t, t, 0));
        p.0 = p.0.min(t);
        p.1 = p.1.max(t);
        p.2 += 1;
        for c in &line.categories_delivered {
            let c = self.names.id(c);
            self.categories
                .entry((purpose, app, c))
                .or_default()
                .add(&line);
        }
        if line.cross_border {
            let key = (
                t.div_euclid(86_400_000),
                self.names.id(&line.jurisdiction),
                self.names.id(&line.processor),
                self.names.id(&line.transfer_mechanism.kind),
            );
            self.over_time.entry(key).or_default().add(&line);
        }
    }

    /// Adds the line to every row its keys name (only category has several).
    fn group(&mut self, line: &Line<'_>) {
        let mut key: Key = [0; MAX_DIMS];
        let mut category_at = None;
        for (i, d) in self.dims.iter().enumerate() {
            key[i] = match d {
                Dimension::Processor => self.names.id(&line.processor),
                Dimension::Country => self.names.id(&line.jurisdiction),
                Dimension::Mechanism => self.names.id(&line.transfer_mechanism.kind),
                Dimension::Purpose => self.names.id(&line.purpose),
                Dimension::App => self.names.id(&line.app),
                Dimension::Day => self.names.id(line.ts.get(..10).unwrap_or(&line.ts)),
                Dimension::Month => self.names.id(line.ts.get(..7).unwrap_or(&line.ts)),
                Dimension::Category => {
                    category_at = Some(i);
                    0
                }
            };
        }
        let Some(at) = category_at else {
            self.rows.entry(key).or_default().add(line);
            return;
        };
        if line.categories_delivered.is_empty() {
            key[at] = self.names.id("(none)");
            self.rows.entry(key).or_default().add(line);
        }
        for c in &line.categories_delivered {
            key[at] = self.names.id(c);
            self.rows.entry(key).or_default().add(line);
        }
    }

    /// The requested rows, sorted by their names.
    pub fn rows(&self) -> Vec<(Vec<String>, Totals)> {
        let n = self.dims.len();
        let mut rows: Vec<(Vec<String>, Totals)> = self
            .rows
            .iter()
            .map(|(k, t)| {
                (
                    k[..n]
                        .iter()
                        .map(|id| self.names.name(*id).to_string())
                        .collect(),
                    *t,
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    pub fn dims(&self) -> &[Dimension] {
        &self.dims
    }

    /// Cross-border transfers by (period, country, processor, mechanism); periods are days
    /// when the entries span at most 92 days, else months.
    pub fn over_time(&self) -> (bool, Vec<OverTime>) {
        let by_day = match (self.first, self.last) {
            (Some(f), Some(l)) => l - f <= 92 * 86_400_000,
            _ => true,
        };
        let mut merged: BTreeMap<(String, String, String, String), Totals> = BTreeMap::new();
        for ((day, c, p, m), t) in &self.over_time {
            let date = super::period::format_ms(day * 86_400_000);
            let period = if by_day { &date[..10] } else { &date[..7] }.to_string();
            let e = merged
                .entry((
                    period,
                    self.names.name(*c).to_string(),
                    self.names.name(*p).to_string(),
                    self.names.name(*m).to_string(),
                ))
                .or_default();
            for (a, b) in [
                (&mut e.transfers, t.transfers),
                (&mut e.records, t.records),
                (&mut e.bytes, t.bytes),
                (&mut e.minimised, t.minimised),
                (&mut e.refused, t.refused),
                (&mut e.cross_border, t.cross_border),
            ] {
                *a += b;
            }
        }
        (
            by_day,
            merged
                .into_iter()
                .map(|((a, b, c, d), t)| (a, b, c, d, t))
                .collect(),
        )
    }

    /// (purpose, app, category, totals), sorted.
    pub fn categories(&self) -> Vec<(String, String, String, Totals)> {
        let mut out: Vec<_> = self
            .categories
            .iter()
            .map(|((p, a, c), t)| {
                (
                    self.names.name(*p).to_string(),
                    self.names.name(*a).to_string(),
                    self.names.name(*c).to_string(),
                    *t,
                )
            })
            .collect();
        out.sort_by(|x, y| (&x.0, &x.1, &x.2).cmp(&(&y.0, &y.1, &y.2)));
        out
    }

    /// (purpose, entries per decision in [`DECISIONS`] order), sorted by purpose.
    pub fn decisions(&self) -> Vec<(String, [u64; 4])> {
        let mut out: Vec<_> = self
            .decisions
            .iter()
            .map(|(p, d)| (self.names.name(*p).to_string(), *d))
            .collect();
        out.sort();
        out
    }

    /// (policy version, first seen, last seen, entries), oldest first.
    pub fn policies(&self) -> Vec<(String, i64, i64, u64)> {
        let mut out: Vec<_> = self
            .policies
            .iter()
            .map(|(v, (f, l, n))| (self.names.name(*v).to_string(), *f, *l, *n))
            .collect();
        out.sort_by_key(|p| (p.1, p.2));
        out
    }
}

/// Cross-border transfers in one period: (period, country, processor, mechanism, totals).
pub type OverTime = (String, String, String, String, Totals);

/// A report: the verification it rests on and what the entries sum to.
#[derive(Debug)]
pub struct Report {
    pub fleet: Fleet,
    pub agg: Aggregate,
    pub period: Period,
}

impl Report {
    pub fn verified(&self) -> bool {
        self.fleet.verified()
    }
}

/// Verifies the logs and sums their entries in the same pass. A fleet that does not verify
/// is refused (the verification's text and exit code) unless `unverified`; then the entries
/// are read again without the chain (every whole line counts).
///
/// Verifying (two SHA-256 and a JSON parse per line) and summing (another parse) each take
/// about half of a report's time on a big log (docs/performance.md, "Auditor reports"), so
/// they run on two threads: the verification hands the lines that continued the chain to
/// `add` in chunks, in order.
pub fn gather(
    evidence: &VerifyOptions,
    unverified: bool,
    add: impl FnMut(usize, &[u8]) + Send,
) -> Result<Fleet, CliReport> {
    if evidence.logs.is_empty() {
        return Err(CliReport::new("no log given\n".into(), 2));
    }
    let fleet = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let summing = scope.spawn(move || {
            let mut add = add;
            for chunk in rx {
                chunk.each(&mut add);
            }
        });
        let mut chunk = Chunk::default();
        let fleet = verify_fleet(evidence, &mut |i, line| {
            chunk.push(i, line);
            if chunk.bytes.len() >= CHUNK_BYTES {
                // only fails when the summing thread is gone, i.e. it panicked: join says so
                let _ = tx.send(std::mem::take(&mut chunk));
            }
        });
        let _ = tx.send(chunk);
        drop(tx);
        if let Err(panic) = summing.join() {
            std::panic::resume_unwind(panic);
        }
        fleet
    });
    if fleet.verified() {
        return Ok(fleet);
    }
    if !unverified {
        let mut text = fleet.render_text();
        let _ = writeln!(
            text,
            "refused: the logs did not verify ({}); `--unverified` reports anyway and marks every page",
            fleet.word()
        );
        return Err(CliReport::new(text, fleet.exit_code()));
    }
    Ok(fleet)
}

/// Lines go from the verification to the summing thread in chunks of about this size.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks queued at most: the verification waits rather than buffering a whole log.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Consecutive lines of a fleet's logs: their bytes, and each line's log and end.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    ends: Vec<(usize, usize)>,
}

impl Chunk {
    fn push(&mut self, log: usize, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push((log, self.bytes.len()));
    }

    fn each(&self, add: &mut impl FnMut(usize, &[u8])) {
        let mut start = 0;
        for &(log, end) in &self.ends {
            add(log, &self.bytes[start..end]);
            start = end;
        }
    }
}

/// Builds the report's content (see [`gather`]).
pub fn build(opts: &ReportOptions) -> Result<Report, CliReport> {
    let dims = if opts.group_by.is_empty() {
        vec![
            Dimension::Processor,
            Dimension::Country,
            Dimension::Mechanism,
        ]
    } else {
        opts.group_by.clone()
    };
    let mut agg = Aggregate::new(&dims, opts.period);
    let fleet = gather(&opts.evidence, opts.unverified, |_, line| {
        agg.add_line(line);
    })?;
    if !fleet.verified() {
        // The verified pass stopped at the first bad line: read everything again.
        agg = Aggregate::new(&dims, opts.period);
        for log in &opts.evidence.logs {
            if let Err(e) = read_lines(log, &mut |line| agg.add_line(line)) {
                agg.bad.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(bad) = &agg.bad {
        return Err(CliReport::new(format!("UNREADABLE: {bad}\n"), 2));
    }
    Ok(Report {
        fleet,
        agg,
        period: opts.period,
    })
}

/// The report in its format on stdout, and the exit code: 0 when the logs verified, else
/// the verification's (the output then says UNVERIFIED on every page).
pub fn report(opts: &ReportOptions) -> CliReport {
    report_to(opts, &Output::default())
}

/// [`report`], written to a file (and signed) when `out` says so.
pub fn report_to(opts: &ReportOptions, out: &Output) -> CliReport {
    let r = match build(opts) {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let text = match opts.format {
        Format::Table | Format::Markdown => render_text(&r),
        Format::Csv => render_report_csv(&r),
        Format::Json => render_json(&r),
        Format::Html => super::html::report(&r),
    };
    emit(text, opts.format, &r.fleet, r.fleet.exit_code(), out)
}

/// Where a report goes: stdout, or a file, optionally with a detached signature beside it.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub path: Option<PathBuf>,
    /// The Ed25519 key (PKCS#8 PEM, e.g. `certs/audit.key`) that signs `<path>.sig`.
    pub sign: Option<PathBuf>,
}

/// Prints `text`, or writes it (and its signature) and prints what was written.
pub(crate) fn emit(
    text: String,
    format: Format,
    fleet: &Fleet,
    code: i32,
    out: &Output,
) -> CliReport {
    let Some(path) = &out.path else {
        if out.sign.is_some() {
            return CliReport::new(
                "--sign needs --output FILE (the signature goes to FILE.sig)\n".into(),
                2,
            );
        }
        return CliReport::new(text, code);
    };
    if let Err(e) = std::fs::write(path, text.as_bytes()) {
        return CliReport::new(format!("cannot write {}: {e}\n", path.display()), 2);
    }
    let mut said = format!(
        "{}\nwrote {} ({} bytes)\n",
        fleet.summary(),
        path.display(),
        text.len()
    );
    if let Some(key_path) = &out.sign {
        let key = match super::signature::load_key(key_path) {
            Ok(k) => k,
            Err(e) => return CliReport::new(format!("{e}\n"), 2),
        };
        let sig = super::signature::sign(text.as_bytes(), format.name(), fleet, &key);
        let mut sig_path = path.as_os_str().to_os_string();
        sig_path.push(".sig");
        let sig_path = PathBuf::from(sig_path);
        if let Err(e) = std::fs::write(&sig_path, sig) {
            return CliReport::new(format!("cannot write {}: {e}\n", sig_path.display()), 2);
        }
        let _ = writeln!(
            said,
            "wrote {} (check with: zweck audit verify-report {} --key <public key>)",
            sig_path.display(),
            path.display()
        );
    }
    CliReport::new(said, code)
}

/// Why the category rows add up to more than the total.
pub const CATEGORY_NOTE: &str = "an entry counts once under each category it delivered, so category rows add up to more than the total row, which counts each entry once";

/// The banner of output whose logs did not verify.
pub fn unverified_banner(fleet: &Fleet) -> String {
    format!(
        "UNVERIFIED REPORT: the transfer logs behind it did not verify ({}); do not rely on its figures",
        fleet.word()
    )
}

fn header_row(dims: &[Dimension]) -> Vec<String> {
    dims.iter()
        .map(|d| d.name().to_string())
        .chain(TOTAL_COLUMNS.iter().map(|c| (*c).to_string()))
        .collect()
}

fn body_rows(r: &Report) -> Vec<Vec<String>> {
    let dims = r.agg.dims();
    let mut rows: Vec<Vec<String>> = r
        .agg
        .rows()
        .into_iter()
        .map(|(k, t)| {
            k.into_iter()
                .chain(t.cells().iter().map(u64::to_string))
                .collect()
        })
        .collect();
    let mut total: Vec<String> = vec!["(all entries)".to_string()];
    total.extend(std::iter::repeat_n(
        String::new(),
        dims.len().saturating_sub(1),
    ));
    total.extend(r.agg.total.cells().iter().map(u64::to_string));
    rows.push(total);
    rows
}

fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let unverified = !r.verified();
    if unverified {
        let _ = writeln!(out, "{}\n", unverified_banner(&r.fleet));
    }
    let _ = writeln!(out, "Transfer log report");
    let _ = writeln!(out, "Verification: {}", r.fleet.summary());
    for l in &r.fleet.logs {
        let _ = writeln!(
            out,
            "  {} ({}): {}",
            l.log.display(),
            l.origin.as_deref().unwrap_or("no origin"),
            match &l.status {
                Status::Verified => format!("{} entries verified", l.entries),
                Status::Tampered(why) => format!("TAMPERED: {why}"),
                Status::Unverified(why) => format!("UNVERIFIED: {why}"),
            }
        );
        for n in &l.notes {
            let _ = writeln!(out, "    note: {n}");
        }
    }
    for n in &r.fleet.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    let _ = writeln!(out, "Period: {}", r.period.label());
    let dims = r.agg.dims();
    let _ = writeln!(
        out,
        "Grouped by: {}",
        dims.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
    );
    if dims.contains(&Dimension::Category) {
        let _ = writeln!(out, "Note: {CATEGORY_NOTE}.");
    }
    let _ = writeln!(
        out,
        "Columns: transfers = entries (intent lines of streamed bodies excluded), records = records delivered, refused = blocked or rate-limited, cross_border = entries to a third country\n"
    );
    out.push_str(&render_table(&header_row(dims), &body_rows(r)));
    if unverified {
        let _ = writeln!(out, "\n{}", unverified_banner(&r.fleet));
    }
    out
}

fn render_report_csv(r: &Report) -> String {
    let mut header = header_row(r.agg.dims());
    header.push("verification".into());
    let status = if r.verified() {
        r.fleet.summary()
    } else {
        format!("{} {}", unverified_banner(&r.fleet), r.fleet.summary())
    };
    let rows: Vec<Vec<String>> = body_rows(r)
        .into_iter()
        .map(|mut row| {
            row.push(status.clone());
            row
        })
        .collect();
    render_csv(&header, &rows)
}

/// The verification as JSON (reports embed it).
pub fn verification_json(fleet: &Fleet) -> serde_json::Value {
    let logs: Vec<serde_json::Value> = fleet
        .logs
        .iter()
        .map(|l| {
            let (status, reason) = match &l.status {
                Status::Verified => ("verified", None),
                Status::Tampered(w) => ("tampered", Some(w.clone())),
                Status::Unverified(w) => ("unverified", Some(w.clone())),
            };
            serde_json::json!({
                "log": l.log.display().to_string(),
                "origin": l.origin,
                "status": status,
                "reason": reason,
                "entries": l.entries,
                "files": l.files,
                "checkpoints_onbox": l.onbox,
                "checkpoints_offbox": l.offbox,
                "signatures_checked": l.signatures_checked,
                "newest_checkpoint": l.newest.as_ref().map(|n| serde_json::json!({
                    "size": n.size,
                    "time": n.time,
                    "note": n.note,
                })),
                "offbox_covers": l.offbox_size.min(l.entries),
                "notes": l.notes,
            })
        })
        .collect();
    serde_json::json!({
        "verified": fleet.verified(),
        "status": fleet.word(),
        "summary": fleet.summary(),
        "entries": fleet.entries(),
        "logs": logs,
        "notes": fleet.notes,
    })
}

fn render_json(r: &Report) -> String {
    let dims = r.agg.dims();
    let rows: Vec<serde_json::Value> = r
        .agg
        .rows()
        .into_iter()
        .map(|(k, t)| {
            let mut m = serde_json::Map::new();
            for (d, v) in dims.iter().zip(k) {
                m.insert(d.name().to_string(), serde_json::Value::String(v));
            }
            if let Ok(serde_json::Value::Object(tm)) = serde_json::to_value(t) {
                m.extend(tm);
            }
            serde_json::Value::Object(m)
        })
        .collect();
    let mut notes = Vec::new();
    if dims.contains(&Dimension::Category) {
        notes.push(CATEGORY_NOTE);
    }
    let doc = serde_json::json!({
        "report": "zweck transfer log report",
        "unverified_warning": (!r.verified()).then(|| unverified_banner(&r.fleet)),
        "verification": verification_json(&r.fleet),
        "period": {
            "label": r.period.label(),
            "from": r.period.from.map(super::period::format_ms),
            "until_inclusive": r.period.to.map(|t| super::period::format_ms(t - 1)),
        },
        "group_by": dims.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "rows": rows,
        "total": r.agg.total,
        "notes": notes,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// Left-aligned text columns, numbers right-aligned.
pub(crate) fn render_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if numeric(c) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(header, &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// RFC 4180 CSV.
pub(crate) fn render_csv(header: &[String], rows: &[Vec<String>]) -> String {
    let cell = |s: &String| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.clone()
        }
    };
    let mut out = String::new();
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = r.iter().map(cell).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}
