//! The streaming list-page transformer (src/body/json_stream.rs) against the whole-document
//! model: for any chunking, its output is the document the same callbacks make from one
//! strict parse (array first, envelope after it), it refuses what `json::parse` refuses, a
//! truncated document is an error and never a short output, and memory stays at one record
//! plus the envelope whatever the size of the page.

use std::path::Path;
use std::time::Instant;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use zweck::body::json_stream::{JsonListStream, JsonStreamError, JsonStreamLimits};
use zweck::json::{self, JsonLimits};

type Err = JsonStreamError<String>;

/// The record callback of these tests: objects with a `drop` key are removed, keys starting
/// with `x` are dropped from the others, which get a marker.
fn on_record(v: Value) -> Result<Option<Value>, String> {
    match v {
        Value::Object(m) if m.contains_key("drop") => Ok(None),
        Value::Object(m) => {
            let mut kept: Map<String, Value> =
                m.into_iter().filter(|(k, _)| !k.starts_with('x')).collect();
            kept.insert("seen".into(), Value::Bool(true));
            Ok(Some(Value::Object(kept)))
        }
        Value::String(s) if s == "refuse" => Err("refused".into()),
        other => Ok(Some(other)),
    }
}

/// The envelope callback: keys starting with `x` are dropped.
fn on_envelope(m: Map<String, Value>) -> Result<Map<String, Value>, String> {
    Ok(m.into_iter().filter(|(k, _)| !k.starts_with('x')).collect())
}

fn limits() -> JsonStreamLimits {
    JsonStreamLimits {
        max_depth: 128,
        max_record_bytes: 1 << 20,
        max_envelope_bytes: 1 << 20,
    }
}

/// Streams `doc` cut at `cuts` (sorted or not, clamped) and returns the whole output.
fn stream(doc: &[u8], cuts: &[usize]) -> Result<Vec<u8>, Err> {
    stream_with(doc, cuts, "records", limits())
}

fn stream_with(
    doc: &[u8],
    cuts: &[usize],
    key: &str,
    limits: JsonStreamLimits,
) -> Result<Vec<u8>, Err> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(doc.len())).collect();
    cuts.sort_unstable();
    let mut s = JsonListStream::new(key, limits, on_record, on_envelope);
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([doc.len()]) {
        out.extend_from_slice(&s.feed(&doc[at..c])?);
        at = c;
    }
    out.extend_from_slice(&s.finish()?);
    Ok(out)
}

fn bytewise(doc: &[u8]) -> Result<Vec<u8>, Err> {
    let cuts: Vec<usize> = (1..doc.len()).collect();
    stream(doc, &cuts)
}

/// What the same callbacks make of the whole parsed document, in the documented order:
/// the array first, then the envelope. `None` when the document is refused or not a list
/// page under `key`.
fn expected(doc: &[u8], key: &str) -> Option<Result<Vec<u8>, String>> {
    let parsed = json::parse(
        doc,
        &JsonLimits {
            max_depth: 128,
            max_bytes: usize::MAX,
        },
    )
    .ok()?;
    let Value::Object(mut top) = parsed else {
        return None;
    };
    let Some(Value::Array(records)) = top.shift_remove(key) else {
        return None;
    };
    let run = || -> Result<Vec<u8>, String> {
        let mut kept = Vec::new();
        for r in records {
            if let Some(v) = on_record(r)? {
                kept.push(v);
            }
        }
        let mut out = Map::new();
        out.insert(key.to_string(), Value::Array(kept));
        out.extend(on_envelope(top)?);
        Ok(json::to_bytes(&Value::Object(out)).to_vec())
    };
    Some(run())
}

fn check_equivalent(doc: &[u8], cuts: &[usize]) {
    let got = stream(doc, cuts);
    match expected(doc, "records") {
        Some(Ok(want)) => {
            let got = got.unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(doc)));
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "cuts {cuts:?}"
            );
        }
        Some(Err(_)) => assert!(matches!(got, Err(JsonStreamError::Callback(_)))),
        None => assert!(
            got.is_err(),
            "accepted what the whole-document model refuses: {}",
            String::from_utf8_lossy(doc)
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Generated documents

/// Writes a string with every character as a `\u` escape (surrogate pairs above the BMP).
fn escaped_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{u:04x}"));
        }
    }
    out.push('"');
}

/// Writes a value with whitespace `ws` between tokens; strings `\u`-escaped when `escape`.
fn write_value(v: &Value, ws: &str, escape: bool, out: &mut String) {
    match v {
        Value::String(s) if escape => escaped_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(ws);
                write_value(item, ws, escape, out);
                out.push_str(ws);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(ws);
                write_value(&Value::String(k.clone()), ws, escape, out);
                out.push_str(ws);
                out.push(':');
                out.push_str(ws);
                write_value(item, ws, escape, out);
            }
            out.push_str(ws);
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).expect("value")),
    }
}

/// Strings full of the characters a boundary scanner could trip on.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\\]\\[{},:\"\\\\/ a\u{e9}\u{1d11e}\n\t]{0,12}",
        ".{0,8}",
        Just("refuse".to_string()),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (any::<i32>(), 0u32..1000)
            .prop_map(|(a, b)| { Value::Number(format!("{a}.{b:03}").parse().expect("number")) }),
        nasty().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(nasty(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn record() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (prop::collection::btree_map(nasty(), value(), 0..5), any::<bool>()).prop_map(
            |(m, drop)| {
                let mut o: Map<String, Value> = m.into_iter().collect();
                if drop {
                    o.insert("drop".into(), json!("SECRET-DROPPED"));
                } else {
                    o.remove("drop");
                }
                Value::Object(o)
            }
        ),
        1 => value().prop_filter("no marker", |v| !v.to_string().contains("SECRET")),
    ]
}

/// A list page: envelope members around the `records` array, whitespace and escapes
/// chosen by the strategy. No trailing whitespace, so every strict prefix is truncated.
#[derive(Debug, Clone)]
struct Page {
    text: String,
}

fn page() -> impl Strategy<Value = Page> {
    (
        prop::collection::btree_map(
            nasty().prop_filter("not the array key", |k| k != "records"),
            value(),
            0..5,
        ),
        prop::collection::vec(record(), 0..8),
        0usize..6,
        prop::sample::select(vec!["", " ", "\n", " \t\r\n "]),
        any::<bool>(),
    )
        .prop_map(|(envelope, records, split, ws, escape)| {
            let members: Vec<(String, Value)> = envelope.into_iter().collect();
            let split = split.min(members.len());
            let mut text = String::from(ws);
            text.push('{');
            let mut first = true;
            let mut member = |k: &str, v: &Value, text: &mut String| {
                if !first {
                    text.push(',');
                }
                first = false;
                text.push_str(ws);
                write_value(&Value::String(k.to_string()), ws, escape, text);
                text.push_str(ws);
                text.push(':');
                text.push_str(ws);
                write_value(v, ws, escape, text);
                text.push_str(ws);
            };
            for (k, v) in &members[..split] {
                member(k, v, &mut text);
            }
            member("records", &Value::Array(records), &mut text);
            for (k, v) in &members[split..] {
                member(k, v, &mut text);
            }
            text.push('}');
            Page { text }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_whole_document_result(
        p in page(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let doc = p.text.as_bytes();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(doc.len() + 1)).collect();
        check_equivalent(doc, &cuts);
        check_equivalent(doc, &(1..doc.len()).collect::<Vec<_>>());
        if let Ok(out) = stream(doc, &cuts) {
            prop_assert!(!String::from_utf8_lossy(&out).contains("SECRET"));
        }
    }

    #[test]
    fn a_truncated_document_is_an_error(p in page(), cut in any::<prop::sample::Index>()) {
        let doc = p.text.as_bytes();
        let cut = cut.index(doc.len());
        prop_assert!(stream(&doc[..cut], &[cut / 2]).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_accepted_only_as_the_model_accepts_them(
        body in prop::collection::vec(
            prop::sample::select(b"{}[],:\" \\u0aetrfnl1-.x\xff".to_vec()), 0..40),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut doc = br#"{"records":["#.to_vec();
        doc.extend_from_slice(&body);
        doc.extend_from_slice(b"]}");
        check_equivalent(&doc, &[cut.index(doc.len() + 1)]);
    }
}

// ---------------------------------------------------------------------------------------
// Fixed cases

/// Every two-chunk split and byte by byte.
fn every_split(doc: &[u8]) {
    for c in 0..=doc.len() {
        check_equivalent(doc, &[c]);
    }
    check_equivalent(doc, &(1..doc.len()).collect::<Vec<_>>());
}

#[test]
fn tricky_strings_split_anywhere() {
    let doc = br#"{"totalSize":3,"x-secret":"]}","records":[
        {"Id":"1","Name":"a]b}c,d\"e\\","x":"\u005d\u007d\u002c\u0022"},
        {"Id":"2","Name":"\ud834\udd1e \u00e9 \\\" \\","drop":"SECRET"},
        {"Id":"3","\u004eame":"[{\"records\":[]}]","nested":[{"a":"]"},[["}"]]]}
    ],"done":true,"nextRecordsUrl":"/services/data/v66.0/query/01g-2000"}"#;
    every_split(doc);
    let out = bytewise(doc).expect("ok");
    let v: Value = serde_json::from_slice(&out).expect("output is JSON");
    assert_eq!(v["records"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["records"][1]["Name"], json!("[{\"records\":[]}]"));
    assert_eq!(v["totalSize"], json!(3));
    assert!(v.get("x-secret").is_none());
    assert!(!String::from_utf8_lossy(&out).contains("SECRET"));
}

#[test]
fn output_order_is_array_first_then_envelope() {
    let doc = br#"{"totalSize":1,"records":[{"Id":"1"}],"done":true}"#;
    let out = stream(doc, &[]).expect("ok");
    assert_eq!(
        out,
        br#"{"records":[{"Id":"1","seen":true}],"totalSize":1,"done":true}"#
    );
    // the array key is the caller's, compared on its decoded form
    let doc = br#"{"\u0076alue":[1],"@odata.nextLink":"x"}"#;
    let out = stream_with(doc, &[3], "value", limits()).expect("ok");
    assert_eq!(out, br#"{"value":[1],"@odata.nextLink":"x"}"#);
}

#[test]
fn removed_records_never_appear_and_counts_are_kept() {
    let mut s = JsonListStream::new("results", limits(), on_record, on_envelope);
    let mut out = Vec::new();
    for chunk in [
        &br#"{"results":[{"id":"1","drop":"SECRET-1"},{"id":"#[..],
        br#""2"},{"id":"3","drop":"SECRET-3"}"#,
        br#"],"paging":{"next":{"after":"3"}}}"#,
    ] {
        out.extend_from_slice(&s.feed(chunk).expect("feed"));
    }
    out.extend_from_slice(&s.finish().expect("finish"));
    assert_eq!(
        String::from_utf8_lossy(&out),
        r#"{"results":[{"id":"2","seen":true}],"paging":{"next":{"after":"3"}}}"#
    );
    assert_eq!((s.records_in(), s.records_out()), (3, 1));
}

#[test]
fn duplicate_keys_are_refused() {
    for doc in [
        &br#"{"records":[{"Email":"a","Email":"b"}]}"#[..],
        br#"{"records":[{"email":"a","\u0065mail":"b"}]}"#,
        br#"{"records":[{"a":{"k":1,"k":2}}]}"#,
        br#"{"totalSize":1,"records":[],"totalSize":2}"#,
        br#"{"done":true,"\u0064one":false,"records":[]}"#,
        br#"{"records":[],"records":[]}"#,
        br#"{"records":[],"\u0072ecords":[{"leak":1}]}"#,
        br#"{"records":[],"records":1}"#,
        br#"{"e":{"a":1,"a":1},"records":[]}"#,
    ] {
        for c in 0..=doc.len() {
            let e = stream(doc, &[c]).expect_err("duplicate");
            assert_eq!(e.reason(), "duplicate-key", "{e}");
            assert!(json::parse(doc, &JsonLimits::default()).is_err());
        }
    }
}

#[test]
fn bom_invalid_utf8_and_surrogates_are_refused() {
    for (doc, reason) in [
        (&b"\xEF\xBB\xBF{\"records\":[]}"[..], "byte-order-mark"),
        (b"{\"records\":[\"\xff\"]}", "invalid-utf8"),
        (b"{\"records\":[{\"\xc3\x28\":1}]}", "invalid-utf8"),
        (b"{\"e\":\"\xed\xa0\x80\",\"records\":[]}", "invalid-utf8"),
        (b"{\"\xff\":1,\"records\":[]}", "invalid-utf8"),
        (br#"{"records":["\udc00"]}"#, "lone-surrogate"),
        (br#"{"\udc00":1,"records":[]}"#, "lone-surrogate"),
    ] {
        for c in 0..=doc.len() {
            let e = stream(doc, &[c]).expect_err("refused");
            assert_eq!(e.reason(), reason, "{e} at {c}");
        }
    }
    // non-UTF-8 bytes between tokens
    assert!(stream(b"{\"records\":[1,\xff2]}", &[]).is_err());
    assert!(stream(b"{\"records\":[]}\xff", &[]).is_err());
}

#[test]
fn shapes_that_are_not_list_pages_are_refused() {
    for (doc, reason) in [
        (&br#"[{"records":[]}]"#[..], "json-shape"),
        (br#"{"totalSize":0}"#, "json-shape"),
        (br"{}", "json-shape"),
        (br#"{"records":null}"#, "json-shape"),
        (br#"{"records":{"0":{}}}"#, "json-shape"),
        (br#"{"data":{"records":[]}}"#, "json-shape"),
        (br#""records""#, "json-syntax"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (br#"{"records":[]} {}"#, "trailing-content"),
    ] {
        let e = stream(doc, &[]).expect_err("refused");
        assert_eq!(e.reason(), reason, "{e}: {}", String::from_utf8_lossy(doc));
    }
}

#[test]
fn truncation_is_an_error_at_every_byte() {
    let doc = br#"{"totalSize":2,"records":[{"Id":"1","s":"a\"]}"},{"Id":"2"}],"done":true}"#;
    for cut in 0..doc.len() {
        let mut s = JsonListStream::new("records", limits(), on_record, on_envelope);
        let fed = s.feed(&doc[..cut]);
        // whatever was released before the end, the stream does not end cleanly
        assert!(fed.is_ok(), "a prefix is not an error before finish");
        assert!(s.finish().is_err(), "clean end at {cut}");
    }
    assert!(stream(doc, &[]).is_ok());
}

#[test]
fn limits_are_enforced() {
    let small = JsonStreamLimits {
        max_depth: 128,
        max_record_bytes: 32,
        max_envelope_bytes: 40,
    };
    let doc = br#"{"records":[{"Id":"1"},{"Id":"2","Name":"a long enough name"}]}"#;
    for c in 0..=doc.len() {
        let e = stream_with(doc, &[c], "records", small).expect_err("too large");
        assert!(
            matches!(e, JsonStreamError::RecordTooLarge { limit: 32 }),
            "{e}"
        );
    }
    let fits = br#"{"records":[{"Id":"1","Name":"exactly 32 b"}]}"#;
    assert!(stream_with(fits, &[], "records", small).is_ok());
    // the envelope cap counts keys and values, before and after the array
    let doc = br#"{"totalSize":12345,"records":[],"nextRecordsUrl":"/services/data/x"}"#;
    let e = stream_with(doc, &[], "records", small).expect_err("envelope");
    assert!(
        matches!(e, JsonStreamError::EnvelopeTooLarge { limit: 40 }),
        "{e}"
    );
    let doc = br#"{"totalSize":12345,"records":[],"next":"/x"}"#;
    assert!(stream_with(doc, &[], "records", small).is_ok());
    // depth: the array counts, as in the whole document
    let deep = format!(r#"{{"records":[{}1{}]}}"#, "[".repeat(126), "]".repeat(126));
    let e = stream(deep.as_bytes(), &[]).expect_err("too deep");
    assert_eq!(e.reason(), "too-deep");
    assert!(json::parse(deep.as_bytes(), &JsonLimits::default()).is_err());
    let ok = format!(r#"{{"records":[{}1{}]}}"#, "[".repeat(125), "]".repeat(125));
    assert!(json::parse(ok.as_bytes(), &JsonLimits::default()).is_ok());
    assert!(stream(ok.as_bytes(), &[]).is_ok());
    // 100,000 nested arrays: an error from the scanner, not a deep parse
    let bomb = format!(r#"{{"records":[{}"#, "[".repeat(100_000));
    let e = stream(bomb.as_bytes(), &[]).expect_err("too deep");
    assert_eq!(e.reason(), "too-deep");
}

#[test]
fn callback_errors_end_the_stream() {
    let mut s = JsonListStream::new("records", limits(), on_record, on_envelope);
    let out = s.feed(br#"{"records":[{"a":1},"refuse",{"b":2}]}"#);
    assert!(matches!(out, Err(JsonStreamError::Callback(ref m)) if m == "refused"));
    assert!(matches!(s.feed(b" "), Err(JsonStreamError::Spent)));
    assert!(matches!(s.finish(), Err(JsonStreamError::Spent)));
    let mut s = JsonListStream::new(
        "records",
        limits(),
        on_record,
        |_m: Map<String, Value>| -> Result<Map<String, Value>, String> { Err("no".into()) },
    );
    s.feed(br#"{"records":[]}"#).expect("feed");
    assert!(matches!(s.finish(), Err(JsonStreamError::Callback(_))));
}

/// JSONTestSuite files as a record and as an envelope value: the stream accepts exactly
/// what the whole-document model accepts (and what is a list page), with the same result.
#[test]
fn json_test_suite_inside_a_page() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpora/JSONTestSuite/test_parsing");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        let content = std::fs::read(&path).expect("file");
        let mut as_record = br#"{"records":["#.to_vec();
        as_record.extend_from_slice(&content);
        as_record.extend_from_slice(b"]}");
        let mut as_envelope = br#"{"e":"#.to_vec();
        as_envelope.extend_from_slice(&content);
        as_envelope.extend_from_slice(br#","records":[]}"#);
        for doc in [&as_record, &as_envelope, &content] {
            check_equivalent(doc, &[]);
            check_equivalent(doc, &[doc.len() / 2]);
            check_equivalent(doc, &(1..doc.len().min(4096)).collect::<Vec<_>>());
        }
        files += 1;
    }
    assert!(files > 300, "{files}");
}

// ---------------------------------------------------------------------------------------
// Memory

/// Produces a list page of `records` records of about 2 KiB, chunk by chunk, never holding
/// the document.
struct PageSource {
    next: u64,
    records: u64,
    pending: Vec<u8>,
    ended: bool,
}

impl PageSource {
    fn new(records: u64) -> PageSource {
        PageSource {
            next: 0,
            records,
            pending: format!(r#"{{"totalSize":{records},"records":["#).into_bytes(),
            ended: false,
        }
    }

    fn chunk(&mut self, size: usize) -> Option<Vec<u8>> {
        while self.pending.len() < size && self.next < self.records {
            let n = self.next;
            if n > 0 {
                self.pending.push(b',');
            }
            let notes = "lorem \\\"ipsum\\\" ]},[{ \\u00e9 ".repeat(60);
            self.pending.extend_from_slice(
                format!(
                    r#"{{"Id":"003{n:012}","Email":"user{n}@example.com","Notes":"{notes}","drop":null,"xPhone":"+49 {n}"}}"#
                )
                .as_bytes(),
            );
            if n.is_multiple_of(3) {
                // a removed record
                let len = self.pending.len();
                self.pending.truncate(len - 1);
                self.pending.extend_from_slice(b",\"y\":1}");
            }
            self.next += 1;
        }
        if self.next == self.records && !self.ended {
            self.pending
                .extend_from_slice(br#"],"done":true,"nextRecordsUrl":null}"#);
            self.ended = true;
        }
        if self.pending.is_empty() {
            return None;
        }
        let take = size.min(self.pending.len());
        let rest = self.pending.split_off(take);
        Some(std::mem::replace(&mut self.pending, rest))
    }
}

/// Records removed by the callback: those with `y`; the others lose `xPhone`.
fn drop_y(v: Value) -> Result<Option<Value>, String> {
    match v {
        Value::Object(m) if m.contains_key("y") => Ok(None),
        Value::Object(mut m) => {
            m.shift_remove("xPhone");
            Ok(Some(Value::Object(m)))
        }
        _ => Err("not a record".into()),
    }
}

/// 200 MB by default (`ZWECK_JSON_STREAM_MB` to change it) through the transformer: the held
/// bytes never exceed one record plus the envelope.
#[test]
fn a_large_page_streams_in_bounded_memory() {
    let mb: u64 = std::env::var("ZWECK_JSON_STREAM_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let record_len = 1_800u64; // a generated record is a little longer
    let records = mb * 1_000_000 / record_len;
    let lim = JsonStreamLimits {
        max_depth: 128,
        max_record_bytes: 4 << 10,
        max_envelope_bytes: 1 << 10,
    };
    let mut s = JsonListStream::new("records", lim, drop_y, on_envelope);
    let mut src = PageSource::new(records);
    let started = Instant::now();
    let (mut bytes_in, mut bytes_out, mut max_held, mut max_out) = (0u64, 0u64, 0usize, 0usize);
    let mut tail = Vec::new();
    // chunk sizes that do not line up with records
    let sizes = [65_536, 1, 7_919, 16_384, 3];
    let mut k = 0;
    while let Some(chunk) = src.chunk(sizes[k % sizes.len()]) {
        k += 1;
        bytes_in += chunk.len() as u64;
        let out = s.feed(&chunk).expect("feed");
        max_held = max_held.max(s.buffered_bytes());
        assert!(s.buffered_bytes() <= lim.max_record_bytes + lim.max_envelope_bytes);
        max_out = max_out.max(out.len());
        bytes_out += out.len() as u64;
        tail = out.to_vec();
    }
    let end = s.finish().expect("finish");
    bytes_out += end.len() as u64;
    tail.extend_from_slice(&end);
    assert!(bytes_in >= mb * 1_000_000, "{bytes_in}");
    assert_eq!(s.records_in(), records);
    assert_eq!(s.records_out(), records - records.div_ceil(3));
    assert!(max_held <= lim.max_record_bytes + lim.max_envelope_bytes);
    assert!(max_out <= 65_536 + 2 * 4096, "{max_out}");
    assert!(String::from_utf8_lossy(&tail).ends_with(&format!(
        r#"],"totalSize":{records},"done":true,"nextRecordsUrl":null}}"#
    )));
    eprintln!(
        "{bytes_in} bytes in, {bytes_out} out, {} records, held at most {max_held} bytes, {:?}",
        records,
        started.elapsed()
    );
}
