//! The main config (`zweck.yaml`): listener, apps, upstreams, limits.
//!
//! Parsed in two steps, as vector does: YAML into `Raw*` types that reject unknown keys, then
//! [`Config::load`] compiles them into the validated [`Config`] the proxy uses, collecting
//! *every* problem with `file:line:column` instead of stopping at the first. Nothing on the
//! request path ever touches the raw types. Relative paths in the file are resolved against the
//! directory the file lives in, so `zweck serve --config /etc/zweck/zweck.yaml` works from any
//! working directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::dialect::Dialect;
use crate::pattern::RoutePattern;

/// One problem found in a config file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDiagnostic {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for ConfigDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why a config could not be loaded: every diagnostic, in file order.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<ConfigDiagnostic>),
}

fn render(diags: &[ConfigDiagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Raw types: exactly the YAML, unknown keys rejected.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Spanned<String>,
    public_url: Option<Spanned<String>>,
    #[serde(default)]
    dev: bool,
    tls: RawTls,
    admin: Option<Spanned<String>>,
    #[serde(default)]
    policies: Option<String>,
    #[serde(default)]
    certs_dir: Option<String>,
    #[serde(default)]
    pseudonym_key_file: Option<String>,
    #[serde(default)]
    crm_double: Option<RawCrmDouble>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    audit: Option<Spanned<crate::audit::RawAuditConfig>>,
    #[serde(default)]
    budgets: Option<Spanned<crate::budget::RawBudgetsConfig>>,
    #[serde(default)]
    apps: BTreeMap<String, Spanned<RawApp>>,
    #[serde(default)]
    upstreams: BTreeMap<String, Spanned<RawUpstream>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
    #[serde(default)]
    client_ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrmDouble {
    listen: Spanned<String>,
    #[serde(default)]
    contacts: Option<u64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    bearer_file: Option<String>,
    #[serde(default)]
    oauth_client_id: Option<String>,
    #[serde(default)]
    oauth_secret_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    handshake_timeout: Option<Spanned<String>>,
    header_read_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    shutdown_grace: Option<Spanned<String>>,
    buffer_bytes: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<String>>,
    buffered_total: Option<Spanned<String>>,
    json_depth: Option<usize>,
    decoded_ratio: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    #[serde(default)]
    client_cert: Option<RawClientCert>,
    #[serde(default)]
    api_keys: Vec<Spanned<RawApiKey>>,
    purposes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientCert {
    #[serde(default)]
    san: Option<String>,
    #[serde(default)]
    cn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    sha256_file: Option<String>,
    #[serde(default)]
    purpose: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: String,
    dialect: String,
    route: RawRoute,
    #[serde(default)]
    auth: Option<RawAuth>,
    processor: String,
    jurisdiction: String,
    transfer_mechanism: RawTransferMechanism,
    #[serde(default)]
    ca: Option<String>,
    #[serde(default)]
    connect_timeout: Option<String>,
    #[serde(default)]
    response_timeout: Option<String>,
    #[serde(default)]
    ungoverned: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    bearer_file: Option<String>,
    #[serde(default)]
    bearer_env: Option<String>,
    #[serde(default)]
    oauth2_client_credentials: Option<RawOAuth2>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth2 {
    token_url: String,
    client_id: String,
    #[serde(default)]
    client_secret_file: Option<String>,
    #[serde(default)]
    client_secret_env: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransferMechanism {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, rename = "ref")]
    reference: Option<String>,
    #[serde(default)]
    scc_module: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Compiled types.

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
    pub policies: PathBuf,
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
}

/// Files of the server certificate and the CA that client certificates must chain to.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The embedded CRM double that `serve` starts beside the proxy.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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
    /// A file holding the hex digest; read by [`Config::resolve_api_keys`].
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
    pub ungoverned: Vec<RoutePattern>,
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
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            ConfigError::Invalid(vec![ConfigDiagnostic {
                file: path.to_path_buf(),
                line,
                column,
                message: first_line(&e.to_string()),
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut c = Compiler {
            file: path.to_path_buf(),
            base,
            diags: Vec::new(),
        };
        let config = c.compile(raw);
        if c.diags.is_empty() {
            config.ok_or_else(|| ConfigError::Invalid(Vec::new()))
        } else {
            c.diags.sort_by_key(|d| (d.line, d.column));
            Err(ConfigError::Invalid(c.diags))
        }
    }

    /// Reads every `sha256_file` of an API key (after dev mode has made missing ones).
    pub fn resolve_api_keys(&mut self) -> Result<(), ConfigError> {
        let mut diags = Vec::new();
        for app in &mut self.apps {
            for key in &mut app.api_keys {
                if let KeyDigest::File(path) = &key.sha256 {
                    let digest = std::fs::read_to_string(path)
                        .map_err(|e| e.to_string())
                        .and_then(|t| {
                            decode_sha256(t.trim())
                                .ok_or_else(|| "not 64 hex characters".to_string())
                        });
                    match digest {
                        Ok(d) => key.sha256 = KeyDigest::Inline(d),
                        Err(reason) => diags.push(ConfigDiagnostic {
                            file: self.path.clone(),
                            line: 1,
                            column: 1,
                            message: format!(
                                "app {}: api key sha256_file {}: {reason}",
                                app.name,
                                path.display()
                            ),
                        }),
                    }
                }
            }
        }
        if diags.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(diags))
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

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string()
}

struct Compiler {
    file: PathBuf,
    base: PathBuf,
    diags: Vec<ConfigDiagnostic>,
}

impl Compiler {
    fn error(&mut self, at: &serde_saphyr::Location, message: impl Into<String>) {
        self.diags.push(ConfigDiagnostic {
            file: self.file.clone(),
            line: at.line(),
            column: at.column(),
            message: message.into(),
        });
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn addr(&mut self, s: &Spanned<String>, what: &str) -> Option<SocketAddr> {
        match s.value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    &s.referenced,
                    format!(
                        "{what}: expected an address like 127.0.0.1:8443, got {:?}",
                        s.value
                    ),
                );
                None
            }
        }
    }

    fn duration(&mut self, s: &Option<Spanned<String>>, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => match parse_duration(&s.value) {
                Some(d) => d,
                None => {
                    self.error(
                        &s.referenced,
                        format!(
                            "expected a duration like 10s, 500ms, 2m or 1h, got {:?}",
                            s.value
                        ),
                    );
                    default
                }
            },
        }
    }

    fn size(&mut self, s: &Option<Spanned<String>>, default: u64) -> u64 {
        match s {
            None => default,
            Some(s) => match parse_size(&s.value) {
                Some(d) => d,
                None => {
                    self.error(
                        &s.referenced,
                        format!(
                            "expected a size like 8MiB, 1GiB or 65536, got {:?}",
                            s.value
                        ),
                    );
                    default
                }
            },
        }
    }

    fn compile(&mut self, raw: RawConfig) -> Option<Config> {
        let listen = self.addr(&raw.listen, "listen");
        let admin = raw.admin.as_ref().and_then(|a| self.addr(a, "admin"));
        let public_url = match &raw.public_url {
            Some(u) => {
                let trimmed = u.value.trim_end_matches('/').to_string();
                match trimmed.parse::<http::Uri>() {
                    Ok(uri)
                        if uri.scheme_str() == Some("https")
                            && uri.authority().is_some()
                            && uri.path() == "/" =>
                    {
                        Some(trimmed)
                    }
                    _ => {
                        self.error(
                            &u.referenced,
                            format!(
                                "public_url must be https://host[:port] without a path, got {:?}",
                                u.value
                            ),
                        );
                        None
                    }
                }
            }
            None => listen.map(|a| format!("https://{a}")),
        };
        let crm_double = raw.crm_double.as_ref().and_then(|d| {
            self.addr(&d.listen, "crm_double.listen")
                .map(|listen| CrmDoubleSettings {
                    listen,
                    contacts: d.contacts.unwrap_or(1000),
                    seed: d.seed.unwrap_or(42),
                    bearer_file: d.bearer_file.as_deref().map(|p| self.path(p)),
                    oauth_client: match (&d.oauth_client_id, &d.oauth_secret_file) {
                        (Some(id), Some(f)) => Some((id.clone(), self.path(f))),
                        _ => None,
                    },
                })
        });
        let defaults = Limits::default();
        let l = &raw.limits;
        let limits = Limits {
            max_connections: l.max_connections.unwrap_or(defaults.max_connections),
            handshake_timeout: self.duration(&l.handshake_timeout, defaults.handshake_timeout),
            header_read_timeout: self
                .duration(&l.header_read_timeout, defaults.header_read_timeout),
            idle_timeout: self.duration(&l.idle_timeout, defaults.idle_timeout),
            shutdown_grace: self.duration(&l.shutdown_grace, defaults.shutdown_grace),
            buffer_bytes: self.size(&l.buffer_bytes, defaults.buffer_bytes),
            max_body_bytes: self.size(&l.max_body_bytes, defaults.max_body_bytes),
            buffered_total: self.size(&l.buffered_total, defaults.buffered_total),
            json_depth: l.json_depth.unwrap_or(defaults.json_depth),
            decoded_ratio: l.decoded_ratio.unwrap_or(defaults.decoded_ratio),
        };
        if limits.max_connections == 0 {
            self.diags.push(ConfigDiagnostic {
                file: self.file.clone(),
                line: 1,
                column: 1,
                message: "limits.max_connections must be at least 1".into(),
            });
        }

        let apps = raw
            .apps
            .iter()
            .filter_map(|(name, app)| self.app(name, app))
            .collect::<Vec<_>>();
        self.check_unique_identities(&apps, &raw.apps);

        let upstreams = raw
            .upstreams
            .iter()
            .filter_map(|(name, up)| self.upstream(name, up))
            .collect::<Vec<_>>();

        let audit = match &raw.audit {
            None => None,
            Some(a) => match crate::audit::compile_config(&a.value, &self.base) {
                Ok(c) => Some(c),
                Err(errors) => {
                    for e in errors {
                        self.error(&a.referenced, format!("audit: {e}"));
                    }
                    None
                }
            },
        };

        let refusal_style = match raw
            .budgets
            .as_ref()
            .and_then(|b| b.value.refusal.as_deref())
        {
            None | Some("problem") => crate::budget::RefusalStyle::Problem,
            Some("vendor") => crate::budget::RefusalStyle::Vendor,
            Some(other) => {
                if let Some(b) = &raw.budgets {
                    self.error(
                        &b.referenced,
                        format!("budgets.refusal is problem or vendor, got {other:?}"),
                    );
                }
                crate::budget::RefusalStyle::Problem
            }
        };

        Some(Config {
            path: self.file.clone(),
            listen: listen?,
            public_url: public_url?,
            dev: raw.dev,
            tls: TlsFiles {
                cert: self.path(&raw.tls.cert),
                key: self.path(&raw.tls.key),
                client_ca: raw.tls.client_ca.as_deref().map(|p| self.path(p)),
            },
            admin,
            policies: self.path(raw.policies.as_deref().unwrap_or("policies")),
            certs_dir: self.path(raw.certs_dir.as_deref().unwrap_or("certs")),
            pseudonym_key_file: raw.pseudonym_key_file.as_deref().map(|p| self.path(p)),
            crm_double,
            limits,
            audit,
            budgets: raw.budgets.map(|b| b.value),
            refusal_style,
            apps,
            upstreams,
        })
    }

    fn app(&mut self, name: &str, app: &Spanned<RawApp>) -> Option<AppConfig> {
        let at = &app.referenced;
        let raw = &app.value;
        if !valid_name(name) {
            self.error(
                at,
                format!("app name {name:?}: use letters, digits, '-' and '_'"),
            );
        }
        let client_cert = match &raw.client_cert {
            None => None,
            Some(RawClientCert {
                san: Some(s),
                cn: None,
            }) => Some(ClientCertMatch::San(s.clone())),
            Some(RawClientCert {
                san: None,
                cn: Some(c),
            }) => Some(ClientCertMatch::Cn(c.clone())),
            Some(_) => {
                self.error(
                    at,
                    format!("app {name}: client_cert takes exactly one of san, cn"),
                );
                None
            }
        };
        let purposes: BTreeSet<String> = raw.purposes.iter().cloned().collect();
        if purposes.is_empty() {
            self.error(at, format!("app {name}: grant at least one purpose"));
        }
        let mut api_keys = Vec::new();
        for key in &raw.api_keys {
            let kat = &key.referenced;
            let k = &key.value;
            let sha256 = match (&k.sha256, &k.sha256_file) {
                (Some(hexed), None) => match decode_sha256(hexed.trim()) {
                    Some(d) => KeyDigest::Inline(d),
                    None => {
                        self.error(
                            kat,
                            format!("app {name}: an api key's sha256 is 64 hex characters"),
                        );
                        continue;
                    }
                },
                (None, Some(file)) => KeyDigest::File(self.path(file)),
                _ => {
                    self.error(
                        kat,
                        format!("app {name}: an api key takes exactly one of sha256, sha256_file"),
                    );
                    continue;
                }
            };
            if let Some(p) = &k.purpose {
                if !purposes.contains(p) {
                    self.error(
                        kat,
                        format!(
                            "app {name}: key bound to purpose {p:?}, which the app is not granted"
                        ),
                    );
                }
            }
            api_keys.push(ApiKeyConfig {
                sha256,
                purpose: k.purpose.clone(),
            });
        }
        if client_cert.is_none() && api_keys.is_empty() {
            self.error(
                at,
                format!("app {name}: needs a client_cert or at least one api key"),
            );
        }
        Some(AppConfig {
            name: name.to_string(),
            client_cert,
            api_keys,
            purposes,
        })
    }

    fn check_unique_identities(
        &mut self,
        apps: &[AppConfig],
        raw: &BTreeMap<String, Spanned<RawApp>>,
    ) {
        let mut certs = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for app in apps {
            let at = raw.get(&app.name).map(|a| a.referenced);
            if let (Some(m), Some(at)) = (&app.client_cert, at) {
                if let Some(other) = certs.insert(format!("{m:?}"), app.name.clone()) {
                    self.error(
                        &at,
                        format!(
                            "apps {other} and {} match the same client certificate",
                            app.name
                        ),
                    );
                }
            }
            for k in &app.api_keys {
                if let (Some(other), Some(at)) =
                    (keys.insert(k.sha256_debug_key(), app.name.clone()), at)
                {
                    self.error(
                        &at,
                        format!("apps {other} and {} share an api key", app.name),
                    );
                }
            }
        }
    }

    fn upstream(&mut self, name: &str, up: &Spanned<RawUpstream>) -> Option<UpstreamConfig> {
        let at = up.referenced;
        let raw = &up.value;
        let mut ok = true;
        let url = match raw.url.parse::<http::Uri>() {
            Ok(u)
                if u.scheme_str() == Some("https")
                    && u.authority().is_some()
                    && u.path() == "/"
                    && u.query().is_none() =>
            {
                Some(u)
            }
            Ok(u) if u.scheme_str() == Some("http") => {
                self.error(&at, format!("upstream {name}: url must be https (personal data never travels in clear text)"));
                let _ = u;
                None
            }
            _ => {
                self.error(&at, format!("upstream {name}: url must be https://host[:port] (no path: native prefixes are never rewritten), got {:?}", raw.url));
                None
            }
        };
        let dialect = Dialect::from_name(&raw.dialect).or_else(|| {
            self.error(&at, format!("upstream {name}: dialect is one of salesforce, hubspot, dynamics, generic; got {:?}", raw.dialect));
            None
        });
        let path_prefix = raw.route.path_prefix.clone();
        if let Some(p) = &path_prefix {
            if !p.starts_with('/') {
                self.error(
                    &at,
                    format!("upstream {name}: route.path_prefix starts with '/'"),
                );
                ok = false;
            }
        }
        if path_prefix.is_none() && raw.route.host.is_none() {
            self.error(
                &at,
                format!("upstream {name}: route needs path_prefix and/or host"),
            );
            ok = false;
        }
        let jurisdiction = raw.jurisdiction.trim().to_ascii_uppercase();
        if jurisdiction.len() != 2 || !jurisdiction.bytes().all(|b| b.is_ascii_uppercase()) {
            self.error(&at, format!("upstream {name}: jurisdiction is an ISO 3166-1 alpha-2 code like US or DE, got {:?}", raw.jurisdiction));
            ok = false;
        }
        let tm = &raw.transfer_mechanism;
        let kind = match tm.kind.as_str() {
            "adequacy" => Some(MechanismKind::Adequacy),
            "scc" => Some(MechanismKind::Scc),
            "dpf" => Some(MechanismKind::Dpf),
            "bcr" => Some(MechanismKind::Bcr),
            "derogation" => Some(MechanismKind::Derogation),
            "none" => Some(MechanismKind::None),
            other => {
                self.error(&at, format!("upstream {name}: transfer_mechanism.type is one of adequacy, scc, dpf, bcr, derogation, none; got {other:?}"));
                None
            }
        };
        if kind == Some(MechanismKind::Scc) && tm.scc_module.is_none() {
            self.error(
                &at,
                format!("upstream {name}: transfer_mechanism type scc needs scc_module (1-4)"),
            );
            ok = false;
        }
        let auth = match &raw.auth {
            None => None,
            Some(a) => self.auth(name, &at, a),
        };
        let connect_timeout = self.duration(
            &raw.connect_timeout.clone().map(|v| Spanned::new(v, at, at)),
            Duration::from_secs(5),
        );
        let response_timeout = self.duration(
            &raw.response_timeout
                .clone()
                .map(|v| Spanned::new(v, at, at)),
            Duration::from_secs(60),
        );
        let mut ungoverned = Vec::new();
        for p in &raw.ungoverned {
            match RoutePattern::parse(p) {
                Ok(p) => ungoverned.push(p),
                Err(e) => {
                    self.error(&at, format!("upstream {name}: ungoverned: {e}"));
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        Some(UpstreamConfig {
            name: name.to_string(),
            url: url?,
            dialect: dialect?,
            path_prefix,
            host: raw.route.host.as_ref().map(|h| h.to_ascii_lowercase()),
            auth,
            processor: raw.processor.clone(),
            jurisdiction,
            transfer_mechanism: TransferMechanism {
                kind: kind?,
                reference: tm.reference.clone(),
                scc_module: tm.scc_module.clone(),
            },
            ca: raw.ca.as_deref().map(|p| self.path(p)),
            connect_timeout,
            response_timeout,
            ungoverned,
        })
    }

    fn auth(
        &mut self,
        name: &str,
        at: &serde_saphyr::Location,
        a: &RawAuth,
    ) -> Option<UpstreamAuth> {
        match (&a.bearer_file, &a.bearer_env, &a.oauth2_client_credentials) {
            (Some(f), None, None) => Some(UpstreamAuth::BearerFile(self.path(f))),
            (None, Some(e), None) => Some(UpstreamAuth::BearerEnv(e.clone())),
            (None, None, Some(o)) => {
                let token_url = match o.token_url.parse::<http::Uri>() {
                    Ok(u) if u.scheme_str() == Some("https") && u.authority().is_some() => u,
                    _ => {
                        self.error(at, format!("upstream {name}: auth.oauth2_client_credentials.token_url must be an https URL"));
                        return None;
                    }
                };
                let secret = match (&o.client_secret_file, &o.client_secret_env) {
                    (Some(f), None) => SecretSource::File(self.path(f)),
                    (None, Some(e)) => SecretSource::Env(e.clone()),
                    _ => {
                        self.error(at, format!("upstream {name}: oauth2_client_credentials takes exactly one of client_secret_file, client_secret_env"));
                        return None;
                    }
                };
                Some(UpstreamAuth::OAuth2ClientCredentials {
                    token_url,
                    client_id: o.client_id.clone(),
                    secret,
                    scope: o.scope.clone(),
                })
            }
            _ => {
                self.error(at, format!("upstream {name}: auth takes exactly one of bearer_file, bearer_env, oauth2_client_credentials"));
                None
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn decode_sha256(hexed: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hexed).ok()?;
    bytes.try_into().ok()
}

/// Parses `250ms`, `10s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    Some(d)
}

/// Parses `65536`, `64KiB`, `8MiB`, `1GiB` (also KB/MB/GB as powers of ten).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
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
    jurisdiction: us
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
            .replace("jurisdiction: us", "jurisdiction: USA")
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
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_size("8MiB"), Some(8 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("99999999999999GiB"), None);
    }

    #[test]
    fn api_key_digests_are_never_printed() {
        let c = parse(MINIMAL).expect("valid");
        let dbg = format!("{:?}", c.apps);
        assert!(!dbg.contains("9f86d0"), "{dbg}");
    }
}
