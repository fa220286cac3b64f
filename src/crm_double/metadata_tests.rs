//! The metadata endpoints of every dialect against the one description they render
//! (`schema.rs`), and the records against it: a field a record carries is described, a
//! described field is in the record, so discovery built on the metadata sees what the
//! records are.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;

use super::schema::{self, Kind};
use super::{call, CrmDouble, CrmDoubleConfig, Dialect};

fn double() -> Arc<CrmDouble> {
    CrmDouble::new(CrmDoubleConfig {
        contacts: 30,
        ..CrmDoubleConfig::default()
    })
}

fn get(d: &Arc<CrmDouble>, path: &str) -> (StatusCode, Value) {
    let (status, _, bytes) = call(d, Method::GET, path, &[], "");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn described(dialect: Dialect, object: &str) -> BTreeSet<String> {
    schema::object(dialect, object)
        .expect("described")
        .fields
        .iter()
        .map(|f| f.name.to_string())
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .expect("object")
        .keys()
        .filter(|k| !k.starts_with('@') && k.as_str() != "attributes")
        .cloned()
        .collect()
}

#[test]
fn salesforce_records_carry_exactly_the_described_fields() {
    let d = double();
    for (object, id) in [
        ("Contact", "003Fict00000003AAA"),
        ("Lead", "00QFict00000003AAA"),
        ("Account", "001Fict00000001AAA"),
    ] {
        let (status, record) = get(&d, &format!("/services/data/v66.0/sobjects/{object}/{id}"));
        assert_eq!(status, StatusCode::OK, "{object}");
        assert_eq!(
            keys(&record),
            described(Dialect::Salesforce, object),
            "{object}"
        );
    }
    let (_, page) = get(
        &d,
        "/services/data/v66.0/query?q=SELECT+Id,(SELECT+Id,CaseNumber,Subject,Status,Origin,SuppliedName,SuppliedEmail,ContactId+FROM+Cases),Individual.Id,Individual.FirstName,Individual.LastName,Individual.HasOptedOutProcessing,Individual.HasOptedOutProfiling,Individual.HasOptedOutSolicit,Individual.HasOptedOutTracking,Individual.CanStorePiiElsewhere+FROM+Contact",
    );
    let records = page["records"].as_array().expect("records");
    let case = records
        .iter()
        .find_map(|r| r["Cases"]["records"].get(0))
        .expect("a case");
    assert_eq!(keys(case), described(Dialect::Salesforce, "Case"));
    let individual = records
        .iter()
        .map(|r| &r["Individual"])
        .find(|i| i.is_object())
        .expect("an individual");
    assert_eq!(
        keys(individual),
        described(Dialect::Salesforce, "Individual")
    );
}

#[test]
fn hubspot_records_carry_exactly_the_described_properties() {
    let d = double();
    for (object, id) in [("contacts", "51000004"), ("companies", "88000001")] {
        let names = described(Dialect::HubSpot, object);
        let list = names.iter().cloned().collect::<Vec<_>>().join(",");
        let (status, record) = get(
            &d,
            &format!("/crm/v3/objects/{object}/{id}?properties={list}"),
        );
        assert_eq!(status, StatusCode::OK, "{object}");
        assert_eq!(keys(&record["properties"]), names, "{object}");
    }
}

#[test]
fn dataverse_records_carry_exactly_the_described_columns() {
    let d = double();
    let (status, page) = get(
        &d,
        "/api/data/v9.2/contacts?$expand=parentcustomerid_account",
    );
    assert_eq!(status, StatusCode::OK);
    let record = page["value"]
        .as_array()
        .and_then(|v| v.iter().find(|r| r["parentcustomerid_account"].is_object()))
        .expect("a contact with an account");
    let columns: BTreeSet<String> = keys(record)
        .into_iter()
        .filter(|k| k != "parentcustomerid_account")
        .map(|k| {
            k.strip_prefix('_')
                .and_then(|k| k.strip_suffix("_value"))
                .map_or(k.clone(), str::to_string)
        })
        .collect();
    assert_eq!(columns, described(Dialect::Dynamics, "contact"));
    assert_eq!(
        keys(&record["parentcustomerid_account"]),
        described(Dialect::Dynamics, "account")
    );
}

#[test]
fn salesforce_describe_and_describe_global() {
    let d = double();
    let (status, global) = get(&d, "/services/data/v66.0/sobjects");
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .expect("sobjects")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Account",
            "Case",
            "Contact",
            "Individual",
            "Invoice__c",
            "Lead"
        ]
    );
    assert_eq!(global["maxBatchSize"], 200);
    let contact = &global["sobjects"][2];
    assert_eq!(contact["keyPrefix"], "003");
    assert_eq!(
        contact["urls"]["describe"],
        "/services/data/v66.0/sobjects/Contact/describe"
    );

    // with and without a trailing slash, as simple-salesforce and the docs spell it
    for path in [
        "/services/data/v66.0/sobjects/Contact/describe",
        "/services/data/v66.0/sobjects/Contact/describe/",
    ] {
        let (status, describe) = get(&d, path);
        assert_eq!(status, StatusCode::OK, "{path}");
        let fields = describe["fields"].as_array().expect("fields");
        let names: BTreeSet<String> = fields
            .iter()
            .filter_map(|f| f["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(names, described(Dialect::Salesforce, "Contact"));
        let field = |n: &str| fields.iter().find(|f| f["name"] == n).expect(n);
        assert_eq!(field("Email")["type"], "email");
        assert_eq!(field("Birthdate")["soapType"], "xsd:date");
        assert_eq!(field("MailingCity")["compoundFieldName"], "MailingAddress");
        assert_eq!(field("AccountId")["referenceTo"][0], "Account");
        assert_eq!(field("AccountId")["relationshipName"], "Account");
        assert_eq!(field("Ext_Id__c")["externalId"], true);
        assert_eq!(field("Ext_Id__c")["custom"], true);
        assert_eq!(field("LastName")["nillable"], false);
        assert_eq!(field("LeadSource")["picklistValues"][0]["value"], "Web");
        assert_eq!(
            describe["childRelationships"][0]["relationshipName"],
            "Cases"
        );
    }
    let (status, _) = get(&d, "/services/data/v66.0/sobjects/Nope__c/describe");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, layouts) = get(&d, "/services/data/v66.0/sobjects/Lead/describe/layouts");
    assert_eq!(status, StatusCode::OK);
    assert!(layouts["layouts"][0]["detailLayoutSections"].is_array());
}

#[test]
fn salesforce_field_definitions_carry_the_org_classification() {
    let d = double();
    let q = "SELECT+QualifiedApiName,ComplianceGroup,SecurityClassification+FROM+FieldDefinition+WHERE+EntityDefinition.QualifiedApiName='Contact'";
    for prefix in ["query", "tooling/query"] {
        let (status, page) = get(&d, &format!("/services/data/v66.0/{prefix}?q={q}"));
        assert_eq!(status, StatusCode::OK, "{prefix}");
        let records = page["records"].as_array().expect("records");
        assert_eq!(
            records.len(),
            described(Dialect::Salesforce, "Contact").len()
        );
        let by = |name: &str| {
            records
                .iter()
                .find(|r| r["QualifiedApiName"] == name)
                .cloned()
                .expect(name)
        };
        assert_eq!(by("Email")["ComplianceGroup"], "PII;GDPR");
        assert_eq!(by("Allergies__c")["SecurityClassification"], "Restricted");
        assert!(by("Notes__c")["ComplianceGroup"].is_null());
        assert_eq!(by("Email")["attributes"]["type"], "FieldDefinition");
        assert!(
            by("Email").get("DataType").is_none(),
            "only the selected keys"
        );
    }
    // the entity filter is mandatory, as on Salesforce
    let (status, body) = get(
        &d,
        "/services/data/v66.0/query?q=SELECT+QualifiedApiName+FROM+FieldDefinition",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
}

#[test]
fn salesforce_custom_object_records_and_describe() {
    let d = double();
    let (status, describe) = get(&d, "/services/data/v66.0/sobjects/Invoice__c/describe");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(describe["custom"], true);
    let (status, record) = get(
        &d,
        "/services/data/v66.0/sobjects/Invoice__c/a0IFict00000002AAA",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&record), described(Dialect::Salesforce, "Invoice__c"));
    assert_eq!(record["Contact__c"], "003Fict00000002AAA");
    let (_, page) = get(
        &d,
        "/services/data/v66.0/query?q=SELECT+Id,Name+FROM+Invoice__c+LIMIT+3",
    );
    assert_eq!(page["records"].as_array().map(Vec::len), Some(3));
    // free text holds e-mail addresses and phone numbers in some records
    let notes: Vec<String> = (0..10)
        .filter_map(|i| {
            let (_, c) = get(
                &d,
                &format!("/services/data/v66.0/sobjects/Contact/003Fict{i:08}AAA"),
            );
            c["Notes__c"].as_str().map(str::to_string)
        })
        .collect();
    assert!(notes.iter().any(|n| n.contains('@')));
    assert!(notes.iter().any(|n| n.contains("Call back on")));
}

#[test]
fn salesforce_basic_information_carries_recent_records() {
    let d = double();
    let (status, info) = get(&d, "/services/data/v66.0/sobjects/Contact/");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["objectDescribe"]["name"], "Contact");
    let recent = info["recentItems"].as_array().expect("recentItems");
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0]["attributes"]["type"], "Contact");
    assert!(recent[0]["Name"].is_string());
}

#[test]
fn hubspot_properties_and_schemas() {
    let d = double();
    for path in ["/crm/v3/properties/contacts", "/crm/v3/properties/0-1/"] {
        let (status, props) = get(&d, path);
        assert_eq!(status, StatusCode::OK, "{path}");
        let results = props["results"].as_array().expect("results");
        // the default list omits the sensitive properties, as on HubSpot
        let plain = schema::object(Dialect::HubSpot, "contacts")
            .expect("contacts")
            .fields
            .iter()
            .filter(|f| f.class.sensitivity == "non_sensitive")
            .count();
        assert_eq!(results.len(), plain);
        assert!(results.iter().all(|p| p["name"] != "allergies"));
        for p in results {
            for key in [
                "name",
                "label",
                "type",
                "fieldType",
                "description",
                "groupName",
                "options",
            ] {
                assert!(!p[key].is_null(), "{path}: {key} of {}", p["name"]);
            }
        }
        let basis = results
            .iter()
            .find(|p| p["name"] == "hs_legal_basis")
            .expect("hs_legal_basis");
        assert_eq!(basis["type"], "enumeration");
        assert_eq!(basis["fieldType"], "checkbox");
        assert_eq!(basis["options"].as_array().map(Vec::len), Some(5));
    }
    let (status, one) = get(&d, "/crm/v3/properties/companies/domain");
    assert_eq!(
        (status, one["name"].as_str()),
        (StatusCode::OK, Some("domain"))
    );
    let (status, _) = get(&d, "/crm/v3/properties/companies/nope");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, sensitive) = get(
        &d,
        "/crm/v3/properties/contacts?dataSensitivity=highly_sensitive",
    );
    assert_eq!(sensitive["results"][0]["name"], "allergies");
    assert_eq!(
        sensitive["results"][0]["sensitiveDataCategories"],
        serde_json::json!(["HEALTH"])
    );
    assert_eq!(sensitive["results"].as_array().map(Vec::len), Some(1));
    let (status, _) = get(&d, "/crm/v3/properties/contacts?dataSensitivity=secret");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for path in ["/crm/v3/schemas", "/crm-object-schemas/v3/schemas"] {
        let (status, schemas) = get(&d, path);
        assert_eq!(status, StatusCode::OK, "{path}");
        let results = schemas["results"].as_array().expect("results");
        assert_eq!(results.len(), 1, "{path}");
        assert_eq!(results[0]["objectTypeId"], "2-7654321");
        assert_eq!(results[0]["fullyQualifiedName"], "p1234567_invoices");
        assert_eq!(
            results[0]["properties"].as_array().map(Vec::len),
            Some(described(Dialect::HubSpot, "invoices").len())
        );
    }
    let (status, one) = get(&d, "/crm/v3/schemas/2-7654321");
    assert_eq!(
        (status, one["name"].as_str()),
        (StatusCode::OK, Some("invoices"))
    );
    let (status, _) = get(&d, "/crm/v3/schemas/contacts");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&d, Method::POST, "/crm/v3/properties/contacts", &[], "{}");
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn dataverse_entity_definitions_and_csdl() {
    let d = double();
    let (status, list) = get(
        &d,
        "/api/data/v9.2/EntityDefinitions?$select=LogicalName,EntitySetName",
    );
    assert_eq!(status, StatusCode::OK);
    let tables = list["value"].as_array().expect("value");
    assert_eq!(tables.len(), 3);
    let contact = tables
        .iter()
        .find(|t| t["LogicalName"] == "contact")
        .expect("contact");
    assert_eq!(contact["EntitySetName"], "contacts");
    assert!(contact["MetadataId"].is_string());
    assert!(
        contact.get("PrimaryIdAttribute").is_none(),
        "$select applies"
    );

    let (status, one) = get(
        &d,
        "/api/data/v9.2/EntityDefinitions(LogicalName='contact')?$select=LogicalName&$expand=Attributes($select=LogicalName,AttributeType)",
    );
    assert_eq!(status, StatusCode::OK);
    assert!(one["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("/$entity")));
    let attrs = one["Attributes"].as_array().expect("Attributes");
    assert_eq!(attrs.len(), described(Dialect::Dynamics, "contact").len());
    let email = attrs
        .iter()
        .find(|a| a["LogicalName"] == "emailaddress1")
        .expect("email");
    assert_eq!(email["AttributeType"], "String");
    assert_eq!(
        email["@odata.type"],
        "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    );
    assert!(
        email.get("DisplayName").is_none(),
        "$select applies inside $expand"
    );

    let id = contact["MetadataId"].as_str().expect("id");
    let (status, attrs) = get(
        &d,
        &format!("/api/data/v9.2/EntityDefinitions({id})/Attributes"),
    );
    assert_eq!(status, StatusCode::OK);
    let birthdate = attrs["value"]
        .as_array()
        .and_then(|v| v.iter().find(|a| a["LogicalName"] == "birthdate"))
        .expect("birthdate");
    assert_eq!(birthdate["Format"], "DateOnly");
    assert_eq!(
        birthdate["DisplayName"]["UserLocalizedLabel"]["Label"],
        "Birthday"
    );
    let (status, _) = get(&d, "/api/data/v9.2/EntityDefinitions(LogicalName='nope')");
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, headers, xml) = call(&d, Method::GET, "/api/data/v9.2/$metadata", &[], "");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/xml");
    let xml = String::from_utf8_lossy(&xml);
    assert!(xml.contains("<EntityType Name=\"contact\""));
    assert!(xml.contains("<Property Name=\"_parentcustomerid_value\" Type=\"Edm.Guid\" />"));
    assert!(xml
        .contains("<EntitySet Name=\"contacts\" EntityType=\"Microsoft.Dynamics.CRM.contact\" />"));
    for o in schema::objects(Dialect::Dynamics) {
        for f in o
            .fields
            .iter()
            .filter(|f| !matches!(f.kind, Kind::Reference { .. }))
        {
            assert!(
                xml.contains(&format!("<Property Name=\"{}\"", f.name)),
                "{}",
                f.name
            );
        }
    }
}
