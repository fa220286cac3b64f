//! One description of every object the double serves: its fields, their kinds and labels.
//!
//! The metadata endpoints of all three dialects are rendered from these tables (Salesforce
//! `describe` and describeGlobal, HubSpot properties, Dataverse `EntityDefinitions` and
//! `$metadata`), and a test holds the rendered records to them (every key a record carries is
//! described, every described field is in the record). So adding a field, or a custom object,
//! is a line of data here plus its value in the record generator; the metadata follows.
//! Inventory discovery (issue 13) reads these endpoints, so what they say must be what the
//! records are.

use super::Dialect;

/// What a field holds, independent of how a dialect names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The record's own id (primary key).
    Id,
    /// A short string of at most this many characters.
    Text(u32),
    /// A long string.
    TextArea(u32),
    Email,
    Phone,
    Url,
    Date,
    DateTime,
    Bool,
    /// One value of a fixed list.
    Picklist(&'static [&'static str]),
    /// Several values of a fixed list (HubSpot and Salesforce join them with `;`).
    MultiPicklist(&'static [&'static str]),
    /// The id of another record: its object(s) and the relationship's name.
    Reference {
        to: &'static [&'static str],
        relationship: &'static str,
    },
    /// A Salesforce compound address (read-only; its parts are fields of their own).
    Address,
    /// An amount of money.
    Currency,
}

/// One field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The API name (Salesforce `Email`, HubSpot `email`, Dataverse `emailaddress1`).
    pub name: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    /// Set by the system; clients may not write it.
    pub read_only: bool,
    /// A create must carry it.
    pub required: bool,
    /// A key from another system (Salesforce External ID): upserts and reads may use it.
    pub external_id: bool,
    /// Part of a compound field (Salesforce `MailingCity` of `MailingAddress`).
    pub compound: Option<&'static str>,
    /// Added by the customer, not shipped by the CRM (`__c`).
    pub custom: bool,
    /// What the org says about the field's data (Salesforce data classification, HubSpot
    /// sensitive data): discovery reads it as evidence.
    pub class: Class,
}

/// The org's own classification of a field, as the CRMs store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Class {
    /// Salesforce `FieldDefinition.ComplianceGroup` (a `;`-joined multipicklist).
    pub compliance: Option<&'static str>,
    /// Salesforce `FieldDefinition.SecurityClassification`.
    pub security: Option<&'static str>,
    /// HubSpot `dataSensitivity`: `non_sensitive`, `sensitive` or `highly_sensitive`.
    pub sensitivity: &'static str,
    /// HubSpot `sensitiveDataCategories` (for sensitive properties only).
    pub categories: &'static [&'static str],
}

/// No classification: what a field carries unless the org set one.
pub(crate) const UNCLASSIFIED: Class = Class {
    compliance: None,
    security: None,
    sensitivity: "non_sensitive",
    categories: &[],
};

/// A Salesforce classification.
const fn sf_class(compliance: &'static str, security: &'static str) -> Class {
    Class {
        compliance: Some(compliance),
        security: Some(security),
        ..UNCLASSIFIED
    }
}

/// A HubSpot sensitive-data classification.
const fn hs_class(sensitivity: &'static str, categories: &'static [&'static str]) -> Class {
    Class {
        sensitivity,
        categories,
        ..UNCLASSIFIED
    }
}

/// A field with the org's classification.
const fn classed(field: Field, class: Class) -> Field {
    Field { class, ..field }
}

/// A field the customer added.
const fn custom(field: Field) -> Field {
    Field {
        custom: true,
        ..field
    }
}

/// A field that clients may write, none of the flags set.
const fn f(name: &'static str, label: &'static str, kind: Kind) -> Field {
    Field {
        name,
        label,
        kind,
        read_only: false,
        required: false,
        external_id: false,
        compound: None,
        custom: false,
        class: UNCLASSIFIED,
    }
}

/// A field set by the system.
const fn ro(name: &'static str, label: &'static str, kind: Kind) -> Field {
    Field {
        read_only: true,
        ..f(name, label, kind)
    }
}

/// A field a create must carry.
const fn req(name: &'static str, label: &'static str, kind: Kind) -> Field {
    Field {
        required: true,
        ..f(name, label, kind)
    }
}

/// A part of a compound field.
const fn part(name: &'static str, label: &'static str, kind: Kind, of: &'static str) -> Field {
    Field {
        compound: Some(of),
        ..f(name, label, kind)
    }
}

/// A reference to another record.
const fn reference(
    name: &'static str,
    label: &'static str,
    to: &'static [&'static str],
    relationship: &'static str,
) -> Field {
    f(name, label, Kind::Reference { to, relationship })
}

/// A child relationship: records of `child` point at this object through `field`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Child {
    pub child: &'static str,
    pub field: &'static str,
    pub relationship: &'static str,
}

/// One object of one dialect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Object {
    pub dialect: Dialect,
    /// API name (`Contact`, `contacts`, `contact`).
    pub name: &'static str,
    pub label: &'static str,
    pub plural: &'static str,
    /// Salesforce key prefix, HubSpot object type id (`0-1`), Dataverse entity set name.
    pub key: &'static str,
    /// The field that names a record (Salesforce `Name`, Dataverse primary name attribute).
    pub name_field: &'static str,
    pub fields: &'static [Field],
    pub children: &'static [Child],
}

impl Object {
    /// A field by its API name.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

const SALUTATIONS: &[&str] = &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."];
const LEAD_SOURCES: &[&str] = &["Web", "Phone Inquiry", "Partner Referral", "Trade Show"];
const LEAD_STATUSES: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];
const ACCOUNT_TYPES: &[&str] = &["Prospect", "Customer", "Partner", "Other"];
const INDUSTRIES: &[&str] = &[
    "Manufacturing",
    "Retail",
    "Technology",
    "Transportation",
    "Food & Beverage",
];
const CASE_STATUSES: &[&str] = &["New", "Working", "Escalated", "Closed"];
const CASE_ORIGINS: &[&str] = &["Phone", "Email", "Web"];
const USER: &[&str] = &["User"];
const SYSTEM_AUDIT: [Field; 5] = [
    ro("CreatedDate", "Created Date", Kind::DateTime),
    ro(
        "CreatedById",
        "Created By ID",
        Kind::Reference {
            to: USER,
            relationship: "CreatedBy",
        },
    ),
    ro("LastModifiedDate", "Last Modified Date", Kind::DateTime),
    ro(
        "LastModifiedById",
        "Last Modified By ID",
        Kind::Reference {
            to: USER,
            relationship: "LastModifiedBy",
        },
    ),
    ro("SystemModstamp", "System Modstamp", Kind::DateTime),
];

/// Salesforce Contact, in the order the double renders its fields.
const SF_CONTACT: &[Field] = &[
    ro("Id", "Contact ID", Kind::Id),
    ro("IsDeleted", "Deleted", Kind::Bool),
    reference("AccountId", "Account ID", &["Account"], "Account"),
    f("Salutation", "Salutation", Kind::Picklist(SALUTATIONS)),
    f("FirstName", "First Name", Kind::Text(40)),
    req("LastName", "Last Name", Kind::Text(80)),
    ro("Name", "Full Name", Kind::Text(121)),
    part(
        "MailingStreet",
        "Mailing Street",
        Kind::TextArea(255),
        "MailingAddress",
    ),
    part(
        "MailingCity",
        "Mailing City",
        Kind::Text(40),
        "MailingAddress",
    ),
    part(
        "MailingState",
        "Mailing State/Province",
        Kind::Text(80),
        "MailingAddress",
    ),
    part(
        "MailingPostalCode",
        "Mailing Zip/Postal Code",
        Kind::Text(20),
        "MailingAddress",
    ),
    part(
        "MailingCountry",
        "Mailing Country",
        Kind::Text(80),
        "MailingAddress",
    ),
    ro("MailingAddress", "Mailing Address", Kind::Address),
    classed(
        f("Phone", "Business Phone", Kind::Phone),
        sf_class("PII;GDPR", "Confidential"),
    ),
    classed(
        f("MobilePhone", "Mobile Phone", Kind::Phone),
        sf_class("PII;GDPR", "Confidential"),
    ),
    f("HomePhone", "Home Phone", Kind::Phone),
    classed(
        f("Email", "Email", Kind::Email),
        sf_class("PII;GDPR", "Confidential"),
    ),
    f("Title", "Title", Kind::Text(128)),
    f("Department", "Department", Kind::Text(80)),
    classed(
        f("Birthdate", "Birthdate", Kind::Date),
        sf_class("GDPR", "Restricted"),
    ),
    f("LeadSource", "Lead Source", Kind::Picklist(LEAD_SOURCES)),
    f("HasOptedOutOfEmail", "Email Opt Out", Kind::Bool),
    f("HasOptedOutOfFax", "Fax Opt Out", Kind::Bool),
    f("DoNotCall", "Do Not Call", Kind::Bool),
    reference(
        "IndividualId",
        "Individual ID",
        &["Individual"],
        "Individual",
    ),
    Field {
        external_id: true,
        custom: true,
        ..f("Ext_Id__c", "ERP Contact ID", Kind::Text(40))
    },
    // the org's own fields: a health field it classified, a harmless one, and free text
    // that holds e-mail addresses and phone numbers in some records
    classed(
        custom(f("Allergies__c", "Allergies", Kind::TextArea(255))),
        sf_class("GDPR;HIPAA", "Restricted"),
    ),
    custom(f("Preferred_Store__c", "Preferred Store", Kind::Text(80))),
    custom(f("Notes__c", "Notes", Kind::TextArea(32768))),
    reference("OwnerId", "Owner ID", USER, "Owner"),
    SYSTEM_AUDIT[0],
    SYSTEM_AUDIT[1],
    SYSTEM_AUDIT[2],
    SYSTEM_AUDIT[3],
    SYSTEM_AUDIT[4],
];

const SF_LEAD: &[Field] = &[
    ro("Id", "Lead ID", Kind::Id),
    ro("IsDeleted", "Deleted", Kind::Bool),
    f("Salutation", "Salutation", Kind::Picklist(SALUTATIONS)),
    f("FirstName", "First Name", Kind::Text(40)),
    req("LastName", "Last Name", Kind::Text(80)),
    ro("Name", "Full Name", Kind::Text(121)),
    req("Company", "Company", Kind::Text(255)),
    f("Title", "Title", Kind::Text(128)),
    part("Street", "Street", Kind::TextArea(255), "Address"),
    part("City", "City", Kind::Text(40), "Address"),
    part("State", "State/Province", Kind::Text(80), "Address"),
    part("PostalCode", "Zip/Postal Code", Kind::Text(20), "Address"),
    part("Country", "Country", Kind::Text(80), "Address"),
    ro("Address", "Address", Kind::Address),
    f("Phone", "Phone", Kind::Phone),
    f("MobilePhone", "Mobile Phone", Kind::Phone),
    f("Email", "Email", Kind::Email),
    f("LeadSource", "Lead Source", Kind::Picklist(LEAD_SOURCES)),
    f("Status", "Status", Kind::Picklist(LEAD_STATUSES)),
    f("HasOptedOutOfEmail", "Email Opt Out", Kind::Bool),
    f("HasOptedOutOfFax", "Fax Opt Out", Kind::Bool),
    f("DoNotCall", "Do Not Call", Kind::Bool),
    reference(
        "IndividualId",
        "Individual ID",
        &["Individual"],
        "Individual",
    ),
    reference("OwnerId", "Owner ID", USER, "Owner"),
    SYSTEM_AUDIT[0],
    SYSTEM_AUDIT[1],
    SYSTEM_AUDIT[2],
    SYSTEM_AUDIT[3],
    SYSTEM_AUDIT[4],
];

const SF_ACCOUNT: &[Field] = &[
    ro("Id", "Account ID", Kind::Id),
    ro("IsDeleted", "Deleted", Kind::Bool),
    req("Name", "Account Name", Kind::Text(255)),
    f("Type", "Account Type", Kind::Picklist(ACCOUNT_TYPES)),
    f("BillingCity", "Billing City", Kind::Text(40)),
    f("BillingCountry", "Billing Country", Kind::Text(80)),
    f("Phone", "Account Phone", Kind::Phone),
    f("Website", "Website", Kind::Url),
    f("Industry", "Industry", Kind::Picklist(INDUSTRIES)),
    reference("OwnerId", "Owner ID", USER, "Owner"),
    SYSTEM_AUDIT[0],
    SYSTEM_AUDIT[1],
    SYSTEM_AUDIT[2],
    SYSTEM_AUDIT[3],
    SYSTEM_AUDIT[4],
];

const SF_CASE: &[Field] = &[
    ro("Id", "Case ID", Kind::Id),
    ro("CaseNumber", "Case Number", Kind::Text(30)),
    f("Subject", "Subject", Kind::Text(255)),
    f("Status", "Status", Kind::Picklist(CASE_STATUSES)),
    f("Origin", "Case Origin", Kind::Picklist(CASE_ORIGINS)),
    f("SuppliedName", "Web Name", Kind::Text(80)),
    f("SuppliedEmail", "Web Email", Kind::Email),
    reference("ContactId", "Contact ID", &["Contact"], "Contact"),
];

const SF_INDIVIDUAL: &[Field] = &[
    ro("Id", "Individual ID", Kind::Id),
    f("FirstName", "First Name", Kind::Text(40)),
    req("LastName", "Last Name", Kind::Text(80)),
    f("HasOptedOutProcessing", "Don't Process", Kind::Bool),
    f("HasOptedOutProfiling", "Don't Profile", Kind::Bool),
    f("HasOptedOutSolicit", "Don't Solicit", Kind::Bool),
    f("HasOptedOutTracking", "Don't Track", Kind::Bool),
    f(
        "CanStorePiiElsewhere",
        "OK to Store PII Data Elsewhere",
        Kind::Bool,
    ),
];

const INVOICE_STATUSES: &[&str] = &["Draft", "Sent", "Paid", "Overdue"];

/// Salesforce `Invoice__c`: the org's custom object, one invoice per contact.
const SF_INVOICE: &[Field] = &[
    ro("Id", "Record ID", Kind::Id),
    ro("IsDeleted", "Deleted", Kind::Bool),
    ro("Name", "Invoice Number", Kind::Text(80)),
    custom(reference(
        "Contact__c",
        "Bill To",
        &["Contact"],
        "Contact__r",
    )),
    custom(f("Invoice_Date__c", "Invoice Date", Kind::Date)),
    custom(f("Amount__c", "Amount", Kind::Currency)),
    custom(f("Status__c", "Status", Kind::Picklist(INVOICE_STATUSES))),
    classed(
        custom(f("Billing_Email__c", "Billing Email", Kind::Email)),
        sf_class("PII;GDPR", "Confidential"),
    ),
    custom(f("IBAN__c", "Bank Account (IBAN)", Kind::Text(34))),
    reference("OwnerId", "Owner ID", USER, "Owner"),
    SYSTEM_AUDIT[0],
    SYSTEM_AUDIT[1],
    SYSTEM_AUDIT[2],
    SYSTEM_AUDIT[3],
    SYSTEM_AUDIT[4],
];

const LEGAL_BASES: &[&str] = &[
    "Legitimate interest \u{2013} prospect/lead",
    "Legitimate interest \u{2013} existing customer",
    "Performance of a contract",
    "Freely given consent from contact",
    "Not applicable",
];
const HS_INDUSTRIES: &[&str] = &[
    "Manufacturing",
    "Retail",
    "Technology",
    "Transportation",
    "Food & Beverage",
];

/// HubSpot contact properties, in the order the double renders them.
const HS_CONTACT: &[Field] = &[
    ro("createdate", "Create Date", Kind::DateTime),
    f("email", "Email", Kind::Email),
    f("firstname", "First Name", Kind::Text(255)),
    f("lastname", "Last Name", Kind::Text(255)),
    f("phone", "Phone Number", Kind::Phone),
    f("mobilephone", "Mobile Phone Number", Kind::Phone),
    f("date_of_birth", "Date of birth", Kind::Date),
    f("address", "Street Address", Kind::Text(255)),
    f("city", "City", Kind::Text(255)),
    f("zip", "Postal Code", Kind::Text(255)),
    f("country", "Country/Region", Kind::Text(255)),
    f(
        "hs_legal_basis",
        "Legal basis for processing contact's data",
        Kind::MultiPicklist(LEGAL_BASES),
    ),
    f("hs_email_optout", "Unsubscribed from all email", Kind::Bool),
    ro("hs_object_id", "Record ID", Kind::Id),
    ro("lastmodifieddate", "Last Modified Date", Kind::DateTime),
    // the portal's own properties: one it marked highly sensitive (health), a harmless one
    // and free text (listed only with `dataSensitivity=...` when sensitive)
    classed(
        custom(f("allergies", "Allergies", Kind::TextArea(65536))),
        hs_class("highly_sensitive", &["HEALTH"]),
    ),
    custom(f("preferred_store", "Preferred store", Kind::Text(255))),
    custom(f("notes", "Notes", Kind::TextArea(65536))),
];

/// A HubSpot custom object (`2-...`): the portal's invoices.
const HS_INVOICE: &[Field] = &[
    custom(req("invoice_number", "Invoice number", Kind::Text(255))),
    custom(f("invoice_date", "Invoice date", Kind::Date)),
    custom(f("amount", "Amount", Kind::Currency)),
    custom(f("status", "Status", Kind::Picklist(INVOICE_STATUSES))),
    classed(
        custom(f("billing_email", "Billing email", Kind::Email)),
        hs_class("sensitive", &["PERSONAL_IDENTIFIABLE_INFORMATION"]),
    ),
    ro("hs_object_id", "Record ID", Kind::Id),
    ro("hs_createdate", "Object create date/time", Kind::DateTime),
    ro(
        "hs_lastmodifieddate",
        "Object last modified date/time",
        Kind::DateTime,
    ),
];

const HS_COMPANY: &[Field] = &[
    ro("createdate", "Create Date", Kind::DateTime),
    f("domain", "Company Domain Name", Kind::Text(255)),
    f("name", "Name", Kind::Text(255)),
    f("phone", "Phone Number", Kind::Phone),
    f("city", "City", Kind::Text(255)),
    f("country", "Country/Region", Kind::Text(255)),
    f("industry", "Industry", Kind::Picklist(HS_INDUSTRIES)),
    ro("hs_object_id", "Record ID", Kind::Id),
    ro("lastmodifieddate", "Last Modified Date", Kind::DateTime),
];

/// Dataverse contact columns (attribute logical names; the lookup `parentcustomerid` is
/// `_parentcustomerid_value` on the wire), in the order the double renders them.
const DV_CONTACT: &[Field] = &[
    ro("contactid", "Contact", Kind::Id),
    f("firstname", "First Name", Kind::Text(50)),
    req("lastname", "Last Name", Kind::Text(50)),
    ro("fullname", "Full Name", Kind::Text(160)),
    f("emailaddress1", "Email", Kind::Email),
    f("telephone1", "Business Phone", Kind::Phone),
    f("mobilephone", "Mobile Phone", Kind::Phone),
    f("birthdate", "Birthday", Kind::Date),
    f("jobtitle", "Job Title", Kind::Text(100)),
    f("address1_line1", "Address 1: Street 1", Kind::Text(250)),
    f("address1_city", "Address 1: City", Kind::Text(80)),
    f(
        "address1_postalcode",
        "Address 1: ZIP/Postal Code",
        Kind::Text(20),
    ),
    f(
        "address1_country",
        "Address 1: Country/Region",
        Kind::Text(80),
    ),
    f("donotemail", "Do not allow Emails", Kind::Bool),
    f("donotbulkemail", "Do not allow Bulk Emails", Kind::Bool),
    f("donotphone", "Do not allow Phone Calls", Kind::Bool),
    f("donotpostalmail", "Do not allow Mails", Kind::Bool),
    f("donotfax", "Do not allow Faxes", Kind::Bool),
    f("msdyn_gdproptout", "GDPR Optout", Kind::Bool),
    reference(
        "parentcustomerid",
        "Company Name",
        &["account", "contact"],
        "parentcustomerid_account",
    ),
    ro("createdon", "Created On", Kind::DateTime),
    ro("modifiedon", "Modified On", Kind::DateTime), // the environment's own columns (publisher prefix `cr123_`)
    custom(f("cr123_allergies", "Allergies", Kind::TextArea(2000))),
    custom(f(
        "cr123_preferredstore",
        "Preferred Store",
        Kind::Text(100),
    )),
    custom(f("cr123_notes", "Notes", Kind::TextArea(4000))),
];

/// A Dataverse custom table: the environment's invoices.
const DV_INVOICE: &[Field] = &[
    ro("cr123_invoiceid", "Invoice", Kind::Id),
    custom(req("cr123_name", "Invoice Number", Kind::Text(100))),
    custom(f("cr123_invoicedate", "Invoice Date", Kind::Date)),
    custom(f("cr123_amount", "Amount", Kind::Currency)),
    custom(f("cr123_billingemail", "Billing Email", Kind::Email)),
    custom(reference(
        "cr123_contactid",
        "Bill To",
        &["contact"],
        "cr123_contactid_contact",
    )),
    ro("createdon", "Created On", Kind::DateTime),
    ro("modifiedon", "Modified On", Kind::DateTime),
];

const DV_ACCOUNT: &[Field] = &[
    req("name", "Account Name", Kind::Text(160)),
    f("telephone1", "Main Phone", Kind::Phone),
    f("websiteurl", "Website", Kind::Url),
    f("address1_city", "Address 1: City", Kind::Text(80)),
    f(
        "address1_country",
        "Address 1: Country/Region",
        Kind::Text(80),
    ),
    ro("createdon", "Created On", Kind::DateTime),
    ro("accountid", "Account", Kind::Id),
];

/// Every object the double serves, per dialect, in the order metadata lists them.
pub(crate) const OBJECTS: &[Object] = &[
    Object {
        dialect: Dialect::Salesforce,
        name: "Account",
        label: "Account",
        plural: "Accounts",
        key: "001",
        name_field: "Name",
        fields: SF_ACCOUNT,
        children: &[Child {
            child: "Contact",
            field: "AccountId",
            relationship: "Contacts",
        }],
    },
    Object {
        dialect: Dialect::Salesforce,
        name: "Case",
        label: "Case",
        plural: "Cases",
        key: "500",
        name_field: "CaseNumber",
        fields: SF_CASE,
        children: &[],
    },
    Object {
        dialect: Dialect::Salesforce,
        name: "Contact",
        label: "Contact",
        plural: "Contacts",
        key: "003",
        name_field: "Name",
        fields: SF_CONTACT,
        children: &[Child {
            child: "Case",
            field: "ContactId",
            relationship: "Cases",
        }],
    },
    Object {
        dialect: Dialect::Salesforce,
        name: "Individual",
        label: "Individual",
        plural: "Individuals",
        key: "0PK",
        name_field: "LastName",
        fields: SF_INDIVIDUAL,
        children: &[],
    },
    Object {
        dialect: Dialect::Salesforce,
        name: "Invoice__c",
        label: "Invoice",
        plural: "Invoices",
        key: "a0I",
        name_field: "Name",
        fields: SF_INVOICE,
        children: &[],
    },
    Object {
        dialect: Dialect::Salesforce,
        name: "Lead",
        label: "Lead",
        plural: "Leads",
        key: "00Q",
        name_field: "Name",
        fields: SF_LEAD,
        children: &[],
    },
    Object {
        dialect: Dialect::HubSpot,
        name: "contacts",
        label: "Contact",
        plural: "Contacts",
        key: "0-1",
        name_field: "email",
        fields: HS_CONTACT,
        children: &[],
    },
    Object {
        dialect: Dialect::HubSpot,
        name: "companies",
        label: "Company",
        plural: "Companies",
        key: "0-2",
        name_field: "name",
        fields: HS_COMPANY,
        children: &[],
    },
    Object {
        dialect: Dialect::HubSpot,
        name: "invoices",
        label: "Invoice",
        plural: "Invoices",
        key: "2-7654321",
        name_field: "invoice_number",
        fields: HS_INVOICE,
        children: &[],
    },
    Object {
        dialect: Dialect::Dynamics,
        name: "account",
        label: "Account",
        plural: "Accounts",
        key: "accounts",
        name_field: "name",
        fields: DV_ACCOUNT,
        children: &[],
    },
    Object {
        dialect: Dialect::Dynamics,
        name: "contact",
        label: "Contact",
        plural: "Contacts",
        key: "contacts",
        name_field: "fullname",
        fields: DV_CONTACT,
        children: &[],
    },
    Object {
        dialect: Dialect::Dynamics,
        name: "cr123_invoice",
        label: "Invoice",
        plural: "Invoices",
        key: "cr123_invoices",
        name_field: "cr123_name",
        fields: DV_INVOICE,
        children: &[],
    },
];

/// Whether the object is the customer's own (Salesforce `__c`, HubSpot `2-...`, Dataverse
/// custom table), not one the CRM ships.
pub(crate) fn is_custom(o: &Object) -> bool {
    o.name.ends_with("__c") || o.key.starts_with("2-") || o.name.starts_with("cr123_")
}

/// The objects of one dialect.
pub(crate) fn objects(dialect: Dialect) -> impl Iterator<Item = &'static Object> {
    OBJECTS.iter().filter(move |o| o.dialect == dialect)
}

/// An object of a dialect by name (Salesforce and Dataverse names match case-insensitively,
/// as their APIs do; HubSpot also by object type id).
pub(crate) fn object(dialect: Dialect, name: &str) -> Option<&'static Object> {
    objects(dialect).find(|o| {
        o.name.eq_ignore_ascii_case(name)
            || (dialect == Dialect::HubSpot && o.key == name)
            || (dialect == Dialect::HubSpot && o.label.eq_ignore_ascii_case(name))
    })
}

/// A stable GUID for a metadata item (Dataverse `MetadataId`): the same names always give
/// the same id.
pub(crate) fn metadata_id(parts: &[&str]) -> String {
    // FNV-1a over the names: no hashing crate for a fixture id
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.join("/").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let l = h.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (l >> 52) & 0xfff,
        l & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_object_and_objects_per_dialect() {
        for o in OBJECTS {
            let mut seen = std::collections::HashSet::new();
            for f in o.fields {
                assert!(seen.insert(f.name), "{}.{} twice", o.name, f.name);
            }
            assert!(o.field(o.name_field).is_some(), "{}: name field", o.name);
            assert_eq!(
                o.fields.iter().filter(|f| f.kind == Kind::Id).count(),
                1,
                "{}: one id",
                o.name
            );
        }
        for d in [Dialect::Salesforce, Dialect::HubSpot, Dialect::Dynamics] {
            let names: Vec<&str> = objects(d).map(|o| o.name).collect();
            let mut unique = names.clone();
            unique.dedup();
            assert_eq!(names, unique);
        }
    }

    #[test]
    fn compound_parts_and_references_point_at_what_exists() {
        for o in OBJECTS {
            for f in o.fields {
                if let Some(c) = f.compound {
                    assert_eq!(o.field(c).map(|c| c.kind), Some(Kind::Address));
                }
                if let Kind::Reference { to, .. } = f.kind {
                    for t in to {
                        assert!(*t == "User" || object(o.dialect, t).is_some(), "{t}");
                    }
                }
            }
            for c in o.children {
                let child = object(o.dialect, c.child).expect("child object");
                assert!(child.field(c.field).is_some());
            }
        }
    }

    #[test]
    fn metadata_ids_are_stable_guids() {
        let a = metadata_id(&["contact", "emailaddress1"]);
        assert_eq!(a, metadata_id(&["contact", "emailaddress1"]));
        assert_ne!(a, metadata_id(&["contact", "firstname"]));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
