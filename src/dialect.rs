//! The CRM dialects Zweck knows. A dialect decides which inventory applies, which headers
//! pass, how refusals are shaped and where absolute links hide in bodies.
//!
//! The CRM double (`crm_double`) names the CRM whose wire shape it renders with this same
//! enum. DESIGN.md keeps the double free of the code it tests, so that a bug cannot hide on
//! both sides of a test; a list of names holds no logic that could, and two lists (one spelt
//! `Hubspot`, one `HubSpot`) only made tests translate between them. Everything the double
//! does with a dialect (paths, shapes, paging) stays its own.

use serde::Deserialize;

/// The wire dialect of an upstream CRM API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Salesforce REST, Composite and Bulk API 2.0.
    Salesforce,
    /// HubSpot CRM v3.
    HubSpot,
    /// Microsoft Dynamics 365 / Dataverse Web API.
    Dynamics,
    /// Any other JSON API: only what the config lists as ungoverned passes.
    Generic,
}

impl Dialect {
    /// The lowercase name used in config files, inventories and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Salesforce => "salesforce",
            Dialect::HubSpot => "hubspot",
            Dialect::Dynamics => "dynamics",
            Dialect::Generic => "generic",
        }
    }

    /// Parses the config name.
    pub fn from_name(name: &str) -> Option<Dialect> {
        match name {
            "salesforce" => Some(Dialect::Salesforce),
            "hubspot" => Some(Dialect::HubSpot),
            "dynamics" => Some(Dialect::Dynamics),
            "generic" => Some(Dialect::Generic),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
