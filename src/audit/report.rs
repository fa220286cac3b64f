//! `zweck audit report`: who received what, where, on which basis, summed over log entries.
//!
//! Rows group entries by any of processor, country, mechanism, category, purpose, app and
//! period (day or month, UTC). A category row counts each entry once per category it
//! delivered, so category rows do not add up to the entry total. `intent` lines of streamed
//! bodies are not counted as transfers (their `close` line carries the counts); blocked and
//! rate-limited entries are counted separately, since nothing (or less) was transferred.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{self, Lines};
use super::record::{Decision, Entry, Stage};
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
    fn name(self) -> &'static str {
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

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            _ => return None,
        })
    }
}

/// What to report.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    pub logs: Vec<PathBuf>,
    /// Grouping, outermost first; empty = processor, country, mechanism.
    pub group_by: Vec<Dimension>,
    /// Entries with `ts >=` this RFC 3339 prefix (e.g. `2025-01` or `2025-01-15`).
    pub since: Option<String>,
    /// Entries with `ts <` this RFC 3339 prefix.
    pub until: Option<String>,
    pub format: Format,
}

/// One row's sums.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Transfers (entries other than `intent`).
    pub transfers: u64,
    pub records: u64,
    pub bytes: u64,
    /// Entries refused (`blocked`, `rate_limited`).
    pub refused: u64,
    pub cross_border: u64,
}

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

/// Reads every whole entry of a log (all segments, active file; a torn last line is
/// skipped). Chain checks are `verify`'s job; this only needs the content.
pub fn read_entries(log: &Path) -> Result<Vec<Entry>, ReadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |reason| ReadError::Io { path, reason }
    };
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let files = files::chain_files(log).map_err(io(log))?;
    if files.is_empty() {
        return Err(ReadError::NoSuchLog {
            path: log.to_path_buf(),
        });
    }
    for f in files {
        let mut lines = Lines::open(&f).map_err(io(&f))?;
        loop {
            let line = lines.number;
            match lines.next_line(&mut buf).map_err(io(&f))? {
                None | Some(false) => break,
                Some(true) => out.push(serde_json::from_slice(&buf).map_err(|reason| {
                    ReadError::NotARecord {
                        path: f.clone(),
                        line,
                        reason,
                    }
                })?),
            }
        }
    }
    Ok(out)
}

fn keys(e: &Entry, dim: Dimension) -> Vec<String> {
    match dim {
        Dimension::Processor => vec![e.processor.clone()],
        Dimension::Country => vec![e.jurisdiction.clone()],
        Dimension::Mechanism => vec![e.transfer_mechanism.kind.clone()],
        Dimension::Category => {
            if e.categories_delivered.is_empty() {
                vec!["(none)".to_string()]
            } else {
                e.categories_delivered.clone()
            }
        }
        Dimension::Purpose => vec![e.purpose.clone()],
        Dimension::App => vec![e.app.clone()],
        Dimension::Day => vec![e.ts.get(..10).unwrap_or(&e.ts).to_string()],
        Dimension::Month => vec![e.ts.get(..7).unwrap_or(&e.ts).to_string()],
    }
}

/// Sums entries by the requested dimensions.
pub fn aggregate(
    entries: &[Entry],
    group_by: &[Dimension],
    since: Option<&str>,
    until: Option<&str>,
) -> BTreeMap<Vec<String>, Totals> {
    let mut rows: BTreeMap<Vec<String>, Totals> = BTreeMap::new();
    for e in entries {
        if since.is_some_and(|s| e.ts.as_str() < s) || until.is_some_and(|u| e.ts.as_str() >= u) {
            continue;
        }
        if e.stage == Stage::Intent {
            continue;
        }
        // The cartesian product of each dimension's keys (only category has several).
        let mut combos: Vec<Vec<String>> = vec![Vec::new()];
        for d in group_by {
            let ks = keys(e, *d);
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    ks.iter().map(move |k| {
                        let mut c = c.clone();
                        c.push(k.clone());
                        c
                    })
                })
                .collect();
        }
        for c in combos {
            let t = rows.entry(c).or_default();
            t.transfers += 1;
            t.records += e.records;
            t.bytes += e.bytes;
            if matches!(e.decision, Decision::Blocked | Decision::RateLimited) {
                t.refused += 1;
            }
            if e.cross_border {
                t.cross_border += 1;
            }
        }
    }
    rows
}

/// Builds the report.
pub fn report(opts: &ReportOptions) -> CliReport {
    let mut entries = Vec::new();
    for log in &opts.logs {
        match read_entries(log) {
            Ok(mut e) => entries.append(&mut e),
            Err(why) => return CliReport::new(format!("UNREADABLE {why}\n"), 2),
        }
    }
    let dims = if opts.group_by.is_empty() {
        vec![
            Dimension::Processor,
            Dimension::Country,
            Dimension::Mechanism,
        ]
    } else {
        opts.group_by.clone()
    };
    let rows = aggregate(
        &entries,
        &dims,
        opts.since.as_deref(),
        opts.until.as_deref(),
    );
    let mut header: Vec<String> = dims.iter().map(|d| d.name().to_string()).collect();
    header.extend(
        ["transfers", "records", "bytes", "refused", "cross_border"]
            .iter()
            .map(std::string::ToString::to_string),
    );
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, t)| {
            let mut r = k.clone();
            r.extend(
                [t.transfers, t.records, t.bytes, t.refused, t.cross_border]
                    .iter()
                    .map(u64::to_string),
            );
            r
        })
        .collect();
    let text = match opts.format {
        Format::Table => render_table(&header, &table),
        Format::Csv => render_csv(&header, &table),
        Format::Json => {
            let objs: Vec<serde_json::Value> = rows
                .iter()
                .map(|(k, t)| {
                    let mut m = serde_json::Map::new();
                    for (d, v) in dims.iter().zip(k) {
                        m.insert(d.name().to_string(), serde_json::Value::String(v.clone()));
                    }
                    if let Ok(serde_json::Value::Object(tm)) = serde_json::to_value(t) {
                        m.extend(tm);
                    }
                    serde_json::Value::Object(m)
                })
                .collect();
            let mut s = serde_json::to_string_pretty(&objs).unwrap_or_else(|_| "[]".into());
            s.push('\n');
            s
        }
    };
    CliReport::new(text, 0)
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
