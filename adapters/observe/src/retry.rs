//! [`RetryPolicy`]: retries of retryable errors, with exponential backoff, jitter, and a [`RetryBudget`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use metrics::counter;

use super::{Decorate, Op, PortError};

/// Milli-tokens per token of a [`RetryBudget`].
const MILLI: i64 = 1000;

/// A retry budget shared by every call through one [`RetryPolicy`] (and its clones), as in tower's and
/// finagle's: each call deposits `ratio` of a token, each retry withdraws one, and a retry with no token left is
/// not made. So retries stay at most `ratio` of the calls (plus a `reserve` for quiet periods), and a backend
/// that is down is not hammered by every caller's retries at once. The balance is capped at the reserve plus
/// the deposits of 1000 calls.
#[derive(Debug)]
pub struct RetryBudget {
    balance: AtomicI64,
    deposit: i64,
    max: i64,
}

impl RetryBudget {
    /// A budget allowing retries of `ratio` of the calls (e.g. `0.2`, clamped to `0..=1000`) plus `reserve`
    /// retries to start with.
    pub fn new(ratio: f64, reserve: u32) -> Self {
        // Lossy on purpose: milli-tokens of a ratio in 0..=1000.
        let deposit = (ratio.clamp(0.0, 1000.0) * MILLI as f64).round() as i64;
        let reserve = i64::from(reserve) * MILLI;
        Self { balance: AtomicI64::new(reserve), deposit, max: reserve.saturating_add(deposit.saturating_mul(1000)) }
    }

    /// Whole retries the budget holds now.
    pub fn available(&self) -> u64 {
        u64::try_from(self.balance.load(Ordering::Relaxed) / MILLI).unwrap_or(0)
    }

    fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_add(self.deposit).min(self.max)));
    }

    fn try_withdraw(&self) -> bool {
        self.balance.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| (b >= MILLI).then_some(b - MILLI)).is_ok()
    }
}

impl Default for RetryBudget {
    /// Retries of 20 % of the calls, 10 in reserve.
    fn default() -> Self {
        Self::new(0.2, 10)
    }
}

/// The decorator of [`Retry`](super::Retry): an error whose `is_retryable()` is true (a timeout, an unavailable
/// backend, a concurrent-transaction conflict) is retried, up to `max_attempts` attempts in all, after an
/// exponential backoff with jitter (`base * 2^(n-1)`, capped at `max_backoff`, each wait drawn between half
/// and all of it), while the shared [`RetryBudget`] allows. Anything else is returned at once.
///
/// Only idempotent operations are retried unless [`RetryPolicy::retry_non_idempotent`] says otherwise: a
/// `publish`, a `create`, a rate-limit `check` or a lock `try_acquire` that timed out may have happened, and
/// doing it again would double it. Transactions are not retried statement by statement (the repositories a
/// `begin` hands out are not wrapped): retry the whole unit of work instead.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    max_backoff: Duration,
    non_idempotent: bool,
    budget: Arc<RetryBudget>,
}

impl Default for RetryPolicy {
    /// 3 attempts, backoff from 50 ms up to 2 s, the default budget, idempotent operations only.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            non_idempotent: false,
            budget: Arc::new(RetryBudget::default()),
        }
    }
}

impl RetryPolicy {
    /// At most `attempts` attempts per call, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before the first retry, and the most any backoff may be.
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max_backoff = max.max(base);
        self
    }

    /// Retries non-idempotent operations too (see the type's docs for what that risks).
    #[must_use]
    pub fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.non_idempotent = yes;
        self
    }

    /// Shares `budget` (e.g. one budget for every port talking to one server).
    #[must_use]
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// The budget this policy spends.
    pub fn retry_budget(&self) -> &Arc<RetryBudget> {
        &self.budget
    }

    /// The wait before retry number `retry` (1 for the first), before jitter.
    pub fn backoff_for(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max_backoff)
    }

    /// [`RetryPolicy::backoff_for`] with jitter: a random duration between half of it and all of it.
    fn jittered(&self, retry: u32) -> Duration {
        cpc_ports::jitter::half_to_full(self.backoff_for(retry))
    }
}

impl Decorate for RetryPolicy {
    async fn around<'a, T, E, F, Fut>(&'a self, op: Op, mut call: F) -> Result<T, E>
    where
        T: Send + 'a,
        E: PortError,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        self.budget.deposit();
        let mut attempt = 1;
        loop {
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let may_retry = error.is_retryable() && (op.idempotent || self.non_idempotent);
            if !may_retry || attempt >= self.max_attempts {
                return Err(error);
            }
            if !self.budget.try_withdraw() {
                counter!("cpc_port_retry_budget_exhausted_total", "port" => op.port, "operation" => op.name)
                    .increment(1);
                return Err(error);
            }
            let wait = self.jittered(attempt);
            tracing::debug!(port = op.port, operation = op.name, attempt, error.type = error.kind(), ?wait, "retrying");
            counter!("cpc_port_retries_total", "port" => op.port, "operation" => op.name).increment(1);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_within_half_and_all() {
        let p = RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(70));
        let waits: Vec<_> = (1..=5).map(|n| p.backoff_for(n).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 70, 70]);
        for n in 1..=5 {
            for _ in 0..50 {
                let j = p.jittered(n);
                assert!(j >= p.backoff_for(n) / 2 && j <= p.backoff_for(n), "{j:?} for retry {n}");
            }
        }
        assert_eq!(RetryPolicy::default().backoff_for(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn the_budget_allows_its_reserve_then_a_ratio_of_the_calls() {
        let b = RetryBudget::new(0.5, 2);
        assert!(b.try_withdraw() && b.try_withdraw());
        assert!(!b.try_withdraw(), "the reserve is spent");
        b.deposit();
        assert!(!b.try_withdraw(), "half a token is not a retry");
        b.deposit();
        assert!(b.try_withdraw(), "two calls earn one retry");
        for _ in 0..10_000 {
            b.deposit();
        }
        assert_eq!(b.available(), 2 + 500, "capped at the reserve plus 1000 calls' deposits");
    }
}
