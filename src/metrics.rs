//! Prometheus metrics, registered once per process in a `Metrics` value (no global registry).
//!
//! Labels carry app, purpose, upstream and route template names only; never raw paths, query
//! strings or anything from a body.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label value: a name shared with the config by `Arc` (no copy per request), or `-` when
/// it is not known (a request refused before it was identified or routed).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(Option<Arc<str>>);

impl Label {
    pub fn new(name: Option<&Arc<str>>) -> Label {
        Label(name.cloned())
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_deref().unwrap_or("-"), encoder)
    }
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub upstream: Label,
    pub app: Label,
    pub purpose: Label,
    pub status: u16,
}

/// Labels of the metadata counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetadataLabels {
    pub upstream: Arc<str>,
    pub app: Arc<str>,
    pub purpose: Arc<str>,
}

/// Labels of the upstream latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: Arc<str>,
}

type HistogramFamily = Family<UpstreamLabels, Histogram, fn() -> Histogram>;

/// Every metric Zweck exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// Requests to `op: metadata` routes (describe, properties, `$metadata`), which pass
    /// unchanged and are no transfers: the transfer log never shows them.
    pub metadata_requests: Family<MetadataLabels, Counter>,
    pub upstream_latency: HistogramFamily,
    pub open_connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub tls_handshake_failures: Counter<u64, AtomicU64>,
    /// 1 while the transfer log's writer has failed (governed flows are refused).
    pub transfer_log_failed: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// 1 while the last off-box checkpoint delivery failed.
    pub transfer_log_offbox_failing: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Entries in the transfer log (its tree size).
    pub transfer_log_entries: Gauge<i64, std::sync::atomic::AtomicI64>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("zweck");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by upstream, app, purpose and status",
            requests.clone(),
        );
        let metadata_requests = Family::<MetadataLabels, Counter>::default();
        registry.register(
            "metadata_requests",
            "Requests to metadata routes (no customer data; not in the transfer log), by upstream, app and purpose",
            metadata_requests.clone(),
        );
        let upstream_latency: HistogramFamily =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response head",
            upstream_latency.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "Client TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let transfer_log_failed = Gauge::default();
        registry.register(
            "transfer_log_failed",
            "1 while the transfer log cannot be written (governed requests are refused)",
            transfer_log_failed.clone(),
        );
        let transfer_log_offbox_failing = Gauge::default();
        registry.register(
            "transfer_log_offbox_failing",
            "1 while the last off-box checkpoint delivery failed",
            transfer_log_offbox_failing.clone(),
        );
        let transfer_log_entries = Gauge::default();
        registry.register(
            "transfer_log_entries",
            "Entries in the transfer log",
            transfer_log_entries.clone(),
        );
        Metrics {
            registry,
            requests,
            metadata_requests,
            upstream_latency,
            open_connections,
            tls_handshake_failures,
            transfer_log_failed,
            transfer_log_offbox_failing,
            transfer_log_entries,
        }
    }

    /// Counts one answered request.
    pub fn count_request(&self, labels: &RequestLabels) {
        self.requests.get_or_create(labels).inc();
    }

    /// Counts one request to a metadata route.
    pub fn count_metadata(&self, upstream: &Arc<str>, app: &Arc<str>, purpose: &Arc<str>) {
        let labels = MetadataLabels {
            upstream: upstream.clone(),
            app: app.clone(),
            purpose: purpose.clone(),
        };
        self.metadata_requests.get_or_create(&labels).inc();
    }

    /// Records one upstream's time from forwarding to the response head.
    pub fn observe_upstream(&self, upstream: &Arc<str>, seconds: f64) {
        let labels = UpstreamLabels {
            upstream: upstream.clone(),
        };
        self.upstream_latency
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Registers metrics owned by another component (e.g. export budgets).
    pub fn register_with(&mut self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
