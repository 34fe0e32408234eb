//! [`RedisRateLimiter`]: the [`RateLimiter`] port on Redis, one atomic Lua script per batch of checks.

mod batch;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{KvError, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter};

/// Moved to `cpc_ports` (it serves every [`RateLimiter`]); re-exported here so existing imports keep working.
pub use cpc_ports::rate_limit_headers;

use super::RedisManager;
use super::metrics::{Instruments, operations};
use batch::{Batcher, Check, SharedBatcher};
use scripts::Params;

operations!(RateLimitOp {
    CheckTokenBucket = "check_token_bucket",
    CheckSlidingWindow = "check_sliding_window",
    Reset = "reset",
});

/// A rate limiter on Redis (named `RedisRateLimiter` so it does not clash with the
/// [`RateLimiter`] port it implements). Every instance of an app pointed at one server counts against the same
/// limits.
///
/// Each check runs in a Lua script, one round trip, atomic on the server (exact under any concurrency), timed by
/// the server's clock (`TIME`), never a client's. Checks made at the same moment by concurrent callers share one
/// script call (a batch, answered check by check; a lone check is sent at once): on the server, the call costs more
/// than a check, so batching is what keeps decisions per second close to plain commands under load. A check that
/// fails on the server (its key holds another type) fails alone, not its batch.
///
/// * [`RateLimitPolicy::TokenBucket`]: GCRA (the generic cell rate algorithm, a token bucket kept as one
///   number), a string at `<namespace>{rl:<key>}:tb` holding the bucket's theoretical arrival time: the server
///   time (microseconds since Unix second 1,700,000,000, a decimal that may have a fraction) at which it is full
///   again. A check is `TIME`, `GET` and, only if allowed, one `SET .. PX` that moves that time by `cost` refill
///   intervals and expires the key when the bucket would be full again; a refused check writes nothing. A missing
///   key is a full bucket. The time is a double, stored rounded up (never in the caller's favour) at 1/64 µs
///   resolution until 2028-04, 1/32 µs until 2032-10; to absorb that, a check may be allowed at most
///   `min(1/32 µs, half a token's refill time)` before exact arithmetic would allow it, so a burst never exceeds
///   the capacity. (Above 16 million tokens a second a token refills faster than that resolution, and the
///   rounding may refuse slightly early.)
/// * [`RateLimitPolicy::SlidingWindow`]: an exact sliding log at `<namespace>{rl:<key>}:sw`, a sorted set of one
///   member per unit spent (score: server microseconds, member: a random nonce per batch and the check's index
///   in it, and the unit's index when the cost is above one). Memory and time
///   are proportional to the units in the window, so prefer the token bucket for limits in the millions. The set
///   expires between one and two windows after its newest entry was added (its expiry is renewed to two windows
///   when less than one is left, so a busy key pays for `PEXPIRE` about once a window, not on every check).
///
/// So every key it writes carries a TTL, state is kept per (key, algorithm), and a later check with other
/// parameters for the same algorithm reuses the state. Both keys of a rate-limit key share the hash tag
/// `{rl:<key>}` (one cluster slot), so [`RateLimiter::reset`] deletes both with one `DEL`.
///
/// Under a stuck or overloaded server a check never waits beyond the response timeout
/// (`RedisConfig::response_timeout`, queueing included): it fails with [`KvError::Timeout`], and at most
/// [`RedisRateLimiter::DEFAULT_QUEUE_CAPACITY`] checks ([`RedisRateLimiter::with_queue_capacity`]) wait to be sent; one more fails at
/// once with [`KvError::Unavailable`]. Both are retryable errors, so the tower `RateLimitLayer` answers them with
/// its failure policy (fail open or fail closed). The batching task runs on the tokio runtime of the first check
/// and is started again on the caller's runtime if that one has ended, so a limiter outlives the runtime it was
/// first used on.
///
/// [`rate_limit_headers`] renders a decision as `RateLimit-Policy`, `RateLimit` and `Retry-After` headers.
#[derive(Clone)]
pub struct RedisRateLimiter {
    manager: RedisManager,
    metrics: Arc<Instruments<RateLimitOp>>,
    batcher: SharedBatcher,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("namespace", &self.manager.config().namespace).finish()
    }
}

impl RedisRateLimiter {
    /// How many checks may wait to be sent by default: 4096, about 30 full batches (far more than a server that
    /// keeps up leaves waiting, little memory when it stalls).
    pub const DEFAULT_QUEUE_CAPACITY: usize = batch::DEFAULT_QUEUE_CAPACITY;

    /// A limiter over `manager`'s shared connection, whose queue of checks waiting to be sent holds
    /// [`Self::DEFAULT_QUEUE_CAPACITY`].
    pub fn new(manager: RedisManager) -> Self {
        Self::with_batcher(manager, Batcher::new(Self::DEFAULT_QUEUE_CAPACITY))
    }

    /// The same limiter with a queue of at most `capacity` checks waiting to be sent (at least 1), besides the
    /// batches being sent: a check that finds it full fails at once with [`KvError::Unavailable`]. Starts a queue
    /// of its own, not shared with clones made before.
    #[must_use]
    pub fn with_queue_capacity(self, capacity: usize) -> Self {
        Self::with_batcher(self.manager, Batcher::new(capacity))
    }

    /// How many checks may wait to be sent (see [`RedisRateLimiter::with_queue_capacity`]).
    pub fn queue_capacity(&self) -> usize {
        self.batcher.capacity()
    }

    fn with_batcher(manager: RedisManager, batcher: Batcher) -> Self {
        Self { manager, metrics: Instruments::new("rate_limit"), batcher: SharedBatcher::new(batcher) }
    }

    /// The Redis key holding `key`'s token bucket. For operators and tests.
    pub fn token_bucket_key_name(&self, key: &RateLimitKey) -> String {
        self.manager.key(&format!("{{rl:{}}}:tb", key.as_str()))
    }

    /// The Redis key holding `key`'s sliding window log. For operators and tests.
    pub fn sliding_window_key_name(&self, key: &RateLimitKey) -> String {
        self.manager.key(&format!("{{rl:{}}}:sw", key.as_str()))
    }

    async fn run(&self, check: Check) -> Result<[i64; 4], KvError> {
        self.batcher.run(check, || self.manager.connection(), self.manager.config().response_timeout).await
    }

    /// One decision: validates, runs the policy's script, reads its reply.
    async fn decide(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        policy.validate(cost)?;
        let (key, params) = match *policy {
            RateLimitPolicy::TokenBucket { capacity, refill_tokens, refill_interval } => {
                let Gcra { interval, cost, limit } = Gcra::new(capacity, refill_tokens, refill_interval, cost);
                (self.token_bucket_key_name(key), Params::TokenBucket { interval, cost, limit })
            }
            RateLimitPolicy::SlidingWindow { limit, window } => {
                let window_us = u64::try_from(window.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX);
                (self.sliding_window_key_name(key), Params::SlidingWindow { limit, window_us, cost })
            }
        };
        let reply = self.run(Check { key, params }).await?;
        let [allowed, remaining, retry_us, reset_us] = reply;
        let allowed = allowed == 1;
        let limit = policy.limit();
        Ok(RateLimitDecision {
            allowed,
            limit,
            remaining: u64::try_from(remaining).unwrap_or(0).min(limit),
            retry_after: (!allowed).then(|| from_micros(retry_us).max(Duration::from_micros(1))),
            reset_after: from_micros(reset_us),
        })
    }
}

/// The token bucket's parameters as GCRA times, in microseconds (`f64`: the script's numbers are doubles).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Gcra {
    /// The emission interval T: the time one token takes to refill.
    interval: f64,
    /// `cost * T`: how far a check of `cost` moves the bucket's TAT.
    cost: f64,
    /// `capacity * T` plus a slack of `min(T / 2, 1/32 µs)`: the most the TAT may run ahead of now. The stored
    /// TAT is a double of microseconds with 1/64 µs resolution (rounded up when stored), so without the slack a
    /// check that fills the bucket exactly could be refused by that rounding. The slack is under half a token, so
    /// it never lets a burst exceed the capacity.
    limit: f64,
}

impl Gcra {
    fn new(capacity: u64, refill_tokens: u64, refill_interval: Duration, cost: u64) -> Self {
        // Lossy casts on purpose: the script computes in doubles; relative error ~1e-16.
        let (interval_ns, refill, capacity, cost) =
            (refill_interval.as_nanos() as f64, refill_tokens as f64, capacity as f64, cost as f64);
        let interval = interval_ns / 1000.0 / refill;
        let slack = (interval / 2.0).min(1.0 / 32.0);
        Self { interval, cost: cost * interval, limit: capacity * interval + slack }
    }
}

fn from_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        let op = match policy {
            RateLimitPolicy::TokenBucket { .. } => RateLimitOp::CheckTokenBucket,
            _ => RateLimitOp::CheckSlidingWindow,
        };
        self.metrics.run(op, self.decide(key, policy, cost)).await
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<(), KvError> {
        self.metrics
            .run(RateLimitOp::Reset, async {
                let mut del = redis::cmd("DEL");
                del.arg(self.token_bucket_key_name(key)).arg(self.sliding_window_key_name(key));
                let _: i64 = self.manager.query(&del, "reset rate limit").await?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_time_with_the_server_clock_only() {
        let script = [scripts::TOKEN_BUCKET, scripts::SLIDING_WINDOW, scripts::BATCH].concat();
        // One clock read per batch, in the prelude; the checks derive their notion of now from it alone.
        assert!(!script.contains("'TIME'"), "the checks must not read the clock again:\n{script}");
        let epoch = scripts::TOKEN_BUCKET_EPOCH_SECS;
        assert!(scripts::BATCH.contains(&format!("local tnow = (sec - {epoch}) * 1000000 + usec")));
        assert!(scripts::BATCH.contains("local snow = sec * 1000000 + usec"));
        assert!(scripts::BATCH.contains("pcall(token_bucket, KEYS[k], p1, p2, p3, tnow)"));
        assert!(scripts::BATCH.contains("pcall(sliding_window, KEYS[k], p1, p2, p3, snow, score, cutoff, ttl, keep, "));
        // The arguments are a nonce and, per group, the kind, the policy with the cost, and the group's size:
        // nothing that could carry a client's time.
        assert_eq!(scripts::BATCH.matches("ARGV[").count(), 6, "the nonce, then five per group");
    }

    #[test]
    fn every_write_is_followed_by_an_expiry() {
        // The bucket's only write is one SET with its expiry; a refusal returns before it.
        assert_eq!(scripts::TOKEN_BUCKET.matches("call(").count(), 2, "GET and SET only");
        assert!(scripts::TOKEN_BUCKET.contains("call('SET', key, new, 'PX', "));
        let refusal = scripts::TOKEN_BUCKET.find("if due > limit then").unwrap();
        assert!(scripts::TOKEN_BUCKET[..refusal].matches("call(").count() == 1, "no write before a refusal");
        let zadd = scripts::SLIDING_WINDOW.find("'ZADD'").unwrap();
        let renewal = "if call('PTTL', key) < ttl then call('PEXPIRE', key, keep) end";
        assert!(scripts::SLIDING_WINDOW[zadd..].contains(renewal), "the log outlives every addition");
    }

    #[test]
    fn gcra_times_are_microseconds_per_token() {
        let g = Gcra::new(10, 1, Duration::from_secs(2), 4);
        assert_eq!((g.interval, g.cost, g.limit), (2e6, 8e6, 2e7 + 1.0 / 32.0));
        // 3 per 2 s: T = 666,666.67 µs; the slack stays 1/32 µs, far below half a token.
        let g = Gcra::new(10, 3, Duration::from_secs(2), 10);
        assert!((g.interval - 2e6 / 3.0).abs() < 1e-9 && g.limit - g.cost == 1.0 / 32.0, "{g:?}");
        // A billion per second: T = 1 ns, so the slack is half a token, never a whole one.
        let g = Gcra::new(5, 1_000_000_000, Duration::from_secs(1), 1);
        assert_eq!((g.interval, g.limit), (1e-3, 5e-3 + 5e-4));
        // Values a double carries only approximately still format so that Lua's tonumber reads them back.
        let g = Gcra::new(u64::MAX, 1, Duration::MAX, u64::MAX);
        assert!(g.limit.is_finite() && g.cost.to_string().parse::<f64>().unwrap() == g.cost, "{g:?}");
    }
}
