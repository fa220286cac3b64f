//! Raw config -> [`Config`] in one pass that collects every problem with its position,
//! instead of stopping at the first (as vector does): a user fixing a config sees all of it.
//! Relative paths are resolved against the config file's directory here, once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::raw::{
    RawApp, RawAuth, RawClientCert, RawConfig, RawCrmDouble, RawLimits, RawLog, RawUpstream,
};
use super::{
    iso3166, ApiKeyConfig, AppConfig, ClientCertMatch, Config, ConfigError, CrmDoubleSettings,
    KeyDigest, Limits, LogConfig, LogFormat, MechanismKind, SecretSource, Spans, TlsFiles,
    TransferMechanism, UpstreamAuth, UpstreamConfig, UpstreamProtocol,
};
use crate::audit::{AuditConfig, RawAuditConfig};
use crate::budget::{RawBudgetsConfig, RefusalStyle};
use crate::diagnostic::{first_line, Diagnostic, Diags, Severity};
use crate::dialect::Dialect;
use crate::pattern::RoutePattern;
use crate::units::{parse_duration, parse_size};

/// The range `limits.max_header_bytes` may take: below 4 KiB ordinary SDK requests (a bearer
/// token, tracing headers) no longer fit; above 1 MiB the per-connection read buffer of an
/// idle attacker costs more than any real request needs.
const MIN_HEADER_BYTES: u64 = 4 << 10;
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Parses and validates config text; `path` names the file in messages and anchors relative
/// paths.
pub(super) fn compile(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        ConfigError::Invalid(vec![Diagnostic {
            file: path.to_path_buf(),
            line: line as usize,
            column: column as usize,
            severity: Severity::Error,
            message: first_line(&e.to_string()),
        }])
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Compiler {
        file: path.to_path_buf(),
        base,
        diags: Diags::default(),
        spans: Spans::default(),
    };
    let config = c.compile(raw);
    if c.diags.list.is_empty() {
        config.ok_or_else(|| ConfigError::Invalid(Vec::new()))
    } else {
        Err(ConfigError::Invalid(c.diags.split().0))
    }
}

struct Compiler {
    file: PathBuf,
    base: PathBuf,
    diags: Diags,
    spans: Spans,
}

impl Compiler {
    fn error(&mut self, at: &serde_saphyr::Location, message: impl Into<String>) {
        self.diags.error(&self.file, Some(at), message);
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A path-valued key: resolved, and its position kept for later diagnostics.
    fn spanned_path(&mut self, key: &str, s: &Spanned<String>) -> PathBuf {
        self.spans.insert(key, &s.referenced);
        self.path(&s.value)
    }

    fn addr(&mut self, s: &Spanned<String>, what: &str) -> Option<SocketAddr> {
        self.spans.insert(what, &s.referenced);
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
            Some(u) => self.public_url(u),
            None => listen.map(|a| format!("https://{a}")),
        };
        let crm_double = raw.crm_double.as_ref().and_then(|d| self.crm_double(d));
        let limits = self.limits(&raw.limits);
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
        let audit = raw.audit.as_ref().and_then(|a| self.audit(a));
        let policies = self.policies(raw.policies.as_ref());
        let refusal_style = match &raw.budgets {
            Some(b) => self.budgets(b),
            None => RefusalStyle::Problem,
        };
        let log = self.log(&raw.log);
        let controller = self.controller(raw.controller.as_ref());
        let tls = TlsFiles {
            cert: self.spanned_path("tls.cert", &raw.tls.cert),
            key: self.spanned_path("tls.key", &raw.tls.key),
            client_ca: raw
                .tls
                .client_ca
                .as_ref()
                .map(|p| self.spanned_path("tls.client_ca", p)),
        };
        let dir =
            |c: &mut Self, key: &str, value: &Option<Spanned<String>>, default: &str| match value {
                Some(v) => c.spanned_path(key, v),
                None => c.path(default),
            };
        let certs_dir = dir(self, "certs_dir", &raw.certs_dir, "certs");
        let pseudonym_key_file = raw
            .pseudonym_key_file
            .as_ref()
            .map(|p| self.spanned_path("pseudonym_key_file", p));
        let admin_token_file = raw
            .admin_token_file
            .as_ref()
            .map(|p| self.spanned_path("admin_token_file", p));

        Some(Config {
            path: self.file.clone(),
            listen: listen?,
            public_url: public_url?,
            dev: raw.dev,
            tls,
            admin,
            admin_token_file,
            log,
            policies: policies.0,
            policy_trust: policies.1,
            policy_candidate: policies.2,
            certs_dir,
            pseudonym_key_file,
            crm_double,
            limits,
            audit,
            budgets: raw.budgets.map(|b| b.value),
            refusal_style,
            apps,
            upstreams,
            record_of_processing: raw.record_of_processing.unwrap_or_default(),
            controller,
            spans: std::mem::take(&mut self.spans),
        })
    }

    /// `controller:`: the time zone must be one the bundled IANA database knows.
    fn controller(&mut self, raw: Option<&super::raw::RawController>) -> super::ControllerSettings {
        let Some(raw) = raw else {
            return super::ControllerSettings::default();
        };
        let time_zone = raw.time_zone.as_ref().and_then(|tz| {
            match crate::incident::report::clock::time_zone(&tz.value) {
                Ok(zone) => Some(zone),
                Err(e) => {
                    self.error(&tz.referenced, format!("controller.time_zone: {e}"));
                    None
                }
            }
        });
        super::ControllerSettings {
            name: raw.name.clone(),
            time_zone,
        }
    }

    fn log(&mut self, l: &RawLog) -> LogConfig {
        let format = match &l.format {
            None => LogFormat::Text,
            Some(f) => match f.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    self.error(
                        &f.referenced,
                        format!("log.format is text or json, got {other:?}"),
                    );
                    LogFormat::Text
                }
            },
        };
        LogConfig { format }
    }

    /// `policies:`: the directory (or signed bundle) in force, the keys a bundle must be
    /// signed by, and a candidate directory evaluated beside it.
    fn policies(
        &mut self,
        raw: Option<&serde_saphyr::Spanned<super::raw::RawPolicies>>,
    ) -> (PathBuf, Option<Vec<PathBuf>>, Option<PathBuf>) {
        use super::raw::RawPolicies;
        let Some(raw) = raw else {
            return (self.path("policies"), None, None);
        };
        self.spans.insert("policies", &raw.referenced);
        let spec = match &raw.value {
            RawPolicies::Dir(d) => return (self.path(d), None, None),
            RawPolicies::Spec(s) => s,
        };
        let at = &raw.referenced;
        let candidate = spec.candidate.as_deref().map(|c| self.path(c));
        match (&spec.dir, &spec.bundle) {
            (Some(d), None) => {
                if !spec.trusted_keys.is_empty() {
                    self.error(
                        at,
                        "policies.trusted_keys verifies a `bundle`; a `dir` is not signed",
                    );
                }
                (self.path(d), None, candidate)
            }
            (None, Some(b)) => {
                if spec.trusted_keys.is_empty() {
                    self.error(at, "policies.bundle needs trusted_keys: the public keys (base64 files) a bundle must be signed by");
                }
                let keys = spec.trusted_keys.iter().map(|k| self.path(k)).collect();
                (self.path(b), Some(keys), candidate)
            }
            (Some(_), Some(_)) => {
                self.error(at, "policies takes `dir` or `bundle`, not both");
                (self.path("policies"), None, candidate)
            }
            (None, None) => {
                self.error(at, "policies needs `dir` or `bundle` (with trusted_keys)");
                (self.path("policies"), None, candidate)
            }
        }
    }

    /// `https://host[:port]` without a path (a trailing `/` is dropped).
    fn public_url(&mut self, u: &Spanned<String>) -> Option<String> {
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

    fn crm_double(&mut self, d: &Spanned<RawCrmDouble>) -> Option<CrmDoubleSettings> {
        let raw = &d.value;
        self.spans.insert("crm_double", &d.referenced);
        let oauth_client = match (&raw.oauth_client_id, &raw.oauth_secret_file) {
            (Some(id), Some(f)) => Some((
                id.clone(),
                self.spanned_path("crm_double.oauth_secret_file", f),
            )),
            (None, None) => None,
            _ => {
                self.error(
                    &d.referenced,
                    "crm_double: oauth_client_id and oauth_secret_file go together",
                );
                None
            }
        };
        let listen = self.addr(&raw.listen, "crm_double.listen")?;
        Some(CrmDoubleSettings {
            listen,
            contacts: raw.contacts.unwrap_or(1000),
            seed: raw.seed.unwrap_or(42),
            bearer_file: raw
                .bearer_file
                .as_ref()
                .map(|p| self.spanned_path("crm_double.bearer_file", p)),
            oauth_client,
        })
    }

    fn limits(&mut self, l: &RawLimits) -> Limits {
        let defaults = Limits::default();
        if let Some(n) = l.max_connections.as_ref().filter(|n| n.value == 0) {
            self.error(&n.referenced, "limits.max_connections must be at least 1");
        }
        let max_header_bytes = self.size(&l.max_header_bytes, defaults.max_header_bytes);
        if let Some(at) = l.max_header_bytes.as_ref() {
            if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&max_header_bytes) {
                self.error(
                    &at.referenced,
                    "limits.max_header_bytes must be between 4KiB and 1MiB",
                );
            }
        }
        let body_min_rate = self.size(&l.body_min_rate, defaults.body_min_rate);
        if let Some(at) = l.body_min_rate.as_ref().filter(|_| body_min_rate == 0) {
            self.error(
                &at.referenced,
                "limits.body_min_rate must be at least 1 (bytes per second)",
            );
        }
        Limits {
            max_connections: l
                .max_connections
                .as_ref()
                .map_or(defaults.max_connections, |n| n.value),
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
            max_header_bytes,
            body_read_timeout: self.duration(&l.body_read_timeout, defaults.body_read_timeout),
            body_min_rate,
            drain_bytes: self.size(&l.drain_bytes, defaults.drain_bytes),
            linger_timeout: self.duration(&l.linger_timeout, defaults.linger_timeout),
        }
    }

    fn audit(&mut self, a: &Spanned<RawAuditConfig>) -> Option<AuditConfig> {
        self.spans.insert("audit", &a.referenced);
        match crate::audit::compile_config(&a.value, &self.base) {
            Ok(c) => Some(c),
            Err(errors) => {
                for e in errors {
                    self.error(&a.referenced, format!("audit: {e}"));
                }
                None
            }
        }
    }

    /// Checks `budgets:` (its store is built at start) and returns the refusal style.
    fn budgets(&mut self, b: &Spanned<RawBudgetsConfig>) -> RefusalStyle {
        self.spans.insert("budgets", &b.referenced);
        for problem in b.value.problems() {
            self.error(&b.referenced, problem.to_string());
        }
        match b.value.refusal.as_deref() {
            None | Some("problem") => RefusalStyle::Problem,
            Some("vendor") => RefusalStyle::Vendor,
            Some(other) => {
                self.error(
                    &b.referenced,
                    format!("budgets.refusal is problem or vendor, got {other:?}"),
                );
                RefusalStyle::Problem
            }
        }
    }

    fn app(&mut self, name: &str, app: &Spanned<RawApp>) -> Option<AppConfig> {
        let at = &app.referenced;
        let raw = &app.value;
        self.spans.insert(format!("apps.{name}"), at);
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
        for (i, key) in raw.api_keys.iter().enumerate() {
            let kat = &key.referenced;
            let k = &key.value;
            self.spans.insert(format!("apps.{name}.api_keys[{i}]"), kat);
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
        // a key that failed above has its own error; this one is for an app with none at all
        if client_cert.is_none() && raw.api_keys.is_empty() {
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
        self.spans.insert(format!("upstreams.{name}"), &at);
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
        let jurisdiction = raw.jurisdiction.value.clone();
        if !iso3166::is_assigned(&jurisdiction) {
            let upper = jurisdiction.trim().to_ascii_uppercase();
            let hint = if iso3166::is_assigned(&upper) {
                format!(" (codes are upper case: write {upper})")
            } else {
                String::new()
            };
            self.error(&raw.jurisdiction.referenced, format!("upstream {name}: jurisdiction is an assigned ISO 3166-1 alpha-2 code like US or DE, got {jurisdiction:?}{hint}"));
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
            Some(a) => {
                self.spans
                    .insert(format!("upstreams.{name}.auth"), &a.referenced);
                self.auth(name, &a.referenced, &a.value)
            }
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
        let body_idle_timeout = self.duration(
            &raw.body_idle_timeout
                .clone()
                .map(|v| Spanned::new(v, at, at)),
            Duration::from_secs(60),
        );
        let protocol = match raw.protocol.as_deref() {
            None => UpstreamProtocol::Auto,
            Some(p) => UpstreamProtocol::parse(p).unwrap_or_else(|| {
                self.error(
                    &at,
                    format!("upstream {name}: protocol must be auto, http1 or http2, not {p:?}"),
                );
                ok = false;
                UpstreamProtocol::Auto
            }),
        };
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
            ca: raw
                .ca
                .as_ref()
                .map(|p| self.spanned_path(&format!("upstreams.{name}.ca"), p)),
            connect_timeout,
            response_timeout,
            body_idle_timeout,
            protocol,
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
