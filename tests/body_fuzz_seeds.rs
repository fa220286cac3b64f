//! The fuzz targets of `fuzz/` on stable: every seed in `fuzz/seeds/<target>/`, then
//! generated inputs (seed mutations and arbitrary bytes) through proptest's runner. A panic
//! is a crash; each test prints how many executions it ran.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Generated inputs per target on top of the seeds; `ZWECK_FUZZ_CASES` overrides it for a
/// longer local run. A failure prints proptest's minimal input: add it to the seeds.
fn generated() -> u32 {
    std::env::var("ZWECK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| std::fs::read(path).expect("seed file"))
        .collect()
}

/// A seed with a few bytes overwritten, inserted or cut, or arbitrary bytes.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    let mutated = (
        0..count,
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8),
        any::<usize>(),
        any::<bool>(),
    )
        .prop_map(move |(index, edits, cut, truncate)| {
            let mut data = seeds[index].clone();
            for (pos, byte, kind) in edits {
                let at = if data.is_empty() { 0 } else { pos % data.len() };
                match kind {
                    0 if !data.is_empty() => data[at] = byte,
                    1 => data.insert(at, byte),
                    _ if !data.is_empty() => {
                        data.remove(at);
                    }
                    _ => data.push(byte),
                }
            }
            if truncate && !data.is_empty() {
                data.truncate(cut % data.len());
            }
            data
        });
    prop_oneof![
        3 => mutated,
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// Runs the target over its seeds, extra inputs and [`generated`] generated ones.
fn exercise(name: &str, target: fn(&[u8]), extra: Vec<Vec<u8>>) {
    let mut seeds = seeds(name);
    seeds.extend(extra);
    assert!(!seeds.is_empty(), "{name} has seeds");
    let mut executions = 0u64;
    for seed in &seeds {
        target(seed);
        executions += 1;
    }
    let mut runner = TestRunner::new(Config {
        cases: generated(),
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::cell::Cell::new(0u64);
    let result = runner.run(&inputs(seeds.clone()), |input| {
        target(&input);
        counter.set(counter.get() + 1);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{name}: {failure}");
    }
    executions += counter.get();
    println!(
        "{name}: {executions} executions without a crash ({} seeds)",
        seeds.len()
    );
}

#[test]
fn json_parse() {
    exercise("json_parse", targets::json_parse, Vec::new());
}

#[test]
fn csv_transform() {
    exercise("csv_transform", targets::csv_transform, Vec::new());
}

#[test]
fn multipart_parse() {
    exercise("multipart_parse", targets::multipart_parse, Vec::new());
}

#[test]
fn policy_load() {
    exercise("policy_load", targets::policy_load, Vec::new());
}

#[test]
fn content_decode() {
    // br and zstd seeds are made here (no stock tool writes them into the repository).
    use zweck::body::encoding::{encode, Coding};
    let plain = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/crm/salesforce/bulk2-query-results.page1.csv"),
    )
    .expect("fixture");
    let mut extra = Vec::new();
    for (index, coding) in [(3u8, Coding::Br), (4u8, Coding::Zstd)] {
        let mut seed = vec![index, 0, 31];
        seed.extend_from_slice(&encode(&plain, coding).expect("encode"));
        extra.push(seed);
    }
    let gzip = encode(&plain, Coding::Gzip).expect("gzip");
    let mut stacked = vec![1u8, 3, 7];
    stacked.extend_from_slice(&encode(&gzip, Coding::Br).expect("br"));
    extra.push(stacked);
    exercise("content_decode", targets::content_decode, extra);
}
