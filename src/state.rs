//! Everything a request needs, built once at start-up and shared by `Arc` (no global state).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::caller::Identities;
use crate::config::Config;
use crate::links::LinkRewriter;
use crate::metrics::Metrics;
use crate::policy::PseudonymKey;
use crate::reload::Policies;
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
}

/// Shared, immutable-after-start state of the proxy.
pub struct State {
    pub config: Arc<Config>,
    pub identities: Identities,
    pub upstreams: Vec<Arc<UpstreamEntry>>,
    pub metrics: Metrics,
    /// The policy set in force; each request takes one snapshot.
    pub policies: Arc<Policies>,
    /// A candidate policy set compared with it on real traffic (`policies.candidate`).
    pub shadow: Option<Arc<crate::shadow::Shadow>>,
    /// The pseudonymisation master key, when a purpose needs one.
    pub pseudonym_key: Option<PseudonymKey>,
    /// The transfer log, when configured.
    pub audit: Option<crate::audit::AuditLog>,
    /// Export budgets in records.
    pub budgets: crate::budget::Budgets,
    /// `limits.buffered_total` in KiB: the memory all buffered governed bodies may hold at
    /// once, across connections. A parsed tree costs several times its bytes, so this is what
    /// keeps many large bodies at once from exhausting memory (503 when it is used up).
    pub buffers: Arc<tokio::sync::Semaphore>,
    request_ids: RequestIds,
    ready: AtomicBool,
}

impl State {
    /// Builds clients and reads credentials; fails when a secret is missing.
    pub fn new(
        config: Config,
        policies: Arc<Policies>,
        pseudonym_key: Option<PseudonymKey>,
        audit: Option<crate::audit::AuditLog>,
        budgets: crate::budget::Budgets,
    ) -> Result<State, UpstreamSetupError> {
        let mut upstreams = Vec::new();
        for u in &config.upstreams {
            let upstream = Upstream::new(u.clone())?;
            let links = LinkRewriter::new(&upstream.origin, &config.public_url);
            let label = Arc::from(upstream.name());
            let origins = [upstream.origin.clone(), config.public_url.clone()];
            upstreams.push(Arc::new(UpstreamEntry {
                upstream,
                links,
                label,
                origins,
            }));
        }
        let buffer_kib = usize::try_from(config.limits.buffered_total / 1024)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Ok(State {
            identities: Identities::new(&config),
            config: Arc::new(config),
            upstreams,
            metrics: {
                let mut m = Metrics::new();
                m.register_with(|r| budgets.metrics().register(r));
                m
            },
            policies,
            shadow: None,
            pseudonym_key,
            audit,
            buffers: Arc::new(tokio::sync::Semaphore::new(buffer_kib)),
            budgets,
            request_ids: RequestIds::new(),
            ready: AtomicBool::new(false),
        })
    }

    /// With a candidate policy compared on real traffic (its counters registered).
    pub fn with_shadow(mut self, shadow: Arc<crate::shadow::Shadow>) -> State {
        self.metrics.register_with(|r| shadow.register(r));
        self.shadow = Some(shadow);
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
