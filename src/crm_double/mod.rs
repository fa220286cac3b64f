//! The built-in CRM double: a stand-in CRM server that tests, benches and the demo embed.
//!
//! One TLS listener serves all three dialects at their native path prefixes, so a single address
//! can stand in for Salesforce, HubSpot and Dataverse at once:
//!
//! | prefix | module |
//! |---|---|
//! | `/services/data/` | [`salesforce`] (REST, query paging, composite, Bulk API 2.0) |
//! | `/crm/v3/`, `/crm-object-schemas/v3/` | [`hubspot`] (objects, batch read, search, properties, schemas) |
//! | `/api/data/v9.2/` | [`dynamics`] (Dataverse Web API, `$batch`) |
//! | `/oauth2/token` | [`oauth`] (client credentials) |
//! | `/__double/` | [`hooks`] (stall, large body, echo headers) |
//!
//! Records come from a deterministic generator ([`data`]), so millions of contacts cost no
//! memory; writes go to a small overlay ([`store`]). What each object's fields are is one
//! description ([`schema`]) that every dialect's metadata endpoints render (Salesforce
//! describe, HubSpot properties, Dataverse `EntityDefinitions` and `$metadata`). Every request is recorded ([`recorder`]) so
//! tests can assert on what actually reached the CRM. Shapes follow `tests/fixtures/crm/`.

mod data;
mod dynamics;
mod hooks;
mod hubspot;
mod oauth;
mod recorder;
mod reply;
mod request;
mod salesforce;
mod schema;
mod store;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod metadata_tests;
#[cfg(test)]
mod shape_tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::data::Generator;
use self::oauth::Auth;
use self::recorder::Recorder;
use self::reply::{Reply, ResBody};
use self::request::Req;
use self::store::Store;

/// How the double is set up. `Default` gives 250 contacts, seed 42 and no auth.
#[derive(Debug, Clone)]
pub struct CrmDoubleConfig {
    /// Number of generated contacts (companies are a tenth of that, at least one).
    pub contacts: u64,
    /// Seed of the generator: same seed, same records.
    pub seed: u64,
    /// Bearer tokens accepted as-is.
    pub static_tokens: Vec<String>,
    /// Clients that may fetch tokens at `/oauth2/token`.
    pub oauth_clients: Vec<OAuthClient>,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
}

impl Default for CrmDoubleConfig {
    fn default() -> Self {
        CrmDoubleConfig {
            contacts: 250,
            seed: 42,
            static_tokens: Vec::new(),
            oauth_clients: Vec::new(),
            token_ttl: Duration::from_secs(3600),
        }
    }
}

/// An OAuth2 client allowed to use the client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

/// Which CRM's wire shape a record is rendered in: the proxy's own list of dialects (a list of
/// names, no logic; `crate::dialect` says why the double shares it).
pub use crate::dialect::Dialect;

/// One request as the double received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    /// The body, cut at 1 MiB.
    pub body: Bytes,
}

/// The double's shared state; see the module docs.
pub struct CrmDouble {
    store: Store,
    auth: Auth,
    recorder: Recorder,
    salesforce: salesforce::State,
    hubspot: hubspot::State,
}

/// Request bodies above this size are refused with 413 (nothing in the APIs needs more).
const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;
/// Time allowed for a TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After shutdown starts, open connections get this long to finish their responses.
const GRACE: Duration = Duration::from_secs(5);

impl CrmDouble {
    pub fn new(config: CrmDoubleConfig) -> Arc<CrmDouble> {
        Arc::new(CrmDouble {
            store: Store::new(Generator::new(config.seed, config.contacts)),
            auth: Auth::new(config.static_tokens, config.oauth_clients, config.token_ttl),
            recorder: Recorder::default(),
            salesforce: salesforce::State::default(),
            hubspot: hubspot::State::default(),
        })
    }

    /// Serves until `shutdown` completes (then stops accepting and drains with a short grace
    /// period; connections still open after it, such as stalled requests, are dropped).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tls = with_default_alpn(tls);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let graceful = GracefulShutdown::new();
        // Tells stalled requests to give up, so they do not hold the drain for the full grace.
        let (stopping_tx, stopping_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let tcp = match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(error) => {
                            // Usually EMFILE or a reset before accept: back off briefly, keep serving.
                            tracing::warn!(%error, "crm double: accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let double = Arc::clone(&self);
                    let stopping = stopping_rx.clone();
                    // Taken before the handshake so the drain also waits for handshakes in progress.
                    let watcher = graceful.watcher();
                    connections.spawn(async move {
                        let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            let double = Arc::clone(&double);
                            let stopping = stopping.clone();
                            async move { double.handle(req, stopping).await }
                        });
                        let builder = auto::Builder::new(TokioExecutor::new());
                        let conn = builder.serve_connection(TokioIo::new(tls), service);
                        if let Err(error) = watcher.watch(conn).await {
                            tracing::debug!(%error, "crm double: connection ended with an error");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stopping_tx.send(true);
        if tokio::time::timeout(GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("crm double: grace period over, dropping open connections");
        }
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        Ok(())
    }

    /// The last requests received (at most 10,000), oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.recorder.snapshot()
    }

    pub fn clear_received(&self) {
        self.recorder.clear();
    }

    /// Number of tokens issued by `/oauth2/token` so far.
    pub fn tokens_issued(&self) -> usize {
        self.auth.tokens_issued()
    }

    /// The record at `index` as the given dialect returns it from a single-record GET
    /// (Salesforce `sobjects/Contact/{id}`, HubSpot `objects/contacts/{id}` with all
    /// properties, Dataverse `contacts({id})` with all columns), including any writes.
    /// `Dialect::Generic` is no CRM the double serves: null, as for a record that is not there.
    pub fn contact(&self, dialect: Dialect, index: u64) -> serde_json::Value {
        match dialect {
            Dialect::Salesforce => salesforce::contact(self, index),
            Dialect::HubSpot => hubspot::contact(self, index),
            Dialect::Dynamics => dynamics::contact(self, index),
            Dialect::Generic => serde_json::Value::Null,
        }
    }

    /// One HTTP exchange: read and record the request, then route it. Infallible except for a
    /// stalled request cut off by shutdown, where the error makes hyper drop the connection.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        mut stopping: watch::Receiver<bool>,
    ) -> Result<Response<ResBody>, std::io::Error> {
        let (parts, body) = req.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or_else(
            || parts.uri.path().to_string(),
            |pq| pq.as_str().to_string(),
        );
        let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let too_large = error
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                self.recorder.record(ReceivedRequest {
                    method: parts.method.clone(),
                    path_and_query,
                    headers: parts.headers.clone(),
                    body: Bytes::new(),
                });
                let status = if too_large {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return Ok(
                    Reply::json(status, &json!({"error": "request body not readable"}))
                        .into_response(),
                );
            }
        };
        self.recorder.record(ReceivedRequest {
            method: parts.method.clone(),
            path_and_query: path_and_query.clone(),
            headers: parts.headers.clone(),
            body: recorder::capped(&body),
        });
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_string()))
            .unwrap_or_else(|| "localhost".to_string());
        let req = Req::new(parts.method, &path_and_query, parts.headers, body, host);

        if req.path == "/__double/stall" {
            // Never answers; gives up only when the double shuts down.
            let _ = stopping.wait_for(|stop| *stop).await;
            return Err(std::io::Error::other("crm double shutting down"));
        }
        Ok(self.route(&req).into_response())
    }

    /// Dispatches by path prefix. Shared by top-level requests and batch sub-requests.
    fn route(self: &Arc<Self>, req: &Req) -> Reply {
        let path = req.path.as_str();
        if path == "/oauth2/token" {
            self.auth.token(req)
        } else if path == "/services/data" || path.starts_with("/services/data/") {
            salesforce::handle(self, req)
        } else if path.starts_with("/crm/v3/") || path.starts_with("/crm-object-schemas/v3/") {
            hubspot::handle(self, req)
        } else if path == "/api/data/v9.2" || path.starts_with("/api/data/v9.2/") {
            dynamics::handle(self, req)
        } else if path.starts_with("/__double/") {
            hooks::handle(req)
        } else {
            Reply::json(StatusCode::NOT_FOUND, &json!({"error": "not found"}))
        }
    }
}

/// ALPN is the caller's choice; only an empty list gets h2 + http/1.1.
fn with_default_alpn(tls: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    if !tls.alpn_protocols.is_empty() {
        return tls;
    }
    let mut config = (*tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Drives the router directly, without sockets: the unit tests of every dialect use this.
#[cfg(test)]
pub(crate) fn call(
    double: &Arc<CrmDouble>,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.append(name, value);
        }
    }
    let req = Req::new(
        method,
        path_and_query,
        map,
        Bytes::from(body.to_string()),
        "crm.test".into(),
    );
    let reply = double.route(&req);
    let (status, headers) = (reply.status, (*reply.headers).clone());
    (status, headers, reply.into_bytes())
}
