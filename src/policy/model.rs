//! Raw policy files as written: YAML deserialised into `Raw*` types that reject unknown keys.
//!
//! Nothing here is interpreted. `compile` turns these into the immutable `PolicySet` and
//! reports every problem at once; values that need a semantic check later carry their
//! source position (`Spanned`) so those diagnostics can point at `file:line:column` too.
//! Maps keep their YAML order (`OrderedMap`), because order matters for record selectors
//! and makes diagnostics come out in file order.

use std::fmt;
use std::marker::PhantomData;

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
#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    /// `salesforce`, `hubspot`, `dynamics` or `generic`.
    pub dialect: SpStr,
    /// Routes that carry no personal data and stream through untouched.
    #[serde(default)]
    pub ungoverned: Vec<SpStr>,
    /// Resources by name (the name is also the record type matched by `type_key`).
    #[serde(default)]
    pub resources: OrderedMap<SpStr, RawResource>,
}

/// One CRM object type (Contact, contacts, contact, ...).
#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    /// Further record type names that select this resource through `type_key`.
    #[serde(default)]
    pub types: Vec<SpStr>,
    /// Routes that operate on this resource.
    #[serde(default)]
    pub operations: Vec<Spanned<RawOperation>>,
    /// Ordered record selectors (JSONPath over the body); the first that matches wins.
    #[serde(default)]
    pub records: Vec<SpStr>,
    /// Per-record type key (JSONPath relative to the record).
    #[serde(default)]
    pub type_key: Option<SpStr>,
    /// Keys around the records that clients need: JSONPath over the body -> category.
    #[serde(default)]
    pub envelope: OrderedMap<SpStr, SpStr>,
    /// JSONPath relative to the record -> category.
    #[serde(default)]
    pub fields: OrderedMap<SpStr, SpStr>,
    /// JSONPath relative to the record -> resource of the nested records.
    #[serde(default)]
    pub children: OrderedMap<SpStr, SpStr>,
    /// Consent signals carried by the record.
    #[serde(default)]
    pub consent: OrderedMap<SpStr, Spanned<RawConsent>>,
    /// `keep` keeps fields the inventory does not classify (warned about by `policy check`).
    #[serde(default)]
    pub unclassified: Option<SpStr>,
    /// Envelope keys that hold the CRM's count of the records a query matched
    /// (`$.totalSize`, `$.total`, `$['@odata.count']`): a purpose's `counts` decides them.
    #[serde(default)]
    pub counts: Vec<SpStr>,
}

/// `{ method, path, op, class }`.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    pub method: String,
    pub path: String,
    pub op: String,
    #[serde(default)]
    pub class: Option<String>,
    /// `odata_batch`, `sf_composite`, `sf_composite_batch`, `sf_tree` or `sf_graph`: a batch
    /// tunnel.
    #[serde(default)]
    pub tunnel: Option<String>,
    /// `json` (default) or `csv`: the media type of the operation's governed response body.
    #[serde(default)]
    pub format: Option<String>,
    /// For `format: csv`: the resources whose records the CSV rows may be, in order.
    #[serde(default)]
    pub objects: Option<Vec<String>>,
    /// `remove` (default) or `null`: what becomes of a record withheld from the purpose in
    /// a list. `null` keeps the list lined up with the request (sObject Collections
    /// retrieve answers one item per id asked for).
    #[serde(default)]
    pub withheld: Option<String>,
}

/// `{ field, granted_when, separator? }`.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsent {
    pub field: String,
    pub granted_when: serde_json::Value,
    #[serde(default)]
    pub separator: Option<String>,
}

/// `policies/purposes.yaml`.
#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurposes {
    pub controller: RawController,
    #[serde(default)]
    pub purposes: OrderedMap<SpStr, RawPurpose>,
}

/// The controller named in the transfer log and the record of processing.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawController {
    pub name: String,
    pub jurisdiction: String,
    #[serde(default)]
    pub contact: Option<String>,
}

/// One purpose.
#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurpose {
    #[serde(default)]
    pub description: Option<String>,
    pub data_use: SpStr,
    pub legal_basis: SpStr,
    #[serde(default)]
    pub requires_consent: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    pub fields: OrderedMap<SpStr, Spanned<serde_json::Value>>,
    #[serde(default)]
    pub otherwise: Option<SpStr>,
    #[serde(default)]
    pub writes: Option<SpStr>,
    #[serde(default)]
    pub silent_write_minimisation: Option<Spanned<Vec<SpStr>>>,
    #[serde(default)]
    pub export_budget: Option<Spanned<RawBudget>>,
    #[serde(default)]
    pub mode: Option<SpStr>,
    /// `pass`, `delivered` or `drop`: what the CRM's record counts in a list say.
    #[serde(default)]
    pub counts: Option<SpStr>,
}

/// `{ records, per, burst?, per_class? }`.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub records: u64,
    #[serde(default)]
    pub per: Option<String>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub per_class: OrderedMap<String, RawBudget>,
}

/// `policies/tests/*.yaml`: table tests run through the real engine.
#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestFile {
    #[serde(default)]
    pub pseudonym_key: Option<String>,
    pub tests: Vec<Spanned<RawTestCase>>,
}

/// One table test.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestCase {
    pub name: String,
    pub dialect: String,
    pub method: String,
    pub path: String,
    pub purpose: String,
    /// `request` or `response`; default: `request` for write/delete, `response` for read.
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// CSV cases: what the proxy knows of the Bulk job (`object`, `columnDelimiter`).
    #[serde(default)]
    pub job: Option<RawCsvJob>,
    pub expect: RawExpect,
}

/// `{ object?, columnDelimiter? }` of a CSV table test.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsvJob {
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default, rename = "columnDelimiter")]
    pub column_delimiter: Option<String>,
}

/// What a table test expects.
#[derive(Debug, Clone, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// `allowed` (body unchanged), `minimised`, `blocked`, `write_denied`,
    /// `write_action_not_allowed`, `write_fields_dropped`, `no_consent`, `ungoverned`,
    /// `unknown`, `query_not_allowed`, `query_not_checkable`, `aggregate_not_allowed`,
    /// `consent_field_missing`.
    #[serde(default)]
    pub decision: Option<String>,
    /// The path and query as the proxy forwards them (query minimisation may add consent
    /// fields to the query).
    #[serde(default)]
    pub forwarded: Option<String>,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub records: Option<u64>,
    #[serde(default)]
    pub actions: Option<std::collections::BTreeMap<String, u64>>,
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
