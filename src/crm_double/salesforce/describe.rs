//! Salesforce metadata: describeGlobal (`GET /sobjects`), sObject describe
//! (`/sobjects/{Object}/describe`, with `describe/layouts`) and sObject basic information
//! (`GET /sobjects/{Object}`), all rendered from `schema.rs`.
//!
//! Classification: `SELECT ... FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName =
//! 'Contact'` on `/query` (and `/tooling/query`) answers each field's `ComplianceGroup` and
//! `SecurityClassification` as the org set them in Setup (CRM-APIS.md §8.1).
//!
//! Shapes follow the REST API reference (CRM-APIS.md §8.1): the describe of a field carries
//! the keys discovery reads (`name`, `label`, `type`, `soapType`, `length`, `nillable`,
//! `custom`, `externalId`, `compoundFieldName`, `referenceTo`, `relationshipName`,
//! `picklistValues`, ...). Basic information is the one metadata-looking route that is not
//! metadata: its `recentItems` are records (with their names), so Zweck governs it as a read.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::super::schema::{self, Field, Kind, Object};
use super::super::Dialect;
use super::records::{attributes, full, SObject};
use super::{not_found, ok_json};
use crate::crm_double::reply::Reply;
use crate::crm_double::CrmDouble;

/// `GET /sobjects`: every object, summarised.
pub(crate) fn global(ver: &str) -> Reply {
    let sobjects: Vec<Value> = schema::objects(Dialect::Salesforce)
        .map(|o| Value::Object(summary(o, ver)))
        .collect();
    ok_json(
        StatusCode::OK,
        &json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects }),
    )
}

/// `GET /sobjects/{Object}/describe`.
pub(crate) fn describe(object: &str, ver: &str) -> Reply {
    let Some(o) = schema::object(Dialect::Salesforce, object) else {
        return not_found();
    };
    let mut out = summary(o, ver);
    let fields: Vec<Value> = o.fields.iter().map(field).collect();
    let children: Vec<Value> = o
        .children
        .iter()
        .map(|c| {
            json!({
                "cascadeDelete": false, "childSObject": c.child, "deprecatedAndHidden": false,
                "field": c.field, "junctionIdListNames": [], "junctionReferenceTo": [],
                "relationshipName": c.relationship, "restrictedDelete": false,
            })
        })
        .collect();
    for (k, v) in [
        ("actionOverrides", json!([])),
        ("childRelationships", Value::Array(children)),
        ("compactLayoutable", json!(true)),
        ("defaultImplementation", Value::Null),
        ("extendedBy", Value::Null),
        ("extendsInterfaces", Value::Null),
        ("fields", Value::Array(fields)),
        ("implementedBy", Value::Null),
        ("implementsInterfaces", Value::Null),
        ("listviewable", Value::Null),
        ("lookupLayoutable", Value::Null),
        ("namedLayoutInfos", json!([])),
        ("networkScopeFieldName", Value::Null),
        (
            "recordTypeInfos",
            json!([{
                "active": true, "available": true, "defaultRecordTypeMapping": true,
                "developerName": "Master", "master": true, "name": "Master",
                "recordTypeId": "012000000000000AAA",
                "urls": { "layout": format!("/services/data/{ver}/sobjects/{}/describe/layouts/012000000000000AAA", o.name) },
            }]),
        ),
        ("searchLayoutable", json!(true)),
        ("sobjectDescribeOption", json!("FULL")),
        (
            "supportedScopes",
            json!([{ "label": "All", "name": "everything" }, { "label": "My", "name": "mine" }]),
        ),
    ] {
        out.insert(k.into(), v);
    }
    ok_json(StatusCode::OK, &Value::Object(out))
}

/// `GET /sobjects/{Object}/describe/layouts` (and `/{recordTypeId}`): one detail layout
/// listing every field.
pub(crate) fn layouts(object: &str, one: bool) -> Reply {
    let Some(o) = schema::object(Dialect::Salesforce, object) else {
        return not_found();
    };
    let rows: Vec<Value> = o
        .fields
        .iter()
        .map(|f| {
            json!({ "layoutItems": [{
                "editableForNew": !f.read_only, "editableForUpdate": !f.read_only,
                "label": f.label, "placeholder": false, "required": f.required,
                "layoutComponents": [{ "type": "Field", "value": f.name }],
            }]})
        })
        .collect();
    let layout = json!({
        "id": format!("00hFict{}AAA", &o.key),
        "detailLayoutSections": [{
            "columns": 1, "heading": format!("{} Information", o.label), "layoutRows": rows,
            "rows": o.fields.len(), "useCollapsibleSection": false, "useHeading": true,
        }],
        "editLayoutSections": [], "relatedLists": [],
    });
    if one {
        return ok_json(StatusCode::OK, &layout);
    }
    ok_json(
        StatusCode::OK,
        &json!({
            "layouts": [layout],
            "recordTypeMappings": [],
            "recordTypeSelectorRequired": [false],
        }),
    )
}

/// `GET /sobjects/{Object}`: the object's summary and the records viewed last. Those are
/// records with their names: personal data in a metadata-looking answer.
pub(crate) fn basic_info(double: &CrmDouble, object: &str, ver: &str) -> Reply {
    let Some(o) = schema::object(Dialect::Salesforce, object) else {
        return not_found();
    };
    let recent: Vec<Value> = SObject::parse(o.name)
        .map(|s| {
            (0..3)
                .filter_map(|i| full(double, s, i, ver))
                .map(|r| {
                    let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
                    json!({
                        "attributes": attributes(o.name, ver, id),
                        "Id": id,
                        o.name_field: r.get(o.name_field).cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ok_json(
        StatusCode::OK,
        &json!({ "objectDescribe": summary(o, ver), "recentItems": recent }),
    )
}

/// A query `FROM FieldDefinition`, or `None` for any other query. The entity filter is
/// mandatory, as on Salesforce; the SELECT list picks the keys.
pub(crate) fn field_definitions(q: &str) -> Option<Reply> {
    let lower = q.to_ascii_lowercase();
    let from = lower.find(" from ")?;
    let rest = lower[from + 6..].trim_start();
    if !rest.starts_with("fielddefinition") {
        return None;
    }
    let malformed = |m: &str| {
        ok_json(
            StatusCode::BAD_REQUEST,
            &json!([{ "message": m, "errorCode": "MALFORMED_QUERY" }]),
        )
    };
    let Some(at) = lower.find("entitydefinition.qualifiedapiname") else {
        return Some(malformed(
            "FieldDefinition: a filter on a reified column is required",
        ));
    };
    let entity = q[at..]
        .split('\'')
        .nth(1)
        .filter(|e| !e.is_empty())
        .unwrap_or_default();
    let select: Vec<String> = q[..from]
        .trim()
        .get(6..)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let records: Vec<Value> = schema::object(Dialect::Salesforce, entity)
        .map(|o| {
            o.fields
                .iter()
                .map(|f| {
                    let all = [
                        ("QualifiedApiName", json!(f.name)),
                        ("Label", json!(f.label)),
                        ("DataType", json!(data_type(f))),
                        ("ComplianceGroup", json!(f.class.compliance)),
                        ("SecurityClassification", json!(f.class.security)),
                        ("BusinessStatus", json!("Active")),
                        ("IsCompound", json!(f.kind == Kind::Address)),
                    ];
                    let mut m = Map::new();
                    m.insert("attributes".into(), json!({ "type": "FieldDefinition" }));
                    for (k, v) in all {
                        if select.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                            m.insert(k.into(), v);
                        }
                    }
                    Value::Object(m)
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ok_json(
        StatusCode::OK,
        &json!({ "totalSize": records.len(), "done": true, "records": records }),
    ))
}

/// FieldDefinition's `DataType`: the Setup spelling (`Text(80)`, `Lookup(Contact)`).
fn data_type(f: &Field) -> String {
    match f.kind {
        Kind::Id => "Lookup()".into(),
        Kind::Text(n) => format!("Text({n})"),
        Kind::TextArea(n) if n > 255 => format!("Long Text Area({n})"),
        Kind::TextArea(_) => "Text Area(255)".into(),
        Kind::Email => "Email".into(),
        Kind::Phone => "Phone".into(),
        Kind::Url => "URL(255)".into(),
        Kind::Date => "Date".into(),
        Kind::DateTime => "Date/Time".into(),
        Kind::Bool => "Checkbox".into(),
        Kind::Picklist(_) => "Picklist".into(),
        Kind::MultiPicklist(_) => "Picklist (Multi-Select)".into(),
        Kind::Reference { to, .. } => format!("Lookup({})", to.join(",")),
        Kind::Address => "Address".into(),
        Kind::Currency => "Currency(16, 2)".into(),
    }
}

/// What describeGlobal says of an object (also the head of its describe).
fn summary(o: &Object, ver: &str) -> Map<String, Value> {
    let base = format!("/services/data/{ver}/sobjects/{}", o.name);
    let custom = o.name.ends_with("__c");
    let mut m = Map::new();
    for (k, v) in [
        ("activateable", json!(false)),
        ("associateEntityType", Value::Null),
        ("associateParentEntity", Value::Null),
        ("createable", json!(true)),
        ("custom", json!(custom)),
        ("customSetting", json!(false)),
        ("deepCloneable", json!(false)),
        ("deletable", json!(true)),
        ("deprecatedAndHidden", json!(false)),
        ("feedEnabled", json!(true)),
        ("hasSubtypes", json!(false)),
        ("isInterface", json!(false)),
        ("isSubtype", json!(false)),
        ("keyPrefix", json!(o.key)),
        ("label", json!(o.label)),
        ("labelPlural", json!(o.plural)),
        ("layoutable", json!(true)),
        (
            "mergeable",
            json!(matches!(o.name, "Account" | "Contact" | "Lead")),
        ),
        ("mruEnabled", json!(true)),
        ("name", json!(o.name)),
        ("queryable", json!(true)),
        ("replicateable", json!(true)),
        ("retrieveable", json!(true)),
        ("searchable", json!(true)),
        ("triggerable", json!(true)),
        ("undeletable", json!(true)),
        ("updateable", json!(true)),
        (
            "urls",
            json!({
                "compactLayouts": format!("{base}/describe/compactLayouts"),
                "rowTemplate": format!("{base}/{{ID}}"),
                "approvalLayouts": format!("{base}/describe/approvalLayouts"),
                "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
                "listviews": format!("{base}/listviews"),
                "describe": format!("{base}/describe"),
                "quickActions": format!("{base}/quickActions"),
                "layouts": format!("{base}/describe/layouts"),
                "sobject": base,
            }),
        ),
    ] {
        m.insert(k.into(), v);
    }
    m
}

/// The describe of one field.
fn field(f: &Field) -> Value {
    let (kind, soap, length, byte_length) = match f.kind {
        Kind::Id => ("id", "tns:ID", 18, 18),
        Kind::Text(n) => ("string", "xsd:string", n, n * 3),
        Kind::TextArea(n) => ("textarea", "xsd:string", n, n * 3),
        Kind::Email => ("email", "xsd:string", 80, 240),
        Kind::Phone => ("phone", "xsd:string", 40, 120),
        Kind::Url => ("url", "xsd:string", 255, 765),
        Kind::Date => ("date", "xsd:date", 0, 0),
        Kind::DateTime => ("datetime", "xsd:dateTime", 0, 0),
        Kind::Bool => ("boolean", "xsd:boolean", 0, 0),
        Kind::Picklist(_) => ("picklist", "xsd:string", 255, 765),
        Kind::MultiPicklist(_) => ("multipicklist", "xsd:string", 4099, 12297),
        Kind::Reference { .. } => ("reference", "tns:ID", 18, 18),
        Kind::Address => ("address", "urn:address", 0, 0),
        Kind::Currency => ("currency", "xsd:double", 0, 0),
    };
    let values: &[&str] = match f.kind {
        Kind::Picklist(v) | Kind::MultiPicklist(v) => v,
        _ => &[],
    };
    let picklist: Vec<Value> = values
        .iter()
        .map(|v| json!({ "active": true, "defaultValue": false, "label": v, "validFor": null, "value": v }))
        .collect();
    let (reference_to, relationship) = match f.kind {
        Kind::Reference { to, relationship } => (to.to_vec(), Some(relationship)),
        _ => (Vec::new(), None),
    };
    let boolean = f.kind == Kind::Bool;
    let id = f.kind == Kind::Id;
    let text = matches!(
        f.kind,
        Kind::Text(_) | Kind::Email | Kind::Phone | Kind::Url | Kind::Picklist(_)
    );
    let extra = match (f.name, f.kind) {
        ("Name", _) => json!("personname"),
        (_, Kind::TextArea(_)) => json!("plaintextarea"),
        _ => Value::Null,
    };
    let pairs: Vec<(&str, Value)> = vec![
        (
            "aggregatable",
            json!(!matches!(
                f.kind,
                Kind::TextArea(_) | Kind::Address | Kind::MultiPicklist(_)
            )),
        ),
        ("aiPredictionField", json!(false)),
        ("autoNumber", json!(false)),
        ("byteLength", json!(byte_length)),
        ("calculated", json!(false)),
        ("calculatedFormula", Value::Null),
        ("cascadeDelete", json!(false)),
        ("caseSensitive", json!(false)),
        ("compoundFieldName", json!(f.compound)),
        ("controllerName", Value::Null),
        ("createable", json!(!f.read_only)),
        ("custom", json!(f.custom)),
        (
            "defaultValue",
            json!(if boolean { json!(false) } else { Value::Null }),
        ),
        ("defaultValueFormula", Value::Null),
        ("defaultedOnCreate", json!(boolean || id || f.read_only)),
        ("dependentPicklist", json!(false)),
        ("deprecatedAndHidden", json!(false)),
        ("digits", json!(0)),
        ("displayLocationInDecimal", json!(false)),
        ("encrypted", json!(false)),
        ("externalId", json!(f.external_id)),
        ("extraTypeInfo", json!(extra)),
        ("filterable", json!(f.kind != Kind::Address)),
        ("filteredLookupInfo", Value::Null),
        ("formulaTreatNullNumberAsZero", json!(false)),
        (
            "groupable",
            json!(text || boolean || id || matches!(f.kind, Kind::Date | Kind::Reference { .. })),
        ),
        ("highScaleNumber", json!(false)),
        ("htmlFormatted", json!(false)),
        (
            "idLookup",
            json!(id || f.external_id || f.kind == Kind::Email),
        ),
        ("inlineHelpText", Value::Null),
        ("label", json!(f.label)),
        ("length", json!(length)),
        ("mask", Value::Null),
        ("maskType", Value::Null),
        ("name", json!(f.name)),
        ("nameField", json!(f.name == "Name")),
        ("namePointing", json!(false)),
        ("nillable", json!(!(f.required || id || boolean))),
        ("permissionable", json!(!(f.required || id || f.read_only))),
        ("picklistValues", json!(picklist)),
        ("polymorphicForeignKey", json!(false)),
        ("precision", json!(0)),
        ("queryByDistance", json!(false)),
        ("referenceTargetField", Value::Null),
        ("referenceTo", json!(reference_to)),
        ("relationshipName", json!(relationship)),
        ("relationshipOrder", Value::Null),
        ("restrictedDelete", json!(false)),
        ("restrictedPicklist", json!(false)),
        ("scale", json!(0)),
        ("searchPrefilterable", json!(false)),
        ("soapType", json!(soap)),
        (
            "sortable",
            json!(!matches!(
                f.kind,
                Kind::TextArea(_) | Kind::Address | Kind::MultiPicklist(_)
            )),
        ),
        ("type", json!(kind)),
        ("unique", json!(f.external_id)),
        ("updateable", json!(!f.read_only)),
        ("writeRequiresMasterRead", json!(false)),
    ];
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}
