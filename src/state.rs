//! Everything a request needs, shared by `Arc` (no global state).
//!
//! Two halves. [`Live`] is what a reload may replace (apps and API keys, upstreams and their
//! credentials, the TLS certificate and client CA, the pseudonym key, the policy set): it is
//! swapped whole through a `watch` channel, and each request and each new connection takes
//! one snapshot ([`State::live`]) and keeps it, so nothing ever sees half of an old and half
//! of a new config. The rest of [`State`] lives as long as the process: the listener's
//! limits, the transfer log, the budgets, the metrics; config keys that feed them need a
//! restart ([`crate::reload`] refuses a reload that changes them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::caller::Identities;
use crate::config::Config;
use crate::links::LinkRewriter;
use crate::metrics::Metrics;
use crate::policy::{PolicySet, PseudonymKey};
use crate::upstream::{Upstream, UpstreamSetupError};

/// An upstream with what the pipeline derives from it once.
#[derive(Debug)]
pub struct UpstreamEntry {
    pub upstream: Upstream,
    pub links: LinkRewriter,
    /// Its name as a metrics label.
    pub label: Arc<str>,
    /// The origins a batch tunnel's parts may address: the upstream's and Zweck's own
    /// public URL.
    pub origins: [String; 2],
    /// Its `zweck_upstream_latency_seconds` histogram, resolved by the first request.
    pub latency: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
}

impl UpstreamEntry {
    /// Sets up the upstream's client and reads its credential.
    pub fn new(
        config: crate::config::UpstreamConfig,
        public_url: &str,
        pools: &crate::metrics::PoolGauges,
    ) -> Result<UpstreamEntry, UpstreamSetupError> {
        let upstream = Upstream::new(config, pools)?;
        let links = LinkRewriter::new(&upstream.origin, public_url);
        let label = Arc::from(upstream.name());
        let origins = [upstream.origin.clone(), public_url.to_string()];
        Ok(UpstreamEntry {
            upstream,
            links,
            label,
            origins,
            latency: std::sync::OnceLock::new(),
        })
    }
}

/// A certificate Zweck relies on, for the expiry metric: where it is configured and when it
/// stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedCert {
    /// The config key that names the file (`tls.cert`, `upstreams.salesforce.ca`).
    pub source: String,
    pub file: std::path::PathBuf,
    pub expiry: crate::tls::Expiry,
}

/// What a reload replaces, as one: every request and every new TLS connection takes one
/// snapshot and uses it to the end.
#[derive(Clone)]
pub struct Live {
    /// The config these parts were built from.
    pub config: Arc<Config>,
    pub identities: Arc<Identities>,
    pub upstreams: Vec<Arc<UpstreamEntry>>,
    /// The policy set in force.
    pub policy: Arc<PolicySet>,
    /// The pseudonymisation master key, when one is configured.
    pub pseudonym_key: Option<PseudonymKey>,
    /// The listener's TLS config: certificate, key and client CA.
    pub tls: Arc<rustls::ServerConfig>,
    /// The token that authorises `POST /reload` on the admin listener.
    pub admin_token: Option<Arc<str>>,
    pub certificates: Vec<WatchedCert>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("policy", &self.policy.version())
            .field("upstreams", &self.upstreams.len())
            .finish_non_exhaustive()
    }
}

/// Shared state of the proxy.
pub struct State {
    /// The config Zweck started with. Its restart-only parts (listen, admin, limits, audit,
    /// budgets, crm_double, log) are in force for the whole run; apps, upstreams, TLS files
    /// and the pseudonym key come from [`State::live`].
    pub config: Arc<Config>,
    live: watch::Sender<Arc<Live>>,
    /// Held while a reload builds and swaps, so two reloads (a SIGHUP and a file change)
    /// never interleave. A std mutex: reloads run on blocking threads, nothing awaits under it.
    pub(crate) reloading: Mutex<()>,
    pub metrics: Metrics,
    /// A candidate policy set compared with the live one on real traffic
    /// (`policies.candidate`; restart-only, reloaded by its own watcher).
    pub shadow: Option<Arc<crate::shadow::Shadow>>,
    /// The transfer log, when configured.
    pub audit: Option<crate::audit::AuditLog>,
    /// Export budgets in records.
    pub budgets: crate::budget::Budgets,
    /// The incident detector (`incidents:`), fed by the log phase.
    pub incidents: Option<Arc<crate::incident::Incidents>>,
    /// `limits.buffered_total` in KiB: the memory all buffered governed bodies may hold at
    /// once, across connections. A parsed tree costs several times its bytes, so this is what
    /// keeps many large bodies at once from exhausting memory (503 when it is used up).
    pub buffers: Arc<tokio::sync::Semaphore>,
    request_ids: RequestIds,
    ready: AtomicBool,
}

impl State {
    pub fn new(
        config: Config,
        live: Live,
        metrics: Metrics,
        audit: Option<crate::audit::AuditLog>,
        budgets: crate::budget::Budgets,
    ) -> State {
        let buffer_kib = usize::try_from(config.limits.buffered_total / 1024)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        let (live, _) = watch::channel(Arc::new(live));
        State {
            config: Arc::new(config),
            live,
            reloading: Mutex::new(()),
            metrics,
            shadow: None,
            audit,
            buffers: Arc::new(tokio::sync::Semaphore::new(buffer_kib)),
            budgets,
            incidents: None,
            request_ids: RequestIds::new(),
            ready: AtomicBool::new(false),
        }
    }

    /// The live parts in force now; hold the snapshot for the whole request or connection.
    pub fn live(&self) -> Arc<Live> {
        self.live.borrow().clone()
    }

    /// Replaces the live parts (reload only; validated in full before).
    pub(crate) fn swap(&self, live: Live) {
        self.live.send_replace(Arc::new(live));
    }

    /// With a candidate policy compared on real traffic (its counters registered).
    pub fn with_shadow(mut self, shadow: Arc<crate::shadow::Shadow>) -> State {
        self.metrics.register_with(|r| shadow.register(r));
        self.shadow = Some(shadow);
        self
    }

    /// With the incident detector (its metric registered).
    pub fn with_incidents(mut self, incidents: Arc<crate::incident::Incidents>) -> State {
        self.metrics.register_with(|r| incidents.register(r));
        self.incidents = Some(incidents);
        self
    }

    /// A new request id, unique within the process and unguessable across restarts.
    pub fn next_request_id(&self) -> String {
        self.request_ids.next()
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// Request ids: a random per-process prefix and a counter.
struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let mut bytes = [0u8; 6];
        // a predictable prefix only makes ids guessable, never wrong
        let _ = getrandom::fill(&mut bytes);
        RequestIds {
            prefix: hex::encode(bytes),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // `{prefix}-{n:08x}` without the formatting machinery (one per request)
        let digits = (((64 - n.leading_zeros()) as usize).div_ceil(4)).max(8);
        let mut id = String::with_capacity(self.prefix.len() + 1 + digits);
        id.push_str(&self.prefix);
        id.push('-');
        for i in (0..digits).rev() {
            let nibble = ((n >> (4 * i)) & 0xf) as u8;
            id.push(char::from(b"0123456789abcdef"[nibble as usize]));
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_prefix_dash_at_least_eight_hex_digits() {
        let ids = RequestIds::new();
        assert_eq!(ids.prefix.len(), 12);
        for n in [
            0u64,
            1,
            0xabc,
            0xffff_ffff,
            0x1_0000_0000,
            0x1234_5678_9abc,
            u64::MAX,
        ] {
            ids.counter.store(n, Ordering::Relaxed);
            assert_eq!(ids.next(), format!("{}-{n:08x}", ids.prefix), "{n:#x}");
        }
        // the counter moves on
        ids.counter.store(7, Ordering::Relaxed);
        assert_ne!(ids.next(), ids.next());
    }
}
