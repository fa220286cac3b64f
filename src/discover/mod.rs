//! Inventory discovery (`zweck inventory discover`): reads what a CRM says about its own
//! objects and fields, suggests a category per field with the evidence behind it, and writes
//! an inventory in the shipped format plus a review report.
//!
//! Why: an org has thousands of fields; classifying them all by hand before Zweck governs
//! anything is where adoption stops. The CRMs know field types and often the org's own
//! classification (Salesforce ComplianceGroup, HubSpot dataSensitivity), so discovery starts
//! from that, and leaves every uncertain field `unclassified  # review` (still dropped: the
//! default deny holds until a person decides).
//!
//! The metadata is read through the configured upstream ([`crate::upstream::Upstream`]): its
//! TLS settings and injected credential, never through an app-facing route. One reader per
//! dialect ([`salesforce`], [`hubspot`], [`dynamics`]) produces the dialect-neutral
//! [`Discovered`] model; [`classify`] turns each field into a [`classify::Suggestion`];
//! [`yaml`] writes (or merges into) an inventory; [`report`] summarises for reviewers.

pub mod classify;
mod client;
mod dynamics;
mod hubspot;
pub mod report;
mod salesforce;
pub mod sample;
pub mod yaml;

use crate::config::UpstreamConfig;
use crate::dialect::Dialect;

pub use client::MetadataClient;

/// What went wrong while discovering; never carries a field value.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("no upstream named `{0}` in the config")]
    UnknownUpstream(String),
    #[error("upstream `{upstream}` has dialect `{dialect}`: discovery reads salesforce, hubspot or dynamics")]
    UnsupportedDialect { upstream: String, dialect: Dialect },
    #[error("upstream `{0}` could not be set up: {1}")]
    Setup(String, String),
    #[error("upstream `{upstream}`: GET {path} failed: {reason}")]
    Request {
        upstream: String,
        path: String,
        reason: String,
    },
    #[error("upstream `{upstream}`: GET {path} answered {status}")]
    Status {
        upstream: String,
        path: String,
        status: u16,
    },
    #[error("upstream `{upstream}`: GET {path} answered no JSON of the expected shape ({what})")]
    Shape {
        upstream: String,
        path: String,
        what: &'static str,
    },
    #[error("unknown object(s) asked for with --objects: {0}")]
    UnknownObjects(String),
}

/// A field type as the CRMs name it, folded to what the classifier needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    Reference,
    Text,
    TextArea,
    Email,
    Phone,
    Url,
    Date,
    DateTime,
    Bool,
    Picklist,
    Number,
    Currency,
    Address,
    Other,
}

impl FieldType {
    /// The evidence comment's word for it.
    pub fn word(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::Text => "text",
            FieldType::TextArea => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Bool => "boolean",
            FieldType::Picklist => "picklist",
            FieldType::Number => "number",
            FieldType::Currency => "currency",
            FieldType::Address => "address",
            FieldType::Other => "other",
        }
    }
}

/// One field as the CRM describes it.
#[derive(Debug, Clone)]
pub struct DiscoveredField {
    /// The API name (`Email`, `email`, `emailaddress1`).
    pub name: String,
    pub label: String,
    pub field_type: FieldType,
    /// The CRM's own spelling of the type (`email`, `phonenumber`, `Memo`), for evidence.
    pub wire_type: String,
    pub custom: bool,
    /// The JSONPath of the field in a record (`$.Email`, `$.properties.email`).
    pub path: String,
    /// Salesforce ComplianceGroup values.
    pub compliance: Vec<String>,
    /// Salesforce SecurityClassification.
    pub security: Option<String>,
    /// HubSpot dataSensitivity when not `non_sensitive`.
    pub sensitivity: Option<String>,
    /// HubSpot sensitiveDataCategories.
    pub sensitive_categories: Vec<String>,
}

/// One object (Salesforce sObject, HubSpot object type, Dataverse table).
#[derive(Debug, Clone)]
pub struct DiscoveredObject {
    /// The inventory resource name (`Contact`, `contacts`, `contact`).
    pub name: String,
    pub label: String,
    pub custom: bool,
    /// Route segment(s) for record URLs: Salesforce the name, HubSpot the object type id and
    /// names, Dataverse the entity set name.
    pub route_names: Vec<String>,
    /// Names a record's type key may carry (HubSpot `types`, Dataverse entity set).
    pub types: Vec<String>,
    pub fields: Vec<DiscoveredField>,
    /// Nested records (Salesforce parent relationships and child subqueries): (path in the
    /// record, the related object's name). Written as `children:` when that object is
    /// discovered too.
    pub relations: Vec<(String, String)>,
}

/// Everything one run read.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub dialect: Dialect,
    pub upstream: String,
    pub objects: Vec<DiscoveredObject>,
    /// The API root records are read under (Salesforce `/services/data/vNN.N`).
    pub api_base: String,
    /// Requests made (for the report).
    pub requests: usize,
}

/// Which objects to read: all (`None`) or the named ones.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub objects: Option<Vec<String>>,
}

/// Discovers, classifies and, with `sample` > 0, samples that many records per object for
/// the fields left for review (values are matched in memory only).
///
/// # Errors
/// As [`discover`], and a failed record read while sampling.
pub async fn discover_and_classify(
    upstreams: &[UpstreamConfig],
    upstream: &str,
    options: &Options,
    sample_records: u32,
) -> Result<(Discovered, Vec<yaml::Classified>), DiscoverError> {
    let client = client_for(upstreams, upstream)?;
    let found = read(&client, options).await?;
    let mut classified = yaml::classify_all(&found);
    if sample_records > 0 {
        sample::sample(&client, &found, &mut classified, sample_records).await?;
    }
    Ok((found, classified))
}

/// Reads the metadata of `upstream` (by name, from the config's upstreams).
///
/// # Errors
/// An unknown upstream, an unsupported dialect, a failed or unexpected metadata request.
pub async fn discover(
    upstreams: &[UpstreamConfig],
    upstream: &str,
    options: &Options,
) -> Result<Discovered, DiscoverError> {
    let client = client_for(upstreams, upstream)?;
    read(&client, options).await
}

/// The metadata client of the upstream named `upstream`.
fn client_for(
    upstreams: &[UpstreamConfig],
    upstream: &str,
) -> Result<MetadataClient, DiscoverError> {
    let config = upstreams
        .iter()
        .find(|u| u.name == upstream)
        .ok_or_else(|| DiscoverError::UnknownUpstream(upstream.to_string()))?;
    MetadataClient::new(config.clone())
}

async fn read(client: &MetadataClient, options: &Options) -> Result<Discovered, DiscoverError> {
    let config = client.config();
    let upstream = config.name.as_str();
    let wanted = options.objects.as_deref();
    let (objects, api_base) = match config.dialect {
        Dialect::Salesforce => salesforce::read(client, wanted).await?,
        Dialect::HubSpot => (hubspot::read(client, wanted).await?, "/crm/v3".into()),
        Dialect::Dynamics => (
            dynamics::read(client, wanted).await?,
            "/api/data/v9.2".into(),
        ),
        Dialect::Generic => {
            return Err(DiscoverError::UnsupportedDialect {
                upstream: upstream.to_string(),
                dialect: config.dialect,
            })
        }
    };
    if let Some(w) = wanted {
        let missing: Vec<&str> = w
            .iter()
            .filter(|n| !objects.iter().any(|o| o.name.eq_ignore_ascii_case(n)))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(DiscoverError::UnknownObjects(missing.join(", ")));
        }
    }
    Ok(Discovered {
        dialect: config.dialect,
        upstream: upstream.to_string(),
        objects,
        api_base,
        requests: client.requests(),
    })
}

/// Whether `name` is among the wanted objects (all when none are named).
fn wanted(wanted: Option<&[String]>, name: &str) -> bool {
    wanted.is_none_or(|w| w.iter().any(|n| n.eq_ignore_ascii_case(name)))
}
