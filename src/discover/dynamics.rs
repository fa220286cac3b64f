//! Dataverse: the tables (`EntityDefinitions`, custom ones by `IsCustomEntity`) and each
//! table's attributes with `AttributeType`, `FormatName` and `IsCustomAttribute`
//! (CRM-APIS.md §8.3). Dataverse has no classification of its own: types and names are the
//! evidence.

use serde_json::Value;

use super::{wanted, DiscoverError, DiscoveredField, DiscoveredObject, FieldType, MetadataClient};

const ROOT: &str = "/api/data/v9.2";

/// The standard tables discovery reads unless `--objects` names others.
const STANDARD: &[&str] = &["contact", "account"];

pub(super) async fn read(
    client: &MetadataClient,
    only: Option<&[String]>,
) -> Result<Vec<DiscoveredObject>, DiscoverError> {
    let path = format!("{ROOT}/EntityDefinitions");
    let list = client
        .get(
            &path,
            Some("$select=LogicalName,EntitySetName,IsCustomEntity,DisplayName"),
        )
        .await?;
    let mut out = Vec::new();
    for e in list
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| client.shape(&path, "no value list"))?
    {
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (name, set) = (text("LogicalName"), text("EntitySetName"));
        let custom = e
            .get("IsCustomEntity")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let chosen = match only {
            Some(w) => wanted(Some(w), &name),
            None => custom || STANDARD.contains(&name.as_str()),
        };
        if name.is_empty() || set.is_empty() || !chosen {
            continue;
        }
        let apath = format!("{ROOT}/EntityDefinitions(LogicalName='{name}')/Attributes");
        let attrs = client.get(&apath, None).await?;
        let fields = attrs
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| client.shape(&apath, "no value list"))?
            .iter()
            .filter_map(attribute)
            .collect();
        let label = e
            .pointer("/DisplayName/UserLocalizedLabel/Label")
            .and_then(Value::as_str)
            .unwrap_or(&name)
            .to_string();
        out.push(DiscoveredObject {
            label,
            custom,
            route_names: vec![set.clone()],
            types: vec![set],
            name,
            fields,
            relations: Vec::new(),
        });
    }
    Ok(out)
}

fn attribute(a: &Value) -> Option<DiscoveredField> {
    let name = a.get("LogicalName").and_then(Value::as_str)?.to_string();
    let kind = a
        .get("AttributeType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let format = a
        .pointer("/FormatName/Value")
        .and_then(Value::as_str)
        .unwrap_or("");
    let field_type = match (kind.as_str(), format) {
        ("Uniqueidentifier", _) => FieldType::Id,
        ("Lookup" | "Customer" | "Owner", _) => FieldType::Reference,
        ("String", "Email") => FieldType::Email,
        ("String", "Phone") => FieldType::Phone,
        ("String", "Url") => FieldType::Url,
        ("String", "TextArea") | ("Memo", _) => FieldType::TextArea,
        ("String", _) => FieldType::Text,
        ("DateTime", _) => {
            if a.get("Format").and_then(Value::as_str) == Some("DateOnly") {
                FieldType::Date
            } else {
                FieldType::DateTime
            }
        }
        ("Boolean", _) => FieldType::Bool,
        ("Picklist" | "State" | "Status" | "Virtual", _) => FieldType::Picklist,
        ("Integer" | "Decimal" | "Double" | "BigInt", _) => FieldType::Number,
        ("Money", _) => FieldType::Currency,
        _ => FieldType::Other,
    };
    // a lookup is `_name_value` on the wire
    let path = if field_type == FieldType::Reference {
        format!("$._{name}_value")
    } else {
        format!("$.{name}")
    };
    let wire_type = if format.is_empty() {
        kind
    } else {
        format!("{kind}/{format}")
    };
    Some(DiscoveredField {
        path,
        label: a
            .pointer("/DisplayName/UserLocalizedLabel/Label")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        field_type,
        wire_type,
        custom: a
            .get("IsCustomAttribute")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        name,
        compliance: Vec::new(),
        security: None,
        sensitivity: None,
        sensitive_categories: Vec::new(),
    })
}
