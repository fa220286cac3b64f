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

/// `zweck policy` as the binary parses it (main.rs nests the same subcommand).
#[derive(clap::Parser)]
struct Cli {
    #[command(subcommand)]
    top: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    Policy {
        #[command(subcommand)]
        command: zweck::cli::policy::PolicyCommand,
    },
}

/// Splits a shell line on spaces, keeping double-quoted words whole.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Every `zweck policy ...` command line in a Markdown text: in code spans (which may wrap
/// across the lines of a paragraph) and in lines of code blocks (a `$ ` prompt and a
/// trailing `# comment` removed).
fn command_lines(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut paragraph: Option<(usize, String)> = None;
    let spans = |p: Option<(usize, String)>, out: &mut Vec<(usize, String)>| {
        if let Some((at, text)) = p {
            for (n, span) in text.split('`').enumerate() {
                if n % 2 == 1 && span.starts_with("zweck policy ") {
                    out.push((at, span.to_string()));
                }
            }
        }
    };
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            spans(paragraph.take(), &mut out);
            in_block = !in_block;
            continue;
        }
        if in_block {
            let l = line.trim().trim_start_matches("$ ");
            if l.starts_with("zweck policy ") {
                let l = l.split(" # ").next().unwrap_or(l).trim();
                out.push((i + 1, l.to_string()));
            }
            continue;
        }
        if line.trim().is_empty() || line.starts_with('|') || line.trim_start().starts_with("- ") {
            spans(paragraph.take(), &mut out);
        }
        if line.starts_with('|') {
            spans(Some((i + 1, line.to_string())), &mut out);
            continue;
        }
        if !line.trim().is_empty() {
            let p = paragraph.get_or_insert((i + 1, String::new()));
            p.1.push(' ');
            p.1.push_str(line.trim());
        }
    }
    spans(paragraph, &mut out);
    out
}

/// A synopsis (`[DIR]`, `--format text\|json\|markdown`, `PERCENT`) made a concrete line.
fn concrete(synopsis: &str) -> Vec<String> {
    words(synopsis)
        .into_iter()
        .map(|w| w.replace(['[', ']'], ""))
        .map(|w| match w.split_once("\\|") {
            Some((first, _)) => first.to_string(),
            None => w,
        })
        .map(|w| if w == "PERCENT" { "90".to_string() } else { w })
        .filter(|w| w != "...")
        .collect()
}

#[test]
fn every_policy_command_line_in_the_docs_parses() {
    use clap::Parser;
    let mut seen = std::collections::BTreeSet::new();
    for doc in ["docs/policy.md", "README.md"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc);
        let md = std::fs::read_to_string(&path).expect("doc");
        for (line, cmd) in command_lines(&md) {
            let args = concrete(&cmd);
            if args.get(2).is_some_and(|a| a == "...") || args.len() == 2 {
                continue;
            }
            match Cli::try_parse_from(&args) {
                Ok(Cli {
                    top: Top::Policy { command },
                }) => {
                    seen.insert(
                        format!("{command:?}")
                            .split([' ', '{'])
                            .next()
                            .map(str::to_string),
                    );
                }
                Err(e) => panic!("{doc}:{line}: `{cmd}` does not parse: {e}"),
            }
        }
    }
    let seen: Vec<String> = seen.into_iter().flatten().collect();
    for command in [
        "Check", "Test", "Explain", "Diff", "Schema", "Keygen", "Bundle",
    ] {
        assert!(
            seen.iter().any(|s| s == command),
            "docs/policy.md shows no `zweck policy {}` line: {seen:?}",
            command.to_lowercase()
        );
    }
}

#[test]
fn the_synopsis_parser_reads_options_and_alternatives() {
    assert_eq!(
        concrete("zweck policy diff OLD NEW [--format text\\|json\\|markdown] --label \"a b\""),
        ["zweck", "policy", "diff", "OLD", "NEW", "--format", "text", "--label", "a b"]
    );
}
