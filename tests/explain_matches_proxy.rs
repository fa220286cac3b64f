//! `zweck policy explain` tells a policy author what the proxy does: for random reads built
//! from the fixtures' fields (three dialects, four purposes, selected fields, predicates on
//! fields a purpose may or may not see, unknown resources), the decision `explain` reports on
//! the CRM double's own answer equals the proxy's on the wire (its status and problem type,
//! and for a delivered body the transfer log's `allowed` / `minimised`).

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use zweck::dialect::Dialect;

#[derive(Debug, Clone)]
struct Caller {
    purpose: &'static str,
}

const PURPOSES: [&str; 4] = ["newsletter", "support", "billing", "analytics"];

/// Fields of Contact per dialect, as the double serves them.
fn fields(d: Dialect) -> &'static [&'static str] {
    match d {
        Dialect::Salesforce => &[
            "Id",
            "FirstName",
            "LastName",
            "Email",
            "MobilePhone",
            "Birthdate",
            "MailingPostalCode",
            "MailingCountry",
            "HasOptedOutOfEmail",
            "Allergies__c",
        ],
        Dialect::HubSpot => &[
            "email",
            "firstname",
            "lastname",
            "phone",
            "city",
            "zip",
            "date_of_birth",
            "allergies",
        ],
        _ => &[
            "contactid",
            "firstname",
            "lastname",
            "emailaddress1",
            "telephone1",
            "birthdate",
            "address1_postalcode",
            "donotbulkemail",
            "cr123_allergies",
        ],
    }
}

#[derive(Debug, Clone)]
struct Req {
    caller: Caller,
    dialect: Dialect,
    select: Vec<usize>,
    filter: Option<usize>,
    unknown_resource: bool,
    limit: u8,
}

fn req() -> impl Strategy<Value = Req> {
    (
        0..PURPOSES.len(),
        prop_oneof![
            Just(Dialect::Salesforce),
            Just(Dialect::HubSpot),
            Just(Dialect::Dynamics)
        ],
        proptest::collection::vec(0usize..10, 1..5),
        proptest::option::of(0usize..10),
        proptest::bool::weighted(0.1),
        1u8..8,
    )
        .prop_map(|(p, dialect, select, filter, unknown_resource, limit)| {
            let n = fields(dialect).len();
            Req {
                caller: Caller {
                    purpose: PURPOSES[p],
                },
                dialect,
                select: select.into_iter().map(|i| i % n).collect(),
                filter: filter.map(|i| i % n),
                unknown_resource,
                limit,
            }
        })
}

impl Req {
    fn url(&self) -> String {
        let f = fields(self.dialect);
        let mut select: Vec<&str> = self.select.iter().map(|&i| f[i]).collect();
        select.dedup();
        let list = select.join(",");
        match self.dialect {
            Dialect::Salesforce => {
                let object = if self.unknown_resource {
                    "Lead__x"
                } else {
                    "Contact"
                };
                let filter = self
                    .filter
                    .map(|i| format!("+WHERE+{}='x'", f[i]))
                    .unwrap_or_default();
                format!(
                    "/services/data/v66.0/query?q=SELECT+{list}+FROM+{object}{filter}+LIMIT+{}",
                    self.limit
                )
            }
            Dialect::HubSpot => {
                let object = if self.unknown_resource {
                    "tickets_x"
                } else {
                    "contacts"
                };
                format!(
                    "/crm/v3/objects/{object}?limit={}&properties={list}",
                    self.limit
                )
            }
            _ => {
                let object = if self.unknown_resource {
                    "xleads"
                } else {
                    "contacts"
                };
                let filter = self
                    .filter
                    .map(|i| format!("&$filter={}%20eq%20'x'", f[i]))
                    .unwrap_or_default();
                format!(
                    "/api/data/v9.2/{object}?$select={list}&$top={}{filter}",
                    self.limit
                )
            }
        }
    }
}

/// The decision name of what the proxy answered: its problem type when it refused, else
/// what the transfer log says it did to the body (`allowed` / `minimised`).
fn proxy_decision(slug: Option<&str>, logged: Option<&str>) -> String {
    match (slug, logged) {
        (Some("unknown-resource"), _) => "unknown".into(),
        (Some("record-withheld"), _) => "withheld".into(),
        (Some(s), _) => s.replace('-', "_"),
        (None, Some(l)) => l.to_string(),
        (None, None) => "not logged".into(),
    }
}

#[test]
fn explain_decides_what_the_proxy_decides_on_random_reads() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let h = rt.block_on(Harness::start());
    // the proxy's own set, as explain loads it from the same directory
    let set = h.zweck().state.live().policy.clone();
    let d = h.dir.path();
    let double = TestClient::new(&d.join("ca.pem"), None, Version::H1);
    let double_url = format!("https://127.0.0.1:{}", h.double.addr.port());
    let newsletter = h.cert_client(CERT_APP, Version::H1);
    let desk = h.cert_client("support-desk", Version::H1);
    let anon = h.anon_client(Version::H1);
    let key = h.api_key();
    let log = d.join("logs/transfers.jsonl");
    let state = &h.zweck().state;
    let ungoverned = |dialect: Dialect| {
        state
            .config
            .upstreams
            .iter()
            .find(|u| u.dialect == dialect)
            .map(|u| u.ungoverned.clone())
            .expect("an upstream of the dialect")
    };
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let decisions = std::cell::RefCell::new(std::collections::BTreeMap::<String, u32>::new());
    runner
        .run(&req(), |r| {
            let url = r.url();
            let (client, headers): (&TestClient, Vec<(&str, &str)>) = match r.caller.purpose {
                "newsletter" => (&newsletter, vec![]),
                "analytics" => (&anon, vec![("zweck-api-key", key.as_str())]),
                p => (&desk, vec![("zweck-purpose", p)]),
            };
            let (resp, body) = rt.block_on(client.get(&h.url(&url), &headers));
            let problem = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes() == b"application/problem+json");
            let slug = problem.then(|| problem_slug(&resp, &body));
            let logged = (!problem).then(|| {
                let id = resp.headers()["zweck-request-id"]
                    .to_str()
                    .expect("id")
                    .to_string();
                rt.block_on(eventually_some(|| {
                    let (log, id) = (&log, &id);
                    async move {
                        let text = std::fs::read_to_string(log).ok()?;
                        text.lines()
                            .rev()
                            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                            .find(|e| e["request_id"] == id.as_str())
                            .and_then(|e| e["decision"].as_str().map(str::to_string))
                    }
                }))
                .expect("the exchange is logged")
            });
            let on_wire = proxy_decision(slug.as_deref(), logged.as_deref());

            // what the CRM answers for the same request, given to explain
            let auth = format!("Bearer {UPSTREAM_TOKEN}");
            let (raw, raw_body) =
                rt.block_on(double.get(&format!("{double_url}{url}"), &[("authorization", &auth)]));
            // error answers (an unknown SOQL object) are governed bodies too
            drop(raw);
            let crm_body = serde_json::from_slice::<serde_json::Value>(&raw_body).ok();
            let (path, query) = url.split_once('?').expect("query");
            let explained = zweck::policy::explain(
                &set,
                r.caller.purpose,
                &zweck::policy::ExplainRequest {
                    dialect: r.dialect,
                    method: &http::Method::GET,
                    path,
                    query: Some(query),
                    upstream_ungoverned: &ungoverned(r.dialect),
                    request_body: None,
                    response_body: crm_body.as_ref(),
                },
            )
            .expect("explained");
            *decisions.borrow_mut().entry(on_wire.clone()).or_default() += 1;
            prop_assert_eq!(
                &explained.decision,
                &on_wire,
                "{} as {}: explain says {:?}",
                url,
                r.caller.purpose,
                explained
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // the generator reaches both sides: delivered bodies and refusals
    let decisions = decisions.into_inner();
    eprintln!("decisions on the wire: {decisions:?}");
    assert!(decisions.contains_key("allowed"), "{decisions:?}");
    assert!(decisions.contains_key("minimised"), "{decisions:?}");
    assert!(decisions.contains_key("query_not_allowed"), "{decisions:?}");
    assert!(decisions.contains_key("unknown"), "{decisions:?}");
}
