//! HubSpot: the standard CRM objects' properties (`/crm/v3/properties/{objectType}`, read
//! three times: the default list omits sensitive properties, so `dataSensitivity=sensitive`
//! and `highly_sensitive` are read too and merged) and the portal's custom objects
//! (`/crm/v3/schemas`), CRM-APIS.md §8.2.

use serde_json::Value;

use super::{wanted, DiscoverError, DiscoveredField, DiscoveredObject, FieldType, MetadataClient};

/// The standard objects discovery reads: (name, object type id, singular type names).
const STANDARD: &[(&str, &str, &[&str])] = &[
    ("contacts", "0-1", &["contact", "CONTACT"]),
    ("companies", "0-2", &["company", "COMPANY"]),
];

pub(super) async fn read(
    client: &MetadataClient,
    only: Option<&[String]>,
) -> Result<Vec<DiscoveredObject>, DiscoverError> {
    let mut out = Vec::new();
    for (name, id, types) in STANDARD {
        if !wanted(only, name) {
            continue;
        }
        let fields = properties(client, name).await?;
        out.push(DiscoveredObject {
            name: (*name).to_string(),
            label: (*name).to_string(),
            custom: false,
            route_names: vec![(*name).to_string(), (*id).to_string()],
            types: types.iter().map(|t| (*t).to_string()).collect(),
            fields,
            relations: Vec::new(),
        });
    }
    let path = "/crm/v3/schemas";
    let schemas = client.get(path, None).await?;
    for s in schemas
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| client.shape(path, "no results list"))?
    {
        let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (name, id, fqn) = (
            text("name"),
            text("objectTypeId"),
            text("fullyQualifiedName"),
        );
        if name.is_empty() || id.is_empty() || !wanted(only, &name) {
            continue;
        }
        // the schema's own list has no sensitive properties either: read them like a
        // standard object's
        let fields = properties(client, &id).await?;
        let label = s
            .pointer("/labels/singular")
            .and_then(Value::as_str)
            .unwrap_or(&name)
            .to_string();
        let mut routes = vec![id.clone(), format!("p_{name}")];
        if !fqn.is_empty() {
            routes.push(fqn.clone());
        }
        out.push(DiscoveredObject {
            types: vec![name.clone(), id.clone(), fqn],
            name,
            label,
            custom: true,
            route_names: routes,
            fields,
            relations: Vec::new(),
        });
    }
    Ok(out)
}

async fn properties(
    client: &MetadataClient,
    object: &str,
) -> Result<Vec<DiscoveredField>, DiscoverError> {
    let path = format!("/crm/v3/properties/{object}");
    let mut fields: Vec<DiscoveredField> = Vec::new();
    for query in [
        None,
        Some("dataSensitivity=sensitive"),
        Some("dataSensitivity=highly_sensitive"),
    ] {
        let answer = client.get(&path, query).await?;
        for p in answer
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| client.shape(&path, "no results list"))?
        {
            let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let name = text("name");
            if name.is_empty() || fields.iter().any(|f| f.name == name) {
                continue;
            }
            let sensitivity =
                Some(text("dataSensitivity")).filter(|s| !s.is_empty() && s != "non_sensitive");
            let categories = p
                .get("sensitiveDataCategories")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let (kind, field_type) = (text("type"), text("fieldType"));
            fields.push(DiscoveredField {
                path: format!("$.properties.{name}"),
                label: text("label"),
                field_type: classify_type(&name, &kind, &field_type),
                wire_type: format!("{kind}/{field_type}"),
                custom: !p
                    .get("hubspotDefined")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                name,
                compliance: Vec::new(),
                security: None,
                sensitivity,
                sensitive_categories: categories,
            });
        }
    }
    Ok(fields)
}

/// HubSpot has no e-mail type: the name decides that one (CRM-APIS.md §8.2).
fn classify_type(name: &str, kind: &str, field_type: &str) -> FieldType {
    match (kind, field_type) {
        _ if name == "hs_object_id" => FieldType::Id,
        (_, "phonenumber") => FieldType::Phone,
        ("string", "textarea") => FieldType::TextArea,
        ("string", _) if name.contains("email") => FieldType::Email,
        ("string", _) => FieldType::Text,
        ("number", _) => FieldType::Number,
        ("date", _) => FieldType::Date,
        ("datetime", _) => FieldType::DateTime,
        ("bool", _) | ("enumeration", "booleancheckbox") => FieldType::Bool,
        ("enumeration", _) => FieldType::Picklist,
        _ => FieldType::Other,
    }
}
