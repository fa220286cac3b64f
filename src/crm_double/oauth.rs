//! The OAuth2 client-credentials token endpoint and the bearer check of every data endpoint.
//!
//! Auth is off unless the config lists static tokens or OAuth clients, so the common test setup
//! needs no credentials; tests of the proxy's credential handling turn it on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use serde_json::json;

use super::reply::Reply;
use super::request::{form_decode, parse_form, Req};
use super::OAuthClient;

/// Tokens are pruned on issue once more than this many are outstanding.
const PRUNE_ABOVE: usize = 1024;

pub(crate) struct Auth {
    static_tokens: Vec<String>,
    clients: Vec<OAuthClient>,
    ttl: Duration,
    /// Issued token -> expiry. A std `Mutex`: never held across an `.await`.
    issued: Mutex<HashMap<String, Instant>>,
    count: AtomicUsize,
}

impl Auth {
    pub fn new(static_tokens: Vec<String>, clients: Vec<OAuthClient>, ttl: Duration) -> Self {
        Auth {
            static_tokens,
            clients,
            ttl,
            issued: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
        }
    }

    pub fn enforced(&self) -> bool {
        !self.static_tokens.is_empty() || !self.clients.is_empty()
    }

    pub fn tokens_issued(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when the request may reach a data endpoint.
    pub fn allows(&self, req: &Req) -> bool {
        if !self.enforced() {
            return true;
        }
        let Some(token) = req
            .header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
        else {
            return false;
        };
        if self.static_tokens.iter().any(|t| t == token) {
            return true;
        }
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        issued
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    /// `POST /oauth2/token` with `grant_type=client_credentials`; client credentials in the
    /// form body or as HTTP Basic auth.
    pub fn token(&self, req: &Req) -> Reply {
        if req.method != http::Method::POST {
            return oauth_error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
        }
        let form = parse_form(&String::from_utf8_lossy(&req.body));
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if field("grant_type").as_deref() != Some("client_credentials") {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
        }
        let (id, secret) = match basic_credentials(req) {
            Some(pair) => pair,
            None => match (field("client_id"), field("client_secret")) {
                (Some(id), Some(secret)) => (id, secret),
                _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
            },
        };
        let known = self
            .clients
            .iter()
            .any(|c| c.client_id == id && c.client_secret == secret);
        if !known {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        let Some(token) = random_token() else {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        };
        {
            let mut issued = self
                .issued
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if issued.len() > PRUNE_ABOVE {
                let now = Instant::now();
                issued.retain(|_, expiry| *expiry > now);
            }
            issued.insert(token.clone(), Instant::now() + self.ttl);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        Reply::json(
            StatusCode::OK,
            &json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.ttl.as_secs(),
            }),
        )
        .header("cache-control", "no-store")
    }
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(req: &Req) -> Option<(String, String)> {
    let value = req.header("authorization")?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

fn random_token() -> Option<String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

fn oauth_error(status: StatusCode, error: &str) -> Reply {
    Reply::json(status, &json!({ "error": error }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    fn auth() -> Auth {
        Auth::new(
            vec!["static-1".into()],
            vec![OAuthClient {
                client_id: "app".into(),
                client_secret: "s3cret".into(),
            }],
            Duration::from_secs(60),
        )
    }

    fn req(body: &str, authorization: Option<&str>) -> Req {
        let mut headers = HeaderMap::new();
        if let Some(a) = authorization {
            if let Ok(v) = HeaderValue::from_str(a) {
                headers.insert("authorization", v);
            }
        }
        Req::new(
            Method::POST,
            "/oauth2/token",
            headers,
            Bytes::from(body.to_string()),
            "h".into(),
        )
    }

    fn access_token(reply: Reply) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&reply.into_bytes()).ok()?;
        v["access_token"].as_str().map(str::to_string)
    }

    #[test]
    fn issues_tokens_that_then_authorise() {
        let a = auth();
        let r = a.token(&req(
            "grant_type=client_credentials&client_id=app&client_secret=s3cret",
            None,
        ));
        assert_eq!(r.status, StatusCode::OK);
        let token = access_token(r).unwrap_or_default();
        assert!(!token.is_empty());
        assert!(a.allows(&req("", Some(&format!("Bearer {token}")))));
        assert!(a.allows(&req("", Some("Bearer static-1"))));
        assert!(!a.allows(&req("", Some("Bearer nope"))));
        assert!(!a.allows(&req("", None)));
        assert_eq!(a.tokens_issued(), 1);
    }

    #[test]
    fn basic_auth_and_failures() {
        let a = auth();
        let basic = base64::engine::general_purpose::STANDARD.encode("app:s3cret");
        let r = a.token(&req(
            "grant_type=client_credentials",
            Some(&format!("Basic {basic}")),
        ));
        assert_eq!(r.status, StatusCode::OK);
        let r = a.token(&req(
            "grant_type=client_credentials&client_id=app&client_secret=x",
            None,
        ));
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(&r.into_bytes()[..], br#"{"error":"invalid_client"}"#);
        let r = a.token(&req("grant_type=password", None));
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let a = Auth::new(
            vec![],
            vec![OAuthClient {
                client_id: "app".into(),
                client_secret: "s".into(),
            }],
            Duration::ZERO,
        );
        let r = a.token(&req(
            "grant_type=client_credentials&client_id=app&client_secret=s",
            None,
        ));
        let token = access_token(r).unwrap_or_default();
        assert!(!a.allows(&req("", Some(&format!("Bearer {token}")))));
    }

    #[test]
    fn nothing_configured_means_open() {
        let a = Auth::new(vec![], vec![], Duration::from_secs(1));
        assert!(a.allows(&req("", None)));
        let r = a.token(&req(
            "grant_type=client_credentials&client_id=a&client_secret=b",
            None,
        ));
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}
