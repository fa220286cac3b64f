//! The main config (`zweck.yaml`): listener, apps, upstreams, limits.
//!
//! Parsed in two steps, as vector does: YAML into `Raw*` types that reject unknown keys, then
//! [`Config::load`] compiles them into the validated [`Config`] the proxy uses, collecting
//! *every* problem with `file:line:column` instead of stopping at the first. Nothing on the
//! request path ever touches the raw types. Relative paths in the file are resolved against the
//! directory the file lives in, so `zweck serve --config /etc/zweck/zweck.yaml` works from any
//! working directory.
//!
//! Files: `raw` (the YAML as written), `compile` (raw -> [`Config`]), `iso3166` (the country
//! codes a jurisdiction may name), this file (the compiled types the rest of Zweck uses), and
//! under test `keys` (every key, derived from the raw types, checked against
//! docs/configuration.md).
//!
//! Compiling checks what the text alone can tell. What needs the files a config names (do they
//! exist, parse, have safe modes; do the policies define every granted purpose) is
//! [`crate::preflight`]'s, which reports its findings at the line of the key that names the
//! file, through [`Config::diagnostic`].

mod compile;
mod iso3166;
#[cfg(test)]
mod keys;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::diagnostic::Diagnostic;
use crate::diagnostic::Severity;
use crate::dialect::Dialect;
use crate::pattern::RoutePattern;

/// Why a config could not be loaded: every diagnostic, in file order.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages).
    pub path: PathBuf,
    pub listen: SocketAddr,
    /// What rewritten links point at (scheme, host, port; no trailing slash).
    pub public_url: String,
    pub dev: bool,
    pub tls: TlsFiles,
    pub admin: Option<SocketAddr>,
    /// The bearer token that authorises state-changing admin requests (`POST /reload`).
    pub admin_token_file: Option<PathBuf>,
    pub log: LogConfig,
    /// The policy directory, or the signed bundle when `policy_trust` is set.
    pub policies: PathBuf,
    /// `policies: { bundle, trusted_keys }`: the public key files a bundle must be signed by.
    pub policy_trust: Option<Vec<PathBuf>>,
    /// `policies: { candidate }`: a policy directory evaluated beside the active one on real
    /// traffic, changing nothing (live shadow comparison).
    pub policy_candidate: Option<PathBuf>,
    pub certs_dir: PathBuf,
    /// The pseudonymisation master key (`ZWECK_PSEUDONYM_KEY_FILE` overrides it).
    pub pseudonym_key_file: Option<PathBuf>,
    pub crm_double: Option<CrmDoubleSettings>,
    pub limits: Limits,
    /// The transfer log; without it governed flows are not logged (dev and tests only).
    pub audit: Option<crate::audit::AuditConfig>,
    /// Where export budgets live (`local` when absent) and how refusals look.
    pub budgets: Option<crate::budget::RawBudgetsConfig>,
    pub refusal_style: crate::budget::RefusalStyle,
    pub apps: Vec<AppConfig>,
    pub upstreams: Vec<UpstreamConfig>,
    /// What the Art. 30(1) record needs that configuration cannot tell (`zweck audit ropa`).
    pub record_of_processing: crate::audit::RecordOfProcessing,
    /// `controller:`: the name and time zone incident notifications use.
    pub controller: ControllerSettings,
    /// Where keys sit in the file, for diagnostics found after compiling.
    pub spans: Spans,
}

/// `controller:` in `zweck.yaml` (`zweck incident open`).
#[derive(Debug, Clone, Default)]
pub struct ControllerSettings {
    /// The controller's name on notifications (default: the controller named in
    /// `policies/purposes.yaml`).
    pub name: Option<String>,
    /// The controller's time zone (IANA), in which deadlines are shown; `None`: UTC.
    pub time_zone: Option<jiff::tz::TimeZone>,
}

/// How Zweck writes its own log (stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `log.format`: human-readable lines or one JSON object per line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Line and column of the keys that name files and secrets, by key path (`tls.cert`,
/// `apps.bi-export.api_keys[0]`, `upstreams.salesforce.auth`): a problem found after
/// compiling (a missing file, a key that does not parse) points at the line that names it.
#[derive(Debug, Clone, Default)]
pub struct Spans(BTreeMap<String, (usize, usize)>);

impl Spans {
    pub(crate) fn insert(&mut self, key: impl Into<String>, at: &serde_saphyr::Location) {
        self.0
            .insert(key.into(), (at.line() as usize, at.column() as usize));
    }

    /// The position of `key`, or of its nearest enclosing key that has one.
    fn find(&self, key: &str) -> Option<(usize, usize)> {
        let mut k = key;
        loop {
            if let Some(p) = self.0.get(k) {
                return Some(*p);
            }
            k = &k[..k.rfind(['.', '['])?];
        }
    }
}

impl Config {
    /// Where the policies in force come from.
    pub fn policy_source(&self) -> crate::policy::source::PolicySource {
        match &self.policy_trust {
            Some(keys) => crate::policy::source::PolicySource::Bundle {
                file: self.policies.clone(),
                trusted_keys: keys.clone(),
            },
            None => crate::policy::source::PolicySource::Dir(self.policies.clone()),
        }
    }
}

/// Files of the server certificate and the CA that client certificates must chain to.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The embedded CRM double that `serve` starts beside the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmDoubleSettings {
    pub listen: SocketAddr,
    pub contacts: u64,
    pub seed: u64,
    /// A static bearer token the double accepts (the file is made in dev mode).
    pub bearer_file: Option<PathBuf>,
    /// An OAuth2 client the double's token endpoint accepts.
    pub oauth_client: Option<(String, PathBuf)>,
}

/// Resource limits of the listener and of body handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub buffer_bytes: u64,
    pub max_body_bytes: u64,
    pub buffered_total: u64,
    pub json_depth: usize,
    pub decoded_ratio: u64,
    /// The request header block, counted as HTTP/2 counts it (RFC 9113 §6.5.2): 431 beyond.
    pub max_header_bytes: u64,
    /// How long Zweck waits for a request body beyond what `body_min_rate` grants.
    pub body_read_timeout: Duration,
    /// Bytes per second a request body must average once `body_read_timeout` is used up.
    pub body_min_rate: u64,
    /// How much of a refused request's unread body is read and discarded so the client gets
    /// the answer (and an HTTP/1.1 connection stays usable).
    pub drain_bytes: u64,
    /// How long an HTTP/1.1 connection closed with request bytes still arriving keeps
    /// reading them, so the client reads the answer before the close.
    pub linger_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(30),
            buffer_bytes: 8 << 20,
            max_body_bytes: 1 << 30,
            buffered_total: 256 << 20,
            json_depth: 128,
            decoded_ratio: 100,
            max_header_bytes: 64 << 10,
            body_read_timeout: Duration::from_secs(30),
            body_min_rate: 1 << 10,
            drain_bytes: 16 << 20,
            linger_timeout: Duration::from_secs(2),
        }
    }
}

/// A caller of the proxy.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub name: String,
    pub client_cert: Option<ClientCertMatch>,
    pub api_keys: Vec<ApiKeyConfig>,
    pub purposes: BTreeSet<String>,
}

/// How a client certificate names an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertMatch {
    /// A DNS or URI subject alternative name equal to this value.
    San(String),
    /// The subject common name equal to this value.
    Cn(String),
}

/// An API key, stored only as its SHA-256 (inline, or in a file read at start-up).
#[derive(Clone)]
pub struct ApiKeyConfig {
    pub sha256: KeyDigest,
    /// The one purpose this key is bound to, if any.
    pub purpose: Option<String>,
}

/// Where an API key's SHA-256 is.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyDigest {
    Inline([u8; 32]),
    /// A file holding the hex digest; read by [`crate::preflight`].
    File(PathBuf),
}

impl ApiKeyConfig {
    /// The digest when known (inline or resolved).
    pub fn digest(&self) -> Option<&[u8; 32]> {
        match &self.sha256 {
            KeyDigest::Inline(d) => Some(d),
            KeyDigest::File(_) => None,
        }
    }

    fn sha256_debug_key(&self) -> String {
        match &self.sha256 {
            KeyDigest::Inline(d) => hex::encode(d),
            KeyDigest::File(p) => p.display().to_string(),
        }
    }
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("sha256", &"<redacted>")
            .field("purpose", &self.purpose)
            .finish()
    }
}

/// A CRM API that Zweck forwards to.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// The base URL: scheme, authority and an optional path that is never stripped.
    pub url: http::Uri,
    pub dialect: Dialect,
    pub path_prefix: Option<String>,
    pub host: Option<String>,
    pub auth: Option<UpstreamAuth>,
    pub processor: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub jurisdiction: String,
    pub transfer_mechanism: TransferMechanism,
    pub ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// After the response head, the longest wait for the next piece of its body.
    pub body_idle_timeout: Duration,
    /// The HTTP version Zweck speaks to the upstream.
    pub protocol: UpstreamProtocol,
    pub ungoverned: Vec<RoutePattern>,
}

/// The HTTP version towards an upstream (`upstreams.<name>.protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// ALPN offers `h2` and `http/1.1`; the upstream picks. HTTP/2 multiplexes every request
    /// on one connection.
    #[default]
    Auto,
    /// HTTP/1.1 only: a pool of connections, one request at a time on each.
    Http1,
    /// HTTP/2 only (ALPN `h2`); an upstream without it fails to connect.
    Http2,
}

impl UpstreamProtocol {
    /// The value as the config spells it.
    pub fn parse(s: &str) -> Option<UpstreamProtocol> {
        match s {
            "auto" => Some(UpstreamProtocol::Auto),
            "http1" => Some(UpstreamProtocol::Http1),
            "http2" => Some(UpstreamProtocol::Http2),
            _ => None,
        }
    }
}

/// Where Zweck gets the upstream's credential from. Apps never hold it.
#[derive(Debug, Clone)]
pub enum UpstreamAuth {
    BearerFile(PathBuf),
    BearerEnv(String),
    OAuth2ClientCredentials {
        token_url: http::Uri,
        client_id: String,
        secret: SecretSource,
        scope: Option<String>,
    },
}

/// Where a secret lives.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// The GDPR Art. 44-49 basis of a transfer to the upstream's jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransferMechanism {
    #[serde(rename = "type")]
    pub kind: MechanismKind,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scc_module: Option<String>,
}

/// The kinds of transfer mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MechanismKind {
    Adequacy,
    Scc,
    Dpf,
    Bcr,
    Derogation,
    None,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Validates config text; `path` names the file in messages and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        compile::compile(path, text)
    }

    /// A problem with `key` found after compiling, at the line that names it: `key: message`.
    pub fn diagnostic(&self, key: &str, message: impl std::fmt::Display) -> Diagnostic {
        let (line, column) = self.spans.find(key).unwrap_or((0, 0));
        Diagnostic {
            file: self.path.clone(),
            line,
            column,
            severity: Severity::Error,
            message: format!("{key}: {message}"),
        }
    }

    /// The app with this name.
    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Every purpose any app is granted.
    pub fn granted_purposes(&self) -> BTreeSet<&str> {
        self.apps
            .iter()
            .flat_map(|a| a.purposes.iter().map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listen: 127.0.0.1:8443
tls: { cert: certs/proxy.pem, key: certs/proxy.key, client_ca: certs/ca.pem }
apps:
  newsletter-tool:
    client_cert: { san: newsletter-tool }
    purposes: [newsletter]
  bi-export:
    api_keys: [{ sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", purpose: analytics }]
    purposes: [analytics]
upstreams:
  salesforce:
    url: https://127.0.0.1:9443
    dialect: salesforce
    route: { path_prefix: /services/data/ }
    processor: Salesforce, Inc.
    jurisdiction: US
    transfer_mechanism: { type: dpf, ref: "Commission Implementing Decision (EU) 2023/1795" }
    ungoverned: ["GET /services/data/"]
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/zweck/zweck.yaml"), text)
    }

    #[test]
    fn minimal_config_compiles_with_defaults() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.listen.port(), 8443);
        assert_eq!(c.public_url, "https://127.0.0.1:8443");
        assert_eq!(c.tls.cert, PathBuf::from("/etc/zweck/certs/proxy.pem"));
        assert_eq!(c.policies, PathBuf::from("/etc/zweck/policies"));
        assert_eq!(c.apps.len(), 2);
        let up = &c.upstreams[0];
        assert_eq!(up.jurisdiction, "US");
        assert_eq!(up.dialect, Dialect::Salesforce);
        assert_eq!(up.transfer_mechanism.kind, MechanismKind::Dpf);
        assert_eq!(c.limits.max_body_bytes, 1 << 30);
    }

    #[test]
    fn policies_is_a_directory_a_signed_bundle_and_optionally_a_candidate() {
        use crate::policy::source::PolicySource;
        let with = |policies: &str| {
            let text = format!("{MINIMAL}policies: {policies}\n");
            parse(&text)
        };
        let c = with("{ dir: p, candidate: next }").expect("dir + candidate");
        assert_eq!(c.policy_source(), PolicySource::Dir("/etc/zweck/p".into()));
        assert_eq!(c.policy_candidate, Some(PathBuf::from("/etc/zweck/next")));
        let c = with("{ bundle: b.tar, trusted_keys: [k.pub] }").expect("bundle");
        assert_eq!(
            c.policy_source(),
            PolicySource::Bundle {
                file: "/etc/zweck/b.tar".into(),
                trusted_keys: vec!["/etc/zweck/k.pub".into()],
            }
        );
        for (bad, says) in [
            ("{ bundle: b.tar }", "needs trusted_keys"),
            ("{ dir: p, trusted_keys: [k.pub] }", "a `dir` is not signed"),
            ("{ dir: p, bundle: b.tar, trusted_keys: [k] }", "not both"),
            ("{ candidate: next }", "needs `dir` or `bundle`"),
        ] {
            let e = with(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_position() {
        let text = MINIMAL.replace("dev_mode_typo: 1\n", "").replacen(
            "listen: 127.0.0.1:8443\n",
            "listen: 127.0.0.1:8443\nlisten_typo: 1\n",
            1,
        );
        let err = parse(&text).expect_err("unknown key");
        let s = err.to_string();
        assert!(s.starts_with("/etc/zweck/zweck.yaml:3:"), "{s}");
        assert!(s.contains("listen_typo"), "{s}");
    }

    #[test]
    fn all_semantic_errors_are_reported_at_once() {
        let text = MINIMAL
            .replace("jurisdiction: US", "jurisdiction: USA")
            .replace("type: dpf", "type: treaty")
            .replace("purpose: analytics }", "purpose: billing }");
        let ConfigError::Invalid(diags) = parse(&text).expect_err("invalid") else {
            panic!("expected diagnostics");
        };
        assert_eq!(diags.len(), 3, "{diags:?}");
        assert!(diags.iter().all(|d| d.line > 1));
        let all = render(&diags);
        assert!(all.contains("jurisdiction"), "{all}");
        assert!(all.contains("treaty"), "{all}");
        assert!(all.contains("not granted"), "{all}");
    }

    #[test]
    fn plain_http_upstreams_are_refused() {
        let text = MINIMAL.replace("https://127.0.0.1:9443", "http://127.0.0.1:9443");
        assert!(parse(&text)
            .expect_err("http")
            .to_string()
            .contains("https"));
    }

    #[test]
    fn jurisdictions_are_assigned_iso_codes_as_written() {
        for (code, hint) in [
            ("XX", None),
            ("ie", Some("IE")),
            ("UK", None),
            ("Ie", Some("IE")),
        ] {
            let text = MINIMAL.replace("jurisdiction: US", &format!("jurisdiction: {code}"));
            let ConfigError::Invalid(diags) = parse(&text).expect_err(code) else {
                panic!("expected diagnostics");
            };
            assert_eq!(diags.len(), 1, "{diags:?}");
            let d = &diags[0];
            assert!(d.message.contains("ISO 3166-1"), "{d}");
            assert_eq!(d.line, 17, "{d}");
            if let Some(hint) = hint {
                assert!(d.message.contains(&format!("write {hint}")), "{d}");
            }
        }
    }

    #[test]
    fn a_non_hex_key_digest_is_one_error_about_the_digest() {
        let text = MINIMAL.replace(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "not-hex",
        );
        let ConfigError::Invalid(diags) = parse(&text).expect_err("not hex") else {
            panic!("expected diagnostics");
        };
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].message.contains("64 hex characters"), "{diags:?}");
    }

    #[test]
    fn keys_that_name_files_keep_their_position() {
        let c = parse(MINIMAL).expect("valid");
        let d = c.diagnostic("tls.key", "is missing");
        assert_eq!((d.line, d.column), (3, 36), "{d}");
        assert_eq!(d.message, "tls.key: is missing");
        let d = c.diagnostic("apps.bi-export.api_keys[0]", "x");
        assert_eq!(d.line, 9, "{d}");
        // a key without a position of its own points at its section
        let d = c.diagnostic("upstreams.salesforce.auth", "x");
        assert_eq!(d.line, 13, "{d}");
    }

    #[test]
    fn zero_connections_is_reported_at_its_position() {
        let text = format!("{MINIMAL}limits: {{ max_connections: 0, idle_timeout: 2 m }}\n");
        let ConfigError::Invalid(diags) = parse(&text).expect_err("invalid") else {
            panic!("expected diagnostics");
        };
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].message.contains("max_connections"), "{diags:?}");
        assert_eq!(diags[0].line, text.lines().count());
        let ok = parse(&text.replace("max_connections: 0", "max_connections: 8")).expect("valid");
        assert_eq!(ok.limits.idle_timeout, Duration::from_secs(120));
    }

    #[test]
    fn the_controller_time_zone_is_an_iana_name_or_an_error_at_its_line() {
        let text =
            format!("{MINIMAL}controller:\n  name: Example GmbH\n  time_zone: Europe/Atlantis\n");
        let ConfigError::Invalid(diags) = parse(&text).expect_err("invalid") else {
            panic!("expected diagnostics");
        };
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0].message.contains("controller.time_zone"),
            "{diags:?}"
        );
        assert_eq!(diags[0].line, text.lines().count());
        let ok = parse(&text.replace("Europe/Atlantis", "Europe/Berlin")).expect("valid");
        let tz = ok.controller.time_zone.expect("a zone");
        assert_eq!(tz.iana_name(), Some("Europe/Berlin"));
        assert_eq!(ok.controller.name.as_deref(), Some("Example GmbH"));
        assert!(parse(MINIMAL)
            .expect("valid")
            .controller
            .time_zone
            .is_none());
    }

    #[test]
    fn budget_store_and_crm_double_mistakes_are_found_by_config_check() {
        let text = format!(
            "{MINIMAL}budgets: {{ store: redsi, instances: 0, refusal: polite }}\n\
             crm_double: {{ listen: 127.0.0.1:9443, oauth_client_id: zweck-dev }}\n"
        );
        let ConfigError::Invalid(diags) = parse(&text).expect_err("invalid") else {
            panic!("expected diagnostics");
        };
        let all = render(&diags);
        assert_eq!(diags.len(), 4, "{all}");
        for part in ["instances", "redsi", "polite", "oauth_secret_file"] {
            assert!(all.contains(part), "{part}: {all}");
        }
        let redis_without_url = format!("{MINIMAL}budgets: {{ store: redis }}\n");
        assert!(parse(&redis_without_url)
            .expect_err("no url")
            .to_string()
            .contains("budgets.url"));
        let local = format!("{MINIMAL}budgets: {{ store: local, refusal: vendor }}\n");
        let c = parse(&local).expect("valid");
        assert_eq!(c.refusal_style, crate::budget::RefusalStyle::Vendor);
    }

    #[test]
    fn api_key_digests_are_never_printed() {
        let c = parse(MINIMAL).expect("valid");
        let dbg = format!("{:?}", c.apps);
        assert!(!dbg.contains("9f86d0"), "{dbg}");
    }
}
