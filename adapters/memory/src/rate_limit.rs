//! [`InMemoryRateLimiter`]: the [`RateLimiter`] port in process memory, exact token buckets and sliding logs.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{KvError, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter};
use tokio::time::Instant;

/// The fewest checks between two sweeps of idle state.
const SWEEP_MIN_CHECKS: usize = 128;
const NANOS_PER_SEC: u128 = 1_000_000_000;

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

/// A token bucket. One token is `unit` units; `level` units are in it; it gains `refill` units per nanosecond.
struct Bucket {
    level: u128,
    unit: u128,
    capacity: u128,
    refill: u128,
    updated_at: Instant,
}

impl Bucket {
    fn new(capacity: u64, refill_tokens: u64, refill_interval: Duration, now: Instant) -> Self {
        let unit = refill_interval.as_nanos().max(1);
        let capacity = u128::from(capacity);
        Self {
            level: capacity.saturating_mul(unit),
            unit,
            capacity,
            refill: u128::from(refill_tokens),
            updated_at: now,
        }
    }

    fn is_idle(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level >= self.full()
    }

    fn full(&self) -> u128 {
        self.capacity.saturating_mul(self.unit)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated_at).as_nanos();
        self.level = self.level.saturating_add(elapsed.saturating_mul(self.refill)).min(self.full());
        self.updated_at = now;
    }

    /// Adopts the parameters of `policy`, keeping the fill ratio if the token size changed.
    fn configure(&mut self, capacity: u64, refill_tokens: u64, refill_interval: Duration) {
        let unit = refill_interval.as_nanos().max(1);
        if unit != self.unit {
            self.level = self.level.saturating_mul(unit) / self.unit.max(1);
            self.unit = unit;
        }
        self.capacity = u128::from(capacity);
        self.refill = u128::from(refill_tokens);
        self.level = self.level.min(self.full());
    }

    /// Nanoseconds until the bucket holds `target` units.
    fn time_to(&self, target: u128) -> Duration {
        let missing = target.saturating_sub(self.level);
        nanos(missing.div_ceil(self.refill.max(1)))
    }

    fn check(&mut self, cost: u64, now: Instant) -> RateLimitDecision {
        self.refill(now);
        let needed = u128::from(cost).saturating_mul(self.unit);
        let allowed = self.level >= needed;
        if allowed {
            self.level -= needed;
        }
        RateLimitDecision {
            allowed,
            limit: u64::try_from(self.capacity).unwrap_or(u64::MAX),
            remaining: u64::try_from(self.level / self.unit).unwrap_or(u64::MAX),
            retry_after: (!allowed).then(|| self.time_to(needed)),
            reset_after: self.time_to(self.full()),
        }
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
        // Sums in u128: a u64 total plus a u64 cost cannot overflow it.
        let after = u128::from(self.total) + u128::from(cost);
        let allowed = after <= u128::from(limit);
        let mut retry_after = None;
        if allowed {
            self.spent.push_back((now, cost));
            self.total += cost;
        } else {
            // The check fits once enough of the oldest spends have left the window.
            let must_free = after - u128::from(limit);
            let mut freed = 0_u128;
            for &(at, spent) in &self.spent {
                freed += u128::from(spent);
                if freed >= must_free {
                    retry_after = Some(self.until(at, now));
                    break;
                }
            }
        }
        RateLimitDecision {
            allowed,
            limit,
            remaining: limit.saturating_sub(self.total),
            retry_after,
            reset_after: self.spent.back().map_or(Duration::ZERO, |&(at, _)| self.until(at, now)),
        }
    }
}

fn nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits and cannot carry into the seconds.
    let sub = u32::try_from(n % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
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
