//! Salesforce: describeGlobal (`/sobjects`), one describe per object, and the org's data
//! classification from `FieldDefinition` (ComplianceGroup, SecurityClassification) through
//! the query endpoint (CRM-APIS.md §8.1). The API version is the newest the org lists.

use std::collections::HashMap;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

use super::{wanted, DiscoverError, DiscoveredField, DiscoveredObject, FieldType, MetadataClient};

/// Used when the version list cannot be read.
const FALLBACK_VERSION: &str = "v66.0";

/// Objects describeGlobal lists that hold no records of people or are not queryable rows:
/// discovery skips them unless asked for by name.
fn interesting(o: &Value) -> bool {
    let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
    flag("queryable") && flag("retrieveable") && !flag("customSetting")
}

pub(super) async fn read(
    client: &MetadataClient,
    only: Option<&[String]>,
) -> Result<(Vec<DiscoveredObject>, String), DiscoverError> {
    let ver = version(client).await;
    let base = format!("/services/data/{ver}");
    let global_path = format!("{base}/sobjects");
    let global = client.get(&global_path, None).await?;
    let list = global
        .get("sobjects")
        .and_then(Value::as_array)
        .ok_or_else(|| client.shape(&global_path, "no sobjects list"))?;
    let mut out = Vec::new();
    for o in list {
        let Some(name) = o.get("name").and_then(Value::as_str) else {
            continue;
        };
        let named = only.is_some_and(|w| wanted(Some(w), name));
        if !(named || (only.is_none() && interesting(o))) {
            continue;
        }
        let path = format!("{base}/sobjects/{name}/describe");
        let describe = client.get(&path, None).await?;
        let classes = classification(client, &base, name).await?;
        out.push(object(client, &path, &describe, &classes)?);
    }
    Ok((out, base))
}

/// The newest version the org serves (`GET /services/data/`).
async fn version(client: &MetadataClient) -> String {
    let Ok(Value::Array(list)) = client.get("/services/data/", None).await else {
        return FALLBACK_VERSION.to_string();
    };
    list.iter()
        .filter_map(|v| v.get("version").and_then(Value::as_str))
        .filter_map(|v| v.parse::<f64>().ok().map(|n| (n, v)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(|| FALLBACK_VERSION.to_string(), |(_, v)| format!("v{v}"))
}

/// Per field: (ComplianceGroup values, SecurityClassification).
type Classes = HashMap<String, (Vec<String>, Option<String>)>;

async fn classification(
    client: &MetadataClient,
    base: &str,
    object: &str,
) -> Result<Classes, DiscoverError> {
    let soql = format!(
        "SELECT QualifiedApiName, DataType, ComplianceGroup, SecurityClassification FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName = '{object}'"
    );
    let query = format!("q={}", utf8_percent_encode(&soql, NON_ALPHANUMERIC));
    let path = format!("{base}/query");
    let answer = match client.get(&path, Some(&query)).await {
        Ok(a) => a,
        // an org without data classification (or without the permission to read it): the
        // describe is still evidence; the report says the classification is missing
        Err(DiscoverError::Status { .. }) => return Ok(Classes::new()),
        Err(e) => return Err(e),
    };
    let mut out = Classes::new();
    for r in answer
        .get("records")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = r.get("QualifiedApiName").and_then(Value::as_str) else {
            continue;
        };
        let groups = r
            .get("ComplianceGroup")
            .and_then(Value::as_str)
            .map(|g| {
                g.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let security = r
            .get("SecurityClassification")
            .and_then(Value::as_str)
            .map(str::to_string);
        out.insert(name.to_string(), (groups, security));
    }
    Ok(out)
}

fn object(
    client: &MetadataClient,
    path: &str,
    d: &Value,
    classes: &Classes,
) -> Result<DiscoveredObject, DiscoverError> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let name = text(d, "name");
    if name.is_empty() {
        return Err(client.shape(path, "describe without a name"));
    }
    let fields = d
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| client.shape(path, "describe without fields"))?;
    let fields = fields
        .iter()
        .filter_map(|f| {
            let fname = f.get("name").and_then(Value::as_str)?.to_string();
            let wire = text(f, "type");
            let (compliance, security) = classes.get(&fname).cloned().unwrap_or_default();
            Some(DiscoveredField {
                path: format!("$.{fname}"),
                label: text(f, "label"),
                field_type: field_type(&wire),
                custom: f.get("custom").and_then(Value::as_bool).unwrap_or(false),
                name: fname,
                wire_type: wire,
                compliance,
                security,
                sensitivity: None,
                sensitive_categories: Vec::new(),
            })
        })
        .collect();
    // parents by their relationship name (`Account`), children as subquery results
    let mut relations: Vec<(String, String)> = d
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let rel = f.get("relationshipName").and_then(Value::as_str)?;
            let to = f.pointer("/referenceTo/0").and_then(Value::as_str)?;
            Some((format!("$.{rel}"), to.to_string()))
        })
        .collect();
    relations.extend(
        d.get("childRelationships")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let rel = c.get("relationshipName").and_then(Value::as_str)?;
                let child = c.get("childSObject").and_then(Value::as_str)?;
                Some((format!("$.{rel}.records[*]"), child.to_string()))
            }),
    );
    Ok(DiscoveredObject {
        relations,
        label: text(d, "label"),
        custom: d.get("custom").and_then(Value::as_bool).unwrap_or(false),
        route_names: vec![name.clone()],
        types: Vec::new(),
        name,
        fields,
    })
}

fn field_type(wire: &str) -> FieldType {
    match wire {
        "id" => FieldType::Id,
        "reference" => FieldType::Reference,
        "string" | "encryptedstring" | "combobox" => FieldType::Text,
        "textarea" => FieldType::TextArea,
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        "url" => FieldType::Url,
        "date" => FieldType::Date,
        "datetime" | "time" => FieldType::DateTime,
        "boolean" => FieldType::Bool,
        "picklist" | "multipicklist" => FieldType::Picklist,
        "int" | "double" | "percent" => FieldType::Number,
        "currency" => FieldType::Currency,
        "address" | "location" => FieldType::Address,
        _ => FieldType::Other,
    }
}
