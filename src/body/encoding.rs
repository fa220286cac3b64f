//! `Content-Encoding`: decoding with bomb guards, re-encoding, negotiation.
//!
//! A governed body must be read in full before it is released, and CRMs compress (Salesforce
//! gzips Bulk CSV, and lists br and zstd). Decompression is where a small body turns into a
//! large one, so every decoder here is capped twice:
//!
//! - on the size of its output ([`Limits::max_output`] -> [`DecodeError::TooLarge`]), and
//! - on the expansion ratio, output bytes per compressed input byte
//!   ([`Limits::max_ratio`] -> [`DecodeError::RatioExceeded`]); outputs up to
//!   [`Limits::ratio_grace`] are exempt, because small JSON compresses very well.
//!
//! The caps hold *while* decoding (the output sink refuses the byte past the cap), not after,
//! and they apply to every stage of a stacked coding (`Content-Encoding: gzip, br`), since a
//! bomb can sit in any layer. Anything that is not a complete, valid stream (truncation,
//! trailing bytes after the end, a bad checksum) is [`DecodeError::Corrupt`]: a proxy that
//! accepted a truncated body could release data its caller never meant to send whole, and
//! trailing bytes are content nobody inspected. Unknown codings are refused
//! ([`DecodeError::Unknown`]); `identity` is ignored.
//!
//! Codecs: `flate2` (with the pure-Rust zlib-rs backend: against miniz_oxide it compressed a
//! ~88 KB page at `Compression::fast()` in ~0.3x the time and decompressed it in ~0.4x),
//! `brotli` (pure Rust), `zstd` (libzstd via
//! `cc`, legacy formats off). All are driven through their incremental APIs, chunk by chunk,
//! so the same [`Decoder`] serves the buffered [`decode`] and streamed bodies (`proxy/stream.rs`);
//! that avoids `async-compression` + `tokio-util` and a second set of limit logic.
//! zstd windows are limited to 8 MiB (RFC 8878 §3.1.1.1.2 asks HTTP encoders to stay within it),
//! which bounds the decoder's own memory.

use std::fmt;
use std::io::{self, Write};

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;

/// A content coding Zweck can decode and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// RFC 1952 gzip (also accepted as `x-gzip`).
    Gzip,
    /// RFC 9110 `deflate`: zlib-wrapped (RFC 1950) as specified, or raw deflate (RFC 1951) as
    /// some servers send it; told apart by the zlib header.
    Deflate,
    /// RFC 7932 Brotli.
    Br,
    /// RFC 8878 Zstandard.
    Zstd,
}

impl Coding {
    /// The token used in `Content-Encoding` and `Accept-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// Parses one coding token (case-insensitive). `None` for `identity` and for unknown ones.
    pub fn from_token(token: &str) -> Option<Coding> {
        let token = token.to_ascii_lowercase();
        match token.as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Br),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most codings one body may stack. Real servers use one; each extra stage is work an
/// attacker gets for free.
pub const MAX_STACKED_CODINGS: usize = 3;

/// What Zweck decodes, for `Accept-Encoding` towards the upstream.
pub fn acceptable_encodings() -> &'static str {
    "gzip, deflate, br, zstd"
}

/// Why a body could not be decoded. Carries no body bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("decoded body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("decoded body expands more than {max_ratio}x its encoded size")]
    RatioExceeded { max_ratio: u64 },
    #[error("corrupt or truncated {0} stream")]
    Corrupt(Coding),
    #[error("unknown content coding {0:?}")]
    Unknown(String),
    #[error("more than {MAX_STACKED_CODINGS} stacked content codings")]
    TooManyCodings,
    #[error("{0} decoder could not be set up")]
    Unavailable(Coding),
}

/// The bomb guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes any decoding stage may produce in total.
    pub max_output: usize,
    /// Most output bytes per compressed input byte (`limits.decoded_ratio` in zweck.yaml).
    pub max_ratio: u64,
    /// Output up to this many bytes is never a ratio violation.
    pub ratio_grace: usize,
}

impl Limits {
    /// Limits with the default grace of 64 KiB.
    pub fn new(max_output: usize, max_ratio: u64) -> Limits {
        Limits {
            max_output,
            max_ratio,
            ratio_grace: 64 * 1024,
        }
    }

    /// How much output the input seen so far entitles a stage to, and whether the size cap
    /// (rather than the ratio) is what binds.
    fn budget(&self, input_total: u64) -> (usize, bool) {
        let by_ratio = input_total
            .saturating_mul(self.max_ratio)
            .max(self.ratio_grace as u64);
        if by_ratio >= self.max_output as u64 {
            (self.max_output, true)
        } else {
            (by_ratio as usize, false)
        }
    }
}

impl Default for Limits {
    /// 8 MiB (`limits.buffer_bytes`) and a ratio of 100 (`limits.decoded_ratio`).
    fn default() -> Limits {
        Limits::new(8 * 1024 * 1024, 100)
    }
}

/// Parses `Content-Encoding` values into the codings in the order they were applied.
/// Items are comma-separated, case-insensitive, may carry whitespace and empty items;
/// `identity` is dropped; several header lines form one list (RFC 9110 §5.3).
pub fn parse_content_encoding<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Coding>, DecodeError> {
    let mut codings = Vec::new();
    for value in values {
        for item in value.split(',') {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() || item.eq_ignore_ascii_case("identity") {
                continue;
            }
            match Coding::from_token(item) {
                Some(coding) => codings.push(coding),
                None => return Err(DecodeError::Unknown(short(item))),
            }
            if codings.len() > MAX_STACKED_CODINGS {
                return Err(DecodeError::TooManyCodings);
            }
        }
    }
    Ok(codings)
}

/// The codings of a message's `Content-Encoding` headers (all of them, in order).
pub fn content_codings(headers: &HeaderMap) -> Result<Vec<Coding>, DecodeError> {
    let mut values = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        match value.to_str() {
            Ok(text) => values.push(text),
            Err(_) => return Err(DecodeError::Unknown("<not visible ASCII>".into())),
        }
    }
    parse_content_encoding(values)
}

/// An unknown token, shortened for errors and logs.
fn short(token: &str) -> String {
    token.chars().take(32).collect()
}

/// Decodes a whole body. `codings` are in applied order, as [`parse_content_encoding`]
/// returns them; decoding runs in reverse.
pub fn decode(input: &[u8], codings: &[Coding], limits: &Limits) -> Result<Bytes, DecodeError> {
    if codings.is_empty() {
        if input.len() > limits.max_output {
            return Err(DecodeError::TooLarge {
                limit: limits.max_output,
            });
        }
        return Ok(Bytes::copy_from_slice(input));
    }
    let mut decoder = Decoder::new(codings, *limits)?;
    let mut out = decoder.feed(input)?.to_vec();
    out.extend_from_slice(&decoder.finish()?);
    Ok(Bytes::from(out))
}

/// `decode` for a body already in `Bytes`: without codings it is returned as it is (no copy).
pub fn decode_bytes(
    input: &Bytes,
    codings: &[Coding],
    limits: &Limits,
) -> Result<Bytes, DecodeError> {
    if codings.is_empty() {
        if input.len() > limits.max_output {
            return Err(DecodeError::TooLarge {
                limit: limits.max_output,
            });
        }
        return Ok(input.clone());
    }
    decode(input, codings, limits)
}

/// Encodes a body with one coding (for a client that accepted it).
pub fn encode(input: &[u8], coding: Coding) -> io::Result<Bytes> {
    let out = match coding {
        Coding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 4),
                flate2::Compression::fast(),
            );
            encoder.write_all(input)?;
            encoder.finish()?
        }
        Coding::Deflate => {
            let mut encoder = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(input.len() / 4),
                flate2::Compression::fast(),
            );
            encoder.write_all(input)?;
            encoder.finish()?
        }
        Coding::Br => {
            let mut out = Vec::with_capacity(input.len() / 4);
            {
                // Quality 5 is the usual on-the-fly setting; window 2^22 stays within what
                // every decoder supports.
                let mut encoder = brotli::CompressorWriter::new(&mut out, 16 * 1024, 5, 22);
                encoder.write_all(input)?;
                encoder.flush()?;
            }
            out
        }
        Coding::Zstd => zstd::bulk::compress(input, 3)?,
    };
    Ok(Bytes::from(out))
}

/// Picks the coding to re-encode a response with from the client's `Accept-Encoding`, or
/// `None` for identity. Honours q-values (`q=0` refuses) and `*`; on ties prefers gzip, br,
/// zstd, deflate in that order.
pub fn negotiate(accept_encoding: &str) -> Option<Coding> {
    const PREFERENCE: [Coding; 4] = [Coding::Gzip, Coding::Br, Coding::Zstd, Coding::Deflate];
    let mut explicit: Vec<(Coding, u32)> = Vec::new();
    let mut star: Option<u32> = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim_matches([' ', '\t']);
        if token.is_empty() {
            continue;
        }
        let mut q = 1000;
        for param in parts {
            let param = param.trim_matches([' ', '\t']);
            if let Some(value) = param
                .strip_prefix("q=")
                .or_else(|| param.strip_prefix("Q="))
            {
                q = parse_qvalue(value)?;
            }
        }
        if token == "*" {
            star = Some(q);
        } else if let Some(coding) = Coding::from_token(token) {
            explicit.push((coding, q));
        }
    }
    let q_of = |coding: Coding| {
        explicit
            .iter()
            .find(|(c, _)| *c == coding)
            .map(|(_, q)| *q)
            .or(star)
            .unwrap_or(0)
    };
    let mut best: Option<(Coding, u32)> = None;
    for coding in PREFERENCE {
        let q = q_of(coding);
        if q > 0 && best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// RFC 9110 `qvalue` in thousandths; `None` when malformed (the whole header is then
/// ignored, so Zweck answers in identity).
fn parse_qvalue(value: &str) -> Option<u32> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u32 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u32::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// An incremental decoder for a stack of codings, with the caps of [`Limits`].
///
/// Feed it compressed chunks of any size; each call returns the plain bytes that became
/// available. After the last chunk, [`Decoder::finish`] checks the streams are complete.
pub struct Decoder {
    /// In decoding order (the last applied coding first).
    stages: Vec<Stage>,
    limits: Limits,
    input_total: u64,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codings: Vec<Coding> = self.stages.iter().map(|s| s.coding).collect();
        f.debug_struct("Decoder")
            .field("codings", &codings)
            .field("input_total", &self.input_total)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for `codings` in applied order. An empty list decodes identity (the caps
    /// still hold).
    pub fn new(codings: &[Coding], limits: Limits) -> Result<Decoder, DecodeError> {
        if codings.len() > MAX_STACKED_CODINGS {
            return Err(DecodeError::TooManyCodings);
        }
        let stages = codings
            .iter()
            .rev()
            .map(|c| Stage::new(*c))
            .collect::<Result<_, _>>()?;
        Ok(Decoder {
            stages,
            limits,
            input_total: 0,
        })
    }

    /// Decodes one more chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, DecodeError> {
        self.input_total = self.input_total.saturating_add(chunk.len() as u64);
        let budget = self.limits.budget(self.input_total);
        if self.stages.is_empty() {
            return self.identity(chunk);
        }
        let mut data = chunk.to_vec();
        for stage in &mut self.stages {
            data = stage.write(&data, budget, &self.limits)?;
        }
        Ok(Bytes::from(data))
    }

    /// Ends the stream: flushes every stage and checks each stream is complete.
    pub fn finish(mut self) -> Result<Bytes, DecodeError> {
        let budget = self.limits.budget(self.input_total);
        let mut data = Vec::new();
        for stage in &mut self.stages {
            let mut out = stage.write(&data, budget, &self.limits)?;
            out.extend_from_slice(&stage.finish(budget, &self.limits)?);
            data = out;
        }
        Ok(Bytes::from(data))
    }

    fn identity(&mut self, chunk: &[u8]) -> Result<Bytes, DecodeError> {
        if self.input_total > self.limits.max_output as u64 {
            return Err(DecodeError::TooLarge {
                limit: self.limits.max_output,
            });
        }
        Ok(Bytes::copy_from_slice(chunk))
    }
}

/// The output side of one stage: a `Vec` that refuses to grow past the budget.
struct Capped {
    buf: Vec<u8>,
    /// Cumulative bytes this stage has produced.
    written: usize,
    /// Cumulative bytes it may produce.
    allowed: usize,
    /// Set when a write was refused, so the caller can tell a cap from corruption.
    hit: bool,
}

impl Capped {
    fn new() -> Capped {
        Capped {
            buf: Vec::new(),
            written: 0,
            allowed: 0,
            hit: false,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.written.saturating_add(data.len()) > self.allowed {
            self.hit = true;
            return Err(io::Error::other("decoded output over budget"));
        }
        self.buf.extend_from_slice(data);
        self.written += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One decoding stage.
struct Stage {
    coding: Coding,
    state: StageState,
    /// Whether any input reached this stage (an empty stream decodes to nothing).
    fed: bool,
}

enum StageState {
    Gzip(flate2::write::GzDecoder<Capped>),
    Zlib(flate2::write::ZlibDecoder<Capped>),
    RawDeflate(flate2::write::DeflateDecoder<Capped>),
    /// `deflate` before its first two bytes arrived, which tell zlib from raw.
    DeflateUndecided(Vec<u8>),
    Br(Box<brotli::DecompressorWriter<Capped>>),
    Zstd(Box<ZstdStage>),
    /// After an error or `finish`: refuses further use.
    Spent,
}

/// The window limit for zstd: 2^23 = 8 MiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

impl Stage {
    fn new(coding: Coding) -> Result<Stage, DecodeError> {
        let state = match coding {
            Coding::Gzip => StageState::Gzip(flate2::write::GzDecoder::new(Capped::new())),
            Coding::Deflate => StageState::DeflateUndecided(Vec::new()),
            Coding::Br => StageState::Br(Box::new(brotli::DecompressorWriter::new(
                Capped::new(),
                16 * 1024,
            ))),
            Coding::Zstd => StageState::Zstd(Box::new(ZstdStage::new()?)),
        };
        Ok(Stage {
            coding,
            state,
            fed: false,
        })
    }

    fn capped(&mut self) -> Option<&mut Capped> {
        match &mut self.state {
            StageState::Gzip(d) => Some(d.get_mut()),
            StageState::Zlib(d) => Some(d.get_mut()),
            StageState::RawDeflate(d) => Some(d.get_mut()),
            StageState::Br(d) => Some(d.get_mut()),
            StageState::Zstd(d) => Some(&mut d.out),
            StageState::DeflateUndecided(_) | StageState::Spent => None,
        }
    }

    /// Maps an I/O failure of the codec to the typed error: a refused write is a cap,
    /// anything else is corruption.
    fn error(&mut self, budget: (usize, bool), limits: &Limits) -> DecodeError {
        let hit = self.capped().is_some_and(|c| c.hit);
        self.state = StageState::Spent;
        if !hit {
            DecodeError::Corrupt(self.coding)
        } else if budget.1 {
            DecodeError::TooLarge {
                limit: limits.max_output,
            }
        } else {
            DecodeError::RatioExceeded {
                max_ratio: limits.max_ratio,
            }
        }
    }

    fn write(
        &mut self,
        data: &[u8],
        budget: (usize, bool),
        limits: &Limits,
    ) -> Result<Vec<u8>, DecodeError> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        self.fed = true;
        if let StageState::DeflateUndecided(pending) = &mut self.state {
            pending.extend_from_slice(data);
            if pending.len() < 2 {
                return Ok(Vec::new());
            }
            let head = std::mem::take(pending);
            self.state = if is_zlib_header(head[0], head[1]) {
                StageState::Zlib(flate2::write::ZlibDecoder::new(Capped::new()))
            } else {
                StageState::RawDeflate(flate2::write::DeflateDecoder::new(Capped::new()))
            };
            return self.write(&head, budget, limits);
        }
        if let Some(capped) = self.capped() {
            capped.allowed = budget.0;
        }
        let result = match &mut self.state {
            StageState::Gzip(d) => d.write_all(data),
            StageState::Zlib(d) => d.write_all(data),
            StageState::RawDeflate(d) => d.write_all(data),
            StageState::Br(d) => d.write_all(data),
            StageState::Zstd(d) => d.write(data),
            StageState::DeflateUndecided(_) | StageState::Spent => {
                return Err(DecodeError::Corrupt(self.coding))
            }
        };
        match result {
            Ok(()) => Ok(self.take()),
            Err(_) => Err(self.error(budget, limits)),
        }
    }

    fn finish(&mut self, budget: (usize, bool), limits: &Limits) -> Result<Vec<u8>, DecodeError> {
        if !self.fed {
            self.state = StageState::Spent;
            return Ok(Vec::new());
        }
        if let Some(capped) = self.capped() {
            capped.allowed = budget.0;
        }
        let result = match &mut self.state {
            StageState::Gzip(d) => d.try_finish(),
            StageState::Zlib(d) => d.try_finish(),
            StageState::RawDeflate(d) => d.try_finish(),
            StageState::Br(d) => d.close(),
            StageState::Zstd(d) => d.finish(),
            // One byte of deflate is never a complete stream.
            StageState::DeflateUndecided(_) | StageState::Spent => {
                return Err(DecodeError::Corrupt(self.coding))
            }
        };
        match result {
            Ok(()) => {
                let out = self.take();
                self.state = StageState::Spent;
                Ok(out)
            }
            Err(_) => Err(self.error(budget, limits)),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        self.capped()
            .map(|c| std::mem::take(&mut c.buf))
            .unwrap_or_default()
    }
}

/// RFC 1950 §2.2: CM = 8, CINFO <= 7, and the header checksum holds.
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// zstd through the raw streaming API, because the `Write` adapter does not report a
/// truncated frame.
struct ZstdStage {
    decoder: zstd::stream::raw::Decoder<'static>,
    out: Capped,
    /// The last hint from libzstd: 0 when the current frame is complete.
    hint: usize,
}

impl ZstdStage {
    fn new() -> Result<ZstdStage, DecodeError> {
        let mut decoder = zstd::stream::raw::Decoder::new()
            .map_err(|_| DecodeError::Unavailable(Coding::Zstd))?;
        decoder
            .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
                ZSTD_WINDOW_LOG_MAX,
            ))
            .map_err(|_| DecodeError::Unavailable(Coding::Zstd))?;
        Ok(ZstdStage {
            decoder,
            out: Capped::new(),
            hint: 0,
        })
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.run(data)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.run(&[])?;
        if self.hint != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated zstd frame",
            ));
        }
        Ok(())
    }

    fn run(&mut self, data: &[u8]) -> io::Result<()> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut input = InBuffer::around(data);
        let mut scratch = vec![0u8; 32 * 1024];
        loop {
            let consumed_before = input.pos();
            let mut output = OutBuffer::around(&mut scratch[..]);
            let hint = self.decoder.run(&mut input, &mut output)?;
            let produced = output.pos();
            self.out.write_all(&scratch[..produced])?;
            // A call that moved nothing reports the header size of a next frame that never
            // started; only calls that made progress say where the stream stands.
            if produced > 0 || input.pos() > consumed_before {
                self.hint = hint;
            }
            // libzstd returns when the input is used up or the output is full; in the
            // latter case it may hold more, so go round until it stops filling `scratch`.
            if input.pos() >= data.len() && produced < scratch.len() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd];

    fn sample() -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..2000 {
            text.extend_from_slice(
                format!("{{\"Id\":\"003{i:015}\",\"Email\":\"person{i}@example.com\"}},")
                    .as_bytes(),
            );
        }
        text
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("vec write");
        encoder.finish().expect("vec write")
    }

    fn roomy() -> Limits {
        Limits::new(64 * 1024 * 1024, 10_000)
    }

    #[test]
    fn round_trips_every_coding() {
        let plain = sample();
        for coding in ALL {
            let encoded = encode(&plain, coding).expect("encode");
            assert!(encoded.len() < plain.len(), "{coding} compresses");
            let decoded = decode(&encoded, &[coding], &roomy()).expect("decode");
            assert_eq!(decoded, plain, "{coding}");
        }
    }

    #[test]
    fn deflate_accepts_raw_streams_too() {
        let plain = sample();
        let decoded = decode(&raw_deflate(&plain), &[Coding::Deflate], &roomy()).expect("raw");
        assert_eq!(decoded, plain);
    }

    #[test]
    fn zlib_header_detection() {
        assert!(is_zlib_header(0x78, 0x9c));
        assert!(is_zlib_header(0x78, 0x01));
        assert!(is_zlib_header(0x78, 0xda));
        assert!(!is_zlib_header(0x78, 0x00));
        assert!(!is_zlib_header(0x1f, 0x8b));
    }

    #[test]
    fn stacked_codings_decode_in_reverse() {
        let plain = sample();
        let gz = encode(&plain, Coding::Gzip).expect("gzip");
        let gz_br = encode(&gz, Coding::Br).expect("br");
        let codings = parse_content_encoding(["gzip, br"]).expect("parse");
        assert_eq!(codings, [Coding::Gzip, Coding::Br]);
        assert_eq!(decode(&gz_br, &codings, &roomy()).expect("stacked"), plain);
        // The wrong order is corruption, not a silent pass.
        assert_eq!(
            decode(&gz_br, &[Coding::Br, Coding::Gzip], &roomy()),
            Err(DecodeError::Corrupt(Coding::Gzip))
        );
    }

    #[test]
    fn truncated_streams_are_corrupt() {
        let plain = sample();
        for coding in ALL {
            let encoded = encode(&plain, coding).expect("encode");
            for cut in [1, 4, encoded.len() / 2] {
                let truncated = &encoded[..encoded.len() - cut];
                assert_eq!(
                    decode(truncated, &[coding], &roomy()),
                    Err(DecodeError::Corrupt(coding)),
                    "{coding} cut {cut}"
                );
            }
        }
        assert_eq!(
            decode(&raw_deflate(&plain)[..100], &[Coding::Deflate], &roomy()),
            Err(DecodeError::Corrupt(Coding::Deflate))
        );
    }

    #[test]
    fn trailing_bytes_are_corrupt() {
        let plain = sample();
        for coding in ALL {
            let mut encoded = encode(&plain, coding).expect("encode").to_vec();
            encoded.extend_from_slice(b"{\"smuggled\":1}");
            assert_eq!(
                decode(&encoded, &[coding], &roomy()),
                Err(DecodeError::Corrupt(coding)),
                "{coding}"
            );
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        for coding in ALL {
            assert_eq!(
                decode(b"this is not compressed at all", &[coding], &roomy()),
                Err(DecodeError::Corrupt(coding)),
                "{coding}"
            );
        }
        assert_eq!(
            decode(b"x", &[Coding::Deflate], &roomy()),
            Err(DecodeError::Corrupt(Coding::Deflate))
        );
    }

    #[test]
    fn empty_bodies_decode_to_nothing() {
        for coding in ALL {
            assert_eq!(decode(b"", &[coding], &roomy()), Ok(Bytes::new()));
        }
    }

    #[test]
    fn bombs_hit_the_output_cap() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let limits = Limits::new(1024 * 1024, 1_000_000);
        for coding in ALL {
            let bomb = encode(&zeros, coding).expect("encode");
            assert_eq!(
                decode(&bomb, &[coding], &limits),
                Err(DecodeError::TooLarge { limit: 1024 * 1024 }),
                "{coding}"
            );
        }
    }

    #[test]
    fn bombs_hit_the_ratio_cap() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let limits = Limits::new(64 * 1024 * 1024, 100);
        for coding in ALL {
            let bomb = encode(&zeros, coding).expect("encode");
            assert_eq!(
                decode(&bomb, &[coding], &limits),
                Err(DecodeError::RatioExceeded { max_ratio: 100 }),
                "{coding}"
            );
        }
    }

    #[test]
    fn small_bodies_may_compress_well() {
        // 60 KiB of zeros shrink to ~100 bytes: within the grace, so no ratio error.
        let zeros = vec![0u8; 60 * 1024];
        let bomb = encode(&zeros, Coding::Gzip).expect("encode");
        let limits = Limits::new(1024 * 1024, 10);
        assert_eq!(
            decode(&bomb, &[Coding::Gzip], &limits)
                .expect("grace")
                .len(),
            zeros.len()
        );
    }

    #[test]
    fn a_bomb_in_an_inner_layer_is_caught() {
        // br(gzip(zeros)): the br layer is small, the gzip layer is the bomb.
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let inner = encode(&zeros, Coding::Gzip).expect("gzip");
        let outer = encode(&inner, Coding::Br).expect("br");
        let limits = Limits::new(1024 * 1024, 1_000_000);
        assert_eq!(
            decode(&outer, &[Coding::Gzip, Coding::Br], &limits),
            Err(DecodeError::TooLarge { limit: 1024 * 1024 })
        );
    }

    #[test]
    fn identity_is_capped_too() {
        let limits = Limits::new(10, 1);
        assert_eq!(
            decode(b"0123456789", &[], &limits),
            Ok(Bytes::from_static(b"0123456789"))
        );
        assert_eq!(
            decode(b"0123456789a", &[], &limits),
            Err(DecodeError::TooLarge { limit: 10 })
        );
    }

    #[test]
    fn zstd_windows_over_8_mib_are_refused() {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        encoder.window_log(27).expect("window");
        encoder.include_contentsize(false).expect("no size");
        encoder.write_all(&sample()).expect("write");
        encoder.flush().expect("flush");
        let frame = encoder.finish().expect("finish");
        assert_eq!(
            decode(&frame, &[Coding::Zstd], &roomy()),
            Err(DecodeError::Corrupt(Coding::Zstd))
        );
    }

    #[test]
    fn zstd_accepts_concatenated_frames() {
        let a = encode(b"first,", Coding::Zstd).expect("a");
        let b = encode(b"second", Coding::Zstd).expect("b");
        let both = [a.as_ref(), b.as_ref()].concat();
        assert_eq!(
            decode(&both, &[Coding::Zstd], &roomy()),
            Ok(Bytes::from_static(b"first,second"))
        );
    }

    #[test]
    fn parses_header_lists() {
        assert_eq!(parse_content_encoding(["gzip"]), Ok(vec![Coding::Gzip]));
        assert_eq!(
            parse_content_encoding([" GZip ,  , identity,BR\t"]),
            Ok(vec![Coding::Gzip, Coding::Br])
        );
        assert_eq!(
            parse_content_encoding(["x-gzip", "zstd"]),
            Ok(vec![Coding::Gzip, Coding::Zstd])
        );
        assert_eq!(parse_content_encoding(["", ",", "identity"]), Ok(vec![]));
        assert_eq!(
            parse_content_encoding(["gzip, compress"]),
            Err(DecodeError::Unknown("compress".into()))
        );
        assert_eq!(
            parse_content_encoding(["gzip;q=1"]),
            Err(DecodeError::Unknown("gzip;q=1".into()))
        );
        assert_eq!(
            parse_content_encoding(["gzip, gzip, gzip, gzip"]),
            Err(DecodeError::TooManyCodings)
        );
        assert_eq!(
            Decoder::new(&[Coding::Gzip; 4], Limits::default()).map(|_| ()),
            Err(DecodeError::TooManyCodings)
        );
    }

    #[test]
    fn reads_codings_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_codings(&headers), Ok(vec![]));
        headers.append(CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
        headers.append(CONTENT_ENCODING, http::HeaderValue::from_static("br"));
        assert_eq!(
            content_codings(&headers),
            Ok(vec![Coding::Gzip, Coding::Br])
        );
        headers.append(
            CONTENT_ENCODING,
            http::HeaderValue::from_bytes(b"\xffgzip").expect("opaque"),
        );
        assert!(matches!(
            content_codings(&headers),
            Err(DecodeError::Unknown(_))
        ));
    }

    #[test]
    fn acceptable_encodings_are_all_decodable() {
        let listed: Vec<Option<Coding>> = acceptable_encodings()
            .split(',')
            .map(|token| Coding::from_token(token.trim()))
            .collect();
        assert_eq!(listed, ALL.map(Some));
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate("gzip, deflate, br"), Some(Coding::Gzip));
        assert_eq!(negotiate("br;q=1.0, gzip;q=0.8"), Some(Coding::Br));
        assert_eq!(negotiate("gzip;q=0, br;q=0.5"), Some(Coding::Br));
        assert_eq!(negotiate("identity"), None);
        assert_eq!(negotiate(""), None);
        assert_eq!(negotiate("*"), Some(Coding::Gzip));
        assert_eq!(negotiate("*;q=0"), None);
        assert_eq!(negotiate("gzip;q=0, *"), Some(Coding::Br));
        assert_eq!(negotiate("compress, zstd"), Some(Coding::Zstd));
        assert_eq!(negotiate("gzip;q=2"), None);
        assert_eq!(negotiate("gzip;q=0.1234"), None);
        assert_eq!(negotiate("GZIP;Q=0.5"), Some(Coding::Gzip));
    }

    /// Feeds `data` to a decoder in chunks of `size` bytes, then finishes it.
    fn stream_decode(
        data: &[u8],
        size: usize,
        codings: &[Coding],
        limits: Limits,
    ) -> Result<Vec<u8>, DecodeError> {
        let mut decoder = Decoder::new(codings, limits)?;
        let mut out = Vec::new();
        for chunk in data.chunks(size.max(1)) {
            out.extend_from_slice(&decoder.feed(chunk)?);
        }
        out.extend_from_slice(&decoder.finish()?);
        Ok(out)
    }

    #[test]
    fn streaming_equals_buffered_for_any_chunking() {
        let plain = sample();
        for coding in ALL {
            let encoded = encode(&plain, coding).expect("encode");
            for size in [1, 2, 7, 512, 100_000] {
                assert_eq!(
                    stream_decode(&encoded, size, &[coding], roomy()).expect("decode"),
                    plain,
                    "{coding} by {size}"
                );
            }
        }
    }

    #[test]
    fn streaming_errors_are_typed() {
        let bomb = encode(&vec![0u8; 4 * 1024 * 1024], Coding::Gzip).expect("encode");
        let err = stream_decode(&bomb, 1024, &[Coding::Gzip], Limits::new(1 << 30, 50))
            .expect_err("bomb");
        assert_eq!(err, DecodeError::RatioExceeded { max_ratio: 50 });
        let encoded = encode(&sample(), Coding::Br).expect("encode");
        let err = stream_decode(&encoded[..encoded.len() - 2], 64, &[Coding::Br], roomy())
            .expect_err("truncated");
        assert_eq!(err, DecodeError::Corrupt(Coding::Br));
    }
}
