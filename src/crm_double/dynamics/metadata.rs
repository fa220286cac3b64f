//! Dataverse metadata: `EntityDefinitions` (tables and their `Attributes`, with `$select` and
//! `$expand=Attributes(...)`) and the CSDL document `$metadata`, rendered from `schema.rs`.
//!
//! Shapes follow "Query table definitions using the Web API" (CRM-APIS.md §8.3): every
//! attribute carries its `@odata.type` (`#Microsoft.Dynamics.CRM.StringAttributeMetadata`,
//! ...), `AttributeType`, `AttributeTypeName`, `DisplayName` with localized labels, and string
//! attributes their `FormatName` (`Email`, `Phone`, `Url`, `Text`, `TextArea`).

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::super::schema::{self, metadata_id, Field, Kind, Object};
use super::super::Dialect;
use super::{dv_error, ok, ROOT};
use crate::crm_double::reply::Reply;
use crate::crm_double::request::{comma_list, Req};

/// `GET EntityDefinitions...`: `rest` is the path after the service root.
pub(crate) fn entity_definitions(req: &Req, rest: &str) -> Reply {
    let rest = rest.strip_prefix("EntityDefinitions").unwrap_or_default();
    let base = format!("https://{}{ROOT}/$metadata#EntityDefinitions", req.host);
    if rest.is_empty() {
        let select = select(req.param("$select").as_deref());
        let expand = match expand(req) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let value: Vec<Value> = schema::objects(Dialect::Dynamics)
            .map(|o| entity(o, select.as_deref(), expand.as_ref()))
            .collect();
        return ok(
            StatusCode::OK,
            &json!({ "@odata.context": base, "value": value }),
        );
    }
    let Some((key, tail)) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) else {
        return not_found("EntityDefinitions");
    };
    let Some(o) = find(key) else {
        return dv_error(
            StatusCode::NOT_FOUND,
            "0x80040217",
            &format!("Could not find an entity with key {key}"),
        );
    };
    match tail.trim_start_matches('/') {
        "" => {
            let select = select(req.param("$select").as_deref());
            let expand = match expand(req) {
                Ok(e) => e,
                Err(r) => return r,
            };
            let mut body = Map::new();
            body.insert("@odata.context".into(), json!(format!("{base}/$entity")));
            if let Value::Object(m) = entity(o, select.as_deref(), expand.as_ref()) {
                body.extend(m);
            }
            ok(StatusCode::OK, &Value::Object(body))
        }
        "Attributes" => {
            let select = select(req.param("$select").as_deref());
            let value: Vec<Value> = o
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| attribute(o, f, i, select.as_deref()))
                .collect();
            ok(
                StatusCode::OK,
                &json!({ "@odata.context": format!("{base}({})/Attributes", o.name), "value": value }),
            )
        }
        attr => match attr
            .strip_prefix("Attributes(")
            .and_then(|a| a.strip_suffix(')'))
            .and_then(|k| {
                o.fields
                    .iter()
                    .position(|f| key_matches(k, f.name, &metadata_id(&[o.name, f.name])))
            }) {
            Some(i) => {
                let select = select(req.param("$select").as_deref());
                ok(
                    StatusCode::OK,
                    &attribute(o, &o.fields[i], i, select.as_deref()),
                )
            }
            None => not_found(attr),
        },
    }
}

/// `GET $metadata`: the CSDL document with an `EntityType` per table and an `EntitySet` each.
pub(crate) fn csdl() -> Reply {
    let mut types = String::new();
    let mut sets = String::new();
    for o in schema::objects(Dialect::Dynamics) {
        let id = o
            .fields
            .iter()
            .find(|f| f.kind == Kind::Id)
            .map_or("", |f| f.name);
        types.push_str(&format!(
            "      <EntityType Name=\"{}\" BaseType=\"mscrm.crmbaseentity\">\n        <Key><PropertyRef Name=\"{id}\" /></Key>\n",
            o.name
        ));
        for f in o.fields {
            let (name, edm) = match f.kind {
                Kind::Reference { .. } => (format!("_{}_value", f.name), "Edm.Guid"),
                Kind::Id => (f.name.to_string(), "Edm.Guid"),
                Kind::Date => (f.name.to_string(), "Edm.Date"),
                Kind::DateTime => (f.name.to_string(), "Edm.DateTimeOffset"),
                Kind::Bool => (f.name.to_string(), "Edm.Boolean"),
                Kind::Picklist(_) => (f.name.to_string(), "Edm.Int32"),
                Kind::Currency => (f.name.to_string(), "Edm.Decimal"),
                _ => (f.name.to_string(), "Edm.String"),
            };
            let unicode = if edm == "Edm.String" {
                " Unicode=\"false\""
            } else {
                ""
            };
            types.push_str(&format!(
                "        <Property Name=\"{name}\" Type=\"{edm}\"{unicode} />\n"
            ));
        }
        for f in o.fields {
            if let Kind::Reference { to, relationship } = f.kind {
                if let Some(target) = to.first() {
                    types.push_str(&format!(
                        "        <NavigationProperty Name=\"{relationship}\" Type=\"mscrm.{target}\" />\n"
                    ));
                }
            }
        }
        types.push_str("      </EntityType>\n");
        sets.push_str(&format!(
            "        <EntitySet Name=\"{}\" EntityType=\"Microsoft.Dynamics.CRM.{}\" />\n",
            o.key, o.name
        ));
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n  <edmx:DataServices>\n    <Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n      <EntityType Name=\"crmbaseentity\" Abstract=\"true\" />\n{types}      <EntityContainer Name=\"System\">\n{sets}      </EntityContainer>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n"
    );
    Reply::new(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .header("odata-version", "4.0")
        .body(xml)
}

fn not_found(segment: &str) -> Reply {
    dv_error(
        StatusCode::NOT_FOUND,
        "0x80060888",
        &format!("Resource not found for the segment '{segment}'."),
    )
}

/// A table by `LogicalName='x'` or by its `MetadataId`.
fn find(key: &str) -> Option<&'static Object> {
    schema::objects(Dialect::Dynamics).find(|o| key_matches(key, o.name, &metadata_id(&[o.name])))
}

fn key_matches(key: &str, logical_name: &str, id: &str) -> bool {
    let key = key.trim();
    match key.split_once('=') {
        Some((k, v)) => k.trim() == "LogicalName" && v.trim().trim_matches('\'') == logical_name,
        None => key
            .trim_matches(|c| c == '{' || c == '}')
            .eq_ignore_ascii_case(id),
    }
}

/// `$select`: the keys to keep (`MetadataId` always comes).
fn select(raw: Option<&str>) -> Option<Vec<String>> {
    raw.map(comma_list)
}

/// `$expand=Attributes` or `$expand=Attributes($select=a,b)`: `Some(select)` when expanded.
fn expand(req: &Req) -> Result<Option<Option<Vec<String>>>, Reply> {
    let Some(raw) = req.param("$expand") else {
        return Ok(None);
    };
    let raw = raw.trim();
    if raw == "Attributes" {
        return Ok(Some(None));
    }
    let inner = raw
        .strip_prefix("Attributes(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| not_found(raw))?;
    let select = inner
        .split(';')
        .find_map(|o| o.trim().strip_prefix("$select="))
        .map(comma_list);
    Ok(Some(select))
}

fn label(text: &str, id: &str) -> Value {
    let one = json!({
        "Label": text, "LanguageCode": 1033, "IsManaged": true, "MetadataId": id, "HasChanged": null,
    });
    json!({ "LocalizedLabels": [one.clone()], "UserLocalizedLabel": one })
}

fn schema_name(logical: &str) -> String {
    let mut c = logical.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Keeps the `$select`ed keys (and `MetadataId`), or everything without `$select`.
fn selected(all: Vec<(&str, Value)>, select: Option<&[String]>) -> Map<String, Value> {
    all.into_iter()
        .filter(|(k, _)| {
            k.starts_with('@')
                || *k == "MetadataId"
                || select.is_none_or(|s| s.iter().any(|x| x == k))
        })
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn entity(o: &Object, select: Option<&[String]>, expand: Option<&Option<Vec<String>>>) -> Value {
    let id = metadata_id(&[o.name]);
    let primary = o
        .fields
        .iter()
        .find(|f| f.kind == Kind::Id)
        .map_or("", |f| f.name);
    let code = match o.name {
        "account" => 1,
        "contact" => 2,
        _ => 10_000,
    };
    let all = vec![
        ("MetadataId", json!(id)),
        ("LogicalName", json!(o.name)),
        ("SchemaName", json!(schema_name(o.name))),
        ("EntitySetName", json!(o.key)),
        ("LogicalCollectionName", json!(o.key)),
        ("CollectionSchemaName", json!(o.plural)),
        ("PrimaryIdAttribute", json!(primary)),
        ("PrimaryNameAttribute", json!(o.name_field)),
        ("ObjectTypeCode", json!(code)),
        ("IsCustomEntity", json!(schema::is_custom(o))),
        ("IsActivity", json!(false)),
        ("OwnershipType", json!("UserOwned")),
        (
            "DisplayName",
            label(o.label, &metadata_id(&[o.name, "label"])),
        ),
        (
            "DisplayCollectionName",
            label(o.plural, &metadata_id(&[o.name, "plural"])),
        ),
    ];
    let mut m = selected(all, select);
    if let Some(attr_select) = expand {
        let attrs: Vec<Value> = o
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| attribute(o, f, i, attr_select.as_deref()))
            .collect();
        m.insert("Attributes".into(), Value::Array(attrs));
    }
    Value::Object(m)
}

fn attribute(o: &Object, f: &Field, column: usize, select: Option<&[String]>) -> Value {
    let (kind, type_name, odata) = match f.kind {
        Kind::Id => (
            "Uniqueidentifier",
            "UniqueidentifierType",
            "UniqueIdentifier",
        ),
        Kind::Text(_) | Kind::Email | Kind::Phone | Kind::Url => ("String", "StringType", "String"),
        Kind::TextArea(_) | Kind::Address => ("Memo", "MemoType", "Memo"),
        Kind::Date | Kind::DateTime => ("DateTime", "DateTimeType", "DateTime"),
        Kind::Bool => ("Boolean", "BooleanType", "Boolean"),
        Kind::Currency => ("Money", "MoneyType", "Money"),
        Kind::Picklist(_) => ("Picklist", "PicklistType", "Picklist"),
        Kind::MultiPicklist(_) => ("Virtual", "MultiSelectPicklistType", "MultiSelectPicklist"),
        Kind::Reference { to, .. } if to.len() > 1 => ("Customer", "CustomerType", "Lookup"),
        Kind::Reference { .. } => ("Lookup", "LookupType", "Lookup"),
    };
    let id = metadata_id(&[o.name, f.name]);
    let required = if f.kind == Kind::Id {
        "SystemRequired"
    } else if f.required {
        "ApplicationRequired"
    } else {
        "None"
    };
    let mut all = vec![
        (
            "@odata.type",
            json!(format!("#Microsoft.Dynamics.CRM.{odata}AttributeMetadata")),
        ),
        ("MetadataId", json!(id)),
        ("LogicalName", json!(f.name)),
        ("SchemaName", json!(schema_name(f.name))),
        ("EntityLogicalName", json!(o.name)),
        ("AttributeType", json!(kind)),
        ("AttributeTypeName", json!({ "Value": type_name })),
        ("ColumnNumber", json!(column + 1)),
        ("IsCustomAttribute", json!(f.custom)),
        ("IsPrimaryId", json!(f.kind == Kind::Id)),
        ("IsPrimaryName", json!(f.name == o.name_field)),
        ("IsSecured", json!(false)),
        ("IsValidForCreate", json!(!f.read_only)),
        ("IsValidForRead", json!(true)),
        ("IsValidForUpdate", json!(!f.read_only)),
        (
            "RequiredLevel",
            json!({ "Value": required, "CanBeChanged": f.kind != Kind::Id, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings" }),
        ),
        (
            "DisplayName",
            label(f.label, &metadata_id(&[o.name, f.name, "label"])),
        ),
    ];
    match f.kind {
        Kind::Text(n) | Kind::TextArea(n) => {
            let format = if matches!(f.kind, Kind::TextArea(_)) {
                "TextArea"
            } else {
                "Text"
            };
            all.push(("MaxLength", json!(n)));
            all.push(("FormatName", json!({ "Value": format })));
        }
        Kind::Email | Kind::Phone | Kind::Url => {
            let format = match f.kind {
                Kind::Email => "Email",
                Kind::Phone => "Phone",
                _ => "Url",
            };
            all.push(("MaxLength", json!(100)));
            all.push(("FormatName", json!({ "Value": format })));
        }
        Kind::Date => {
            all.push(("Format", json!("DateOnly")));
            all.push(("DateTimeBehavior", json!({ "Value": "DateOnly" })));
        }
        Kind::DateTime => {
            all.push(("Format", json!("DateAndTime")));
            all.push(("DateTimeBehavior", json!({ "Value": "UserLocal" })));
        }
        Kind::Bool => all.push(("DefaultValue", json!(false))),
        Kind::Reference { to, .. } => all.push(("Targets", json!(to))),
        _ => {}
    }
    Value::Object(selected(all, select))
}
