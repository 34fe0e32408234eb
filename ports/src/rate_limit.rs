//! The [`RateLimiter`] port: token buckets and sliding windows over shared state.

use std::time::Duration;

use async_trait::async_trait;
use cpc_domain::ValidationError;

use crate::{KvError, RateLimitKey};

pub mod math;

/// How much traffic a key may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitPolicy {
    /// A bucket of `capacity` tokens, refilled continuously by `refill_tokens` every `refill_interval`. Allows
    /// bursts up to `capacity`, then a steady rate.
    TokenBucket {
        /// The most tokens the bucket holds (and the largest burst).
        capacity: u64,
        /// Tokens added per interval.
        refill_tokens: u64,
        /// The interval.
        refill_interval: Duration,
    },
    /// At most `limit` units in any window of length `window` ending now (an exact sliding log: the store keeps
    /// one entry per unit spent in the window, so `limit` is at most [`RateLimitPolicy::MAX_SLIDING_WINDOW_LIMIT`];
    /// use a token bucket for larger allowances).
    SlidingWindow {
        /// Units allowed per window, 1 to [`RateLimitPolicy::MAX_SLIDING_WINDOW_LIMIT`].
        limit: u64,
        /// The window length.
        window: Duration,
    },
}

impl RateLimitPolicy {
    /// The largest sliding-window `limit` (and so the largest cost of one check): each unit spent is one entry
    /// of the key's log (about 50 bytes on Redis), so a window holds at most this many.
    pub const MAX_SLIDING_WINDOW_LIMIT: u64 = 100_000;

    /// A token bucket of `capacity` refilled at `per_second` tokens per second.
    pub const fn token_bucket(capacity: u64, per_second: u64) -> Self {
        Self::TokenBucket { capacity, refill_tokens: per_second, refill_interval: Duration::from_secs(1) }
    }

    /// At most `limit` units per sliding `window`.
    pub const fn sliding_window(limit: u64, window: Duration) -> Self {
        Self::SlidingWindow { limit, window }
    }

    /// The most a key can spend at once: the bucket capacity or the window limit.
    pub const fn limit(&self) -> u64 {
        match self {
            Self::TokenBucket { capacity, .. } => *capacity,
            Self::SlidingWindow { limit, .. } => *limit,
        }
    }

    /// Checks the policy and a `cost` against it; errors name the field.
    pub fn validate(&self, cost: u64) -> Result<(), ValidationError> {
        match *self {
            Self::TokenBucket { capacity, refill_tokens, refill_interval } => {
                if capacity == 0 {
                    return Err(ValidationError::new("capacity", "must be at least 1"));
                }
                if refill_tokens == 0 {
                    return Err(ValidationError::new("refill_tokens", "must be at least 1"));
                }
                if refill_interval.is_zero() {
                    return Err(ValidationError::new("refill_interval", "must be greater than zero"));
                }
            }
            Self::SlidingWindow { limit, window } => {
                if limit == 0 || limit > Self::MAX_SLIDING_WINDOW_LIMIT {
                    return Err(ValidationError::new(
                        "limit",
                        "must be 1 to 100000 for a sliding window (each unit is one entry of its log); use a token \
                         bucket for larger allowances",
                    ));
                }
                if window < Duration::from_millis(1) {
                    return Err(ValidationError::new("window", "must be at least 1 ms"));
                }
            }
        }
        if cost == 0 || cost > self.limit() {
            return Err(ValidationError::new("cost", "must be between 1 and the policy's limit"));
        }
        Ok(())
    }
}

/// The answer to one [`RateLimiter::check`], with everything the `RateLimit` / `Retry-After` HTTP headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the request may proceed (its cost has been spent if so).
    pub allowed: bool,
    /// The policy's limit (capacity or window limit).
    pub limit: u64,
    /// Units left right after this decision.
    pub remaining: u64,
    /// When refused: how long until the same request would be allowed. `None` when allowed.
    pub retry_after: Option<Duration>,
    /// How long until the key is back to its full allowance if nothing more is spent.
    pub reset_after: Duration,
}

/// A rate limiter over shared state, so every instance of an app counts against the same limits.
///
/// Implementations: Redis (`RedisRateLimiter` in `cpc-adapters`, one Lua script per
/// check), in-process (`cpc-adapters`, feature `memory`; re-exported by `cpc-testkit`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Spends `cost` units of `key`'s allowance under `policy` if it has them.
    ///
    /// MUST refuse an invalid policy or a cost of 0 or above the policy's limit with [`KvError::Validation`].
    /// MUST be exact under concurrency: with N concurrent callers, no more than the limit is ever allowed in a
    /// window (or beyond the bucket's tokens). A refused check MUST NOT spend anything, and MUST carry a
    /// `retry_after` after which the same check is allowed if nobody else spends in the meantime.
    /// Keys MUST be independent, and the two algorithms on one key MUST NOT share state.
    async fn check(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError>;

    /// Forgets everything spent by `key`, under every policy.
    async fn reset(&self, key: &RateLimitKey) -> Result<(), KvError>;
}

/// Shorthands over any [`RateLimiter`]. Blanket-implemented, `dyn RateLimiter` included.
#[async_trait]
pub trait RateLimiterExt: RateLimiter {
    /// The short form: one request against a token bucket of `capacity` refilled at `per_second`.
    async fn check_token_bucket(
        &self,
        key: &RateLimitKey,
        capacity: u64,
        per_second: u64,
    ) -> Result<RateLimitDecision, KvError> {
        self.check(key, &RateLimitPolicy::token_bucket(capacity, per_second), 1).await
    }

    /// One request against a sliding window of `limit` per `window`.
    async fn check_sliding_window(
        &self,
        key: &RateLimitKey,
        limit: u64,
        window: Duration,
    ) -> Result<RateLimitDecision, KvError> {
        self.check(key, &RateLimitPolicy::sliding_window(limit, window), 1).await
    }
}

impl<R: RateLimiter + ?Sized> RateLimiterExt for R {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let field = |p: RateLimitPolicy, cost| p.validate(cost).unwrap_err().field;
        assert_eq!(field(RateLimitPolicy::token_bucket(0, 1), 1), "capacity");
        assert_eq!(field(RateLimitPolicy::token_bucket(5, 0), 1), "refill_tokens");
        assert_eq!(field(RateLimitPolicy::sliding_window(0, Duration::from_secs(1)), 1), "limit");
        assert_eq!(field(RateLimitPolicy::sliding_window(3, Duration::ZERO), 1), "window");
        assert_eq!(field(RateLimitPolicy::sliding_window(3, Duration::from_secs(1)), 4), "cost");
        assert_eq!(field(RateLimitPolicy::sliding_window(3, Duration::from_secs(1)), 0), "cost");
        assert!(RateLimitPolicy::token_bucket(3, 1).validate(3).is_ok());
        let cap = RateLimitPolicy::MAX_SLIDING_WINDOW_LIMIT;
        assert_eq!(field(RateLimitPolicy::sliding_window(cap + 1, Duration::from_secs(1)), 1), "limit");
        assert!(RateLimitPolicy::sliding_window(cap, Duration::from_secs(1)).validate(cap).is_ok());
    }
}
