//! JSON Schemas of the policy files (inventories, purposes, table tests), generated from the
//! raw types the loader reads them with (`model.rs`), so editors complete and validate what
//! Zweck loads. `zweck policy schema --out policies/schema/` writes them; a test fails when
//! the committed files differ from what the types generate.
//!
//! The raw types keep source positions (`Spanned`), which a schema does not describe; their
//! fields name the value grammar instead, with the functions here. Those grammars come from
//! the compiled types' own name lists (categories from the taxonomy, data uses, legal bases,
//! Art. 9(2) conditions, route classes, tunnel kinds), never from a second, hand-kept list.
//! A schema cannot check everything `policy check` does (which resource a child names, rule
//! conflicts): it is an editor's first line, the loader stays the judge.

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Value};

use super::model::{OrderedMap, RawAction, RawInventory, RawPurposes, RawTestFile};
use super::set::{Art9Condition, BodyFormat, Counts, LegalBasis, OpKind, RouteClass, TunnelKind};
use super::taxonomy::{self, Taxonomy, UNCLASSIFIED};
use crate::dialect::Dialect;

/// The schema files: (file name, schema).
pub fn generate() -> Vec<(&'static str, Value)> {
    let settings = SchemaSettings::draft07();
    let gen = |f: fn(SchemaGenerator) -> Schema| f(settings.clone().into_generator()).to_value();
    vec![
        (
            "inventory.schema.json",
            gen(schemars::SchemaGenerator::into_root_schema_for::<RawInventory>),
        ),
        (
            "purposes.schema.json",
            gen(schemars::SchemaGenerator::into_root_schema_for::<RawPurposes>),
        ),
        (
            "tests.schema.json",
            gen(schemars::SchemaGenerator::into_root_schema_for::<RawTestFile>),
        ),
    ]
}

/// The text of a schema file as written (pretty, with a final newline).
pub fn render(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

impl<K, V: JsonSchema> JsonSchema for OrderedMap<K, V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let v = generator.subschema_for::<V>();
        json_schema!({ "type": ["object", "null"], "additionalProperties": v })
    }
}

fn names(list: impl IntoIterator<Item = &'static str>) -> Vec<Value> {
    list.into_iter().map(|n| json!(n)).collect()
}

fn one_of_names(list: impl IntoIterator<Item = &'static str>) -> Schema {
    json_schema!({ "type": "string", "enum": names(list) })
}

/// A data category of the taxonomy (fideslang names and Zweck's own).
pub fn category(_: &mut SchemaGenerator) -> Schema {
    one_of_names(Taxonomy::builtin().names().collect::<Vec<_>>())
}

/// `salesforce`, `hubspot`, `dynamics`, `generic`.
pub fn dialect(_: &mut SchemaGenerator) -> Schema {
    one_of_names(
        [
            Dialect::Salesforce,
            Dialect::HubSpot,
            Dialect::Dynamics,
            Dialect::Generic,
        ]
        .map(Dialect::as_str),
    )
}

/// A JSONPath (RFC 9535): starts with `$`.
pub fn json_path(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": "^\\$" })
}

/// A list of JSONPaths.
pub fn json_paths(g: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["array", "null"], "items": json_path(g) })
}

/// An optional JSONPath.
pub fn opt_json_path(g: &mut SchemaGenerator) -> Schema {
    json_schema!({ "anyOf": [json_path(g), { "type": "null" }] })
}

/// A list of strings.
pub fn strings(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["array", "null"], "items": { "type": "string" } })
}

/// A route pattern: `METHOD /path/with/*`.
pub fn route_patterns(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["array", "null"], "items": { "type": "string", "pattern": "^[A-Z*]+ /" } })
}

/// JSONPath -> category.
pub fn field_map(g: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["object", "null"],
        "propertyNames": { "pattern": "^\\$" },
        "additionalProperties": category(g)
    })
}

/// JSONPath -> resource name.
pub fn child_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["object", "null"],
        "propertyNames": { "pattern": "^\\$" },
        "additionalProperties": { "type": "string" }
    })
}

/// `read`, `write`, `delete`, `metadata`.
pub fn op_kind(_: &mut SchemaGenerator) -> Schema {
    one_of_names(
        [
            OpKind::Read,
            OpKind::Write,
            OpKind::Delete,
            OpKind::Metadata,
        ]
        .map(OpKind::as_str),
    )
}

/// `remove` or `null`: what becomes of a withheld record in a list.
pub fn withheld(_: &mut SchemaGenerator) -> Schema {
    one_of_names(["remove", "null"])
}

/// `single`, `list`, `bulk_export`.
pub fn route_class(_: &mut SchemaGenerator) -> Schema {
    one_of_names(
        [RouteClass::Single, RouteClass::List, RouteClass::BulkExport].map(RouteClass::as_str),
    )
}

/// The batch tunnels.
pub fn tunnel(_: &mut SchemaGenerator) -> Schema {
    one_of_names(
        [
            TunnelKind::OdataBatch,
            TunnelKind::SfComposite,
            TunnelKind::SfCompositeBatch,
            TunnelKind::SfTree,
            TunnelKind::SfGraph,
        ]
        .map(TunnelKind::as_str),
    )
}

/// `json` or `csv`.
pub fn body_format(_: &mut SchemaGenerator) -> Schema {
    one_of_names([BodyFormat::Json, BodyFormat::Csv].map(BodyFormat::as_str))
}

/// `keep` or `otherwise` (the default).
pub fn unclassified(_: &mut SchemaGenerator) -> Schema {
    one_of_names(["keep", "otherwise"])
}

/// What a consent field holds when consent is given: a scalar or a list of them.
pub fn granted_when(_: &mut SchemaGenerator) -> Schema {
    let scalar = json!({ "type": ["boolean", "string", "number"] });
    json_schema!({ "anyOf": [scalar, { "type": "array", "items": scalar, "minItems": 1 }] })
}

/// A fideslang data use, or one of the file's own `data_uses`.
pub fn data_use(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "anyOf": [
            { "enum": names(taxonomy::data_uses().collect::<Vec<_>>()) },
            { "pattern": "^[a-z0-9_]+(\\.[a-z0-9_]+)+$" }
        ]
    })
}

/// GDPR Art. 6(1) bases.
pub fn legal_basis(_: &mut SchemaGenerator) -> Schema {
    one_of_names(LegalBasis::NAMES)
}

/// A consent signal or a list of them.
pub fn signals(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "anyOf": [
        { "type": "string" },
        { "type": "array", "items": { "type": "string" }, "minItems": 1 }
    ] })
}

/// Category (or group) -> action. Every category and built-in group is listed, so editors
/// complete them; your own groups are further keys.
pub fn rules(g: &mut SchemaGenerator) -> Schema {
    let action = g.subschema_for::<RawAction>();
    let mut properties = serde_json::Map::new();
    let tax = Taxonomy::builtin();
    for name in tax
        .names()
        .filter(|n| *n != UNCLASSIFIED)
        .chain(taxonomy::GROUPS.iter().map(|g| g.name))
    {
        properties.insert(name.to_string(), action.clone().to_value());
    }
    json_schema!({
        "type": ["object", "null"],
        "properties": properties,
        "propertyNames": { "not": { "const": UNCLASSIFIED } },
        "additionalProperties": action
    })
}

/// Group name -> categories.
pub fn groups(g: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["object", "null"],
        "additionalProperties": { "type": "array", "items": category(g), "minItems": 1 }
    })
}

/// `drop`, `redact` or `block`: never keep.
pub fn otherwise(_: &mut SchemaGenerator) -> Schema {
    one_of_names(["drop", "redact", "block"])
}

/// `allow` or `deny`.
pub fn writes(_: &mut SchemaGenerator) -> Schema {
    one_of_names(["allow", "deny"])
}

/// `pass`, `delivered` or `drop`: what the CRM's record counts say.
pub fn counts(_: &mut SchemaGenerator) -> Schema {
    one_of_names([Counts::Pass, Counts::Delivered, Counts::Drop].map(Counts::as_str))
}

/// `alert`, `throttle` or `block`.
pub fn on_anomaly(_: &mut SchemaGenerator) -> Schema {
    one_of_names(["alert", "throttle", "block"])
}

/// `enforce` or `shadow`.
pub fn mode(_: &mut SchemaGenerator) -> Schema {
    one_of_names(["enforce", "shadow"])
}

/// GDPR Art. 9(2)(a)-(j) by name.
pub fn art9_condition(_: &mut SchemaGenerator) -> Schema {
    one_of_names(Art9Condition::NAMES)
}

/// A period: `30s`, `15m`, `1h`, `1d`.
pub fn period(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": "^[0-9]+ ?(ms|s|m|min|h|d)?$" })
}
