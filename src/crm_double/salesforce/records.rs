//! Salesforce record shapes: ids, full sObject records and the relationship objects a SOQL
//! query nests (parent `Account`/`Individual` with their own `attributes`, child `Cases` as a
//! query result). Field order follows `tests/fixtures/crm/salesforce/contact-get.response.json`.

use serde_json::{json, Map, Value};

use super::super::data::{base36, parse_base36, Company, Person};
use super::super::schema;
use super::super::store::{apply, blank_except, Kind};
use super::super::{CrmDouble, Dialect};

/// The objects the double serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SObject {
    Contact,
    Lead,
    Account,
    /// The org's custom object.
    Invoice,
}

impl SObject {
    pub fn parse(name: &str) -> Option<SObject> {
        match name.to_ascii_lowercase().as_str() {
            "contact" => Some(SObject::Contact),
            "lead" => Some(SObject::Lead),
            "account" => Some(SObject::Account),
            "invoice__c" => Some(SObject::Invoice),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SObject::Contact => "Contact",
            SObject::Lead => "Lead",
            SObject::Account => "Account",
            SObject::Invoice => "Invoice__c",
        }
    }

    /// Key prefix of the object's ids.
    pub fn prefix(self) -> &'static str {
        match self {
            SObject::Contact => "003",
            SObject::Lead => "00Q",
            SObject::Account => "001",
            SObject::Invoice => "a0I",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            SObject::Contact => Kind::SfContact,
            SObject::Lead => Kind::SfLead,
            SObject::Account => Kind::SfAccount,
            SObject::Invoice => Kind::SfInvoice,
        }
    }

    /// The object's description (`schema.rs`).
    pub fn schema(self) -> Option<&'static schema::Object> {
        schema::object(Dialect::Salesforce, self.name())
    }

    /// Fields a client may not write (as `schema.rs` describes them; unknown ones neither).
    pub fn read_only(self, field: &str) -> bool {
        self.schema()
            .and_then(|o| o.field(field))
            .is_none_or(|f| f.read_only)
    }

    /// Fields a create must carry.
    pub fn required(self) -> Vec<&'static str> {
        self.schema()
            .map(|o| {
                o.fields
                    .iter()
                    .filter(|f| f.required)
                    .map(|f| f.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `field` is an External ID field (upserts and reads may key on it), or `Id`.
    pub fn is_key_field(self, field: &str) -> bool {
        field == "Id"
            || self
                .schema()
                .and_then(|o| o.field(field))
                .is_some_and(|f| f.external_id)
    }
}

/// An 18-character id containing `Fict`: prefix + `Fict` + 8 base-36 digits + `AAA`.
pub(crate) fn id(prefix: &str, index: u64) -> String {
    format!("{prefix}Fict{}AAA", base36(index, 8))
}

/// The index of an id of the given prefix (18-character or 15-character form).
pub(crate) fn parse_id(prefix: &str, id: &str) -> Option<u64> {
    let rest = id.strip_prefix(prefix)?.strip_prefix("Fict")?;
    let digits = match rest.len() {
        11 => rest.strip_suffix("AAA")?,
        8 => rest,
        _ => return None,
    };
    parse_base36(digits)
}

pub(crate) const OWNER_ID: &str = "005Fict00000001AAA";

fn stamp(t: &str) -> String {
    format!("{t}+0000")
}

pub(crate) fn attributes(kind: &str, ver: &str, id: &str) -> Value {
    json!({ "type": kind, "url": format!("/services/data/{ver}/sobjects/{kind}/{id}") })
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn contact_fields(p: &Person, ver: &str, id: &str) -> Map<String, Value> {
    let account_id = p.account.map(|a| self::id(SObject::Account.prefix(), a));
    let individual_id = p.individual.as_ref().map(|_| self::id("0PK", p.index));
    let record = json!({
        "attributes": attributes("Contact", ver, id),
        "Id": id,
        "IsDeleted": false,
        "AccountId": account_id,
        "Salutation": p.salutation,
        "FirstName": p.first_name,
        "LastName": p.last_name,
        "Name": p.full_name(),
        "MailingStreet": opt(&p.street),
        "MailingCity": p.city,
        "MailingState": p.state,
        "MailingPostalCode": p.postal_code,
        "MailingCountry": p.country,
        "MailingAddress": Value::Null,
        "Phone": opt(&p.phone),
        "MobilePhone": opt(&p.mobile),
        "HomePhone": Value::Null,
        "Email": p.email,
        "Title": p.title,
        "Department": p.department,
        "Birthdate": opt(&p.birthdate),
        "LeadSource": p.lead_source,
        "HasOptedOutOfEmail": p.email_opt_out,
        "HasOptedOutOfFax": p.fax_opt_out,
        "DoNotCall": p.do_not_call,
        "IndividualId": individual_id,
        "Ext_Id__c": external_id(p.index),
        "Allergies__c": opt(&p.allergies),
        "Preferred_Store__c": p.preferred_store,
        "Notes__c": opt(&p.notes),
        "OwnerId": OWNER_ID,
        "CreatedDate": stamp(&p.created),
        "CreatedById": OWNER_ID,
        "LastModifiedDate": stamp(&p.modified),
        "LastModifiedById": OWNER_ID,
        "SystemModstamp": stamp(&p.modified),
    });
    into_map(record)
}

/// A generated contact's key in the (fictional) ERP: `ERP-` and six digits of its index.
pub(crate) fn external_id(index: u64) -> String {
    format!("ERP-{index:06}")
}

/// The index of a generated contact by its `Ext_Id__c`, if it looks like one.
pub(crate) fn parse_external_id(value: &str) -> Option<u64> {
    let digits = value.strip_prefix("ERP-")?;
    (digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn lead_fields(p: &Person, company: &str, ver: &str, id: &str) -> Map<String, Value> {
    let individual_id = p.individual.as_ref().map(|_| self::id("0PK", p.index));
    let record = json!({
        "attributes": attributes("Lead", ver, id),
        "Id": id,
        "IsDeleted": false,
        "Salutation": p.salutation,
        "FirstName": p.first_name,
        "LastName": p.last_name,
        "Name": p.full_name(),
        "Company": company,
        "Title": p.title,
        "Street": opt(&p.street),
        "City": p.city,
        "State": p.state,
        "PostalCode": p.postal_code,
        "Country": p.country,
        "Address": Value::Null,
        "Phone": opt(&p.phone),
        "MobilePhone": opt(&p.mobile),
        "Email": p.email,
        "LeadSource": p.lead_source,
        "Status": "Open - Not Contacted",
        "HasOptedOutOfEmail": p.email_opt_out,
        "HasOptedOutOfFax": p.fax_opt_out,
        "DoNotCall": p.do_not_call,
        "IndividualId": individual_id,
        "OwnerId": OWNER_ID,
        "CreatedDate": stamp(&p.created),
        "CreatedById": OWNER_ID,
        "LastModifiedDate": stamp(&p.modified),
        "LastModifiedById": OWNER_ID,
        "SystemModstamp": stamp(&p.modified),
    });
    into_map(record)
}

fn account_fields(c: &Company, ver: &str, id: &str) -> Map<String, Value> {
    let record = json!({
        "attributes": attributes("Account", ver, id),
        "Id": id,
        "IsDeleted": false,
        "Name": c.name,
        "Type": "Customer",
        "BillingCity": c.city,
        "BillingCountry": c.country,
        "Phone": c.phone,
        "Website": format!("https://{}", c.domain),
        "Industry": c.industry,
        "OwnerId": OWNER_ID,
        "CreatedDate": stamp(&c.created),
        "CreatedById": OWNER_ID,
        "LastModifiedDate": stamp(&c.modified),
        "LastModifiedById": OWNER_ID,
        "SystemModstamp": stamp(&c.modified),
    });
    into_map(record)
}

/// The contact's invoice (`Invoice__c` records are one per generated person).
fn invoice_fields(p: &Person, ver: &str, id: &str) -> Map<String, Value> {
    let statuses = ["Draft", "Sent", "Paid", "Overdue"];
    let record = json!({
        "attributes": attributes("Invoice__c", ver, id),
        "Id": id,
        "IsDeleted": false,
        "Name": format!("INV-{:06}", p.index),
        "Contact__c": self::id(SObject::Contact.prefix(), p.index),
        "Invoice_Date__c": format!("2024-{:02}-{:02}", 1 + p.index % 12, 1 + p.index % 28),
        "Amount__c": (p.index % 97 * 25 + 40) as f64 + 0.5,
        "Status__c": statuses[(p.index % 4) as usize],
        "Billing_Email__c": p.email,
        "IBAN__c": opt(&p.iban),
        "OwnerId": OWNER_ID,
        "CreatedDate": stamp(&p.created),
        "CreatedById": OWNER_ID,
        "LastModifiedDate": stamp(&p.modified),
        "LastModifiedById": OWNER_ID,
        "SystemModstamp": stamp(&p.modified),
    });
    into_map(record)
}

pub(crate) fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// System fields kept on records created through the API; everything else starts null.
const SYSTEM_FIELDS: &[&str] = &[
    "attributes",
    "Id",
    "IsDeleted",
    "OwnerId",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "Status",
    "Type",
];

/// The full record (all fields), or `None` when the index does not exist.
pub(crate) fn full(
    double: &CrmDouble,
    object: SObject,
    index: u64,
    ver: &str,
) -> Option<Map<String, Value>> {
    let store = &double.store;
    let kind = object.kind();
    if !store.exists(kind, index) {
        return None;
    }
    let record_id = id(object.prefix(), index);
    let mut record = match object {
        SObject::Contact => contact_fields(&store.gen.person(index), ver, &record_id),
        SObject::Lead => {
            let p = store.gen.person(index);
            let company = store.gen.company(index % store.gen.companies()).name;
            lead_fields(&p, &company, ver, &record_id)
        }
        SObject::Account => account_fields(&store.gen.company(index), ver, &record_id),
        SObject::Invoice => invoice_fields(&store.gen.person(index), ver, &record_id),
    };
    if store.is_created(kind, index) {
        blank_except(&mut record, SYSTEM_FIELDS);
        for flag in ["HasOptedOutOfEmail", "HasOptedOutOfFax", "DoNotCall"] {
            if record.contains_key(flag) {
                record.insert(flag.to_string(), Value::Bool(false));
            }
        }
    }
    apply(&mut record, store.patch(kind, index));
    derive(&mut record);
    Some(record)
}

/// Recomputes derived fields (`Name`, compound addresses) from the flat ones after writes.
fn derive(record: &mut Map<String, Value>) {
    let text =
        |r: &Map<String, Value>, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    if record.contains_key("FirstName") {
        let name = match (text(record, "FirstName"), text(record, "LastName")) {
            (Some(f), Some(l)) => Value::String(format!("{f} {l}")),
            (None, Some(l)) => Value::String(l),
            (Some(f), None) => Value::String(f),
            (None, None) => Value::Null,
        };
        record.insert("Name".into(), name);
    }
    for (compound, prefix) in [("MailingAddress", "Mailing"), ("Address", "")] {
        if !record.contains_key(compound) {
            continue;
        }
        let get = |k: &str| {
            record
                .get(&format!("{prefix}{k}"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let parts = [
            get("Street"),
            get("City"),
            get("State"),
            get("PostalCode"),
            get("Country"),
        ];
        let value = if parts.iter().all(Value::is_null) {
            Value::Null
        } else {
            let [street, city, state, postal_code, country] = parts;
            json!({
                "city": city,
                "country": country,
                "geocodeAccuracy": null,
                "latitude": null,
                "longitude": null,
                "postalCode": postal_code,
                "state": state,
                "street": street,
            })
        };
        record.insert(compound.to_string(), value);
    }
}

/// The consent flags of the person's Individual record.
pub(crate) fn individual(double: &CrmDouble, index: u64, ver: &str) -> Option<Map<String, Value>> {
    let store = &double.store;
    if store.is_created(SObject::Contact.kind(), index) {
        return None;
    }
    let p = store.gen.person(index);
    let ind = p.individual.as_ref()?;
    let ind_id = id("0PK", index);
    Some(into_map(json!({
        "attributes": attributes("Individual", ver, &ind_id),
        "Id": ind_id,
        "FirstName": p.first_name,
        "LastName": p.last_name,
        "HasOptedOutProcessing": ind.has_opted_out_processing,
        "HasOptedOutProfiling": ind.has_opted_out_profiling,
        "HasOptedOutSolicit": ind.has_opted_out_solicit,
        "HasOptedOutTracking": ind.has_opted_out_tracking,
        "CanStorePiiElsewhere": ind.can_store_pii_elsewhere,
    })))
}

/// The person's support cases, full fields.
pub(crate) fn cases(double: &CrmDouble, index: u64, ver: &str) -> Vec<Map<String, Value>> {
    let store = &double.store;
    if store.is_created(SObject::Contact.kind(), index) {
        return Vec::new();
    }
    let p = store.gen.person(index);
    (0..u64::from(p.cases))
        .map(|k| {
            let n = index.saturating_mul(3).saturating_add(k);
            let case_id = id("500", n);
            into_map(json!({
                "attributes": attributes("Case", ver, &case_id),
                "Id": case_id,
                "CaseNumber": format!("{:08}", n + 1000),
                "Subject": "Question about an order (fictional)",
                "Status": if k == 0 { "New" } else { "Closed" },
                "Origin": "Email",
                "SuppliedName": p.full_name(),
                "SuppliedEmail": p.email,
                "ContactId": id(SObject::Contact.prefix(), index),
            }))
        })
        .collect()
}

/// Keeps `attributes` and the named fields (already in canonical case), in that order.
pub(crate) fn pick(record: &Map<String, Value>, fields: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(a) = record.get("attributes") {
        out.insert("attributes".into(), a.clone());
    }
    for f in fields {
        out.insert(f.clone(), record.get(f).cloned().unwrap_or(Value::Null));
    }
    out
}

/// The canonical spelling of a field of `record`, matched case-insensitively as SOQL does.
pub(crate) fn canonical(record: &Map<String, Value>, name: &str) -> Option<String> {
    record
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name) && k.as_str() != "attributes")
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_contain_fict() {
        let i = id("003", 123_456);
        assert_eq!(i.len(), 18);
        assert!(i.contains("Fict"));
        assert_eq!(parse_id("003", &i), Some(123_456));
        assert_eq!(parse_id("003", &i[..15]), Some(123_456));
        assert_eq!(parse_id("001", &i), None);
        assert_eq!(parse_id("003", "003FictXXAAA"), None);
    }
}
