//! `zweck incident open | list | close`: the facts of a personal-data breach from the
//! verified transfer log, the 72-hour clock of Art. 33(1) in the controller's time zone, and
//! the Art. 33(3) notification draft in markdown, HTML and JSON, each signed like the audit
//! reports (a detached `.sig` that `zweck audit verify-report` checks).
//!
//! Verification comes first, as for every report: a log that does not verify gets no draft
//! (there is no `--unverified` here; figures sent to a supervisory authority must rest on a
//! log that held). Then one pass over the verified lines ([`facts`]), the deadline
//! ([`clock`]), the draft ([`draft`]), and the record in the incident store ([`store`]),
//! which the CLI writes instead of the transfer log (the proxy is the log's one writer).
//!
//! Files: `facts` (what the log says), `clock` (72 h, time zones), `draft` (Art. 33(3) and its
//! renderings), `store` (incident records), this file (the three commands).

pub mod clock;
pub mod draft;
pub mod facts;
pub mod store;

use std::fmt::Write as _;
use std::path::PathBuf;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::audit::report::gather;
use crate::audit::verify::VerifyOptions;
use crate::audit::{CliReport, Format};
use clock::Deadline;
use draft::Controller;
use facts::{Collector, Scope};
use store::{Incident, Status, Store, StoreError};

/// What `open` needs.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub evidence: VerifyOptions,
    pub scope: Scope,
    /// When the controller became aware.
    pub detected_at: Timestamp,
    pub since: Option<Timestamp>,
    /// Inclusive, like `audit report --until` with an instant.
    pub until: Option<Timestamp>,
    /// "Now": ends a window without `--until` and is when the time left is computed.
    pub as_of: Timestamp,
    pub time_zone: TimeZone,
    pub controller: Controller,
    pub store: Store,
    /// Markdown, HTML, JSON (all three when empty).
    pub formats: Vec<Format>,
    /// Where the drafts go (default: the store's directory of the incident).
    pub out: Option<PathBuf>,
    /// The Ed25519 key (PKCS#8 PEM, `certs/audit.key`) that signs each draft.
    pub sign: PathBuf,
}

/// File name of a draft in a format.
pub fn file_name(format: Format) -> &'static str {
    match format {
        Format::Html => "notification.html",
        Format::Json => "notification.json",
        _ => "notification.md",
    }
}

fn refused(text: String, code: i32) -> CliReport {
    CliReport {
        text: if text.ends_with('\n') {
            text
        } else {
            text + "\n"
        },
        exit_code: code,
    }
}

/// `zweck incident open`. Exit 0 with the drafts written, 1 when the logs are tampered, 2
/// when something needed is missing or unreadable.
pub fn open(opts: &OpenOptions) -> CliReport {
    let key = match crate::audit::signature::load_key(&opts.sign) {
        Ok(k) => k,
        Err(e) => return refused(format!("{e} (the drafts are signed: give --sign KEY)"), 2),
    };
    // `--until` is inclusive; without it the window ends at "now" (inclusive too)
    let to_ms = opts.until.unwrap_or(opts.as_of).as_millisecond() + 1;
    let (window, start) = match opts.since {
        Some(since) => (
            facts::Window::new(clock::millis(since), to_ms, "--since".into()),
            None,
        ),
        None => match facts::first_detection(&opts.evidence.logs, &opts.scope, Some(to_ms)) {
            Ok(Some(s)) => (
                facts::Window::new(
                    s.from_ms,
                    to_ms,
                    format!(
                        "the first incident entry for this scope: seq {} ({}, rule {}), from its window_start",
                        s.seq, s.incident, s.rule
                    ),
                ),
                Some(s),
            ),
            Ok(None) => {
                return refused(
                    "no incident entry in the log matches this app and purpose, so the window has no start: give --since (a containment taken by hand names no incident: when the breach began is the investigation's finding)".into(),
                    2,
                )
            }
            Err(e) => return refused(e, 2),
        },
    };
    if window.from_ms >= window.to_ms {
        return refused("the window is empty: its start is after its end".into(), 2);
    }
    let mut collector = Collector::new(opts.scope.clone(), window);
    let fleet = match gather(&opts.evidence, false, |_, line| collector.add(line)) {
        Ok(f) => f,
        Err(refusal) => return refusal,
    };
    let facts = match collector.finish().and_then(|f| match &start {
        Some(s) => f.check_start(s).map(|()| f),
        None => Ok(f),
    }) {
        Ok(f) => f,
        Err(why) => return refused(why, 2),
    };
    let deadline = Deadline::new(opts.detected_at, opts.as_of, opts.time_zone.clone());
    let day = opts
        .detected_at
        .to_zoned_datetime(opts.time_zone.clone())
        .strftime("%Y%m%d")
        .to_string();
    let id = match opts.store.claim(&day) {
        Ok(id) => id,
        Err(e) => return refused(e.to_string(), 2),
    };
    let mut incident = Incident {
        id: id.clone(),
        status: Status::Open,
        detected_at: clock::utc(opts.detected_at),
        opened_at: clock::utc(opts.as_of),
        scope: opts.scope.clone(),
        window_from: facts.window.from.clone(),
        window_to: facts.window.to.clone(),
        notify_by: clock::utc(deadline.due),
        records_concerned: facts.records_concerned,
        detections: facts
            .detections
            .iter()
            .map(|d| d.incident.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        reports: Vec::new(),
        closed_at: None,
        close_reason: None,
    };
    let dir = opts
        .out
        .clone()
        .unwrap_or_else(|| opts.store.reports_dir(&id));
    let formats = if opts.formats.is_empty() {
        vec![Format::Markdown, Format::Html, Format::Json]
    } else {
        opts.formats.clone()
    };
    let files: Vec<(Format, PathBuf)> = formats
        .into_iter()
        .map(|f| (f, dir.join(file_name(f))))
        .collect();
    incident.reports = files
        .iter()
        .map(|(_, p)| {
            p.strip_prefix(&opts.store.dir)
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    let d = draft::build(&incident, &facts, &deadline, &opts.controller, &fleet);
    // A failure from here on gives the claimed id back (only the store's own directory is
    // removed, never an --out directory the user named).
    let failed = |why: String| {
        if opts.out.is_none() {
            let _ = std::fs::remove_dir_all(opts.store.reports_dir(&id));
        }
        refused(why, 2)
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return failed(format!("cannot create {}: {e}", dir.display()));
    }
    for (format, path) in &files {
        let text = match format {
            Format::Html => d.html(),
            Format::Json => d.json(),
            _ => d.markdown(),
        };
        let sig = crate::audit::signature::sign(text.as_bytes(), format.name(), &fleet, &key);
        let mut sig_path = path.clone().into_os_string();
        sig_path.push(".sig");
        let sig_path = PathBuf::from(sig_path);
        for (p, bytes) in [(path, text.as_bytes()), (&sig_path, sig.as_bytes())] {
            if let Err(e) = crate::secrets::write_atomic(p, bytes, store::RECORD_MODE) {
                return failed(e.to_string());
            }
        }
    }
    if let Err(e) = opts.store.save(&incident) {
        return failed(e.to_string());
    }
    let tz = &opts.time_zone;
    let mut text = String::new();
    let _ = writeln!(text, "{}", fleet.summary());
    let _ = writeln!(
        text,
        "opened {id} ({} in {})",
        opts.store.record_path(&id).display(),
        opts.store.dir.display()
    );
    let _ = writeln!(
        text,
        "notify the supervisory authority by {} ({}): {}",
        clock::local(deadline.due, tz),
        clock::utc(deadline.due),
        deadline.left_text()
    );
    let _ = writeln!(
        text,
        "window {} to {} ({}); records concerned {} (from processor {}, to processor {}); data subjects at most {} (approximate)",
        facts.window.from,
        facts.window.to,
        facts.window.basis,
        facts.records_concerned,
        facts.from_processor.records,
        facts.to_processor.records,
        facts.data_subjects.upper_bound
    );
    let _ = writeln!(
        text,
        "categories: {}; special categories: {}; third countries: {}; detections {}, containment steps {}",
        facts
            .categories
            .iter()
            .map(|c| c.category.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if facts.special_categories.is_empty() { "none".to_string() } else { facts.special_categories.join(", ") },
        if facts.third_countries.is_empty() { "none".to_string() } else { facts.third_countries.join(", ") },
        facts.detections.len(),
        facts.containment.len()
    );
    let _ = writeln!(
        text,
        "{} placeholders to complete before sending",
        d.placeholders.len()
    );
    for (_, p) in &files {
        let _ = writeln!(
            text,
            "wrote {} and {}.sig (check with: zweck audit verify-report {} --key <public key>)",
            p.display(),
            p.display(),
            p.display()
        );
    }
    CliReport { text, exit_code: 0 }
}

/// `zweck incident list`: every incident, its deadline and time left (as of `as_of`).
pub fn list(store: &Store, tz: &TimeZone, as_of: Timestamp) -> CliReport {
    let incidents = match store.list() {
        Ok(l) => l,
        Err(e) => return refused(e.to_string(), 2),
    };
    if incidents.is_empty() {
        return CliReport {
            text: format!("no incidents in {}\n", store.dir.display()),
            exit_code: 0,
        };
    }
    let header: Vec<String> = [
        "id",
        "status",
        "detected",
        "notify by",
        "left",
        "scope",
        "records",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            let at = |s: &str| {
                s.parse::<Timestamp>()
                    .map_or_else(|_| s.to_string(), |t| clock::local(t, tz))
            };
            let left = match (i.status, i.detected_at.parse::<Timestamp>()) {
                (Status::Closed, _) => format!(
                    "closed {}",
                    i.closed_at.as_deref().map(at).unwrap_or_default()
                ),
                (Status::Open, Ok(aware)) => Deadline::new(aware, as_of, tz.clone()).left_text(),
                (Status::Open, Err(_)) => "?".into(),
            };
            vec![
                i.id.clone(),
                match i.status {
                    Status::Open => "open".into(),
                    Status::Closed => "closed".into(),
                },
                at(&i.detected_at),
                at(&i.notify_by),
                left,
                format!(
                    "{}/{}{}",
                    i.scope.app.as_deref().unwrap_or("*"),
                    i.scope.purpose.as_deref().unwrap_or("*"),
                    i.scope
                        .category
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ),
                i.records_concerned.to_string(),
            ]
        })
        .collect();
    CliReport {
        text: crate::audit::report::render_table(&header, &rows),
        exit_code: 0,
    }
}

/// `zweck incident close ID`: exit 0 closed, 1 already closed, 2 unknown or unreadable.
pub fn close(
    store: &Store,
    id: &str,
    reason: Option<String>,
    at: Timestamp,
    tz: &TimeZone,
) -> CliReport {
    match store.close(id, clock::utc(at), reason) {
        Ok(i) => CliReport {
            text: format!(
                "closed {} at {}{}\n",
                i.id,
                clock::local(at, tz),
                i.close_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            exit_code: 0,
        },
        Err(e @ StoreError::AlreadyClosed(_)) => refused(e.to_string(), 1),
        Err(e) => refused(e.to_string(), 2),
    }
}

/// The store to use: `--store`, else `incidents/` beside the first log.
pub fn store_for(dir: Option<PathBuf>, logs: &[PathBuf]) -> Option<Store> {
    dir.or_else(|| logs.first().map(|l| store::beside(l)))
        .map(Store::new)
}
