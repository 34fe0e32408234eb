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
/// * [`RateLimitPolicy::TokenBucket`]: a hash `{tokens, ts}` at `<namespace>{rl:<key>}:tb`. A missing bucket is
///   full; tokens are a float refilled continuously (1e-9 token tolerance for rounding). A full bucket is
///   deleted; otherwise the hash expires when it would be full again.
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
                let mut invocation = TOKEN_BUCKET_SCRIPT.key(self.token_bucket_key_name(key));
                invocation.arg(capacity).arg(refill_tokens).arg(micros_text(refill_interval)).arg(cost);
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

/// Microseconds, for the scripts; `Duration`s beyond the scripts' range are clamped by them.
fn micros_text(d: Duration) -> String {
    let nanos = d.as_nanos();
    format!("{}.{:03}", nanos / 1000, nanos % 1000)
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
            assert!(script.contains("redis.call('TIME')"), "the script must read the server's clock:\n{script}");
            assert_eq!(script.matches("local now =").count(), 1, "one notion of now, from TIME:\n{script}");
            assert!(script.contains("local now = tonumber(time[1]) * 1000000 + tonumber(time[2])"));
        }
        // The arguments are the policy, the cost and a nonce: nothing that could carry a client's time.
        assert!(!scripts::TOKEN_BUCKET.contains("ARGV[5]") && !scripts::SLIDING_WINDOW.contains("ARGV[5]"));
    }

    #[test]
    fn every_write_is_followed_by_an_expiry() {
        assert!(scripts::TOKEN_BUCKET.contains("'HSET'") && scripts::TOKEN_BUCKET.contains("'PEXPIRE'"));
        assert!(scripts::SLIDING_WINDOW.contains("'ZADD'") && scripts::SLIDING_WINDOW.contains("'PEXPIRE'"));
    }

    #[test]
    fn micros_keep_sub_microsecond_intervals() {
        assert_eq!(micros_text(Duration::from_secs(1)), "1000000.000");
        assert_eq!(micros_text(Duration::from_nanos(1500)), "1.500");
        assert_eq!(micros_text(Duration::from_nanos(7)), "0.007");
    }
}
