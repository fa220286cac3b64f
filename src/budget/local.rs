//! The in-process store: governor's GCRA keyed limiter on a DashMap.
//!
//! Governor keeps one quota per limiter, but every purpose has its own budget, so there is one
//! keyed limiter per distinct [`Limit`] (a handful: purposes times classes), each keyed by
//! (app, purpose, scope). Budgets changed by a policy reload simply land in a fresh limiter.
//!
//! Two things governor does not offer are built on its public `StateStore` trait rather than
//! by re-implementing GCRA:
//!
//! * **peek**: the pre-check and the `RateLimit` headers need "how much is left" without
//!   spending anything. A [`Slot`] carries a `peek` flag that is not part of its identity; the
//!   [`SlotStore`] runs governor's decision for a peeking slot but never stores the result.
//! * **all scopes or none**: a request is measured against the total and a class sub-limit.
//!   Every scope is peeked first and only then charged, so a refusal by one scope does not
//!   spend the other. Two requests racing between peek and charge can still make the second
//!   charge fail after the first succeeded; that errs towards refusing, never towards
//!   overspending.
//!
//! Memory: a key costs ~100 bytes. [`LocalStore::sweep`] drops keys whose bucket is full again
//! (`retain_recent`, indistinguishable from a fresh key) and `shrink_to_fit`s the maps.

use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, FakeRelativeClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, StateStore};
use governor::{Quota, RateLimiter};

use super::{BudgetKey, Limit, Op, Scopes, Verdict};

/// The clock of the local limiters: real (monotonic, relative to start) or governor's fake
/// clock in tests. One concrete type keeps [`super::Budgets`] free of a clock parameter.
#[derive(Debug, Clone)]
pub(crate) enum BudgetClock {
    Real(Instant),
    Fake(FakeRelativeClock),
}

impl BudgetClock {
    pub(crate) fn real() -> BudgetClock {
        BudgetClock::Real(Instant::now())
    }
    pub(crate) fn fake(c: FakeRelativeClock) -> BudgetClock {
        BudgetClock::Fake(c)
    }
    /// Time since the clock's origin, for breakers and back-off (not for GCRA state).
    pub(crate) fn elapsed(&self) -> Duration {
        self.now().into()
    }
}

impl Clock for BudgetClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match self {
            BudgetClock::Real(origin) => Nanos::from(origin.elapsed()),
            BudgetClock::Fake(c) => c.now(),
        }
    }
}

/// A key of the keyed limiters. `peek` is a request flag, not part of the identity.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    id: Box<str>,
    peek: bool,
}

impl Slot {
    fn new(key: &BudgetKey, scope: &'static str, peek: bool) -> Slot {
        let mut id = String::with_capacity(key.app.len() + key.purpose.len() + scope.len() + 2);
        id.push_str(&key.app);
        id.push('\u{1f}');
        id.push_str(&key.purpose);
        id.push('\u{1f}');
        id.push_str(scope);
        Slot {
            id: id.into_boxed_str(),
            peek,
        }
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Slot {}
impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// governor's DashMap store, shared with [`LocalStore`] (for `capacity()`), plus peeking.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotStore(Arc<DashMap<Slot, InMemoryState>>);

impl StateStore for SlotStore {
    type Key = Slot;

    fn measure_and_replace<T, F, E>(&self, key: &Slot, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if !key.peek {
            return self.0.measure_and_replace(key, f);
        }
        if !self.0.contains_key(key) {
            // A key never seen is a full bucket; do not create state for a look.
            return f(None).map(|(t, _)| t);
        }
        // Run the decision but hand back an error so the map never stores the new state.
        let peeked: Result<std::convert::Infallible, Result<T, E>> =
            self.0.measure_and_replace(key, |tat| match f(tat) {
                Ok((t, _)) => Err(Ok(t)),
                Err(e) => Err(Err(e)),
            });
        match peeked {
            Ok(never) => match never {},
            Err(r) => r,
        }
    }
}

impl ShrinkableKeyedStateStore<Slot> for SlotStore {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }
    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Limiter = RateLimiter<Slot, SlotStore, BudgetClock, StateInformationMiddleware>;

struct Keyed {
    limiter: Limiter,
    store: SlotStore,
}

/// In-process budgets: one keyed governor limiter per distinct limit.
pub(crate) struct LocalStore {
    clock: BudgetClock,
    limiters: DashMap<Limit, Arc<Keyed>>,
}

impl LocalStore {
    pub(crate) fn new(clock: BudgetClock) -> LocalStore {
        LocalStore {
            clock,
            limiters: DashMap::new(),
        }
    }

    pub(crate) fn clock(&self) -> &BudgetClock {
        &self.clock
    }

    fn limiter(&self, limit: &Limit) -> Option<Arc<Keyed>> {
        if let Some(k) = self.limiters.get(limit) {
            return Some(Arc::clone(&k));
        }
        let burst = NonZeroU32::new(u32::try_from(limit.burst).unwrap_or(u32::MAX))?;
        let quota = Quota::with_period(limit.emission_interval())?.allow_burst(burst);
        let entry = self.limiters.entry(*limit).or_insert_with(|| {
            let store = SlotStore::default();
            let limiter: Limiter = RateLimiter::new(quota, store.clone(), self.clock.clone());
            Arc::new(Keyed { limiter, store })
        });
        Some(Arc::clone(&entry))
    }

    /// Measures (and with [`Op::Charge`] spends) `n` records against every scope.
    pub(crate) fn decide(&self, key: &BudgetKey, scopes: &Scopes, n: u64, op: Op) -> Verdict {
        let Some(n32) = u32::try_from(n).ok().and_then(NonZeroU32::new) else {
            return Verdict::Never { scope: 0 };
        };
        if let Some((i, _)) = scopes.never(n) {
            return Verdict::Never { scope: i };
        }
        let mut keyed = Vec::with_capacity(2);
        for s in scopes.iter() {
            match self.limiter(&s.limit) {
                Some(k) => keyed.push(k),
                None => return Verdict::Never { scope: keyed.len() },
            }
        }
        let names: Vec<&'static str> = scopes
            .iter()
            .map(|s| s.class.map_or("total", |c| c.as_str()))
            .collect();

        // Peek every scope first: a refusal by one must not spend another.
        let mut best: Option<(u64, usize)> = None;
        for (i, k) in keyed.iter().enumerate() {
            let slot = Slot::new(key, names[i], true);
            match self.measure(k, &slot, n32) {
                Ok(rem) => {
                    if best.is_none_or(|(r, _)| rem < r) {
                        best = Some((rem, i));
                    }
                }
                Err(v) => return with_scope(v, i),
            }
        }
        if op == Op::Peek {
            let (remaining, scope) = best.unwrap_or((0, 0));
            return Verdict::Allowed { remaining, scope };
        }
        let mut best: Option<(u64, usize)> = None;
        for (i, k) in keyed.iter().enumerate() {
            let slot = Slot::new(key, names[i], false);
            match self.measure(k, &slot, n32) {
                Ok(rem) => {
                    if best.is_none_or(|(r, _)| rem < r) {
                        best = Some((rem, i));
                    }
                }
                Err(v) => return with_scope(v, i),
            }
        }
        let (remaining, scope) = best.unwrap_or((0, 0));
        Verdict::Allowed { remaining, scope }
    }

    /// One governor decision: `Ok(remaining after)` or the refusal.
    fn measure(&self, k: &Keyed, slot: &Slot, n: NonZeroU32) -> Result<u64, Verdict> {
        match k.limiter.check_key_n(slot, n) {
            Ok(Ok(snapshot)) => Ok(u64::from(snapshot.remaining_burst_capacity())),
            Ok(Err(not_until)) => {
                let now = self.clock.now();
                let wait = not_until.earliest_possible().duration_since(now);
                Err(Verdict::Refused {
                    wait: Duration::from(wait).max(Duration::from_nanos(1)),
                    scope: 0,
                })
            }
            Err(_insufficient) => Err(Verdict::Never { scope: 0 }),
        }
    }

    /// `retain_recent` + `shrink_to_fit` on every limiter; live keys afterwards.
    pub(crate) fn sweep(&self) -> usize {
        let all: Vec<Arc<Keyed>> = self
            .limiters
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect();
        let mut live = 0;
        for k in all {
            k.limiter.retain_recent();
            k.limiter.shrink_to_fit();
            live += k.limiter.len();
        }
        self.limiters.shrink_to_fit();
        live
    }

    pub(crate) fn len(&self) -> usize {
        self.limiters.iter().map(|e| e.value().limiter.len()).sum()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.limiters
            .iter()
            .map(|e| e.value().store.0.capacity())
            .sum()
    }
}

fn with_scope(v: Verdict, i: usize) -> Verdict {
    match v {
        Verdict::Refused { wait, .. } => Verdict::Refused { wait, scope: i },
        Verdict::Never { .. } => Verdict::Never { scope: i },
        Verdict::Allowed { remaining, .. } => Verdict::Allowed {
            remaining,
            scope: i,
        },
    }
}
