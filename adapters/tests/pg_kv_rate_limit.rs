//! `PgRateLimiter` on PostgreSQL: the `RateLimiter` contract (concrete and as `dyn RateLimiter`, a fresh migrated
//! database per case), plus what only a real server shows: exactness with 64 tasks on 16 connections, the cleanup
//! of rows back to a full allowance, namespaces, and rows altered by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "pg-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::harness::DynHarness;
use cpc_adapters::pg_kv::PgRateLimiter;
use cpc_ports::{KvError, RateLimitKey, RateLimitPolicy, RateLimiter};
use cpc_test_servers::TestDatabase;

type Harness = common::pg_kv::Harness<PgRateLimiter>;

async fn harness() -> Harness {
    common::pg_kv::harness(PgRateLimiter::new).await
}

async fn dyn_harness() -> DynHarness<dyn RateLimiter, TestDatabase> {
    harness().await.into_dyn(|p| Arc::new(p) as Arc<dyn RateLimiter>)
}

mod contract_concrete {
    cpc_testkit::rate_limit_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::rate_limit_contract!(super::dyn_harness());
}

fn key(text: &str) -> RateLimitKey {
    RateLimitKey::new(text).unwrap()
}

const MINUTE: Duration = Duration::from_secs(60);

async fn exec(limiter: &PgRateLimiter, sql: &str) -> u64 {
    limiter.pool().get().await.unwrap().execute(sql, &[]).await.unwrap()
}

async fn rows(limiter: &PgRateLimiter) -> i64 {
    limiter.pool().get().await.unwrap().query_one("SELECT count(*) FROM cpc_rate_limits", &[]).await.unwrap().get(0)
}

/// 64 tasks spawned on a multi-thread runtime, over a pool of 16 connections, each checking `cost` once.
async fn race(limiter: &PgRateLimiter, key: &RateLimitKey, policy: RateLimitPolicy, cost: u64) -> Vec<bool> {
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (limiter, key) = (limiter.clone(), key.clone());
            tokio::spawn(async move { limiter.check(&key, &policy, cost).await.unwrap().allowed })
        })
        .collect();
    futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_on_sixteen_connections_get_exactly_the_limit() {
    let h = harness().await;
    for (n, cost) in [(10_u64, 1_u64), (25, 1), (30, 3)] {
        let policies = [
            RateLimitPolicy::TokenBucket { capacity: n, refill_tokens: 1, refill_interval: MINUTE },
            RateLimitPolicy::sliding_window(n, MINUTE),
        ];
        for policy in policies {
            let k = key(&format!("race:{n}:{cost}"));
            let allowed = race(&h, &k, policy, cost).await.into_iter().filter(|a| *a).count() as u64;
            assert_eq!(allowed, n / cost, "{policy:?}, cost {cost}: exactly the limit of 64 concurrent checks");
            assert!(!h.check(&k, &policy, 1).await.unwrap().allowed, "{policy:?}: nothing left after the race");
        }
    }
}

#[tokio::test]
async fn rows_back_to_a_full_allowance_are_swept_and_a_swept_key_starts_full() {
    let h = harness().await;
    let limiter = h.port.clone().with_sweep_interval(None);
    let fast =
        RateLimitPolicy::TokenBucket { capacity: 2, refill_tokens: 1, refill_interval: Duration::from_millis(50) };
    let window = RateLimitPolicy::sliding_window(2, Duration::from_millis(100));
    let slow = RateLimitPolicy::TokenBucket { capacity: 2, refill_tokens: 1, refill_interval: MINUTE };
    for i in 0..20 {
        let k = key(&format!("short:{i}"));
        assert!(limiter.check(&k, &fast, 2).await.unwrap().allowed);
        assert!(limiter.check(&k, &window, 2).await.unwrap().allowed);
    }
    let kept = key("long");
    assert!(limiter.check(&kept, &slow, 2).await.unwrap().allowed);
    assert_eq!(rows(&limiter).await, 41);
    assert_eq!(limiter.sweep().await.unwrap(), 0, "nothing is back to full yet");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(limiter.sweep().await.unwrap(), 40, "every bucket refilled and every window emptied");
    assert_eq!(rows(&limiter).await, 1);
    assert!(!limiter.check(&kept, &slow, 1).await.unwrap().allowed, "the empty bucket's row was kept");
    let d = limiter.check(&key("short:3"), &fast, 2).await.unwrap();
    assert!(d.allowed && d.remaining == 0, "a swept key starts with a full bucket: {d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweeper_runs_while_the_limiter_lives() {
    let h = harness().await;
    let limiter = h.port.clone().with_sweep_interval(Some(Duration::from_millis(100)));
    let fast =
        RateLimitPolicy::TokenBucket { capacity: 1, refill_tokens: 1, refill_interval: Duration::from_millis(20) };
    for i in 0..10 {
        assert!(limiter.check(&key(&format!("k{i}")), &fast, 1).await.unwrap().allowed);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rows(&limiter).await, 0, "the sweeper deleted the refilled buckets");
}

#[tokio::test]
async fn namespaces_count_apart_and_reset_stays_in_its_namespace() {
    let h = harness().await;
    let (a, b) = (h.port.clone().with_namespace("a"), h.port.clone().with_namespace("b"));
    let (k, policy) = (key("user:1"), RateLimitPolicy::sliding_window(2, MINUTE));
    assert!(a.check(&k, &policy, 2).await.unwrap().allowed);
    assert!(b.check(&k, &policy, 2).await.unwrap().allowed, "another namespace has its own allowance");
    assert!(!a.check(&k, &policy, 1).await.unwrap().allowed);
    a.reset(&k).await.unwrap();
    assert!(a.check(&k, &policy, 2).await.unwrap().allowed, "reset restores the allowance");
    assert!(!b.check(&k, &policy, 1).await.unwrap().allowed, "reset touches its namespace only");
}

#[tokio::test]
async fn rows_altered_by_hand_give_decisions_or_typed_errors_never_panics() {
    let h = harness().await;
    let bucket = RateLimitPolicy::TokenBucket { capacity: 3, refill_tokens: 1, refill_interval: MINUTE };
    let window = RateLimitPolicy::sliding_window(3, MINUTE);
    let k = key("k");
    for policy in [bucket, window] {
        assert!(h.check(&k, &policy, 3).await.unwrap().allowed);
    }
    // A NaN bucket counts as full (as a missing one); a log whose arrays disagree counts its readable entries.
    exec(&h, "UPDATE cpc_rate_limits SET tat = 'NaN' WHERE algorithm = 'token_bucket'").await;
    exec(
        &h,
        "UPDATE cpc_rate_limits SET log_at = ARRAY[floor(extract(epoch FROM now()) * 1000000)::bigint, NULL], \
         log_cost = ARRAY[2::bigint] WHERE algorithm = 'sliding_window'",
    )
    .await;
    let d = h.check(&k, &bucket, 3).await.unwrap();
    assert!(d.allowed && d.remaining == 0, "a NaN bucket is full: {d:?}");
    let d = h.check(&k, &window, 1).await.unwrap();
    assert!(d.allowed && d.remaining == 0, "the readable entry of cost 2 counts, the NULL one not: {d:?}");
    let d = h.check(&k, &window, 1).await.unwrap();
    assert!(!d.allowed && d.retry_after.is_some(), "{d:?}");

    // A column of another type than the library's migration created.
    exec(&h, "ALTER TABLE cpc_rate_limits ALTER COLUMN reset_us TYPE text").await;
    for policy in [bucket, window] {
        let err = h.check(&k, &policy, 1).await.unwrap_err();
        assert!(matches!(err, KvError::Backend { .. }), "{policy:?}: a text column where a number belongs: {err:?}");
    }
    exec(&h, "ALTER TABLE cpc_rate_limits ALTER COLUMN tat TYPE text").await;
    let err = h.check(&k, &bucket, 1).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { .. }), "the statement fails on the server: {err:?}");
}

#[tokio::test]
async fn huge_policies_stay_within_the_table_and_the_reply() {
    let h = harness().await;
    let k = key("huge");
    let bucket = RateLimitPolicy::TokenBucket { capacity: u64::MAX, refill_tokens: 1, refill_interval: Duration::MAX };
    let d = h.check(&k, &bucket, u64::MAX).await.unwrap();
    assert!(d.allowed && d.remaining == 0 && d.limit == u64::MAX, "{d:?}");
    let d = h.check(&k, &bucket, 1).await.unwrap();
    assert!(!d.allowed && d.retry_after.is_some(), "{d:?}");
    let tiny =
        RateLimitPolicy::TokenBucket { capacity: 5, refill_tokens: u64::MAX, refill_interval: Duration::from_nanos(1) };
    assert!(h.check(&key("tiny"), &tiny, 5).await.unwrap().allowed, "a bucket refilling faster than the clock");
    let err = h.check(&k, &RateLimitPolicy::sliding_window(5, Duration::MAX), 1).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "a window beyond 10^15 ms: {err:?}");
    let long = RateLimitPolicy::sliding_window(5, Duration::from_secs(3_000_000_000));
    assert!(h.check(&k, &long, 5).await.unwrap().allowed, "a window of a century is written with a capped expiry");
}

#[tokio::test]
async fn a_sweep_skips_the_rows_a_check_holds_instead_of_waiting_for_them() {
    let h = harness().await;
    let limiter = h.port.clone().with_sweep_interval(None);
    let fast =
        RateLimitPolicy::TokenBucket { capacity: 1, refill_tokens: 1, refill_interval: Duration::from_millis(1) };
    for i in 0..5 {
        assert!(limiter.check(&key(&format!("k{i}")), &fast, 1).await.unwrap().allowed);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let holder = limiter.pool().get().await.unwrap();
    holder.batch_execute("BEGIN; SELECT 1 FROM cpc_rate_limits WHERE key = 'k0'::bytea FOR UPDATE").await.unwrap();
    let swept = tokio::time::timeout(Duration::from_secs(2), limiter.sweep()).await.expect("the sweep must not wait");
    assert_eq!(swept.unwrap(), 4, "every refilled bucket but the held one");
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(limiter.sweep().await.unwrap(), 1, "the row once released");
}
