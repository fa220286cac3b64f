//! Peak memory of governing one 10 MB list page on the DOM path and on the span path
//! (issue 18, item 3): the span path holds the input bytes and the output, nothing per record.
//!
//! Measured as the rise of the process's resident high-water mark (`VmHWM`, reset through
//! `/proc/self/clear_refs`) over one run, each case in a fresh child process of this binary so
//! no allocator cache of an earlier case hides a peak. The parent generates each page once
//! into a temporary file; the child only reads it (so no memory freed by the generator is
//! there to be reused) and resets the mark after: the figure is what governing costs beyond
//! holding the input. Linux only; timed nowhere, so it is a bench, not a test.
//!
//! Run: `cargo bench --bench span_memory` (about a minute).

use std::io::Write as _;

use zweck::dialect::Dialect;
use zweck::json;
use zweck::policy::{self, Direction, PseudonymKey, RouteMatch};

#[path = "shared/mod.rs"]
mod shared;

/// The allocator the `zweck` binary uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DIALECTS: [(&str, Dialect, &str); 3] = [
    (
        "salesforce",
        Dialect::Salesforce,
        "/services/data/v66.0/query",
    ),
    ("hubspot", Dialect::HubSpot, "/crm/v3/objects/contacts"),
    ("dynamics", Dialect::Dynamics, "/api/data/v9.2/contacts"),
];

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One case in this process: prints `input_bytes output_bytes peak_rise_kib`.
fn child(dialect: &str, purpose: &str, path_kind: &str, page: &str) {
    let (_, dialect, path) = DIALECTS
        .iter()
        .find(|(n, _, _)| *n == dialect)
        .copied()
        .expect("dialect");
    let set = shared::shipped_policies();
    let key = PseudonymKey::new(&[7u8; 32]);
    let RouteMatch::Operation(op) = set.classify(dialect, &http::Method::GET, path) else {
        panic!("{path} is governed");
    };
    let p = set.purpose(purpose).expect("purpose");
    let bytes = std::fs::read(page).expect("page file");
    let shape = policy::query::Shape::default();
    // the high-water mark starts again at what is resident now (input included)
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmHWM:");
    let out_len = match path_kind {
        "dom" => {
            let mut v = json::parse(&bytes, &shared::LIMITS).expect("parse");
            policy::apply(&set, p, op, Direction::Response, &mut v, Some(&key)).expect("apply");
            json::to_bytes_sized(&v, bytes.len()).len()
        }
        _ => {
            let m = policy::span::response(
                &set,
                p,
                op,
                &bytes,
                &shared::LIMITS,
                Some(&key),
                &shape,
                None,
            )
            .expect("span path");
            m.body.len()
        }
    };
    let peak = status_kib("VmHWM:");
    println!(
        "{} {} {}",
        bytes.len(),
        out_len,
        peak.saturating_sub(before)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, dialect, purpose, kind, page] = args.as_slice() {
        if flag == "--case" {
            child(dialect, purpose, kind, page);
            return;
        }
    }
    let double = shared::double();
    let dir = std::env::temp_dir().join(format!("span_memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = std::env::current_exe().expect("own path");
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "| dialect | purpose | input | output | DOM path: peak rise | span path: peak rise | span / output |"
    );
    let _ = writeln!(stdout, "|---|---|---|---|---|---|---|");
    for (name, dialect, _) in DIALECTS {
        let page = dir.join(format!("{name}.json"));
        std::fs::write(&page, shared::page(&double, dialect, 10_000_000)).expect("write page");
        for purpose in ["newsletter", "analytics"] {
            let mut row = Vec::new();
            for kind in ["dom", "span"] {
                let out = std::process::Command::new(&exe)
                    .args(["--case", name, purpose, kind])
                    .arg(&page)
                    .output()
                    .expect("child");
                let text = String::from_utf8_lossy(&out.stdout);
                let nums: Vec<u64> = text
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
                row.push(nums);
            }
            let (dom, span) = (&row[0], &row[1]);
            if dom.len() != 3 || span.len() != 3 {
                let _ = writeln!(stdout, "| {name} | {purpose} | failed | | | | |");
                continue;
            }
            let mib = |b: u64| b as f64 / 1_048_576.0;
            let _ = writeln!(
                stdout,
                "| {name} | {purpose} | {:.1} MiB | {:.1} MiB | {:.1} MiB ({:.1}x input) | {:.1} MiB ({:.1}x input) | {:.2} |",
                mib(dom[0]),
                mib(span[1]),
                dom[2] as f64 / 1024.0,
                dom[2] as f64 * 1024.0 / dom[0] as f64,
                span[2] as f64 / 1024.0,
                span[2] as f64 * 1024.0 / span[0] as f64,
                span[2] as f64 * 1024.0 / span[1].max(1) as f64,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
