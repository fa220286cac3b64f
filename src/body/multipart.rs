//! OData `$batch` bodies (`multipart/mixed`) for Dataverse, parsed and written back.
//!
//! A `$batch` request carries up to 1,000 HTTP requests in one body, and its response as many
//! responses (CRM-APIS.md §3.2, §3.3). Each one must be governed like a request of its own, so
//! Zweck splits the body into parts, hands each inner message to the policy, and writes the
//! batch back. Change sets (`multipart/mixed` parts holding `application/http` parts) are the
//! only nesting OData allows, and the only one accepted here.
//!
//! The reader is strict, because the CRM's reader and Zweck's must agree on where each inner
//! message starts and ends: anything that is not a well-formed batch is a [`MultipartError`]
//! (non-blank preamble or epilogue, a line that starts with the boundary but is not a delimiter,
//! a missing close delimiter, folded or malformed headers, a part that is neither
//! `application/http` nor a change set, a transfer encoding other than `binary`, a
//! `Content-Length` that disagrees with the delimited body, `Transfer-Encoding` inside a part,
//! too many parts, a part too large, a change set inside a change set). Both CRLF (the standard)
//! and bare LF line ends are read; [`Batch::to_bytes`] writes the line end of the first
//! delimiter, so a well-formed input is written back byte for byte, and `Content-Length`
//! headers inside parts are recomputed from the (possibly rewritten) bodies.

use bytes::Bytes;

use super::media::{self, BodyKind};

/// Caps on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Most HTTP parts in one batch, change-set members included (Dataverse allows 1,000).
    pub max_parts: usize,
    /// Most bytes of one part (its headers and inner message).
    pub max_part_bytes: usize,
}

impl Default for MultipartLimits {
    fn default() -> MultipartLimits {
        MultipartLimits {
            max_parts: 1_000,
            max_part_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Why a batch was refused. `part` counts HTTP parts from 1 in body order; no error carries
/// body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("content type is not multipart/mixed with a valid boundary")]
    NotMultipart,
    #[error("the body does not start with the boundary delimiter")]
    MissingStart,
    #[error("a multipart body has no close delimiter")]
    MissingClose,
    #[error("a line starts with the boundary but is not a delimiter (after part {part})")]
    BadDelimiter { part: usize },
    #[error("text after the close delimiter")]
    Epilogue,
    #[error("more than {limit} parts")]
    TooManyParts { limit: usize },
    #[error("part {part} is larger than {limit} bytes")]
    PartTooLarge { part: usize, limit: usize },
    #[error("part {part} nests a change set inside a change set")]
    TooDeep { part: usize },
    #[error("part {part} has a malformed MIME header")]
    PartHeader { part: usize },
    #[error("part {part} is neither application/http nor a change set")]
    PartContentType { part: usize },
    #[error("part {part} uses a transfer encoding other than binary")]
    TransferEncoding { part: usize },
    #[error("part {part} has a malformed HTTP start line")]
    StartLine { part: usize },
    #[error("part {part} has a malformed HTTP header")]
    HttpHeader { part: usize },
    #[error("part {part} has a Content-Length that does not match its body")]
    ContentLength { part: usize },
    #[error("part {part} uses Transfer-Encoding inside the batch")]
    InnerTransferEncoding { part: usize },
    #[error("the batch mixes CRLF and LF line ends")]
    MixedLineEndings,
    #[error("part {part} cannot be written back unambiguously")]
    Unwritable { part: usize },
}

/// The line end a batch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    /// `\r\n`, as RFC 2046 and OData specify.
    #[default]
    Crlf,
    /// `\n`, as hand-written fixtures and some clients send.
    Lf,
}

impl LineEnding {
    fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Crlf => b"\r\n",
            LineEnding::Lf => b"\n",
        }
    }
}

/// A parsed `$batch` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub boundary: String,
    pub items: Vec<BatchItem>,
    /// The line end written by [`Batch::to_bytes`].
    pub line_ending: LineEnding,
    /// Blank text after the close delimiter, kept for a byte-exact round trip.
    pub epilogue: String,
}

/// One top-level part of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchItem {
    /// A single `application/http` part.
    Part(HttpPart),
    /// An atomic change set of `application/http` parts.
    ChangeSet {
        boundary: String,
        /// The MIME headers of the change-set part (its `Content-Type` names `boundary`).
        headers: Vec<(String, String)>,
        parts: Vec<HttpPart>,
        /// Blank text after the change set's close delimiter.
        epilogue: String,
    },
}

/// An `application/http` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPart {
    /// MIME part headers (`Content-Type`, `Content-Transfer-Encoding`, `Content-ID`...).
    pub headers: Vec<(String, String)>,
    pub message: HttpMessage,
}

/// The HTTP/1.1 message inside a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpMessage {
    Request {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    Response {
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
}

impl HttpMessage {
    /// The message's headers.
    pub fn headers(&self) -> &[(String, String)] {
        match self {
            HttpMessage::Request { headers, .. } | HttpMessage::Response { headers, .. } => headers,
        }
    }

    /// The message's body.
    pub fn body(&self) -> &Bytes {
        match self {
            HttpMessage::Request { body, .. } | HttpMessage::Response { body, .. } => body,
        }
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(self.headers(), name)
    }

    /// Replaces the body and updates a `Content-Length` header if there is one.
    pub fn set_body(&mut self, new_body: Bytes) {
        let (HttpMessage::Request { headers, body, .. }
        | HttpMessage::Response { headers, body, .. }) = self;
        for (name, value) in headers.iter_mut() {
            if name.eq_ignore_ascii_case("content-length") {
                *value = new_body.len().to_string();
            }
        }
        *body = new_body;
    }
}

impl HttpPart {
    /// The first MIME header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Batch {
    /// All HTTP parts in body order, change-set members included.
    pub fn parts(&self) -> impl Iterator<Item = &HttpPart> {
        self.items.iter().flat_map(|item| match item {
            BatchItem::Part(part) => std::slice::from_ref(part).iter(),
            BatchItem::ChangeSet { parts, .. } => parts.iter(),
        })
    }

    /// The same, mutably (to rewrite bodies).
    pub fn parts_mut(&mut self) -> impl Iterator<Item = &mut HttpPart> {
        self.items.iter_mut().flat_map(|item| match item {
            BatchItem::Part(part) => std::slice::from_mut(part).iter_mut(),
            BatchItem::ChangeSet { parts, .. } => parts.iter_mut(),
        })
    }

    /// The `Content-Type` for the written batch.
    pub fn content_type(&self) -> String {
        // Quoted: boundaries may hold characters (space, `?`, `(`...) a token may not.
        format!("multipart/mixed; boundary=\"{}\"", self.boundary)
    }

    /// Writes the batch. `Content-Length` headers inside parts are set to the body lengths.
    ///
    /// Refuses ([`MultipartError::Unwritable`]) a batch whose rewritten parts would no longer
    /// read back as the same parts: a body or header that contains a delimiter of an
    /// enclosing boundary, a line break or control character in a header or start line, or a
    /// non-blank epilogue.
    pub fn to_bytes(&self) -> Result<Bytes, MultipartError> {
        let nl = self.line_ending.bytes();
        let mut out = Vec::new();
        let mut number = 0;
        if !is_blank(self.epilogue.as_bytes()) {
            return Err(MultipartError::Unwritable { part: 0 });
        }
        for item in &self.items {
            delimiter(&mut out, &self.boundary, nl);
            match item {
                BatchItem::Part(part) => {
                    number += 1;
                    write_checked(&mut out, part, nl, &[&self.boundary], number)?;
                }
                BatchItem::ChangeSet {
                    boundary,
                    headers,
                    parts,
                    epilogue,
                } => {
                    let mut head = nl.to_vec();
                    write_headers(&mut head, headers, nl);
                    if !headers_writable(headers)
                        || !is_blank(epilogue.as_bytes())
                        || contains_delimiter(&head, &[&self.boundary, boundary])
                    {
                        return Err(MultipartError::Unwritable { part: number + 1 });
                    }
                    out.extend_from_slice(&head[nl.len()..]);
                    out.extend_from_slice(nl);
                    for part in parts {
                        number += 1;
                        delimiter(&mut out, boundary, nl);
                        write_checked(&mut out, part, nl, &[&self.boundary, boundary], number)?;
                        out.extend_from_slice(nl);
                    }
                    close(&mut out, boundary);
                    out.extend_from_slice(epilogue.as_bytes());
                }
            }
            out.extend_from_slice(nl);
        }
        close(&mut out, &self.boundary);
        out.extend_from_slice(self.epilogue.as_bytes());
        Ok(Bytes::from(out))
    }
}

/// Header names are tokens, values free of control characters (tab aside).
fn headers_writable(headers: &[(String, String)]) -> bool {
    headers.iter().all(|(name, value)| {
        is_token(name.as_bytes()) && !value.chars().any(|c| c.is_control() && c != '\t')
    })
}

fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
}

/// Writes one part after checking it reads back as itself.
fn write_checked(
    out: &mut Vec<u8>,
    part: &HttpPart,
    nl: &[u8],
    boundaries: &[&str],
    number: usize,
) -> Result<(), MultipartError> {
    let unwritable = MultipartError::Unwritable { part: number };
    let start_ok = match &part.message {
        HttpMessage::Request { method, target, .. } => {
            is_token(method.as_bytes())
                && !target.is_empty()
                && target.bytes().all(|b| b.is_ascii_graphic())
        }
        HttpMessage::Response { status, reason, .. } => {
            (100..=599).contains(status) && !reason.chars().any(|c| c.is_control() && c != '\t')
        }
    };
    if !start_ok || !headers_writable(&part.headers) || !headers_writable(part.message.headers()) {
        return Err(unwritable);
    }
    // Written after a line end: a body that starts with a delimiter counts too.
    let mut buf = nl.to_vec();
    write_part(&mut buf, part, nl);
    if contains_delimiter(&buf, boundaries) {
        return Err(unwritable);
    }
    out.extend_from_slice(&buf[nl.len()..]);
    Ok(())
}

/// Whether a line of `buf` starts with a delimiter of one of `boundaries`.
fn contains_delimiter(buf: &[u8], boundaries: &[&str]) -> bool {
    boundaries.iter().any(|boundary| {
        let mut delimiter = b"\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        find(buf, &delimiter, 0).is_some()
    })
}

fn delimiter(out: &mut Vec<u8>, boundary: &str, nl: &[u8]) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(nl);
}

fn close(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--");
}

fn write_headers(out: &mut Vec<u8>, headers: &[(String, String)], nl: &[u8]) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(nl);
    }
}

fn write_part(out: &mut Vec<u8>, part: &HttpPart, nl: &[u8]) {
    write_headers(out, &part.headers, nl);
    out.extend_from_slice(nl);
    let (headers, body) = match &part.message {
        HttpMessage::Request {
            method,
            target,
            headers,
            body,
        } => {
            out.extend_from_slice(format!("{method} {target} HTTP/1.1").as_bytes());
            (headers, body)
        }
        HttpMessage::Response {
            status,
            reason,
            headers,
            body,
        } => {
            out.extend_from_slice(format!("HTTP/1.1 {status} {reason}").as_bytes());
            (headers, body)
        }
    };
    out.extend_from_slice(nl);
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        if name.eq_ignore_ascii_case("content-length") {
            out.extend_from_slice(body.len().to_string().as_bytes());
        } else {
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(nl);
    }
    out.extend_from_slice(nl);
    out.extend_from_slice(body);
}

/// Parses a `$batch` body given its `Content-Type` header value.
pub fn parse_batch(
    content_type: &str,
    body: &[u8],
    limits: &MultipartLimits,
) -> Result<Batch, MultipartError> {
    let BodyKind::MultipartMixed { boundary } = media::classify(content_type) else {
        return Err(MultipartError::NotMultipart);
    };
    let mut count = 0;
    let top = split(body, &boundary, 0, None)?;
    let mut items = Vec::with_capacity(top.parts.len());
    for content in top.parts {
        let next = count + 1;
        if content.len() > limits.max_part_bytes {
            return Err(MultipartError::PartTooLarge {
                part: next,
                limit: limits.max_part_bytes,
            });
        }
        let (headers, rest) = mime_headers(content, next)?;
        match part_kind(&headers, next)? {
            PartKind::Http => {
                count = bump(count, limits)?;
                items.push(BatchItem::Part(HttpPart {
                    message: http_message(rest, count)?,
                    headers,
                }));
            }
            PartKind::ChangeSet(inner) => {
                let nested = split(rest, &inner, count, Some(top.line_ending))?;
                let mut parts = Vec::with_capacity(nested.parts.len());
                for content in nested.parts {
                    count = bump(count, limits)?;
                    let (headers, rest) = mime_headers(content, count)?;
                    match part_kind(&headers, count)? {
                        PartKind::Http => parts.push(HttpPart {
                            message: http_message(rest, count)?,
                            headers,
                        }),
                        PartKind::ChangeSet(_) => {
                            return Err(MultipartError::TooDeep { part: count })
                        }
                    }
                }
                items.push(BatchItem::ChangeSet {
                    boundary: inner,
                    headers,
                    parts,
                    epilogue: nested.epilogue,
                });
            }
        }
    }
    Ok(Batch {
        boundary,
        items,
        line_ending: top.line_ending,
        epilogue: top.epilogue,
    })
}

fn bump(count: usize, limits: &MultipartLimits) -> Result<usize, MultipartError> {
    if count >= limits.max_parts {
        return Err(MultipartError::TooManyParts {
            limit: limits.max_parts,
        });
    }
    Ok(count + 1)
}

struct Split<'a> {
    parts: Vec<&'a [u8]>,
    line_ending: LineEnding,
    epilogue: String,
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Splits a multipart body at its delimiters (RFC 2046 §5.1.1). `after` numbers errors;
/// `expected` is the line end of the enclosing batch, if any.
fn split<'a>(
    body: &'a [u8],
    boundary: &str,
    after: usize,
    expected: Option<LineEnding>,
) -> Result<Split<'a>, MultipartError> {
    let dash = format!("--{boundary}");
    let dash = dash.as_bytes();
    let mut search = Vec::with_capacity(dash.len() + 1);
    search.push(b'\n');
    search.extend_from_slice(dash);

    // The first delimiter: at the very start, or after a blank preamble.
    let mut pos = if body.starts_with(dash) {
        0
    } else {
        let at = find(body, &search, 0).ok_or(MultipartError::MissingStart)? + 1;
        if !is_blank(&body[..at]) {
            return Err(MultipartError::MissingStart);
        }
        at
    };
    let mut parts = Vec::new();
    let mut line_ending = None;
    loop {
        let after_dash = pos + dash.len();
        let tail = &body[after_dash..];
        if let Some(epilogue) = tail.strip_prefix(b"--") {
            if !is_blank(epilogue) {
                return Err(MultipartError::Epilogue);
            }
            // Blank by the check above, hence UTF-8.
            let epilogue = String::from_utf8_lossy(epilogue).into_owned();
            return Ok(Split {
                parts,
                line_ending: line_ending.or(expected).unwrap_or_default(),
                epilogue,
            });
        }
        // Transport padding, then the line end.
        let padding = tail
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(tail.len());
        let rest = &tail[padding..];
        let (ending, skip) = if rest.starts_with(b"\r\n") {
            (LineEnding::Crlf, 2)
        } else if rest.starts_with(b"\n") {
            (LineEnding::Lf, 1)
        } else if rest.is_empty() {
            return Err(MultipartError::MissingClose);
        } else {
            return Err(MultipartError::BadDelimiter {
                part: after + parts.len(),
            });
        };
        // One line end for the whole batch, change sets included.
        if line_ending
            .or(expected)
            .is_some_and(|known| known != ending)
        {
            return Err(MultipartError::MixedLineEndings);
        }
        line_ending = Some(ending);
        let start = after_dash + padding + skip;
        let next = find(body, &search, start).ok_or(MultipartError::MissingClose)?;
        // The line end before a delimiter belongs to the delimiter; under LF a CR there is
        // body content, under CRLF it must be there.
        let end = match ending {
            LineEnding::Lf => next,
            LineEnding::Crlf if next > start && body[next - 1] == b'\r' => next - 1,
            LineEnding::Crlf => return Err(MultipartError::MixedLineEndings),
        };
        parts.push(&body[start..end]);
        pos = next + 1;
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

enum PartKind {
    Http,
    ChangeSet(String),
}

fn part_kind(headers: &[(String, String)], part: usize) -> Result<PartKind, MultipartError> {
    let mut content_types = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    let (Some((_, content_type)), None) = (content_types.next(), content_types.next()) else {
        return Err(MultipartError::PartContentType { part });
    };
    let mut encodings = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-transfer-encoding"));
    match (encodings.next(), encodings.next()) {
        (None, None) => {}
        (Some((_, value)), None) if value.eq_ignore_ascii_case("binary") => {}
        _ => return Err(MultipartError::TransferEncoding { part }),
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t']);
    if essence.eq_ignore_ascii_case("application/http") {
        return Ok(PartKind::Http);
    }
    match media::classify(content_type) {
        BodyKind::MultipartMixed { boundary } => Ok(PartKind::ChangeSet(boundary)),
        _ => Err(MultipartError::PartContentType { part }),
    }
}

/// Takes one line (without its CRLF or LF); `None` at the end of input.
fn take_line<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    if input.is_empty() {
        return None;
    }
    let (line, rest) = match input.iter().position(|b| *b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (&input[..], &input[input.len()..]),
    };
    *input = rest;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// Header fields as written: names keep their case, values are trimmed.
type Headers = Vec<(String, String)>;

/// Reads header lines up to the blank line. `terminated` says whether the blank line was
/// there (MIME part headers require it; an HTTP message may end right after its headers).
fn header_block(input: &mut &[u8]) -> Result<(Headers, bool), ()> {
    let mut headers = Vec::new();
    while let Some(line) = take_line(input) {
        if line.is_empty() {
            return Ok((headers, true));
        }
        headers.push(header_line(line)?);
    }
    Ok((headers, false))
}

/// `name: value`, name a token, value without control characters; no obs-fold.
fn header_line(line: &[u8]) -> Result<(String, String), ()> {
    let colon = line.iter().position(|b| *b == b':').ok_or(())?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty()
        || !name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
    {
        return Err(());
    }
    let value = std::str::from_utf8(value).map_err(|_| ())?;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(());
    }
    let name = std::str::from_utf8(name).map_err(|_| ())?;
    Ok((
        name.to_string(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

fn mime_headers(content: &[u8], part: usize) -> Result<(Headers, &[u8]), MultipartError> {
    let mut rest = content;
    match header_block(&mut rest) {
        Ok((headers, true)) => Ok((headers, rest)),
        _ => Err(MultipartError::PartHeader { part }),
    }
}

fn http_message(content: &[u8], part: usize) -> Result<HttpMessage, MultipartError> {
    let mut rest = content;
    let start = take_line(&mut rest).ok_or(MultipartError::StartLine { part })?;
    let start = std::str::from_utf8(start).map_err(|_| MultipartError::StartLine { part })?;
    let (headers, terminated) =
        header_block(&mut rest).map_err(|()| MultipartError::HttpHeader { part })?;
    if !terminated && !rest.is_empty() {
        return Err(MultipartError::HttpHeader { part });
    }
    let body = Bytes::copy_from_slice(rest);
    if find_header(&headers, "transfer-encoding").is_some() {
        return Err(MultipartError::InnerTransferEncoding { part });
    }
    let lengths = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    for (_, value) in lengths {
        if value.is_empty()
            || !value.bytes().all(|b| b.is_ascii_digit())
            || value.parse::<usize>().ok() != Some(body.len())
        {
            return Err(MultipartError::ContentLength { part });
        }
    }
    let bad_start = || MultipartError::StartLine { part };
    if let Some(status_line) = start.strip_prefix("HTTP/1.1 ") {
        let (code, reason) = status_line.split_once(' ').unwrap_or((status_line, ""));
        if code.len() != 3
            || !code.bytes().all(|b| b.is_ascii_digit())
            || reason.chars().any(|c| c.is_control() && c != '\t')
        {
            return Err(bad_start());
        }
        let status: u16 = code.parse().map_err(|_| bad_start())?;
        if !(100..=599).contains(&status) {
            return Err(bad_start());
        }
        return Ok(HttpMessage::Response {
            status,
            reason: reason.to_string(),
            headers,
            body,
        });
    }
    let mut fields = start.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad_start());
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if version != "HTTP/1.1"
        || !token(method)
        || target.is_empty()
        || !target.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad_start());
    }
    Ok(HttpMessage::Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = include_str!("../../tests/fixtures/crm/dynamics/batch.request.http");
    const RESPONSE: &str = include_str!("../../tests/fixtures/crm/dynamics/batch.response.http");

    /// Splits a fixture (an HTTP message) into its Content-Type and body.
    fn envelope(fixture: &str) -> (String, &[u8]) {
        let (head, body) = fixture.split_once("\n\n").expect("blank line");
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .expect("content type");
        (content_type.to_string(), body.as_bytes())
    }

    fn limits() -> MultipartLimits {
        MultipartLimits::default()
    }

    #[test]
    fn fixture_request_parses_and_round_trips() {
        let (content_type, body) = envelope(REQUEST);
        let batch = parse_batch(&content_type, body, &limits()).expect("parse");
        assert_eq!(batch.boundary, "batch_7c1e0f3a-0000-4000-8000-000000000001");
        assert_eq!(batch.line_ending, LineEnding::Lf);
        assert_eq!(batch.items.len(), 2);
        let BatchItem::ChangeSet {
            boundary, parts, ..
        } = &batch.items[0]
        else {
            panic!("first item is a change set");
        };
        assert_eq!(boundary, "changeset_7c1e0f3a-0000-4000-8000-000000000002");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].header("content-id"), Some("1"));
        let HttpMessage::Request {
            method,
            target,
            headers,
            body,
        } = &parts[0].message
        else {
            panic!("a request");
        };
        assert_eq!(method, "POST");
        assert_eq!(target, "/api/data/v9.2/contacts");
        assert_eq!(
            headers,
            &[(
                "Content-Type".to_string(),
                "application/json; type=entry".to_string()
            )]
        );
        assert!(body.starts_with(b"{") && body.ends_with(b"}"));
        let BatchItem::Part(get) = &batch.items[1] else {
            panic!("second item is a part");
        };
        let HttpMessage::Request {
            method,
            target,
            body,
            ..
        } = &get.message
        else {
            panic!("a request");
        };
        assert_eq!(method, "GET");
        assert!(target.starts_with("/api/data/v9.2/contacts?$select="));
        assert!(body.is_empty());
        assert_eq!(batch.parts().count(), 2);
        assert_eq!(batch.to_bytes(), Ok(body_bytes(body_of(REQUEST))));
    }

    fn body_of(fixture: &str) -> &[u8] {
        envelope(fixture).1
    }

    fn body_bytes(body: &[u8]) -> Bytes {
        Bytes::copy_from_slice(body)
    }

    #[test]
    fn fixture_response_parses_and_round_trips() {
        let (content_type, body) = envelope(RESPONSE);
        let batch = parse_batch(&content_type, body, &limits()).expect("parse");
        let statuses: Vec<u16> = batch
            .parts()
            .map(|p| match &p.message {
                HttpMessage::Response { status, .. } => *status,
                HttpMessage::Request { .. } => 0,
            })
            .collect();
        assert_eq!(statuses, [204, 200]);
        let last = batch.parts().last().expect("two parts");
        assert_eq!(
            last.message.header("content-type"),
            Some("application/json; odata.metadata=minimal; odata.streaming=true")
        );
        let json: &[u8] = last.message.body();
        assert!(json.starts_with(b"{") && json.ends_with(b"}"));
        assert_eq!(batch.to_bytes(), Ok(body_bytes(body)));
    }

    fn crlf(text: &str) -> String {
        text.replace("\r\n", "\n").replace('\n', "\r\n")
    }

    #[test]
    fn crlf_fixture_round_trips_byte_exact() {
        let request = crlf(REQUEST);
        let (content_type, body) = request.split_once("\r\n\r\n").expect("blank");
        let content_type = content_type
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .expect("ct");
        let batch = parse_batch(content_type, body.as_bytes(), &limits()).expect("parse");
        assert_eq!(batch.line_ending, LineEnding::Crlf);
        assert_eq!(batch.to_bytes(), Ok(body_bytes(body.as_bytes())));
        let HttpMessage::Request { body: json, .. } = &batch.parts().next().expect("part").message
        else {
            panic!("request");
        };
        // Line ends inside a body belong to the body.
        assert!(json.windows(2).any(|w| w == b"\r\n"));
    }

    #[test]
    fn rewritten_bodies_get_their_content_length() {
        let body = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}\r\n--b--";
        let mut batch =
            parse_batch("multipart/mixed; boundary=b", body.as_bytes(), &limits()).expect("parse");
        assert_eq!(batch.to_bytes(), Ok(body_bytes(body.as_bytes())));
        let mut stale = batch.clone();
        for part in stale.parts_mut() {
            if let HttpMessage::Response { body, .. } = &mut part.message {
                *body = Bytes::from_static(b"{}");
            }
        }
        for part in batch.parts_mut() {
            part.message.set_body(Bytes::from_static(b"{}"));
        }
        // Written lengths follow the bodies even when the header value was left stale.
        assert_eq!(stale.to_bytes(), batch.to_bytes());
        let written = batch.to_bytes().expect("writable");
        let text = std::str::from_utf8(&written).expect("utf-8");
        assert!(
            text.contains("Content-Length: 2\r\n\r\n{}\r\n--b--"),
            "{text}"
        );
        let again = parse_batch(&batch.content_type(), &written, &limits()).expect("reparse");
        assert_eq!(again, batch);
    }

    fn part(inner: &str) -> String {
        format!("--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{inner}\r\n--b--\r\n")
    }

    fn parse(body: &str) -> Result<Batch, MultipartError> {
        parse_batch("multipart/mixed; boundary=b", body.as_bytes(), &limits())
    }

    #[test]
    fn well_formed_minimal_cases() {
        assert!(parse("--b--").expect("empty batch").items.is_empty());
        assert!(parse("\r\n\r\n--b--\r\n").is_ok());
        assert!(parse(&part("GET /x HTTP/1.1\r\n")).is_ok());
        assert!(parse(&part("GET /x HTTP/1.1")).is_ok());
        assert!(parse(&part("HTTP/1.1 204 No Content\r\n\r\n")).is_ok());
        assert!(parse(
            "--b  \r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n\r\n--b--"
        )
        .is_ok());
    }

    #[test]
    fn malformed_batches_are_refused() {
        use MultipartError::*;
        let cases: Vec<(String, MultipartError)> = vec![
            (String::new(), MissingStart),
            ("preamble\r\n--b--".into(), MissingStart),
            ("--b\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n".into(), MissingClose),
            ("--b".into(), MissingClose),
            ("--b--\r\ntrailing text".into(), Epilogue),
            ("--bx\r\n--b--".into(), BadDelimiter { part: 0 }),
            (part("GET /x HTTP/1.1\r\n\r\n--bogus"), BadDelimiter { part: 1 }),
            ("--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--".into(), PartContentType { part: 1 }),
            ("--b\r\n\r\nGET /x HTTP/1.1\r\n\r\n--b--".into(), PartContentType { part: 1 }),
            ("--b\r\nContent-Type: application/http\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n--b--".into(), PartContentType { part: 1 }),
            ("--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: base64\r\n\r\nR0VU\r\n--b--".into(), TransferEncoding { part: 1 }),
            ("--b\r\nContent-Type: application/http\r\n folded\r\n\r\nGET /x HTTP/1.1\r\n--b--".into(), PartHeader { part: 1 }),
            ("--b\r\nContent-Type: application/http\r\n--b--".into(), PartHeader { part: 1 }),
            (part("GET /x HTTP/1.0\r\n"), StartLine { part: 1 }),
            (part("GET  /x HTTP/1.1\r\n"), StartLine { part: 1 }),
            (part("GET /x y HTTP/1.1\r\n"), StartLine { part: 1 }),
            (part("HTTP/1.1 99 Odd\r\n\r\n"), StartLine { part: 1 }),
            (part("HTTP/1.1 2000 OK\r\n\r\n"), StartLine { part: 1 }),
            (part("HTTP/1.1 204 \u{0}o Content\r\n\r\n"), StartLine { part: 1 }),
            (part("GET /x HTTP/1.1\r\nBad Header: x\r\n\r\n"), HttpHeader { part: 1 }),
            (part("GET /x HTTP/1.1\r\nNoColon\r\n\r\n"), HttpHeader { part: 1 }),
            (part("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}"), ContentLength { part: 1 }),
            (part("POST /x HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}"), ContentLength { part: 1 }),
            (part("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"), InnerTransferEncoding { part: 1 }),
        ];
        for (body, expected) in cases {
            assert_eq!(parse(&body).map(|_| ()), Err(expected), "{body:?}");
        }
        assert_eq!(
            parse_batch("application/json", b"--b--", &limits()).map(|_| ()),
            Err(NotMultipart)
        );
        assert_eq!(
            parse_batch("multipart/mixed", b"--b--", &limits()).map(|_| ()),
            Err(NotMultipart)
        );
    }

    #[test]
    fn nesting_is_limited_to_change_sets() {
        let nested = "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n\
            --c\r\nContent-Type: multipart/mixed; boundary=d\r\n\r\n\
            --d\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n--d--\r\n\
            --c--\r\n--b--";
        assert_eq!(
            parse(nested).map(|_| ()),
            Err(MultipartError::TooDeep { part: 1 })
        );
        let fine = "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n\
            --c\r\nContent-Type: application/http\r\n\r\nPATCH /x HTTP/1.1\r\n\r\n{}\r\n--c--\r\n--b--";
        let batch = parse(fine).expect("change set");
        assert_eq!(batch.to_bytes(), Ok(body_bytes(fine.as_bytes())));
        let unclosed = "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n\
            --c\r\nContent-Type: application/http\r\n\r\nPATCH /x HTTP/1.1\r\n\r\n{}\r\n--b--";
        assert_eq!(
            parse(unclosed).map(|_| ()),
            Err(MultipartError::MissingClose)
        );
    }

    #[test]
    fn line_ends_must_agree() {
        let mixed = "--b\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n\n--b--";
        assert_eq!(
            parse(mixed).map(|_| ()),
            Err(MultipartError::MixedLineEndings)
        );
        let mixed = "--b\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n\r\n--b\nContent-Type: application/http\n\nGET /y HTTP/1.1\n\n\n--b--";
        assert_eq!(
            parse(mixed).map(|_| ()),
            Err(MultipartError::MixedLineEndings)
        );
        let nested = "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\nContent-Type: application/http\n\nGET /x HTTP/1.1\n\n\n--c--\r\n--b--";
        assert_eq!(
            parse(nested).map(|_| ()),
            Err(MultipartError::MixedLineEndings)
        );
        // Under LF, a CR before a delimiter is body content and survives the round trip.
        let lf = "--b\nContent-Type: application/http\n\nPOST /x HTTP/1.1\n\nbody\r\n--b--";
        let batch = parse(lf).expect("lf");
        assert_eq!(
            batch.parts().next().map(|p| p.message.body().as_ref()),
            Some(&b"body\r"[..])
        );
        assert_eq!(batch.to_bytes(), Ok(body_bytes(lf.as_bytes())));
    }

    #[test]
    fn unwritable_rewrites_are_refused() {
        let body = part("POST /x HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}");
        let batch = parse(&body).expect("parse");
        let mut smuggle = batch.clone();
        for part in smuggle.parts_mut() {
            part.message.set_body(Bytes::from_static(
                b"{}\r\n--b\r\nContent-Type: application/http\r\n\r\nDELETE /x HTTP/1.1",
            ));
        }
        assert_eq!(
            smuggle.to_bytes(),
            Err(MultipartError::Unwritable { part: 1 })
        );
        let mut leading = batch.clone();
        for part in leading.parts_mut() {
            part.message.set_body(Bytes::from_static(b"--b--"));
        }
        assert_eq!(
            leading.to_bytes(),
            Err(MultipartError::Unwritable { part: 1 })
        );
        let mut header = batch.clone();
        for part in header.parts_mut() {
            if let HttpMessage::Request { headers, .. } = &mut part.message {
                headers.push(("X-Injected".into(), "a\r\nDELETE /x HTTP/1.1".into()));
            }
        }
        assert_eq!(
            header.to_bytes(),
            Err(MultipartError::Unwritable { part: 1 })
        );
        let mut target = batch.clone();
        for part in target.parts_mut() {
            if let HttpMessage::Request { target, .. } = &mut part.message {
                *target = "/x HTTP/1.1".into();
            }
        }
        assert_eq!(
            target.to_bytes(),
            Err(MultipartError::Unwritable { part: 1 })
        );
        let mut epilogue = batch;
        epilogue.epilogue = "text".into();
        assert_eq!(
            epilogue.to_bytes(),
            Err(MultipartError::Unwritable { part: 0 })
        );
    }

    #[test]
    fn limits_hold() {
        let one = "--b\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n\r\n";
        let body = format!("{}--b--", one.repeat(4));
        let tight = MultipartLimits {
            max_parts: 3,
            max_part_bytes: 1024,
        };
        assert_eq!(
            parse_batch("multipart/mixed; boundary=b", body.as_bytes(), &tight).map(|_| ()),
            Err(MultipartError::TooManyParts { limit: 3 })
        );
        let tiny = MultipartLimits {
            max_parts: 10,
            max_part_bytes: 16,
        };
        assert_eq!(
            parse_batch("multipart/mixed; boundary=b", body.as_bytes(), &tiny).map(|_| ()),
            Err(MultipartError::PartTooLarge { part: 1, limit: 16 })
        );
        let body = format!("{}--b--", one.repeat(1000));
        assert_eq!(parse(&body).map(|b| b.parts().count()), Ok(1000));
        let body = format!("{}--b--", one.repeat(1001));
        assert_eq!(
            parse(&body).map(|_| ()),
            Err(MultipartError::TooManyParts { limit: 1000 })
        );
    }
}
