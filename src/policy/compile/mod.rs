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
use super::lookup::ValueMap;
use super::model::{
    ActionName, DatePart, GeneraliseTo, MaskKeep, RawAction, RawBudget, RedactWith, SpStr,
};
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

/// Reads a policy file. Repeated mapping keys reach the `OrderedMap`s, whose users report
/// them with both positions ([`duplicates`]) beside every other diagnostic, instead of the
/// parser stopping at the first; structs still refuse a repeated field.
fn parse_yaml<T: serde::de::DeserializeOwned>(src: &Source, diags: &mut Diags) -> Option<T> {
    let Ok(text) = std::str::from_utf8(&src.bytes) else {
        diags.error(&src.display, None, "file is not UTF-8");
        return None;
    };
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    match serde_saphyr::from_str_with_options::<T>(text, options) {
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
            bundle: None,
        },
        warnings,
    ))
}

/// Reports every key of `map` written twice (`what` names the map's entries).
fn duplicates<V>(
    src: &Source,
    map: &super::model::OrderedMap<SpStr, V>,
    what: &str,
    diags: &mut Diags,
) {
    for (first, again) in map.duplicates() {
        diags.error(
            &src.display,
            Some(&again.referenced),
            format!(
                "{what} `{}` is written twice (first at line {})",
                again.value,
                first.referenced.line()
            ),
        );
    }
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

/// Reads a lookup table (`generalise: { map: FILE }`) among the sources.
pub(crate) type MapReader<'a> = dyn Fn(&str) -> Result<std::sync::Arc<ValueMap>, String> + 'a;

/// Parses an action as written in `purposes.yaml`: through [`RawAction`], the type the
/// schema is generated from; what does not fit it is explained in the user's terms.
pub fn parse_action(v: &Value, maps: &MapReader<'_>) -> Result<Action, String> {
    let Ok(raw) = serde_json::from_value::<RawAction>(v.clone()) else {
        return Err(explain_action(v));
    };
    Ok(match raw {
        RawAction::Name(n) => match n {
            ActionName::Keep => Action::Keep,
            ActionName::Drop => Action::Drop,
            ActionName::Redact => Action::Redact(None),
            ActionName::Mask => Action::Mask { keep_last: 0 },
            ActionName::Pseudonymise => Action::Pseudonymise,
            ActionName::Block => Action::Block,
        },
        RawAction::Redact(r) => Action::Redact(match r.redact {
            RedactWith::Null(()) => None,
            RedactWith::Text(t) => Some(t),
        }),
        RawAction::Mask(m) => Action::Mask {
            keep_last: match m.mask {
                MaskKeep::KeepLast(k) => k.keep_last as usize,
                MaskKeep::Count(n) => n as usize,
            },
        },
        RawAction::Truncate(t) => Action::Truncate(t.truncate as usize),
        RawAction::Generalise(g) => Action::Generalise(match g.generalise {
            GeneraliseTo::Date(DatePart::Year) => Generalise::Year,
            GeneraliseTo::Date(DatePart::Month) => Generalise::Month,
            GeneraliseTo::Range(r) => Generalise::Range(r.range.get()),
            GeneraliseTo::PostalPrefix(p) => {
                Generalise::PostalPrefix(usize::from(p.postal_prefix.get()))
            }
            GeneraliseTo::Map(m) => Generalise::Map(maps(&m.map)?),
        }),
    })
}

const ACTION_NAMES: [&str; 8] = [
    "keep",
    "drop",
    "redact",
    "mask",
    "pseudonymise",
    "generalise",
    "truncate",
    "block",
];

/// Why a value is not an action, in the words of docs/policy.md.
fn explain_action(v: &Value) -> String {
    let unknown = |name: &str| {
        let hint = did_you_mean(name, ACTION_NAMES.iter().copied());
        format!("unknown action `{name}`{hint} (keep, drop, redact, mask, pseudonymise, generalise, truncate, block)")
    };
    match v {
        Value::String(s) => match s.as_str() {
            "generalise" | "generalize" | "truncate" => {
                format!("`{s}` needs an argument, e.g. {{ {s}: ... }}")
            }
            "hash" => "there is no unkeyed hash: a dictionary reverses it; use pseudonymise".into(),
            other => unknown(other),
        },
        Value::Object(m) if m.len() == 1 => {
            let Some((k, arg)) = m.iter().next() else {
                return unknown("");
            };
            match k.as_str() {
                "keep" | "drop" | "block" | "pseudonymise" | "pseudonymize" => {
                    format!("`{k}` takes no argument: write `{k}`, not a mapping")
                }
                "hash" => "there is no unkeyed hash: a dictionary reverses it; use pseudonymise".into(),
                "redact" => "redact takes null or a fixed string: { redact: \"***\" }".into(),
                "mask" => "mask takes { keep_last: N } (N a whole number of characters)".into(),
                "truncate" => "truncate takes a whole number of characters: { truncate: 2 }".into(),
                "generalise" | "generalize" => match arg {
                    Value::Object(o) if o.contains_key("range") => {
                        "range is a positive width, e.g. { range: 10 }".into()
                    }
                    Value::Object(o) if o.contains_key("postal_prefix") => {
                        "postal_prefix is a number of characters from 1 to 255, e.g. { postal_prefix: 2 }".into()
                    }
                    Value::Object(o) if o.contains_key("map") => {
                        "map names a CSV file under the policy directory, e.g. { map: maps/city-to-region.csv }".into()
                    }
                    _ => "generalise takes year, month, { range: N }, { map: FILE } or { postal_prefix: N }".into(),
                },
                other => unknown(other),
            }
        }
        _ => "an action is a name (keep, drop, ...) or a one-key mapping ({ truncate: 2 })".into(),
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
        let mut b = compile_budget(v, false).map_err(|m| format!("per_class.{k}: {m}"))?;
        if b.per.is_zero() {
            b.per = per;
        }
        per_class.push((class, b));
    }
    // Budgets are GCRA buckets of `burst` records refilled at `records` per `per`: a burst
    // above `records` lets more flow in one window than the quota RateLimit-Policy advertises.
    if let Some(burst) = raw.burst.filter(|b| *b > raw.records) {
        return Err(format!(
            "burst {burst} is more than records {}: up to {burst} records could flow in one window while the quota says {}; make burst at most records",
            raw.records, raw.records
        ));
    }
    Ok(ExportBudget {
        records: raw.records,
        per,
        burst: raw.burst,
        per_class,
    })
}
