//! The rate-limit contract against [`InMemoryRateLimiter`], directly and as `Arc<dyn RateLimiter>`, plus what
//! only the fake can show: exact refills and windows on tokio's (paused) clock and the purge of idle state.

use std::time::Duration;

use cpc_ports::{RateLimitKey, RateLimitPolicy, RateLimiter};
use cpc_testkit::memory::InMemoryRateLimiter;

mod concrete {
    cpc_testkit::rate_limit_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemoryRateLimiter::new()) });
}

mod as_dyn_port {
    use std::sync::Arc;

    use cpc_ports::RateLimiter;
    use cpc_testkit::memory::InMemoryRateLimiter;

    cpc_testkit::rate_limit_contract!(async { Arc::new(InMemoryRateLimiter::new()) as Arc<dyn RateLimiter> });
}

fn key(s: &str) -> RateLimitKey {
    RateLimitKey::new(s).expect("valid test key")
}

#[tokio::test(start_paused = true)]
async fn token_bucket_refills_continuously_on_tokios_clock() {
    let limiter = InMemoryRateLimiter::new();
    let policy = RateLimitPolicy::token_bucket(10, 10);
    for _ in 0..10 {
        assert!(limiter.check(&key("k"), &policy, 1).await.unwrap().allowed);
    }
    let refused = limiter.check(&key("k"), &policy, 1).await.unwrap();
    assert_eq!(refused.retry_after, Some(Duration::from_millis(100)), "one token per 100 ms");
    assert_eq!(refused.reset_after, Duration::from_secs(1), "ten tokens per second");
    tokio::time::advance(Duration::from_millis(99)).await;
    let almost = limiter.check(&key("k"), &policy, 1).await.unwrap();
    assert!(!almost.allowed, "99 ms refill 0.99 tokens");
    assert_eq!(almost.retry_after, Some(Duration::from_millis(1)), "retry_after is exact");
    tokio::time::advance(Duration::from_millis(1)).await;
    let allowed = limiter.check(&key("k"), &policy, 1).await.unwrap();
    assert!(allowed.allowed, "after exactly retry_after the check is allowed");
    assert_eq!(allowed.reset_after, Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(3600)).await;
    let full = limiter.check(&key("k"), &policy, 10).await.unwrap();
    assert!(full.allowed, "a long idle bucket is full");
    assert!(!limiter.check(&key("k"), &policy, 1).await.unwrap().allowed, "and never more than full");
}

#[tokio::test(start_paused = true)]
async fn fractional_refill_rates_lose_nothing_to_rounding() {
    let limiter = InMemoryRateLimiter::new();
    // 3 tokens every 1 s: one token every 333.33... ms.
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 3, refill_tokens: 3, refill_interval: Duration::from_secs(1) };
    assert!(limiter.check(&key("k"), &policy, 3).await.unwrap().allowed);
    let mut allowed = 0;
    for _ in 0..3_000 {
        tokio::time::advance(Duration::from_millis(1)).await;
        allowed += u32::from(limiter.check(&key("k"), &policy, 1).await.unwrap().allowed);
    }
    assert_eq!(allowed, 9, "3 s at 3 tokens per second refill exactly 9 tokens");
}

#[tokio::test(start_paused = true)]
async fn sliding_window_slides_on_tokios_clock() {
    let limiter = InMemoryRateLimiter::new();
    let policy = RateLimitPolicy::sliding_window(2, Duration::from_secs(1));
    assert!(limiter.check(&key("k"), &policy, 1).await.unwrap().allowed);
    tokio::time::advance(Duration::from_millis(400)).await;
    assert!(limiter.check(&key("k"), &policy, 1).await.unwrap().allowed);
    let refused = limiter.check(&key("k"), &policy, 1).await.unwrap();
    assert_eq!(refused.retry_after, Some(Duration::from_millis(600)), "the first unit leaves at t=1 s");
    assert_eq!(refused.reset_after, Duration::from_secs(1), "the second unit leaves at t=1.4 s");
    tokio::time::advance(Duration::from_millis(599)).await;
    assert!(!limiter.check(&key("k"), &policy, 1).await.unwrap().allowed, "the first unit counts until t=1 s");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(limiter.check(&key("k"), &policy, 1).await.unwrap().allowed, "at t=1 s it left the window");
}

#[tokio::test(start_paused = true)]
async fn idle_state_is_purged() {
    let limiter = InMemoryRateLimiter::new();
    let bucket = RateLimitPolicy::token_bucket(5, 5);
    let window = RateLimitPolicy::sliding_window(5, Duration::from_secs(1));
    let mut peak = 0;
    // 5 000 one-off clients, one every 10 ms, under both algorithms: each is idle again 1 s later.
    for i in 0..5_000 {
        let k = key(&format!("client:{i}"));
        limiter.check(&k, &bucket, 5).await.unwrap();
        limiter.check(&k, &window, 1).await.unwrap();
        peak = peak.max(limiter.len());
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(peak <= 800, "idle state must be swept, yet up to {peak} states were stored for ~200 busy");
    let k = key("client:4999");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(limiter.check(&k, &bucket, 5).await.unwrap().allowed, "a purged bucket comes back full");
}

#[tokio::test]
async fn reset_drops_the_keys_state() {
    let limiter = InMemoryRateLimiter::new();
    limiter.check(&key("a"), &RateLimitPolicy::token_bucket(5, 1), 1).await.unwrap();
    limiter.check(&key("a"), &RateLimitPolicy::sliding_window(5, Duration::from_secs(1)), 1).await.unwrap();
    limiter.check(&key("b"), &RateLimitPolicy::token_bucket(5, 1), 1).await.unwrap();
    assert_eq!(limiter.len(), 3);
    limiter.reset(&key("a")).await.unwrap();
    assert_eq!(limiter.len(), 1, "reset frees the key's state under both algorithms");
}

#[tokio::test(start_paused = true)]
async fn changing_a_keys_bucket_parameters_keeps_what_was_spent() {
    let limiter = InMemoryRateLimiter::new();
    let slow = RateLimitPolicy::token_bucket(10, 1);
    assert!(limiter.check(&key("k"), &slow, 8).await.unwrap().allowed);
    let bigger =
        RateLimitPolicy::TokenBucket { capacity: 20, refill_tokens: 1, refill_interval: Duration::from_millis(500) };
    let d = limiter.check(&key("k"), &bigger, 1).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.limit), (true, 1, 20), "the 2 tokens left carry over: {d:?}");
}

#[tokio::test]
async fn huge_parameters_do_not_panic() {
    let limiter = InMemoryRateLimiter::new();
    let huge =
        RateLimitPolicy::TokenBucket { capacity: u64::MAX, refill_tokens: u64::MAX, refill_interval: Duration::MAX };
    assert!(limiter.check(&key("k"), &huge, u64::MAX).await.unwrap().allowed);
    let too_big = RateLimitPolicy::sliding_window(u64::MAX, Duration::MAX);
    assert!(limiter.check(&key("k"), &too_big, u64::MAX).await.is_err(), "a sliding log is capped");
    let cap = RateLimitPolicy::MAX_SLIDING_WINDOW_LIMIT;
    let window = RateLimitPolicy::sliding_window(cap, Duration::MAX);
    assert!(limiter.check(&key("k"), &window, cap).await.unwrap().allowed);
    let d = limiter.check(&key("k"), &window, 1).await.unwrap();
    assert!(!d.allowed && d.retry_after.is_some(), "{d:?}");
}
