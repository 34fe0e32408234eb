//! [`RedisRateLimiter`]: the [`RateLimiter`] port on Redis, one atomic Lua script per check.

mod headers;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{KvError, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter};

pub use headers::rate_limit_headers;

use super::RedisManager;
use super::error::classify;
use super::metrics::{Instruments, operations};
use scripts::{SLIDING_WINDOW_SCRIPT, TOKEN_BUCKET_SCRIPT};

operations!(RateLimitOp {
    CheckTokenBucket = "check_token_bucket",
    CheckSlidingWindow = "check_sliding_window",
    Reset = "reset",
});

/// A rate limiter on Redis (the seeds' `RateLimiter`; named `RedisRateLimiter` so it does not clash with the
/// [`RateLimiter`] port it implements). Every instance of an app pointed at one server counts against the same
/// limits.
///
/// Each check is one Lua script, so one round trip, atomic on the server (exact under any concurrency), timed by
/// the server's clock (`TIME`), never a client's:
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
///   member per unit spent (score: server microseconds, member: a random nonce and an index). Memory and time
///   are proportional to the units in the window, so prefer the token bucket for limits in the millions. The set
///   expires when its newest entry leaves the window.
///
/// So every key it writes carries a TTL, state is kept per (key, algorithm), and a later check with other
/// parameters for the same algorithm reuses the state. Both keys of a rate-limit key share the hash tag
/// `{rl:<key>}` (one cluster slot), so [`RateLimiter::reset`] deletes both with one `DEL`.
///
/// [`rate_limit_headers`] renders a decision as `RateLimit-Policy`, `RateLimit` and `Retry-After` headers.
#[derive(Clone)]
pub struct RedisRateLimiter {
    manager: RedisManager,
    metrics: Arc<Instruments<RateLimitOp>>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("namespace", &self.manager.config().namespace).finish()
    }
}

impl RedisRateLimiter {
    /// A limiter over `manager`'s shared connection.
    pub fn new(manager: RedisManager) -> Self {
        Self { manager, metrics: Instruments::new("rate_limit") }
    }

    /// The Redis key holding `key`'s token bucket. For operators and tests.
    pub fn token_bucket_key_name(&self, key: &RateLimitKey) -> String {
        self.manager.key(&format!("{{rl:{}}}:tb", key.as_str()))
    }

    /// The Redis key holding `key`'s sliding window log. For operators and tests.
    pub fn sliding_window_key_name(&self, key: &RateLimitKey) -> String {
        self.manager.key(&format!("{{rl:{}}}:sw", key.as_str()))
    }

    async fn run(&self, invocation: &redis::ScriptInvocation<'_>) -> Result<[i64; 4], KvError> {
        let mut conn = self.manager.connection();
        let reply: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(e, "check rate limit", self.manager.config().response_timeout))?;
        <[i64; 4]>::try_from(reply)
            .map_err(|r| KvError::backend("redis", format!("unexpected reply {r:?} from the rate limit script")))
    }

    /// One decision: validates, runs the policy's script, reads its reply.
    async fn decide(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        policy.validate(cost)?;
        let reply = match *policy {
            RateLimitPolicy::TokenBucket { capacity, refill_tokens, refill_interval } => {
                let gcra = Gcra::new(capacity, refill_tokens, refill_interval, cost);
                let mut invocation = TOKEN_BUCKET_SCRIPT.key(self.token_bucket_key_name(key));
                invocation.arg(gcra.interval.to_string()).arg(gcra.cost.to_string()).arg(gcra.limit.to_string());
                self.run(&invocation).await?
            }
            RateLimitPolicy::SlidingWindow { limit, window } => {
                let window_us = u64::try_from(window.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX);
                let nonce = uuid::Uuid::new_v4().simple().to_string();
                let mut invocation = SLIDING_WINDOW_SCRIPT.key(self.sliding_window_key_name(key));
                invocation.arg(limit).arg(window_us).arg(cost).arg(nonce);
                self.run(&invocation).await?
            }
        };
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
    fn both_scripts_time_with_the_server_clock_only() {
        for script in [scripts::TOKEN_BUCKET, scripts::SLIDING_WINDOW] {
            assert!(
                script.contains("local time = redis.call('TIME')"),
                "the script must read the server's clock:\n{script}"
            );
            assert_eq!(script.matches("local now =").count(), 1, "one notion of now, from TIME:\n{script}");
            assert_eq!(script.matches("redis.call('TIME')").count(), 1, "{script}");
        }
        assert!(scripts::SLIDING_WINDOW.contains("local now = tonumber(time[1]) * 1000000 + tonumber(time[2])"));
        let epoch = scripts::TOKEN_BUCKET_EPOCH_SECS;
        assert!(scripts::TOKEN_BUCKET.contains(&format!("local now = (time[1] - {epoch}) * 1000000 + time[2]")));
        // The arguments are the policy, the cost and a nonce: nothing that could carry a client's time.
        assert!(!scripts::TOKEN_BUCKET.contains("ARGV[4]") && !scripts::SLIDING_WINDOW.contains("ARGV[5]"));
    }

    #[test]
    fn every_write_is_followed_by_an_expiry() {
        // The bucket's only write is one SET with its expiry; a refusal returns before it.
        assert_eq!(scripts::TOKEN_BUCKET.matches("redis.call(").count(), 3, "TIME, GET and SET only");
        assert!(scripts::TOKEN_BUCKET.contains("redis.call('SET', KEYS[1], string.format('%.17g', new), 'PX', "));
        let refusal = scripts::TOKEN_BUCKET.find("if due > limit then").unwrap();
        assert!(scripts::TOKEN_BUCKET[..refusal].matches("redis.call(").count() == 2, "no write before a refusal");
        assert!(scripts::SLIDING_WINDOW.contains("'ZADD'") && scripts::SLIDING_WINDOW.contains("'PEXPIRE'"));
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
