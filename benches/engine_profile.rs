//! A fixed number of engine runs on one body, for instruction counting under callgrind
//! (`benches/profile.sh engine`): no criterion, no timing, nothing adaptive, so two runs with
//! N and 3N iterations differ only by 2N engine runs.
//!
//! Usage: `engine_profile <salesforce|hubspot|dynamics> <bytes> <purpose|span:purpose|parse|serde_json> <iterations>`
//! (`parse` = Zweck's strict parse + serialize only; `serde_json` = serde_json's
//! `from_slice::<Value>` + `to_vec`, the floor; `span:PURPOSE` = the span path,
//! `policy::span::response`).

use std::hint::black_box;

use zweck::dialect::Dialect;
use zweck::json;
use zweck::policy::{self, Direction, PseudonymKey, RouteMatch};

#[path = "shared/mod.rs"]
mod shared;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench target with `--bench`: nothing to do then
    if args.len() != 4 {
        eprintln!("usage: engine_profile <salesforce|hubspot|dynamics> <bytes> <purpose|parse|serde_json> <iterations>");
        return;
    }
    let (dialect, path) = match args[0].as_str() {
        "salesforce" => (Dialect::Salesforce, "/services/data/v66.0/query"),
        "hubspot" => (Dialect::HubSpot, "/crm/v3/objects/contacts"),
        "dynamics" => (Dialect::Dynamics, "/api/data/v9.2/contacts"),
        other => panic!("unknown dialect {other}"),
    };
    let target: usize = args[1].parse().expect("bytes");
    let iterations: u64 = args[3].parse().expect("iterations");
    let bytes = shared::page(&shared::double(), dialect, target);
    let set = shared::shipped_policies();
    let key = PseudonymKey::new(&[7u8; 32]);
    let limits = shared::LIMITS;
    let RouteMatch::Operation(op) = set.classify(dialect, &http::Method::GET, path) else {
        panic!("{path} is governed");
    };
    if args[2] == "serde_json" {
        for _ in 0..iterations {
            let v: serde_json::Value = serde_json::from_slice(black_box(&bytes)).expect("parse");
            black_box(serde_json::to_vec(&v).expect("serialize"));
        }
        return;
    }
    if let Some(name) = args[2].strip_prefix("span:") {
        let p = set.purpose(name).expect("purpose");
        let shape = policy::query::Shape::default();
        for _ in 0..iterations {
            let m = policy::span::response(
                &set,
                p,
                op,
                black_box(&bytes),
                &limits,
                Some(&key),
                &shape,
                None,
            )
            .expect("the span path covers the page");
            black_box(m.outcome.records);
            black_box(m.body);
        }
        eprintln!("{} bytes, {iterations} runs", bytes.len());
        return;
    }
    let purpose = (args[2] != "parse").then(|| set.purpose(&args[2]).expect("purpose"));
    for _ in 0..iterations {
        let mut v = json::parse(black_box(&bytes), &limits).expect("parse");
        if let Some(p) = purpose {
            let out =
                policy::apply(&set, p, op, Direction::Response, &mut v, Some(&key)).expect("apply");
            black_box(out.records);
        }
        black_box(json::to_bytes(&v));
    }
    eprintln!("{} bytes, {iterations} runs", bytes.len());
}
