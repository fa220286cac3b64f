//! Raw YAML -> compiled `PolicySet`, in one step that collects every diagnostic.
//!
//! Loading reads `purposes.yaml` and `inventory/*.yaml` (other files under the directory,
//! such as `tests/`, only count towards the version hash). Compilation resolves categories
//! against the taxonomy (with "did you mean"), parses every JSONPath once, builds the
//! per-resource field trees and record selectors, and precomputes for each purpose the rule
//! every category resolves to. Nothing is half-loaded: any error means no `PolicySet`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::diagnostic::{first_line, Diagnostic, Diags};
use super::model::{RawBudget, RawInventory, RawPurpose, RawPurposes, RawResource, SpStr};
use super::select::{parse_field_path, parse_key_path, FieldNode, RecordSelector};
use super::set::{
    Action, BodyFormat, ConsentSignal, Controller, ExportBudget, FieldRule, Generalise, Inventory,
    LegalBasis, Mode, OpKind, Operation, PolicySet, Purpose, Resolved, Resource, RouteClass,
    TunnelKind, Writes,
};
use super::taxonomy::{suggest, CatId, Taxonomy, UNCLASSIFIED};
use crate::dialect::Dialect;
use crate::pattern::RoutePattern;
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
    let text = match std::str::from_utf8(&src.bytes) {
        Ok(t) => t,
        Err(_) => {
            diags.error(&src.display, None, "file is not UTF-8");
            return None;
        }
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

    let mut inventories: HashMap<Dialect, Inventory> = HashMap::new();
    let mut consent_names: BTreeSet<String> = BTreeSet::new();
    let mut first_file: HashMap<Dialect, PathBuf> = HashMap::new();
    let mut lacking: Vec<(String, Vec<String>)> = Vec::new(); // resource, consent names it has
    for src in sources.iter().filter(|s| is_inventory(&s.rel)) {
        let Some(raw) = parse_yaml::<RawInventory>(src, &mut diags) else {
            continue;
        };
        let Some(inv) = compile_inventory(src, &raw, &taxonomy, &mut diags) else {
            continue;
        };
        for r in &inv.resources {
            consent_names.extend(r.consent.keys().cloned());
            if !r.records.is_empty() {
                lacking.push((
                    format!("{}/{}", inv.dialect, r.name),
                    r.consent.keys().cloned().collect(),
                ));
            }
        }
        if let Some(prev) = first_file.get(&inv.dialect) {
            diags.error(
                &src.display,
                Some(&raw.dialect.referenced),
                format!(
                    "a second inventory for dialect `{}` (the first is {})",
                    inv.dialect,
                    prev.display()
                ),
            );
            continue;
        }
        first_file.insert(inv.dialect, src.display.clone());
        inventories.insert(inv.dialect, inv);
    }

    let mut controller = None;
    let mut purposes = Vec::new();
    match sources.iter().find(|s| s.rel == "purposes.yaml") {
        None => diags.error(Path::new("purposes.yaml"), None, "missing purposes.yaml"),
        Some(src) => {
            if let Some(raw) = parse_yaml::<RawPurposes>(src, &mut diags) {
                controller = Some(Controller {
                    name: raw.controller.name.clone(),
                    jurisdiction: raw.controller.jurisdiction.clone(),
                    contact: raw.controller.contact.clone(),
                });
                for (name, p) in raw.purposes.iter() {
                    if let Some(p) = compile_purpose(
                        src,
                        name,
                        p,
                        &taxonomy,
                        &consent_names,
                        &lacking,
                        &mut diags,
                    ) {
                        purposes.push(p);
                    }
                }
            }
        }
    }
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

fn category(src: &Source, name: &SpStr, tax: &Taxonomy, diags: &mut Diags) -> Option<CatId> {
    match tax.get(&name.value) {
        Some(c) => Some(c),
        None => {
            let hint = tax
                .suggest(&name.value)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            diags.error(
                &src.display,
                Some(&name.referenced),
                format!("unknown data category `{}`{hint}", name.value),
            );
            None
        }
    }
}

fn compile_inventory(
    src: &Source,
    raw: &RawInventory,
    tax: &Taxonomy,
    diags: &mut Diags,
) -> Option<Inventory> {
    let Some(dialect) = Dialect::from_name(&raw.dialect.value) else {
        diags.error(
            &src.display,
            Some(&raw.dialect.referenced),
            format!(
                "unknown dialect `{}` (salesforce, hubspot, dynamics or generic)",
                raw.dialect.value
            ),
        );
        return None;
    };
    let mut ungoverned = Vec::new();
    for u in &raw.ungoverned {
        match RoutePattern::parse(&u.value) {
            Ok(p) => ungoverned.push(p),
            Err(e) => diags.error(&src.display, Some(&u.referenced), e.to_string()),
        }
    }

    // Names first, so children and type keys can refer to resources defined later.
    let mut by_type: super::FastMap<String, usize> = Default::default();
    let names: Vec<&str> = raw
        .resources
        .iter()
        .map(|(n, _)| n.value.as_str())
        .collect();
    for (i, (name, res)) in raw.resources.iter().enumerate() {
        // A resource that only holds tunnels is no record type.
        if tunnels_only(res) {
            continue;
        }
        for t in std::iter::once(name).chain(res.types.iter()) {
            if by_type.insert(t.value.clone(), i).is_some() {
                diags.error(
                    &src.display,
                    Some(&t.referenced),
                    format!("record type `{}` names two resources", t.value),
                );
            }
        }
    }

    let mut resources = Vec::new();
    let mut operations = Vec::new();
    for (i, (name, res)) in raw.resources.iter().enumerate() {
        let r = compile_resource(
            src,
            name,
            res,
            tax,
            &names,
            dialect,
            i,
            &mut operations,
            diags,
        );
        resources.push(r);
    }
    Some(Inventory {
        dialect,
        ungoverned,
        operations,
        resources,
        by_type,
    })
}

/// True when every operation of the resource is a batch tunnel (and there is one).
fn tunnels_only(res: &RawResource) -> bool {
    !res.operations.is_empty() && res.operations.iter().all(|o| o.value.tunnel.is_some())
}

#[allow(clippy::too_many_arguments)]
fn compile_resource(
    src: &Source,
    name: &SpStr,
    res: &RawResource,
    tax: &Taxonomy,
    names: &[&str],
    dialect: Dialect,
    idx: usize,
    operations: &mut Vec<Operation>,
    diags: &mut Diags,
) -> Resource {
    let file = &src.display;
    for op in &res.operations {
        let o = &op.value;
        let pattern = match RoutePattern::parse(&format!("{} {}", o.method, o.path)) {
            Ok(p) => p,
            Err(e) => {
                diags.error(file, Some(&op.referenced), e.to_string());
                continue;
            }
        };
        let kind = match o.op.as_str() {
            "read" => OpKind::Read,
            "write" => OpKind::Write,
            "delete" => OpKind::Delete,
            other => {
                diags.error(
                    file,
                    Some(&op.referenced),
                    format!("unknown op `{other}` (read, write or delete)"),
                );
                continue;
            }
        };
        let class = match (&o.class, kind) {
            (Some(c), _) => match RouteClass::from_name(c) {
                Some(c) => c,
                None => {
                    diags.error(
                        file,
                        Some(&op.referenced),
                        format!("unknown class `{c}` (single, list or bulk_export)"),
                    );
                    continue;
                }
            },
            (None, OpKind::Read) => {
                diags.error(
                    file,
                    Some(&op.referenced),
                    format!(
                        "governed read route `{}` has no class (single, list or bulk_export)",
                        pattern.template()
                    ),
                );
                continue;
            }
            (None, _) => RouteClass::Single,
        };
        let tunnel = match &o.tunnel {
            None => None,
            Some(t) => match TunnelKind::from_name(t) {
                Some(k) if kind == OpKind::Read && pattern.template().starts_with("POST ") => {
                    Some(k)
                }
                Some(_) => {
                    diags.error(
                        file,
                        Some(&op.referenced),
                        "a tunnel is `method: POST` with `op: read`: its sub-requests are governed part by part".to_string(),
                    );
                    continue;
                }
                None => {
                    diags.error(
                        file,
                        Some(&op.referenced),
                        format!("unknown tunnel `{t}` (odata_batch, sf_composite, sf_composite_batch or sf_tree)"),
                    );
                    continue;
                }
            },
        };
        let Some((format, objects)) = csv_format(file, op, kind, names, diags) else {
            continue;
        };
        if let Some(prev) = operations
            .iter()
            .find(|p: &&Operation| p.pattern.template() == pattern.template())
        {
            diags.warn(
                file,
                Some(&op.referenced),
                format!(
                    "route `{}` is already an operation of `{}`; this one is never used",
                    pattern.template(),
                    prev.resource
                ),
            );
        }
        operations.push(Operation {
            dialect,
            resource: name.value.clone(),
            resource_idx: idx,
            op: kind,
            class,
            pattern,
            tunnel,
            format,
            objects,
        });
    }

    let mut records = Vec::new();
    for r in &res.records {
        match RecordSelector::compile(&r.value) {
            Ok(s) => records.push(s),
            Err(e) => diags.error(file, Some(&r.referenced), format!("record selector: {e}")),
        }
    }
    // A resource without `fields` describes no records (Bulk jobs: all envelope).
    if !res.operations.is_empty()
        && res.records.is_empty()
        && !res.fields.is_empty()
        && !tunnels_only(res)
    {
        diags.error(
            file,
            Some(&name.referenced),
            format!(
                "resource `{}` has operations but no `records` selectors",
                name.value
            ),
        );
    }

    let type_key = res
        .type_key
        .as_ref()
        .and_then(|t| match parse_key_path(&t.value) {
            Ok(k) => Some(k),
            Err(e) => {
                diags.error(file, Some(&t.referenced), format!("type_key: {e}"));
                None
            }
        });

    let mut envelope = FieldNode::default();
    classify_map(src, &res.envelope, tax, &mut envelope, "envelope", diags);
    let mut fields = FieldNode::default();
    classify_map(src, &res.fields, tax, &mut fields, "field", diags);
    for (path, child) in res.children.iter() {
        let Some(ci) = names.iter().position(|n| *n == child.value) else {
            let hint = suggest(&child.value, names.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            diags.error(
                file,
                Some(&child.referenced),
                format!("unknown resource `{}`{hint}", child.value),
            );
            continue;
        };
        match parse_field_path(&path.value) {
            Ok(alts) => {
                for alt in alts {
                    let node = fields.entry(&alt);
                    if node.cat.is_some() || node.child.is_some() {
                        diags.error(
                            file,
                            Some(&path.referenced),
                            format!("`{}` is both a field and child records", path.value),
                        );
                    }
                    node.child = Some(ci);
                }
            }
            Err(e) => diags.error(file, Some(&path.referenced), format!("child path: {e}")),
        }
    }

    let mut consent = super::FastMap::default();
    for (cname, c) in res.consent.iter() {
        let field = match parse_key_path(&c.value.field) {
            Ok(f) => f,
            Err(e) => {
                diags.error(file, Some(&c.referenced), format!("consent field: {e}"));
                continue;
            }
        };
        let granted_when: Vec<Value> = match &c.value.granted_when {
            Value::Array(a) => a.clone(),
            v => vec![v.clone()],
        };
        if granted_when.is_empty()
            || granted_when
                .iter()
                .any(|v| !(v.is_boolean() || v.is_string() || v.is_number()))
        {
            diags.error(
                file,
                Some(&c.referenced),
                "granted_when is a boolean, string or number, or a list of them",
            );
            continue;
        }
        consent.insert(
            cname.value.clone(),
            ConsentSignal {
                field,
                granted_when,
                separator: c.value.separator.clone(),
            },
        );
    }

    let keep_unclassified = match &res.unclassified {
        None => false,
        Some(u) if u.value == "keep" => {
            diags.warn(
                file,
                Some(&u.referenced),
                format!(
                    "resource `{}` keeps unclassified fields: new or renamed CRM fields will flow to every purpose",
                    name.value
                ),
            );
            true
        }
        Some(u) if u.value == "otherwise" => false,
        Some(u) => {
            diags.error(
                file,
                Some(&u.referenced),
                "unclassified is `keep` or `otherwise` (the default)",
            );
            false
        }
    };

    Resource {
        name: name.value.clone(),
        records,
        type_key,
        envelope,
        fields,
        consent,
        keep_unclassified,
    }
}

/// `format:` and `objects:` of one operation. `None` after an error was reported.
fn csv_format(
    file: &Path,
    op: &serde_saphyr::Spanned<super::model::RawOperation>,
    kind: OpKind,
    names: &[&str],
    diags: &mut Diags,
) -> Option<(BodyFormat, Vec<usize>)> {
    let o = &op.value;
    let at = Some(&op.referenced);
    let format = match o.format.as_deref() {
        None => BodyFormat::Json,
        Some(f) => match BodyFormat::from_name(f) {
            Some(f) => f,
            None => {
                diags.error(file, at, format!("unknown format `{f}` (json or csv)"));
                return None;
            }
        },
    };
    match (format, &o.objects) {
        (BodyFormat::Json, None) => Some((format, Vec::new())),
        (BodyFormat::Json, Some(_)) => {
            diags.error(
                file,
                at,
                "`objects` applies to `format: csv` operations only",
            );
            None
        }
        (BodyFormat::Csv, _) if kind != OpKind::Read || o.tunnel.is_some() => {
            diags.error(
                file,
                at,
                "`format: csv` is supported on reads only (their responses are filtered)",
            );
            None
        }
        (BodyFormat::Csv, None) => {
            diags.error(
                file,
                at,
                "a `format: csv` operation needs `objects`: the resources its rows may be",
            );
            None
        }
        (BodyFormat::Csv, Some(list)) => {
            let mut objects = Vec::new();
            for object in list {
                match names.iter().position(|n| n == object) {
                    Some(i) if !objects.contains(&i) => objects.push(i),
                    Some(_) => {
                        diags.error(file, at, format!("`objects` names `{object}` twice"));
                        return None;
                    }
                    None => {
                        let hint = suggest(object, names.iter().copied())
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        diags.error(file, at, format!("unknown resource `{object}`{hint}"));
                        return None;
                    }
                }
            }
            if objects.is_empty() {
                diags.error(file, at, "`objects` is empty");
                return None;
            }
            Some((format, objects))
        }
    }
}

fn classify_map(
    src: &Source,
    map: &super::model::OrderedMap<SpStr, SpStr>,
    tax: &Taxonomy,
    root: &mut FieldNode,
    what: &str,
    diags: &mut Diags,
) {
    for (path, cat) in map.iter() {
        let Some(c) = category(src, cat, tax, diags) else {
            continue;
        };
        match parse_field_path(&path.value) {
            Ok(alts) => {
                for alt in alts {
                    let node = root.entry(&alt);
                    if node.cat.is_some() {
                        diags.error(
                            &src.display,
                            Some(&path.referenced),
                            format!("{what} `{}` is classified twice", path.value),
                        );
                    }
                    node.cat = Some(c);
                }
            }
            Err(e) => diags.error(
                &src.display,
                Some(&path.referenced),
                format!("{what} path `{}`: {e}", path.value),
            ),
        }
    }
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

#[allow(clippy::too_many_arguments)]
fn compile_purpose(
    src: &Source,
    name: &SpStr,
    raw: &RawPurpose,
    tax: &Taxonomy,
    consent_names: &BTreeSet<String>,
    lacking: &[(String, Vec<String>)],
    diags: &mut Diags,
) -> Option<Purpose> {
    let file = &src.display;
    let errors_before = diags.list.len();
    let err = |d: &mut Diags, loc: &serde_saphyr::Location, m: String| d.error(file, Some(loc), m);

    if raw.data_use.value.trim().is_empty() {
        err(diags, &raw.data_use.referenced, "data_use is empty".into());
    }
    let legal_basis = match LegalBasis::from_name(&raw.legal_basis.value) {
        Some(l) => l,
        None => {
            let hint = suggest(&raw.legal_basis.value, LegalBasis::NAMES.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            err(
                diags,
                &raw.legal_basis.referenced,
                format!("unknown legal basis `{}`{hint}", raw.legal_basis.value),
            );
            LegalBasis::Consent
        }
    };

    let mut requires_consent = Vec::new();
    if let Some(rc) = &raw.requires_consent {
        let list: Vec<Option<String>> = match &rc.value {
            Value::String(s) => vec![Some(s.clone())],
            Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
            _ => vec![None],
        };
        for c in list {
            match c {
                None => err(
                    diags,
                    &rc.referenced,
                    "requires_consent is a name or a list of names".into(),
                ),
                Some(c) if !consent_names.contains(&c) => {
                    let hint = suggest(&c, consent_names.iter().map(String::as_str))
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    err(
                        diags,
                        &rc.referenced,
                        format!("no inventory defines the consent signal `{c}`{hint}"),
                    );
                }
                Some(c) => {
                    for (res, has) in lacking {
                        if !has.contains(&c) {
                            diags.warn(
                                file,
                                Some(&rc.referenced),
                                format!(
                                    "resource {res} has no consent signal `{c}`: purpose `{}` never sees its records",
                                    name.value
                                ),
                            );
                        }
                    }
                    requires_consent.push(c);
                }
            }
        }
    } else if legal_basis == LegalBasis::Consent {
        diags.warn(
            file,
            Some(&raw.legal_basis.referenced),
            format!(
                "purpose `{}` relies on consent but names no `requires_consent` signal",
                name.value
            ),
        );
    }

    let mut rules: Vec<FieldRule> = Vec::new();
    for (cat, action) in raw.fields.iter() {
        if cat.value == UNCLASSIFIED {
            err(
                diags,
                &cat.referenced,
                "`unclassified` follows `otherwise`; a resource may keep it with `unclassified: keep`".into(),
            );
            continue;
        }
        let Some(c) = category(src, cat, tax, diags) else {
            continue;
        };
        match parse_action(&action.value) {
            Ok(a) => rules.push(FieldRule {
                category: cat.value.clone(),
                cat: c,
                action: a,
                id: format!("fields.{}", cat.value).into(),
            }),
            Err(m) => err(diags, &action.referenced, format!("{}: {m}", cat.value)),
        }
    }
    // Redundant (shadowed) rules: a sub-category that repeats its nearest ancestor's rule.
    for (i, r) in rules.iter().enumerate() {
        let parent_rule = tax
            .lineage(r.cat)
            .skip(1)
            .find_map(|p| rules.iter().find(|x| x.cat == p));
        if let Some(p) = parent_rule {
            if p.action == r.action {
                if let Some((k, _)) = raw.fields.0.get(i) {
                    diags.warn(
                        file,
                        Some(&k.referenced),
                        format!(
                            "rule for `{}` repeats the rule for `{}` and changes nothing",
                            r.category, p.category
                        ),
                    );
                }
            }
        }
    }

    let otherwise = match &raw.otherwise {
        None => Action::Drop,
        Some(o) => match o.value.as_str() {
            "drop" => Action::Drop,
            "redact" => Action::Redact(None),
            "block" => Action::Block,
            "keep" => {
                err(diags, &o.referenced, "otherwise is never keep: unclassified data must not flow (drop, redact or block)".into());
                Action::Drop
            }
            other => {
                err(
                    diags,
                    &o.referenced,
                    format!("unknown otherwise `{other}` (drop, redact or block)"),
                );
                Action::Drop
            }
        },
    };
    let writes = match &raw.writes {
        None => Writes::Deny,
        Some(w) => match w.value.as_str() {
            "allow" => Writes::Allow,
            "deny" => Writes::Deny,
            other => {
                err(
                    diags,
                    &w.referenced,
                    format!("writes is allow or deny, not `{other}`"),
                );
                Writes::Deny
            }
        },
    };
    if writes == Writes::Allow {
        for (i, r) in rules.iter().enumerate() {
            if !r.action.allowed_on_writes() {
                if let Some((k, _)) = raw.fields.0.get(i) {
                    diags.warn(
                        file,
                        Some(&k.referenced),
                        format!(
                            "writes carrying `{}` will be refused: only keep, drop and block apply to writes",
                            r.category
                        ),
                    );
                }
            }
        }
    }
    let mode = match &raw.mode {
        None => Mode::Enforce,
        Some(m) => match m.value.as_str() {
            "enforce" => Mode::Enforce,
            "shadow" => Mode::Shadow,
            other => {
                err(
                    diags,
                    &m.referenced,
                    format!("mode is enforce or shadow, not `{other}`"),
                );
                Mode::Enforce
            }
        },
    };
    let export_budget = match &raw.export_budget {
        None => None,
        Some(b) => match compile_budget(&b.value, true) {
            Ok(b) => Some(b),
            Err(m) => {
                err(diags, &b.referenced, format!("export_budget: {m}"));
                None
            }
        },
    };

    let has_new_errors = diags.list[errors_before..]
        .iter()
        .any(|d| d.severity == super::diagnostic::Severity::Error);
    if has_new_errors {
        return None;
    }
    let by_cat = (0..tax.len())
        .map(|c| {
            let c = c as CatId;
            for l in tax.lineage(c) {
                if let Some(i) = rules.iter().position(|r| r.cat == l) {
                    return Resolved::Rule(i as u16);
                }
            }
            if tax.is_system(c) {
                Resolved::System
            } else {
                Resolved::Otherwise
            }
        })
        .collect();
    let rule_ids = Purpose::rule_id_table(&rules, &requires_consent);
    Some(Purpose {
        name: name.value.clone(),
        description: raw.description.clone(),
        data_use: raw.data_use.value.clone(),
        legal_basis,
        requires_consent,
        rules,
        otherwise,
        writes,
        export_budget,
        mode,
        by_cat,
        rule_ids,
    })
}
