//! Prometheus metrics, registered once per process in a `Metrics` value (no global registry).
//!
//! Labels carry app, purpose, upstream, route class, problem type and certificate file names
//! only; never raw paths, query strings or anything from a body. Most metrics are counted on
//! the request path; the rest are read when scraped ([`Metrics::refresh`]): the policy
//! version and certificate expiry (from the live state, so they follow reloads) and the
//! process's own figures (from `/proc`, [`ProcessCollector`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::pool::PoolCounters;
use crate::state::Live;

/// The version and commit of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("ZWECK_BUILD_COMMIT");

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

/// The metric handles of the last request answered on one connection
/// ([`Metrics::count_request`]).
#[derive(Debug, Default)]
pub struct RequestMetricCache {
    last: std::sync::Mutex<Option<CachedRequest>>,
}

#[derive(Debug)]
struct CachedRequest {
    labels: RequestLabels,
    class: &'static str,
    status_class: &'static str,
    requests: Counter,
    duration: Histogram,
}

/// Labels of the request duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    upstream: Label,
    /// `single`, `list`, `bulk_export`, `ungoverned`, or `-` when not routed.
    class: &'static str,
    /// `2xx`, `4xx`, ...
    status_class: &'static str,
}

/// Labels of the metadata counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetadataLabels {
    pub upstream: Arc<str>,
    pub app: Arc<str>,
    pub purpose: Arc<str>,
}

/// Labels of the upstream latency histogram and the in-flight gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProblemLabels {
    problem: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    source: String,
    file: String,
    subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    upstream: Arc<str>,
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The gauges of every upstream's connection pool ([`crate::pool`]).
#[derive(Debug, Clone, Default)]
pub struct PoolGauges {
    connections: Family<PoolLabels, Gauge>,
    in_flight: Family<UpstreamLabels, Gauge>,
}

impl PoolGauges {
    /// The counters of one upstream's pool. An upstream rebuilt by a reload gets the same
    /// gauges: its old connections count down as they close, the new ones up.
    pub fn of(&self, upstream: &str) -> PoolCounters {
        let upstream: Arc<str> = Arc::from(upstream);
        let conn = |state| {
            self.connections
                .get_or_create(&PoolLabels {
                    upstream: upstream.clone(),
                    state,
                })
                .clone()
        };
        PoolCounters {
            connecting: conn("connecting"),
            open: conn("open"),
            in_flight: self
                .in_flight
                .get_or_create(&UpstreamLabels {
                    upstream: upstream.clone(),
                })
                .clone(),
        }
    }
}

/// Every metric Zweck exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<DurationLabels>,
    refusals: Family<ProblemLabels, Counter>,
    /// Requests to `op: metadata` routes (describe, properties, `$metadata`), which pass
    /// unchanged and are no transfers: the transfer log never shows them.
    pub metadata_requests: Family<MetadataLabels, Counter>,
    upstream_latency: HistogramFamily<UpstreamLabels>,
    pub pools: PoolGauges,
    pub open_connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// 1 while `/readyz` answers 200 (set at scrape time).
    pub ready: Gauge,
    pub tls_handshake_failures: Counter<u64, AtomicU64>,
    /// 1 while the transfer log's writer has failed (governed flows are refused).
    pub transfer_log_failed: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// 1 while the last off-box checkpoint delivery failed.
    pub transfer_log_offbox_failing: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Entries in the transfer log (its tree size).
    pub transfer_log_entries: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Records acknowledged durable, and the syncs that made them so (their ratio is the
    /// group commit's batch size).
    pub transfer_log_appends: Counter<u64, AtomicU64>,
    pub transfer_log_syncs: Counter<u64, AtomicU64>,
    /// Batches the writer held back for the whole commit window without the records it
    /// waited for (the latency the group commit cost in vain).
    pub transfer_log_window_timeouts: Counter<u64, AtomicU64>,
    /// Fields seen on governed routes that the inventory does not classify.
    pub drift: crate::drift::Drift,
    policy_info: Family<PolicyLabels, Gauge>,
    certificate_expiry: Family<CertLabels, FloatGauge>,
    /// Reloads by outcome (`ok`, `failed`).
    reloads: Family<ReloadLabels, Counter>,
    /// Held from refresh to render, so one scrape never sees another's cleared policy or
    /// certificate families.
    scraping: std::sync::Mutex<()>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    outcome: &'static str,
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
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("zweck");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by upstream, app, purpose and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<DurationLabels> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to the end of its response body, by upstream, route class and status class",
            request_duration.clone(),
        );
        let refusals = Family::<ProblemLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests refused, by problem type (docs/problems.md)",
            refusals.clone(),
        );
        let metadata_requests = Family::<MetadataLabels, Counter>::default();
        registry.register(
            "metadata_requests",
            "Requests to metadata routes (no customer data; not in the transfer log), by upstream, app and purpose",
            metadata_requests.clone(),
        );
        let upstream_latency: HistogramFamily<UpstreamLabels> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response head",
            upstream_latency.clone(),
        );
        let pools = PoolGauges::default();
        registry.register(
            "upstream_connections",
            "Connections to each upstream, by state (connecting, open)",
            pools.connections.clone(),
        );
        registry.register(
            "upstream_requests_in_flight",
            "Requests sent to each upstream and waiting for its response head",
            pools.in_flight.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while /readyz answers 200: listening and the transfer log writable",
            ready.clone(),
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
        let transfer_log_appends = Counter::default();
        registry.register(
            "transfer_log_appends",
            "Transfer-log records acknowledged durable since start",
            transfer_log_appends.clone(),
        );
        let transfer_log_syncs = Counter::default();
        registry.register(
            "transfer_log_syncs",
            "fdatasync calls that made transfer-log records durable since start (group commit)",
            transfer_log_syncs.clone(),
        );
        let transfer_log_window_timeouts = Counter::default();
        registry.register(
            "transfer_log_window_timeouts",
            "Batches held back for the whole commit window without the records awaited",
            transfer_log_window_timeouts.clone(),
        );
        let drift = crate::drift::Drift::register(registry);
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: VERSION,
                commit: COMMIT,
            })
            .set(1);
        registry.register(
            "build_info",
            "The version and commit of the running binary (always 1)",
            build_info,
        );
        let policy_info = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "policy_info",
            "The policy version in force (always 1)",
            policy_info.clone(),
        );
        let certificate_expiry = Family::<CertLabels, FloatGauge>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until each certificate Zweck relies on expires (negative once expired)",
            certificate_expiry.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads (SIGHUP, admin, policy file changes) by outcome",
            reloads.clone(),
        );
        Metrics {
            registry: root,
            requests,
            request_duration,
            refusals,
            metadata_requests,
            upstream_latency,
            pools,
            open_connections,
            ready,
            tls_handshake_failures,
            transfer_log_failed,
            transfer_log_offbox_failing,
            transfer_log_entries,
            transfer_log_appends,
            transfer_log_syncs,
            transfer_log_window_timeouts,
            drift,
            policy_info,
            certificate_expiry,
            reloads,
            scraping: std::sync::Mutex::new(()),
        }
    }

    /// Counts one answered request and returns the duration histogram it goes into, through
    /// the connection's `cache`: a connection's requests mostly share their labels, so a
    /// label set equal to the last one's (`Arc` names compare by pointer first) reuses its
    /// handles instead of hashing the labels into both families again.
    pub fn count_request(
        &self,
        cache: &RequestMetricCache,
        labels: RequestLabels,
        class: &'static str,
    ) -> Histogram {
        let status_class = status_class(labels.status);
        // contended (concurrent HTTP/2 streams finishing together): look up without the cache
        let mut last = cache.last.try_lock().ok();
        if let Some(Some(hit)) = last.as_deref() {
            if hit.labels == labels && hit.class == class && hit.status_class == status_class {
                hit.requests.inc();
                return hit.duration.clone();
            }
        }
        let requests = self.requests.get_or_create(&labels).clone();
        requests.inc();
        let duration = self
            .request_duration
            .get_or_create(&DurationLabels {
                upstream: labels.upstream.clone(),
                class,
                status_class,
            })
            .clone();
        if let Some(last) = last.as_deref_mut() {
            *last = Some(CachedRequest {
                labels,
                class,
                status_class,
                requests,
                duration: duration.clone(),
            });
        }
        duration
    }

    /// Counts one refusal by its problem type.
    pub fn count_refusal(&self, problem: &'static str) {
        self.refusals
            .get_or_create(&ProblemLabels { problem })
            .inc();
    }

    /// Counts one reload attempt.
    pub fn count_reload(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ReloadLabels { outcome }).inc();
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

    /// The histogram of one upstream's time from forwarding to the response head (resolved
    /// once per upstream: `state::UpstreamEntry` keeps it).
    pub fn upstream_latency_of(&self, upstream: &Arc<str>) -> Histogram {
        self.upstream_latency
            .get_or_create(&UpstreamLabels {
                upstream: upstream.clone(),
            })
            .clone()
    }

    /// Registers metrics owned by another component (e.g. export budgets), under `zweck_`.
    pub fn register_with(&mut self, f: impl FnOnce(&mut Registry)) {
        f(self.registry.sub_registry_with_prefix("zweck"));
    }

    /// The exposition for one scrape: first what is read at scrape time from the live state
    /// (the policy version in force, the time left on each certificate; `now` is seconds
    /// since the Unix epoch), then every metric.
    pub fn scrape(&self, live: &Live, now: i64) -> String {
        let _one_at_a_time = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.refresh(live, now);
        self.render()
    }

    fn refresh(&self, live: &Live, now: i64) {
        self.policy_info.clear();
        self.policy_info
            .get_or_create(&PolicyLabels {
                version: live.policy.version().to_string(),
            })
            .set(1);
        self.certificate_expiry.clear();
        for c in &live.certificates {
            self.certificate_expiry
                .get_or_create(&CertLabels {
                    source: c.source.clone(),
                    file: c.file.display().to_string(),
                    subject: c.expiry.subject.clone(),
                })
                .set((c.expiry.not_after - now) as f64);
        }
    }

    /// The Prometheus text exposition.
    fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The status class label of a status code.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// The process's own figures under the names every Prometheus client library uses
/// (`process_resident_memory_bytes`, ...), read from `/proc/self` at each scrape. Linux only:
/// elsewhere the collector reports nothing.
#[derive(Debug)]
pub struct ProcessCollector;

/// `/proc` reports CPU time in clock ticks of `USER_HZ`, which Linux fixes at 100 for
/// user space on every architecture it runs Zweck on.
const USER_HZ: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub threads: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self`; `None` where there is no procfs.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let mut p = ProcessStats::parse(&stat, &status)?;
        p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        p.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| max_open_files(&l));
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        p.start_time_seconds = p.start_time_seconds.zip(boot).map(|(since, b)| b + since);
        Some(p)
    }

    /// From `/proc/self/stat` and `/proc/self/status` (start time relative to boot).
    fn parse(stat: &str, status: &str) -> Option<ProcessStats> {
        // the command name may hold spaces and ')': fields start after the last ')'
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        Some(ProcessStats {
            resident_bytes: kib("VmRSS:")? * 1024,
            virtual_bytes: field(23)?,
            cpu_seconds: (field(14)? + field(15)?) as f64 / USER_HZ,
            threads: field(20)?,
            open_fds: 0,
            max_fds: None,
            start_time_seconds: field(22).map(|t| t as f64 / USER_HZ),
        })
    }
}

fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let mut gauge = |name: &str, help: &str, value: f64| -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            p.resident_bytes as f64,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            p.virtual_bytes as f64,
        )?;
        gauge("process_threads", "OS threads", p.threads as f64)?;
        gauge(
            "process_open_fds",
            "Open file descriptors",
            p.open_fds as f64,
        )?;
        if let Some(max) = p.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                max as f64,
            )?;
        }
        if let Some(start) = p.start_time_seconds {
            gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                start,
            )?;
        }
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_self_parses_with_spaces_and_parens_in_the_command_name() {
        let stat = "4242 (zweck (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615";
        let status = "Name:\tzweck\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        let p = ProcessStats::parse(stat, status).expect("parses");
        assert_eq!(p.resident_bytes, 10 * 1024 * 1024);
        assert_eq!(p.virtual_bytes, 104_857_600);
        assert!((p.cpu_seconds - 3.0).abs() < 1e-9, "{}", p.cpu_seconds);
        assert_eq!(p.threads, 7);
        assert_eq!(p.start_time_seconds, Some(123.45));
        assert_eq!(ProcessStats::parse("garbage", status), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn this_process_reports_its_figures_under_the_standard_names() {
        let text = Metrics::new().render();
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_threads ",
            "zweck_build_info{version=\"",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        let p = ProcessStats::read().expect("procfs");
        assert!(
            p.resident_bytes > 0 && p.threads >= 1 && p.open_fds >= 3,
            "{p:?}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn a_connection_cache_counts_every_request_under_its_own_labels() {
        let m = Metrics::new();
        let cache = RequestMetricCache::default();
        let (sf, hs, app, purpose): (Arc<str>, Arc<str>, Arc<str>, Arc<str>) = (
            "salesforce".into(),
            "hubspot".into(),
            "newsletter-tool".into(),
            "newsletter".into(),
        );
        let labels = |upstream: &Arc<str>, status| RequestLabels {
            upstream: Label::new(Some(upstream)),
            app: Label::new(Some(&app)),
            purpose: Label::new(Some(&purpose)),
            status,
        };
        // hits, a different status, an equal name in another allocation, another upstream
        let other_sf: Arc<str> = "salesforce".into();
        for (upstream, status, class) in [
            (&sf, 200, "list"),
            (&sf, 200, "list"),
            (&sf, 200, "single"),
            (&sf, 404, "list"),
            (&other_sf, 200, "list"),
            (&hs, 200, "list"),
            (&sf, 200, "list"),
        ] {
            m.count_request(&cache, labels(upstream, status), class)
                .observe(0.001);
        }
        let text = m.render();
        for line in [
            "zweck_requests_total{upstream=\"salesforce\",app=\"newsletter-tool\",purpose=\"newsletter\",status=\"200\"} 5",
            "zweck_requests_total{upstream=\"salesforce\",app=\"newsletter-tool\",purpose=\"newsletter\",status=\"404\"} 1",
            "zweck_requests_total{upstream=\"hubspot\",app=\"newsletter-tool\",purpose=\"newsletter\",status=\"200\"} 1",
            "zweck_request_duration_seconds_count{upstream=\"salesforce\",class=\"list\",status_class=\"2xx\"} 4",
            "zweck_request_duration_seconds_count{upstream=\"salesforce\",class=\"single\",status_class=\"2xx\"} 1",
            "zweck_request_duration_seconds_count{upstream=\"salesforce\",class=\"list\",status_class=\"4xx\"} 1",
            "zweck_request_duration_seconds_count{upstream=\"hubspot\",class=\"list\",status_class=\"2xx\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
