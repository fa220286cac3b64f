//! The JSON Schemas in `policies/schema/` are what the loader's types generate, carry a
//! `yaml-language-server` line in every shipped file, accept every shipped and documented
//! file, and reject the broken files the loader rejects.

use std::path::{Path, PathBuf};

use serde_json::Value;
use zweck::policy::{schema, PolicySet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A compiled validator for one schema file of `policies/schema/`.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new(name: &str) -> Validator {
        let text = std::fs::read_to_string(root().join("policies/schema").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let value: Value = serde_json::from_str(&text).expect("schema is JSON");
        let mut compiler = boon::Compiler::new();
        let loc = format!("file:///{name}");
        compiler.add_resource(&loc, value).expect("add");
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(&loc, &mut schemas)
            .expect("a valid schema");
        Validator { schemas, index }
    }

    fn check(&self, yaml: &str) -> Result<(), String> {
        let doc: Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        self.schemas
            .validate(&doc, self.index)
            .map_err(|e| format!("{e:#}"))
    }
}

#[test]
fn committed_schemas_are_what_the_types_generate() {
    for (name, value) in schema::generate() {
        let path = root().join("policies/schema").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed,
            schema::render(&value),
            "{} is stale: run `zweck policy schema --out policies/schema`",
            path.display()
        );
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_shipped_file_names_its_schema_and_is_valid() {
    let p = root().join("policies");
    let mut files = vec![(p.join("purposes.yaml"), "purposes.schema.json", "schema/")];
    files.extend(
        yaml_files(&p.join("inventory"))
            .into_iter()
            .map(|f| (f, "inventory.schema.json", "../schema/")),
    );
    files.extend(
        yaml_files(&p.join("tests"))
            .into_iter()
            .map(|f| (f, "tests.schema.json", "../schema/")),
    );
    assert!(files.len() >= 8);
    for (file, schema, rel) in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let line = format!("# yaml-language-server: $schema={rel}{schema}");
        assert_eq!(
            text.lines().next(),
            Some(line.as_str()),
            "{}",
            file.display()
        );
        if let Err(e) = Validator::new(schema).check(&text) {
            panic!("{} does not validate: {e}", file.display());
        }
    }
}

/// The YAML examples of docs/policy.md, by kind (fragments are skipped, as in policy_docs).
fn doc_examples() -> Vec<(usize, String)> {
    let md = std::fs::read_to_string(root().join("docs/policy.md")).expect("docs");
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        match &mut cur {
            None if line.trim_start() == "```yaml" => cur = Some((i + 2, String::new())),
            Some((start, text)) if line.trim_start() == "```" => {
                out.push((*start, std::mem::take(text)));
                cur = None;
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out.retain(|(_, t)| !t.starts_with("# fragment"));
    out
}

#[test]
fn every_documented_example_is_valid() {
    let (inv, purposes, tests) = (
        Validator::new("inventory.schema.json"),
        Validator::new("purposes.schema.json"),
        Validator::new("tests.schema.json"),
    );
    let examples = doc_examples();
    assert!(examples.len() >= 3);
    for (line, text) in examples {
        let v = if text.lines().any(|l| l.starts_with("dialect:")) {
            &inv
        } else if text.lines().any(|l| l.starts_with("controller:")) {
            &purposes
        } else {
            &tests
        };
        if let Err(e) = v.check(&text) {
            panic!("docs/policy.md:{line}: {e}");
        }
    }
}

const INVENTORY: &str = "dialect: salesforce\nresources:\n  Contact:\n    operations: [{ method: GET, path: \"/c\", op: read, class: list }]\n    records: [\"$.records[*]\"]\n    fields:\n      $.Id: system\n      $.Email: user.contact.email\n";
const PURPOSES: &str = "controller: { name: X, jurisdiction: DE }\npurposes:\n  p:\n    data_use: essential.service\n    legal_basis: contract\n    fields:\n      user.contact.email: keep\n";
const TESTS: &str = "tests:\n  - name: t\n    dialect: salesforce\n    method: GET\n    path: /c\n    purpose: p\n    body: { records: [] }\n    expect: { decision: allowed }\n";

/// Broken files, each rejected by the loader; the schema must reject them too.
#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let (inv, purposes, tests) = (
        Validator::new("inventory.schema.json"),
        Validator::new("purposes.schema.json"),
        Validator::new("tests.schema.json"),
    );
    // the unbroken versions pass both
    inv.check(INVENTORY).expect("inventory");
    purposes.check(PURPOSES).expect("purposes");
    tests.check(TESTS).expect("tests");
    let (set, _) = PolicySet::from_texts(&[
        ("purposes.yaml", PURPOSES),
        ("inventory/sf.yaml", INVENTORY),
    ])
    .expect("the unbroken files load");
    let report = zweck::policy::testing::run_text(&set, Path::new("t.yaml"), TESTS);
    assert!(report.is_ok(), "{report}");

    let broken_inventories = [
        INVENTORY.replace("resources:", "resourcez:"),
        INVENTORY.replace("dialect: salesforce", "dialect: zoho"),
        INVENTORY.replace("user.contact.email", "user.contact.emial"),
        INVENTORY.replace("$.Email:", "Email:"),
        INVENTORY.replace("op: read", "op: fetch"),
        INVENTORY.replace("class: list", "class: many"),
    ];
    for text in &broken_inventories {
        assert!(
            PolicySet::from_texts(&[("purposes.yaml", PURPOSES), ("inventory/sf.yaml", text)])
                .is_err(),
            "the loader accepts:\n{text}"
        );
        assert!(inv.check(text).is_err(), "the schema accepts:\n{text}");
    }
    let broken_purposes = [
        PURPOSES.replace(
            "user.contact.email: keep",
            "user.contact.email: { pseudonymise: {} }",
        ),
        PURPOSES.replace("user.contact.email: keep", "user.contact.email: hash"),
        PURPOSES.replace(
            "user.contact.email: keep",
            "user.contact.email: { generalise: { postal_prefix: 0 } }",
        ),
        PURPOSES.replace("user.contact.email: keep", "unclassified: keep"),
        PURPOSES.replace("legal_basis: contract", "legal_basis: contrct"),
        PURPOSES.replace("fields:", "otherwise: keep\n    fields:"),
        PURPOSES.replace("fields:", "writes: sometimes\n    fields:"),
        PURPOSES.replace("fields:", "art9_condition: health_care\n    fields:"),
        PURPOSES.replace("fields:", "feilds:"),
        PURPOSES.replace(
            "fields:",
            "export_budget: { records: 10, per: often }\n    fields:",
        ),
    ];
    for text in &broken_purposes {
        assert!(
            PolicySet::from_texts(&[("purposes.yaml", text), ("inventory/sf.yaml", INVENTORY)])
                .is_err(),
            "the loader accepts:\n{text}"
        );
        assert!(purposes.check(text).is_err(), "the schema accepts:\n{text}");
    }
    let broken_tests = [
        TESTS.replace("decision: allowed", "decision: write_refused"),
        TESTS.replace("expect:", "expec:"),
        TESTS.replace(
            "expect: { decision: allowed }",
            "expect: { actions: { kept: 1 } }",
        ),
        TESTS.replace(
            "    purpose: p\n",
            "    purpose: p\n    direction: upstream\n",
        ),
    ];
    for text in &broken_tests {
        let report = zweck::policy::testing::run_text(&set, Path::new("t.yaml"), text);
        assert!(!report.is_ok(), "the runner accepts:\n{text}");
        assert!(tests.check(text).is_err(), "the schema accepts:\n{text}");
    }
}
