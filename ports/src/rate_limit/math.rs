//! The exact arithmetic of the two [`RateLimitPolicy`](super::RateLimitPolicy) algorithms, without a clock or
//! storage: the building block of the [`RateLimiter`](super::RateLimiter) implementations that decide in
//! process (in memory, or on a row read from SQLite), public so that another implementation decides the same way.
//!
//! * [`TokenBucket`]: integer arithmetic in which a token is split into `refill_interval` nanoseconds' worth of
//!   units, so no allowance is lost or made up by rounding.
//! * [`sliding_window`]: the decision over an exact log of what is still spent in the window.
//!
//! ```
//! use std::time::Duration;
//! use cpc_ports::rate_limit::math::TokenBucket;
//!
//! let mut bucket = TokenBucket::full(2, 1, Duration::from_secs(1));
//! assert!(bucket.check(2).allowed);
//! let refused = bucket.check(1);
//! assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
//! bucket.refill(Duration::from_millis(500).as_nanos());
//! assert_eq!(bucket.check(1).retry_after, Some(Duration::from_millis(500)));
//! ```

use std::time::Duration;

use super::RateLimitDecision;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `n` nanoseconds as a [`Duration`], saturating at [`Duration::MAX`]'s whole seconds.
pub fn nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits and cannot carry into the seconds.
    let sub = u32::try_from(n % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
}

/// A token bucket: `level` units in it, one token is `unit` units, `refill` units added per nanosecond, at most
/// `capacity` tokens. The caller keeps the time of the last refill and stores the fields as it likes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Units in the bucket.
    pub level: u128,
    /// Units per token: the refill interval in nanoseconds (at least 1).
    pub unit: u128,
    /// The most tokens the bucket holds.
    pub capacity: u128,
    /// Tokens added per refill interval, which is units added per nanosecond.
    pub refill: u128,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens, refilled by `refill_tokens` every `refill_interval`.
    pub fn full(capacity: u64, refill_tokens: u64, refill_interval: Duration) -> Self {
        let unit = refill_interval.as_nanos().max(1);
        let capacity = u128::from(capacity);
        Self { level: capacity.saturating_mul(unit), unit, capacity, refill: u128::from(refill_tokens) }
    }

    /// The level of a full bucket.
    pub fn full_level(&self) -> u128 {
        self.capacity.saturating_mul(self.unit)
    }

    /// Whether the bucket is full, so its state can be forgotten.
    pub fn is_full(&self) -> bool {
        self.level >= self.full_level()
    }

    /// Adds what `elapsed_nanos` nanoseconds refill, up to a full bucket.
    pub fn refill(&mut self, elapsed_nanos: u128) {
        self.level = self.level.saturating_add(elapsed_nanos.saturating_mul(self.refill)).min(self.full_level());
    }

    /// Adopts the parameters of a policy (a later check with other parameters reuses the state), keeping the
    /// fill ratio if the token size changed.
    pub fn configure(&mut self, capacity: u64, refill_tokens: u64, refill_interval: Duration) {
        let unit = refill_interval.as_nanos().max(1);
        if unit != self.unit {
            self.level = self.level.saturating_mul(unit) / self.unit.max(1);
            self.unit = unit;
        }
        self.capacity = u128::from(capacity);
        self.refill = u128::from(refill_tokens);
        self.level = self.level.min(self.full_level());
    }

    /// How long until the bucket holds `target` units.
    pub fn time_to(&self, target: u128) -> Duration {
        nanos(target.saturating_sub(self.level).div_ceil(self.refill.max(1)))
    }

    /// Spends `cost` tokens if the bucket holds them (refill it first); a refused check spends nothing and its
    /// `retry_after` is the exact time until it would be allowed.
    pub fn check(&mut self, cost: u64) -> RateLimitDecision {
        let needed = u128::from(cost).saturating_mul(self.unit);
        let allowed = self.level >= needed;
        if allowed {
            self.level -= needed;
        }
        RateLimitDecision {
            allowed,
            limit: u64::try_from(self.capacity).unwrap_or(u64::MAX),
            remaining: u64::try_from(self.level / self.unit.max(1)).unwrap_or(u64::MAX),
            retry_after: (!allowed).then(|| self.time_to(needed)),
            reset_after: self.time_to(self.full_level()),
        }
    }
}

/// Decides a sliding-window check of `cost` against `limit`, given what is still spent in the window, oldest
/// first: each spend's cost and how long until it leaves the window. `fresh` is how long a spend made now counts
/// (the window, as the caller's clock measures it). Records nothing: when the check is allowed, the caller
/// appends a spend of `cost` made now. A refused check's `retry_after` is the exact time until enough of the
/// oldest spends have left the window.
pub fn sliding_window<I>(limit: u64, cost: u64, spent: I, fresh: Duration) -> RateLimitDecision
where
    I: IntoIterator<Item = (u64, Duration)>,
    I::IntoIter: Clone,
{
    let spent = spent.into_iter();
    // Sums in u128: u64 costs cannot overflow it.
    let total: u128 = spent.clone().map(|(c, _)| u128::from(c)).sum();
    let after = total + u128::from(cost);
    let allowed = after <= u128::from(limit);
    let mut retry_after = None;
    let mut newest = None;
    if !allowed {
        let must_free = after - u128::from(limit);
        let mut freed = 0_u128;
        for (c, until) in spent.clone() {
            freed += u128::from(c);
            if freed >= must_free {
                retry_after = Some(until);
                break;
            }
        }
        newest = spent.last().map(|(_, until)| until);
    }
    let total_now = if allowed { after } else { total };
    RateLimitDecision {
        allowed,
        limit,
        remaining: u64::try_from(u128::from(limit).saturating_sub(total_now)).unwrap_or(0),
        retry_after,
        reset_after: if allowed { fresh } else { newest.unwrap_or(Duration::ZERO) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_splits_and_saturates() {
        assert_eq!(nanos(1_500_000_000), Duration::from_millis(1500));
        assert_eq!(nanos(u128::MAX).as_secs(), u64::MAX);
    }

    #[test]
    fn a_bucket_refills_exactly_and_keeps_its_ratio_when_the_interval_changes() {
        let mut bucket = TokenBucket::full(3, 1, Duration::from_millis(300));
        assert_eq!(bucket.check(3).remaining, 0);
        bucket.refill(Duration::from_millis(100).as_nanos());
        let refused = bucket.check(1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(200)));
        assert_eq!(refused.reset_after, Duration::from_millis(800));
        bucket.configure(3, 1, Duration::from_millis(600));
        assert_eq!(bucket.level * 3, bucket.full_level() / 3, "a third of a token, in the new unit");
        bucket.refill(u128::MAX);
        assert!(bucket.is_full());
        assert_eq!(bucket.check(1).remaining, 2);
    }

    #[test]
    fn a_window_refuses_past_the_limit_until_the_oldest_spends_leave() {
        let s = |ms| Duration::from_millis(ms);
        let spent = [(2, s(100)), (2, s(400)), (1, s(900))];
        let refused = sliding_window(5, 2, spent, s(1000));
        assert!(!refused.allowed);
        assert_eq!((refused.remaining, refused.retry_after, refused.reset_after), (0, Some(s(100)), s(900)));
        let refused = sliding_window(5, 4, spent, s(1000));
        assert_eq!(refused.retry_after, Some(s(400)), "two spends must leave");
        let allowed = sliding_window(6, 1, spent, s(1000));
        assert!(allowed.allowed);
        assert_eq!((allowed.remaining, allowed.retry_after, allowed.reset_after), (0, None, s(1000)));
        let empty = sliding_window(5, 6, [], s(1000));
        assert_eq!((empty.allowed, empty.retry_after, empty.reset_after), (false, None, Duration::ZERO));
    }
}
