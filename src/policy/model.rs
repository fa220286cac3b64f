//! Raw policy files as written: YAML deserialised into `Raw*` types that reject unknown keys.
//!
//! Nothing here is interpreted. `compile` turns these into the immutable `PolicySet` and
//! reports every problem at once; values that need a semantic check later carry their
//! source position (`Spanned`) so those diagnostics can point at `file:line:column` too.
//! Maps keep their YAML order (`OrderedMap`), because order matters for record selectors
//! and makes diagnostics come out in file order.

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
pub use serde_saphyr::Spanned;

/// A YAML mapping kept in source order, keys possibly `Spanned`.
#[derive(Debug, Clone)]
pub struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<K, V> OrderedMap<K, V> {
    /// The entries in source order.
    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.0.iter()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> OrderedMap<SpStr, V> {
    /// Keys written a second time, each with the first one: YAML forbids them, and the
    /// loader reports them itself (with both positions) instead of stopping at the first.
    pub fn duplicates(&self) -> Vec<(&SpStr, &SpStr)> {
        let mut seen: std::collections::HashMap<&str, &SpStr> = std::collections::HashMap::new();
        let mut out = Vec::new();
        for (k, _) in &self.0 {
            match seen.get(k.value.as_str()) {
                Some(first) => out.push((*first, k)),
                None => {
                    seen.insert(k.value.as_str(), k);
                }
            }
        }
        out
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for MapVisitor<K, V> {
            type Value = OrderedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        // `any`, so an empty `fields:` (null) reads as an empty map.
        deserializer.deserialize_any(MapVisitor(PhantomData))
    }
}

/// A string with its position in the file.
pub type SpStr = Spanned<String>;

/// `policies/inventory/<dialect>.yaml`: what exists in one CRM dialect and what it holds.
#[derive(Debug, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Zweck inventory (policies/inventory/<dialect>.yaml)")]
pub struct RawInventory {
    /// `salesforce`, `hubspot`, `dynamics` or `generic`.
    #[schemars(schema_with = "super::schema::dialect")]
    pub dialect: SpStr,
    /// Routes that carry no personal data and stream through untouched.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::route_patterns")]
    pub ungoverned: Vec<SpStr>,
    /// Resources by name (the name is also the record type matched by `type_key`).
    #[serde(default)]
    pub resources: OrderedMap<SpStr, RawResource>,
}

/// One CRM object type (Contact, contacts, contact, ...).
#[derive(Debug, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    /// Further record type names that select this resource through `type_key`.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::strings")]
    pub types: Vec<SpStr>,
    /// Routes that operate on this resource.
    #[serde(default)]
    #[schemars(with = "Vec<RawOperation>")]
    pub operations: Vec<Spanned<RawOperation>>,
    /// Ordered record selectors (JSONPath over the body); the first that matches wins.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::json_paths")]
    pub records: Vec<SpStr>,
    /// Per-record type key (JSONPath relative to the record).
    #[serde(default)]
    #[schemars(schema_with = "super::schema::opt_json_path")]
    pub type_key: Option<SpStr>,
    /// Keys around the records that clients need: JSONPath over the body -> category.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::field_map")]
    pub envelope: OrderedMap<SpStr, SpStr>,
    /// JSONPath relative to the record -> category.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::field_map")]
    pub fields: OrderedMap<SpStr, SpStr>,
    /// JSONPath relative to the record -> resource of the nested records.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::child_map")]
    pub children: OrderedMap<SpStr, SpStr>,
    /// Consent signals carried by the record.
    #[serde(default)]
    #[schemars(with = "OrderedMap<String, RawConsent>")]
    pub consent: OrderedMap<SpStr, Spanned<RawConsent>>,
    /// `keep` keeps fields the inventory does not classify (warned about by `policy check`).
    #[serde(default)]
    #[schemars(schema_with = "super::schema::unclassified")]
    pub unclassified: Option<SpStr>,
    /// Envelope keys that hold the CRM's count of the records a query matched
    /// (`$.totalSize`, `$.total`, `$['@odata.count']`): a purpose's `counts` decides them.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::json_paths")]
    pub counts: Vec<SpStr>,
}

/// `{ method, path, op, class }`.
#[derive(Debug, Clone, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    pub method: String,
    pub path: String,
    #[schemars(schema_with = "super::schema::op_kind")]
    pub op: String,
    #[serde(default)]
    #[schemars(schema_with = "super::schema::route_class")]
    pub class: Option<String>,
    /// `odata_batch`, `sf_composite`, `sf_composite_batch`, `sf_tree` or `sf_graph`: a batch
    /// tunnel.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::tunnel")]
    pub tunnel: Option<String>,
    /// `json` (default) or `csv`: the media type of the operation's governed response body.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::body_format")]
    pub format: Option<String>,
    /// For `format: csv`: the resources whose records the CSV rows may be, in order.
    #[serde(default)]
    pub objects: Option<Vec<String>>,
    /// `remove` (default) or `null`: what becomes of a record withheld from the purpose in
    /// a list. `null` keeps the list lined up with the request (sObject Collections
    /// retrieve answers one item per id asked for).
    #[serde(default)]
    #[schemars(schema_with = "super::schema::withheld")]
    pub withheld: Option<String>,
}

/// `{ field, granted_when, separator? }`.
#[derive(Debug, Clone, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConsent {
    #[schemars(schema_with = "super::schema::json_path")]
    pub field: String,
    #[schemars(schema_with = "super::schema::granted_when")]
    pub granted_when: serde_json::Value,
    #[serde(default)]
    pub separator: Option<String>,
}

/// `policies/purposes.yaml`: per purpose, the legal basis and what it may see.
#[derive(Debug, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Zweck purposes (policies/purposes.yaml)")]
pub struct RawPurposes {
    pub controller: RawController,
    /// Your own fideslang data uses, beside the standard ones (`src/policy/data_uses.txt`).
    #[serde(default)]
    #[schemars(schema_with = "super::schema::strings")]
    pub data_uses: Vec<SpStr>,
    /// Named groups of categories: a purpose's rule for a group's name applies to each.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::groups")]
    pub groups: OrderedMap<SpStr, Vec<SpStr>>,
    #[serde(default)]
    pub purposes: OrderedMap<SpStr, RawPurpose>,
}

/// The controller named in the transfer log and the record of processing.
#[derive(Debug, Clone, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawController {
    pub name: String,
    pub jurisdiction: String,
    #[serde(default)]
    pub contact: Option<String>,
}

/// One purpose.
#[derive(Debug, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPurpose {
    #[serde(default)]
    pub description: Option<String>,
    #[schemars(schema_with = "super::schema::data_use")]
    pub data_use: SpStr,
    #[schemars(schema_with = "super::schema::legal_basis")]
    pub legal_basis: SpStr,
    #[serde(default)]
    #[schemars(schema_with = "super::schema::signals")]
    pub requires_consent: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    #[schemars(schema_with = "super::schema::rules")]
    pub fields: OrderedMap<SpStr, Spanned<serde_json::Value>>,
    #[serde(default)]
    #[schemars(schema_with = "super::schema::otherwise")]
    pub otherwise: Option<SpStr>,
    #[serde(default)]
    #[schemars(schema_with = "super::schema::writes")]
    pub writes: Option<SpStr>,
    #[serde(default)]
    /// Resources whose writes this purpose minimises silently instead of refusing a write
    /// that would lose fields.
    #[schemars(with = "Option<Vec<String>>")]
    pub silent_write_minimisation: Option<Spanned<Vec<SpStr>>>,
    #[serde(default)]
    #[schemars(with = "Option<RawBudget>")]
    pub export_budget: Option<Spanned<RawBudget>>,
    #[serde(default)]
    #[schemars(schema_with = "super::schema::mode")]
    pub mode: Option<SpStr>,
    /// `pass`, `delivered` or `drop`: what the CRM's record counts in a list say.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::counts")]
    pub counts: Option<SpStr>,
    /// The GDPR Art. 9(2) condition under which the purpose may see special categories.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::art9_condition")]
    pub art9_condition: Option<SpStr>,
    /// The official authority or law (GDPR Art. 10) under which the purpose may see
    /// criminal-conviction data.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub art10_basis: Option<SpStr>,
    /// `alert`, `throttle` or `block`: what Zweck does when it detects an incident for this
    /// purpose (docs/detection.md).
    #[serde(default)]
    #[schemars(schema_with = "super::schema::on_anomaly")]
    pub on_anomaly: Option<SpStr>,
}

/// A field action as written: a name, or a one-key mapping with the action's argument. The
/// loader reads every action through this type (and explains, in its own words, a value that
/// does not fit it), so the JSON Schema generated from it accepts exactly what loads.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawAction {
    Name(ActionName),
    Redact(RedactArg),
    Mask(MaskArg),
    Truncate(TruncateArg),
    Generalise(GeneraliseArg),
}

/// The actions written by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    Keep,
    Drop,
    /// `null` instead of the value.
    Redact,
    /// Every character but the domain of an e-mail address.
    Mask,
    #[serde(alias = "pseudonymize")]
    Pseudonymise,
    Block,
}

/// `{ redact: null }` or `{ redact: "fixed text" }`.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactArg {
    pub redact: RedactWith,
}

/// What a redacted value becomes.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(untagged)]
pub enum RedactWith {
    Null(()),
    Text(String),
}

/// `{ mask: { keep_last: N } }` or `{ mask: N }`.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskArg {
    pub mask: MaskKeep,
}

/// How many trailing characters a mask keeps.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(untagged)]
pub enum MaskKeep {
    KeepLast(KeepLast),
    Count(u32),
}

/// `{ keep_last: N }`.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepLast {
    pub keep_last: u32,
}

/// `{ truncate: N }`: at most N characters.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TruncateArg {
    pub truncate: u32,
}

/// `{ generalise: ... }`.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneraliseArg {
    #[serde(alias = "generalize")]
    pub generalise: GeneraliseTo,
}

/// What a value is generalised to.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(untagged)]
pub enum GeneraliseTo {
    /// A date to its `year` or `month`.
    Date(DatePart),
    /// A number to a range of this width: `{ range: 10 }`.
    Range(RangeWidth),
    /// A string through a lookup table under the policy directory: `{ map: maps/x.csv }`.
    Map(MapFile),
    /// A postal code to its first N letters and digits: `{ postal_prefix: 2 }`.
    PostalPrefix(PostalPrefix),
}

/// `year` or `month`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    Year,
    Month,
}

/// `{ range: N }`, N at least 1.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeWidth {
    pub range: std::num::NonZeroU64,
}

/// `{ map: FILE }`, FILE relative to the policy directory.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapFile {
    pub map: String,
}

/// `{ postal_prefix: N }`, N at least 1.
#[derive(Debug, Clone, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostalPrefix {
    pub postal_prefix: std::num::NonZeroU8,
}

/// `{ records, per, burst?, per_class? }`.
#[derive(Debug, Clone, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub records: u64,
    #[serde(default)]
    #[schemars(schema_with = "super::schema::period")]
    pub per: Option<String>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub per_class: OrderedMap<String, RawBudget>,
}

/// `policies/tests/*.yaml`: table tests run through the real engine.
#[derive(Debug, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Zweck table tests (policies/tests/*.yaml)")]
pub struct RawTestFile {
    #[serde(default)]
    pub pseudonym_key: Option<String>,
    #[schemars(with = "Vec<RawTestCase>")]
    pub tests: Vec<Spanned<TestSlot>>,
}

/// One entry of `tests:`, read on its own: a case with an unknown key or an unknown decision
/// fails as that case (at its line), and the file's other cases still run.
#[derive(Debug, Clone)]
pub struct TestSlot(pub Result<RawTestCase, String>);

impl<'de> Deserialize<'de> for TestSlot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(TestSlot(
            serde_json::from_value::<RawTestCase>(value).map_err(|e| e.to_string()),
        ))
    }
}

/// One table test.
#[derive(Debug, Clone, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTestCase {
    pub name: String,
    pub dialect: String,
    pub method: String,
    pub path: String,
    pub purpose: String,
    /// `request` or `response`; default: `request` for write/delete, `response` for read.
    #[serde(default)]
    pub direction: Option<RawDirection>,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// CSV cases: what the proxy knows of the Bulk job (`object`, `columnDelimiter`).
    #[serde(default)]
    pub job: Option<RawCsvJob>,
    pub expect: RawExpect,
}

/// `{ object?, columnDelimiter? }` of a CSV table test.
#[derive(Debug, Clone, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCsvJob {
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default, rename = "columnDelimiter")]
    pub column_delimiter: Option<String>,
}

/// Which body of the exchange a table test's `body` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawDirection {
    Request,
    Response,
}

/// The decision a table test expects: the names `zweck policy explain` prints. A name that
/// is not one of these is an error, not a case that can never pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveDeserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedDecision {
    /// Nothing changed.
    Allowed,
    Minimised,
    Blocked,
    WriteDenied,
    WriteActionNotAllowed,
    /// A write that would lose fields (minimisation), refused naming them.
    WriteFieldsDropped,
    Withheld,
    PseudonymKeyMissing,
    Ungoverned,
    /// An `op: metadata` route: the answer passes unchanged.
    Metadata,
    /// Refused as an unknown resource.
    Unknown,
    /// CSV cases: malformed CSV or an unreadable delimiter.
    NotInspectable,
    QueryNotAllowed,
    QueryNotCheckable,
    /// An aggregate over records the purpose does not see.
    AggregateNotAllowed,
    /// Consent fields the query must read and Zweck cannot add.
    ConsentFieldMissing,
}

impl ExpectedDecision {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedDecision::Allowed => "allowed",
            ExpectedDecision::Minimised => "minimised",
            ExpectedDecision::Blocked => "blocked",
            ExpectedDecision::WriteDenied => "write_denied",
            ExpectedDecision::WriteActionNotAllowed => "write_action_not_allowed",
            ExpectedDecision::WriteFieldsDropped => "write_fields_dropped",
            ExpectedDecision::Withheld => "withheld",
            ExpectedDecision::PseudonymKeyMissing => "pseudonym_key_missing",
            ExpectedDecision::Ungoverned => "ungoverned",
            ExpectedDecision::Metadata => "metadata",
            ExpectedDecision::Unknown => "unknown",
            ExpectedDecision::NotInspectable => "not_inspectable",
            ExpectedDecision::QueryNotAllowed => "query_not_allowed",
            ExpectedDecision::QueryNotCheckable => "query_not_checkable",
            ExpectedDecision::AggregateNotAllowed => "aggregate_not_allowed",
            ExpectedDecision::ConsentFieldMissing => "consent_field_missing",
        }
    }
}

/// An action name a table test counts (`actions:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, DeriveDeserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountedAction {
    Keep,
    Drop,
    Redact,
    Mask,
    Pseudonymise,
    Generalise,
    Truncate,
    Block,
    RecordRemoved,
}

impl CountedAction {
    /// The name in outcomes.
    pub fn as_str(self) -> &'static str {
        match self {
            CountedAction::Keep => "keep",
            CountedAction::Drop => "drop",
            CountedAction::Redact => "redact",
            CountedAction::Mask => "mask",
            CountedAction::Pseudonymise => "pseudonymise",
            CountedAction::Generalise => "generalise",
            CountedAction::Truncate => "truncate",
            CountedAction::Block => "block",
            CountedAction::RecordRemoved => "record_removed",
        }
    }
}

/// What a table test expects.
#[derive(Debug, Clone, DeriveDeserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    #[serde(default)]
    pub decision: Option<ExpectedDecision>,
    /// The path and query as the proxy forwards them (query minimisation may add consent
    /// fields to the query).
    #[serde(default)]
    pub forwarded: Option<String>,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub records: Option<u64>,
    #[serde(default)]
    pub actions: Option<std::collections::BTreeMap<CountedAction, u64>>,
    #[serde(default)]
    pub categories_delivered: Option<Vec<String>>,
    #[serde(default)]
    pub field_paths: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanned_keys_and_order() {
        let yaml = "dialect: salesforce\nresources:\n  Contact:\n    fields:\n      $.Id: system\n      $.Email: user.contact.email\n";
        let inv: RawInventory = serde_saphyr::from_str(yaml).expect("parse");
        let (name, res) = &inv.resources.0[0];
        assert_eq!(name.value, "Contact");
        assert_eq!(name.referenced.line(), 3);
        let (k, v) = &res.fields.0[1];
        assert_eq!(k.value, "$.Email");
        assert_eq!(k.referenced.line(), 6);
        assert_eq!(k.referenced.column(), 7);
        assert_eq!(v.value, "user.contact.email");
    }

    #[test]
    fn unknown_keys_are_refused_with_position() {
        let yaml = "dialect: salesforce\nresourcez: {}\n";
        let err = serde_saphyr::from_str::<RawInventory>(yaml).expect_err("unknown key");
        let loc = err.location().expect("location");
        assert_eq!(loc.line(), 2);
    }

    #[test]
    fn json_values_in_yaml() {
        let yaml = "controller: {name: X, jurisdiction: DE}\npurposes:\n  p:\n    data_use: a\n    legal_basis: consent\n    fields:\n      user.name: keep\n      user.contact: { mask: { keep_last: 4 } }\n";
        let p: RawPurposes = serde_saphyr::from_str(yaml).expect("parse");
        let (_, purpose) = &p.purposes.0[0];
        assert_eq!(
            purpose.fields.0[1].1.value,
            serde_json::json!({"mask": {"keep_last": 4}})
        );
        assert_eq!(purpose.fields.0[1].1.referenced.line(), 8);
    }
}
