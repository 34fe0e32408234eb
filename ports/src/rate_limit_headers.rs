//! [`rate_limit_headers`]: a [`RateLimitDecision`] as HTTP response headers, for any [`RateLimiter`](crate::RateLimiter)
//! (the tower layer of `cpc-adapters` and hand-written handlers alike).

use std::time::Duration;

use crate::{RateLimitDecision, RateLimitPolicy};

/// The HTTP headers describing `decision` under `policy`, following the IETF draft "RateLimit header fields for
/// HTTP" (draft-ietf-httpapi-ratelimit-headers) in the `limit=..., remaining=..., reset=...` form:
///
/// * `RateLimit-Policy`: `<limit>;w=<seconds>`, the window (sliding window) or the time a bucket takes to refill
///   from empty (token bucket), rounded up;
/// * `RateLimit`: e.g. `limit=100, remaining=37, reset=12`, `reset` being the seconds until the full allowance is
///   back, rounded up;
/// * `Retry-After` (refusals only): the seconds until the same request would be allowed, rounded up (so at least
///   1).
///
/// ```
/// # use std::time::Duration;
/// # use cpc_ports::{RateLimitDecision, RateLimitPolicy};
/// let policy = RateLimitPolicy::sliding_window(100, Duration::from_secs(60));
/// let decision = RateLimitDecision {
///     allowed: false,
///     limit: 100,
///     remaining: 0,
///     retry_after: Some(Duration::from_millis(2500)),
///     reset_after: Duration::from_millis(11_200),
/// };
/// assert_eq!(
///     cpc_ports::rate_limit_headers(&decision, &policy),
///     [
///         ("RateLimit-Policy", "100;w=60".to_owned()),
///         ("RateLimit", "limit=100, remaining=0, reset=12".to_owned()),
///         ("Retry-After", "3".to_owned()),
///     ]
/// );
/// ```
pub fn rate_limit_headers(decision: &RateLimitDecision, policy: &RateLimitPolicy) -> Vec<(&'static str, String)> {
    let window = match *policy {
        RateLimitPolicy::SlidingWindow { window, .. } => ceil_secs(window),
        RateLimitPolicy::TokenBucket { capacity, refill_tokens, refill_interval } => {
            let nanos = refill_interval.as_nanos().saturating_mul(u128::from(capacity));
            let nanos = nanos.div_ceil(u128::from(refill_tokens.max(1)));
            u64::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
        }
    };
    let mut headers = vec![
        ("RateLimit-Policy", format!("{};w={window}", policy.limit())),
        (
            "RateLimit",
            format!(
                "limit={}, remaining={}, reset={}",
                decision.limit,
                decision.remaining,
                ceil_secs(decision.reset_after)
            ),
        ),
    ];
    if let Some(retry) = decision.retry_after.filter(|_| !decision.allowed) {
        headers.push(("Retry-After", ceil_secs(retry).max(1).to_string()));
    }
    headers
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}
