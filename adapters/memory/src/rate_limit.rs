//! [`InMemoryRateLimiter`]: the [`RateLimiter`] port in process memory, exact token buckets and sliding logs.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::rate_limit::math::{TokenBucket, sliding_window};
use cpc_ports::{KvError, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter};
use tokio::time::Instant;

/// The fewest checks between two sweeps of idle state.
const SWEEP_MIN_CHECKS: usize = 128;

/// A [`RateLimiter`] in process memory, exact and on tokio's clock (so tests can `tokio::time::pause()` and
/// `advance()` through refills and windows).
///
/// * Token bucket: starts full, refills continuously, in integer arithmetic (a token is split into
///   `refill_interval` nanoseconds' worth of units), so no allowance is lost or made up by rounding.
/// * Sliding window: an exact log of what was spent when; a unit counts while `now - spent_at < window`.
///
/// Every check runs under one mutex, so concurrent callers never get more than the limit. A refused check spends
/// nothing, and its `retry_after` is the exact time after which the same check is allowed if nobody else
/// spends. State is kept per key and algorithm, so the two algorithms on one key are independent; a later check
/// with other parameters for the same algorithm reuses the state (as a Redis script keyed the same way would).
/// Idle state (a full bucket, an empty log) is dropped by a sweep after every `max(128, stored states)` checks.
pub struct InMemoryRateLimiter {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    logs: HashMap<String, Log>,
    checks_since_sweep: usize,
    stored_after_sweep: usize,
}

impl State {
    fn len(&self) -> usize {
        self.buckets.len() + self.logs.len()
    }

    fn sweep_if_due(&mut self, now: Instant) {
        self.checks_since_sweep += 1;
        if self.checks_since_sweep >= self.stored_after_sweep.max(SWEEP_MIN_CHECKS) {
            self.buckets.retain(|_, b| !b.is_idle(now));
            self.logs.retain(|_, l| !l.is_idle(now));
            self.checks_since_sweep = 0;
            self.stored_after_sweep = self.len();
        }
    }
}

/// A token bucket ([`TokenBucket`]) and when it was last refilled.
struct Bucket {
    tokens: TokenBucket,
    updated_at: Instant,
}

impl Bucket {
    fn new(capacity: u64, refill_tokens: u64, refill_interval: Duration, now: Instant) -> Self {
        Self { tokens: TokenBucket::full(capacity, refill_tokens, refill_interval), updated_at: now }
    }

    fn is_idle(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens.is_full()
    }

    fn refill(&mut self, now: Instant) {
        self.tokens.refill(now.saturating_duration_since(self.updated_at).as_nanos());
        self.updated_at = now;
    }

    /// Adopts the parameters of `policy`, keeping the fill ratio if the token size changed.
    fn configure(&mut self, capacity: u64, refill_tokens: u64, refill_interval: Duration) {
        self.tokens.configure(capacity, refill_tokens, refill_interval);
    }

    fn check(&mut self, cost: u64, now: Instant) -> RateLimitDecision {
        self.refill(now);
        self.tokens.check(cost)
    }
}

/// A sliding log: when each spend happened and how much it was, oldest first.
struct Log {
    spent: VecDeque<(Instant, u64)>,
    total: u64,
    window: Duration,
}

impl Log {
    fn new(window: Duration) -> Self {
        Self { spent: VecDeque::new(), total: 0, window }
    }

    /// When a spend made at `at` stops counting (`None`: beyond the clock's range, never).
    fn ends(&self, at: Instant) -> Option<Instant> {
        at.checked_add(self.window)
    }

    fn is_idle(&mut self, now: Instant) -> bool {
        self.prune(now);
        self.spent.is_empty()
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, cost)) = self.spent.front() {
            if self.ends(at).is_some_and(|end| end <= now) {
                self.spent.pop_front();
                self.total -= cost;
            } else {
                break;
            }
        }
    }

    fn until(&self, at: Instant, now: Instant) -> Duration {
        self.ends(at).map_or(Duration::MAX, |end| end.saturating_duration_since(now))
    }

    fn check(&mut self, limit: u64, cost: u64, now: Instant) -> RateLimitDecision {
        self.prune(now);
        let spent = self.spent.iter().map(|&(at, spent)| (spent, self.until(at, now)));
        let decision = sliding_window(limit, cost, spent, self.until(now, now));
        if decision.allowed {
            self.spent.push_back((now, cost));
            self.total += cost;
        }
        decision
    }
}

impl InMemoryRateLimiter {
    /// A limiter with nothing spent.
    pub fn new() -> Self {
        Self { state: Mutex::new(State::default()) }
    }

    /// Test aid: how many (key, algorithm) states are stored, counting idle ones not yet purged. Lets a test show
    /// that idle keys do not pile up.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Test aid: whether no state is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for InMemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRateLimiter").field("stored_states", &self.len()).finish()
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn check(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        policy.validate(cost)?;
        let now = Instant::now();
        let mut state = self.lock();
        let decision = match *policy {
            RateLimitPolicy::TokenBucket { capacity, refill_tokens, refill_interval } => {
                let bucket = state
                    .buckets
                    .entry(key.as_str().to_owned())
                    .or_insert_with(|| Bucket::new(capacity, refill_tokens, refill_interval, now));
                bucket.refill(now);
                bucket.configure(capacity, refill_tokens, refill_interval);
                bucket.check(cost, now)
            }
            RateLimitPolicy::SlidingWindow { limit, window } => {
                let log = state.logs.entry(key.as_str().to_owned()).or_insert_with(|| Log::new(window));
                log.window = window;
                log.check(limit, cost, now)
            }
        };
        state.sweep_if_due(now);
        Ok(decision)
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<(), KvError> {
        let mut state = self.lock();
        state.buckets.remove(key.as_str());
        state.logs.remove(key.as_str());
        Ok(())
    }
}
