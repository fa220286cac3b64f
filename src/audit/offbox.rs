//! Copies of checkpoints off the box: appended to a file outside the log directory, or
//! POSTed to an endpoint (a witness, an auditor's collector).
//!
//! Runs as its own task so a slow endpoint never holds up appends. A failed delivery is
//! logged, kept as the last error (readiness and `shutdown` report it) and retried with the
//! next checkpoint: the newest checkpoint commits to everything older, so an endpoint only
//! ever needs the latest; a file gets every note.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{header, Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::Offbox;
use super::files;
use crate::body::{self, ProxyBody};

/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a checkpoint did not reach its off-box destination.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OffboxError {
    #[error("{}: {reason}", path.display())]
    File {
        path: PathBuf,
        reason: Arc<io::Error>,
    },
    #[error("off-box writer task: {0}")]
    Task(Arc<tokio::task::JoinError>),
    #[error("no HTTP client: {0}")]
    NoClient(Arc<crate::tls::TlsError>),
    #[error("POST {uri}: cannot build the request: {reason}")]
    Request {
        uri: http::Uri,
        reason: Arc<http::Error>,
    },
    #[error("POST {uri}: timed out")]
    Timeout { uri: http::Uri },
    #[error("POST {uri}: {reason}")]
    Post {
        uri: http::Uri,
        reason: Arc<hyper_util::client::legacy::Error>,
    },
    #[error("POST {uri}: status {status}")]
    Status {
        uri: http::Uri,
        status: http::StatusCode,
    },
}

/// The last delivery error, `None` after a success.
pub(crate) type LastError = Arc<Mutex<Option<OffboxError>>>;

fn set(last: &LastError, v: Option<OffboxError>) {
    if let Ok(mut g) = last.lock() {
        *g = v;
    }
}

/// Starts the delivery task; `None` for `offbox: none`.
pub(crate) fn spawn(
    offbox: &Offbox,
    last: LastError,
) -> Option<(mpsc::UnboundedSender<String>, JoinHandle<()>)> {
    let target = offbox.clone();
    if target == Offbox::None {
        return None;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let handle = tokio::spawn(async move {
        let client = match &target {
            Offbox::Url(_) => Some(http_client().map_err(Arc::new)),
            _ => None,
        };
        if let Some(Err(e)) = &client {
            set(&last, Some(OffboxError::NoClient(e.clone())));
        }
        while let Some(first) = rx.recv().await {
            let mut notes = vec![first];
            while let Ok(n) = rx.try_recv() {
                notes.push(n);
            }
            let result = match &target {
                Offbox::File(path) => {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || {
                        for n in &notes {
                            files::append_note(&path, n).map_err(|e| OffboxError::File {
                                path: path.clone(),
                                reason: Arc::new(e),
                            })?;
                        }
                        Ok(())
                    })
                    .await
                    .unwrap_or_else(|e| Err(OffboxError::Task(Arc::new(e))))
                }
                Offbox::Url(uri) => match (&client, notes.pop()) {
                    (Some(Ok(c)), Some(note)) => post(c, uri, note).await,
                    (Some(Err(e)), Some(_)) => Err(OffboxError::NoClient(e.clone())),
                    (_, _) => Ok(()),
                },
                Offbox::None => Ok(()),
            };
            match result {
                Ok(()) => set(&last, None),
                Err(e) => {
                    tracing::error!(error = %e, "transfer log: checkpoint not delivered off-box");
                    set(&last, Some(e));
                }
            }
        }
    });
    Some((tx, handle))
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ProxyBody>;

fn http_client() -> Result<HttpClient, crate::tls::TlsError> {
    let tls = crate::tls::client_config(None)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(POST_TIMEOUT));
    // compile_config admits http:// only for localhost.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

async fn post(client: &HttpClient, uri: &http::Uri, note: String) -> Result<(), OffboxError> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body::full(note))
        .map_err(|e| OffboxError::Request {
            uri: uri.clone(),
            reason: Arc::new(e),
        })?;
    let resp = tokio::time::timeout(POST_TIMEOUT, client.request(req))
        .await
        .map_err(|_| OffboxError::Timeout { uri: uri.clone() })?
        .map_err(|e| OffboxError::Post {
            uri: uri.clone(),
            reason: Arc::new(e),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(OffboxError::Status {
            uri: uri.clone(),
            status: resp.status(),
        })
    }
}
