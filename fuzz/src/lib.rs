//! The fuzz targets, as plain functions over bytes.
//!
//! cargo-fuzz needs nightly; these functions do not. `fuzz_targets/*.rs` hand them to
//! libFuzzer, and `tests/body_fuzz_seeds.rs` in the main crate includes this file and runs them
//! over `fuzz/seeds/<target>/` plus generated inputs on stable, so CI exercises every target.
//! A target "crashes" by panicking: on a parser panic, or when an invariant below fails.

use zweck::body::csv::{CellAction, CsvLimits, CsvTransformer, Delimiter};
use zweck::body::encoding::{self, Coding, Decoder, Limits};
use zweck::body::multipart::{self, MultipartLimits};

/// `zweck::json::parse`: no panic; what parses, written back, parses to the same value.
pub fn json_parse(data: &[u8]) {
    let limits = zweck::json::JsonLimits::default();
    if let Ok(value) = zweck::json::parse(data, &limits) {
        let written = zweck::json::to_bytes(&value);
        let again = zweck::json::parse(&written, &limits);
        assert_eq!(again.as_ref().ok(), Some(&value), "json round trip");
    }
}

const DELIMITERS: [Delimiter; 6] = [
    Delimiter::Comma,
    Delimiter::Tab,
    Delimiter::Pipe,
    Delimiter::Semicolon,
    Delimiter::Caret,
    Delimiter::Backquote,
];

fn csv_run(
    input: &[u8],
    delimiter: Delimiter,
    chunk: usize,
    keep_all: bool,
) -> Result<Vec<u8>, zweck::body::csv::CsvError> {
    let plan = move |name: &str| {
        if keep_all || name.len().is_multiple_of(2) {
            CellAction::Keep
        } else if name.len().is_multiple_of(3) {
            CellAction::Replace(Box::new(|v: &str| v.chars().rev().collect()))
        } else {
            CellAction::Drop
        }
    };
    let filter =
        move |row: &zweck::body::csv::Row<'_>| keep_all || row.cell(0).len().is_multiple_of(2);
    let mut t = CsvTransformer::new(
        delimiter,
        CsvLimits {
            max_row_bytes: 4096,
        },
        plan,
        filter,
    );
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        out.extend_from_slice(&t.feed(piece)?);
    }
    out.extend_from_slice(&t.finish()?);
    Ok(out)
}

/// The CSV transformer. Byte 0 picks the delimiter, byte 1 the chunk size, the rest is CSV.
/// Chunking never changes the result, and the output is a fixed point of keep-all.
pub fn csv_transform(data: &[u8]) {
    let (config, input) = data.split_at(data.len().min(2));
    let delimiter = DELIMITERS[usize::from(config.first().copied().unwrap_or(0)) % 6];
    let chunk = 1 + usize::from(config.get(1).copied().unwrap_or(0)) % 64;
    let whole = csv_run(input, delimiter, input.len().max(1), false);
    let chunked = csv_run(input, delimiter, chunk, false);
    assert_eq!(whole, chunked, "chunking changed the result");
    if let Ok(out) = whole {
        let again = csv_run(&out, delimiter, chunk, true);
        assert_eq!(again.as_ref().ok(), Some(&out), "output is not canonical");
    }
}

/// The `$batch` parser. The first line is the Content-Type, the rest the body. What parses
/// and can be written reads back as the same batch.
pub fn multipart_parse(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(content_type) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let body = data.get(split + 1..).unwrap_or_default();
    let limits = MultipartLimits {
        max_parts: 50,
        max_part_bytes: 64 * 1024,
    };
    let Ok(batch) = multipart::parse_batch(content_type.trim_end_matches('\r'), body, &limits)
    else {
        return;
    };
    let written = batch.to_bytes().expect("a parsed batch is writable");
    let again = multipart::parse_batch(&batch.content_type(), &written, &limits)
        .expect("a written batch parses");
    assert_eq!(again, batch, "batch round trip");
    assert_eq!(again.to_bytes().ok(), Some(written), "writing is stable");
}

/// The policy loader: `purposes.yaml`, then inventories, separated by NUL bytes.
pub fn policy_load(data: &[u8]) {
    const NAMES: [&str; 4] = [
        "purposes.yaml",
        "inventory/salesforce.yaml",
        "inventory/hubspot.yaml",
        "inventory/dynamics.yaml",
    ];
    let texts: Vec<String> = data
        .split(|b| *b == 0)
        .take(NAMES.len())
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .collect();
    let files: Vec<(&str, &str)> = NAMES
        .iter()
        .zip(&texts)
        .map(|(name, text)| (*name, text.as_str()))
        .collect();
    let _ = zweck::policy::PolicySet::from_texts(&files);
}

const CODINGS: [Option<Coding>; 5] = [
    None,
    Some(Coding::Gzip),
    Some(Coding::Deflate),
    Some(Coding::Br),
    Some(Coding::Zstd),
];

/// Content decoding. Bytes 0-1 pick up to two codings, byte 2 the chunk size. Buffered and
/// chunked decoding agree, and the caps hold.
pub fn content_decode(data: &[u8]) {
    let (config, input) = data.split_at(data.len().min(3));
    let pick = |i: usize| CODINGS[usize::from(config.get(i).copied().unwrap_or(0)) % 5];
    let codings: Vec<Coding> = [pick(0), pick(1)].into_iter().flatten().collect();
    let chunk = 1 + usize::from(config.get(2).copied().unwrap_or(0)) % 256;
    let limits = Limits {
        max_output: 1024 * 1024,
        max_ratio: 100,
        ratio_grace: 4096,
    };
    let whole = encoding::decode(input, &codings, &limits);
    let chunked = (|| {
        let mut decoder = Decoder::new(&codings, limits)?;
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            out.extend_from_slice(&decoder.feed(piece)?);
        }
        out.extend_from_slice(&decoder.finish()?);
        Ok::<_, encoding::DecodeError>(out)
    })();
    if let Ok(out) = &whole {
        assert!(out.len() <= limits.max_output, "output cap");
    }
    match (&whole, &chunked) {
        (Ok(a), Ok(b)) => assert_eq!(a.as_ref(), b.as_slice(), "chunking changed the output"),
        // Chunked decoding judges the ratio on the input seen so far, so it may stop earlier.
        // brotli-decompressor notices some corrupt streams only when a write ends at the bad
        // spot: the same bytes in one write decode without error, while the reference decoder
        // (C brotli) refuses them either way (seed br-chunked-mismatch.bin). Refusing is the
        // safe side of that disagreement, so chunked may refuse a brotli stream as corrupt.
        (Ok(_), Err(e)) => assert!(
            matches!(e, encoding::DecodeError::RatioExceeded { .. })
                || (codings.contains(&Coding::Br)
                    && matches!(e, encoding::DecodeError::Corrupt(Coding::Br))),
            "chunked failed where buffered passed: {e}"
        ),
        (Err(e), Ok(_)) => panic!("buffered failed where chunked passed: {e}"),
        (Err(_), Err(_)) => {}
    }
}
