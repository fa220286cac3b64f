//! The compiled, immutable policy set the proxy reads once per request (shared in an `Arc`).
//!
//! Everything here was validated by `compile`; the request path only looks things up.

use std::collections::HashMap;
use std::time::Duration;

use http::Method;

use super::select::{FieldNode, RecordSelector};
use super::taxonomy::{CatId, Taxonomy};
use crate::dialect::Dialect;
use crate::pattern::{RouteIndex, RoutePattern};

/// The compiled policies: inventories per dialect, purposes, controller, version.
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) version: String,
    pub(crate) taxonomy: Taxonomy,
    pub(crate) controller: Controller,
    pub(crate) purposes: Vec<Purpose>,
    pub(crate) purpose_index: super::FastMap<String, usize>,
    pub(crate) inventories: HashMap<Dialect, Inventory>,
    /// Set when the policies came from a verified bundle: its label and signer.
    pub(crate) bundle: Option<super::bundle::Provenance>,
}

/// What `classify` found for a request line.
#[derive(Debug, Clone, Copy)]
pub enum RouteMatch<'a> {
    /// Listed under `ungoverned`: no personal data, streams through untouched.
    Ungoverned { template: &'a str },
    /// An `op: metadata` operation: a description of objects and fields (describe,
    /// properties, `EntityDefinitions`, `$metadata`), no customer data. Passes unchanged like
    /// an ungoverned route, is not charged and is no transfer; `resource` is the resource
    /// that lists it.
    Metadata {
        template: &'a str,
        resource: &'a str,
    },
    /// An inventory operation: its bodies are governed.
    Operation(&'a Operation),
    /// Neither: refused (403 `unknown-resource`).
    Unknown,
}

impl<'a> RouteMatch<'a> {
    /// The operation, when the route is governed.
    pub fn operation(&self) -> Option<&'a Operation> {
        match self {
            RouteMatch::Operation(op) => Some(op),
            _ => None,
        }
    }
}

impl PolicySet {
    /// SHA-256 hex over (relative path, NUL, bytes) of every file under the policy directory,
    /// sorted by path. `Zweck-Policy` and the transfer log carry it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The label and signer of the bundle the policies came from (none for a directory).
    pub fn bundle(&self) -> Option<&super::bundle::Provenance> {
        self.bundle.as_ref()
    }

    /// The controller named in `purposes.yaml`.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// A purpose by name.
    pub fn purpose(&self, name: &str) -> Option<&Purpose> {
        self.purpose_index.get(name).map(|i| &self.purposes[*i])
    }

    /// All purposes in file order.
    pub fn purposes(&self) -> &[Purpose] {
        &self.purposes
    }

    /// The category taxonomy in use.
    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// The inventory of a dialect, if one was loaded.
    pub fn inventory(&self, dialect: Dialect) -> Option<&Inventory> {
        self.inventories.get(&dialect)
    }

    /// The record selectors of an operation's resource, as written (`$.records[*]`, ...).
    pub fn record_paths(&self, op: &Operation) -> Vec<String> {
        self.inventory(op.dialect)
            .and_then(|inv| inv.resources.get(op.resource_idx))
            .filter(|r| r.name == op.resource)
            .map(|r| r.records.iter().map(|s| s.text().to_string()).collect())
            .unwrap_or_default()
    }

    /// Finds the operation (or ungoverned entry) for a canonical path. Operations are tried
    /// first, in file order, so a route that is both governed and ungoverned is governed.
    pub fn classify(
        &self,
        dialect: Dialect,
        method: &Method,
        canonical_path: &str,
    ) -> RouteMatch<'_> {
        let Some(inv) = self.inventories.get(&dialect) else {
            return RouteMatch::Unknown;
        };
        let routes = &inv.routes;
        if let Some(op) =
            routes
                .operations
                .find(&inv.operations, |o| &o.pattern, method, canonical_path)
        {
            if op.op == OpKind::Metadata {
                return RouteMatch::Metadata {
                    template: op.template(),
                    resource: &op.resource,
                };
            }
            return RouteMatch::Operation(op);
        }
        if let Some(p) = routes
            .ungoverned
            .find(&inv.ungoverned, |p| p, method, canonical_path)
        {
            return RouteMatch::Ungoverned {
                template: p.template(),
            };
        }
        RouteMatch::Unknown
    }
}

/// The data controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub name: String,
    pub jurisdiction: String,
    pub contact: Option<String>,
}

/// One dialect's inventory.
#[derive(Debug)]
pub struct Inventory {
    pub(crate) dialect: Dialect,
    pub(crate) ungoverned: Vec<RoutePattern>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) resources: Vec<Resource>,
    pub(crate) by_type: super::FastMap<String, usize>,
    /// Which operations and `ungoverned` entries a request may match (`classify`).
    pub(crate) routes: InventoryRoutes,
}

/// The route indexes of an inventory: `operations` over its operations, `ungoverned` over
/// its `ungoverned` entries, each in file order.
#[derive(Debug, Default)]
pub(crate) struct InventoryRoutes {
    pub(crate) operations: RouteIndex,
    pub(crate) ungoverned: RouteIndex,
}

impl InventoryRoutes {
    /// The indexes of these lists (as compiled: the inventory's order).
    pub(crate) fn new(operations: &[Operation], ungoverned: &[RoutePattern]) -> InventoryRoutes {
        InventoryRoutes {
            operations: RouteIndex::new(operations.iter().map(|o| &o.pattern)),
            ungoverned: RouteIndex::new(ungoverned),
        }
    }
}

impl Inventory {
    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
    /// All operations in file order.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }
    /// All resources in file order.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// Every classified entry of the inventory (`fields:` and `envelope:` of each resource)
    /// and its category, in no particular order.
    pub fn classified(&self) -> Vec<(std::sync::Arc<str>, CatId)> {
        fn walk(n: &FieldNode, out: &mut Vec<(std::sync::Arc<str>, CatId)>) {
            if let (Some(s), Some(c)) = (&n.source, n.cat) {
                if !out.iter().any(|(o, _)| o == s) {
                    out.push((s.clone(), c));
                }
            }
            for k in n.keys.values() {
                walk(k, out);
            }
            if let Some(a) = &n.any {
                walk(a, out);
            }
        }
        let mut out = Vec::new();
        for r in &self.resources {
            walk(&r.envelope, &mut out);
            walk(&r.fields, &mut out);
        }
        out
    }
}

/// One resource (object type) of an inventory.
#[derive(Debug)]
pub struct Resource {
    pub(crate) name: String,
    pub(crate) records: Vec<RecordSelector>,
    pub(crate) type_key: Option<Vec<String>>,
    pub(crate) envelope: FieldNode,
    pub(crate) fields: FieldNode,
    pub(crate) consent: super::FastMap<String, ConsentSignal>,
    pub(crate) keep_unclassified: bool,
    /// Member paths of the envelope keys that count the records a query matched.
    pub(crate) counts: Vec<Vec<String>>,
}

impl Resource {
    /// The resource name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// True when the resource keeps fields the inventory does not classify.
    pub fn keeps_unclassified(&self) -> bool {
        self.keep_unclassified
    }
}

/// A consent signal on a record.
#[derive(Debug, Clone)]
pub struct ConsentSignal {
    pub(crate) field: Vec<String>,
    pub(crate) granted_when: Vec<serde_json::Value>,
    pub(crate) separator: Option<String>,
}

/// `read`, `write`, `delete` or `metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Read,
    Write,
    Delete,
    /// Describes objects and fields, carries no customer data: never governed, charged or
    /// logged ([`RouteMatch::Metadata`]; `classify` never returns such an operation as
    /// [`RouteMatch::Operation`]).
    Metadata,
}

impl OpKind {
    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Delete => "delete",
            OpKind::Metadata => "metadata",
        }
    }
}

/// How many records a route can return at once (budgets differ per class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteClass {
    Single,
    List,
    BulkExport,
}

impl RouteClass {
    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Single => "single",
            RouteClass::List => "list",
            RouteClass::BulkExport => "bulk_export",
        }
    }
    /// Parses the inventory spelling.
    pub fn from_name(s: &str) -> Option<RouteClass> {
        match s {
            "single" => Some(RouteClass::Single),
            "list" => Some(RouteClass::List),
            "bulk_export" => Some(RouteClass::BulkExport),
            _ => None,
        }
    }
}

/// The name of an operation's resource, shared by the copies of the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceName(pub(crate) std::sync::Arc<str>);

impl std::ops::Deref for ResourceName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ResourceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<ResourceName> for String {
    fn eq(&self, other: &ResourceName) -> bool {
        **self == *other.0
    }
}

/// A governed route of an inventory resource. Every governed request holds a copy of its
/// operation: the names are shared, so the copy allocates nothing.
#[derive(Debug, Clone)]
pub struct Operation {
    pub(crate) dialect: Dialect,
    pub(crate) resource: ResourceName,
    pub(crate) resource_idx: usize,
    pub(crate) op: OpKind,
    pub(crate) class: RouteClass,
    pub(crate) pattern: RoutePattern,
    /// Set when the route is a batch tunnel, governed part by part by `crate::proxy::tunnel`.
    pub(crate) tunnel: Option<TunnelKind>,
    /// `format:` in the inventory (JSON unless it says `csv`).
    pub(crate) format: BodyFormat,
    /// For CSV: indexes of the resources whose records the rows may be (`objects:`).
    pub(crate) objects: Vec<usize>,
    /// What becomes of a record withheld from the purpose in a list (`withheld:`).
    pub(crate) withheld: Withheld,
}

/// What becomes of a located record that is withheld from a purpose (its consent is missing,
/// its type unknown) when it is an item of a list (`withheld:` of an operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Withheld {
    /// Removed from the list (the default): a list page is shorter.
    #[default]
    Remove,
    /// Replaced by `null` in place, as Salesforce answers for an id it cannot give: the list
    /// stays lined up with the ids asked for (sObject Collections retrieve).
    Null,
}

/// The media type of an operation's governed response body (`format:` in the inventory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFormat {
    /// JSON, filtered by `policy::apply` (the default).
    Json,
    /// CSV rows of the operation's `objects` (Salesforce Bulk API 2.0 query results),
    /// filtered by `policy::csv`.
    Csv,
}

impl BodyFormat {
    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::Csv => "csv",
        }
    }
    /// Parses the inventory spelling.
    pub fn from_name(s: &str) -> Option<BodyFormat> {
        match s {
            "json" => Some(BodyFormat::Json),
            "csv" => Some(BodyFormat::Csv),
            _ => None,
        }
    }
}

/// A batch tunnel: one request carrying many sub-requests, each governed as if sent alone
/// (`crate::proxy::tunnel`). `policy::apply` refuses tunnel operations: their bodies are not records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// Dataverse / OData `$batch` (`multipart/mixed`, change sets).
    OdataBatch,
    /// Salesforce `/composite` (`compositeRequest`, `@{ref}` references).
    SfComposite,
    /// Salesforce `/composite/batch` (`batchRequests`).
    SfCompositeBatch,
    /// Salesforce `/composite/tree/{SObject}` (records with nested children).
    SfTree,
    /// Salesforce `/composite/graph` (`graphs`, each a `compositeRequest` that commits whole).
    SfGraph,
}

impl TunnelKind {
    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::OdataBatch => "odata_batch",
            TunnelKind::SfComposite => "sf_composite",
            TunnelKind::SfCompositeBatch => "sf_composite_batch",
            TunnelKind::SfTree => "sf_tree",
            TunnelKind::SfGraph => "sf_graph",
        }
    }
    /// Parses the inventory spelling.
    pub fn from_name(s: &str) -> Option<TunnelKind> {
        Some(match s {
            "odata_batch" => TunnelKind::OdataBatch,
            "sf_composite" => TunnelKind::SfComposite,
            "sf_composite_batch" => TunnelKind::SfCompositeBatch,
            "sf_tree" => TunnelKind::SfTree,
            "sf_graph" => TunnelKind::SfGraph,
            _ => return None,
        })
    }
}

impl Operation {
    /// The dialect whose inventory holds it.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
    /// The resource name.
    pub fn resource(&self) -> &str {
        &self.resource
    }
    /// read, write or delete.
    pub fn op(&self) -> OpKind {
        self.op
    }
    /// single, list or bulk_export (writes and deletes default to single).
    pub fn class(&self) -> RouteClass {
        self.class
    }
    /// The route template (`GET /services/data/*/query`) for logs and metrics.
    pub fn template(&self) -> &str {
        self.pattern.template()
    }
    /// The tunnel kind when this route carries sub-requests (`tunnel:` in the inventory):
    /// the proxy hands such bodies to `crate::proxy::tunnel` instead of `policy::apply`.
    pub fn tunnel(&self) -> Option<TunnelKind> {
        self.tunnel
    }
    /// What becomes of a withheld record in a list (`withheld:` in the inventory).
    pub fn withheld(&self) -> Withheld {
        self.withheld
    }
    /// The media type of the governed response body. `Csv` bodies go to `policy::csv`
    /// (`csv_plan`), not `policy::apply`; a JSON body on a CSV route (an error list) still
    /// goes to `apply`, with the operation's own resource.
    pub fn format(&self) -> BodyFormat {
        self.format
    }
}

/// Art. 6(1)(a)-(f).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    /// The spelling in `purposes.yaml` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterests => "vital_interests",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterests => "legitimate_interests",
        }
    }
    /// All spellings.
    pub const NAMES: [&'static str; 6] = [
        "consent",
        "contract",
        "legal_obligation",
        "vital_interests",
        "public_task",
        "legitimate_interests",
    ];
    /// Parses the spelling.
    pub fn from_name(s: &str) -> Option<LegalBasis> {
        Some(match s {
            "consent" => LegalBasis::Consent,
            "contract" => LegalBasis::Contract,
            "legal_obligation" => LegalBasis::LegalObligation,
            "vital_interests" => LegalBasis::VitalInterests,
            "public_task" => LegalBasis::PublicTask,
            "legitimate_interests" => LegalBasis::LegitimateInterests,
            _ => return None,
        })
    }
}

/// GDPR Art. 9(2)(a)-(j): the conditions under which special categories may be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Art9Condition {
    /// (a) explicit consent.
    ExplicitConsent,
    /// (b) employment, social security and social protection law.
    EmploymentSocialProtection,
    /// (c) vital interests of a person who cannot consent.
    VitalInterests,
    /// (d) a foundation, association or other not-for-profit body, for its members.
    NotForProfitBody,
    /// (e) made manifestly public by the data subject.
    MadePublic,
    /// (f) legal claims and courts.
    LegalClaims,
    /// (g) substantial public interest, under Union or Member State law.
    SubstantialPublicInterest,
    /// (h) preventive or occupational medicine, health or social care.
    HealthOrSocialCare,
    /// (i) public health.
    PublicHealth,
    /// (j) archiving in the public interest, research or statistics.
    ArchivingResearchStatistics,
}

impl Art9Condition {
    /// All spellings, in the order of Art. 9(2).
    pub const NAMES: [&'static str; 10] = [
        "explicit_consent",
        "employment_social_protection",
        "vital_interests",
        "not_for_profit_body",
        "made_public",
        "legal_claims",
        "substantial_public_interest",
        "health_or_social_care",
        "public_health",
        "archiving_research_statistics",
    ];
    const ALL: [Art9Condition; 10] = [
        Art9Condition::ExplicitConsent,
        Art9Condition::EmploymentSocialProtection,
        Art9Condition::VitalInterests,
        Art9Condition::NotForProfitBody,
        Art9Condition::MadePublic,
        Art9Condition::LegalClaims,
        Art9Condition::SubstantialPublicInterest,
        Art9Condition::HealthOrSocialCare,
        Art9Condition::PublicHealth,
        Art9Condition::ArchivingResearchStatistics,
    ];

    /// The spelling in `purposes.yaml`.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The point of Art. 9(2) it names: `9(2)(a)` ...
    pub fn article(self) -> String {
        format!("9(2)({})", char::from(b'a' + self as u8))
    }

    /// Parses the spelling.
    pub fn from_name(s: &str) -> Option<Art9Condition> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
    }
}

/// `enforce` (default) or `shadow` (compute, log, change nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Shadow,
}

/// What the CRM's count of the records a query matched (`totalSize`, HubSpot `total`,
/// `@odata.count`) tells a purpose (`counts:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    /// The CRM's count, unchanged: it includes records the purpose does not get.
    Pass,
    /// The number of records this response delivers to the purpose.
    Delivered,
    /// The count is removed.
    Drop,
}

impl Counts {
    /// The spelling in `purposes.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Counts::Pass => "pass",
            Counts::Delivered => "delivered",
            Counts::Drop => "drop",
        }
    }
    /// Parses the spelling.
    pub fn from_name(s: &str) -> Option<Counts> {
        match s {
            "pass" => Some(Counts::Pass),
            "delivered" => Some(Counts::Delivered),
            "drop" => Some(Counts::Drop),
            _ => None,
        }
    }
}

/// Whether a purpose may write and delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Allow,
    Deny,
}

/// How a value is coarsened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generalise {
    /// `1984-02-29` -> `1984`.
    Year,
    /// `1984-02-29` -> `1984-02`.
    Month,
    /// `34` -> `30-39` for width 10.
    Range(u64),
    /// A string through a lookup table (`maps/city-to-region.csv`); unmapped values become
    /// `null`.
    Map(std::sync::Arc<super::lookup::ValueMap>),
    /// A postal code cut to its first N letters and digits (`10115` -> `10`,
    /// `SW1A 1AA` -> `SW1`); anything else becomes `null`.
    PostalPrefix(usize),
}

/// What happens to a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Keep,
    Drop,
    /// Replaced by `null` or a fixed string.
    Redact(Option<String>),
    /// All but the last `keep_last` characters become `*`; e-mail keeps its domain.
    Mask {
        keep_last: usize,
    },
    /// HMAC-SHA-256 under the purpose's key, with a key-version prefix.
    Pseudonymise,
    Generalise(Generalise),
    /// At most this many characters.
    Truncate(usize),
    /// The whole exchange is refused when such a value would flow.
    Block,
}

impl Action {
    /// The action's name in counts and explanations.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::Redact(_) => "redact",
            Action::Mask { .. } => "mask",
            Action::Pseudonymise => "pseudonymise",
            Action::Generalise(_) => "generalise",
            Action::Truncate(_) => "truncate",
            Action::Block => "block",
        }
    }

    /// True for the actions a write body may be subject to.
    pub fn allowed_on_writes(&self) -> bool {
        matches!(self, Action::Keep | Action::Drop | Action::Block)
    }
}

/// A purpose's rule for one category (and its sub-categories).
#[derive(Debug, Clone)]
pub struct FieldRule {
    pub category: String,
    pub(crate) cat: CatId,
    pub action: Action,
    /// `fields.<category>`: the rule id in outcomes and the log (shared: every outcome that
    /// counts this rule holds it).
    pub id: std::sync::Arc<str>,
}

/// How a category resolves for a purpose (precomputed per taxonomy entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Rule(u16),
    Otherwise,
    System,
}

/// Export budget: records per period, with a burst, optionally per route class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportBudget {
    pub records: u64,
    pub per: Duration,
    pub burst: Option<u64>,
    pub per_class: Vec<(RouteClass, ExportBudget)>,
}

/// A compiled purpose.
#[derive(Debug, Clone)]
pub struct Purpose {
    pub name: String,
    pub description: Option<String>,
    pub data_use: String,
    pub legal_basis: LegalBasis,
    pub requires_consent: Vec<String>,
    pub rules: Vec<FieldRule>,
    /// `drop`, `redact` or `block`; never keep.
    pub otherwise: Action,
    pub writes: Writes,
    /// `silent_write_minimisation`: resources (by inventory name) whose writes may lose
    /// fields without being refused.
    pub silent_writes: Vec<String>,
    pub export_budget: Option<ExportBudget>,
    pub mode: Mode,
    /// What the CRM's record counts say (`counts:`; the default is `delivered` for a purpose
    /// that withholds records, `pass` for one that gets every record).
    pub counts: Counts,
    /// The GDPR Art. 9(2) condition under which it may see special categories.
    pub art9_condition: Option<Art9Condition>,
    /// The authority or law (GDPR Art. 10) under which it may see criminal-conviction data.
    pub art10_basis: Option<String>,
    /// What an incident for this purpose triggers (`on_anomaly`; default `alert`).
    pub on_anomaly: crate::audit::OnAnomaly,
    pub(crate) by_cat: Vec<Resolved>,
    /// Every rule id an outcome of this purpose can count, by slot (see [`RuleSlot`]):
    /// built once so counting a rule never formats or allocates its name.
    pub(crate) rule_ids: Vec<std::sync::Arc<str>>,
}

/// Where a rule counts in a purpose's rule-id table: the field rules first, then the fixed
/// rules, then one `consent.<signal>` per required signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleSlot {
    Field(usize),
    Otherwise,
    System,
    UnclassifiedKeep,
    UnknownType,
    Consent(usize),
}

/// The fixed rule ids, in table order after the field rules.
const FIXED_RULE_IDS: [&str; 4] = ["otherwise", "system", "unclassified.keep", "unknown_type"];

impl Purpose {
    /// True when the purpose removes records from what the CRM returns (consent): a count
    /// or sum the CRM computed over all records would then describe records it may not see.
    pub fn filters_records(&self) -> bool {
        !self.requires_consent.is_empty()
    }

    /// The rule-id table for these rules and consent signals.
    pub(crate) fn rule_id_table(
        rules: &[FieldRule],
        requires_consent: &[String],
    ) -> Vec<std::sync::Arc<str>> {
        rules
            .iter()
            .map(|r| r.id.clone())
            .chain(FIXED_RULE_IDS.iter().map(|id| (*id).into()))
            .chain(
                requires_consent
                    .iter()
                    .map(|c| format!("consent.{c}").into()),
            )
            .collect()
    }

    /// Index of a slot in `rule_ids`.
    pub(crate) fn slot(&self, slot: RuleSlot) -> usize {
        let n = self.rules.len();
        match slot {
            RuleSlot::Field(i) => i,
            RuleSlot::Otherwise => n,
            RuleSlot::System => n + 1,
            RuleSlot::UnclassifiedKeep => n + 2,
            RuleSlot::UnknownType => n + 3,
            RuleSlot::Consent(i) => n + FIXED_RULE_IDS.len() + i,
        }
    }

    /// The id of a slot's rule.
    pub(crate) fn rule_id(&self, slot: RuleSlot) -> &std::sync::Arc<str> {
        &self.rule_ids[self.slot(slot)]
    }
}
