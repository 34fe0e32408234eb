//! [`RedisRateLimiter`] against the shared Redis server (`REDIS_URL`), each test under its own key namespace: the
//! `RateLimiter` contract (concrete and `dyn`), TTLs on every key, the server clock, and the HTTP headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::shared_manager;

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::redis::{RedisConfig, RedisManager, RedisRateLimiter, rate_limit_headers};
use cpc_ports::{RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter};
use cpc_test_servers::PrivateRedis;

mod concrete {
    cpc_testkit::rate_limit_contract!(async {
        std::sync::Arc::new(cpc_adapters::redis::RedisRateLimiter::new(super::shared_manager("rl-contract").await))
    });
}

mod as_dyn {
    cpc_testkit::rate_limit_contract!(async {
        std::sync::Arc::new(cpc_adapters::redis::RedisRateLimiter::new(super::shared_manager("rl-contract-dyn").await))
            as std::sync::Arc<dyn cpc_ports::RateLimiter>
    });
}

fn key(name: &str) -> RateLimitKey {
    RateLimitKey::new(name).unwrap()
}

async fn limiter(case: &str) -> (RedisRateLimiter, RedisManager) {
    let manager = shared_manager(case).await;
    (RedisRateLimiter::new(manager.clone()), manager)
}

/// Every key under the namespace, by `SCAN`.
async fn stored_keys(manager: &RedisManager) -> Vec<String> {
    let pattern = format!("{}*", manager.config().namespace);
    let mut cursor = 0_u64;
    let mut keys = Vec::new();
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
        let (next, batch): (u64, Vec<String>) = manager.query(&scan, "scan").await.unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

async fn pttl(manager: &RedisManager, key: &str) -> i64 {
    manager.query(redis::cmd("PTTL").arg(key), "pttl").await.unwrap()
}

/// Every key the limiter writes has a TTL no longer than what it takes to forget it: the time the bucket needs
/// to be full again, or two windows for a log (renewed once less than one window is left). Allowed and refused
/// checks alike.
#[tokio::test]
async fn every_key_it_writes_has_a_ttl() {
    let (limiter, manager) = limiter("rl-ttl").await;
    let bucket =
        RateLimitPolicy::TokenBucket { capacity: 10, refill_tokens: 1, refill_interval: Duration::from_secs(2) };
    let window = RateLimitPolicy::sliding_window(3, Duration::from_secs(30));
    for name in ["a", "b", "ünï cödé", "new\nline"] {
        for _ in 0..4 {
            limiter.check(&key(name), &bucket, 1).await.unwrap();
            limiter.check(&key(name), &window, 1).await.unwrap();
        }
    }
    let keys = stored_keys(&manager).await;
    assert_eq!(keys.len(), 8, "a bucket and a window for each of 4 keys: {keys:?}");
    for k in keys {
        let ttl = pttl(&manager, &k).await;
        if k.ends_with(":tb") {
            // 4 tokens spent at 1 per 2 s: full again in 8 s.
            assert!(ttl > 7_000 && ttl <= 8_000, "{k:?}: bucket TTL {ttl} ms should be the 8 s to full");
        } else {
            assert!(k.ends_with(":sw"), "{k:?}");
            // The first check gave the new log two windows; the next three found more than one left.
            assert!(ttl > 59_000 && ttl <= 60_000, "{k:?}: window TTL {ttl} ms should be two 30 s windows");
        }
    }
}

/// A log always outlives its newest entry by at least one window, and renews its expiry only when less than one
/// window is left: checks spread over three windows of 300 ms never find it gone early, and once they stop it
/// expires within two windows.
#[tokio::test]
async fn a_log_outlives_its_newest_entry_by_a_window_and_no_more_than_two() {
    let (limiter, manager) = limiter("rl-renew").await;
    let window = Duration::from_millis(300);
    let policy = RateLimitPolicy::sliding_window(1_000, window);
    let k = key("k");
    let sw = limiter.sliding_window_key_name(&k);
    let (mut renewals, mut previous, mut last) = (0, 0, tokio::time::Instant::now());
    for _ in 0..18 {
        let d = limiter.check(&k, &policy, 1).await.unwrap();
        last = tokio::time::Instant::now();
        assert!(d.allowed, "{d:?}");
        let ttl = pttl(&manager, &sw).await;
        assert!(ttl > 290 && ttl <= 600, "after an allowed check the log has {ttl} ms left: at least the window");
        if ttl > previous {
            renewals += 1;
        }
        previous = ttl;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 18 checks 50 ms apart (about 1 s): renewed about every 300 ms, not on each check.
    assert!((3..=6).contains(&renewals), "{renewals} renewals for 18 checks over about three windows");
    while stored_keys(&manager).await.contains(&sw) {
        assert!(last.elapsed() < 2 * window + Duration::from_millis(100), "the log outlived two windows");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(last.elapsed() >= window - Duration::from_millis(20), "the log expired before its newest entry left");
}

/// A check that leaves a bucket full stores nothing at all (the missing bucket is the full one).
#[tokio::test]
async fn a_full_bucket_is_not_stored() {
    let (limiter, manager) = limiter("rl-full").await;
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 2, refill_tokens: 1, refill_interval: Duration::from_millis(100) };
    let k = key("k");
    limiter.check(&k, &policy, 1).await.unwrap();
    assert_eq!(stored_keys(&manager).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // One token refills in 100 ms: the bucket is full again, and its key expired with it.
    assert!(stored_keys(&manager).await.is_empty(), "the bucket must expire once full");
}

/// The bucket is one string, its theoretical arrival time (server microseconds since the 1,700,000,000 s epoch
/// at which it is full again); a refusal writes nothing, not even its expiry.
#[tokio::test]
async fn the_bucket_is_one_arrival_time_and_a_refusal_writes_nothing() {
    let (limiter, manager) = limiter("rl-gcra").await;
    let k = key("k");
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 3, refill_tokens: 1, refill_interval: Duration::from_secs(10) };
    let tb = limiter.token_bucket_key_name(&k);
    let time = || async {
        let (secs, micros): (u64, u64) = manager.query(&redis::cmd("TIME"), "time").await.unwrap();
        ((secs - 1_700_000_000) * 1_000_000 + micros) as f64
    };
    let before = time().await;
    assert!(limiter.check(&k, &policy, 3).await.unwrap().allowed);
    let after = time().await;
    let kind: String = manager.query(redis::cmd("TYPE").arg(&tb), "type").await.unwrap();
    assert_eq!(kind, "string");
    let stored = |manager: RedisManager, tb: String| async move {
        let tat: String = manager.query(redis::cmd("GET").arg(&tb), "get").await.unwrap();
        tat.parse::<f64>().unwrap()
    };
    let tat = stored(manager.clone(), tb.clone()).await;
    assert!(tat >= before + 30e6 && tat <= after + 30e6, "TAT {tat}: 3 tokens at 10 s each from [{before}, {after}]");
    let pttl = pttl(&manager, &tb).await;
    let d = limiter.check(&k, &policy, 1).await.unwrap();
    assert!(!d.allowed && d.remaining == 0, "{d:?}");
    assert_eq!(stored(manager.clone(), tb.clone()).await, tat, "a refusal must not move the TAT");
    let pttl_after: i64 = self::pttl(&manager, &tb).await;
    assert!(pttl_after <= pttl, "a refusal must not extend the expiry: {pttl} then {pttl_after}");
}

/// An emission interval that is not a whole number of microseconds (3 tokens per 2 s) still fills the bucket
/// exactly: cost 4 + 4 + 2 of 10 is allowed back to back, the next unit refused, and a whole-capacity cost on a
/// fresh bucket allowed.
#[tokio::test]
async fn fractional_emission_intervals_fill_the_bucket_exactly() {
    let (limiter, _manager) = limiter("rl-gcra-frac").await;
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 10, refill_tokens: 3, refill_interval: Duration::from_secs(2) };
    let k = key("k");
    let remaining: Vec<u64> = [
        limiter.check(&k, &policy, 4).await.unwrap(),
        limiter.check(&k, &policy, 4).await.unwrap(),
        limiter.check(&k, &policy, 2).await.unwrap(),
    ]
    .iter()
    .map(|d| {
        assert!(d.allowed, "{d:?}");
        d.remaining
    })
    .collect();
    assert_eq!(remaining, [6, 2, 0]);
    let d = limiter.check(&k, &policy, 1).await.unwrap();
    assert!(!d.allowed, "{d:?}");
    let retry = d.retry_after.unwrap();
    assert!(retry > Duration::from_millis(600) && retry <= Duration::from_micros(666_667), "{d:?}");
    let d = limiter.check(&key("fresh"), &policy, 10).await.unwrap();
    assert!(d.allowed && d.remaining == 0 && d.reset_after == Duration::from_micros(6_666_667), "{d:?}");
}

/// `reset` deletes both the bucket and the window of the key, with one command (they share a hash tag).
#[tokio::test]
async fn reset_deletes_both_keys_of_the_key() {
    let (limiter, manager) = limiter("rl-reset").await;
    let k = key("user:7");
    limiter.check(&k, &RateLimitPolicy::token_bucket(5, 1), 2).await.unwrap();
    limiter.check(&k, &RateLimitPolicy::sliding_window(5, Duration::from_secs(10)), 2).await.unwrap();
    let (tb, sw) = (limiter.token_bucket_key_name(&k), limiter.sliding_window_key_name(&k));
    assert!(tb.ends_with("{rl:user:7}:tb") && sw.ends_with("{rl:user:7}:sw"), "{tb} {sw}");
    let exists: i64 = manager.query(redis::cmd("EXISTS").arg(&tb).arg(&sw), "exists").await.unwrap();
    assert_eq!(exists, 2);
    limiter.reset(&k).await.unwrap();
    let exists: i64 = manager.query(redis::cmd("EXISTS").arg(&tb).arg(&sw), "exists").await.unwrap();
    assert_eq!(exists, 0);
}

/// The sliding window stores one member per unit, each with the server time of the spend as its score.
#[tokio::test]
async fn the_window_holds_one_entry_per_unit_spent_at_server_time() {
    let (limiter, manager) = limiter("rl-log").await;
    let k = key("k");
    let policy = RateLimitPolicy::sliding_window(3000, Duration::from_secs(10));
    let d = limiter.check(&k, &policy, 1200).await.unwrap();
    assert!(d.allowed && d.remaining == 1800, "{d:?}");
    let d = limiter.check(&k, &policy, 1800).await.unwrap();
    assert!(d.allowed && d.remaining == 0, "{d:?}");
    assert!(!limiter.check(&k, &policy, 1).await.unwrap().allowed);
    let sw = limiter.sliding_window_key_name(&k);
    let count: u64 = manager.query(redis::cmd("ZCARD").arg(&sw), "zcard").await.unwrap();
    assert_eq!(count, 3000);
    let (secs, micros): (u64, u64) = manager.query(&redis::cmd("TIME"), "time").await.unwrap();
    let server_now = secs * 1_000_000 + micros;
    let newest: Vec<(String, f64)> =
        manager.query(redis::cmd("ZRANGE").arg(&sw).arg(-1).arg(-1).arg("WITHSCORES"), "zrange").await.unwrap();
    let spent_at = newest[0].1 as u64;
    assert!(spent_at <= server_now && server_now - spent_at < 1_000_000, "score {spent_at} vs TIME {server_now}");
}

/// The client only ever asks; time is the server's. With nothing done on the client side while real time passes
/// (the thread just sleeps: no timer, no request), the server sees the bucket refill and the window slide, by
/// exactly as much as the time that passed (not by expiring the whole state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refills_follow_the_server_clock_with_nothing_done_client_side() {
    let (limiter, _manager) = limiter("rl-clock").await;
    let k = key("k");
    let bucket =
        RateLimitPolicy::TokenBucket { capacity: 2, refill_tokens: 1, refill_interval: Duration::from_millis(400) };
    let window = RateLimitPolicy::sliding_window(2, Duration::from_millis(400));
    let idle = |ms| tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(ms)));
    // t = 0: the bucket is emptied, the window gets its first unit.
    assert!(limiter.check(&k, &bucket, 2).await.unwrap().allowed);
    assert!(limiter.check(&k, &window, 1).await.unwrap().allowed);
    idle(200);
    // t = 200 ms: the window's second unit; both are now exhausted.
    assert!(limiter.check(&k, &window, 1).await.unwrap().allowed);
    assert!(!limiter.check(&k, &window, 1).await.unwrap().allowed);
    assert!(!limiter.check(&k, &bucket, 1).await.unwrap().allowed, "no token yet at 200 ms");
    idle(250);
    // t = 450 ms: one token refilled (two only at 800 ms); the unit of t = 0 left the window, that of 200 ms not.
    assert!(limiter.check(&k, &bucket, 1).await.unwrap().allowed, "one token after 450 ms at 1 per 400 ms");
    assert!(!limiter.check(&k, &bucket, 1).await.unwrap().allowed, "only one token after 450 ms");
    assert!(limiter.check(&k, &window, 1).await.unwrap().allowed, "the unit of t = 0 left the 400 ms window");
    assert!(!limiter.check(&k, &window, 1).await.unwrap().allowed, "the unit of t = 200 ms still counts");
}

/// Two limiters (two app instances, two connections) on one server share the allowance exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_server_share_the_limit() {
    let (first, manager) = limiter("rl-instances").await;
    let second = RedisRateLimiter::new(RedisManager::new(manager.config()).await.unwrap());
    let k = key("shared");
    for policy in [RateLimitPolicy::token_bucket(20, 1), RateLimitPolicy::sliding_window(20, Duration::from_secs(60))] {
        let checks = (0..30).map(|i| {
            let limiter = if i % 2 == 0 { first.clone() } else { second.clone() };
            let k = k.clone();
            async move { limiter.check(&k, &policy, 1).await.unwrap().allowed }
        });
        let allowed = futures::future::join_all(checks).await.into_iter().filter(|a| *a).count();
        assert_eq!(allowed, 20, "{policy:?}");
    }
}

/// The scripts run with EVALSHA and are loaded again after the server forgot them (on a private server).
#[tokio::test]
async fn scripts_survive_a_script_flush() {
    let server = PrivateRedis::start().await;
    let manager = RedisManager::new(&RedisConfig::builder().port(server.port()).build().unwrap()).await.unwrap();
    let limiter: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::new(manager.clone()));
    let k = key("k");
    for policy in [RateLimitPolicy::token_bucket(2, 1), RateLimitPolicy::sliding_window(2, Duration::from_secs(60))] {
        assert!(limiter.check(&k, &policy, 1).await.unwrap().allowed);
        let () = manager.query(redis::cmd("SCRIPT").arg("FLUSH"), "script flush").await.unwrap();
        let d = limiter.check(&k, &policy, 1).await.unwrap();
        assert!(d.allowed && d.remaining == 0, "{policy:?}: {d:?}");
    }
}

/// The headers of real decisions: `RateLimit-Policy`, `RateLimit` and, when refused, `Retry-After` in whole
/// seconds rounded up.
#[tokio::test]
async fn headers_render_real_decisions() {
    let (limiter, _manager) = limiter("rl-headers").await;
    let k = key("k");
    let window = RateLimitPolicy::sliding_window(2, Duration::from_secs(60));
    let d = limiter.check(&k, &window, 1).await.unwrap();
    assert_eq!(
        rate_limit_headers(&d, &window),
        [("RateLimit-Policy", "2;w=60".to_owned()), ("RateLimit", "limit=2, remaining=1, reset=60".to_owned())]
    );
    limiter.check(&k, &window, 1).await.unwrap();
    let refused = limiter.check(&k, &window, 1).await.unwrap();
    let headers = rate_limit_headers(&refused, &window);
    assert_eq!(headers.len(), 3, "{headers:?}");
    assert_eq!(headers[1], ("RateLimit", "limit=2, remaining=0, reset=60".to_owned()));
    assert_eq!(headers[2], ("Retry-After", "60".to_owned()), "just under 60 s rounds up to 60");

    let bucket =
        RateLimitPolicy::TokenBucket { capacity: 10, refill_tokens: 3, refill_interval: Duration::from_secs(2) };
    let d = limiter.check(&k, &bucket, 4).await.unwrap();
    // 10 tokens at 3 per 2 s: empty to full in 6.67 s, so w=7; 4 tokens come back in 2.67 s, so reset=3.
    assert_eq!(
        rate_limit_headers(&d, &bucket),
        [("RateLimit-Policy", "10;w=7".to_owned()), ("RateLimit", "limit=10, remaining=6, reset=3".to_owned())]
    );
}

#[test]
fn retry_after_rounds_up_and_is_only_sent_on_refusals() {
    let policy = RateLimitPolicy::token_bucket(100, 10);
    let decision = |allowed, retry_ms: Option<u64>, reset_ms| RateLimitDecision {
        allowed,
        limit: 100,
        remaining: if allowed { 37 } else { 0 },
        retry_after: retry_ms.map(Duration::from_millis),
        reset_after: Duration::from_millis(reset_ms),
    };
    assert_eq!(
        rate_limit_headers(&decision(true, None, 12_000), &policy),
        [("RateLimit-Policy", "100;w=10".to_owned()), ("RateLimit", "limit=100, remaining=37, reset=12".to_owned())]
    );
    let refused = rate_limit_headers(&decision(false, Some(1), 10_000), &policy);
    assert_eq!(refused[2], ("Retry-After", "1".to_owned()), "1 ms rounds up to 1 s");
    let refused = rate_limit_headers(&decision(false, Some(2001), 10_000), &policy);
    assert_eq!(refused[2], ("Retry-After", "3".to_owned()));
    let refused = rate_limit_headers(&decision(false, Some(2000), 10_000), &policy);
    assert_eq!(refused[2], ("Retry-After", "2".to_owned()), "whole seconds stay as they are");
}

/// Concurrent checks share script calls; a key holding another type (foreign data) fails its own check with a
/// typed error and leaves the checks batched with it alone, for both algorithms.
#[tokio::test]
async fn a_foreign_value_fails_its_own_check_and_not_the_checks_batched_with_it() {
    let (limiter, manager) = limiter("rl-batch-isolation").await;
    let limiter = Arc::new(limiter);
    let foreign = key("foreign");
    for name in [limiter.token_bucket_key_name(&foreign), limiter.sliding_window_key_name(&foreign)] {
        let () = manager.query(redis::cmd("HSET").arg(&name).arg("not").arg("a limiter"), "hset").await.unwrap();
    }
    for policy in
        [RateLimitPolicy::token_bucket(1000, 100), RateLimitPolicy::sliding_window(1000, Duration::from_secs(60))]
    {
        let checks = (0..200).map(|i| {
            let limiter = limiter.clone();
            let k = if i % 50 == 0 { foreign.clone() } else { key(&format!("k{}", i % 7)) };
            async move { (i % 50 == 0, limiter.check(&k, &policy, 1).await) }
        });
        let results = futures::future::join_all(checks).await;
        for (is_foreign, result) in results {
            match result {
                Err(e) if is_foreign => assert!(e.to_string().contains("WRONGTYPE"), "{policy:?}: {e}"),
                Ok(d) if !is_foreign => assert!(d.allowed, "{policy:?}: {d:?}"),
                other => panic!("{policy:?}: foreign={is_foreign}: {other:?}"),
            }
        }
    }
}
