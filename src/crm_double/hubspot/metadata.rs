//! HubSpot metadata: property definitions (`/crm/v3/properties/{objectType}[/{name}]`) and
//! custom object schemas (`/crm/v3/schemas`, which the SDK calls as
//! `/crm-object-schemas/v3/schemas`), rendered from `schema.rs`.
//!
//! Shapes follow the CRM properties API (CRM-APIS.md §8.2) as hubspot-api-client's
//! `ModelProperty` reads them: `name`, `label`, `type`, `fieldType`, `description`,
//! `groupName` and `options` are required there. The double has only standard objects, and
//! the schemas API lists custom ones: its list is empty and a standard object has no schema
//! there (404), as on HubSpot.

use http::StatusCode;
use serde_json::{json, Value};

use super::super::schema::{self, Field, Kind, Object};
use super::super::Dialect;
use super::{hs_error, ok};
use crate::crm_double::reply::Reply;
use crate::crm_double::CrmDouble;

/// A fixed stamp for property definitions: metadata does not change while the double runs.
const DEFINED_AT: &str = "2019-08-06T02:41:52.974Z";

/// `GET /crm/v3/properties/{objectType}` and `.../{propertyName}`.
pub(crate) fn properties(double: &CrmDouble, object_type: &str, name: Option<&str>) -> Reply {
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

/// `GET /crm/v3/schemas` (custom objects: the double has none) and `.../{objectType}`.
pub(crate) fn schemas(double: &CrmDouble, object_type: Option<&str>) -> Reply {
    match object_type {
        None => ok(StatusCode::OK, &json!({ "results": [] })),
        Some(t) => hs_error(
            double,
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to find custom object schema for {t}"),
        ),
    }
}

/// One property definition.
fn property(o: &Object, f: &Field, order: usize) -> Value {
    let (kind, field_type) = match f.kind {
        Kind::Id => ("number", "number"),
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
    let group = if o.name == "companies" {
        "companyinformation"
    } else {
        "contactinformation"
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
        "dataSensitivity": "non_sensitive",
    })
}
