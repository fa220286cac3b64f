//! Streaming CSV minimisation for Salesforce Bulk API 2.0 results and ingest uploads.
//!
//! Bulk results are the largest personal-data bodies Zweck sees (CRM-APIS.md §1.3, §1.5), so
//! they are transformed as a stream: [`CsvTransformer::feed`] takes chunks split anywhere (inside
//! a quoted field, between the CR and LF of a line end) and returns the output rows completed so
//! far. Only the current record is buffered, capped by [`CsvLimits::max_row_bytes`]; memory does
//! not grow with the body.
//!
//! The header row names the columns. The caller's plan maps each column name, once, to a
//! [`CellAction`]: keep it, drop the whole column, or replace each value. A row filter (consent)
//! sees every row by column name, with the *original* values (a consent column may itself be
//! dropped from the output) and removes rows it rejects. Output re-quotes every field the way
//! Salesforce writes it (`"..."`, quotes doubled), with the input's delimiter and line ending.
//! A plan that drops every column yields an empty body (a line without fields would read back
//! as one empty field), and its rows count as removed.
//!
//! RFC 4180 is read strictly, because a lenient reader and the CRM's client could split a
//! record differently, and then a value could slip out under the wrong column: a quote inside
//! an unquoted field, text after a closing quote, a lone CR, a record with a different number
//! of fields than the header, duplicate column names, an unterminated quote at the end, and
//! bytes that are not UTF-8 are all errors ([`CsvError`]). Errors name record numbers, never
//! values.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

/// The field separators Salesforce Bulk API 2.0 offers (`columnDelimiter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delimiter {
    Comma,
    Tab,
    Pipe,
    Semicolon,
    Caret,
    Backquote,
}

impl Delimiter {
    /// The separator byte.
    pub fn byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Tab => b'\t',
            Delimiter::Pipe => b'|',
            Delimiter::Semicolon => b';',
            Delimiter::Caret => b'^',
            Delimiter::Backquote => b'`',
        }
    }

    /// Parses the Bulk API 2.0 name (`COMMA`, `TAB`, `PIPE`, `SEMICOLON`, `CARET`,
    /// `BACKQUOTE`), case-insensitively.
    pub fn from_salesforce(name: &str) -> Option<Delimiter> {
        let name = name.to_ascii_uppercase();
        Some(match name.as_str() {
            "COMMA" => Delimiter::Comma,
            "TAB" => Delimiter::Tab,
            "PIPE" => Delimiter::Pipe,
            "SEMICOLON" => Delimiter::Semicolon,
            "CARET" => Delimiter::Caret,
            "BACKQUOTE" => Delimiter::Backquote,
            _ => return None,
        })
    }
}

/// What happens to one column.
pub enum CellAction {
    /// The values pass unchanged.
    Keep,
    /// The column is removed, header included.
    Drop,
    /// Each value is replaced by the function's result (mask, pseudonymise, generalise...).
    Replace(Box<dyn Fn(&str) -> String + Send + Sync>),
}

impl fmt::Debug for CellAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CellAction::Keep => f.write_str("Keep"),
            CellAction::Drop => f.write_str("Drop"),
            CellAction::Replace(_) => f.write_str("Replace(..)"),
        }
    }
}

/// One data row as the filter sees it: original values by column name.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a Columns,
    text: &'a str,
    ends: &'a [usize],
}

impl<'a> Row<'a> {
    /// The value of a column, `None` when there is no such column.
    pub fn get(&self, column: &str) -> Option<&'a str> {
        self.columns.index.get(column).map(|i| self.cell(*i))
    }

    /// The value at a column position.
    pub fn cell(&self, index: usize) -> &'a str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text[start..self.ends[index]]
    }

    /// The number of cells (equal to the number of columns).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the row has no cells (never true for a parsed row).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Column names and values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.columns
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), self.cell(i)))
    }
}

#[derive(Debug, Default)]
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

/// The caps of a transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvLimits {
    /// Most bytes one record may take (unquoted content; the header counts too).
    pub max_row_bytes: usize,
}

impl Default for CsvLimits {
    /// 1 MiB per record: far beyond Salesforce's 131,072-character long text areas.
    fn default() -> CsvLimits {
        CsvLimits {
            max_row_bytes: 1024 * 1024,
        }
    }
}

/// Why a CSV body was refused. `record` counts from 1 (the header is record 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("record {record} is larger than {limit} bytes")]
    RowTooLarge { record: u64, limit: usize },
    #[error("record {record} has {found} fields, the header has {expected}")]
    Ragged {
        record: u64,
        expected: usize,
        found: usize,
    },
    #[error("record {record} has a quote inside an unquoted field")]
    BareQuote { record: u64 },
    #[error("record {record} has text after a closing quote")]
    TextAfterQuote { record: u64 },
    #[error("record {record} has a carriage return not followed by a line feed")]
    BareCarriageReturn { record: u64 },
    #[error("record {record} ends inside a quoted field")]
    UnterminatedQuote { record: u64 },
    #[error("record {record} is not valid UTF-8")]
    InvalidUtf8 { record: u64 },
    #[error("header column {column} repeats an earlier column name")]
    DuplicateColumn { column: usize },
    #[error("the transformer was used after an error or after finish")]
    Spent,
}

/// Rows counted by a transformation (data rows; the header is not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsvStats {
    pub rows_emitted: u64,
    pub rows_removed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: the end, or the first half of `""`.
    QuoteInQuoted,
    /// After a CR outside quotes: only LF may follow.
    AfterCr,
}

type Plan = Box<dyn FnMut(&str) -> CellAction + Send>;
type Filter = Box<dyn FnMut(&Row<'_>) -> bool + Send>;

/// A streaming CSV transformer. See the module docs.
pub struct CsvTransformer {
    delimiter: u8,
    limits: CsvLimits,
    plan: Option<Plan>,
    filter: Filter,
    columns: Columns,
    actions: Vec<CellAction>,
    line_ending: &'static [u8],
    state: State,
    /// The current record's unquoted content, fields back to back.
    row: Vec<u8>,
    /// End offset of each completed field of the current record in `row`.
    ends: Vec<usize>,
    /// Records started so far (the current one included).
    record: u64,
    /// Whether the current record has any byte yet (to tell "no record" from "one empty field").
    in_record: bool,
    stats: CsvStats,
    spent: bool,
    /// Whether the plan keeps (or replaces) at least one column.
    any_kept: bool,
}

impl fmt::Debug for CsvTransformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvTransformer")
            .field("delimiter", &(self.delimiter as char))
            .field("columns", &self.columns.names.len())
            .field("record", &self.record)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl CsvTransformer {
    /// A transformer. `plan` is called once per header column; `filter` once per data row
    /// (return `false` to remove the row).
    pub fn new(
        delimiter: Delimiter,
        limits: CsvLimits,
        plan: impl FnMut(&str) -> CellAction + Send + 'static,
        filter: impl FnMut(&Row<'_>) -> bool + Send + 'static,
    ) -> CsvTransformer {
        CsvTransformer {
            delimiter: delimiter.byte(),
            limits,
            plan: Some(Box::new(plan)),
            filter: Box::new(filter),
            columns: Columns::default(),
            actions: Vec::new(),
            line_ending: b"\n",
            state: State::FieldStart,
            row: Vec::new(),
            ends: Vec::new(),
            record: 0,
            in_record: false,
            stats: CsvStats::default(),
            spent: false,
            any_kept: false,
        }
    }

    /// Rows emitted and removed so far.
    pub fn stats(&self) -> CsvStats {
        self.stats
    }

    /// The header's column names (empty until the header was read).
    pub fn columns(&self) -> &[String] {
        &self.columns.names
    }

    /// Transforms one more chunk; returns the output of the records it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, CsvError> {
        if self.spent {
            return Err(CsvError::Spent);
        }
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 8);
        let result = self.feed_into(chunk, &mut out);
        if result.is_err() {
            self.spent = true;
        }
        result.map(|()| Bytes::from(out))
    }

    /// Ends the body: completes an unterminated last record and returns its output.
    pub fn finish(&mut self) -> Result<Bytes, CsvError> {
        if self.spent {
            return Err(CsvError::Spent);
        }
        self.spent = true;
        let mut out = Vec::new();
        match self.state {
            State::Quoted => {
                return Err(CsvError::UnterminatedQuote {
                    record: self.record,
                })
            }
            State::AfterCr => {
                return Err(CsvError::BareCarriageReturn {
                    record: self.record,
                })
            }
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => {
                if self.in_record {
                    self.end_field()?;
                    self.end_record(&mut out, None)?;
                }
            }
        }
        Ok(Bytes::from(out))
    }

    fn feed_into(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), CsvError> {
        let delimiter = self.delimiter;
        let mut i = 0;
        while i < chunk.len() {
            let byte = chunk[i];
            if !self.in_record {
                self.in_record = true;
                self.record += 1;
            }
            match self.state {
                State::FieldStart | State::Unquoted => {
                    if self.state == State::Unquoted {
                        // Fast path: copy the run of plain bytes up to the next special one.
                        let run = chunk[i..]
                            .iter()
                            .position(|b| matches!(*b, b'"' | b'\r' | b'\n') || *b == delimiter)
                            .unwrap_or(chunk.len() - i);
                        if run > 0 {
                            self.push(&chunk[i..i + run])?;
                            i += run;
                            continue;
                        }
                    }
                    match byte {
                        b'"' if self.state == State::FieldStart => self.state = State::Quoted,
                        b'"' => {
                            return Err(CsvError::BareQuote {
                                record: self.record,
                            })
                        }
                        b if b == delimiter => {
                            self.end_field()?;
                            self.state = State::FieldStart;
                        }
                        b'\r' => self.state = State::AfterCr,
                        b'\n' => self.end_line(out, b"\n")?,
                        other => {
                            self.push(&[other])?;
                            self.state = State::Unquoted;
                        }
                    }
                }
                State::Quoted => {
                    let run = chunk[i..]
                        .iter()
                        .position(|b| *b == b'"')
                        .unwrap_or(chunk.len() - i);
                    if run > 0 {
                        self.push(&chunk[i..i + run])?;
                        i += run;
                        continue;
                    }
                    self.state = State::QuoteInQuoted;
                }
                State::QuoteInQuoted => match byte {
                    b'"' => {
                        self.push(b"\"")?;
                        self.state = State::Quoted;
                    }
                    b if b == delimiter => {
                        self.end_field()?;
                        self.state = State::FieldStart;
                    }
                    b'\r' => self.state = State::AfterCr,
                    b'\n' => self.end_line(out, b"\n")?,
                    _ => {
                        return Err(CsvError::TextAfterQuote {
                            record: self.record,
                        })
                    }
                },
                State::AfterCr => match byte {
                    b'\n' => self.end_line(out, b"\r\n")?,
                    _ => {
                        return Err(CsvError::BareCarriageReturn {
                            record: self.record,
                        })
                    }
                },
            }
            i += 1;
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), CsvError> {
        if self.row.len() + bytes.len() > self.limits.max_row_bytes {
            return Err(CsvError::RowTooLarge {
                record: self.record,
                limit: self.limits.max_row_bytes,
            });
        }
        self.row.extend_from_slice(bytes);
        Ok(())
    }

    fn end_field(&mut self) -> Result<(), CsvError> {
        // Each field costs at least its separator: caps records of many empty fields too.
        if self.ends.len() >= self.limits.max_row_bytes {
            return Err(CsvError::RowTooLarge {
                record: self.record,
                limit: self.limits.max_row_bytes,
            });
        }
        self.ends.push(self.row.len());
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<u8>, ending: &'static [u8]) -> Result<(), CsvError> {
        self.end_field()?;
        self.end_record(out, Some(ending))
    }

    fn end_record(
        &mut self,
        out: &mut Vec<u8>,
        ending: Option<&'static [u8]>,
    ) -> Result<(), CsvError> {
        let record = self.record;
        let text = std::str::from_utf8(&self.row).map_err(|_| CsvError::InvalidUtf8 { record })?;
        // Fields sit back to back in `row`: the whole may be UTF-8 while a field is not (a
        // character split by a delimiter), so every field boundary must be a char boundary.
        if !self.ends.iter().all(|end| text.is_char_boundary(*end)) {
            return Err(CsvError::InvalidUtf8 { record });
        }
        if let Some(plan) = self.plan.as_mut() {
            // The header.
            if let Some(ending) = ending {
                self.line_ending = ending;
            }
            let mut columns = Columns::default();
            let mut start = 0;
            for (i, end) in self.ends.iter().enumerate() {
                let name = &text[start..*end];
                start = *end;
                if columns.index.insert(name.to_string(), i).is_some() {
                    return Err(CsvError::DuplicateColumn { column: i + 1 });
                }
                columns.names.push(name.to_string());
                self.actions.push(plan(name));
            }
            self.plan = None;
            self.any_kept = self.actions.iter().any(|a| !matches!(a, CellAction::Drop));
            // With every column dropped nothing is written at all: a CSV line without fields
            // would read back as one empty field.
            if self.any_kept {
                let mut first = true;
                for (name, action) in columns.names.iter().zip(&self.actions) {
                    if !matches!(action, CellAction::Drop) {
                        write_field(out, name, self.delimiter, &mut first);
                    }
                }
                out.extend_from_slice(self.line_ending);
            }
            self.columns = columns;
        } else {
            if self.ends.len() != self.columns.names.len() {
                return Err(CsvError::Ragged {
                    record,
                    expected: self.columns.names.len(),
                    found: self.ends.len(),
                });
            }
            let row = Row {
                columns: &self.columns,
                text,
                ends: &self.ends,
            };
            if (self.filter)(&row) && self.any_kept {
                let mut first = true;
                for (i, action) in self.actions.iter().enumerate() {
                    match action {
                        CellAction::Keep => {
                            write_field(out, row.cell(i), self.delimiter, &mut first);
                        }
                        CellAction::Drop => {}
                        CellAction::Replace(replace) => {
                            write_field(out, &replace(row.cell(i)), self.delimiter, &mut first);
                        }
                    }
                }
                out.extend_from_slice(self.line_ending);
                self.stats.rows_emitted += 1;
            } else {
                self.stats.rows_removed += 1;
            }
        }
        self.row.clear();
        self.ends.clear();
        self.in_record = false;
        self.state = State::FieldStart;
        Ok(())
    }
}

/// Writes one field, always quoted, quotes doubled (as Salesforce writes Bulk results).
fn write_field(out: &mut Vec<u8>, value: &str, delimiter: u8, first: &mut bool) {
    if !*first {
        out.push(delimiter);
    }
    *first = false;
    out.push(b'"');
    for part in value.as_bytes().split(|b| *b == b'"').enumerate() {
        if part.0 > 0 {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(part.1);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str =
        include_str!("../../tests/fixtures/crm/salesforce/bulk2-query-results.page1.csv");

    fn keep_all() -> CsvTransformer {
        CsvTransformer::new(
            Delimiter::Comma,
            CsvLimits::default(),
            |_| CellAction::Keep,
            |_| true,
        )
    }

    fn run(mut t: CsvTransformer, input: &[u8]) -> Result<(String, CsvStats), CsvError> {
        let mut out = t.feed(input)?.to_vec();
        out.extend_from_slice(&t.finish()?);
        Ok((String::from_utf8(out).expect("utf-8 out"), t.stats()))
    }

    fn run_chunked(mut t: CsvTransformer, input: &[u8], size: usize) -> Result<String, CsvError> {
        let mut out = Vec::new();
        for chunk in input.chunks(size) {
            out.extend_from_slice(&t.feed(chunk)?);
        }
        out.extend_from_slice(&t.finish()?);
        Ok(String::from_utf8(out).expect("utf-8 out"))
    }

    #[test]
    fn fixture_keep_all_is_unchanged() {
        let (out, stats) = run(keep_all(), FIXTURE.as_bytes()).expect("fixture");
        assert_eq!(out, FIXTURE);
        assert_eq!(
            stats,
            CsvStats {
                rows_emitted: 2,
                rows_removed: 0
            }
        );
    }

    #[test]
    fn fixture_minimised_with_consent() {
        let t = CsvTransformer::new(
            Delimiter::Comma,
            CsvLimits::default(),
            |column| match column {
                "Id" | "FirstName" | "Email" => CellAction::Keep,
                "Birthdate" => CellAction::Replace(Box::new(|v: &str| {
                    v.get(..4).unwrap_or_default().to_string()
                })),
                _ => CellAction::Drop,
            },
            |row| row.get("HasOptedOutOfEmail") == Some("false"),
        );
        let (out, stats) = run(t, FIXTURE.as_bytes()).expect("fixture");
        assert_eq!(
            out,
            "\"Id\",\"FirstName\",\"Email\",\"Birthdate\"\n\
             \"003Qy00000Fict01AAA\",\"Livia\",\"livia.marquardt-ostby@example.com\",\"1984\"\n"
        );
        assert_eq!(
            stats,
            CsvStats {
                rows_emitted: 1,
                rows_removed: 1
            }
        );
        assert!(!out.contains("Quill"));
        assert!(!out.contains("Musterstadt"));
    }

    #[test]
    fn quoting_newlines_and_crlf() {
        let input = "a,b,c\r\n1,\"x,y\",\"line1\r\nline2 \"\"q\"\"\"\r\n,,\r\n";
        let (out, stats) = run(keep_all(), input.as_bytes()).expect("parse");
        assert_eq!(
            out,
            "\"a\",\"b\",\"c\"\r\n\"1\",\"x,y\",\"line1\r\nline2 \"\"q\"\"\"\r\n\"\",\"\",\"\"\r\n"
        );
        assert_eq!(stats.rows_emitted, 2);
        for size in 1..8 {
            assert_eq!(
                run_chunked(keep_all(), input.as_bytes(), size).expect("chunked"),
                out
            );
        }
    }

    #[test]
    fn every_salesforce_delimiter() {
        for (name, sep) in [
            ("COMMA", ','),
            ("tab", '\t'),
            ("PIPE", '|'),
            ("SEMICOLON", ';'),
            ("CARET", '^'),
            ("BACKQUOTE", '`'),
        ] {
            let delimiter = Delimiter::from_salesforce(name).expect("known");
            assert_eq!(delimiter.byte() as char, sep);
            let input = format!("a{sep}b\n\"1{sep}2\"{sep}3\n");
            let t = CsvTransformer::new(
                delimiter,
                CsvLimits::default(),
                |_| CellAction::Keep,
                |_| true,
            );
            let (out, _) = run(t, input.as_bytes()).expect(name);
            assert_eq!(out, format!("\"a\"{sep}\"b\"\n\"1{sep}2\"{sep}\"3\"\n"));
        }
        assert_eq!(Delimiter::from_salesforce("SPACE"), None);
    }

    #[test]
    fn unterminated_last_line_is_completed() {
        let (out, _) = run(keep_all(), b"a,b\n1,2").expect("parse");
        assert_eq!(out, "\"a\",\"b\"\n\"1\",\"2\"\n");
        let (out, _) = run(keep_all(), b"a,b\n1,").expect("parse");
        assert_eq!(out, "\"a\",\"b\"\n\"1\",\"\"\n");
        let (out, stats) = run(keep_all(), b"").expect("empty");
        assert_eq!(out, "");
        assert_eq!(stats, CsvStats::default());
        let (out, _) = run(keep_all(), b"only,header").expect("header only");
        assert_eq!(out, "\"only\",\"header\"\n");
    }

    #[test]
    fn malformed_input_is_refused() {
        let cases: &[(&[u8], CsvError)] = &[
            (b"a,b\n1,\"2", CsvError::UnterminatedQuote { record: 2 }),
            (
                b"a,b\n1,2,3\n",
                CsvError::Ragged {
                    record: 2,
                    expected: 2,
                    found: 3,
                },
            ),
            (
                b"a,b\n1\n",
                CsvError::Ragged {
                    record: 2,
                    expected: 2,
                    found: 1,
                },
            ),
            (
                b"a,b\n1,2\n\n",
                CsvError::Ragged {
                    record: 3,
                    expected: 2,
                    found: 1,
                },
            ),
            (b"a,b\n1,x\"y\n", CsvError::BareQuote { record: 2 }),
            (b"a,b\n1,\"x\"y\n", CsvError::TextAfterQuote { record: 2 }),
            (b"a,b\r1,2\n", CsvError::BareCarriageReturn { record: 1 }),
            (b"a,b\n1,2\r", CsvError::BareCarriageReturn { record: 2 }),
            (b"a,b\n1,\xff\n", CsvError::InvalidUtf8 { record: 2 }),
            (b"a,b,a\n", CsvError::DuplicateColumn { column: 3 }),
            // Each half of "\u{e9}" alone is invalid, though together they are UTF-8.
            (b"a,b\n\xc3,\xa9\n", CsvError::InvalidUtf8 { record: 2 }),
            (b"\xc3,\xa9\n", CsvError::InvalidUtf8 { record: 1 }),
        ];
        for (input, expected) in cases {
            assert_eq!(
                run(keep_all(), input).map(|_| ()),
                Err(expected.clone()),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn rows_are_capped() {
        let limits = CsvLimits { max_row_bytes: 16 };
        let t = CsvTransformer::new(Delimiter::Comma, limits, |_| CellAction::Keep, |_| true);
        let input = format!("a,b\n1,\"{}\"\n", "x".repeat(100));
        assert_eq!(
            run(t, input.as_bytes()).map(|_| ()),
            Err(CsvError::RowTooLarge {
                record: 2,
                limit: 16
            })
        );
        // Many empty fields cost nothing in content but are capped as well.
        let t = CsvTransformer::new(Delimiter::Comma, limits, |_| CellAction::Keep, |_| true);
        assert_eq!(
            run(t, ",".repeat(100).as_bytes()).map(|_| ()),
            Err(CsvError::RowTooLarge {
                record: 1,
                limit: 16
            })
        );
    }

    #[test]
    fn spent_after_error_or_finish() {
        let mut t = keep_all();
        assert!(t.feed(b"a,\"b\"x").is_err());
        assert_eq!(t.feed(b"more"), Err(CsvError::Spent));
        let mut t = keep_all();
        t.finish().expect("empty");
        assert_eq!(t.feed(b"a"), Err(CsvError::Spent));
        assert_eq!(t.finish(), Err(CsvError::Spent));
    }

    #[test]
    fn row_access() {
        let mut seen = Vec::new();
        let t = CsvTransformer::new(
            Delimiter::Comma,
            CsvLimits::default(),
            |_| CellAction::Drop,
            move |row| {
                seen.push(
                    row.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>(),
                );
                assert_eq!(row.len(), 2);
                assert!(!row.is_empty());
                assert_eq!(row.get("missing"), None);
                assert_eq!(row.get("b"), Some("2"));
                assert_eq!(row.cell(0), "1");
                true
            },
        );
        let (out, stats) = run(t, b"a,b\n1,2\n").expect("parse");
        // Every column dropped: nothing is written, and no row counts as delivered.
        assert_eq!(out, "");
        assert_eq!(
            stats,
            CsvStats {
                rows_emitted: 0,
                rows_removed: 1
            }
        );
    }
}
