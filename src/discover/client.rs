//! GET requests for metadata through the configured upstream: its TLS trust, its timeouts and
//! its injected credential, exactly as the proxy forwards. Never an app-facing route.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::{header, Method, Request};
use serde_json::Value;

use super::DiscoverError;
use crate::body;
use crate::config::UpstreamConfig;
use crate::upstream::Upstream;

/// Metadata answers larger than this are refused (a describe of a big object is ~1 MB).
const MAX_METADATA_BYTES: usize = 32 * 1024 * 1024;

/// Reads JSON metadata from one upstream.
pub struct MetadataClient {
    upstream: Upstream,
    requests: AtomicUsize,
}

impl MetadataClient {
    /// Sets up the upstream's client and credential.
    ///
    /// # Errors
    /// The upstream's TLS or credential cannot be set up.
    pub fn new(config: UpstreamConfig) -> Result<MetadataClient, DiscoverError> {
        let name = config.name.clone();
        let upstream = Upstream::new(config, &crate::metrics::PoolGauges::default())
            .map_err(|e| DiscoverError::Setup(name, e.to_string()))?;
        Ok(MetadataClient {
            upstream,
            requests: AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.upstream.config
    }

    pub fn name(&self) -> &str {
        self.upstream.name()
    }

    /// Requests made so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// `GET path?query` as JSON; a non-2xx answer is an error.
    ///
    /// # Errors
    /// The request fails, the CRM refuses, or the answer is not JSON.
    pub async fn get(&self, path: &str, query: Option<&str>) -> Result<Value, DiscoverError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let fail = |reason: String| DiscoverError::Request {
            upstream: self.name().to_string(),
            path: path.to_string(),
            reason,
        };
        let uri = self
            .upstream
            .uri_for(path, query)
            .map_err(|e| fail(e.to_string()))?;
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "zweck-discover");
        if let Some(auth) = self
            .upstream
            .authorization()
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let req = req.body(body::empty()).map_err(|e| fail(e.to_string()))?;
        let resp = self
            .upstream
            .send(req)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let bytes = body::collect_limited(resp.into_body(), MAX_METADATA_BYTES)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(DiscoverError::Status {
                upstream: self.name().to_string(),
                path: path.to_string(),
                status: status.as_u16(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|_| DiscoverError::Shape {
            upstream: self.name().to_string(),
            path: path.to_string(),
            what: "not JSON",
        })
    }

    /// A shape error for `path`.
    pub fn shape(&self, path: &str, what: &'static str) -> DiscoverError {
        DiscoverError::Shape {
            upstream: self.name().to_string(),
            path: path.to_string(),
            what,
        }
    }
}
