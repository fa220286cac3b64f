//! Custom fields the double adds to contacts, per dialect, beside the standard ones.
//!
//! Real CRM orgs carry custom fields (`Allergies__c` on a Salesforce Contact, a HubSpot
//! contact property, a Dataverse column with a publisher prefix), and some hold GDPR Art. 9
//! special categories. Shipped inventories classify these, shipped purposes drop them, and
//! tests prove they never reach a purpose without an Art. 9(2) condition. The list is data,
//! not code in each dialect, so that describing the schema (field discovery) can list it too.

use serde_json::Value;

use super::data::Person;
use super::Dialect;

/// One custom field of a contact.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CustomField {
    pub dialect: Dialect,
    /// The API name as the dialect spells custom fields.
    pub name: &'static str,
    /// Its value for a generated person.
    pub value: fn(&Person) -> Value,
}

fn allergies(p: &Person) -> Value {
    p.allergies
        .map_or(Value::Null, |a| Value::String(a.to_string()))
}

/// The custom contact fields, per dialect.
pub(crate) const CONTACT_FIELDS: &[CustomField] = &[
    CustomField {
        dialect: Dialect::Salesforce,
        name: "Allergies__c",
        value: allergies,
    },
    CustomField {
        dialect: Dialect::HubSpot,
        name: "allergies",
        value: allergies,
    },
    CustomField {
        dialect: Dialect::Dynamics,
        name: "zweck_allergies",
        value: allergies,
    },
];

/// The custom contact fields of one dialect.
pub(crate) fn contact_fields(dialect: Dialect) -> impl Iterator<Item = &'static CustomField> {
    CONTACT_FIELDS.iter().filter(move |f| f.dialect == dialect)
}
