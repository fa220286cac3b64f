//! HubSpot metadata: property definitions (`/crm/v3/properties/{objectType}[/{name}]`) and
//! custom object schemas (`/crm/v3/schemas`, which the SDK calls as
//! `/crm-object-schemas/v3/schemas`), rendered from `schema.rs`.
//!
//! Shapes follow the CRM properties API (CRM-APIS.md §8.2) as hubspot-api-client's
//! `ModelProperty` reads them: `name`, `label`, `type`, `fieldType`, `description`,
//! `groupName` and `options` are required there. The schemas API lists the custom objects
//! (the portal's invoices); a standard object has no schema there (404), as on HubSpot.
//! Properties carry the portal's sensitive-data classification (`dataSensitivity`,
//! `sensitiveDataCategories`).

use http::StatusCode;
use serde_json::{json, Value};

use super::super::schema::{self, Field, Kind, Object};
use super::super::Dialect;
use super::{hs_error, ok};
use crate::crm_double::reply::Reply;
use crate::crm_double::CrmDouble;

/// A fixed stamp for property definitions: metadata does not change while the double runs.
const DEFINED_AT: &str = "2019-08-06T02:41:52.974Z";

/// `GET /crm/v3/properties/{objectType}` and `.../{propertyName}`. A list holds the
/// properties of one `dataSensitivity` level: the default list omits sensitive ones, as on
/// HubSpot, and `?dataSensitivity=sensitive` (or `highly_sensitive`) lists those.
pub(crate) fn properties(
    double: &CrmDouble,
    object_type: &str,
    name: Option<&str>,
    sensitivity: &str,
) -> Reply {
    let Some(o) = schema::object(Dialect::HubSpot, object_type) else {
        return hs_error(
            double,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {object_type}"),
        );
    };
    match name {
        None => {
            let results: Vec<Value> = o
                .fields
                .iter()
                .enumerate()
                .filter(|(_, f)| f.class.sensitivity == sensitivity)
                .map(|(i, f)| property(o, f, i))
                .collect();
            ok(StatusCode::OK, &json!({ "results": results }))
        }
        Some(n) => match o.fields.iter().position(|f| f.name == n) {
            Some(i) => ok(StatusCode::OK, &property(o, &o.fields[i], i)),
            None => hs_error(
                double,
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                &format!("Unable to find property {n} for object type {}", o.key),
            ),
        },
    }
}

/// `GET /crm/v3/schemas` (the portal's custom objects) and `.../{objectType}`; a standard
/// object has no schema there (404), as on HubSpot.
pub(crate) fn schemas(double: &CrmDouble, object_type: Option<&str>) -> Reply {
    let custom = || schema::objects(Dialect::HubSpot).filter(|o| schema::is_custom(o));
    match object_type {
        None => {
            let results: Vec<Value> = custom().map(object_schema).collect();
            ok(StatusCode::OK, &json!({ "results": results }))
        }
        Some(t) => match custom()
            .find(|o| o.key == t || o.name == t || format!("{PORTAL_PREFIX}_{}", o.name) == t)
        {
            Some(o) => ok(StatusCode::OK, &object_schema(o)),
            None => hs_error(
                double,
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                &format!("Unable to find custom object schema for {t}"),
            ),
        },
    }
}

/// The portal id prefix of custom object names (`p1234567_invoices`).
const PORTAL_PREFIX: &str = "p1234567";

/// A custom object's schema, with its property definitions.
fn object_schema(o: &Object) -> Value {
    let properties: Vec<Value> = o
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| property(o, f, i))
        .collect();
    let id = o.key.trim_start_matches("2-");
    json!({
        "id": id,
        "objectTypeId": o.key,
        "name": o.name,
        "fullyQualifiedName": format!("{PORTAL_PREFIX}_{}", o.name),
        "labels": { "singular": o.label, "plural": o.plural },
        "primaryDisplayProperty": o.name_field,
        "requiredProperties": o.fields.iter().filter(|f| f.required).map(|f| f.name).collect::<Vec<_>>(),
        "searchableProperties": [o.name_field],
        "secondaryDisplayProperties": [],
        "properties": properties,
        "associations": [{
            "fromObjectTypeId": o.key, "toObjectTypeId": "0-1", "name": "invoice_to_contact",
            "id": "201", "createdAt": DEFINED_AT, "updatedAt": DEFINED_AT,
        }],
        "metaType": "PORTAL_SPECIFIC",
        "archived": false,
        "createdAt": DEFINED_AT,
        "updatedAt": DEFINED_AT,
    })
}

/// One property definition.
fn property(o: &Object, f: &Field, order: usize) -> Value {
    let (kind, field_type) = match f.kind {
        Kind::Id | Kind::Currency => ("number", "number"),
        Kind::Text(_) | Kind::Email | Kind::Url => ("string", "text"),
        Kind::TextArea(_) | Kind::Address => ("string", "textarea"),
        Kind::Phone => ("string", "phonenumber"),
        Kind::Date => ("date", "date"),
        Kind::DateTime => ("datetime", "date"),
        Kind::Bool => ("enumeration", "booleancheckbox"),
        Kind::Picklist(_) | Kind::Reference { .. } => ("enumeration", "select"),
        Kind::MultiPicklist(_) => ("enumeration", "checkbox"),
    };
    let values: &[&str] = match f.kind {
        Kind::Picklist(v) | Kind::MultiPicklist(v) => v,
        Kind::Bool => &["true", "false"],
        _ => &[],
    };
    let options: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let label = match *v {
                "true" => "Yes",
                "false" => "No",
                other => other,
            };
            json!({ "label": label, "value": v, "displayOrder": i, "hidden": false, "description": "" })
        })
        .collect();
    let group = match o.name {
        "companies" => "companyinformation",
        "contacts" => "contactinformation",
        _ => "invoice_information",
    };
    json!({
        "updatedAt": DEFINED_AT,
        "createdAt": DEFINED_AT,
        "name": f.name,
        "label": f.label,
        "type": kind,
        "fieldType": field_type,
        "description": format!("{} of the {}", f.label, o.label.to_lowercase()),
        "groupName": group,
        "options": options,
        "displayOrder": order,
        "calculated": false,
        "externalOptions": false,
        "hasUniqueValue": f.kind == Kind::Id || f.external_id,
        "hidden": false,
        "hubspotDefined": !f.custom,
        "modificationMetadata": {
            "archivable": f.custom,
            "readOnlyDefinition": !f.custom,
            "readOnlyValue": f.read_only,
        },
        "formField": !f.read_only,
        "dataSensitivity": f.class.sensitivity,
        "sensitiveDataCategories": f.class.categories,
    })
}
