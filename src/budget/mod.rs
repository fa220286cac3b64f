//! Export budgets: how many records one app may take out of the CRM for one purpose, per period.
//!
//! Why it exists: purpose limitation is also about *volume*. A newsletter tool that needs a
//! few thousand contacts an hour has no business pulling the whole CRM in a night, even with a
//! perfectly minimised field set. A budget turns "the purpose is limited" into a number the
//! proxy can enforce on the wire.
//!
//! The proxy calls this module at two phases (DESIGN.md §1):
//!
//! * phase 4 **precheck**: before anything is forwarded. An empty budget refuses the request
//!   without touching the CRM; otherwise the [`Allowance`] says how much is left, and
//!   [`cap_page`] shrinks the page the request asks for to that, when it must (or refuses
//!   below a floor, see [`paging`]).
//! * phase 7 **charge**: after the response is filtered, with the engine's record count (the
//!   records the app actually receives). Charging is all-or-nothing: a buffered page larger
//!   than what is left is refused whole, never silently truncated. A streamed body is charged
//!   chunk by chunk through a [`StreamCharge`], which says when the caller must abort.
//!
//! Budgets are GCRA (a leaky bucket without a timer): `records` per `per`, of which at most
//! `burst` at once, per (app, purpose), plus optional stricter sub-limits per route class.
//! They live in-process (governor's keyed limiter on a DashMap, see [`local`]) or, with
//! `budgets: {store: redis}`, in Redis/Valkey so that several instances share one budget
//! (see [`shared`]; docs/budgets.md has the failure mode). `mode: shadow` purposes are counted
//! and logged but never refused.
//!
//! Logs and metrics carry app, purpose, class and counts only: never query strings or bodies.

mod local;
mod metrics;
pub mod paging;
mod refusal;
mod shared;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;

use crate::policy::{ExportBudget, RouteClass};

pub use metrics::{BudgetLabels, BudgetMetrics};
pub use paging::{cap_page, Capped, PageKnob, PAGE_FLOOR};
pub use refusal::{vendor_refusal, RefusalStyle};
pub use stream::{StreamCharge, StreamVerdict};

use local::LocalStore;
use shared::SharedStore;

/// `budgets:` in zweck.yaml, as written. The lead embeds it in the main config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudgetsConfig {
    /// `local` (default, in-process) or `redis` (shared by every instance).
    pub store: String,
    /// `redis://host:port/db`, `rediss://...` or `redis+unix:///path/to.sock`; only with redis.
    pub url: Option<String>,
    /// How many Zweck instances share the budget. While Redis is unreachable each instance
    /// falls back to a local limiter of `records / instances`.
    pub instances: Option<u32>,
    /// Prefix of every Redis key (default `zweck:budget`).
    pub key_prefix: Option<String>,
    /// How refusals look: `problem` (default, 429 problem+json) or `vendor` (the upstream
    /// CRM's own throttle shape, so its SDKs back off as they would there).
    #[serde(default)]
    pub refusal: Option<String>,
}

impl RawBudgetsConfig {
    /// What [`Budgets::from_config`] would refuse, found without building anything, so that
    /// `zweck config check` reports it with the other problems of the file. (Whether the URL
    /// parses is left to the Redis client at start.)
    pub fn problems(&self) -> Vec<BudgetError> {
        let mut out = Vec::new();
        if self.instances == Some(0) {
            out.push(BudgetError::ZeroInstances);
        }
        match self.store.as_str() {
            "local" if self.url.is_some() || self.key_prefix.is_some() => {
                out.push(BudgetError::RedisOptionWithLocal);
            }
            "redis" if self.url.is_none() => out.push(BudgetError::MissingUrl),
            "local" | "redis" => {}
            other => out.push(BudgetError::UnknownStore(other.to_string())),
        }
        out
    }
}

/// Why a `budgets:` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("budgets.store must be `local` or `redis`, not `{0}`")]
    UnknownStore(String),
    #[error("budgets.store: redis needs budgets.url")]
    MissingUrl,
    #[error("budgets.url and budgets.key_prefix only apply to store: redis")]
    RedisOptionWithLocal,
    #[error("budgets.instances must be at least 1")]
    ZeroInstances,
    /// The URL did not parse. The message comes from the redis client and never echoes the URL
    /// (which may carry a password).
    #[error("budgets.url is not a usable Redis URL: {0}")]
    BadUrl(String),
}

/// Whose budget: one per (app, purpose). The names are shared with the caller and the
/// metric labels (every governed read builds a key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    pub app: std::sync::Arc<str>,
    pub purpose: std::sync::Arc<str>,
}

impl BudgetKey {
    pub fn new(
        app: impl Into<std::sync::Arc<str>>,
        purpose: impl Into<std::sync::Arc<str>>,
    ) -> BudgetKey {
        BudgetKey {
            app: app.into(),
            purpose: purpose.into(),
        }
    }
}

/// What is left of a budget: the numbers behind the `RateLimit` headers. When a route class
/// has its own sub-limit, these are the numbers of whichever limit binds (has less left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Records that may be delivered right now (never more than the burst).
    pub remaining: u64,
    /// Records per window (`q` of `RateLimit-Policy`).
    pub limit: u64,
    /// The window (`w` of `RateLimit-Policy`).
    pub window: Duration,
    /// Time until the budget is full again (`t` of `RateLimit`).
    pub reset: Duration,
    /// `None` for the (app, purpose) total, the class for a per-class sub-limit.
    pub class: Option<RouteClass>,
}

/// A refusal: the budget cannot pay for what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// When the request could succeed; `None` when it never can (the page is larger than the
    /// burst, or the class is closed with `records: 0`): answer with a non-retryable 4xx.
    pub retry_after: Option<Duration>,
    /// The most records one response may carry under the binding limit (its burst); 0 for a
    /// closed class.
    pub cap: u64,
    /// The class whose sub-limit refused; `None` for the (app, purpose) total.
    pub class: Option<RouteClass>,
    /// Records per window of the binding limit (for `RateLimit-Policy` on the refusal).
    pub limit: u64,
    /// Window of the binding limit.
    pub window: Duration,
    /// How many records were asked for (1 at precheck).
    pub requested: u64,
    /// True when the shared store was unreachable and the route fails closed (bulk exports):
    /// answered with 503, not as a spent budget.
    pub store_unavailable: bool,
}

impl Exhausted {
    /// True when waiting can help.
    pub fn is_retryable(&self) -> bool {
        self.retry_after.is_some()
    }
}

/// One limit a request is measured against: the total, or a class sub-limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Limit {
    pub(crate) records: u64,
    pub(crate) per: Duration,
    pub(crate) burst: u64,
}

impl Limit {
    fn of(b: &ExportBudget) -> Limit {
        Limit {
            records: b.records,
            per: b.per,
            burst: b.burst.unwrap_or(b.records),
        }
    }

    /// `records: 0` (or a degenerate period) closes the scope for good.
    pub(crate) fn is_closed(&self) -> bool {
        self.records == 0 || self.burst == 0 || self.per.is_zero()
    }

    /// Time to earn one record back.
    pub(crate) fn emission_interval(&self) -> Duration {
        let nanos = self.per.as_nanos() / u128::from(self.records.max(1));
        Duration::from_nanos(u64::try_from(nanos.max(1)).unwrap_or(u64::MAX))
    }

    /// The local share while the shared store is down: `records / instances`, at least 1.
    pub(crate) fn share(&self, instances: u32) -> Limit {
        if self.is_closed() || instances <= 1 {
            return *self;
        }
        let n = u64::from(instances);
        Limit {
            records: (self.records / n).max(1),
            per: self.per,
            burst: (self.burst / n).max(1),
        }
    }

    fn allowance(&self, class: Option<RouteClass>, remaining: u64) -> Allowance {
        let remaining = remaining.min(self.burst);
        let missing = u128::from(self.burst - remaining);
        let reset_nanos = self.emission_interval().as_nanos().saturating_mul(missing);
        Allowance {
            remaining,
            limit: self.records,
            window: self.per,
            reset: Duration::from_nanos(u64::try_from(reset_nanos).unwrap_or(u64::MAX)),
            class,
        }
    }

    fn exhausted(
        &self,
        class: Option<RouteClass>,
        retry_after: Option<Duration>,
        requested: u64,
    ) -> Exhausted {
        Exhausted {
            retry_after,
            cap: if self.is_closed() { 0 } else { self.burst },
            class,
            limit: self.records,
            window: self.per,
            requested,
            store_unavailable: false,
        }
    }
}

/// The most records one response may ever carry under `budget` for `class`: the smallest
/// burst of the limits that apply (0 for a closed class).
pub fn largest_page(budget: &ExportBudget, class: RouteClass) -> u64 {
    Scopes::of(budget, class).max_single()
}

/// A limit and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) class: Option<RouteClass>,
    pub(crate) limit: Limit,
}

/// The limits one request is measured against: the total and at most one class sub-limit.
#[derive(Debug, Clone)]
pub(crate) struct Scopes {
    list: [Option<Scope>; 2],
}

impl Scopes {
    pub(crate) fn of(budget: &ExportBudget, class: RouteClass) -> Scopes {
        let total = Scope {
            class: None,
            limit: Limit::of(budget),
        };
        let sub = budget
            .per_class
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(c, b)| Scope {
                class: Some(*c),
                limit: Limit::of(b),
            });
        Scopes {
            list: [Some(total), sub],
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.list.iter().flatten()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Scope> {
        self.list.get(i).and_then(Option::as_ref)
    }

    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// The largest single charge every scope can take (the smallest burst).
    pub(crate) fn max_single(&self) -> u64 {
        self.iter().map(|s| s.limit.burst).min().unwrap_or(0)
    }

    pub(crate) fn map(&self, f: impl Fn(Limit) -> Limit) -> Scopes {
        let mut out = self.clone();
        for s in out.list.iter_mut().flatten() {
            s.limit = f(s.limit);
        }
        out
    }

    /// A scope that can never pay for `n` records: closed, or `n` over its burst.
    fn never(&self, n: u64) -> Option<(usize, &Scope)> {
        self.list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
            .find(|(_, s)| s.limit.is_closed() || n > s.limit.burst)
    }
}

/// A store's answer, before it becomes an [`Allowance`] or [`Exhausted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every scope can pay; `remaining` is what the binding scope has left *after* the charge.
    Allowed { remaining: u64, scope: usize },
    /// The binding scope can pay only after `wait`.
    Refused { wait: Duration, scope: usize },
    /// The binding scope can never pay for this many records.
    Never { scope: usize },
}

/// Peek (measure without spending) or charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Peek,
    Charge,
}

enum Store {
    Local(LocalStore),
    Shared(SharedStore),
}

struct Inner {
    store: Store,
    metrics: BudgetMetrics,
}

/// The export budgets of every (app, purpose): cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Budgets {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner.store {
            Store::Local(_) => "local",
            Store::Shared(_) => "redis",
        };
        f.debug_struct("Budgets").field("store", &kind).finish()
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets::local()
    }
}

impl Budgets {
    fn with_store(store: Store) -> Budgets {
        Budgets {
            inner: Arc::new(Inner {
                store,
                metrics: BudgetMetrics::default(),
            }),
        }
    }

    /// In-process budgets on the monotonic clock (the default store).
    pub fn local() -> Budgets {
        Budgets::with_store(Store::Local(LocalStore::new(local::BudgetClock::real())))
    }

    /// In-process budgets on governor's fake clock: tests and benches advance time by hand.
    pub fn local_with_clock(clock: FakeRelativeClock) -> Budgets {
        Budgets::with_store(Store::Local(LocalStore::new(local::BudgetClock::fake(
            clock,
        ))))
    }

    /// Builds the store `budgets:` asks for. A Redis store connects lazily: an unreachable
    /// Redis at start-up is the same failure mode as one lost later (docs/budgets.md), not a
    /// reason to refuse to start.
    pub async fn from_config(raw: &RawBudgetsConfig) -> Result<Budgets, BudgetError> {
        Budgets::from_config_with_clock(raw, None).await
    }

    /// [`Budgets::from_config`] with the local (and fallback) limiters on a fake clock.
    pub async fn from_config_with_clock(
        raw: &RawBudgetsConfig,
        clock: Option<FakeRelativeClock>,
    ) -> Result<Budgets, BudgetError> {
        let clock = match clock {
            Some(c) => local::BudgetClock::fake(c),
            None => local::BudgetClock::real(),
        };
        if let Some(problem) = raw.problems().into_iter().next() {
            return Err(problem);
        }
        match raw.store.as_str() {
            "local" => Ok(Budgets::with_store(Store::Local(LocalStore::new(clock)))),
            "redis" => {
                let url = raw.url.as_deref().ok_or(BudgetError::MissingUrl)?;
                let prefix = raw.key_prefix.as_deref().unwrap_or("zweck:budget");
                let instances = raw.instances.unwrap_or(1);
                let store = SharedStore::new(url, prefix, instances, clock)?;
                Ok(Budgets::with_store(Store::Shared(store)))
            }
            other => Err(BudgetError::UnknownStore(other.to_string())),
        }
    }

    /// The counters to register with the process registry.
    pub fn metrics(&self) -> &BudgetMetrics {
        &self.inner.metrics
    }

    async fn decide(
        &self,
        key: &BudgetKey,
        scopes: &Scopes,
        class: RouteClass,
        n: u64,
        op: Op,
    ) -> Result<Verdict, Exhausted> {
        match &self.inner.store {
            Store::Local(l) => Ok(l.decide(key, scopes, n, op)),
            Store::Shared(s) => {
                s.decide(key, scopes, class, n, op, &self.inner.metrics)
                    .await
            }
        }
    }

    /// Phase 4: is anything left? `Err` means refuse without forwarding. For a `shadow`
    /// purpose this never fails: a refusal it would have made is counted and logged, and the
    /// allowance tells the truth (possibly 0 left) but the caller must not cap or refuse.
    pub async fn precheck(
        &self,
        key: &BudgetKey,
        budget: &ExportBudget,
        class: RouteClass,
        shadow: bool,
    ) -> Result<Allowance, Exhausted> {
        self.precheck_n(key, budget, class, 1, shadow).await
    }

    /// Like [`Budgets::precheck`], for `n` records at once: `Err` when fewer than `n` may be
    /// delivered now, with the time until they may (the page floor's `Retry-After`).
    pub async fn precheck_n(
        &self,
        key: &BudgetKey,
        budget: &ExportBudget,
        class: RouteClass,
        n: u64,
        shadow: bool,
    ) -> Result<Allowance, Exhausted> {
        let n = n.max(1);
        let scopes = Scopes::of(budget, class);
        let verdict = match self.decide(key, &scopes, class, n, Op::Peek).await {
            Ok(v) => v,
            Err(e) => return self.refuse(key, class, &scopes, e, shadow, "precheck"),
        };
        match verdict {
            // A peek reports what is left after the records it measured.
            Verdict::Allowed { remaining, .. } => {
                Ok(rebuild(&scopes, verdict, remaining.saturating_add(n)))
            }
            _ => match self.outcome(&scopes, verdict, n) {
                Ok(a) => Ok(a),
                Err(e) => self.refuse(key, class, &scopes, e, shadow, "precheck"),
            },
        }
    }

    /// Phase 7: charge `records` delivered records, all or nothing. `Err` means the response
    /// must not be released (buffered: refuse it whole and log `rate_limited`). Charging 0
    /// records always succeeds. For a `shadow` purpose this never fails.
    pub async fn charge(
        &self,
        key: &BudgetKey,
        budget: &ExportBudget,
        class: RouteClass,
        records: u64,
        shadow: bool,
    ) -> Result<Allowance, Exhausted> {
        let scopes = Scopes::of(budget, class);
        if records == 0 {
            return Ok(self.peek_allowance(key, &scopes, class).await);
        }
        let verdict = match self.decide(key, &scopes, class, records, Op::Charge).await {
            Ok(v) => v,
            Err(e) => {
                self.inner.metrics.refused(key, class, records, shadow);
                return self.refuse(key, class, &scopes, e, shadow, "charge");
            }
        };
        match self.outcome(&scopes, verdict, records) {
            Ok(a) => {
                self.inner.metrics.charged(key, class, records);
                Ok(a)
            }
            Err(e) => {
                self.inner.metrics.refused(key, class, records, shadow);
                self.refuse(key, class, &scopes, e, shadow, "charge")
            }
        }
    }

    /// A charger for a streamed body: call [`StreamCharge::charge_stream`] per chunk of rows.
    pub fn stream(
        &self,
        key: BudgetKey,
        budget: ExportBudget,
        class: RouteClass,
        shadow: bool,
    ) -> StreamCharge {
        StreamCharge::new(self.clone(), key, budget, class, shadow)
    }

    /// What is left without spending anything; a refused peek reads as 0 left.
    async fn peek_allowance(
        &self,
        key: &BudgetKey,
        scopes: &Scopes,
        class: RouteClass,
    ) -> Allowance {
        let v = self.decide(key, scopes, class, 1, Op::Peek).await;
        match v {
            Ok(v @ Verdict::Allowed { remaining, .. }) => rebuild(scopes, v, remaining + 1),
            Ok(v) => rebuild(scopes, v, 0),
            Err(_) => scopes.get(0).map_or_else(
                || Limit::of_zero().allowance(None, 0),
                |s| s.limit.allowance(s.class, 0),
            ),
        }
    }

    fn outcome(&self, scopes: &Scopes, v: Verdict, n: u64) -> Result<Allowance, Exhausted> {
        match v {
            Verdict::Allowed { remaining, .. } => Ok(rebuild(scopes, v, remaining)),
            Verdict::Refused { wait, scope } => {
                let s = scope_or_total(scopes, scope);
                Err(s.limit.exhausted(s.class, Some(wait), n))
            }
            Verdict::Never { scope } => {
                let s = scope_or_total(scopes, scope);
                Err(s.limit.exhausted(s.class, None, n))
            }
        }
    }

    fn refuse(
        &self,
        key: &BudgetKey,
        class: RouteClass,
        scopes: &Scopes,
        e: Exhausted,
        shadow: bool,
        phase: &'static str,
    ) -> Result<Allowance, Exhausted> {
        if shadow {
            tracing::info!(
                app = %key.app, purpose = %key.purpose, class = class.as_str(), phase,
                requested = e.requested, cap = e.cap, retryable = e.is_retryable(),
                "export budget would refuse (shadow mode: allowed)"
            );
            self.inner.metrics.shadow_refusal(key, class);
            let s = e
                .class
                .and_then(|c| scopes.iter().find(|s| s.class == Some(c)))
                .or_else(|| scopes.get(0))
                .copied();
            return Ok(match s {
                Some(s) => s.limit.allowance(s.class, 0),
                None => Limit::of_zero().allowance(None, 0),
            });
        }
        tracing::info!(
            app = %key.app, purpose = %key.purpose, class = class.as_str(), phase,
            requested = e.requested, cap = e.cap, retryable = e.is_retryable(),
            store_unavailable = e.store_unavailable, "export budget refused"
        );
        self.inner.metrics.refusal(key, class);
        Err(e)
    }

    /// Drops the state of every key whose budget is full again and gives the memory back.
    /// Returns the number of live keys afterwards (also exported as a gauge).
    pub fn sweep(&self) -> usize {
        let live = match &self.inner.store {
            Store::Local(l) => l.sweep(),
            Store::Shared(s) => s.sweep(),
        };
        self.inner.metrics.set_live_keys(live);
        live
    }

    /// Keys currently held in memory (the keyed state stores' `len()`).
    pub fn live_keys(&self) -> usize {
        match &self.inner.store {
            Store::Local(l) => l.len(),
            Store::Shared(s) => s.local_len(),
        }
    }

    /// Slots allocated by the in-memory state stores (what `shrink_to_fit` gives back).
    pub fn capacity(&self) -> usize {
        match &self.inner.store {
            Store::Local(l) => l.capacity(),
            Store::Shared(s) => s.local_capacity(),
        }
    }

    /// The maintenance loop: [`Budgets::sweep`] every `every`. Spawn it next to the server and
    /// abort it at shutdown; it holds no state that needs flushing.
    pub async fn maintain(self, every: Duration) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let live = self.sweep();
            tracing::debug!(live_keys = live, "export budget sweep");
        }
    }

    /// Spawns [`Budgets::maintain`] on the current runtime.
    pub fn spawn_maintenance(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().maintain(every))
    }
}

impl Limit {
    fn of_zero() -> Limit {
        Limit {
            records: 0,
            per: Duration::ZERO,
            burst: 0,
        }
    }
}

fn scope_or_total(scopes: &Scopes, i: usize) -> Scope {
    scopes
        .get(i)
        .or_else(|| scopes.get(0))
        .copied()
        .unwrap_or(Scope {
            class: None,
            limit: Limit::of_zero(),
        })
}

fn rebuild(scopes: &Scopes, v: Verdict, remaining: u64) -> Allowance {
    let i = match v {
        Verdict::Allowed { scope, .. }
        | Verdict::Refused { scope, .. }
        | Verdict::Never { scope } => scope,
    };
    let s = scope_or_total(scopes, i);
    s.limit.allowance(s.class, remaining)
}

#[cfg(test)]
mod tests;
