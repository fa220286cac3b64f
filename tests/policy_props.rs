//! Property tests for the engine's safety contract (DESIGN.md §2):
//! - a selector that misses leads to a dropped field, never a leaked one: no value of a
//!   category whose action is not `keep` (nor of an unclassified field) appears in the output;
//! - the output is valid JSON;
//! - keep/drop/redact/mask/truncate/generalise are idempotent; pseudonymise is deterministic;
//! - a write that would lose fields is refused naming them, unless the purpose minimises
//!   writes silently, and then it never carries a value the purpose does not keep;
//! - consent: a record stays only when its consent field holds exactly the granted value.

use http::Method;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use zweck::dialect::Dialect;
use zweck::policy::{apply, Direction, PolicySet, PseudonymKey, Refusal, RouteMatch};

const CATS: [&str; 7] = [
    "user",
    "user.contact",
    "user.contact.email",
    "user.name",
    "user.name.first",
    "user.demographic.date_of_birth",
    "system",
];
const ACTIONS: [&str; 8] = [
    "keep",
    "drop",
    "redact",
    "{ mask: { keep_last: 2 } }",
    "{ truncate: 3 }",
    "{ generalise: year }",
    "{ redact: \"xx\" }",
    "pseudonymise",
];
const NKEYS: usize = 8;

#[derive(Debug, Clone)]
struct Case {
    /// per key: (category index or none, selector misses)
    fields: Vec<(Option<usize>, bool)>,
    /// per category: action index or none
    rules: Vec<Option<usize>>,
    otherwise_redact: bool,
    envelope_meta: bool,
    /// records: per key, value shape (0 absent, 1 string, 2 object, 3 array, 4 null)
    records: Vec<Vec<u8>>,
}

fn case(allow_pseudonymise: bool) -> impl Strategy<Value = Case> {
    let nact = if allow_pseudonymise {
        ACTIONS.len()
    } else {
        ACTIONS.len() - 1
    };
    (
        prop::collection::vec(
            (prop::option::of(0..CATS.len()), prop::bool::weighted(0.2)),
            NKEYS,
        ),
        prop::collection::vec(prop::option::of(0..nact), CATS.len()),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(0u8..5, NKEYS), 0..5),
    )
        .prop_map(
            |(fields, rules, otherwise_redact, envelope_meta, records)| Case {
                fields,
                rules,
                otherwise_redact,
                envelope_meta,
                records,
            },
        )
}

fn yaml(c: &Case) -> (String, String) {
    let mut inv = String::from(
        "dialect: salesforce\nresources:\n  Contact:\n    operations:\n      - { method: GET, path: /q, op: read, class: list }\n      - { method: PATCH, path: /w, op: write }\n    records: [\"$.records[*]\", \"$\"]\n    envelope:\n      $.done: system\n",
    );
    if c.envelope_meta {
        inv.push_str("      $.meta: user.name\n");
    }
    inv.push_str("    fields:\n      $.Id: system\n");
    for (i, (cat, miss)) in c.fields.iter().enumerate() {
        if let Some(cat) = cat {
            let name = if *miss {
                format!("k{i}_renamed")
            } else {
                format!("k{i}")
            };
            inv.push_str(&format!("      $.{name}: {}\n", CATS[*cat]));
        }
    }
    let mut p = String::from(
        "controller: { name: T, jurisdiction: DE }\npurposes:\n  p:\n    data_use: test\n    legal_basis: contract\n    writes: allow\n    fields:\n",
    );
    for (i, r) in c.rules.iter().enumerate() {
        if let Some(a) = r {
            p.push_str(&format!("      {}: {}\n", CATS[i], ACTIONS[*a]));
        }
    }
    p.push_str(if c.otherwise_redact {
        "    otherwise: redact\n"
    } else {
        "    otherwise: drop\n"
    });
    (inv, p)
}

fn token(r: usize, k: usize) -> String {
    format!("TOK{r:02}{k:02}QZ")
}

fn body(c: &Case) -> Value {
    let records: Vec<Value> = c
        .records
        .iter()
        .enumerate()
        .map(|(r, shapes)| {
            let mut m = Map::new();
            m.insert("Id".into(), json!(format!("id{r}")));
            for (k, s) in shapes.iter().enumerate() {
                let t = token(r, k);
                let v = match s {
                    0 => continue,
                    1 => json!(t),
                    2 => json!({ "inner": t }),
                    3 => json!([t]),
                    _ => Value::Null,
                };
                m.insert(format!("k{k}"), v);
            }
            Value::Object(m)
        })
        .collect();
    json!({ "done": true, "meta": "TOKMETAQZ", "records": records })
}

/// The action the contract says applies to key `k` (None = unclassified).
fn resolved(c: &Case, k: usize) -> &'static str {
    let (cat, miss) = c.fields[k];
    let Some(cat) = cat.filter(|_| !miss) else {
        return "otherwise";
    };
    let name = CATS[cat];
    // most specific rule among the category and its ancestors
    let mut best: Option<(usize, usize)> = None;
    for (i, r) in c.rules.iter().enumerate() {
        let Some(a) = r else { continue };
        let rn = CATS[i];
        if (name == rn || name.starts_with(&format!("{rn}.")))
            && best.is_none_or(|(len, _)| rn.len() > len)
        {
            best = Some((rn.len(), *a));
        }
    }
    match best {
        Some((_, a)) => ACTIONS[a],
        None if name == "system" => "keep",
        None => "otherwise",
    }
}

/// `silent`: the purpose minimises writes to Contact silently.
fn compile(c: &Case, silent: bool) -> PolicySet {
    let (inv, mut p) = yaml(c);
    if silent {
        p = p.replace(
            "    writes: allow\n",
            "    writes: allow\n    silent_write_minimisation: [Contact]\n",
        );
    }
    match PolicySet::from_texts(&[("purposes.yaml", &p), ("inventory/sf.yaml", &inv)]) {
        Ok((s, _)) => s,
        Err(e) => panic!(
            "{}\n{inv}\n{p}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// One write record carrying a token for every key its shape names.
fn write_body(shapes: &[u8]) -> Value {
    let mut m = Map::new();
    for (k, s) in shapes.iter().enumerate() {
        if *s != 0 {
            m.insert(format!("k{k}"), json!(token(0, k)));
        }
    }
    Value::Object(m)
}

fn run(
    set: &PolicySet,
    path: &str,
    dir: Direction,
    body: &mut Value,
    key: &PseudonymKey,
) -> Result<zweck::policy::Outcome, zweck::policy::Refusal> {
    let m = if path == "/q" {
        Method::GET
    } else {
        Method::PATCH
    };
    let RouteMatch::Operation(op) = set.classify(Dialect::Salesforce, &m, path) else {
        panic!("route");
    };
    apply(set, set.purpose("p").expect("p"), op, dir, body, Some(key))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn nothing_but_kept_values_leaves(c in case(true)) {
        let set = compile(&c, false);
        let mut out = body(&c);
        let key = PseudonymKey::new(b"k");
        run(&set, "/q", Direction::Response, &mut out, &key).expect("no block rules here");
        let text = serde_json::to_string(&out).expect("serialises");
        let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert_eq!(&reparsed, &out);
        for (r, shapes) in c.records.iter().enumerate() {
            for (k, s) in shapes.iter().enumerate() {
                if *s == 0 || *s == 4 {
                    continue;
                }
                let t = token(r, k);
                if resolved(&c, k) == "keep" {
                    prop_assert!(text.contains(&t), "k{} kept but missing: {}", k, text);
                } else {
                    prop_assert!(!text.contains(&t), "k{} ({}) leaked: {}", k, resolved(&c, k), text);
                }
            }
        }
        let meta_kept = c.envelope_meta && {
            let user_rule = c.rules[3].or(c.rules[0]);
            user_rule.is_some_and(|a| ACTIONS[a] == "keep")
        };
        prop_assert_eq!(text.contains("TOKMETAQZ"), meta_kept, "{}", text);
    }

    #[test]
    fn actions_are_idempotent(c in case(false)) {
        let set = compile(&c, false);
        let key = PseudonymKey::new(b"k");
        let mut once = body(&c);
        run(&set, "/q", Direction::Response, &mut once, &key).expect("ok");
        let mut twice = once.clone();
        run(&set, "/q", Direction::Response, &mut twice, &key).expect("ok");
        prop_assert_eq!(&once, &twice);
    }

    #[test]
    fn pseudonymise_is_deterministic(c in case(true)) {
        let set = compile(&c, false);
        let key = PseudonymKey::new(b"k");
        let mut a = body(&c);
        let mut b = body(&c);
        run(&set, "/q", Direction::Response, &mut a, &key).expect("ok");
        run(&set, "/q", Direction::Response, &mut b, &key).expect("ok");
        prop_assert_eq!(a, b);
    }

    /// A write passes only when it loses nothing: every field it carries is kept. Otherwise
    /// it is refused, naming the fields (never their values) it would lose, or the fields whose
    /// rule would alter stored values.
    #[test]
    fn writes_that_would_lose_fields_are_refused(c in case(true)) {
        let set = compile(&c, false);
        let key = PseudonymKey::new(b"k");
        let Some(shapes) = c.records.first() else { return Ok(()); };
        let mut w = write_body(shapes);
        match run(&set, "/w", Direction::Request, &mut w, &key) {
            Ok(_) => {
                let text = w.to_string();
                for (k, s) in shapes.iter().enumerate() {
                    if *s == 0 { continue; }
                    prop_assert_eq!(resolved(&c, k), "keep", "k{} passed", k);
                    prop_assert!(text.contains(&token(0, k)));
                }
            }
            Err(Refusal::WriteFieldsDropped { field_paths, .. }) => {
                prop_assert!(!field_paths.is_empty());
                for p in &field_paths {
                    let k: usize = p.strip_prefix("$.k").and_then(|k| k.parse().ok())
                        .unwrap_or_else(|| panic!("a path of a sent field: {p}"));
                    prop_assert!(resolved(&c, k) != "keep", "kept k{} named", k);
                }
            }
            Err(Refusal::WriteActionNotAllowed { field_paths }) => {
                prop_assert!(!field_paths.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected refusal {e:?}"),
        }
    }

    /// With silent minimisation a write goes on without what the purpose does not keep, and
    /// never carries an unkept value; a record left with nothing to write is refused.
    #[test]
    fn silently_minimised_writes_never_carry_unkept_values(c in case(true)) {
        let set = compile(&c, true);
        let key = PseudonymKey::new(b"k");
        let Some(shapes) = c.records.first() else { return Ok(()); };
        let mut w = write_body(shapes);
        match run(&set, "/w", Direction::Request, &mut w, &key) {
            Ok(_) => {
                let text = w.to_string();
                for (k, s) in shapes.iter().enumerate() {
                    if *s == 0 { continue; }
                    let r = resolved(&c, k);
                    prop_assert!(matches!(r, "keep" | "drop" | "otherwise"), "write passed with {}", r);
                    prop_assert_eq!(text.contains(&token(0, k)), r == "keep");
                }
            }
            Err(Refusal::WriteFieldsDropped { field_paths, nothing_left }) => {
                prop_assert!(nothing_left && !field_paths.is_empty());
            }
            Err(Refusal::WriteActionNotAllowed { field_paths }) => {
                prop_assert!(!field_paths.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected refusal {e:?}"),
        }
    }

    #[test]
    fn consent_needs_exactly_the_granted_value(vals in prop::collection::vec(0u8..7, 0..8)) {
        let inv = "dialect: salesforce\nresources:\n  Contact:\n    operations: [{ method: GET, path: /q, op: read, class: list }]\n    records: [\"$.records[*]\"]\n    fields: { $.Id: system, $.Opt: user.privacy_preferences, $.Name: user.name }\n    consent: { m: { field: $.Opt, granted_when: false } }\n";
        let p = "controller: { name: T, jurisdiction: DE }\npurposes:\n  p:\n    data_use: t\n    legal_basis: consent\n    requires_consent: m\n    fields: { user.name: keep }\n";
        let (set, _) = PolicySet::from_texts(&[("purposes.yaml", p), ("inventory/sf.yaml", inv)]).expect("compiles");
        let records: Vec<Value> = vals.iter().enumerate().map(|(i, v)| {
            let mut r = json!({ "Id": i, "Name": format!("N{i}") });
            let opt = match v { 0 => Some(json!(false)), 1 => Some(json!(true)), 2 => Some(json!("false")),
                3 => Some(Value::Null), 4 => Some(json!(0)), 5 => Some(json!({"v": false})), _ => None };
            if let Some(o) = opt { r["Opt"] = o; }
            r
        }).collect();
        let mut b = json!({ "records": records });
        let out = run(&set, "/q", Direction::Response, &mut b, &PseudonymKey::new(b"k")).expect("ok");
        let kept: Vec<u64> = b["records"].as_array().expect("array").iter().filter_map(|r| r["Id"].as_u64()).collect();
        let want: Vec<u64> = vals.iter().enumerate().filter(|(_, v)| **v == 0).map(|(i, _)| i as u64).collect();
        prop_assert_eq!(&kept, &want);
        prop_assert_eq!(out.records, want.len() as u64);
    }
}
