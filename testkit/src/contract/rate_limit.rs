//! The [`RateLimiter`] contract: every implementation (Redis, in-memory, `dyn RateLimiter` of either) must pass
//! these cases.
//!
//! Run them all with [`rate_limit_contract!`](crate::rate_limit_contract):
//!
//! ```
//! mod memory_rate_limit {
//!     cpc_testkit::rate_limit_contract!(async {
//!         std::sync::Arc::new(cpc_testkit::memory::InMemoryRateLimiter::new())
//!     });
//! }
//! # fn main() {}
//! ```
//!
//! Each case uses keys under its own random namespace and real (short) sleeps for refills and windows, so it
//! runs unchanged against a shared real server.

use std::time::Duration;

use cpc_ports::{KvError, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter, RateLimiterExt};
use tokio::time::{Instant, sleep};

use super::concurrently;

/// Runs every case of the [`RateLimiter`] contract as a `#[tokio::test]`. `$factory` is an async expression
/// yielding a fresh limiter behind anything that derefs to it (`Arc<InMemoryRateLimiter>`,
/// `Arc<dyn RateLimiter>`).
/// `rate_limit_contract!(factory, inline)` expands instead to a block that runs every case in turn, inside a test of
/// the caller's (for a server costly to start, such as a Redis Cluster, that the factory may then borrow).
#[macro_export]
macro_rules! rate_limit_contract {
    ($factory:expr $(, $mode:ident)?) => {
        $crate::__contract_cases!(
            $crate::contract::rate_limit,
            $factory,
            [
                token_bucket_allows_exactly_capacity_in_a_burst,
                token_bucket_refills_over_time_up_to_capacity,
                sliding_window_allows_exactly_limit_per_window,
                sliding_window_counts_each_spend_for_one_window_after_it,
                concurrent_checks_allow_exactly_the_limit_for_both_algorithms,
                refused_check_spends_nothing,
                retry_after_is_honoured_by_the_token_bucket,
                retry_after_is_honoured_by_the_sliding_window,
                cost_above_one_counts_as_that_many_units,
                invalid_policy_or_cost_is_refused,
                keys_are_independent,
                algorithms_on_one_key_do_not_share_state,
                reset_clears_every_policy_of_the_key_only,
                decision_fields_describe_the_allowance,
            ] $(, $mode)?
        );
    };
}

/// A bucket of `capacity` that gains one token a minute: no refill to speak of during a case.
const fn slow_bucket(capacity: u64) -> RateLimitPolicy {
    RateLimitPolicy::TokenBucket { capacity, refill_tokens: 1, refill_interval: Duration::from_secs(60) }
}

/// `limit` per minute: nothing leaves the window during a case.
const fn slow_window(limit: u64) -> RateLimitPolicy {
    RateLimitPolicy::SlidingWindow { limit, window: Duration::from_secs(60) }
}

/// A key no other case or run shares: `cpc-contract:<case>:<random>:<suffix>`.
fn rl_key(case: &str, suffix: &str) -> RateLimitKey {
    let text = format!("cpc-contract:{case}:{}:{suffix}", uuid::Uuid::new_v4().simple());
    RateLimitKey::new(text.clone()).unwrap_or_else(|e| panic!("test key {text:?} should be valid: {e}"))
}

async fn check<P: RateLimiter + ?Sized>(port: &P, key: &RateLimitKey, policy: RateLimitPolicy, cost: u64) -> bool {
    port.check(key, &policy, cost).await.unwrap().allowed
}

/// Spends `policy.limit()` units one by one, asserting each is allowed.
async fn exhaust<P: RateLimiter + ?Sized>(port: &P, key: &RateLimitKey, policy: RateLimitPolicy) {
    for i in 0..policy.limit() {
        assert!(check(port, key, policy, 1).await, "unit {i} of {policy:?} on {key} must be allowed");
    }
    assert!(!check(port, key, policy, 1).await, "{policy:?} on {key} must be exhausted");
}

fn retry_after(d: &RateLimitDecision) -> Duration {
    assert!(!d.allowed, "expected a refusal, got {d:?}");
    d.retry_after.unwrap_or_else(|| panic!("a refused decision must carry retry_after: {d:?}"))
}

/// A full bucket allows exactly `capacity` single requests at once, then refuses.
pub async fn token_bucket_allows_exactly_capacity_in_a_burst<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("token_bucket_allows_exactly_capacity_in_a_burst", "k");
    let policy = slow_bucket(5);
    for i in 0..5 {
        let d = port.check(&key, &policy, 1).await.unwrap();
        assert!(d.allowed, "request {i} of a burst of capacity 5 must be allowed: {d:?}");
        assert_eq!(d.remaining, 4 - i, "remaining after request {i}");
    }
    for _ in 0..3 {
        let d = port.check(&key, &policy, 1).await.unwrap();
        assert!(!d.allowed, "requests beyond the capacity must be refused: {d:?}");
        assert_eq!(d.remaining, 0);
    }
    assert!(port.check_token_bucket(&rl_key("token_bucket_allows", "seeds"), 1, 1).await.unwrap().allowed);
}

/// An empty bucket refills continuously at its rate, and never beyond its capacity.
pub async fn token_bucket_refills_over_time_up_to_capacity<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("token_bucket_refills_over_time_up_to_capacity", "k");
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 2, refill_tokens: 1, refill_interval: Duration::from_millis(200) };
    exhaust(port, &key, policy).await;
    sleep(Duration::from_millis(250)).await;
    assert!(check(port, &key, policy, 1).await, "one token must have refilled after 250 ms at 1 per 200 ms");
    assert!(!check(port, &key, policy, 1).await, "only one token must have refilled");
    sleep(Duration::from_millis(650)).await;
    assert!(check(port, &key, policy, 1).await, "a refilled bucket allows");
    assert!(check(port, &key, policy, 1).await, "a refilled bucket allows up to its capacity");
    assert!(!check(port, &key, policy, 1).await, "a bucket never holds more than its capacity");
}

/// A sliding window allows exactly `limit` units per window, and the full limit again once the window passed.
pub async fn sliding_window_allows_exactly_limit_per_window<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("sliding_window_allows_exactly_limit_per_window", "k");
    let policy = RateLimitPolicy::sliding_window(3, Duration::from_millis(300));
    for round in 0..2 {
        for i in 0..3 {
            let d = port.check(&key, &policy, 1).await.unwrap();
            assert!(d.allowed, "round {round}: unit {i} of 3 must be allowed: {d:?}");
            assert_eq!(d.remaining, 2 - i, "round {round}: remaining after unit {i}");
        }
        assert!(!check(port, &key, policy, 1).await, "round {round}: the 4th unit in a window must be refused");
        sleep(Duration::from_millis(350)).await;
    }
    assert!(port.check_sliding_window(&key, 3, Duration::from_millis(300)).await.unwrap().allowed);
}

/// Each spend counts for exactly one window after it was made (a sliding log, not fixed buckets).
pub async fn sliding_window_counts_each_spend_for_one_window_after_it<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("sliding_window_counts_each_spend_for_one_window_after_it", "k");
    let policy = RateLimitPolicy::sliding_window(3, Duration::from_millis(500));
    assert!(check(port, &key, policy, 2).await, "t=0: 2 units allowed");
    sleep(Duration::from_millis(300)).await;
    assert!(check(port, &key, policy, 1).await, "t=300ms: the third unit allowed");
    assert!(!check(port, &key, policy, 1).await, "t=300ms: the window is full");
    sleep(Duration::from_millis(300)).await;
    // t=600ms: the 2 units of t=0 left the window, the one of t=300ms still counts until t=800ms.
    assert!(check(port, &key, policy, 2).await, "t=600ms: the units of t=0 must have left the window");
    assert!(!check(port, &key, policy, 1).await, "t=600ms: the unit of t=300ms must still count");
}

/// 64 concurrent single-unit checks on one key with a limit of 10: exactly 10 are allowed, under either
/// algorithm.
pub async fn concurrent_checks_allow_exactly_the_limit_for_both_algorithms<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("concurrent_checks_allow_exactly_the_limit_for_both_algorithms", "k");
    for policy in [slow_bucket(10), slow_window(10)] {
        let key = &key;
        let results = concurrently(64, |_| async move { port.check(key, &policy, 1).await.unwrap() }).await;
        let allowed = results.iter().filter(|d| d.allowed).count();
        assert_eq!(allowed, 10, "{policy:?}: of 64 concurrent checks exactly the limit of 10 must be allowed");
        let refused_with_retry = results.iter().filter(|d| !d.allowed && d.retry_after.is_some()).count();
        assert_eq!(refused_with_retry, 54, "{policy:?}: every refusal carries retry_after");
        let mut remaining: Vec<u64> = results.iter().filter(|d| d.allowed).map(|d| d.remaining).collect();
        remaining.sort_unstable();
        assert_eq!(remaining, (0..10).collect::<Vec<_>>(), "{policy:?}: each allowed check saw its own remaining");
    }
}

/// A refused check spends nothing: a smaller request that fits is still allowed after many refusals.
pub async fn refused_check_spends_nothing<P: RateLimiter + ?Sized>(port: &P) {
    for policy in [slow_bucket(3), slow_window(3)] {
        let key = rl_key("refused_check_spends_nothing", "k");
        assert!(check(port, &key, policy, 2).await, "{policy:?}: 2 of 3 allowed");
        for _ in 0..5 {
            let d = port.check(&key, &policy, 2).await.unwrap();
            assert!(!d.allowed, "{policy:?}: 2 more do not fit in 1");
            assert_eq!(d.remaining, 1, "{policy:?}: a refusal must leave the remaining unit");
        }
        let d = port.check(&key, &policy, 1).await.unwrap();
        assert!(d.allowed, "{policy:?}: the unit left must still be there after refusals: {d:?}");
        assert_eq!(d.remaining, 0);
    }
}

/// After sleeping a token bucket refusal's `retry_after`, the same check is allowed.
pub async fn retry_after_is_honoured_by_the_token_bucket<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("retry_after_is_honoured_by_the_token_bucket", "k");
    let interval = Duration::from_millis(300);
    let policy = RateLimitPolicy::TokenBucket { capacity: 2, refill_tokens: 1, refill_interval: interval };
    exhaust(port, &key, policy).await;
    let wait = retry_after(&port.check(&key, &policy, 1).await.unwrap());
    assert!(wait > Duration::ZERO && wait <= interval, "one token comes within one interval, got {wait:?}");
    sleep(wait).await;
    assert!(check(port, &key, policy, 1).await, "the check must be allowed after retry_after ({wait:?})");
    let wait2 = retry_after(&port.check(&key, &policy, 2).await.unwrap());
    assert!(wait2 > interval && wait2 <= interval * 2, "two tokens take more than one interval, got {wait2:?}");
    sleep(wait2).await;
    assert!(check(port, &key, policy, 2).await, "a cost-2 check must be allowed after its retry_after ({wait2:?})");
}

/// After sleeping a sliding window refusal's `retry_after`, the same check is allowed; it points at the moment
/// the oldest spend leaves the window.
pub async fn retry_after_is_honoured_by_the_sliding_window<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("retry_after_is_honoured_by_the_sliding_window", "k");
    let window = Duration::from_millis(400);
    let policy = RateLimitPolicy::sliding_window(2, window);
    let (first, first_at) = timed(port.check(&key, &policy, 1)).await;
    assert!(first.unwrap().allowed);
    sleep(Duration::from_millis(150)).await;
    let (second, second_at) = timed(port.check(&key, &policy, 1)).await;
    assert!(second.unwrap().allowed);
    let (refused, refused_at) = timed(port.check(&key, &policy, 1)).await;
    let wait = retry_after(&refused.unwrap());
    assert_leaves_window_at(wait, window, first_at, refused_at, "the first unit");
    sleep(wait).await;
    assert!(check(port, &key, policy, 1).await, "the check must be allowed after retry_after ({wait:?})");
    let (refused, refused_at) = timed(port.check(&key, &policy, 1)).await;
    let wait = retry_after(&refused.unwrap());
    assert_leaves_window_at(wait, window, second_at, refused_at, "the second unit");
    sleep(wait).await;
    assert!(check(port, &key, policy, 1).await, "the check must be allowed after the second retry_after");
}

/// Runs `fut`, returning its output and the local instants just before and just after it.
async fn timed<T>(fut: impl std::future::Future<Output = T>) -> (T, (Instant, Instant)) {
    let before = Instant::now();
    let out = fut.await;
    (out, (before, Instant::now()))
}

/// Asserts that `wait` is when a unit spent during `spent` leaves `window`, as seen from a decision made during
/// `decided` (bracketed by local clocks, with 2 ms for a server clock counting milliseconds).
fn assert_leaves_window_at(
    wait: Duration,
    window: Duration,
    spent: (Instant, Instant),
    decided: (Instant, Instant),
    what: &str,
) {
    let tolerance = Duration::from_millis(2);
    let earliest = window.saturating_sub(decided.1 - spent.0).saturating_sub(tolerance);
    let latest = window.saturating_sub(decided.0.saturating_duration_since(spent.1)) + tolerance;
    assert!(wait > Duration::ZERO, "{what}: retry_after must be positive");
    assert!(
        wait >= earliest && wait <= latest,
        "{what} leaves the window in [{earliest:?}, {latest:?}], but retry_after was {wait:?}"
    );
}

/// A check of cost n spends n units, and is refused whole if fewer than n are left.
pub async fn cost_above_one_counts_as_that_many_units<P: RateLimiter + ?Sized>(port: &P) {
    for policy in [slow_bucket(5), slow_window(5)] {
        let key = rl_key("cost_above_one_counts_as_that_many_units", "k");
        let d = port.check(&key, &policy, 3).await.unwrap();
        assert!(d.allowed && d.remaining == 2, "{policy:?}: cost 3 of 5 leaves 2: {d:?}");
        let d = port.check(&key, &policy, 3).await.unwrap();
        assert!(!d.allowed && d.remaining == 2, "{policy:?}: cost 3 does not fit in 2, and spends nothing: {d:?}");
        let d = port.check(&key, &policy, 2).await.unwrap();
        assert!(d.allowed && d.remaining == 0, "{policy:?}: cost 2 fits exactly: {d:?}");
        let fresh = rl_key("cost_above_one_counts_as_that_many_units", "fresh");
        assert!(check(port, &fresh, policy, 5).await, "{policy:?}: a cost equal to the limit fits a fresh key");
    }
}

/// Invalid policies and costs of 0 or above the limit are `Validation` errors, and spend nothing.
pub async fn invalid_policy_or_cost_is_refused<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("invalid_policy_or_cost_is_refused", "k");
    let second = Duration::from_secs(1);
    let bucket = |capacity, refill_tokens, refill_interval| RateLimitPolicy::TokenBucket {
        capacity,
        refill_tokens,
        refill_interval,
    };
    let invalid = [
        (bucket(0, 1, second), 1),
        (bucket(5, 0, second), 1),
        (bucket(5, 1, Duration::ZERO), 1),
        (bucket(5, 1, second), 0),
        (bucket(5, 1, second), 6),
        (RateLimitPolicy::sliding_window(0, second), 1),
        (RateLimitPolicy::sliding_window(5, Duration::ZERO), 1),
        (RateLimitPolicy::sliding_window(5, Duration::from_micros(500)), 1),
        (RateLimitPolicy::sliding_window(5, second), 0),
        (RateLimitPolicy::sliding_window(5, second), 6),
        (RateLimitPolicy::sliding_window(5, second), u64::MAX),
        // A sliding log keeps one entry per unit: a huge limit with a matching cost would write that many.
        (RateLimitPolicy::sliding_window(100_000_000, second), 100_000_000),
        (RateLimitPolicy::sliding_window(RateLimitPolicy::MAX_SLIDING_WINDOW_LIMIT + 1, second), 1),
    ];
    for (policy, cost) in invalid {
        match port.check(&key, &policy, cost).await {
            Err(KvError::Validation(v)) if matches!(policy, RateLimitPolicy::SlidingWindow { limit, .. } if limit > RateLimitPolicy::MAX_SLIDING_WINDOW_LIMIT) =>
            {
                assert_eq!(v.field, "limit", "an oversized window names its limit");
            }
            Err(KvError::Validation(_)) => {}
            other => panic!("check({policy:?}, cost {cost}) must be a Validation error, got {other:?}"),
        }
    }
    assert!(check(port, &key, bucket(5, 1, second), 5).await, "invalid checks must not spend from the bucket");
    assert!(check(port, &key, RateLimitPolicy::sliding_window(5, second), 5).await, "nor from the window");
    let largest = RateLimitPolicy::sliding_window(RateLimitPolicy::MAX_SLIDING_WINDOW_LIMIT, second);
    assert!(check(port, &rl_key("invalid_policy_or_cost_is_refused", "max"), largest, 1).await, "the cap is allowed");
}

/// Exhausting one key leaves every other key (odd ones included) its full allowance.
pub async fn keys_are_independent<P: RateLimiter + ?Sized>(port: &P) {
    let exhausted = rl_key("keys_are_independent", "user:1");
    let base = exhausted.as_str().to_owned();
    for policy in [slow_bucket(2), slow_window(2)] {
        exhaust(port, &exhausted, policy).await;
    }
    let others = [
        format!("{base}0"),
        format!("{base} "),
        base.trim_end_matches('1').to_owned(),
        format!("{base}ünïcödé 🚦"),
        format!("{base}new\nline"),
        format!("{base}{}", "k".repeat(1024)),
    ];
    for other in others {
        let other = RateLimitKey::new(other).unwrap();
        for policy in [slow_bucket(2), slow_window(2)] {
            assert!(check(port, &other, policy, 2).await, "{policy:?}: key {other:?} must have its full allowance");
            assert!(!check(port, &other, policy, 1).await, "{policy:?}: key {other:?} counts on its own");
        }
    }
    for policy in [slow_bucket(2), slow_window(2)] {
        assert!(!check(port, &exhausted, policy, 1).await, "{policy:?}: the exhausted key stays exhausted");
    }
}

/// The token bucket and the sliding window on one key keep separate state.
pub async fn algorithms_on_one_key_do_not_share_state<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("algorithms_on_one_key_do_not_share_state", "k");
    exhaust(port, &key, slow_bucket(3)).await;
    exhaust(port, &key, slow_window(3)).await;
    assert!(!check(port, &key, slow_bucket(3), 1).await, "the window's spending must not refill the bucket");
    let key = rl_key("algorithms_on_one_key_do_not_share_state", "reverse");
    exhaust(port, &key, slow_window(3)).await;
    exhaust(port, &key, slow_bucket(3)).await;
    assert!(!check(port, &key, slow_window(3), 1).await, "the bucket's spending must not free the window");
}

/// `reset` restores a key's full allowance under both algorithms, and touches no other key.
pub async fn reset_clears_every_policy_of_the_key_only<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("reset_clears_every_policy_of_the_key_only", "k");
    let other = rl_key("reset_clears_every_policy_of_the_key_only", "other");
    for k in [&key, &other] {
        exhaust(port, k, slow_bucket(3)).await;
        exhaust(port, k, slow_window(3)).await;
    }
    port.reset(&key).await.unwrap();
    assert!(check(port, &key, slow_bucket(3), 3).await, "after reset the bucket is full");
    assert!(check(port, &key, slow_window(3), 3).await, "after reset the window is empty");
    assert!(!check(port, &other, slow_bucket(3), 1).await, "reset must not touch another key's bucket");
    assert!(!check(port, &other, slow_window(3), 1).await, "reset must not touch another key's window");
    port.reset(&rl_key("reset_clears_every_policy_of_the_key_only", "never-used")).await.unwrap();
}

/// Decisions carry the policy's limit, a decreasing remaining, no `retry_after` when allowed, and a positive
/// `reset_after`: the time until the full allowance is back (the refill of what was spent, or the window).
pub async fn decision_fields_describe_the_allowance<P: RateLimiter + ?Sized>(port: &P) {
    let key = rl_key("decision_fields_describe_the_allowance", "k");
    let second = Duration::from_secs(1);
    let bucket = RateLimitPolicy::TokenBucket { capacity: 4, refill_tokens: 1, refill_interval: second };
    for spent in 1..=4_u32 {
        let d = port.check(&key, &bucket, 1).await.unwrap();
        assert!(d.allowed, "bucket: unit {spent} allowed: {d:?}");
        assert_eq!((d.limit, d.remaining, d.retry_after), (4, 4 - u64::from(spent), None), "bucket: {d:?}");
        let (low, high) = (second * (spent - 1), second * spent);
        assert!(
            d.reset_after > low && d.reset_after <= high,
            "bucket: {spent} spent refill in ({low:?}, {high:?}]: {d:?}"
        );
    }
    let d = port.check(&key, &bucket, 1).await.unwrap();
    let wait = retry_after(&d);
    assert_eq!((d.limit, d.remaining), (4, 0), "bucket: a refusal reports the limit and nothing left: {d:?}");
    assert!(wait > Duration::ZERO && wait <= second, "bucket: one token comes within a second: {d:?}");
    assert!(d.reset_after >= wait && d.reset_after <= second * 4, "bucket: reset_after within 4 s: {d:?}");

    let window = Duration::from_millis(500);
    let sliding = RateLimitPolicy::sliding_window(4, window);
    for spent in 1..=4_u64 {
        let d = port.check(&key, &sliding, 1).await.unwrap();
        assert!(d.allowed, "window: unit {spent} allowed: {d:?}");
        assert_eq!((d.limit, d.remaining, d.retry_after), (4, 4 - spent, None), "window: {d:?}");
        assert!(d.reset_after > Duration::ZERO && d.reset_after <= window, "window: reset_after in (0, window]: {d:?}");
    }
    let d = port.check(&key, &sliding, 1).await.unwrap();
    let wait = retry_after(&d);
    assert_eq!((d.limit, d.remaining), (4, 0), "window: a refusal reports the limit and nothing left: {d:?}");
    assert!(wait > Duration::ZERO && wait <= window, "window: retry_after within the window: {d:?}");
    assert!(d.reset_after >= wait && d.reset_after <= window, "window: reset_after within the window: {d:?}");
}
