//! Retry budgets and backoff.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use snapshot::RetryPolicy;

use crate::lb::now_ms;

/// Tokens are hundredths of a retry.
const ONE_RETRY: i64 = 100;
/// A new route may retry this many times before any deposits.
const INITIAL: i64 = 10 * ONE_RETRY;
/// Savings are capped so a long quiet period cannot fund a storm.
const CAP: i64 = 100 * ONE_RETRY;

/// Limits retries to a share of requests: every request deposits its
/// budget percentage of a retry, every retry withdraws a whole one. When
/// the balance is empty, one retry per second is still allowed, so a
/// quiet route can recover from a blip.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    balance: AtomicI64,
    last_floor: AtomicU64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            balance: AtomicI64::new(INITIAL),
            last_floor: AtomicU64::new(0),
        }
    }
}

impl RetryBudget {
    /// Credits one request.
    pub(crate) fn deposit(&self, percent: u8) {
        let add = i64::from(percent);
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b + add).min(CAP))
            });
    }

    /// Takes one retry, if the budget allows it.
    pub(crate) fn withdraw(&self) -> bool {
        let taken = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= ONE_RETRY).then_some(b - ONE_RETRY)
            })
            .is_ok();
        if taken {
            return true;
        }
        let now = now_ms();
        let last = self.last_floor.load(Ordering::Relaxed);
        now.saturating_sub(last) >= 1000
            && self
                .last_floor
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The wait before retry number `attempt` (1 for the first retry): a
/// random time up to `min(max, base × 2^(attempt-1))`.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(policy.backoff_max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_a_share_of_requests() {
        let b = RetryBudget::default();
        // The initial allowance.
        let mut granted = 0;
        while b.balance.load(Ordering::Relaxed) >= ONE_RETRY {
            assert!(b.withdraw());
            granted += 1;
        }
        assert_eq!(granted, 10);
        // Then one in five requests at 20%.
        for _ in 0..1000 {
            b.deposit(20);
        }
        let mut more = 0;
        while b.balance.load(Ordering::Relaxed) >= ONE_RETRY && b.withdraw() {
            more += 1;
        }
        assert_eq!(more, 100);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 3,
            on_connect_failure: true,
            on_reset: false,
            on_gateway_error: false,
            per_try_timeout: None,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            budget_percent: 20,
        };
        for _ in 0..100 {
            assert!(backoff(&p, 1) <= Duration::from_millis(10));
            assert!(backoff(&p, 2) <= Duration::from_millis(20));
            assert!(backoff(&p, 10) <= Duration::from_millis(50));
        }
    }
}
