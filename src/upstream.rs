//! Phase 5, forward: one pooled client per upstream, and the upstream's own credential.
//!
//! Apps never hold CRM credentials. Zweck injects each upstream's: a static bearer token read
//! from a file or an environment variable at start-up, or an OAuth2 client-credentials token
//! fetched from the token endpoint and refreshed before it expires (single flight: one
//! refresh at a time, every waiting request reuses its result). Requests go out on the
//! upstream's own connection pool over rustls ([`crate::pool`]: webpki roots plus an
//! optional extra CA, HTTP/2 or HTTP/1.1 as `protocol` says), with a connect timeout, a
//! response timeout until the response head, and an idle timeout on the response body after
//! it ([`UpstreamBody`]: a stalled body ends in an error, never in a clean short body). The
//! token endpoint, which may live on another host, is reached with hyper-util's general
//! client. Failures become `ProxyError`s: refused or reset is 502, too slow is 504.
//!
//! A response whose framing is ambiguous is refused (502 `upstream-malformed`) and its
//! connection dropped, so the pool never hands it out again: `Content-Length` beside
//! `Transfer-Encoding`, or a transfer coding other than exactly `chunked`, is what request
//! smuggling and response splitting are made of (RFC 9112 §6.3, §11). hyper's parser already
//! refuses conflicting `Content-Length` values, folded headers and malformed lines (502 as
//! well); what it reads as RFC 9112 allows, this module refuses as a proxy should.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::body::{self, BoxError, ProxyBody};
use crate::config::{SecretSource, UpstreamAuth, UpstreamConfig};
use crate::error::ProxyError;
use crate::pool::{Held, Lease, Pool, SendError, Target};
use crate::proxy::route::RouteRule;
use crate::tls;

/// The general HTTPS client for token endpoints.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// Why an upstream could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error("upstream {upstream}: {source}")]
    Tls {
        upstream: String,
        source: tls::TlsError,
    },
    #[error("upstream {upstream}: cannot read its credential from {what}: {reason}")]
    Credential {
        upstream: String,
        what: String,
        reason: String,
    },
    #[error("upstream {upstream}: its credential file: {source}")]
    CredentialFile {
        upstream: String,
        source: crate::secrets::SecretsError,
    },
    #[error("upstream {upstream}: {source}")]
    Pool {
        upstream: String,
        source: crate::pool::PoolSetupError,
    },
}

/// A configured upstream, ready to forward to.
pub struct Upstream {
    pub config: UpstreamConfig,
    pub rule: RouteRule,
    /// `scheme://authority` of the upstream, for link rewriting.
    pub origin: String,
    /// The name again, shared by every response body's stall error.
    label: Arc<str>,
    /// Where every request goes.
    connections: Pool,
    credential: Credential,
    in_flight: prometheus_client::metrics::gauge::Gauge,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.config.name)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

enum Credential {
    None,
    Static(HeaderValue),
    OAuth2(Box<OAuth2Source>),
}

struct OAuth2Source {
    /// The token endpoint may be another host than the upstream's.
    client: HttpsClient,
    token_url: Uri,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    cached: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    header: HeaderValue,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The client for token endpoints (any host; HTTP/2 or HTTP/1.1 by ALPN).
fn token_client(
    extra_ca: Option<&std::path::Path>,
    connect_timeout: Duration,
) -> Result<HttpsClient, tls::TlsError> {
    let tls = tls::client_config(extra_ca)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

fn read_secret(upstream: &str, source: &SecretSource) -> Result<String, UpstreamSetupError> {
    let credential_error = |what: String, reason: String| UpstreamSetupError::Credential {
        upstream: upstream.to_string(),
        what,
        reason,
    };
    match source {
        SecretSource::File(p) => {
            crate::secrets::read_token(p).map_err(|source| UpstreamSetupError::CredentialFile {
                upstream: upstream.to_string(),
                source,
            })
        }
        SecretSource::Env(name) => {
            let what = format!("environment variable {name}");
            let value =
                std::env::var(name).map_err(|e| credential_error(what.clone(), e.to_string()))?;
            let value = value.trim();
            if value.is_empty() {
                return Err(credential_error(what, "it is empty".into()));
            }
            Ok(value.to_string())
        }
    }
}

impl Upstream {
    /// Sets up the client and reads the credential; fails when a secret is missing.
    pub fn new(
        config: UpstreamConfig,
        pools: &crate::metrics::PoolGauges,
    ) -> Result<Upstream, UpstreamSetupError> {
        let name = config.name.clone();
        let pool = pools.of(&name);
        let tls_error = |source| UpstreamSetupError::Tls {
            upstream: name.clone(),
            source,
        };
        let tls = tls::client_config(config.ca.as_deref()).map_err(tls_error)?;
        let target = Target::of(&config.url, config.connect_timeout, config.protocol);
        let in_flight = pool.in_flight.clone();
        let connections =
            Pool::new(target, tls, pool).map_err(|source| UpstreamSetupError::Pool {
                upstream: name.clone(),
                source,
            })?;
        let credential = match &config.auth {
            None => Credential::None,
            Some(UpstreamAuth::BearerFile(p)) => Credential::Static(bearer(
                &name,
                &read_secret(&name, &SecretSource::File(p.clone()))?,
            )?),
            Some(UpstreamAuth::BearerEnv(e)) => Credential::Static(bearer(
                &name,
                &read_secret(&name, &SecretSource::Env(e.clone()))?,
            )?),
            Some(UpstreamAuth::OAuth2ClientCredentials {
                token_url,
                client_id,
                secret,
                scope,
            }) => Credential::OAuth2(Box::new(OAuth2Source {
                client: token_client(config.ca.as_deref(), config.connect_timeout)
                    .map_err(tls_error)?,
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: read_secret(&name, secret)?,
                scope: scope.clone(),
                cached: Mutex::new(None),
            })),
        };
        let origin = format!(
            "{}://{}",
            config.url.scheme_str().unwrap_or("https"),
            config
                .url
                .authority()
                .map_or("", http::uri::Authority::as_str)
        );
        Ok(Upstream {
            rule: RouteRule {
                path_prefix: config.path_prefix.clone(),
                host: config.host.clone(),
            },
            origin,
            label: Arc::from(name.as_str()),
            connections,
            credential,
            in_flight,
            config,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The upstream URI for a canonical path and the raw query: the configured URL's scheme
    /// and authority (parsed once, at start-up) with the path and query parsed here.
    pub fn uri_for(&self, path: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
        let unparsable = || ProxyError::BadPath {
            reason: "unparsable request target",
        };
        let mut target = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
        target.push_str(path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(
            self.config
                .url
                .scheme()
                .cloned()
                .unwrap_or(http::uri::Scheme::HTTPS),
        );
        parts.authority = self.config.url.authority().cloned();
        parts.path_and_query =
            Some(http::uri::PathAndQuery::try_from(target).map_err(|_| unparsable())?);
        Uri::from_parts(parts).map_err(|_| unparsable())
    }

    /// The `Authorization` value Zweck sends to this upstream, if it has a credential.
    pub async fn authorization(&self) -> Result<Option<HeaderValue>, ProxyError> {
        match &self.credential {
            Credential::None => Ok(None),
            Credential::Static(v) => Ok(Some(v.clone())),
            Credential::OAuth2(src) => self.oauth2_token(src).await.map(Some),
        }
    }

    async fn oauth2_token(&self, src: &OAuth2Source) -> Result<HeaderValue, ProxyError> {
        let mut cached = src.cached.lock().await;
        if let Some(t) = cached.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok(t.header.clone());
            }
        }
        let fail = || ProxyError::UpstreamCredential {
            upstream: self.config.name.clone(),
        };
        let form = token_form(src);
        let req = Request::builder()
            .method(Method::POST)
            .uri(src.token_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(body::full(Bytes::from(form)))
            .map_err(|_| fail())?;
        let resp = tokio::time::timeout(self.config.response_timeout, src.client.request(req))
            .await
            .map_err(|_| fail())?
            .map_err(|_| fail())?;
        if !resp.status().is_success() {
            tracing::warn!(upstream = %self.config.name, status = resp.status().as_u16(), "token endpoint refused the client credentials");
            return Err(fail());
        }
        let bytes = body::collect_limited(resp.into_body(), 64 * 1024)
            .await
            .map_err(|_| fail())?;
        let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| fail())?;
        let header = bearer(&self.config.name, &token.access_token).map_err(|_| fail())?;
        let ttl = Duration::from_secs(token.expires_in.unwrap_or(300));
        // refresh when 10 % of the lifetime (at least 5 s, at most 60 s) is left
        let margin = (ttl / 10).clamp(Duration::from_secs(5), Duration::from_secs(60));
        *cached = Some(CachedToken {
            header: header.clone(),
            refresh_at: Instant::now() + ttl.saturating_sub(margin),
        });
        tracing::info!(upstream = %self.config.name, expires_in = ttl.as_secs(), "fetched an upstream access token");
        Ok(header)
    }

    /// Sends one request, waiting at most the response timeout for the response head; the
    /// body comes with the idle timeout. A response with ambiguous framing is refused and its
    /// connection is never reused.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let name = &self.config.name;
        let _in_flight = Held::new(&self.in_flight);
        let (resp, lease) =
            match tokio::time::timeout(self.config.response_timeout, self.connections.send(req))
                .await
            {
                Err(_) => {
                    return Err(ProxyError::UpstreamTimeout {
                        upstream: name.clone(),
                    })
                }
                Ok(Err(e)) => return Err(self.failed(&e)),
                Ok(Ok(sent)) => sent,
            };
        if let Some(what) = ambiguous_framing(&resp) {
            // the lease is dropped unreturned: the connection closes, never reused
            drop(lease);
            tracing::warn!(upstream = %name, framing = what, "upstream response refused: ambiguous framing; connection dropped");
            return Err(ProxyError::UpstreamMalformed {
                upstream: name.clone(),
            });
        }
        let (idle, label) = (self.config.body_idle_timeout, self.label.clone());
        Ok(resp.map(|inner| UpstreamBody::new(inner, idle, label, lease)))
    }

    /// What a failed exchange means: too slow, unparsable, or unreachable.
    fn failed(&self, e: &SendError) -> ProxyError {
        let upstream = self.config.name.clone();
        if matches!(e, SendError::ConnectTimeout) || is_timeout(e) {
            ProxyError::UpstreamTimeout { upstream }
        } else if is_parse_error(e) {
            tracing::warn!(upstream = %upstream, error = %e, "upstream response unparsable");
            ProxyError::UpstreamMalformed { upstream }
        } else {
            tracing::warn!(upstream = %upstream, error = %e, "upstream request failed");
            ProxyError::UpstreamUnavailable { upstream }
        }
    }
}

/// Why an HTTP/1 response's framing is refused, if it is: `Content-Length` beside
/// `Transfer-Encoding` (RFC 9112 §6.3: "ought to be handled as an error"), or a transfer
/// coding other than exactly one `chunked` (a body read to the close, or coded in a way
/// no one downstream decodes). HTTP/2 has no such framing (hyper refuses the headers).
fn ambiguous_framing<B>(resp: &Response<B>) -> Option<&'static str> {
    if resp.version() == Version::HTTP_2 {
        return None;
    }
    let headers = resp.headers();
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let first = codings.next()?;
    if headers.contains_key(header::CONTENT_LENGTH) {
        return Some("content-length with transfer-encoding");
    }
    let chunked = first
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"chunked");
    if !chunked || codings.next().is_some() {
        return Some("transfer-encoding other than chunked");
    }
    None
}

/// Whether hyper could not parse the upstream's response (a malformed head, conflicting
/// lengths, a folded header).
fn is_parse_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The upstream's response body stopped for longer than the upstream's `body_idle_timeout`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the upstream {upstream} stopped sending its response body")]
pub struct BodyStalled {
    pub upstream: Arc<str>,
}

impl BodyStalled {
    /// The stall behind a body error, if a stall is what ended the body.
    pub fn of<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyStalled> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(s) = err.downcast_ref::<BodyStalled>() {
                return Some(s);
            }
            cur = err.source();
        }
        None
    }
}

/// An upstream response body that may not stall: after the head, each piece must come
/// within the upstream's `body_idle_timeout`, or the body ends in [`BodyStalled`].
pub struct UpstreamBody {
    inner: Incoming,
    idle: Duration,
    upstream: Arc<str>,
    /// Made on the first wait only.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
    stalled: bool,
    /// An HTTP/1.1 connection, back to the pool once this body has ended.
    lease: Option<Lease>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    pub fn new(
        inner: Incoming,
        idle: Duration,
        upstream: Arc<str>,
        lease: Option<Lease>,
    ) -> UpstreamBody {
        UpstreamBody {
            inner,
            idle,
            upstream,
            timer: None,
            waiting: false,
            stalled: false,
            lease,
        }
    }

    /// The body has ended cleanly: its connection may carry the next request.
    fn ended(&mut self) {
        if let Some(mut lease) = self.lease.take() {
            lease.release();
        }
    }

    fn stall(&self) -> BoxError {
        Box::new(BodyStalled {
            upstream: self.upstream.clone(),
        })
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(Some(Err(this.stall())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                match &frame {
                    None => this.ended(),
                    Some(Ok(_)) if this.inner.is_end_stream() => this.ended(),
                    // an error: the connection is not put back
                    Some(Err(_)) => this.lease = None,
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = crate::units::deadline_after(this.idle);
                    match this.timer.as_mut() {
                        Some(t) => t.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let fired = this
                    .timer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if fired {
                    this.stalled = true;
                    tracing::warn!(upstream = %this.upstream, "upstream response body stalled");
                    return Poll::Ready(Some(Err(this.stall())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.stalled && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    /// A body that was complete without being read to its end (no body at all, e.g. a 204)
    /// still gives its connection back; one dropped half-read does not.
    fn drop(&mut self) {
        if !self.stalled && self.inner.is_end_stream() {
            self.ended();
        }
    }
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}

fn bearer(upstream: &str, token: &str) -> Result<HeaderValue, UpstreamSetupError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        UpstreamSetupError::Credential {
            upstream: upstream.to_string(),
            what: "token".into(),
            reason: "not a valid header value".into(),
        }
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The body of a client-credentials token request (RFC 6749 §4.4.2).
fn token_form(src: &OAuth2Source) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    form.append_pair("client_id", &src.client_id);
    form.append_pair("client_secret", &src.client_secret);
    if let Some(scope) = &src.scope {
        form.append_pair("scope", scope);
    }
    form.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_form_round_trips_reserved_characters() {
        let src = OAuth2Source {
            client: token_client(None, Duration::from_secs(1)).expect("client"),
            token_url: Uri::from_static("https://login.example/oauth2/token"),
            client_id: "zweck app".into(),
            client_secret: "s3cr+t&x=1%2F ü".into(),
            scope: Some("https://crm.example/.default".into()),
            cached: Mutex::new(None),
        };
        let form = token_form(&src);
        assert!(!form.contains(' ') && form.contains("client_secret=s3cr%2Bt%26x%3D1%252F"));
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let want = [
            ("grant_type", "client_credentials"),
            ("client_id", "zweck app"),
            ("client_secret", "s3cr+t&x=1%2F ü"),
            ("scope", "https://crm.example/.default"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, want);
    }

    #[test]
    fn credential_files_are_read_like_every_other_secret() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "  tok-Fict0001\n").unwrap();
        let read = read_secret("crm", &SecretSource::File(token.clone())).unwrap();
        assert_eq!(read, "tok-Fict0001");

        std::fs::write(&token, "\n").unwrap();
        let err = read_secret("crm", &SecretSource::File(token.clone())).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, UpstreamSetupError::CredentialFile { .. }),
            "{text}"
        );
        assert!(
            text.starts_with("upstream crm: ") && text.contains("empty"),
            "{text}"
        );
        assert_eq!(
            text.matches(&*token.display().to_string()).count(),
            1,
            "{text}"
        );

        let missing = dir.path().join("missing");
        let err = read_secret("crm", &SecretSource::File(missing)).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");

        let err = read_secret(
            "crm",
            &SecretSource::Env("ZWECK_TEST_UNSET_VAR_4711".into()),
        );
        assert!(matches!(err, Err(UpstreamSetupError::Credential { .. })));
    }
}
