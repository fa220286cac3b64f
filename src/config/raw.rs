//! The config file exactly as written: every type rejects unknown keys, and the fields that
//! diagnostics point at keep their position (`Spanned`). Nothing here is validated; that is
//! [`super::compile`]'s job, and nothing outside `config` ever sees these types.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: Spanned<String>,
    pub(super) public_url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) dev: bool,
    pub(super) tls: RawTls,
    pub(super) admin: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) policies: Option<Spanned<RawPolicies>>,
    #[serde(default)]
    pub(super) admin_token_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) certs_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) pseudonym_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) crm_double: Option<Spanned<RawCrmDouble>>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) audit: Option<Spanned<crate::audit::RawAuditConfig>>,
    #[serde(default)]
    pub(super) budgets: Option<Spanned<crate::budget::RawBudgetsConfig>>,
    #[serde(default)]
    pub(super) apps: BTreeMap<String, Spanned<RawApp>>,
    #[serde(default)]
    pub(super) upstreams: BTreeMap<String, Spanned<RawUpstream>>,
    #[serde(default)]
    pub(super) record_of_processing: Option<crate::audit::RecordOfProcessing>,
    #[serde(default)]
    pub(super) controller: Option<RawController>,
}

/// `controller:`: who the controller is on incident notifications and whose clock the
/// 72-hour deadline is shown on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawController {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) time_zone: Option<Spanned<String>>,
}

/// `policies:` a directory, or `{ dir | bundle + trusted_keys, candidate? }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPolicies {
    Dir(String),
    Spec(RawPolicySpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicySpec {
    #[serde(default)]
    pub(super) dir: Option<String>,
    #[serde(default)]
    pub(super) bundle: Option<String>,
    #[serde(default)]
    pub(super) trusted_keys: Vec<String>,
    #[serde(default)]
    pub(super) candidate: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Spanned<String>,
    pub(super) key: Spanned<String>,
    #[serde(default)]
    pub(super) client_ca: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default)]
    pub(super) format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCrmDouble {
    pub(super) listen: Spanned<String>,
    #[serde(default)]
    pub(super) contacts: Option<u64>,
    #[serde(default)]
    pub(super) seed: Option<u64>,
    #[serde(default)]
    pub(super) bearer_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) oauth_client_id: Option<String>,
    #[serde(default)]
    pub(super) oauth_secret_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) handshake_timeout: Option<Spanned<String>>,
    pub(super) header_read_timeout: Option<Spanned<String>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) shutdown_grace: Option<Spanned<String>>,
    pub(super) buffer_bytes: Option<Spanned<String>>,
    pub(super) max_body_bytes: Option<Spanned<String>>,
    pub(super) buffered_total: Option<Spanned<String>>,
    pub(super) json_depth: Option<usize>,
    pub(super) decoded_ratio: Option<u64>,
    pub(super) max_header_bytes: Option<Spanned<String>>,
    pub(super) body_read_timeout: Option<Spanned<String>>,
    pub(super) body_min_rate: Option<Spanned<String>>,
    pub(super) drain_bytes: Option<Spanned<String>>,
    pub(super) linger_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    #[serde(default)]
    pub(super) client_cert: Option<RawClientCert>,
    #[serde(default)]
    pub(super) api_keys: Vec<Spanned<RawApiKey>>,
    pub(super) purposes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientCert {
    #[serde(default)]
    pub(super) san: Option<String>,
    #[serde(default)]
    pub(super) cn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiKey {
    #[serde(default)]
    pub(super) sha256: Option<String>,
    #[serde(default)]
    pub(super) sha256_file: Option<String>,
    #[serde(default)]
    pub(super) purpose: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: String,
    pub(super) dialect: String,
    pub(super) route: RawRoute,
    #[serde(default)]
    pub(super) auth: Option<Spanned<RawAuth>>,
    pub(super) processor: String,
    pub(super) jurisdiction: Spanned<String>,
    pub(super) transfer_mechanism: RawTransferMechanism,
    #[serde(default)]
    pub(super) ca: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) connect_timeout: Option<String>,
    #[serde(default)]
    pub(super) response_timeout: Option<String>,
    #[serde(default)]
    pub(super) body_idle_timeout: Option<String>,
    #[serde(default)]
    pub(super) protocol: Option<String>,
    #[serde(default)]
    pub(super) ungoverned: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    #[serde(default)]
    pub(super) path_prefix: Option<String>,
    #[serde(default)]
    pub(super) host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[serde(default)]
    pub(super) bearer_file: Option<String>,
    #[serde(default)]
    pub(super) bearer_env: Option<String>,
    #[serde(default)]
    pub(super) oauth2_client_credentials: Option<RawOAuth2>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth2 {
    pub(super) token_url: String,
    pub(super) client_id: String,
    #[serde(default)]
    pub(super) client_secret_file: Option<String>,
    #[serde(default)]
    pub(super) client_secret_env: Option<String>,
    #[serde(default)]
    pub(super) scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransferMechanism {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default, rename = "ref")]
    pub(super) reference: Option<String>,
    #[serde(default)]
    pub(super) scc_module: Option<String>,
}
