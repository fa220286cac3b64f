//! Raw YAML -> compiled `PolicySet`, in one step that collects every diagnostic.
//!
//! Loading reads `purposes.yaml` and `inventory/*.yaml` (other files under the directory,
//! such as `tests/`, only count towards the version hash). Compilation resolves categories
//! against the taxonomy (with "did you mean"), parses every JSONPath once, builds the
//! per-resource field trees and record selectors, and precomputes for each purpose the rule
//! every category resolves to. Nothing is half-loaded: any error means no `PolicySet`.
//!
//! This file reads the directory and puts the set together; `inventory` compiles the
//! inventories, `purpose` the purposes. Value grammars both use (categories, actions,
//! budgets) stay here.

mod inventory;
mod purpose;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::diagnostic::{first_line, Diagnostic, Diags};
use super::model::{RawBudget, SpStr};
use super::set::{Action, Controller, ExportBudget, Generalise, PolicySet, RouteClass};
use super::taxonomy::{suggest, CatId, Taxonomy};
use crate::units::parse_duration;

/// One file of a policy directory.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path relative to the policy directory, `/`-separated.
    pub rel: String,
    /// Path to show in diagnostics.
    pub display: PathBuf,
    pub bytes: Vec<u8>,
}

/// Reads every file under `dir` (recursively, sorted by relative path).
pub fn read_dir(dir: &Path) -> Result<Vec<Source>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut diags = Diags::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let entries = match std::fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) => {
                diags.error(&full, None, format!("cannot read directory: {e}"));
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let rel_child = rel.join(&name);
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(rel_child),
                Ok(_) => match std::fs::read(&path) {
                    Ok(bytes) => out.push(Source {
                        rel: rel_child
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                            .join("/"),
                        display: path,
                        bytes,
                    }),
                    Err(e) => diags.error(&path, None, format!("cannot read file: {e}")),
                },
                Err(e) => diags.error(&path, None, format!("cannot stat: {e}")),
            }
        }
    }
    if diags.has_errors() {
        return Err(diags.split().0);
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// SHA-256 hex over (relative path, NUL, bytes) of every file, sorted by path.
pub fn version_of(sources: &[Source]) -> String {
    let mut sorted: Vec<&Source> = sources.iter().collect();
    sorted.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut h = Sha256::new();
    for s in sorted {
        h.update(s.rel.as_bytes());
        h.update([0u8]);
        h.update(&s.bytes);
    }
    hex::encode(h.finalize())
}

fn is_inventory(rel: &str) -> bool {
    rel.starts_with("inventory/")
        && !rel["inventory/".len()..].contains('/')
        && (rel.ends_with(".yaml") || rel.ends_with(".yml"))
}

fn parse_yaml<T: serde::de::DeserializeOwned>(src: &Source, diags: &mut Diags) -> Option<T> {
    let Ok(text) = std::str::from_utf8(&src.bytes) else {
        diags.error(&src.display, None, "file is not UTF-8");
        return None;
    };
    match serde_saphyr::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let loc = e.location();
            diags.error(&src.display, loc.as_ref(), first_line(&e.to_string()));
            None
        }
    }
}

/// Compiles a set of sources (as read by `read_dir`). Returns the set and its warnings, or
/// every error (and warning) found.
pub fn compile(sources: &[Source]) -> Result<(PolicySet, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut diags = Diags::default();
    let taxonomy = Taxonomy::builtin();
    let version = version_of(sources);
    let (inventories, signals) = inventory::compile_all(sources, &taxonomy, &mut diags);
    let (controller, purposes) = purpose::compile_all(sources, &taxonomy, &signals, &mut diags);
    if inventories.is_empty() && !diags.has_errors() {
        diags.warn(
            Path::new("inventory"),
            None,
            "no inventory loaded: every CRM route is unknown and refused",
        );
    }

    if diags.has_errors() {
        let (mut e, w) = diags.split();
        e.extend(w);
        return Err(e);
    }
    let (_, warnings) = diags.split();
    let purpose_index = purposes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i))
        .collect();
    let controller = controller.unwrap_or(Controller {
        name: String::new(),
        jurisdiction: String::new(),
        contact: None,
    });
    Ok((
        PolicySet {
            version,
            taxonomy,
            controller,
            purposes,
            purpose_index,
            inventories,
        },
        warnings,
    ))
}

/// The category `name` names, or an error with a "did you mean".
fn category(src: &Source, name: &SpStr, tax: &Taxonomy, diags: &mut Diags) -> Option<CatId> {
    let c = tax.get(&name.value);
    if c.is_none() {
        let hint = did_you_mean(&name.value, tax.names());
        diags.error(
            &src.display,
            Some(&name.referenced),
            format!("unknown data category `{}`{hint}", name.value),
        );
    }
    c
}

/// `` (did you mean `x`?)`` when a candidate is close to `name`, else nothing.
fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    suggest(name, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Parses an action as written in `purposes.yaml`.
pub fn parse_action(v: &Value) -> Result<Action, String> {
    match v {
        Value::String(s) => match s.as_str() {
            "keep" => Ok(Action::Keep),
            "drop" => Ok(Action::Drop),
            "redact" => Ok(Action::Redact(None)),
            "mask" => Ok(Action::Mask { keep_last: 0 }),
            "pseudonymise" | "pseudonymize" => Ok(Action::Pseudonymise),
            "block" => Ok(Action::Block),
            "generalise" | "truncate" => Err(format!("`{s}` needs an argument, e.g. {{ {s}: ... }}")),
            "hash" => Err("there is no unkeyed hash: a dictionary reverses it; use pseudonymise".into()),
            other => Err(format!(
                "unknown action `{other}` (keep, drop, redact, mask, pseudonymise, generalise, truncate, block)"
            )),
        },
        Value::Object(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next().ok_or("empty action")?;
            let uint = |v: &Value| v.as_u64().map(|n| n as usize);
            match k.as_str() {
                "redact" => match arg {
                    Value::Null => Ok(Action::Redact(None)),
                    Value::String(s) => Ok(Action::Redact(Some(s.clone()))),
                    _ => Err("redact takes null or a fixed string".into()),
                },
                "mask" => match arg {
                    Value::Object(o) if o.len() == 1 && o.contains_key("keep_last") => o
                        .get("keep_last")
                        .and_then(uint)
                        .map(|n| Action::Mask { keep_last: n })
                        .ok_or_else(|| "keep_last is a non-negative integer".into()),
                    v => uint(v)
                        .map(|n| Action::Mask { keep_last: n })
                        .ok_or_else(|| "mask takes { keep_last: N }".into()),
                },
                "truncate" => uint(arg)
                    .map(Action::Truncate)
                    .ok_or_else(|| "truncate takes a number of characters".into()),
                "generalise" | "generalize" => match arg {
                    Value::String(s) if s == "year" => Ok(Action::Generalise(Generalise::Year)),
                    Value::String(s) if s == "month" => Ok(Action::Generalise(Generalise::Month)),
                    Value::Object(o) if o.len() == 1 && o.contains_key("range") => o
                        .get("range")
                        .and_then(Value::as_u64)
                        .filter(|n| *n > 0)
                        .map(|n| Action::Generalise(Generalise::Range(n)))
                        .ok_or_else(|| "range is a positive width, e.g. { range: 10 }".into()),
                    _ => Err("generalise takes year, month or { range: N }".into()),
                },
                other => Err(format!("unknown action `{other}`")),
            }
        }
        _ => Err("an action is a name (keep, drop, ...) or a one-key mapping ({ truncate: 2 })".into()),
    }
}

fn compile_budget(raw: &RawBudget, top: bool) -> Result<ExportBudget, String> {
    let per = match &raw.per {
        Some(p) => parse_duration(p)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("`{p}` is not a period (30s, 15m, 1h, 1d)"))?,
        None if top => return Err("export_budget needs `per` (e.g. 1h)".into()),
        None => Duration::ZERO,
    };
    let mut per_class = Vec::new();
    for (k, v) in raw.per_class.iter() {
        if !top {
            return Err("per_class cannot nest".into());
        }
        let class = RouteClass::from_name(k)
            .ok_or_else(|| format!("unknown route class `{k}` (single, list or bulk_export)"))?;
        let mut b = compile_budget(v, false)?;
        if b.per.is_zero() {
            b.per = per;
        }
        per_class.push((class, b));
    }
    Ok(ExportBudget {
        records: raw.records,
        per,
        burst: raw.burst,
        per_class,
    })
}
