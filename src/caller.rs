//! Phase 1, identify: which app is calling, and for which purpose.
//!
//! An app is known by its mTLS client certificate (a SAN or the CN matched against config) or
//! by an API key, sent as `Zweck-Api-Key` or as the bearer token of `Authorization`, so an
//! official SDK that only knows "access token" works unchanged. Config stores only the
//! SHA-256 of each key; the presented key is hashed and compared against *every* configured
//! digest in constant time, so neither timing nor early exit tells an attacker how close a
//! guess was. The purpose comes from `Zweck-Purpose`, or is implied when the credential is
//! bound to exactly one purpose, and must be one the app is granted.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AppConfig, ClientCertMatch, Config};
use crate::error::ProxyError;
use crate::tls::PeerIdentity;

/// Header naming the purpose the app acts for.
pub const PURPOSE_HEADER: HeaderName = HeaderName::from_static("zweck-purpose");
/// Header carrying an API key.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("zweck-api-key");

/// How the caller proved who it is (for logs; never the credential itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ClientCert,
    ApiKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ClientCert => "client_cert",
            CredentialKind::ApiKey => "api_key",
        }
    }
}

/// An identified caller acting for one granted purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub app: Arc<str>,
    pub purpose: Arc<str>,
    pub credential: CredentialKind,
}

/// Precomputed lookup tables for identification.
#[derive(Debug)]
pub struct Identities {
    apps: Vec<AppConfig>,
}

impl Identities {
    pub fn new(config: &Config) -> Identities {
        Identities {
            apps: config.apps.clone(),
        }
    }

    /// Identifies the caller of one request. `peer` is the verified client certificate of the
    /// connection, if one was sent.
    pub fn identify(
        &self,
        peer: Option<&PeerIdentity>,
        headers: &HeaderMap,
    ) -> Result<Caller, ProxyError> {
        let by_cert = peer.and_then(|p| self.app_for_cert(p));
        let key = presented_key(headers)?;
        let mut by_key = key.as_deref().map(|k| self.app_for_key(k));
        // SDKs that only know "access token" always send one. Next to a certificate that
        // identifies an app, a bearer token that is no key of any app carries no identity and
        // is ignored (it never reaches the CRM); a known key of another app is still refused,
        // and so is an unknown explicit `Zweck-Api-Key`.
        if by_cert.is_some()
            && matches!(by_key, Some(None))
            && !headers.contains_key(API_KEY_HEADER)
        {
            by_key = None;
        }

        let (app, bound_purpose, credential) = match (by_cert, by_key) {
            (Some(app), None) => (app, None, CredentialKind::ClientCert),
            (None, Some(Some((app, purpose)))) => (app, purpose, CredentialKind::ApiKey),
            // A certificate and a key must name the same app; anything else is suspect.
            (Some(cert_app), Some(Some((key_app, purpose)))) if cert_app.name == key_app.name => {
                (cert_app, purpose, CredentialKind::ClientCert)
            }
            _ => return Err(ProxyError::UnknownApp),
        };

        let requested = requested_purpose(headers, &app.name)?;
        let purpose = match (requested, bound_purpose) {
            (Some(req), Some(bound)) if req != bound => {
                return Err(ProxyError::PurposeNotGranted {
                    app: app.name.clone(),
                    purpose: req,
                })
            }
            (Some(req), _) => req,
            (None, Some(bound)) => bound.to_string(),
            (None, None) if app.purposes.len() == 1 => {
                app.purposes.iter().next().cloned().unwrap_or_default()
            }
            (None, None) => {
                return Err(ProxyError::PurposeMissing {
                    app: app.name.clone(),
                })
            }
        };
        if !app.purposes.contains(&purpose) {
            return Err(ProxyError::PurposeNotGranted {
                app: app.name.clone(),
                purpose,
            });
        }
        Ok(Caller {
            app: Arc::from(app.name.as_str()),
            purpose: Arc::from(purpose.as_str()),
            credential,
        })
    }

    fn app_for_cert(&self, peer: &PeerIdentity) -> Option<&AppConfig> {
        self.apps.iter().find(|a| match &a.client_cert {
            Some(ClientCertMatch::San(s)) => peer.sans.iter().any(|x| x == s),
            Some(ClientCertMatch::Cn(c)) => peer.cn.as_deref() == Some(c.as_str()),
            None => false,
        })
    }

    /// Constant time over every configured key: no early exit.
    fn app_for_key(&self, key: &str) -> Option<(&AppConfig, Option<&str>)> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for app in &self.apps {
            for k in &app.api_keys {
                let Some(known) = k.digest() else { continue };
                if bool::from(known.ct_eq(&digest)) && found.is_none() {
                    found = Some((app, k.purpose.as_deref()));
                }
            }
        }
        found
    }
}

/// The API key of the request: `Zweck-Api-Key`, or the bearer token of `Authorization`. Two
/// different keys in one request are refused.
fn presented_key(headers: &HeaderMap) -> Result<Option<String>, ProxyError> {
    let mut keys = Vec::new();
    for v in headers.get_all(API_KEY_HEADER) {
        keys.push(
            v.to_str()
                .map_err(|_| ProxyError::UnknownApp)?
                .trim()
                .to_string(),
        );
    }
    for v in headers.get_all(http::header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| ProxyError::UnknownApp)?.trim();
        let Some((scheme, token)) = v.split_once(' ') else {
            return Err(ProxyError::UnknownApp);
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ProxyError::UnknownApp);
        }
        keys.push(token.trim().to_string());
    }
    keys.dedup();
    match keys.len() {
        0 => Ok(None),
        1 => Ok(keys.pop().filter(|k| !k.is_empty())),
        _ => Err(ProxyError::UnknownApp),
    }
}

fn requested_purpose(headers: &HeaderMap, app: &str) -> Result<Option<String>, ProxyError> {
    let mut values = headers.get_all(PURPOSE_HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let not_granted = |purpose: &str| ProxyError::PurposeNotGranted {
        app: app.to_string(),
        purpose: purpose.to_string(),
    };
    if values.next().is_some() {
        return Err(not_granted("<several>"));
    }
    let p = first
        .to_str()
        .map_err(|_| not_granted("<not text>"))?
        .trim();
    let valid = !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid {
        return Err(not_granted("<malformed>"));
    }
    Ok(Some(p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        let key_hash = hex::encode(Sha256::digest(b"zk_secret"));
        let other = hex::encode(Sha256::digest(b"zk_other"));
        let text = format!(
            r#"
listen: 127.0.0.1:8443
tls: {{ cert: c, key: k }}
apps:
  newsletter-tool:
    client_cert: {{ san: newsletter-tool }}
    purposes: [newsletter]
  support-desk:
    client_cert: {{ cn: support-desk }}
    purposes: [support, billing]
  bi-export:
    api_keys: [{{ sha256: "{key_hash}", purpose: analytics }}, {{ sha256: "{other}" }}]
    purposes: [analytics, billing]
"#
        );
        Config::parse(Path::new("z.yaml"), &text).expect("config")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn peer(san: &str) -> PeerIdentity {
        PeerIdentity {
            sans: vec![san.into()],
            cn: None,
        }
    }

    #[test]
    fn client_cert_with_implied_purpose() {
        let ids = Identities::new(&config());
        let c = ids
            .identify(Some(&peer("newsletter-tool")), &HeaderMap::new())
            .expect("caller");
        assert_eq!(&*c.app, "newsletter-tool");
        assert_eq!(&*c.purpose, "newsletter");
        assert_eq!(c.credential, CredentialKind::ClientCert);
    }

    #[test]
    fn cn_match_needs_a_purpose_when_several_are_granted() {
        let ids = Identities::new(&config());
        let p = PeerIdentity {
            sans: vec![],
            cn: Some("support-desk".into()),
        };
        assert_eq!(
            ids.identify(Some(&p), &HeaderMap::new()),
            Err(ProxyError::PurposeMissing {
                app: "support-desk".into()
            })
        );
        let c = ids
            .identify(Some(&p), &headers(&[("zweck-purpose", "billing")]))
            .expect("caller");
        assert_eq!(&*c.purpose, "billing");
    }

    #[test]
    fn api_key_in_either_header_and_bound_purpose() {
        let ids = Identities::new(&config());
        for h in [
            headers(&[("zweck-api-key", "zk_secret")]),
            headers(&[("authorization", "Bearer zk_secret")]),
        ] {
            let c = ids.identify(None, &h).expect("caller");
            assert_eq!(&*c.app, "bi-export");
            assert_eq!(&*c.purpose, "analytics");
        }
        // bound to analytics: asking for billing with that key is refused
        let h = headers(&[("zweck-api-key", "zk_secret"), ("zweck-purpose", "billing")]);
        assert!(matches!(
            ids.identify(None, &h),
            Err(ProxyError::PurposeNotGranted { .. })
        ));
        // the unbound key may choose among the app's purposes
        let h = headers(&[("zweck-api-key", "zk_other"), ("zweck-purpose", "billing")]);
        assert_eq!(&*ids.identify(None, &h).expect("caller").purpose, "billing");
    }

    #[test]
    fn unknown_and_conflicting_credentials_are_401() {
        let ids = Identities::new(&config());
        let cases = [
            headers(&[]),
            headers(&[("zweck-api-key", "zk_wrong")]),
            headers(&[("authorization", "Basic abc")]),
            headers(&[
                ("zweck-api-key", "zk_secret"),
                ("authorization", "Bearer zk_other"),
            ]),
        ];
        for h in cases {
            assert_eq!(ids.identify(None, &h), Err(ProxyError::UnknownApp), "{h:?}");
        }
        // a cert of one app and a key of another
        let h = headers(&[("zweck-api-key", "zk_secret")]);
        assert_eq!(
            ids.identify(Some(&peer("newsletter-tool")), &h),
            Err(ProxyError::UnknownApp)
        );
        let h = headers(&[("authorization", "Bearer zk_secret")]);
        assert_eq!(
            ids.identify(Some(&peer("newsletter-tool")), &h),
            Err(ProxyError::UnknownApp)
        );
        // an unknown explicit Zweck-Api-Key next to a certificate
        let h = headers(&[("zweck-api-key", "zk_unknown")]);
        assert_eq!(
            ids.identify(Some(&peer("newsletter-tool")), &h),
            Err(ProxyError::UnknownApp)
        );
        // an SDK's placeholder bearer token next to a certificate carries no identity
        let h = headers(&[("authorization", "Bearer sdk-placeholder-session")]);
        assert_eq!(
            ids.identify(Some(&peer("newsletter-tool")), &h)
                .map(|c| c.app),
            Ok(Arc::from("newsletter-tool"))
        );
        // a valid CA-signed cert naming no app
        assert_eq!(
            ids.identify(Some(&peer("stranger")), &HeaderMap::new()),
            Err(ProxyError::UnknownApp)
        );
    }

    #[test]
    fn purpose_not_granted_or_malformed_is_403() {
        let ids = Identities::new(&config());
        for p in ["analytics", "new sletter", "a/b"] {
            let h = headers(&[("zweck-purpose", p)]);
            assert!(matches!(
                ids.identify(Some(&peer("newsletter-tool")), &h),
                Err(ProxyError::PurposeNotGranted { .. })
            ));
        }
        let h = headers(&[
            ("zweck-purpose", "newsletter"),
            ("zweck-purpose", "newsletter"),
        ]);
        assert!(ids.identify(Some(&peer("newsletter-tool")), &h).is_err());
    }
}
