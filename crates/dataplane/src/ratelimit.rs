//! Rate limiting with GCRA (the generic cell rate algorithm).
//!
//! Each budget keeps one number, the theoretical arrival time (TAT): when
//! the budget would be back to full if no more requests came. With the
//! emission interval `T = per / requests` and the tolerance
//! `τ = T × burst`, a request at `now` passes when `TAT − now ≤ τ`, and then
//! moves the TAT to `max(TAT, now) + T`. A fresh budget therefore takes
//! `burst + 1` requests at once and then one every `T` — the behaviour of
//! nginx `limit_req … burst=N nodelay`.
//!
//! `Local` budgets live in this process, in sharded maps (no global lock),
//! bounded in size: budgets whose TAT has passed are equal to fresh ones
//! and are dropped, and when a shard is still full new keys share one
//! overflow budget, so a flood of random keys costs bounded memory.
//! `Global` budgets live in Redis, one atomic Lua script per check, timed
//! by the Redis server's clock; a check that fails or takes longer than
//! the timeout follows the policy's failure mode.
//!
//! A request rejected by one limit of a route gives back what the limits
//! checked before it took ([`RateLimiter::refund`]: the TAT moves back one
//! interval), so, as with nginx's `limit_req` zones, a rejected request
//! spends no budget.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use telemetry::Counter;

use snapshot::{RateLimit, RateLimitScope};

const SHARDS: usize = 16;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) allowed: bool,
    /// Requests that could still pass now.
    pub(crate) remaining: u64,
    /// Until the budget is full again.
    pub(crate) reset: Duration,
    /// When rejected: until the next request would pass.
    pub(crate) retry_after: Duration,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct RateLimitCounters {
    /// Requests rejected with 429.
    pub rejected: Counter,
    /// Global checks that failed (Redis unreachable, slow or erroring).
    pub redis_failures: Counter,
    /// Of those, requests let through by `failureMode: Open`.
    pub failed_open: Counter,
}

impl RateLimitCounters {
    /// The counters registered in `metrics`.
    pub fn registered(metrics: &telemetry::Metrics) -> Self {
        Self {
            rejected: metrics.ratelimit_rejected.clone(),
            redis_failures: metrics.ratelimit_redis_failures.clone(),
            failed_open: metrics.ratelimit_failed_open.clone(),
        }
    }
}

/// One GCRA step. Times in nanoseconds on any monotonic clock.
fn gcra(tat: u64, now: u64, interval: u64, tolerance: u64) -> (Decision, Option<u64>) {
    let tat = tat.max(now);
    if tat - now > tolerance {
        let retry = tat - now - tolerance;
        return (
            Decision {
                allowed: false,
                remaining: 0,
                reset: Duration::from_nanos(tat - now),
                retry_after: Duration::from_nanos(retry),
            },
            None,
        );
    }
    let new_tat = tat + interval;
    let used = new_tat - now;
    let remaining = (tolerance + interval).saturating_sub(used) / interval.max(1);
    (
        Decision {
            allowed: true,
            remaining,
            reset: Duration::from_nanos(used),
            retry_after: Duration::ZERO,
        },
        Some(new_tat),
    )
}

/// The budgets of one limit in this process.
#[derive(Debug)]
struct LocalBudgets {
    shards: Vec<Mutex<HashMap<Box<[u8]>, u64>>>,
    max_per_shard: usize,
    hasher: foldhash::fast::RandomState,
}

impl LocalBudgets {
    fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_per_shard: (max_keys / SHARDS).max(16),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn check(&self, key: &[u8], now: u64, interval: u64, tolerance: u64) -> Decision {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key: &[u8] = if map.contains_key(key) || map.len() < self.max_per_shard {
            key
        } else {
            // Full: forget budgets that are back to full (they equal a
            // fresh one), and if that frees nothing, count this key in the
            // shared overflow budget.
            map.retain(|_, tat| *tat > now);
            if map.len() < self.max_per_shard {
                key
            } else {
                b"\0overflow"
            }
        };
        let tat = map.get(key).copied().unwrap_or(now);
        let (decision, new_tat) = gcra(tat, now, interval, tolerance);
        if let Some(t) = new_tat {
            match map.get_mut(key) {
                Some(v) => *v = t,
                None => {
                    map.insert(key.into(), t);
                }
            }
        }
        decision
    }

    /// Gives back one request of `key` (or of the overflow budget it was
    /// counted in).
    fn refund(&self, key: &[u8], interval: u64) {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key: &[u8] = if map.contains_key(key) {
            key
        } else {
            b"\0overflow"
        };
        if let Some(tat) = map.get_mut(key) {
            *tat = tat.saturating_sub(interval);
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }
}

/// The Redis key of `key`'s budget under `limit`.
fn global_key(limit: &RateLimit, key: &[u8]) -> Vec<u8> {
    let mut redis_key = format!("gatehouse:rl:{}:", limit.id).into_bytes();
    redis_key.extend_from_slice(key);
    redis_key
}

/// The Lua script of a global check: GCRA on the Redis clock, with the
/// key expiring once the budget is full again. Returns `{allowed,
/// remaining, retry_after_us, reset_us}`.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, 0, tat - now - tolerance, tat - now}
end
local new_tat = tat + interval
local used = new_tat - now
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(used / 1000) + 1000)
local remaining = math.floor((tolerance + interval - used) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0, used}
";

/// Gives one request back to a global budget: the TAT moves back one
/// interval (`ARGV[1]`, microseconds), its expiry kept.
const REFUND_SCRIPT: &str = r"
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat then redis.call('SET', KEYS[1], tat - tonumber(ARGV[1]), 'KEEPTTL') end
return 0
";

/// Global budgets in Redis.
#[derive(Clone)]
struct Global {
    conn: redis::aio::ConnectionManager,
    script: Arc<redis::Script>,
    refund: Arc<redis::Script>,
    timeout: Duration,
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Every rate-limit budget of the gateway, kept across configuration
/// swaps by limit id.
#[derive(Debug)]
pub struct RateLimiter {
    local: RwLock<HashMap<Arc<str>, Arc<LocalBudgets>>>,
    global: Option<Global>,
    epoch: Instant,
    max_keys: usize,
    /// Counters for metrics.
    pub counters: Arc<RateLimitCounters>,
}

impl RateLimiter {
    /// Local budgets only; at most `max_keys` keys per limit.
    pub fn new(max_keys: usize) -> Self {
        Self {
            local: RwLock::new(HashMap::new()),
            global: None,
            epoch: Instant::now(),
            max_keys,
            counters: Arc::new(RateLimitCounters::default()),
        }
    }

    /// Adds Redis for `Global` limits at `url` (connected lazily and
    /// reconnected in the background); each check waits at most
    /// `timeout`.
    pub fn with_redis(mut self, url: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis-url: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("--redis-url: {e}"))?;
        self.global = Some(Global {
            conn,
            script: Arc::new(redis::Script::new(GCRA_SCRIPT)),
            refund: Arc::new(redis::Script::new(REFUND_SCRIPT)),
            timeout,
        });
        Ok(self)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn local_budgets(&self, id: &Arc<str>) -> Arc<LocalBudgets> {
        if let Some(b) = self
            .local
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
        {
            return b.clone();
        }
        self.local
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.clone())
            .or_insert_with(|| Arc::new(LocalBudgets::new(self.max_keys)))
            .clone()
    }

    /// Checks one request against a `Local` limit for `key`, without
    /// waiting: `None` for a `Global` limit (use [`Self::check`]).
    pub(crate) fn check_local(&self, limit: &RateLimit, key: &[u8]) -> Option<Decision> {
        if limit.scope != RateLimitScope::Local {
            return None;
        }
        let interval = u64::try_from(limit.emission_interval().as_nanos()).unwrap_or(u64::MAX);
        let tolerance = interval.saturating_mul(u64::from(limit.burst));
        let decision = self
            .local_budgets(&limit.id)
            .check(key, self.now(), interval, tolerance);
        if !decision.allowed {
            self.counters.rejected.inc();
        }
        Some(decision)
    }

    /// Checks one request against `limit` for `key`. `Err` means a global
    /// limit could not be checked and its policy fails closed.
    pub(crate) async fn check(&self, limit: &RateLimit, key: &[u8]) -> Result<Decision, ()> {
        if let Some(decision) = self.check_local(limit, key) {
            return Ok(decision);
        }
        let interval = u64::try_from(limit.emission_interval().as_nanos()).unwrap_or(u64::MAX);
        let tolerance = interval.saturating_mul(u64::from(limit.burst));
        let decision = match self.check_global(limit, key, interval, tolerance).await {
            Ok(d) => d,
            Err(e) => {
                self.counters.redis_failures.inc();
                tracing::warn!(limit = %limit.id, error = %e, fail_open = limit.fail_open, "global rate limit could not be checked");
                if limit.fail_open {
                    self.counters.failed_open.inc();
                    return Ok(Decision {
                        allowed: true,
                        remaining: u64::from(limit.burst),
                        reset: Duration::ZERO,
                        retry_after: Duration::ZERO,
                    });
                }
                return Err(());
            }
        };
        if !decision.allowed {
            self.counters.rejected.inc();
        }
        Ok(decision)
    }

    /// Gives back the request that `limit` allowed for `key` (a later
    /// limit rejected it). Best effort: a global refund that fails or
    /// times out is dropped.
    pub(crate) async fn refund(&self, limit: &RateLimit, key: &[u8]) {
        let interval = u64::try_from(limit.emission_interval().as_nanos()).unwrap_or(u64::MAX);
        match limit.scope {
            RateLimitScope::Local => self.local_budgets(&limit.id).refund(key, interval),
            RateLimitScope::Global => {
                let Some(global) = &self.global else { return };
                let mut conn = global.conn.clone();
                let mut invocation = global.refund.key(global_key(limit, key));
                invocation.arg((interval / 1000).max(1));
                let call = invocation.invoke_async::<i64>(&mut conn);
                if let Ok(Err(e)) = tokio::time::timeout(global.timeout, call).await {
                    tracing::debug!(limit = %limit.id, error = %e, "could not refund a global rate limit");
                }
            }
        }
    }

    async fn check_global(
        &self,
        limit: &RateLimit,
        key: &[u8],
        interval: u64,
        tolerance: u64,
    ) -> Result<Decision, String> {
        let Some(global) = &self.global else {
            return Err("no Redis is configured (--redis-url)".into());
        };
        let redis_key = global_key(limit, key);
        let mut conn = global.conn.clone();
        let us = |ns: u64| (ns / 1000).max(1);
        let call = async {
            global
                .script
                .key(redis_key)
                .arg(us(interval))
                .arg(tolerance / 1000)
                .invoke_async::<(i64, i64, i64, i64)>(&mut conn)
                .await
        };
        let (allowed, remaining, retry_us, reset_us) = tokio::time::timeout(global.timeout, call)
            .await
            .map_err(|_| format!("Redis did not answer within {:?}", global.timeout))?
            .map_err(|e| e.to_string())?;
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset: micros(reset_us),
            retry_after: micros(retry_us),
        })
    }

    /// Number of local keys held for `id` (for tests and debugging).
    pub fn local_keys(&self, id: &str) -> usize {
        self.local
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map_or(0, |b| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_fresh_budget_takes_burst_plus_one_then_the_steady_rate() {
        // 10 per second, burst 5: T = 100 ms, τ = 500 ms.
        let b = LocalBudgets::new(1000);
        let allowed = (0..10)
            .filter(|_| b.check(b"k", 0, 100 * MS, 500 * MS).allowed)
            .count();
        assert_eq!(allowed, 6);
        // 250 ms later two more have been earned, not three.
        let later: Vec<bool> = (0..3)
            .map(|_| b.check(b"k", 250 * MS, 100 * MS, 500 * MS).allowed)
            .collect();
        assert_eq!(later, [true, true, false]);
        // Other keys are independent.
        assert!(b.check(b"other", 250 * MS, 100 * MS, 500 * MS).allowed);
    }

    #[test]
    fn decisions_carry_remaining_reset_and_retry_after() {
        let (d, tat) = gcra(0, 0, 100, 200);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        assert_eq!(d.reset, Duration::from_nanos(100));
        let (d, tat) = gcra(tat.unwrap(), 0, 100, 200);
        assert_eq!(d.remaining, 1);
        let (d, tat) = gcra(tat.unwrap(), 0, 100, 200);
        assert_eq!(d.remaining, 0);
        let (d, none) = gcra(tat.unwrap(), 0, 100, 200);
        assert!(!d.allowed && none.is_none());
        assert_eq!(d.retry_after, Duration::from_nanos(100));
    }

    #[test]
    fn a_refund_gives_back_exactly_one_request() {
        // 10 per second, burst 1: two at once.
        let b = LocalBudgets::new(1000);
        assert!(b.check(b"k", 0, 100 * MS, 100 * MS).allowed);
        assert!(b.check(b"k", 0, 100 * MS, 100 * MS).allowed);
        assert!(!b.check(b"k", 0, 100 * MS, 100 * MS).allowed);
        b.refund(b"k", 100 * MS);
        assert!(b.check(b"k", 0, 100 * MS, 100 * MS).allowed);
        assert!(!b.check(b"k", 0, 100 * MS, 100 * MS).allowed);
        // Unknown keys are ignored.
        b.refund(b"unknown", 100 * MS);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_flood_of_keys_stays_bounded() {
        let b = LocalBudgets::new(1600);
        for i in 0..100_000u32 {
            b.check(&i.to_be_bytes(), 0, 100 * MS, 0);
        }
        assert!(b.len() <= 1600 + SHARDS, "{} keys held", b.len());
        // Once their budgets refill, old keys are forgotten to make room.
        for i in 0..1000u32 {
            b.check(&(i + 1_000_000).to_be_bytes(), 10_000 * MS, 100 * MS, 0);
        }
        assert!(b.len() <= 1600 + SHARDS);
    }
}

/// Requests in flight per client address and route, for routes that cap
/// them (ingress-nginx's `limit-connections`). An entry exists only while
/// a client has requests in flight, so memory follows the number of busy
/// clients, not of clients ever seen.
#[derive(Debug, Default)]
pub(crate) struct InFlightPerClient {
    counts: Mutex<HashMap<(Arc<str>, std::net::IpAddr), u32>>,
}

/// One admitted request; the count goes down when it is dropped (with the
/// response body, so a streaming response counts until it ends).
#[derive(Debug)]
pub(crate) struct ClientSlot {
    owner: Arc<InFlightPerClient>,
    key: (Arc<str>, std::net::IpAddr),
}

impl InFlightPerClient {
    /// Admits a request of `client` on `route` when fewer than `max` of
    /// its requests are in flight there.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        route: &Arc<str>,
        client: std::net::IpAddr,
        max: u32,
    ) -> Option<ClientSlot> {
        let key = (route.clone(), client);
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            owner: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.counts.lock().map_or(0, |c| c.len())
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self
            .owner
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod in_flight_tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

    use super::*;

    #[test]
    fn admits_up_to_the_cap_per_client_and_forgets_idle_clients() {
        let limiter = Arc::new(InFlightPerClient::default());
        let route: Arc<str> = "r".into();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let first = limiter.acquire(&route, a, 2).unwrap();
        let second = limiter.acquire(&route, a, 2).unwrap();
        assert!(
            limiter.acquire(&route, a, 2).is_none(),
            "a third request of a is refused"
        );
        let other = limiter.acquire(&route, b, 2);
        assert!(other.is_some(), "another client has its own count");
        drop(first);
        let third = limiter.acquire(&route, a, 2);
        assert!(third.is_some(), "a finished request frees its slot");
        drop((second, third, other));
        assert_eq!(limiter.tracked(), 0, "no entry is kept for idle clients");
    }
}
