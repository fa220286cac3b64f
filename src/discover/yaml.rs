//! Writes discovered objects as an inventory in the shipped format (policies/inventory/),
//! each field with its suggestion and the evidence as a comment, or merges them into an
//! existing inventory without changing a line of it.
//!
//! Merge is text insertion, not a re-serialisation: the reviewers' comments, order and
//! spelling of the existing file survive, new fields are inserted under their resource's
//! `fields:` (marked `new:`), new objects are appended to `resources:`, and conflicts and
//! removed fields go to the report only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::classify::{self, Certainty, Suggestion};
use super::{Discovered, DiscoveredField, DiscoveredObject};
use crate::dialect::Dialect;

/// One object with a suggestion per field.
#[derive(Debug, Clone)]
pub struct Classified {
    pub object: DiscoveredObject,
    pub fields: Vec<(DiscoveredField, Suggestion)>,
}

/// Suggests a category for every discovered field.
pub fn classify_all(d: &Discovered) -> Vec<Classified> {
    d.objects
        .iter()
        .map(|o| {
            let person = is_person(&o.name);
            Classified {
                object: o.clone(),
                fields: o
                    .fields
                    .iter()
                    .map(|f| (f.clone(), classify::suggest(person, f)))
                    .collect(),
            }
        })
        .collect()
}

/// Objects whose records are people (their `Name` is a person's name).
fn is_person(object: &str) -> bool {
    matches!(
        object.to_ascii_lowercase().as_str(),
        "contact" | "contacts" | "lead" | "leads" | "individual" | "user"
    )
}

/// What a merge did, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MergeOutcome {
    /// `resource path` of every field added.
    pub added_fields: Vec<String>,
    /// Resources added.
    pub added_objects: Vec<String>,
    /// Existing classification and new evidence disagree: the existing one is kept.
    pub conflicts: Vec<Conflict>,
    /// Fields the inventory classifies that the CRM no longer describes.
    pub removed: Vec<String>,
}

/// One disagreement between the inventory and the evidence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Conflict {
    pub resource: String,
    pub path: String,
    pub existing: String,
    pub suggested: String,
    pub reasons: Vec<String>,
}

/// A complete inventory for the discovered objects.
pub fn render(d: &Discovered, objects: &[Classified]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Discovered by `zweck inventory discover --upstream {}`: {} objects.\n\
         # Every field carries its evidence. `unclassified  # review` fields are dropped until a\n\
         # person classifies them; `suggested:` lines need a person's confirmation. Art. 9\n\
         # suspects are marked. Then: `zweck policy check --dir <policies>`.",
        d.upstream,
        objects.len()
    );
    let _ = writeln!(out, "dialect: {}\n", d.dialect);
    out.push_str(header(d.dialect));
    let names: Vec<&str> = objects.iter().map(|c| c.object.name.as_str()).collect();
    for (i, c) in objects.iter().enumerate() {
        out.push('\n');
        out.push_str(&resource(d.dialect, c, i == 0, &names));
    }
    out
}

/// The `ungoverned` list and the metadata resource, as the shipped inventories have them.
fn header(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Salesforce => {
            r#"ungoverned:
  - GET /services/data/
  - GET /services/data/v*
  - GET /services/data/v*/limits

resources:
  # Metadata: no customer data; passes unchanged (docs/policy.md, "Metadata routes").
  metadata:
    operations:
      - { method: GET, path: "/services/data/v*/sobjects", op: metadata }
      - { method: GET, path: "/services/data/v*/sobjects/*/describe", op: metadata }
      - { method: GET, path: "/services/data/v*/sobjects/*/describe/layouts", op: metadata }
      - { method: GET, path: "/services/data/v*/sobjects/*/describe/layouts/*", op: metadata }
      - { method: GET, path: "/services/data/v*/sobjects/*/describe/compactLayouts", op: metadata }
"#
        }
        Dialect::HubSpot => {
            r#"ungoverned:
  - GET /account-info/v3/details

resources:
  # Metadata: no customer data; passes unchanged (docs/policy.md, "Metadata routes").
  metadata:
    operations:
      - { method: GET, path: "/crm/v3/properties/**", op: metadata }
      - { method: GET, path: /crm/v3/schemas, op: metadata }
      - { method: GET, path: "/crm/v3/schemas/*", op: metadata }
      - { method: GET, path: /crm-object-schemas/v3/schemas, op: metadata }
      - { method: GET, path: "/crm-object-schemas/v3/schemas/*", op: metadata }
"#
        }
        Dialect::Dynamics | Dialect::Generic => {
            r#"ungoverned:
  - GET /api/data/v*
  - GET /api/data/v*/WhoAmI

resources:
  # Metadata: no customer data; passes unchanged (docs/policy.md, "Metadata routes").
  metadata:
    operations:
      - { method: GET, path: "/api/data/v*/$metadata", op: metadata }
      - { method: GET, path: "/api/data/v*/EntityDefinitions", op: metadata }
      - { method: GET, path: "/api/data/v*/EntityDefinitions(*)", op: metadata }
      - { method: GET, path: "/api/data/v*/EntityDefinitions(*)/**", op: metadata }
"#
        }
    }
}

/// One resource block (two-space indented under `resources:`). `shared` puts the routes
/// every object shares (Salesforce SOQL) on it.
fn resource(dialect: Dialect, c: &Classified, shared: bool, known: &[&str]) -> String {
    let o = &c.object;
    let mut out = String::new();
    let custom = if o.custom { ", a custom object" } else { "" };
    let _ = writeln!(out, "  # {}{custom}", comment_text(&o.label));
    let _ = writeln!(out, "  {}:", key(&o.name));
    let types: Vec<String> = o
        .types
        .iter()
        .filter(|t| !t.is_empty() && **t != o.name)
        .map(|t| key(t))
        .collect();
    if !types.is_empty() {
        let _ = writeln!(out, "    types: [{}]", types.join(", "));
    }
    out.push_str("    operations:\n");
    for r in &o.route_names {
        for (method, suffix, op) in routes(dialect) {
            let path = match dialect {
                Dialect::Salesforce if suffix.starts_with("composite") => {
                    format!("/services/data/v*/composite/sobjects/{r}")
                }
                Dialect::Salesforce => format!("/services/data/v*/sobjects/{r}{suffix}"),
                Dialect::HubSpot => format!("/crm/v3/objects/{r}{suffix}"),
                Dialect::Dynamics | Dialect::Generic => format!("/api/data/v*/{r}{suffix}"),
            };
            let _ = writeln!(
                out,
                "      - {{ method: {method}, path: \"{path}\", {op} }}"
            );
        }
    }
    if shared && dialect == Dialect::Salesforce {
        out.push_str(SF_SHARED);
    }
    out.push_str(bookkeeping(dialect));
    out.push_str("    fields:\n");
    for line in standard_fields(dialect) {
        let _ = writeln!(out, "      {line}");
    }
    for (f, s) in &c.fields {
        out.push_str(&field_line(f, s, false));
    }
    let children: Vec<&(String, String)> = o
        .relations
        .iter()
        .filter(|(_, to)| known.contains(&to.as_str()))
        .collect();
    for (path, _) in children.iter().filter(|(p, _)| p.ends_with(".records[*]")) {
        let base = path.trim_end_matches(".records[*]");
        for key in ["totalSize", "done", "nextRecordsUrl"] {
            let _ = writeln!(out, "      {base}.{key}: system");
        }
    }
    if !children.is_empty() {
        out.push_str("    children:\n");
        for (path, to) in children {
            let _ = writeln!(out, "      {}: {}", key(path), key(to));
        }
    }
    let signals: Vec<String> = CONSENT
        .iter()
        .filter(|(d, field, _)| {
            *d == dialect && c.fields.iter().any(|(f, _)| f.path == *field)
        })
        .map(|(_, field, signal)| {
            format!("      {signal}: {{ field: {field}, granted_when: false }}  # suggested: an opt-out flag\n")
        })
        .collect();
    if !signals.is_empty() {
        out.push_str("    consent:\n");
        out.extend(signals);
    }
    out
}

/// Opt-out flags the CRMs ship, as the consent signals the shipped purposes name: (dialect,
/// field path, signal), each granted when the flag is false.
const CONSENT: &[(Dialect, &str, &str)] = &[
    (
        Dialect::Salesforce,
        "$.HasOptedOutOfEmail",
        "marketing_email",
    ),
    (
        Dialect::HubSpot,
        "$.properties.hs_email_optout",
        "marketing_email",
    ),
    (Dialect::Dynamics, "$.donotbulkemail", "marketing_email"),
    (Dialect::Dynamics, "$.donotemail", "email"),
];

/// (method, path suffix, op and class) per record route.
fn routes(dialect: Dialect) -> &'static [(&'static str, &'static str, &'static str)] {
    match dialect {
        Dialect::Salesforce => &[
            ("GET", "", "op: read, class: list"),
            ("GET", "/*", "op: read, class: single"),
            ("POST", "", "op: write"),
            ("PATCH", "/*", "op: write"),
            ("DELETE", "/*", "op: delete"),
            ("GET", "/*/*", "op: read, class: single"),
            ("PATCH", "/*/*", "op: write"),
            ("DELETE", "/*/*", "op: delete"),
            (
                "GET",
                "composite",
                "op: read, class: list, withheld: \"null\"",
            ),
            (
                "POST",
                "composite",
                "op: read, class: list, withheld: \"null\"",
            ),
        ],
        Dialect::HubSpot => &[
            ("GET", "", "op: read, class: list"),
            ("GET", "/*", "op: read, class: single"),
            ("POST", "/search", "op: read, class: list"),
            ("POST", "/batch/read", "op: read, class: list"),
            ("POST", "", "op: write"),
            ("POST", "/batch/create", "op: write"),
            ("POST", "/batch/update", "op: write"),
            ("POST", "/batch/upsert", "op: write"),
            ("POST", "/batch/archive", "op: delete"),
            ("PATCH", "/*", "op: write"),
            ("DELETE", "/*", "op: delete"),
        ],
        Dialect::Dynamics | Dialect::Generic => &[
            ("GET", "", "op: read, class: list"),
            ("GET", "(*)", "op: read, class: single"),
            ("POST", "", "op: write"),
            ("PATCH", "(*)", "op: write"),
            ("DELETE", "(*)", "op: delete"),
        ],
    }
}

/// SOQL routes: one resource carries them, `type_key` picks each record's resource.
const SF_SHARED: &str = r#"      # Shared by every object type: `type_key` picks each record's resource.
      - { method: GET, path: "/services/data/v*/query", op: read, class: list }
      - { method: GET, path: "/services/data/v*/query/*", op: read, class: list }
      - { method: GET, path: "/services/data/v*/queryAll", op: read, class: list }
      - { method: GET, path: "/services/data/v*/queryAll/*", op: read, class: list }
"#;

/// Records, type key, envelope and counts per dialect.
fn bookkeeping(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Salesforce => {
            r#"    records: ["$.records[*]", "$.recentItems[*]", "$[*]", "$"]
    type_key: $.attributes.type
    envelope:
      $.totalSize: system
      $.done: system
      $.nextRecordsUrl: system
      $.objectDescribe: system
    counts: [$.totalSize]
"#
        }
        Dialect::HubSpot => {
            r#"    records: ["$.results[*]", "$.inputs[*]", "$"]
    envelope:
      $.total: system
      $.paging: system
      $.status: system
      $.numErrors: system
      $.requestedAt: system
      $.startedAt: system
      $.completedAt: system
      $.links: system
      $.errors[*].status: system
      $.errors[*].category: system
      $.errors[*].message: unclassified
    counts: [$.total]
"#
        }
        Dialect::Dynamics | Dialect::Generic => {
            r#"    records: ["$.value[*]", "$"]
    envelope:
      "$['@odata.context']": system
      "$['@odata.nextLink']": system
      "$['@odata.count']": system
    counts: ["$['@odata.count']"]
"#
        }
    }
}

/// Keys every record (or save result) of the dialect carries besides the described fields.
fn standard_fields(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Salesforce => &[
            "$.attributes: system",
            "$.id: system",
            "$.success: system",
            "$.created: system",
            "$.errors[*].statusCode: system",
            "$.errors[*].fields: system",
            "$.errors[*].message: unclassified",
        ],
        Dialect::HubSpot => &[
            "$.id: system",
            "$.createdAt: system",
            "$.updatedAt: system",
            "$.archived: system",
            "$.archivedAt: system",
            "$.associations: system",
        ],
        Dialect::Dynamics | Dialect::Generic => &[
            "\"$['@odata.context']\": system",
            "\"$['@odata.etag']\": system",
        ],
    }
}

/// Paths of [`standard_fields`], for the removed-fields check of a merge.
fn is_standard(dialect: Dialect, path: &str) -> bool {
    standard_fields(dialect).iter().any(|l| {
        l.split(": ")
            .next()
            .is_some_and(|k| k.trim_matches('"') == path)
    })
}

/// One `      path: category  # evidence` line.
fn field_line(f: &DiscoveredField, s: &Suggestion, new: bool) -> String {
    let mut notes: Vec<String> = Vec::new();
    if new {
        notes.push("new".into());
    }
    if s.special {
        notes.push("Art. 9 suspect".into());
    }
    match s.certainty {
        Certainty::Certain => {}
        Certainty::Suggested => notes.push("suggested".into()),
        Certainty::Review => notes.push("review".into()),
    }
    let lead = if notes.is_empty() {
        String::new()
    } else {
        format!("{}: ", notes.join(", "))
    };
    let reasons: Vec<String> = s.reasons.iter().map(|r| comment_text(r)).collect();
    format!(
        "      {}: {}  # {lead}{}\n",
        key(&f.path),
        s.category,
        reasons.join("; ")
    )
}

/// A YAML key: plain when it is safe, double-quoted otherwise.
fn key(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '$' | '.' | '_' | '-' | '[' | ']' | '*')
        })
        && !s.starts_with(['-', '[', '*']);
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Text from the CRM made safe for a one-line comment.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Merges the discovered objects into `existing` (an inventory's text): new fields and
/// objects are inserted, nothing existing is changed.
///
/// # Errors
/// `existing` is no inventory (not YAML, no `resources`, another dialect).
pub fn merge(
    existing: &str,
    d: &Discovered,
    objects: &[Classified],
) -> Result<(String, MergeOutcome), String> {
    let parsed: Value =
        serde_saphyr::from_str(existing).map_err(|e| format!("not an inventory: {e}"))?;
    let dialect = parsed.get("dialect").and_then(Value::as_str).unwrap_or("");
    if dialect != d.dialect.to_string() {
        return Err(format!(
            "the inventory is for dialect `{dialect}`, the upstream is `{}`",
            d.dialect
        ));
    }
    let resources = parsed
        .get("resources")
        .and_then(Value::as_object)
        .ok_or("the inventory has no resources")?;
    let mut lines: Vec<String> = existing.lines().map(str::to_string).collect();
    let mut outcome = MergeOutcome::default();
    let mut appended = String::new();
    // relations may point at what the inventory has and at what discovery found
    let known: Vec<&str> = resources
        .keys()
        .map(String::as_str)
        .chain(objects.iter().map(|c| c.object.name.as_str()))
        .collect();
    for c in objects {
        let found = resources
            .iter()
            .find(|(k, _)| *k == &c.object.name)
            .or_else(|| {
                resources
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&c.object.name))
            });
        let Some((name, res)) = found else {
            outcome.added_objects.push(c.object.name.clone());
            appended.push('\n');
            appended.push_str(&resource(d.dialect, c, false, &known));
            continue;
        };
        let fields: BTreeMap<String, String> = res
            .get("fields")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut new_lines = String::new();
        for (f, s) in &c.fields {
            match fields.get(&f.path) {
                Some(existing) if existing != &s.category && s.certainty != Certainty::Review => {
                    outcome.conflicts.push(Conflict {
                        resource: name.clone(),
                        path: f.path.clone(),
                        existing: existing.clone(),
                        suggested: s.category.clone(),
                        reasons: s.reasons.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    outcome.added_fields.push(format!("{name} {}", f.path));
                    new_lines.push_str(&field_line(f, s, true));
                }
            }
        }
        for path in fields.keys() {
            if is_field_of_record(d.dialect, path)
                && !is_standard(d.dialect, path)
                && !c.fields.iter().any(|(f, _)| &f.path == path)
            {
                outcome.removed.push(format!("{name} {path}"));
            }
        }
        if !new_lines.is_empty() {
            insert_fields(&mut lines, name, &new_lines)?;
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    if !appended.is_empty() {
        text = append_resources(&text, &appended);
    }
    Ok((text, outcome))
}

/// A field of the record itself (`$.Email`, `$.properties.email`), not an envelope key, a
/// save result or a nested object, so the CRM's field list can say it is gone.
fn is_field_of_record(dialect: Dialect, path: &str) -> bool {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match dialect {
        Dialect::Salesforce => path
            .strip_prefix("$.")
            .is_some_and(|r| ident(r) && r.starts_with(|c: char| c.is_ascii_uppercase())),
        Dialect::HubSpot => path.strip_prefix("$.properties.").is_some_and(ident),
        Dialect::Dynamics | Dialect::Generic => path.strip_prefix("$.").is_some_and(ident),
    }
}

/// Inserts `new_lines` at the end of resource `name`'s `fields:` (adding `fields:` when the
/// resource has none).
fn insert_fields(lines: &mut Vec<String>, name: &str, new_lines: &str) -> Result<(), String> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let head = lines
        .iter()
        .position(|l| {
            indent(l) == 2
                && l.trim_start()
                    .strip_prefix(name)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .ok_or_else(|| format!("resource `{name}` not found as a two-space indented key"))?;
    let end = lines[head + 1..]
        .iter()
        .position(|l| content(l) && indent(l) <= 2)
        .map_or(lines.len(), |p| head + 1 + p);
    let fields_at = (head + 1..end).find(|&i| lines[i].trim_end() == "    fields:");
    let block: Vec<String> = new_lines.lines().map(str::to_string).collect();
    let last_content = |from: usize, to: usize, min_indent: usize| {
        (from..to)
            .rev()
            .find(|&i| content(&lines[i]) && indent(&lines[i]) >= min_indent)
    };
    match fields_at {
        Some(at) => {
            // the fields block ends at the next key of indent 4 (or the resource's end)
            let block_end = (at + 1..end)
                .find(|&i| content(&lines[i]) && indent(&lines[i]) <= 4)
                .unwrap_or(end);
            let insert = last_content(at + 1, block_end, 6).map_or(at + 1, |i| i + 1);
            lines.splice(insert..insert, block);
        }
        None => {
            let insert = last_content(head + 1, end, 4).map_or(head + 1, |i| i + 1);
            let mut with_head = vec!["    fields:".to_string()];
            with_head.extend(block);
            lines.splice(insert..insert, with_head);
        }
    }
    Ok(())
}

/// Appends resource blocks at the end of `resources:` (before any later top-level key).
fn append_resources(text: &str, blocks: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim_end() == "resources:");
    let end = start
        .and_then(|s| {
            lines[s + 1..]
                .iter()
                .position(|l| !l.trim().is_empty() && !l.starts_with(' ') && !l.starts_with('#'))
                .map(|p| s + 1 + p)
        })
        .unwrap_or(lines.len());
    let mut out: Vec<String> = lines[..end].iter().map(|l| (*l).to_string()).collect();
    out.push("  # New objects found by `zweck inventory discover`: review every line.".into());
    out.extend(blocks.trim_start_matches('\n').lines().map(str::to_string));
    out.extend(lines[end..].iter().map(|l| (*l).to_string()));
    let mut s = out.join("\n");
    s.push('\n');
    s
}
