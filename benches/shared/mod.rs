//! What the engine benches share: bodies in the fixtures' shapes and the shipped policies.

use serde_json::json;
use zweck::crm_double::{CrmDouble, CrmDoubleConfig};
use zweck::dialect::Dialect;
use zweck::json::JsonLimits;
use zweck::policy::PolicySet;

/// Limits generous enough for the 10 MB bodies.
pub const LIMITS: JsonLimits = JsonLimits {
    max_depth: 128,
    max_bytes: 64 << 20,
};

/// The CRM double's generator (a million contacts, made on demand).
pub fn double() -> std::sync::Arc<CrmDouble> {
    CrmDouble::new(CrmDoubleConfig {
        contacts: 1_000_000,
        ..CrmDoubleConfig::default()
    })
}

/// A list page of the dialect of at least `target_bytes`, in the shape the CRM sends.
pub fn page(double: &CrmDouble, dialect: Dialect, target_bytes: usize) -> Vec<u8> {
    let mut records = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < target_bytes {
        let r = double.contact(dialect, i % 1_000_000);
        size += r.to_string().len() + 1;
        records.push(r);
        i += 1;
    }
    let n = records.len();
    let body = match dialect {
        Dialect::Salesforce => json!({"totalSize": n, "done": true, "records": records}),
        Dialect::HubSpot => json!({"results": records}),
        Dialect::Dynamics => {
            json!({"@odata.context": "https://x.example/api/data/v9.2/$metadata#contacts", "value": records})
        }
        Dialect::Generic => panic!("the CRM double renders no generic pages"),
    };
    serde_json::to_vec(&body).expect("serialize")
}

/// The policies shipped in `policies/`.
pub fn shipped_policies() -> PolicySet {
    let (set, _) = PolicySet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies"
    )))
    .expect("shipped policies");
    set
}
