//! rustls configs for both sides, and who a client certificate says the caller is.
//!
//! One crypto provider (ring) for the whole process: rustls panics in `builder()` when two are
//! compiled in and none is chosen, so every config here is built with
//! `builder_with_provider`. The server speaks TLS 1.2 and 1.3 only and offers h2 and
//! http/1.1 by ALPN. Client certificates are optional at the TLS layer (API-key apps have
//! none), but when one is sent it must chain to the configured CA; identity is then decided
//! by `caller::identify`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// Why a TLS config could not be built. Names the file, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {}: {reason}", path.display())]
    Certs { path: PathBuf, reason: String },
    #[error("cannot read the private key from {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{} holds no certificate", path.display())]
    Empty { path: PathBuf },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA verifier: {0}")]
    Verifier(String),
}

/// The one crypto provider of the process.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Certs {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certs {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A root store holding the certificates of `path`.
pub fn roots_from(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// The listener's config: TLS 1.2/1.3, ALPN h2 + http/1.1, optional client certificates that
/// must chain to `client_ca` when one is configured.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let client_ca = files.client_ca.as_deref().map(roots_from).transpose()?;
    server_config_from(load_certs(&files.cert)?, load_key(&files.key)?, client_ca)
}

/// [`server_config`] from material already read (and checked file by file).
pub fn server_config_from(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<RootCertStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A plain server config for a cert + key (the CRM double, tests).
pub fn simple_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(&TlsFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        client_ca: None,
    })
}

/// The config for talking to upstreams: webpki roots plus an optional extra CA (for the CRM
/// double or a corporate egress CA). ALPN is set by the connector.
pub fn client_config(extra_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = extra_ca {
        for cert in load_certs(ca)? {
            roots.add(cert)?;
        }
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// When one certificate stops being valid (for `zweck_certificate_expiry_seconds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The subject's distinguished name, e.g. `CN=localhost`.
    pub subject: String,
    /// Its `notAfter`, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// The expiry of every certificate that parses.
pub fn expiries(certs: &[CertificateDer<'_>]) -> Vec<Expiry> {
    use x509_parser::prelude::*;
    certs
        .iter()
        .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok())
        .map(|(_, parsed)| Expiry {
            subject: parsed.subject().to_string(),
            not_after: parsed.validity().not_after.timestamp(),
        })
        .collect()
}

/// What the verified client certificate says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// DNS and URI subject alternative names.
    pub sans: Vec<String>,
    /// The subject common name, if any.
    pub cn: Option<String>,
}

impl PeerIdentity {
    /// Reads the end-entity certificate. rustls has verified the chain already.
    pub fn from_cert(cert: &CertificateDer<'_>) -> Option<PeerIdentity> {
        use x509_parser::prelude::*;
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = parsed.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(s) | GeneralName::URI(s) => sans.push((*s).to_string()),
                    _ => {}
                }
            }
        }
        let cn = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Some(PeerIdentity { sans, cn })
    }
}
