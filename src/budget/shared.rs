//! The shared store: budgets in Redis/Valkey, so several Zweck instances spend one budget.
//!
//! The decision is GCRA done in one Lua script, on Redis's own clock (`redis.call('TIME')`):
//! instances with skewed clocks still agree, and measuring every scope and storing the new
//! state happen atomically, so two instances can never both spend the last records. State is
//! one key per (app, purpose, scope) holding the theoretical arrival time in microseconds,
//! with a TTL of the time until the bucket is full again: an idle budget costs Redis nothing.
//! The keys of one (app, purpose) share a `{hash tag}` so the script also runs on a cluster.
//!
//! When Redis cannot be reached (error or 250 ms timeout), a breaker stops asking it for a
//! second and, meanwhile, bulk exports fail closed while every other route is measured by a
//! local limiter holding this instance's share (`records / instances`). docs/budgets.md
//! explains why: the local share keeps ordinary traffic going without letting N instances
//! together exceed the budget, while a bulk export is the one thing worth waiting for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::local::{BudgetClock, LocalStore};
use super::{BudgetError, BudgetKey, BudgetMetrics, Exhausted, Op, Scopes, Verdict};
use crate::policy::RouteClass;

/// One round trip may take this long before Redis counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, Redis is not asked again for this long.
const BREAKER: Duration = Duration::from_secs(1);

/// KEYS[i]: state of scope i. ARGV[1]: records; ARGV[2]: 1 = charge, 0 = peek; then per
/// scope i: ARGV[1+2i] = emission interval t (µs per record), ARGV[2+2i] = tolerance tau
/// (µs, t * (burst - 1)). The caller has already refused n > burst, so n fits each bucket.
/// Returns {allowed, remaining after, wait µs, binding scope (1-based)}.
const GCRA_LUA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local n = tonumber(ARGV[1])
local charge = ARGV[2] == '1'
local nexts = {}
local best_rem = -1
local best_i = 1
local worst_wait = -1
local worst_i = 1
for i = 1, #KEYS do
  local t = tonumber(ARGV[1 + 2 * i])
  local tau = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local extra = t * (n - 1)
  local earliest = tat + extra - tau
  if now < earliest then
    if earliest - now > worst_wait then worst_wait = earliest - now; worst_i = i end
  else
    local nxt = tat + t + extra
    nexts[i] = nxt
    local rem = math.floor((now + tau + t - nxt) / t)
    if rem < 0 then rem = 0 end
    if best_rem < 0 or rem < best_rem then best_rem = rem; best_i = i end
  end
end
if worst_wait >= 0 then
  return {0, 0, math.ceil(worst_wait), worst_i}
end
if charge then
  for i = 1, #KEYS do
    local ttl = math.ceil((nexts[i] - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', nexts[i]), 'PX', ttl)
  end
end
return {1, best_rem, 0, best_i}
";

/// Characters escaped in app and purpose names inside keys: the separators and hash-tag braces.
const KEY_ESCAPE: &AsciiSet = &CONTROLS.add(b':').add(b'{').add(b'}').add(b'%').add(b' ');

/// Budgets kept in Redis, with a local fallback share.
pub(crate) struct SharedStore {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    instances: u32,
    fallback: LocalStore,
    /// Clock nanos before which Redis is not asked (0: closed breaker).
    down_until: AtomicU64,
    /// Set while the breaker is open, to log the transitions once.
    down: AtomicBool,
}

impl SharedStore {
    pub(crate) fn new(
        url: &str,
        prefix: &str,
        instances: u32,
        clock: BudgetClock,
    ) -> Result<SharedStore, BudgetError> {
        // The error kind only: redis errors about URLs may repeat the URL, password included.
        let client =
            redis::Client::open(url).map_err(|e| BudgetError::BadUrl(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(BREAKER);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| BudgetError::BadUrl(format!("{:?}", e.kind())))?;
        Ok(SharedStore {
            conn,
            script: redis::Script::new(GCRA_LUA),
            prefix: prefix.to_string(),
            instances,
            fallback: LocalStore::new(clock),
            down_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
        })
    }

    fn key(&self, key: &BudgetKey, scope: &str) -> String {
        format!(
            "{}:{{{}:{}}}:{}",
            self.prefix,
            utf8_percent_encode(&key.app, KEY_ESCAPE),
            utf8_percent_encode(&key.purpose, KEY_ESCAPE),
            scope
        )
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.fallback.clock().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) async fn decide(
        &self,
        key: &BudgetKey,
        scopes: &Scopes,
        class: RouteClass,
        n: u64,
        op: Op,
        metrics: &BudgetMetrics,
    ) -> Result<Verdict, Exhausted> {
        if n == 0 || n > u64::from(u32::MAX) {
            return Ok(Verdict::Never { scope: 0 });
        }
        if let Some((i, _)) = scopes.never(n) {
            return Ok(Verdict::Never { scope: i });
        }
        let now = self.now_nanos();
        let until = self.down_until.load(Ordering::Relaxed);
        if now >= until {
            match self.ask_redis(key, scopes, n, op).await {
                Ok(v) => {
                    if self.down.swap(false, Ordering::Relaxed) {
                        tracing::warn!("budget store reachable again; shared budgets resumed");
                    }
                    return Ok(v);
                }
                Err(reason) => {
                    let until = self.now_nanos().saturating_add(nanos(BREAKER));
                    self.down_until.store(until, Ordering::Relaxed);
                    if !self.down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            reason,
                            instances = self.instances,
                            "budget store unreachable: bulk exports fail closed, other routes use the local share"
                        );
                    }
                }
            }
        }
        metrics.fallback(key, class);
        if class == RouteClass::BulkExport {
            let wait = Duration::from_nanos(
                self.down_until
                    .load(Ordering::Relaxed)
                    .saturating_sub(self.now_nanos()),
            );
            let s = super::scope_or_total(scopes, 0);
            let mut e = s
                .limit
                .exhausted(s.class, Some(wait.max(Duration::from_secs(1))), n);
            e.store_unavailable = true;
            return Err(e);
        }
        let share = scopes.map(|l| l.share(self.instances));
        Ok(self.fallback.decide(key, &share, n, op))
    }

    /// One script call; `Err` names the failure class for the log (never the URL).
    async fn ask_redis(
        &self,
        key: &BudgetKey,
        scopes: &Scopes,
        n: u64,
        op: Op,
    ) -> Result<Verdict, &'static str> {
        let mut inv = self.script.prepare_invoke();
        for s in scopes.iter() {
            inv.key(self.key(key, s.class.map_or("total", |c| c.as_str())));
        }
        inv.arg(n).arg(i32::from(op == Op::Charge));
        for s in scopes.iter() {
            let t = micros_ceil(s.limit.emission_interval());
            inv.arg(t)
                .arg(t.saturating_mul(s.limit.burst.saturating_sub(1)));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> =
            match tokio::time::timeout(CALL_TIMEOUT, inv.invoke_async(&mut conn)).await {
                Err(_) => return Err("timeout"),
                Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                    return Err("connection")
                }
                Ok(Err(_)) => return Err("error reply"),
                Ok(Ok(r)) => r,
            };
        let [allowed, remaining, wait_us, scope] = reply[..] else {
            return Err("unexpected reply");
        };
        let scope = usize::try_from(scope.saturating_sub(1)).unwrap_or(0);
        if scope >= scopes.len() {
            return Err("unexpected reply");
        }
        Ok(if allowed == 1 {
            Verdict::Allowed {
                remaining: u64::try_from(remaining).unwrap_or(0),
                scope,
            }
        } else {
            Verdict::Refused {
                wait: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0).max(1)),
                scope,
            }
        })
    }

    /// Only the fallback limiters hold memory here; Redis expires its own keys.
    pub(crate) fn sweep(&self) -> usize {
        self.fallback.sweep()
    }

    pub(crate) fn local_len(&self) -> usize {
        self.fallback.len()
    }

    pub(crate) fn local_capacity(&self) -> usize {
        self.fallback.capacity()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whole microseconds, rounded up: the script works in integers so doubles stay exact, and
/// rounding the interval up refills a hair slower, never faster.
fn micros_ceil(d: Duration) -> u64 {
    let us = d.as_nanos().div_ceil(1000);
    u64::try_from(us.max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_separators_and_share_a_hash_tag() {
        let clock = BudgetClock::fake(Default::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt
            .block_on(async { SharedStore::new("redis://127.0.0.1:1/", "p", 1, clock) })
            .expect("lazy store");
        let k = BudgetKey::new("a:b{c}", "news letter");
        assert_eq!(
            store.key(&k, "total"),
            "p:{a%3Ab%7Bc%7D:news%20letter}:total"
        );
        assert_eq!(
            store.key(&k, "bulk_export"),
            "p:{a%3Ab%7Bc%7D:news%20letter}:bulk_export"
        );
    }

    #[test]
    fn microsecond_intervals_round_up() {
        assert_eq!(micros_ceil(Duration::from_nanos(1)), 1);
        assert_eq!(micros_ceil(Duration::from_millis(72)), 72_000);
        assert_eq!(
            micros_ceil(Duration::from_nanos(514_285_714_285)),
            514_285_715
        );
    }
}
