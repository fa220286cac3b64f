//! Development key material: a dev CA, the certificates it signs, the audit signing key, the
//! pseudonymisation master key and API keys, all in one directory (default `certs/`).
//!
//! `zweck certs generate` calls [`generate`] (with `--force`, `overwrite: true`); `serve` in dev
//! mode calls it with `overwrite: false` on every start, so a fresh checkout works without a
//! setup step and a second start changes nothing. Production brings its own certificates and
//! keys; nothing here is meant to leave a developer's machine.
//!
//! `overwrite` replaces certificates only (the CA and every leaf): renewing a TLS certificate
//! must not change the audit signing key (the log's checkpoints would stop verifying) or the
//! pseudonymisation key (every pseudonym would change), nor lock an app out with a new API
//! key. Those rotate on their own, deliberately: `zweck keys rotate audit|pseudonym`
//! ([`crate::keys`]). `renew_leaves` re-issues the leaves from the existing CA (`zweck keys
//! rotate tls`).
//!
//! Why the rules below:
//! - Every file is written through [`crate::secrets::write_atomic`] (private keys and API keys
//!   with mode 0600 from the start), and read back through the same module's readers, so a
//!   crash never leaves half a key that a later `overwrite: false` run would keep.
//! - `overwrite: false` keeps only what is still usable: a leaf certificate is kept when its key
//!   exists and matches it and it was issued by the CA on disk (its authority key identifier is
//!   the CA's subject key identifier). So removing the CA, or a crash between writing the CA and
//!   its leaves, regenerates every leaf. The CA, the audit key, the pseudonymisation key and
//!   API key hashes are never replaced silently (a damaged one is an error): a CA may be trusted
//!   by a browser, checkpoints already signed need the old audit key, a new pseudonymisation key
//!   would change every pseudonym, and a new API key would lock its app out.
//! - Errors name the file and the reason, never the content of a key file.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;

use crate::secrets::{
    ensure_private_dir, malformed, random_bytes, read_api_key, read_api_key_sha256, read_audit_key,
    read_key_pair, read_optional, read_pseudonym_key, sha256_hex, write_atomic, SecretsError,
    PUBLIC_MODE, SECRET_MODE,
};

/// SANs of the proxy and CRM-double certificates unless the caller names others.
pub const DEFAULT_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Certificates are valid for two years from generation.
const VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 60 * 60);
/// Certificates start an hour in the past so a peer whose clock lags still accepts them.
const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// Prefix of generated API keys, so a leaked one is recognisable in a scanner.
const API_KEY_PREFIX: &str = "zk_";

/// What [`generate`] should create and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// The directory every file goes into; created with mode 0700 if missing.
    pub dir: PathBuf,
    /// SANs for the proxy and CRM-double certificates; IP addresses become IP SANs.
    pub server_names: Vec<String>,
    /// One client certificate each (the name is the CN and a DNS SAN).
    pub client_apps: Vec<String>,
    /// One API key (`api-keys/<app>.key`) and its hash (`api-keys/<app>.sha256`) each.
    pub api_key_apps: Vec<String>,
    /// `false` creates only what is missing or unusable (dev mode's first start); `true`
    /// replaces the CA and every certificate, never a key of another kind.
    pub overwrite: bool,
    /// Re-issues every leaf certificate (and its key) from the existing CA.
    pub renew_leaves: bool,
}

impl GenerateOptions {
    /// Default SANs, no apps, `overwrite: false`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            server_names: DEFAULT_SERVER_NAMES
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            client_apps: Vec::new(),
            api_key_apps: Vec::new(),
            overwrite: false,
            renew_leaves: false,
        }
    }
}

/// Which files [`generate`] wrote and which it left as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateReport {
    pub created: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

/// Paths of every file [`generate`] writes, so callers and tests need no string literals.
///
/// App names are joined as given; [`generate`] rejects names that could leave the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPaths {
    pub dir: PathBuf,
}

impl DevPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn proxy_cert(&self) -> PathBuf {
        self.dir.join("proxy.pem")
    }
    pub fn proxy_key(&self) -> PathBuf {
        self.dir.join("proxy.key")
    }
    pub fn crm_double_cert(&self) -> PathBuf {
        self.dir.join("crm-double.pem")
    }
    pub fn crm_double_key(&self) -> PathBuf {
        self.dir.join("crm-double.key")
    }
    pub fn clients_dir(&self) -> PathBuf {
        self.dir.join("clients")
    }
    pub fn client_cert(&self, app: &str) -> PathBuf {
        self.clients_dir().join(format!("{app}.pem"))
    }
    pub fn client_key(&self, app: &str) -> PathBuf {
        self.clients_dir().join(format!("{app}.key"))
    }
    pub fn audit_key(&self) -> PathBuf {
        self.dir.join("audit.key")
    }
    pub fn audit_pub(&self) -> PathBuf {
        self.dir.join("audit.pub")
    }
    /// The audit key history (written by `zweck keys rotate audit`).
    pub fn audit_keys(&self) -> PathBuf {
        self.dir.join("audit.keys")
    }
    pub fn pseudonym_key(&self) -> PathBuf {
        self.dir.join("pseudonym.key")
    }
    pub fn api_keys_dir(&self) -> PathBuf {
        self.dir.join("api-keys")
    }
    pub fn api_key(&self, app: &str) -> PathBuf {
        self.api_keys_dir().join(format!("{app}.key"))
    }
    pub fn api_key_sha256(&self, app: &str) -> PathBuf {
        self.api_keys_dir().join(format!("{app}.sha256"))
    }
}

/// Why generating or reading development key material failed. Messages name the file and the
/// reason, never the content of a key file.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A key or certificate file that cannot be read, written or used.
    #[error(transparent)]
    File(#[from] SecretsError),
    #[error(
        "the CA certificate {} exists but its key {} does not: restore the key, or delete the \
         CA certificate to create a new CA (every certificate it signed is then replaced too)",
        cert.display(),
        key.display()
    )]
    CaKeyMissing { cert: PathBuf, key: PathBuf },
    #[error("the key {} does not belong to the certificate {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "app name {name:?} cannot name a certificate or file: use ASCII letters, digits, '.', \
         '-' or '_', at most 64 characters, not starting with '.'"
    )]
    InvalidAppName { name: String },
    #[error("server name {name:?} is neither a DNS name nor an IP address")]
    InvalidServerName {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("no server names given for the proxy and CRM-double certificates")]
    NoServerNames,
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("the system clock is outside what a certificate can express")]
    Clock,
}

/// Creates the development key material `opts` asks for; see the module doc for what
/// `overwrite: false` keeps.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateReport, CertsError> {
    if opts.server_names.is_empty() {
        return Err(CertsError::NoServerNames);
    }
    for name in &opts.server_names {
        CertificateParams::new(vec![name.clone()]).map_err(|source| {
            CertsError::InvalidServerName {
                name: name.clone(),
                source,
            }
        })?;
    }
    for app in opts.client_apps.iter().chain(&opts.api_key_apps) {
        check_app_name(app)?;
    }
    let paths = DevPaths::new(&opts.dir);
    let mut report = GenerateReport::default();

    ensure_private_dir(&paths.dir)?;
    if !opts.client_apps.is_empty() {
        ensure_private_dir(&paths.clients_dir())?;
    }
    if !opts.api_key_apps.is_empty() {
        ensure_private_dir(&paths.api_keys_dir())?;
    }

    let ca = ca(&paths, opts.overwrite, &mut report)?;
    // A new CA invalidates every leaf; an existing one keeps the leaves it signed.
    let keep_leaves = !opts.overwrite && !opts.renew_leaves && !ca.fresh;
    let server = LeafSpec {
        sans: &opts.server_names,
        common_name: "Zweck proxy",
        usage: ExtendedKeyUsagePurpose::ServerAuth,
    };
    leaf(
        &paths.proxy_cert(),
        &paths.proxy_key(),
        &server,
        &ca,
        keep_leaves,
        &mut report,
    )?;
    let crm_double = LeafSpec {
        common_name: "Zweck CRM double",
        ..server
    };
    leaf(
        &paths.crm_double_cert(),
        &paths.crm_double_key(),
        &crm_double,
        &ca,
        keep_leaves,
        &mut report,
    )?;
    for app in &opts.client_apps {
        let client = LeafSpec {
            sans: std::slice::from_ref(app),
            common_name: app,
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        };
        let (cert, key) = (paths.client_cert(app), paths.client_key(app));
        leaf(&cert, &key, &client, &ca, keep_leaves, &mut report)?;
    }

    audit_key(&paths, &mut report)?;
    pseudonym_key(&paths, &mut report)?;
    for app in &opts.api_key_apps {
        api_key(&paths, app, &mut report)?;
    }
    Ok(report)
}

/// The dev CA in memory: what signs leaves, and the key identifier its leaves carry as their
/// authority key identifier.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    key_id: Option<Vec<u8>>,
    /// Created by this run, so every leaf must be signed anew.
    fresh: bool,
}

fn ca(paths: &DevPaths, overwrite: bool, report: &mut GenerateReport) -> Result<Ca, CertsError> {
    let (cert_path, key_path) = (paths.ca_cert(), paths.ca_key());
    if !overwrite {
        if let Some(cert_pem) = read_optional(&cert_path)? {
            if !key_path.exists() {
                return Err(CertsError::CaKeyMissing {
                    cert: cert_path,
                    key: key_path,
                });
            }
            let key = read_key_pair(&key_path)?;
            let cert_der = CertificateDer::from_pem_slice(&cert_pem)
                .map_err(|_| malformed(&cert_path, "expected a PEM certificate"))?;
            let parsed = ParsedCert::new(&cert_der, &cert_path)?;
            if parsed.public_key != key.public_key_raw() {
                return Err(CertsError::KeyMismatch {
                    cert: cert_path,
                    key: key_path,
                });
            }
            let key_id = parsed.subject_key_id;
            let issuer = Issuer::from_ca_cert_der(&cert_der, key)
                .map_err(|_| malformed(&cert_path, "expected a CA certificate"))?;
            report.kept.push(cert_path);
            report.kept.push(key_path);
            return Ok(Ca {
                issuer,
                key_id,
                fresh: false,
            });
        }
    }

    let key = new_key_pair(&rcgen::PKCS_ECDSA_P256_SHA256, &key_path)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(&format!("Zweck dev CA {}", ca_suffix()?));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_serial_and_validity(&mut params)?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| create_error(&cert_path, source))?;
    let key_id = Some(params.key_identifier(&key));
    // Key before certificate: a crash in between leaves a key without a certificate, which the
    // next run replaces, rather than a CA certificate whose key is lost.
    write_atomic(&key_path, key.serialize_pem().as_bytes(), SECRET_MODE)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), PUBLIC_MODE)?;
    report.created.push(cert_path);
    report.created.push(key_path);
    Ok(Ca {
        issuer: Issuer::new(params, key),
        key_id,
        fresh: true,
    })
}

/// What distinguishes the leaf certificates from each other.
#[derive(Clone)]
struct LeafSpec<'a> {
    sans: &'a [String],
    common_name: &'a str,
    usage: ExtendedKeyUsagePurpose,
}

fn leaf(
    cert_path: &Path,
    key_path: &Path,
    spec: &LeafSpec<'_>,
    ca: &Ca,
    keep_existing: bool,
    report: &mut GenerateReport,
) -> Result<(), CertsError> {
    if keep_existing && leaf_usable(cert_path, key_path, ca)? {
        report.kept.push(cert_path.to_owned());
        report.kept.push(key_path.to_owned());
        return Ok(());
    }
    // Names were checked in `generate`; an error here is an rcgen limit, not a bad name.
    let mut params = CertificateParams::new(spec.sans.to_vec())
        .map_err(|source| create_error(cert_path, source))?;
    params.distinguished_name = common_name(spec.common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![spec.usage.clone()];
    params.use_authority_key_identifier_extension = true;
    set_serial_and_validity(&mut params)?;
    let key = new_key_pair(&rcgen::PKCS_ECDSA_P256_SHA256, key_path)?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|source| create_error(cert_path, source))?;
    write_atomic(key_path, key.serialize_pem().as_bytes(), SECRET_MODE)?;
    write_atomic(cert_path, cert.pem().as_bytes(), PUBLIC_MODE)?;
    report.created.push(cert_path.to_owned());
    report.created.push(key_path.to_owned());
    Ok(())
}

/// An existing leaf is kept only if both files parse, the key belongs to the certificate and
/// the certificate names the current CA's key as its issuer key. Anything else is replaced:
/// leaves are cheap and carry no state worth protecting.
fn leaf_usable(cert_path: &Path, key_path: &Path, ca: &Ca) -> Result<bool, CertsError> {
    let (Some(cert_pem), Some(key_pem)) = (read_optional(cert_path)?, read_optional(key_path)?)
    else {
        return Ok(false);
    };
    let Ok(cert_der) = CertificateDer::from_pem_slice(&cert_pem) else {
        return Ok(false);
    };
    let Ok(parsed) = ParsedCert::new(&cert_der, cert_path) else {
        return Ok(false);
    };
    let Some(key) = std::str::from_utf8(&key_pem)
        .ok()
        .and_then(|pem| KeyPair::from_pem(pem).ok())
    else {
        return Ok(false);
    };
    let issued_by_ca = match (&ca.key_id, &parsed.authority_key_id) {
        (Some(ca_id), Some(leaf_id)) => ca_id == leaf_id,
        // A CA without a subject key identifier was not made here; trust the operator.
        (None, _) => true,
        (Some(_), None) => false,
    };
    Ok(issued_by_ca && parsed.public_key == key.public_key_raw())
}

/// The parts of a certificate this module checks.
struct ParsedCert {
    public_key: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
}

impl ParsedCert {
    fn new(der: &CertificateDer<'_>, path: &Path) -> Result<Self, CertsError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| malformed(path, "expected an X.509 certificate"))?;
        let mut parsed = Self {
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            subject_key_id: None,
            authority_key_id: None,
        };
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    parsed.subject_key_id = Some(id.0.to_vec());
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    parsed.authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                _ => {}
            }
        }
        Ok(parsed)
    }
}

fn audit_key(paths: &DevPaths, report: &mut GenerateReport) -> Result<(), CertsError> {
    let (key_path, pub_path) = (paths.audit_key(), paths.audit_pub());
    let key = if key_path.exists() {
        report.kept.push(key_path.clone());
        read_audit_key(&key_path)?
    } else {
        let key = new_key_pair(&rcgen::PKCS_ED25519, &key_path)?;
        write_atomic(&key_path, key.serialize_pem().as_bytes(), SECRET_MODE)?;
        report.created.push(key_path);
        key
    };
    // The public half is derived data: rewrite it whenever it does not match the key.
    let line = format!("{}\n", STANDARD.encode(key.public_key_raw()));
    if read_optional(&pub_path)?.as_deref() == Some(line.as_bytes()) {
        report.kept.push(pub_path);
    } else {
        write_atomic(&pub_path, line.as_bytes(), PUBLIC_MODE)?;
        report.created.push(pub_path);
    }
    Ok(())
}

fn pseudonym_key(paths: &DevPaths, report: &mut GenerateReport) -> Result<(), CertsError> {
    let path = paths.pseudonym_key();
    if path.exists() {
        // Validate, but never replace: a new key would change every pseudonym.
        read_pseudonym_key(&path)?;
        report.kept.push(path);
        return Ok(());
    }
    let bytes: [u8; 32] = random_bytes()?;
    write_atomic(
        &path,
        format!("{}\n", hex::encode(bytes)).as_bytes(),
        SECRET_MODE,
    )?;
    report.created.push(path);
    Ok(())
}

/// An existing hash is kept even without its key: the key may have been handed to the app and
/// deleted here, and a new one would lock that app out.
fn api_key(paths: &DevPaths, app: &str, report: &mut GenerateReport) -> Result<(), CertsError> {
    let (key_path, hash_path) = (paths.api_key(app), paths.api_key_sha256(app));
    if hash_path.exists() {
        read_api_key_sha256(&hash_path)?;
        if key_path.exists() {
            report.kept.push(key_path);
        }
        report.kept.push(hash_path);
        return Ok(());
    }
    let key = if key_path.exists() {
        report.kept.push(key_path.clone());
        read_api_key(&key_path)?
    } else {
        let key = format!(
            "{API_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        );
        write_atomic(&key_path, format!("{key}\n").as_bytes(), SECRET_MODE)?;
        report.created.push(key_path);
        key
    };
    let hash = format!("{}\n", sha256_hex(key.as_bytes()));
    write_atomic(&hash_path, hash.as_bytes(), PUBLIC_MODE)?;
    report.created.push(hash_path);
    Ok(())
}

/// App names become file names and DNS SANs, so only a conservative alphabet is allowed.
fn check_app_name(name: &str) -> Result<(), CertsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(CertsError::InvalidAppName {
            name: name.to_owned(),
        })
    }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "Zweck development");
    dn
}

fn set_serial_and_validity(params: &mut CertificateParams) -> Result<(), CertsError> {
    let mut serial: [u8; 16] = random_bytes()?;
    // Positive and without a leading zero byte, so it encodes as exactly 16 bytes.
    serial[0] = (serial[0] & 0x7f).max(1);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CertsError::Clock)?;
    // Whole seconds: all a certificate's validity can express.
    let at = |since_epoch: Duration| {
        i64::try_from(since_epoch.as_secs())
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or(CertsError::Clock)
    };
    params.not_before = at(now.saturating_sub(BACKDATE))?;
    params.not_after = at(now + VALIDITY)?;
    Ok(())
}

/// The host name makes a dev CA recognisable in a trust store; without one, a random suffix.
fn ca_suffix() -> Result<String, CertsError> {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .take(48)
        .collect();
    if host.is_empty() {
        Ok(hex::encode(random_bytes::<4>()?))
    } else {
        Ok(host)
    }
}

fn new_key_pair(
    alg: &'static rcgen::SignatureAlgorithm,
    path: &Path,
) -> Result<KeyPair, CertsError> {
    KeyPair::generate_for(alg).map_err(|source| create_error(path, source))
}

fn create_error(path: &Path, source: rcgen::Error) -> CertsError {
    CertsError::Create {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use rustls::crypto::CryptoProvider;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConfig, RootCertStore, ServerConfig};
    use rustls_pki_types::{PrivateKeyDer, ServerName};
    use sha2::{Digest, Sha256};
    use x509_parser::extensions::GeneralName;

    use crate::secrets::read_audit_pub;

    const APP: &str = "crm-app";

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn options(dir: &Path, apps: &[&str]) -> GenerateOptions {
        let mut opts = GenerateOptions::new(dir.join("certs"));
        opts.client_apps = apps.iter().map(std::string::ToString::to_string).collect();
        opts.api_key_apps = opts.client_apps.clone();
        opts
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Every regular file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(snapshot(&path));
            } else {
                files.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
        files
    }

    fn roots(ca_pem: &Path) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca_pem).unwrap())
            .unwrap();
        Arc::new(roots)
    }

    fn chain(cert: &Path) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A real TLS handshake over an in-memory pipe: the server presents `server` and requires a
    /// client certificate issued by `ca`; the client trusts only `ca`, presents `client` and
    /// connects to `name`.
    async fn handshake(
        ca: &Path,
        server: (&Path, &Path),
        client: (&Path, &Path),
        name: &str,
    ) -> Result<(), String> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap();
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                chain(server.0),
                PrivateKeyDer::from_pem_file(server.1).unwrap(),
            )
            .unwrap();
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(ca))
            .with_client_auth_cert(
                chain(client.0),
                PrivateKeyDer::from_pem_file(client.1).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let expected_client = chain(client.0).remove(0);
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let both = async {
            let (server, client) = tokio::join!(
                acceptor.accept(server_io),
                connector.connect(name, client_io)
            );
            client.map_err(|e| format!("client: {e}"))?;
            let server = server.map_err(|e| format!("server: {e}"))?;
            // The server saw the client certificate it is meant to see.
            match server.get_ref().1.peer_certificates() {
                Some([leaf, ..]) if *leaf == expected_client => Ok(()),
                _ => Err("server saw no or another client certificate".to_owned()),
            }
        };
        tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .map_err(|_| "handshake timed out".to_owned())?
    }

    #[test]
    fn creates_every_file_with_private_modes_for_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[APP]);
        let report = generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);

        let secrets = [
            p.ca_key(),
            p.proxy_key(),
            p.crm_double_key(),
            p.client_key(APP),
            p.audit_key(),
            p.pseudonym_key(),
            p.api_key(APP),
        ];
        let public = [
            p.ca_cert(),
            p.proxy_cert(),
            p.crm_double_cert(),
            p.client_cert(APP),
            p.audit_pub(),
            p.api_key_sha256(APP),
        ];
        for path in &secrets {
            assert_eq!(mode(path), 0o600, "{}", path.display());
        }
        for path in &public {
            assert!(path.is_file(), "{}", path.display());
        }
        for dir in [&p.dir, &p.clients_dir(), &p.api_keys_dir()] {
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
        }
        // Exactly these files, no temporary leftovers, all reported as created.
        let mut expected: Vec<PathBuf> = secrets.into_iter().chain(public).collect();
        expected.sort();
        let mut created = report.created.clone();
        created.sort();
        assert_eq!(created, expected);
        assert!(report.kept.is_empty());
        assert_eq!(snapshot(&p.dir).into_keys().collect::<Vec<_>>(), expected);
    }

    #[tokio::test]
    async fn server_certs_verify_against_the_ca_in_a_real_handshake() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[APP]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);
        let client = (p.client_cert(APP), p.client_key(APP));
        let client = (client.0.as_path(), client.1.as_path());
        let servers = [
            (p.proxy_cert(), p.proxy_key()),
            (p.crm_double_cert(), p.crm_double_key()),
        ];
        for (cert, key) in &servers {
            for name in DEFAULT_SERVER_NAMES {
                handshake(&p.ca_cert(), (cert, key), client, name)
                    .await
                    .unwrap_or_else(|e| panic!("{} as {name}: {e}", cert.display()));
            }
            // Not vacuous: a name outside the SANs fails.
            assert!(handshake(&p.ca_cert(), (cert, key), client, "example.com")
                .await
                .is_err());
        }
        // An app name with an underscore is a DNS SAN webpki still accepts in a client cert.
        let mut underscored = opts.clone();
        underscored.client_apps = vec!["billing_v2".into()];
        generate(&underscored).unwrap();
        let (cc, ck) = (p.client_cert("billing_v2"), p.client_key("billing_v2"));
        let (proxy, key) = (p.proxy_cert(), p.proxy_key());
        handshake(&p.ca_cert(), (&proxy, &key), (&cc, &ck), "localhost")
            .await
            .unwrap();

        // A client trusting another CA refuses the proxy.
        let other = tempfile::tempdir().unwrap();
        let other_opts = options(other.path(), &[APP]);
        generate(&other_opts).unwrap();
        let other_ca = DevPaths::new(&other_opts.dir).ca_cert();
        let proxy = (p.proxy_cert(), p.proxy_key());
        assert!(
            handshake(&other_ca, (&proxy.0, &proxy.1), client, "localhost")
                .await
                .is_err()
        );
    }

    #[test]
    fn certificates_carry_names_and_usages() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[APP, "billing_v2"]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);

        let der = |path: PathBuf| CertificateDer::from_pem_file(path).unwrap();
        for app in [APP, "billing_v2"] {
            let cert_der = der(p.client_cert(app));
            let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
            let cn = cert.subject().iter_common_name().next().unwrap();
            assert_eq!(cn.as_str().unwrap(), app);
            let san = cert.subject_alternative_name().unwrap().unwrap();
            assert_eq!(san.value.general_names, vec![GeneralName::DNSName(app)]);
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && !eku.server_auth);
            assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        }

        let proxy_der = der(p.proxy_cert());
        let (_, proxy) = x509_parser::parse_x509_certificate(&proxy_der).unwrap();
        let san = proxy.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![
                GeneralName::DNSName("localhost"),
                GeneralName::IPAddress(&[127, 0, 0, 1]),
                GeneralName::IPAddress(&std::net::Ipv6Addr::LOCALHOST.octets()),
            ]
        );
        assert!(
            proxy
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
        let days = (proxy.validity().not_after.timestamp()
            - proxy.validity().not_before.timestamp())
            / 86_400;
        assert!((729..=731).contains(&days), "{days} days");

        let ca_der = der(p.ca_cert());
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
        assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
        let cn = ca.subject().iter_common_name().next().unwrap();
        assert!(cn.as_str().unwrap().starts_with("Zweck dev CA "));
        // Random serials: two leaves never share one.
        assert_ne!(proxy.raw_serial(), ca.raw_serial());
    }

    #[tokio::test]
    async fn keeping_leaves_files_byte_identical_and_signs_new_leaves_with_the_old_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let first = options(tmp.path(), &[APP]);
        generate(&first).unwrap();
        let p = DevPaths::new(&first.dir);
        let before = snapshot(&p.dir);

        let second = options(tmp.path(), &[APP, "newcomer"]);
        let report = generate(&second).unwrap();
        let after = snapshot(&p.dir);
        for (path, bytes) in &before {
            assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
        }
        let mut kept = report.kept.clone();
        kept.sort();
        assert_eq!(kept, before.keys().cloned().collect::<Vec<_>>());
        let mut created = report.created.clone();
        created.sort();
        let mut expected = vec![
            p.client_cert("newcomer"),
            p.client_key("newcomer"),
            p.api_key("newcomer"),
            p.api_key_sha256("newcomer"),
        ];
        expected.sort();
        assert_eq!(created, expected);

        let (proxy, key) = (p.proxy_cert(), p.proxy_key());
        let (cc, ck) = (p.client_cert("newcomer"), p.client_key("newcomer"));
        handshake(&p.ca_cert(), (&proxy, &key), (&cc, &ck), "localhost")
            .await
            .unwrap();

        // A third run has nothing to do.
        let third = generate(&second).unwrap();
        assert!(third.created.is_empty());
        assert_eq!(snapshot(&p.dir), after);
    }

    #[tokio::test]
    async fn a_missing_ca_regenerates_every_leaf_but_no_other_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[APP]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);
        let before = snapshot(&p.dir);
        fs::remove_file(p.ca_cert()).unwrap();
        fs::remove_file(p.ca_key()).unwrap();

        let report = generate(&opts).unwrap();
        let after = snapshot(&p.dir);
        for leaf in [
            p.proxy_cert(),
            p.proxy_key(),
            p.crm_double_cert(),
            p.client_cert(APP),
        ] {
            assert_ne!(before[&leaf], after[&leaf], "{} kept", leaf.display());
            assert!(report.created.contains(&leaf));
        }
        for secret in [
            p.audit_key(),
            p.audit_pub(),
            p.pseudonym_key(),
            p.api_key(APP),
            p.api_key_sha256(APP),
        ] {
            assert_eq!(
                before[&secret],
                after[&secret],
                "{} replaced",
                secret.display()
            );
            assert!(report.kept.contains(&secret));
        }
        let (proxy, key) = (p.proxy_cert(), p.proxy_key());
        let (cc, ck) = (p.client_cert(APP), p.client_key(APP));
        handshake(&p.ca_cert(), (&proxy, &key), (&cc, &ck), "localhost")
            .await
            .unwrap();
    }

    #[test]
    fn a_leaf_from_another_ca_or_with_a_foreign_key_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[APP]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);
        // As if a crash had left a leaf of another CA, and a key that is not the cert's.
        let other = tempfile::tempdir().unwrap();
        let other_opts = options(other.path(), &[APP]);
        generate(&other_opts).unwrap();
        let o = DevPaths::new(&other_opts.dir);
        fs::copy(o.proxy_cert(), p.proxy_cert()).unwrap();
        fs::copy(o.proxy_key(), p.proxy_key()).unwrap();
        fs::copy(o.client_key(APP), p.client_key(APP)).unwrap();

        let report = generate(&opts).unwrap();
        for path in [
            p.proxy_cert(),
            p.proxy_key(),
            p.client_cert(APP),
            p.client_key(APP),
        ] {
            assert!(report.created.contains(&path), "{} kept", path.display());
        }
        assert!(report.kept.contains(&p.crm_double_cert()));
    }

    #[test]
    fn a_ca_without_its_key_is_an_error_and_overwrite_replaces_it() {
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = options(tmp.path(), &[APP]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);
        fs::remove_file(p.ca_key()).unwrap();
        let before = snapshot(&p.dir);

        let err = generate(&opts).unwrap_err();
        assert!(matches!(err, CertsError::CaKeyMissing { .. }), "{err:?}");
        assert!(err.to_string().contains("ca.key"), "{err}");
        assert_eq!(snapshot(&p.dir), before, "nothing written on error");

        opts.overwrite = true;
        let report = generate(&opts).unwrap();
        let after = snapshot(&p.dir);
        // --force renews certificates, and nothing else: the audit key (old checkpoints
        // would stop verifying), the pseudonym key (every pseudonym would change) and API keys
        // (apps would be locked out) rotate only on their own (`zweck keys rotate`)
        let kept = [
            p.audit_key(),
            p.audit_pub(),
            p.pseudonym_key(),
            p.api_key(APP),
            p.api_key_sha256(APP),
        ];
        for (path, bytes) in &before {
            if kept.contains(path) {
                assert_eq!(&after[path], bytes, "{} replaced", path.display());
                assert!(report.kept.contains(path), "{}", path.display());
            } else {
                assert_ne!(&after[path], bytes, "{} not regenerated", path.display());
            }
        }
    }

    #[test]
    fn a_ca_key_of_another_ca_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);
        fs::copy(p.proxy_key(), p.ca_key()).unwrap();
        let err = generate(&opts).unwrap_err();
        assert!(matches!(err, CertsError::KeyMismatch { .. }), "{err:?}");
    }

    #[test]
    fn api_key_hash_file_is_the_sha256_of_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[APP]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);

        let key = read_api_key(&p.api_key(APP)).unwrap();
        let rest = key.strip_prefix("zk_").unwrap();
        assert_eq!(rest.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(rest).unwrap().len(), 32);
        assert_eq!(
            fs::read_to_string(p.api_key(APP)).unwrap(),
            format!("{key}\n")
        );

        let hash_text = fs::read_to_string(p.api_key_sha256(APP)).unwrap();
        assert_eq!(hash_text, format!("{}\n", sha256_hex(key.as_bytes())));
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        assert_eq!(read_api_key_sha256(&p.api_key_sha256(APP)).unwrap(), digest);

        // Two apps never share a key.
        let other = options(tmp.path(), &["other"]);
        generate(&other).unwrap();
        assert_ne!(read_api_key(&p.api_key("other")).unwrap(), key);
    }

    #[test]
    fn an_api_key_hash_without_its_key_is_kept_and_a_key_without_hash_gets_one() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[APP, "second"]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);
        let hash = fs::read(p.api_key_sha256(APP)).unwrap();
        fs::remove_file(p.api_key(APP)).unwrap();
        let second_hash = fs::read(p.api_key_sha256("second")).unwrap();
        fs::remove_file(p.api_key_sha256("second")).unwrap();

        let report = generate(&opts).unwrap();
        assert!(!p.api_key(APP).exists());
        assert_eq!(fs::read(p.api_key_sha256(APP)).unwrap(), hash);
        assert_eq!(fs::read(p.api_key_sha256("second")).unwrap(), second_hash);
        assert_eq!(report.created, vec![p.api_key_sha256("second")]);
    }

    #[test]
    fn audit_key_is_ed25519_pkcs8_and_pub_holds_its_raw_public_key() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);

        let pem = fs::read(p.audit_key()).unwrap();
        assert!(matches!(
            PrivateKeyDer::from_pem_slice(&pem).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        let key = read_audit_key(&p.audit_key()).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ED25519);
        let public = read_audit_pub(&p.audit_pub()).unwrap();
        assert_eq!(key.public_key_raw(), public);
        let line = fs::read_to_string(p.audit_pub()).unwrap();
        assert_eq!(line.lines().count(), 1);
        assert!(line.ends_with('\n'));

        // The key signs; the signature verifies with the public key from audit.pub.
        use rcgen::SigningKey as _;
        let signature = key.sign(b"checkpoint").unwrap();
        let verify = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == rustls::SignatureScheme::ED25519)
            .map(|(_, algs)| algs[0])
            .unwrap();
        assert!(verify
            .verify_signature(&public, b"checkpoint", &signature)
            .is_ok());
        assert!(verify
            .verify_signature(&public, b"tampered", &signature)
            .is_err());

        // A lost audit.pub is derived again from the kept key.
        fs::remove_file(p.audit_pub()).unwrap();
        let report = generate(&opts).unwrap();
        assert_eq!(report.created, vec![p.audit_pub()]);
        assert_eq!(read_audit_pub(&p.audit_pub()).unwrap(), public);
    }

    #[test]
    fn pseudonym_key_is_64_hex_chars_and_never_replaced_silently() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), &[]);
        generate(&opts).unwrap();
        let p = DevPaths::new(&opts.dir);
        let text = fs::read_to_string(p.pseudonym_key()).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(text
            .trim_end()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let secret = read_pseudonym_key(&p.pseudonym_key()).unwrap();
        assert_eq!(hex::encode(secret.key), text.trim_end());
        assert_eq!(secret.version, 1);

        // A damaged key is an error, not a new key.
        fs::write(p.pseudonym_key(), "secret-but-short\n").unwrap();
        let err = generate(&opts).unwrap_err();
        assert!(
            matches!(err, CertsError::File(SecretsError::Malformed { .. })),
            "{err:?}"
        );
        assert!(!err.to_string().contains("secret-but-short"), "{err}");
    }

    #[test]
    fn app_names_that_could_escape_the_directory_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../evil", "a/b", ".hidden", "", "spaced name", "ümlaut"] {
            let opts = options(tmp.path(), &[bad]);
            let err = generate(&opts).unwrap_err();
            assert!(
                matches!(err, CertsError::InvalidAppName { .. }),
                "{bad:?}: {err:?}"
            );
        }
        assert!(!tmp.path().join("certs").exists(), "nothing written");
        assert!(!tmp.path().join("evil.pem").exists());
    }

    #[test]
    fn bad_server_names_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = options(tmp.path(), &[]);
        opts.server_names.clear();
        assert!(matches!(generate(&opts), Err(CertsError::NoServerNames)));
        opts.server_names = vec!["localhost".into(), "bücher.example".into()];
        let err = generate(&opts).unwrap_err();
        assert!(
            matches!(&err, CertsError::InvalidServerName { name, .. } if name == "bücher.example"),
            "{err:?}"
        );
    }
}
