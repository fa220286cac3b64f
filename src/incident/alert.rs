//! Signed webhook alerts for incidents, off the request path.
//!
//! Each configured webhook has its own bounded queue and its own task: a full queue drops the
//! alert (counted, warned) rather than waiting, so a receiver that is down or slow never
//! touches traffic, and one slow receiver does not delay another. Each delivery is bounded:
//! `alert_retries` retries with exponential backoff (1 s, 2 s, 4 s ... at most 60 s), each
//! attempt with `alert_timeout`.
//!
//! The receiver can trust an alert: `X-Zweck-Timestamp` is the sending time in Unix seconds,
//! `X-Zweck-Signature` is `sha256=<hex HMAC-SHA256(key, "<timestamp>.<body>")>` with the
//! webhook's key file, so a replayed or altered alert does not verify. The body holds the
//! incident entry's facts (ids, names, counts, never values) and its `seq` in the transfer
//! log, so the receiver can find and verify it there.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::audit::IncidentEntry;
use crate::body::{self, ProxyBody};

/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-zweck-timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-zweck-signature";
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One configured receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: http::Uri,
    /// The HMAC key's file (read with [`crate::secrets::read_token`]).
    pub secret_file: PathBuf,
    /// An extra CA for an https receiver (the system's webpki roots otherwise).
    pub ca: Option<PathBuf>,
}

/// Queue, retry and timeout bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSettings {
    pub queue: usize,
    pub retries: u32,
    pub timeout: Duration,
    /// The first backoff (doubling per retry).
    pub backoff: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            queue: 1024,
            retries: 5,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_secs(1),
        }
    }
}

/// Why the alert senders could not be set up (Zweck does not start).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("incidents.webhooks: the key file of {url}: {source}")]
    Key {
        url: String,
        source: crate::secrets::SecretsError,
    },
    #[error("incidents.webhooks: the TLS setup for {url}: {source}")]
    Tls {
        url: String,
        source: crate::tls::TlsError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ProxyBody>;

/// The senders: one bounded queue per webhook.
pub struct Alerts {
    queues: Vec<mpsc::Sender<Bytes>>,
    outcomes: Family<OutcomeLabels, Counter>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("webhooks", &self.queues.len())
            .finish_non_exhaustive()
    }
}

struct Target {
    url: http::Uri,
    key: Vec<u8>,
    client: HttpClient,
}

impl Alerts {
    /// Reads the keys, builds the clients and starts one task per webhook (inside a tokio
    /// runtime).
    pub fn start(webhooks: &[Webhook], settings: AlertSettings) -> Result<Alerts, AlertError> {
        let outcomes: Family<OutcomeLabels, Counter> = Family::default();
        let mut queues = Vec::new();
        for hook in webhooks {
            let url = hook.url.to_string();
            let key = crate::secrets::read_token(&hook.secret_file)
                .map_err(|source| AlertError::Key {
                    url: url.clone(),
                    source,
                })?
                .into_bytes();
            let tls = crate::tls::client_config(hook.ca.as_deref()).map_err(|source| {
                AlertError::Tls {
                    url: url.clone(),
                    source,
                }
            })?;
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(settings.timeout));
            // config admits http:// only to a loopback receiver
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            let target = Target {
                url: hook.url.clone(),
                key,
                client: Client::builder(TokioExecutor::new()).build(connector),
            };
            let (tx, rx) = mpsc::channel(settings.queue.max(1));
            tokio::spawn(deliver_all(rx, target, settings, outcomes.clone()));
            queues.push(tx);
        }
        Ok(Alerts { queues, outcomes })
    }

    /// Registers `zweck_incident_alerts_total{outcome}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "incident_alerts",
            "Incident webhook alerts by outcome (delivered, failed after retries, dropped on a full queue)",
            self.outcomes.clone(),
        );
    }

    /// Queues an alert for every webhook; never waits (a full queue drops it, counted).
    pub fn send(&self, body: &Bytes) {
        for q in &self.queues {
            if q.try_send(body.clone()).is_err() {
                self.count("dropped");
                tracing::warn!("incident alert dropped: the webhook's queue is full");
            }
        }
    }

    fn count(&self, outcome: &'static str) {
        self.outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

/// The alert's body: the incident entry (with its id), its `seq` and the log's origin.
pub fn alert_body(entry: &IncidentEntry, seq: Option<u64>, origin: Option<&str>) -> Bytes {
    let mut v = serde_json::to_value(entry).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.shift_remove("kind");
        o.insert("type".into(), "zweck.incident".into());
        o.insert(
            "seq".into(),
            seq.map_or(serde_json::Value::Null, Into::into),
        );
        o.insert(
            "log_origin".into(),
            origin.map_or(serde_json::Value::Null, Into::into),
        );
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// `sha256=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`.
pub fn signature(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Bytes>,
    target: Target,
    settings: AlertSettings,
    outcomes: Family<OutcomeLabels, Counter>,
) {
    let target = Arc::new(target);
    while let Some(body) = rx.recv().await {
        let outcome = if deliver(&target, &settings, &body).await {
            "delivered"
        } else {
            tracing::error!(url = %target.url, retries = settings.retries, "incident alert not delivered");
            "failed"
        };
        outcomes.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// One alert to one receiver: attempts until a 2xx, at most `1 + retries` of them.
async fn deliver(target: &Target, settings: &AlertSettings, body: &Bytes) -> bool {
    let mut backoff = settings.backoff;
    for attempt in 0..=settings.retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Ok(req) = Request::builder()
            .method(Method::POST)
            .uri(target.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, signature(&target.key, ts, body))
            .body(body::full(body.clone()))
        else {
            return false;
        };
        match tokio::time::timeout(settings.timeout, target.client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => return true,
            Ok(Ok(resp)) => {
                tracing::warn!(url = %target.url, status = resp.status().as_u16(), attempt, "incident alert refused by the receiver");
            }
            Ok(Err(e)) => {
                tracing::warn!(url = %target.url, error = %e, attempt, "incident alert not sent");
            }
            Err(_) => {
                tracing::warn!(url = %target.url, attempt, "incident alert timed out");
            }
        }
    }
    false
}

/// Whether `url` may be used: https anywhere, http only to a loopback host.
pub fn url_allowed(url: &http::Uri) -> Result<(), &'static str> {
    match url.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let host = url.host().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("http:// only to a loopback receiver (127.0.0.1, ::1, localhost); use https")
            }
        }
        _ => Err("an https:// URL (http:// only to a loopback receiver)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231-style check against an independent computation with ring
        let key = b"webhook-key";
        let body = br#"{"rule":"volume"}"#;
        let sig = signature(key, 1_796_601_600, body);
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let expected = ring::hmac::sign(&k, b"1796601600.{\"rule\":\"volume\"}");
        assert_eq!(sig, format!("sha256={}", hex::encode(expected.as_ref())));
    }

    #[test]
    fn http_only_to_loopback() {
        for ok in [
            "https://alerts.example.com/hook",
            "http://127.0.0.1:9000/x",
            "http://[::1]:9000/x",
            "http://localhost/x",
        ] {
            assert!(url_allowed(&ok.parse().expect("uri")).is_ok(), "{ok}");
        }
        for bad in [
            "http://alerts.example.com/x",
            "http://10.0.0.1/x",
            "ftp://x/y",
        ] {
            assert!(url_allowed(&bad.parse().expect("uri")).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_body_names_the_entry_and_its_position() {
        let mut e = crate::audit::event::tests::incident();
        e.incident = "inc-41".into();
        let body = alert_body(&e, Some(41), Some("zweck/host/abcd"));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["type"], "zweck.incident");
        assert_eq!(v["seq"], 41);
        assert_eq!(v["incident"], "inc-41");
        assert_eq!(v["rule"], "volume");
        assert_eq!(v["log_origin"], "zweck/host/abcd");
        assert!(v.get("kind").is_none());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_a_receiver_that_is_down_is_given_up_on() {
        // a port nothing listens on: every attempt fails fast
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("hook.key");
        std::fs::write(&key, "k").expect("key");
        let alerts = Alerts::start(
            &[Webhook {
                url: format!("http://127.0.0.1:{port}/hook")
                    .parse()
                    .expect("uri"),
                secret_file: key,
                ca: None,
            }],
            AlertSettings {
                queue: 1,
                retries: 2,
                timeout: Duration::from_secs(1),
                backoff: Duration::from_millis(10),
            },
        )
        .expect("start");
        let body = Bytes::from_static(b"{}");
        for _ in 0..50 {
            alerts.send(&body);
        }
        let count = |o: &'static str| {
            alerts
                .outcomes
                .get_or_create(&OutcomeLabels { outcome: o })
                .get()
        };
        assert!(count("dropped") > 0, "the queue of 1 overflowed");
        assert!(
            crate::eventually::eventually(|| count("failed") + count("dropped") == 50).await,
            "every alert is either given up on after its retries or dropped"
        );
        assert_eq!(count("delivered"), 0);
    }
}
