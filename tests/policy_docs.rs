//! Every YAML example in docs/policy.md loads and checks: fragments parse, the example
//! inventories and purposes compile together without errors, and the example table tests
//! pass against them.

use std::path::{Path, PathBuf};

use zweck::policy::{testing, PolicySet};

fn yaml_blocks(md: &str) -> Vec<(usize, String)> {
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
    out
}

#[test]
fn every_yaml_example_in_the_policy_reference_checks() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/policy.md");
    let md = std::fs::read_to_string(&path).expect("docs/policy.md");
    let blocks = yaml_blocks(&md);
    assert!(blocks.len() >= 4, "expected yaml examples");

    let mut files: Vec<(String, String)> = Vec::new();
    let mut tests = Vec::new();
    for (line, text) in &blocks {
        let parsed: Result<serde_json::Value, _> = serde_saphyr::from_str(text);
        assert!(
            parsed.is_ok(),
            "docs/policy.md:{line}: example is not YAML: {parsed:?}"
        );
        if text.starts_with("# fragment") {
            continue;
        }
        if text.lines().any(|l| l.starts_with("dialect:")) {
            files.push((format!("inventory/doc{line}.yaml"), text.clone()));
        } else if text.lines().any(|l| l.starts_with("controller:")) {
            files.push(("purposes.yaml".into(), text.clone()));
        } else if text.lines().any(|l| l.starts_with("tests:")) {
            tests.push((*line, text.clone()));
        } else {
            panic!("docs/policy.md:{line}: a full example is an inventory, purposes or tests file; mark partial ones `# fragment`");
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let set = match PolicySet::from_texts(&refs) {
        Ok((set, _warnings)) => set,
        Err(e) => panic!(
            "docs examples do not compile:\n{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    assert!(!tests.is_empty());
    for (line, text) in tests {
        let display = Path::new("docs/policy.md").join(format!("line-{line}"));
        let report = testing::run_text(&set, &display, &text);
        assert!(report.is_ok() && !report.cases.is_empty(), "{report}");
    }
}
