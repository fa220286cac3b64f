//! Streaming minimisation of large JSON list pages.
//!
//! A governed JSON response above `limits.buffer_bytes` cannot be parsed into one tree, but
//! CRM list pages have one shape: a top-level object whose one big member is an array of
//! records (`$.records[*]` Salesforce, `$.results[*]` HubSpot, `$.value[*]` Dataverse), next to
//! a few small envelope members (`totalSize`, `done`, `nextRecordsUrl`, `paging`,
//! `@odata.nextLink`). [`JsonListStream`] takes such a document in chunks split anywhere and
//! transforms it with bounded memory:
//!
//! - An incremental scanner follows the top-level object and finds the boundaries of each
//!   array element across chunk splits (strings, escapes, nesting). The exact bytes of one
//!   element are handed to [`json::parse`], the one strict document model of Zweck, so every
//!   record is refused or accepted exactly as it would be inside a whole-document parse:
//!   duplicate keys (decoded), invalid UTF-8, lone surrogates, excess depth (the record is at
//!   depth 3 of the document: object, array, record), anything RFC 8259 forbids.
//! - Each record goes to the record callback (the policy engine): `Some(v)` is written out,
//!   `None` removes the record. Only the current record is buffered, capped by
//!   [`JsonStreamLimits::max_record_bytes`].
//! - Envelope members (every top-level member other than the array, before or after it) are
//!   parsed strictly too, buffered (capped in total by
//!   [`JsonStreamLimits::max_envelope_bytes`], keys and values counted as raw bytes), and
//!   handed to the envelope callback once, at [`JsonListStream::finish`], when the whole
//!   envelope is known.
//! - Top-level keys are checked for duplicates on their decoded form, the array key included
//!   (`{"records":[],"\u0072ecords":[]}` is refused). A byte-order mark, a top level that is
//!   not an object, a missing array key, an array key holding anything but an array, and
//!   content after the closing brace are refused.
//!
//! **Output key order.** The output is `{"<array key>":[` + the kept records + `]` + the
//! filtered envelope members + `}`: the array comes first and the envelope members after it,
//! in the order the envelope callback returns them. Envelope members that preceded the array in
//! the input therefore move behind it. JSON objects are unordered (RFC 8259 §4) and the CRM
//! SDKs read them as maps; the buffered path keeps the input order.
//!
//! **Fail closed.** No byte of a part is emitted before that part was fully inspected: a record
//! is written only after it parsed strictly and the record callback returned, the envelope
//! only after the whole document (up to its closing brace and trailing whitespace) was read and
//! the envelope callback returned. Any error (malformed input, a limit, a callback error, a
//! document that ends early at [`JsonListStream::finish`]) is returned as
//! [`JsonStreamError`]; the caller must then abort the response stream, so a client never
//! sees a clean short document. After an error the transformer is spent. Errors name reasons,
//! byte offsets and keys, never values.

use std::marker::PhantomData;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::json::{self, JsonError, JsonLimits};

/// Limits of one streamed document.
#[derive(Debug, Clone, Copy)]
pub struct JsonStreamLimits {
    /// Deepest nesting of the whole document, as [`JsonLimits::max_depth`] (the top-level
    /// object is depth 1, the array 2, a record 3). The effective limit is that of a
    /// whole-document `json::parse`: `min(max_depth, 127)` (serde_json's recursion backstop
    /// refuses a 128th level).
    pub max_depth: usize,
    /// Largest record (one array element, as raw bytes).
    pub max_record_bytes: usize,
    /// Largest envelope: the raw bytes of all top-level keys and non-array values together.
    pub max_envelope_bytes: usize,
}

impl Default for JsonStreamLimits {
    fn default() -> Self {
        JsonStreamLimits {
            max_depth: 128,
            max_record_bytes: 1 << 20,
            max_envelope_bytes: 64 << 10,
        }
    }
}

/// Why a streamed document was refused. No variant carries a value from the document.
#[derive(Debug, thiserror::Error)]
pub enum JsonStreamError<E> {
    /// The element (a record, a top-level key or envelope value) starting at byte `offset`
    /// of the document broke the strict model; positions inside `error` are relative to that
    /// element.
    #[error("at byte {offset}: {error}")]
    Json { offset: u64, error: JsonError },
    /// Not valid JSON at this byte of the document (between elements).
    #[error("not valid JSON at byte {offset}")]
    Syntax { offset: u64 },
    /// Valid JSON, but not a list page with the expected array.
    #[error("not a list page: {0}")]
    Shape(&'static str),
    #[error("a record is larger than {limit} bytes")]
    RecordTooLarge { limit: usize },
    #[error("the envelope is larger than {limit} bytes")]
    EnvelopeTooLarge { limit: usize },
    /// The document ended before its closing brace (at `finish`).
    #[error("the document ends early")]
    Truncated,
    /// A callback refused; the error is the callback's own.
    #[error("callback: {0}")]
    Callback(E),
    /// `feed` or `finish` after an error or after `finish`.
    #[error("the stream already ended")]
    Spent,
}

impl<E> JsonStreamError<E> {
    /// A stable short code for problem+json details and logs: the spelling of its
    /// [`Inspection`](crate::error::Inspection) reason, the same as [`JsonError::reason`]
    /// where the cause is the same (a callback's refusal reads `refused`).
    pub fn reason(&self) -> &'static str {
        crate::error::Inspection::from(self).as_str()
    }
}

/// The array key of a record selector this transformer can stream: `$.<key>[*]` with a key
/// of ASCII letters, digits and `_` (`$.records[*]`, `$.results[*]`, `$.value[*]`), or
/// `$['<key>'][*]` with any key without quotes or backslashes. Anything else (nested paths,
/// `$`, filters) is `None`: such bodies are not streamed.
pub fn array_key_of(path: &str) -> Option<&str> {
    let rest = path.strip_suffix("[*]")?;
    if let Some(key) = rest.strip_prefix("$.") {
        let simple = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        return simple.then_some(key);
    }
    let key = rest.strip_prefix("$['")?.strip_suffix("']")?;
    let plain = !key.is_empty() && !key.contains(['\'', '\\', '"']);
    plain.then_some(key)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level `{`.
    Start,
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After a `,` between members: a key.
    Key,
    /// Inside a key string.
    InKey,
    /// After a key: `:`.
    Colon,
    /// After `:`: a value.
    Value,
    /// Inside an envelope value.
    InEnvelopeValue,
    /// After a member: `,` or `}`.
    MemberEnd,
    /// After `[`: an element or `]`.
    ElementOrEnd,
    /// After a `,` between elements: an element.
    Element,
    /// Inside an element.
    InElement,
    /// After an element: `,` or `]`.
    ElementEnd,
    /// After the closing `}`: whitespace only.
    Done,
    /// After an error or `finish`.
    Spent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Container,
    String,
    Scalar,
}

/// Finds where one JSON value ends, across chunks. It does not validate: the bytes it
/// delimits go to the strict parser, which refuses anything malformed.
#[derive(Debug, Clone, Copy)]
struct Scan {
    kind: Kind,
    nesting: usize,
    in_string: bool,
    escape: bool,
}

/// Nesting above the limit while scanning.
struct TooDeep;

impl Scan {
    /// Starts at the first byte of a value (not whitespace); consumes nothing.
    fn start(first: u8) -> Scan {
        let kind = match first {
            b'{' | b'[' => Kind::Container,
            b'"' => Kind::String,
            _ => Kind::Scalar,
        };
        Scan {
            kind,
            nesting: 0,
            in_string: false,
            escape: false,
        }
    }

    /// Scans `input`, which continues the value. Returns how many bytes belong to the value
    /// and whether it is complete. A scalar ends before the first delimiter (not consumed).
    fn scan(&mut self, input: &[u8], max_nesting: usize) -> Result<(usize, bool), TooDeep> {
        if self.kind == Kind::Scalar {
            return Ok(
                match input
                    .iter()
                    .position(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}'))
                {
                    Some(p) => (p, true),
                    None => (input.len(), false),
                },
            );
        }
        let mut i = 0;
        while i < input.len() {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                match input[i..].iter().position(|&b| b == b'"' || b == b'\\') {
                    None => return Ok((input.len(), false)),
                    Some(p) => {
                        i += p;
                        if input[i] == b'\\' {
                            self.escape = true;
                        } else {
                            self.in_string = false;
                            if self.kind == Kind::String {
                                return Ok((i + 1, true));
                            }
                        }
                        i += 1;
                    }
                }
                continue;
            }
            match input[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.nesting += 1;
                    if self.nesting > max_nesting {
                        return Err(TooDeep);
                    }
                }
                b'}' | b']' => {
                    self.nesting = self.nesting.saturating_sub(1);
                    if self.nesting == 0 {
                        return Ok((i + 1, true));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok((input.len(), false))
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Transforms one JSON list page as a stream. `R` is the record callback, `N` the envelope
/// callback, `E` their error type. See the module docs.
pub struct JsonListStream<R, N, E> {
    array_key: String,
    limits: JsonStreamLimits,
    on_record: R,
    on_envelope: N,
    state: State,
    /// Bytes fed before the current chunk.
    offset: u64,
    /// The element being scanned (a key, an envelope value or a record).
    buf: Vec<u8>,
    /// Offset of the first byte of `buf` in the document.
    buf_start: u64,
    scan: Option<Scan>,
    /// The key of the member being read.
    key: Option<String>,
    array_seen: bool,
    envelope: Map<String, Value>,
    envelope_bytes: usize,
    records_in: u64,
    records_out: u64,
    _error: PhantomData<fn() -> E>,
}

impl<R, N, E> JsonListStream<R, N, E>
where
    R: FnMut(Value) -> Result<Option<Value>, E>,
    N: FnMut(Map<String, Value>) -> Result<Map<String, Value>, E>,
{
    /// A transformer for a document whose records are in the array under the top-level key
    /// `array_key` (compared on the decoded key).
    pub fn new(array_key: &str, limits: JsonStreamLimits, on_record: R, on_envelope: N) -> Self {
        JsonListStream {
            array_key: array_key.to_string(),
            limits,
            on_record,
            on_envelope,
            state: State::Start,
            offset: 0,
            buf: Vec::new(),
            buf_start: 0,
            scan: None,
            key: None,
            array_seen: false,
            envelope: Map::new(),
            envelope_bytes: 0,
            records_in: 0,
            records_out: 0,
            _error: PhantomData,
        }
    }

    /// Takes the next chunk and returns the output completed by it (often empty). On an
    /// error nothing of this chunk is returned and the transformer is spent.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, JsonStreamError<E>> {
        if self.state == State::Spent {
            return Err(JsonStreamError::Spent);
        }
        let mut out = Vec::new();
        match self.run(chunk, &mut out) {
            Ok(()) => {
                self.offset += chunk.len() as u64;
                Ok(Bytes::from(out))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Ends the document: runs the envelope callback and returns the last output (the
    /// envelope members and the closing brace). A document that did not end with its closing
    /// brace is an error, never a short output.
    pub fn finish(&mut self) -> Result<Bytes, JsonStreamError<E>> {
        let result = match self.state {
            State::Spent => return Err(JsonStreamError::Spent),
            State::Done => self.close(),
            State::Start => Err(JsonStreamError::Json {
                offset: 0,
                error: JsonError::Empty,
            }),
            _ => Err(JsonStreamError::Truncated),
        };
        match result {
            Ok(out) => {
                self.state = State::Spent;
                Ok(out)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Records read so far (every array element, kept or removed).
    pub fn records_in(&self) -> u64 {
        self.records_in
    }

    /// Records written so far (the record callback returned `Some`).
    pub fn records_out(&self) -> u64 {
        self.records_out
    }

    /// Bytes of the document held right now: the element being scanned plus the raw size of
    /// the envelope read so far. Never more than `max_record_bytes + max_envelope_bytes`.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() + self.envelope_bytes
    }

    fn fail(&mut self, e: JsonStreamError<E>) -> JsonStreamError<E> {
        self.state = State::Spent;
        self.buf = Vec::new();
        self.envelope = Map::new();
        self.envelope_bytes = 0;
        e
    }

    /// The effective depth limit of the whole document: what `json::parse` accepts, where
    /// serde_json's recursion backstop refuses a 128th level.
    fn depth(&self) -> usize {
        self.limits.max_depth.min(127)
    }

    fn syntax(&self, i: usize) -> JsonStreamError<E> {
        JsonStreamError::Syntax {
            offset: self.offset + i as u64,
        }
    }

    fn too_deep(&self, offset: u64) -> JsonStreamError<E> {
        JsonStreamError::Json {
            offset,
            error: JsonError::TooDeep {
                limit: self.depth(),
            },
        }
    }

    fn run(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), JsonStreamError<E>> {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::Start => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b'{' {
                        if self.depth() < 1 {
                            return Err(self.too_deep(self.offset + i as u64));
                        }
                        self.state = State::KeyOrEnd;
                        i += 1;
                    } else if b == 0xEF && self.offset + i as u64 == 0 {
                        return Err(JsonStreamError::Json {
                            offset: 0,
                            error: JsonError::ByteOrderMark,
                        });
                    } else if b == b'[' {
                        return Err(JsonStreamError::Shape("the top level is not an object"));
                    } else {
                        return Err(self.syntax(i));
                    }
                }
                State::KeyOrEnd | State::Key => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b'"' {
                        self.begin(b, i);
                        self.state = State::InKey;
                    } else if b == b'}' && self.state == State::KeyOrEnd {
                        self.end_object()?;
                        i += 1;
                    } else {
                        return Err(self.syntax(i));
                    }
                }
                State::InKey | State::InEnvelopeValue => {
                    let nesting = self.depth().saturating_sub(1);
                    let (n, done) = self.step(&chunk[i..], nesting)?;
                    let room = self
                        .limits
                        .max_envelope_bytes
                        .saturating_sub(self.envelope_bytes);
                    if self.buf.len() + n > room {
                        return Err(JsonStreamError::EnvelopeTooLarge {
                            limit: self.limits.max_envelope_bytes,
                        });
                    }
                    self.buf.extend_from_slice(&chunk[i..i + n]);
                    i += n;
                    if done {
                        if self.state == State::InKey {
                            self.end_key()?;
                        } else {
                            self.end_envelope_value()?;
                        }
                    }
                }
                State::Colon => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b':' {
                        self.state = State::Value;
                        i += 1;
                    } else {
                        return Err(self.syntax(i));
                    }
                }
                State::Value => {
                    if is_ws(b) {
                        i += 1;
                    } else if self.key.as_deref() == Some(self.array_key.as_str()) {
                        if b != b'[' {
                            return Err(JsonStreamError::Shape(
                                "the array key does not hold an array",
                            ));
                        }
                        if self.depth() < 2 {
                            return Err(self.too_deep(self.offset + i as u64));
                        }
                        self.key = None;
                        self.array_seen = true;
                        out.push(b'{');
                        // writing a string into a Vec cannot fail
                        let _ = serde_json::to_writer(&mut *out, &self.array_key);
                        out.extend_from_slice(b":[");
                        self.state = State::ElementOrEnd;
                        i += 1;
                    } else {
                        self.begin(b, i);
                        self.state = State::InEnvelopeValue;
                    }
                }
                State::MemberEnd => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b',' {
                        self.state = State::Key;
                        i += 1;
                    } else if b == b'}' {
                        self.end_object()?;
                        i += 1;
                    } else {
                        return Err(self.syntax(i));
                    }
                }
                State::ElementOrEnd | State::Element => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b']' && self.state == State::ElementOrEnd {
                        out.push(b']');
                        self.state = State::MemberEnd;
                        i += 1;
                    } else if matches!(b, b',' | b']' | b'}' | b':') {
                        return Err(self.syntax(i));
                    } else {
                        self.begin(b, i);
                        self.state = State::InElement;
                    }
                }
                State::InElement => {
                    let nesting = self.depth().saturating_sub(2);
                    let (n, done) = self.step(&chunk[i..], nesting)?;
                    let limit = self.limits.max_record_bytes;
                    if self.buf.len() + n > limit {
                        return Err(JsonStreamError::RecordTooLarge { limit });
                    }
                    self.buf.extend_from_slice(&chunk[i..i + n]);
                    i += n;
                    if done {
                        self.end_record(out)?;
                    }
                }
                State::ElementEnd => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b',' {
                        self.state = State::Element;
                        i += 1;
                    } else if b == b']' {
                        out.push(b']');
                        self.state = State::MemberEnd;
                        i += 1;
                    } else {
                        return Err(self.syntax(i));
                    }
                }
                State::Done => {
                    if is_ws(b) {
                        i += 1;
                    } else {
                        return Err(JsonStreamError::Json {
                            offset: self.offset + i as u64,
                            error: JsonError::TrailingContent { line: 1 },
                        });
                    }
                }
                State::Spent => return Err(JsonStreamError::Spent),
            }
        }
        Ok(())
    }

    /// Starts scanning an element whose first byte is `first` at `i` of the chunk.
    fn begin(&mut self, first: u8, i: usize) {
        self.buf.clear();
        self.buf_start = self.offset + i as u64;
        self.scan = Some(Scan::start(first));
    }

    fn step(
        &mut self,
        input: &[u8],
        max_nesting: usize,
    ) -> Result<(usize, bool), JsonStreamError<E>> {
        let Some(scan) = self.scan.as_mut() else {
            return Err(JsonStreamError::Spent);
        };
        match scan.scan(input, max_nesting) {
            Ok(r) => Ok(r),
            Err(TooDeep) => Err(self.too_deep(self.buf_start)),
        }
    }

    /// Parses the element in `buf` strictly.
    fn parse_buf(&self, max_depth: usize, max_bytes: usize) -> Result<Value, JsonStreamError<E>> {
        if self.buf.is_empty() {
            // a delimiter where a value should start
            return Err(JsonStreamError::Syntax {
                offset: self.buf_start,
            });
        }
        json::parse(
            &self.buf,
            &JsonLimits {
                max_depth,
                max_bytes,
            },
        )
        .map_err(|error| JsonStreamError::Json {
            offset: self.buf_start,
            error,
        })
    }

    fn end_key(&mut self) -> Result<(), JsonStreamError<E>> {
        let Value::String(key) = self.parse_buf(1, usize::MAX)? else {
            return Err(JsonStreamError::Syntax {
                offset: self.buf_start,
            });
        };
        let duplicate = if key == self.array_key {
            self.array_seen
        } else {
            self.envelope.contains_key(&key)
        };
        if duplicate {
            return Err(JsonStreamError::Json {
                offset: self.buf_start,
                error: JsonError::DuplicateKey { key, line: 1 },
            });
        }
        if key != self.array_key {
            self.envelope_bytes += self.buf.len();
        }
        self.buf.clear();
        self.key = Some(key);
        self.state = State::Colon;
        Ok(())
    }

    fn end_envelope_value(&mut self) -> Result<(), JsonStreamError<E>> {
        let value = self.parse_buf(
            self.depth().saturating_sub(1),
            self.limits.max_envelope_bytes,
        )?;
        let Some(key) = self.key.take() else {
            return Err(JsonStreamError::Spent);
        };
        self.envelope_bytes += self.buf.len();
        self.buf.clear();
        self.envelope.insert(key, value);
        self.state = State::MemberEnd;
        Ok(())
    }

    fn end_record(&mut self, out: &mut Vec<u8>) -> Result<(), JsonStreamError<E>> {
        let record =
            self.parse_buf(self.depth().saturating_sub(2), self.limits.max_record_bytes)?;
        self.buf.clear();
        self.records_in += 1;
        if let Some(kept) = (self.on_record)(record).map_err(JsonStreamError::Callback)? {
            if self.records_out > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&json::to_bytes(&kept));
            self.records_out += 1;
        }
        self.state = State::ElementEnd;
        Ok(())
    }

    fn end_object(&mut self) -> Result<(), JsonStreamError<E>> {
        if !self.array_seen {
            return Err(JsonStreamError::Shape("no array under the array key"));
        }
        self.state = State::Done;
        Ok(())
    }

    /// The envelope, filtered, and the closing brace.
    fn close(&mut self) -> Result<Bytes, JsonStreamError<E>> {
        let envelope = std::mem::take(&mut self.envelope);
        self.envelope_bytes = 0;
        let kept = (self.on_envelope)(envelope).map_err(JsonStreamError::Callback)?;
        if kept.contains_key(&self.array_key) {
            // would write the array key twice
            return Err(JsonStreamError::Shape(
                "the envelope callback returned the array key",
            ));
        }
        let mut out = Vec::new();
        for (key, value) in &kept {
            out.push(b',');
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b':');
            out.extend_from_slice(&json::to_bytes(value));
        }
        out.push(b'}');
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Stream = JsonListStream<
        Box<dyn FnMut(Value) -> Result<Option<Value>, String>>,
        Box<dyn FnMut(Map<String, Value>) -> Result<Map<String, Value>, String>>,
        String,
    >;

    fn keep_all(key: &str, limits: JsonStreamLimits) -> Stream {
        JsonListStream::new(key, limits, Box::new(|v| Ok(Some(v))), Box::new(Ok))
    }

    fn run(doc: &[u8], limits: JsonStreamLimits) -> Result<Vec<u8>, JsonStreamError<String>> {
        let mut s = keep_all("records", limits);
        let mut out = s.feed(doc)?.to_vec();
        out.extend_from_slice(&s.finish()?);
        Ok(out)
    }

    #[test]
    fn streams_a_small_page() {
        let doc = br#" { "totalSize" : 2, "records" : [ {"Id":"1"} , {"Id":"2","s":"]},\""} ] , "done":true } "#;
        let out = run(doc, JsonStreamLimits::default()).expect("ok");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"records":[{"Id":"1"},{"Id":"2","s":"]},\""}],"totalSize":2,"done":true}"#
        );
    }

    #[test]
    fn scalars_and_empty_arrays() {
        let out = run(
            br#"{"records":[1,-2.5e3,"x",true,null,[]]}"#,
            Default::default(),
        )
        .expect("ok");
        assert_eq!(out, br#"{"records":[1,-2.5e+3,"x",true,null,[]]}"#);
        let out = run(br#"{"records":[]}"#, Default::default()).expect("ok");
        assert_eq!(out, br#"{"records":[]}"#);
        for bad in [
            &br#"{"records":[,1]}"#[..],
            br#"{"records":[1,]}"#,
            br#"{"records":[1 2]}"#,
            br#"{"records":[1]"#,
            br#"{"records":[1],}"#,
            br#"{"records":[01]}"#,
            br#"{"records":[1]]}"#,
            br#"{"records":[tru]}"#,
            br#"{"records":[{]}"#,
            br#"{,"records":[]}"#,
            br#"{"records" []}"#,
            br#"{"records":[]} x"#,
            br#"{"records":[]}{}"#,
        ] {
            assert!(
                run(bad, Default::default()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn depth_counts_the_whole_document() {
        let limits = JsonStreamLimits {
            max_depth: 4,
            ..Default::default()
        };
        // object 1, array 2, record 3, inner 4
        assert!(run(br#"{"records":[{"a":{}}],"e":{"b":{"c":1}}}"#, limits).is_ok());
        for doc in [
            &br#"{"records":[{"a":{"b":{}}}]}"#[..],
            br#"{"records":[],"e":{"b":{"c":{"d":{}}}}}"#,
            br#"{"records":[[[[]]]]}"#,
        ] {
            let e = run(doc, limits).expect_err("too deep");
            assert_eq!(e.reason(), "too-deep", "{e}");
            assert!(json::parse(
                doc,
                &JsonLimits {
                    max_depth: 4,
                    max_bytes: 1 << 20
                }
            )
            .is_err());
        }
    }

    #[test]
    fn array_key_of_paths() {
        assert_eq!(array_key_of("$.records[*]"), Some("records"));
        assert_eq!(array_key_of("$.value[*]"), Some("value"));
        assert_eq!(array_key_of("$['@odata.x'][*]"), Some("@odata.x"));
        for p in [
            "$",
            "$.Cases.records[*]",
            "$.records",
            "$.records[0]",
            "$.[*]",
            "$['a'b'][*]",
        ] {
            assert_eq!(array_key_of(p), None, "{p}");
        }
    }

    #[test]
    fn envelope_callback_cannot_add_the_array_key() {
        let mut s: Stream = JsonListStream::new(
            "records",
            Default::default(),
            Box::new(|v| Ok(Some(v))),
            Box::new(|mut m| {
                m.insert("records".into(), json!([{"leak": 1}]));
                Ok(m)
            }),
        );
        s.feed(br#"{"records":[]}"#).expect("feed");
        assert!(matches!(s.finish(), Err(JsonStreamError::Shape(_))));
        assert!(matches!(s.feed(b" "), Err(JsonStreamError::Spent)));
    }
}
