//! The streaming governor: buffers the first bytes until the header row is complete, reads
//! the delimiter from it, decides the header once, then runs every further chunk through the
//! strict transformer. Memory is one row, never the body.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;

use super::header::plan_header;
use super::report::CsvReport;
use super::rows::{cell_action, row_filter};
use super::{CsvFailure, CsvPolicy};
use crate::body::csv::{CellAction, CsvError, CsvLimits, CsvTransformer, Delimiter};
use crate::policy::set::{Mode, PolicySet};

impl<S: Deref<Target = PolicySet>> CsvPolicy<S> {
    /// The streaming governor of one body.
    pub fn governor(self, limits: CsvLimits) -> CsvGovernor<S> {
        let shadow = self.purpose.mode == Mode::Shadow;
        CsvGovernor {
            policy: self,
            limits,
            pending: Vec::new(),
            delimiter: None,
            probe: None,
            transformer: None,
            report: CsvReport::new(shadow),
            spent: false,
        }
    }
}

/// The streaming governor of one CSV body; `policy::csv`'s module docs say what it decides.
pub struct CsvGovernor<S = Arc<PolicySet>> {
    policy: CsvPolicy<S>,
    limits: CsvLimits,
    /// Raw bytes held back until the header row is complete.
    pending: Vec<u8>,
    delimiter: Option<Delimiter>,
    /// Reads the header row with the same parser, before anything is decided.
    probe: Option<CsvTransformer>,
    transformer: Option<CsvTransformer>,
    report: CsvReport,
    spent: bool,
}

impl<S> fmt::Debug for CsvGovernor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvGovernor")
            .field("policy", &self.policy)
            .field("delimiter", &self.delimiter)
            .field("streaming", &self.transformer.is_some())
            .finish_non_exhaustive()
    }
}

/// The result of reading a header row's first field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniff {
    NeedMore,
    Found(Delimiter),
    /// The first name is followed by the line end (or the body ends): one column.
    SingleColumn,
    /// The header row does not start with a quote.
    Unquoted,
    /// Something other than a delimiter or a line end follows the first name.
    Bad,
}

const DELIMITERS: [Delimiter; 6] = [
    Delimiter::Comma,
    Delimiter::Tab,
    Delimiter::Pipe,
    Delimiter::Semicolon,
    Delimiter::Caret,
    Delimiter::Backquote,
];

/// Salesforce quotes every header name, so the byte after the first closing quote is the
/// delimiter (or the line end, for one column).
fn sniff(head: &[u8], eof: bool) -> Sniff {
    match head.first() {
        None if eof => return Sniff::SingleColumn,
        None => return Sniff::NeedMore,
        Some(b'"') => {}
        Some(_) => return Sniff::Unquoted,
    }
    let mut i = 1;
    loop {
        let Some(q) = head[i..].iter().position(|b| *b == b'"') else {
            // Unterminated so far; at the end the parser reports it.
            return if eof {
                Sniff::SingleColumn
            } else {
                Sniff::NeedMore
            };
        };
        let j = i + q;
        match head.get(j + 1) {
            None if eof => return Sniff::SingleColumn,
            None => return Sniff::NeedMore,
            Some(b'"') => i = j + 2,
            Some(b'\r' | b'\n') => return Sniff::SingleColumn,
            Some(b) => {
                return DELIMITERS
                    .iter()
                    .find(|d| d.byte() == *b)
                    .map_or(Sniff::Bad, |d| Sniff::Found(*d))
            }
        }
    }
}

impl<S: Deref<Target = PolicySet>> CsvGovernor<S> {
    /// The account of this body (shared; clone it before handing the body on).
    pub fn report(&self) -> CsvReport {
        self.report.clone()
    }

    /// True once the header row was read and decided: from then on rows stream.
    pub fn streaming(&self) -> bool {
        self.transformer.is_some()
    }

    /// Governs one more chunk; returns the output completed so far. Until the header row is
    /// complete nothing is returned. A refusal is returned when the header is decided, before
    /// any output; after any error the governor is spent.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, CsvFailure> {
        if self.spent {
            return Err(CsvFailure::Spent);
        }
        let r = self.feed_inner(chunk);
        if r.is_err() {
            self.spent = true;
        }
        r
    }

    /// Ends the body: completes the last row (or a header-only body).
    pub fn finish(&mut self) -> Result<Bytes, CsvFailure> {
        if self.spent {
            return Err(CsvFailure::Spent);
        }
        self.spent = true;
        let mut out = Vec::new();
        if self.transformer.is_none() {
            if self.pending.is_empty() {
                self.report.lock().complete = true;
                return Ok(Bytes::new());
            }
            if self.delimiter.is_none() {
                if !self.choose_delimiter(true)? {
                    return Err(CsvFailure::Delimiter);
                }
                let pending = std::mem::take(&mut self.pending);
                let r = self.probe_mut()?.feed(&pending);
                self.pending = pending;
                r.map_err(CsvFailure::Malformed)?;
            }
            let probe = self.probe_mut()?;
            if probe.columns().is_empty() {
                probe.finish().map_err(CsvFailure::Malformed)?;
            }
            self.start(&mut out)?;
        }
        let t = self.transformer.as_mut().ok_or(CsvFailure::Spent)?;
        let tail = t.finish().map_err(CsvFailure::Malformed)?;
        out.extend_from_slice(&tail);
        self.report.lock().complete = true;
        Ok(Bytes::from(out))
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Result<Bytes, CsvFailure> {
        if let Some(t) = self.transformer.as_mut() {
            return t.feed(chunk).map_err(CsvFailure::Malformed);
        }
        self.pending.extend_from_slice(chunk);
        if self.delimiter.is_none() {
            if !self.choose_delimiter(false)? {
                if self.pending.len() > self.limits.max_row_bytes {
                    return Err(CsvFailure::Malformed(CsvError::RowTooLarge {
                        record: 1,
                        limit: self.limits.max_row_bytes,
                    }));
                }
                return Ok(Bytes::new());
            }
            // The probe reads everything held so far.
            let pending = std::mem::take(&mut self.pending);
            let r = self.probe_mut()?.feed(&pending);
            self.pending = pending;
            r.map_err(CsvFailure::Malformed)?;
        } else {
            self.probe_mut()?
                .feed(chunk)
                .map_err(CsvFailure::Malformed)?;
        }
        if self.probe_mut()?.columns().is_empty() {
            return Ok(Bytes::new());
        }
        let mut out = Vec::new();
        self.start(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Decides the delimiter from the bytes held; false when more are needed.
    fn choose_delimiter(&mut self, eof: bool) -> Result<bool, CsvFailure> {
        let found = sniff(&self.pending, eof);
        let chosen = match (found, self.policy.delimiter) {
            (Sniff::NeedMore, _) => return Ok(false),
            (Sniff::Bad, _) | (Sniff::Unquoted, None) => return Err(CsvFailure::Delimiter),
            (Sniff::Found(d), Some(job)) if d != job => return Err(CsvFailure::Delimiter),
            (Sniff::Found(d), _) => d,
            (Sniff::SingleColumn | Sniff::Unquoted, Some(job)) => job,
            (Sniff::SingleColumn, None) => Delimiter::Comma,
        };
        self.delimiter = Some(chosen);
        self.probe = Some(CsvTransformer::new(
            chosen,
            self.limits,
            |_| CellAction::Drop,
            |_| false,
        ));
        Ok(true)
    }

    fn probe_mut(&mut self) -> Result<&mut CsvTransformer, CsvFailure> {
        self.probe.as_mut().ok_or(CsvFailure::Spent)
    }

    /// The header is known: decide, then run the held bytes through the real transformer.
    fn start(&mut self, out: &mut Vec<u8>) -> Result<(), CsvFailure> {
        let probe = self.probe.take().ok_or(CsvFailure::Spent)?;
        let header: Vec<String> = probe.columns().to_vec();
        let delimiter = self.delimiter.unwrap_or(Delimiter::Comma);
        let plan = Arc::new(plan_header(&self.policy, &header));
        let shadow = self.policy.purpose.mode == Mode::Shadow;
        {
            let mut s = self.report.lock();
            s.received = vec![false; plan.columns.len()];
            s.delivered = vec![false; plan.columns.len()];
            s.plan = Some(Arc::clone(&plan));
            s.refusal = plan.refusal.clone();
        }
        if let Some(r) = &plan.refusal {
            if !shadow {
                return Err(CsvFailure::Refused(r.clone()));
            }
        }
        let withheld: Arc<Vec<AtomicBool>> =
            Arc::new(plan.groups.iter().map(|_| AtomicBool::new(false)).collect());
        let mut actions: HashMap<String, CellAction> = HashMap::new();
        for (name, c) in header.iter().zip(&plan.columns) {
            actions.insert(name.clone(), cell_action(c, shadow, &withheld));
        }
        let filter = row_filter(Arc::clone(&plan), self.report.clone(), withheld, shadow);
        let mut t = CsvTransformer::new(
            delimiter,
            self.limits,
            move |name| actions.remove(name).unwrap_or(CellAction::Drop),
            filter,
        );
        let pending = std::mem::take(&mut self.pending);
        let first = t.feed(&pending).map_err(CsvFailure::Malformed)?;
        out.extend_from_slice(&first);
        self.transformer = Some(t);
        Ok(())
    }
}
