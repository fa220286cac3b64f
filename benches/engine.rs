//! The policy engine's two paths beside a plain serde_json parse + serialize of the same
//! bytes, so the ratios show in one run (issue 18: span path vs DOM path vs serde_json).
//!
//! Bodies are generated in the shapes of the fixtures by the CRM double's generator:
//! Salesforce query pages, HubSpot list pages and Dataverse lists of about 1 KB, 100 KB and
//! 10 MB. Each group measures on identical bytes:
//! - `serde_json`: `from_slice::<Value>` + `to_vec` (the floor of any DOM-based rewriter);
//! - `zweck_parse`: Zweck's strict parser (duplicate keys, depth, BOM) + serialize;
//! - `dom_<purpose>`: strict parse + `policy::apply` + serialize (the DOM path);
//! - `span_<purpose>`: `policy::span::response` (the span path the proxy takes), checked
//!   once to give the DOM path's bytes before it is timed;
//!   for the filtering purpose (`newsletter`: consent, drops) and the pseudonymising one
//!   (`analytics`: HMAC pseudonyms, generalisation).
//!
//! Run: `cargo bench --bench engine` (add `-- --quick` for a fast pass).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::Value;
use zweck::dialect::Dialect;
use zweck::json;
use zweck::policy::{self, Direction, PseudonymKey, RouteMatch};

#[path = "shared/mod.rs"]
mod shared;
use shared::{page, LIMITS};

/// The allocator the `zweck` binary uses (src/main.rs), so the engine is measured as it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let double = shared::double();
    let set = shared::shipped_policies();
    let key = PseudonymKey::new(&[7u8; 32]);
    let limits = LIMITS;
    let shape = policy::query::Shape::default();
    let cases = [
        (Dialect::Salesforce, "GET", "/services/data/v66.0/query"),
        (Dialect::HubSpot, "GET", "/crm/v3/objects/contacts"),
        (Dialect::Dynamics, "GET", "/api/data/v9.2/contacts"),
    ];
    for (dialect, method, path) in cases {
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        let RouteMatch::Operation(op) = set.classify(dialect, &method, path) else {
            panic!("{path} is governed");
        };
        let mut group = c.benchmark_group(format!("{dialect}"));
        for (label, size) in [("1KB", 1_000), ("100KB", 100_000), ("10MB", 10_000_000)] {
            let bytes = page(&double, dialect, size);
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            if size >= 10_000_000 {
                group.sample_size(10);
            }
            group.bench_with_input(BenchmarkId::new("serde_json", label), &bytes, |b, bytes| {
                b.iter(|| {
                    let v: Value = serde_json::from_slice(black_box(bytes)).expect("parse");
                    black_box(serde_json::to_vec(&v).expect("serialize"))
                });
            });
            group.bench_with_input(
                BenchmarkId::new("zweck_parse", label),
                &bytes,
                |b, bytes| {
                    b.iter(|| {
                        let v = json::parse(black_box(bytes), &limits).expect("parse");
                        black_box(json::to_bytes(&v))
                    });
                },
            );
            for purpose in ["newsletter", "analytics"] {
                let p = set.purpose(purpose).expect("purpose");
                let dom = |bytes: &[u8]| {
                    let mut v = json::parse(bytes, &limits).expect("parse");
                    let out = policy::apply(&set, p, op, Direction::Response, &mut v, Some(&key))
                        .expect("apply");
                    (json::to_bytes(&v), out)
                };
                let span = |bytes: &[u8]| {
                    policy::span::response(&set, p, op, bytes, &limits, Some(&key), &shape, None)
                        .expect("the span path covers the page")
                };
                let (want, outcome) = dom(&bytes);
                let got = span(&bytes);
                assert!(want == got.body && outcome == got.outcome, "span == dom");
                group.bench_with_input(
                    BenchmarkId::new(format!("dom_{purpose}"), label),
                    &bytes,
                    |b, bytes| {
                        b.iter(|| {
                            let (out, outcome) = dom(black_box(bytes));
                            black_box(outcome.records);
                            black_box(out)
                        });
                    },
                );
                group.bench_with_input(
                    BenchmarkId::new(format!("span_{purpose}"), label),
                    &bytes,
                    |b, bytes| {
                        b.iter(|| {
                            let m = span(black_box(bytes));
                            black_box(m.outcome.records);
                            black_box(m.body)
                        });
                    },
                );
            }
        }
        group.finish();
    }
}

/// Query review on the request path (issue 12, items 8 and 9): reading a query and checking
/// its predicates (support: nothing to add) beside the same plus adding the consent field and
/// re-serialising (newsletter), per dialect, with the engine on a ~1 KB page of the same
/// dialect as the yardstick. Run: `cargo bench --bench engine -- query_review`.
fn query_review(c: &mut Criterion) {
    let double = shared::double();
    let set = shared::shipped_policies();
    let key = PseudonymKey::new(&[7u8; 32]);
    let cases = [
        (
            Dialect::Salesforce,
            "/services/data/v66.0/query",
            "q=SELECT+Id,+FirstName,+Email,+(SELECT+Id+FROM+Cases)+FROM+Contact+WHERE+MailingCountry+=+'DE'+ORDER+BY+CreatedDate+LIMIT+200",
        ),
        (
            Dialect::HubSpot,
            "/crm/v3/objects/contacts",
            "limit=100&properties=firstname,email,createdate&archived=false",
        ),
        (
            Dialect::Dynamics,
            "/api/data/v9.2/contacts",
            "$select=firstname,emailaddress1,createdon&$filter=address1_country%20eq%20'DE'&$orderby=createdon%20desc&$top=200",
        ),
    ];
    let mut group = c.benchmark_group("query_review");
    for (dialect, path, query) in cases {
        let RouteMatch::Operation(op) = set.classify(dialect, &http::Method::GET, path) else {
            panic!("{path} is governed");
        };
        for purpose in ["support", "newsletter"] {
            let p = set.purpose(purpose).expect("purpose");
            group.bench_function(BenchmarkId::new(format!("{dialect}"), purpose), |b| {
                b.iter(|| {
                    let r = policy::query::review_url(&set, p, op, path, Some(black_box(query)))
                        .expect("allowed");
                    black_box(r.query)
                });
            });
        }
        let bytes = page(&double, dialect, 1_000);
        let p = set.purpose("newsletter").expect("purpose");
        group.bench_function(BenchmarkId::new(format!("{dialect}"), "engine_1KB"), |b| {
            b.iter(|| {
                let mut v = json::parse(black_box(&bytes), &LIMITS).expect("parse");
                let out = policy::apply(&set, p, op, Direction::Response, &mut v, Some(&key))
                    .expect("apply");
                black_box(out.records);
                black_box(json::to_bytes(&v))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench, query_review);
criterion_main!(benches);
