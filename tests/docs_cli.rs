//! The command lines in the docs are the CLI's: every `zweck ...` line in README.md, docs/
//! and certs/README.md parses with the real binary's clap definition, the values the CLI
//! checks itself (formats, groupings, periods, key kinds) are ones it accepts, and every
//! subcommand the binary has is documented somewhere.
//!
//! A line is parsed by running the binary with `--help` appended: clap reads every word
//! before it (unknown subcommands, flags and values that do not parse are errors, exit 2)
//! and then prints help instead of running anything.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use zweck::audit::{Dimension, Format, Period, PeriodArgs};

const DOCS: [&str; 3] = ["README.md", "docs", "certs/README.md"];

/// Every markdown file the docs consist of, with its text.
fn markdown() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for entry in DOCS {
        let path = root.join(entry);
        let files: Vec<_> = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(&path)
                .expect("docs dir")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect();
            v.sort();
            v
        } else {
            vec![path]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read doc");
            out.push((
                f.strip_prefix(root).expect("in repo").display().to_string(),
                text,
            ));
        }
    }
    out
}

/// `zweck ...` command lines: inline code spans (which may wrap) and lines of fenced code.
fn command_lines(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut prose = String::new();
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            let l = line.trim().trim_start_matches("$ ");
            // a shell comment after the command is no argument
            let l = l.split_once(" #").map_or(l, |(cmd, _)| cmd).trim_end();
            if let Some(rest) = l.strip_prefix("zweck ") {
                out.push(rest.to_string());
            } else if let Some(rest) = l
                .split_once("cargo run ")
                .and_then(|(_, r)| r.split_once("-- ").map(|(_, args)| args))
            {
                out.push(rest.to_string());
            }
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    for (i, span) in prose.split('`').enumerate() {
        if i % 2 == 1 {
            let span = span.split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some(rest) = span.strip_prefix("zweck ") {
                out.push(rest.to_string());
            }
        }
    }
    out
}

/// The argument vectors a documented line stands for: `[--x]` is given, `a\|b` (a|b in a
/// table) is each alternative, `...` is left out, and placeholders for numbers get one.
fn expand(line: &str) -> Vec<Vec<String>> {
    let mut variants: Vec<Vec<String>> = vec![Vec::new()];
    let line = shell_substituted(&line.replace("\\|", "|"));
    for word in line.split_whitespace() {
        let word = word.trim_matches(|c| c == '[' || c == ']');
        if word.is_empty() || word == "..." || word == "|" {
            continue;
        }
        let alternatives: Vec<&str> = if word.starts_with('-') || !word.contains('|') {
            vec![word]
        } else {
            word.split('|').collect()
        };
        let word_for = |w: &str| match w {
            "SEQ" | "N" => "3".to_string(),
            "PERCENT" => "100".to_string(),
            w => w.to_string(),
        };
        variants = variants
            .into_iter()
            .flat_map(|v| {
                alternatives.iter().map(move |a| {
                    let mut v = v.clone();
                    v.push(word_for(a));
                    v
                })
            })
            .collect();
    }
    variants
}

/// A quoted shell command substitution (`"$(git rev-parse --short HEAD)"`) is one word, the
/// value it prints.
fn shell_substituted(line: &str) -> String {
    let mut out = line.to_string();
    while let Some(start) = out.find("\"$(") {
        let Some(len) = out[start..].find(")\"") else {
            break;
        };
        out.replace_range(start..start + len + 2, "value");
    }
    out
}

fn zweck(args: &[String]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zweck"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run zweck");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The value after `flag` in `args`.
fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// What the CLI checks itself after clap: formats, groupings, periods, key kinds.
fn values_are_accepted(args: &[String]) -> Result<(), String> {
    // audit's formats; the policy commands' `--format` is checked by clap
    if args.first().is_some_and(|a| a == "audit") {
        if let Some(f) = value(args, "--format") {
            Format::parse(f).ok_or(format!("--format {f}"))?;
        }
    }
    if let Some(by) = value(args, "--by") {
        for d in by.split(',') {
            Dimension::parse(d).ok_or(format!("--by {d}"))?;
        }
    }
    let period = PeriodArgs {
        since: value(args, "--since").map(str::to_string),
        until: value(args, "--until").map(str::to_string),
        month: value(args, "--month").map(str::to_string),
        quarter: value(args, "--quarter").map(str::to_string),
    };
    Period::parse(&period).map_err(|e| e.to_string())?;
    if args.starts_with(&["keys".to_string(), "rotate".to_string()]) {
        if let Some(kind) = args.get(2).filter(|k| !k.starts_with('-')) {
            zweck::keys::KeyKind::parse(kind).ok_or(format!("keys rotate {kind}"))?;
        }
    }
    Ok(())
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (file, text) in markdown() {
        for line in command_lines(&text) {
            for mut args in expand(&line) {
                if let Err(why) = values_are_accepted(&args) {
                    failures.push(format!("{file}: `zweck {line}`: {why} is refused"));
                }
                args.push("--help".into());
                let (code, out) = zweck(&args);
                if code != 0 {
                    let first = out.lines().next().unwrap_or_default().to_string();
                    failures.push(format!("{file}: `zweck {line}`: {first}"));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "found only {checked} command lines");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The subcommands a `--help` text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_subcommand_is_documented() {
    let documented: BTreeSet<String> = markdown()
        .iter()
        .flat_map(|(_, text)| command_lines(text))
        .flat_map(|l| expand(&l))
        .map(|args| args.join(" "))
        .collect();
    let (_, top) = zweck(&["--help".to_string()]);
    let mut commands = Vec::new();
    for c in subcommands(&top) {
        let (_, help) = zweck(&[c.clone(), "--help".into()]);
        let subs = subcommands(&help);
        if subs.is_empty() {
            commands.push(c);
        } else {
            commands.extend(subs.into_iter().map(|s| format!("{c} {s}")));
        }
    }
    assert!(commands.len() > 10, "{commands:?}");
    let missing: Vec<&String> = commands
        .iter()
        .filter(|c| {
            !documented
                .iter()
                .any(|d| d == *c || d.starts_with(&format!("{c} ")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not documented as `zweck ...` in README.md or docs/: {missing:?}"
    );
}
