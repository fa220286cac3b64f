//! The JSONTestSuite corpus (tests/corpora/JSONTestSuite, MIT, see its LICENSE) against the
//! strict JSON model: every `y_` file is accepted with its values intact (except the two
//! duplicate-key files, refused by design), every `n_` file is refused, and every `i_` file has
//! the outcome pinned in the table below (documented in docs/json.md).

use std::path::Path;

use zweck::json::{self, JsonError, JsonLimits};

/// `i_` files: `Ok(())` = accepted, `Err(reason)` = refused with that reason.
const IMPLEMENTATION_DEFINED: &[(&str, Result<(), &str>)] = &[
    ("i_number_double_huge_neg_exp.json", Ok(())),
    ("i_number_huge_exp.json", Ok(())),
    ("i_number_neg_int_huge_exp.json", Ok(())),
    ("i_number_pos_double_huge_exp.json", Ok(())),
    ("i_number_real_neg_overflow.json", Ok(())),
    ("i_number_real_pos_overflow.json", Ok(())),
    ("i_number_real_underflow.json", Ok(())),
    ("i_number_too_big_neg_int.json", Ok(())),
    ("i_number_too_big_pos_int.json", Ok(())),
    ("i_number_very_big_negative_int.json", Ok(())),
    (
        "i_object_key_lone_2nd_surrogate.json",
        Err("lone-surrogate"),
    ),
    (
        "i_string_1st_surrogate_but_2nd_missing.json",
        Err("json-syntax"),
    ),
    (
        "i_string_1st_valid_surrogate_2nd_invalid.json",
        Err("lone-surrogate"),
    ),
    ("i_string_UTF-16LE_with_BOM.json", Err("invalid-utf8")),
    ("i_string_UTF-8_invalid_sequence.json", Err("invalid-utf8")),
    ("i_string_UTF8_surrogate_U+D800.json", Err("invalid-utf8")),
    (
        "i_string_incomplete_surrogate_and_escape_valid.json",
        Err("json-syntax"),
    ),
    (
        "i_string_incomplete_surrogate_pair.json",
        Err("lone-surrogate"),
    ),
    (
        "i_string_incomplete_surrogates_escape_valid.json",
        Err("lone-surrogate"),
    ),
    ("i_string_invalid_lonely_surrogate.json", Err("json-syntax")),
    ("i_string_invalid_surrogate.json", Err("json-syntax")),
    ("i_string_invalid_utf-8.json", Err("invalid-utf8")),
    (
        "i_string_inverted_surrogates_U+1D11E.json",
        Err("lone-surrogate"),
    ),
    ("i_string_iso_latin_1.json", Err("invalid-utf8")),
    ("i_string_lone_second_surrogate.json", Err("lone-surrogate")),
    (
        "i_string_lone_utf8_continuation_byte.json",
        Err("invalid-utf8"),
    ),
    ("i_string_not_in_unicode_range.json", Err("invalid-utf8")),
    (
        "i_string_overlong_sequence_2_bytes.json",
        Err("invalid-utf8"),
    ),
    (
        "i_string_overlong_sequence_6_bytes.json",
        Err("invalid-utf8"),
    ),
    (
        "i_string_overlong_sequence_6_bytes_null.json",
        Err("invalid-utf8"),
    ),
    ("i_string_truncated-utf-8.json", Err("invalid-utf8")),
    ("i_string_utf16BE_no_BOM.json", Err("invalid-utf8")),
    ("i_string_utf16LE_no_BOM.json", Err("invalid-utf8")),
    ("i_structure_500_nested_arrays.json", Err("too-deep")),
    (
        "i_structure_UTF-8_BOM_empty_object.json",
        Err("byte-order-mark"),
    ),
];

/// `y_` files refused by design: a parser that keeps one of two values leaks the other.
const REFUSED_BY_DESIGN: &[&str] = &[
    "y_object_duplicated_key.json",
    "y_object_duplicated_key_and_value.json",
];

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpora/JSONTestSuite/test_parsing"
    ));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("corpus")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

fn run(files: Vec<(String, Vec<u8>)>) -> Vec<String> {
    let limits = JsonLimits {
        max_depth: 128,
        max_bytes: 1 << 20,
    };
    let mut failures = Vec::new();
    let mut seen_i = 0;
    for (name, bytes) in &files {
        let got = json::parse(bytes, &limits);
        if name.starts_with("y_") {
            if REFUSED_BY_DESIGN.contains(&name.as_str()) {
                if !matches!(got, Err(JsonError::DuplicateKey { .. })) {
                    failures.push(format!("{name}: expected duplicate-key, got {got:?}"));
                }
                continue;
            }
            match got {
                Ok(v) => {
                    // values intact: serialize, parse again, same document
                    let again = json::parse(&json::to_bytes(&v), &limits);
                    if again.as_ref() != Ok(&v) {
                        failures.push(format!("{name}: round trip changed the document"));
                    }
                    let original: Result<serde_json::Value, _> = serde_json::from_slice(bytes);
                    if let Ok(o) = original {
                        if o != v {
                            failures
                                .push(format!("{name}: a value differs from serde_json's reading"));
                        }
                    }
                }
                Err(e) => failures.push(format!("{name}: refused ({e})")),
            }
        } else if name.starts_with("n_") {
            if got.is_ok() {
                failures.push(format!("{name}: accepted"));
            }
        } else if name.starts_with("i_") {
            seen_i += 1;
            let Some((_, want)) = IMPLEMENTATION_DEFINED.iter().find(|(n, _)| n == name) else {
                failures.push(format!(
                    "{name}: not in the table (got {:?})",
                    got.as_ref().map(|_| ()).map_err(JsonError::reason)
                ));
                continue;
            };
            let got = got.as_ref().map(|_| ()).map_err(JsonError::reason);
            if got != *want {
                failures.push(format!("{name}: expected {want:?}, got {got:?}"));
            }
        }
    }
    if seen_i != IMPLEMENTATION_DEFINED.len() {
        failures.push(format!(
            "the table lists {} i_ files, the corpus has {seen_i}",
            IMPLEMENTATION_DEFINED.len()
        ));
    }
    failures
}

#[test]
fn every_corpus_file_has_the_expected_outcome() {
    let files = corpus();
    assert!(files.len() > 300, "the corpus is there");
    // a normal 2 MiB thread stack: deep files must fail cleanly, not overflow
    let failures = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || run(files))
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
