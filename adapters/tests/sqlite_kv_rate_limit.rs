//! `SqliteRateLimiter` on a SQLite file: the `RateLimiter` contract (concrete and as `dyn RateLimiter`, a fresh
//! migrated database file per case), plus what only a real database file shows: limiters on separate connections
//! share one allowance exactly, the allowance survives a restart, idle rows are swept, and a bad row is a typed
//! error.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "sqlite-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::harness::DynHarness;
use common::sqlite_kv::pool;
use cpc_adapters::sqlite_kv::SqliteRateLimiter;
use cpc_ports::{KvError, RateLimitKey, RateLimitPolicy, RateLimiter};

type Harness = common::sqlite_kv::Harness<SqliteRateLimiter>;

async fn harness() -> Harness {
    common::sqlite_kv::harness("limits.db", SqliteRateLimiter::new).await
}

async fn dyn_harness() -> DynHarness<dyn RateLimiter, tempfile::TempDir> {
    harness().await.into_dyn(|p| Arc::new(p) as Arc<dyn RateLimiter>)
}

mod contract_concrete {
    cpc_testkit::rate_limit_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::rate_limit_contract!(super::dyn_harness());
}

async fn rows(limiter: &SqliteRateLimiter) -> i64 {
    limiter.pool().interact(|c| c.query_row("SELECT count(*) FROM cpc_rate_limits", [], |r| r.get(0))).await.unwrap()
}

/// Eight limiters, each on its own pool, spend one allowance of 50 with 200 checks at once: exactly 50 pass, for
/// both algorithms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limiters_on_separate_connections_share_one_exact_allowance() {
    let h = harness().await;
    let key = RateLimitKey::new("api:ada").unwrap();
    for policy in [RateLimitPolicy::token_bucket(50, 1), RateLimitPolicy::sliding_window(50, Duration::from_secs(60))] {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let limiter = SqliteRateLimiter::new(pool(&h.path, 1).await);
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut allowed = 0;
                for _ in 0..25 {
                    allowed += u32::from(limiter.check(&key, &policy, 1).await.unwrap().allowed);
                }
                allowed
            }));
        }
        let mut allowed = 0;
        for task in tasks {
            allowed += task.await.unwrap();
        }
        assert_eq!(allowed, 50, "{policy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spent_allowance_survives_a_restart() {
    let h = harness().await;
    let key = RateLimitKey::new("login:ada").unwrap();
    let policy = RateLimitPolicy::sliding_window(3, Duration::from_secs(60));
    for _ in 0..3 {
        assert!(h.check(&key, &policy, 1).await.unwrap().allowed);
    }
    let Harness { port: limiter, path, dir: _dir } = h;
    drop(limiter);

    let reopened = SqliteRateLimiter::new(pool(&path, 2).await);
    let refused = reopened.check(&key, &policy, 1).await.unwrap();
    assert!(!refused.allowed, "a restart does not hand out a fresh allowance");
    assert!(refused.retry_after.unwrap() > Duration::from_secs(55));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rows_are_swept_by_later_checks() {
    let h = harness().await;
    // A window long enough that no row goes idle while the 30 are written, even on a loaded machine.
    let window = RateLimitPolicy::sliding_window(5, Duration::from_secs(1));
    for n in 0..30 {
        h.check(&RateLimitKey::new(format!("idle:{n}")).unwrap(), &window, 1).await.unwrap();
    }
    assert_eq!(rows(&h).await, 30);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let busy = RateLimitKey::new("busy").unwrap();
    h.check(&busy, &RateLimitPolicy::token_bucket(10, 1), 1).await.unwrap();
    assert_eq!(rows(&h).await, 1, "the idle windows were deleted, the busy bucket kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_does_not_parse_is_a_backend_error() {
    let h = harness().await;
    let key = RateLimitKey::new("api:ada").unwrap();
    h.check(&key, &RateLimitPolicy::token_bucket(5, 1), 1).await.unwrap();
    h.check(&key, &RateLimitPolicy::sliding_window(5, Duration::from_secs(60)), 1).await.unwrap();
    h.pool()
        .write(|tx| tx.execute("UPDATE cpc_rate_limits SET state = X'0102', idle_at = idle_at + 3600000", []))
        .await
        .unwrap();
    for policy in [RateLimitPolicy::token_bucket(5, 1), RateLimitPolicy::sliding_window(5, Duration::from_secs(60))] {
        let err = h.check(&key, &policy, 1).await.unwrap_err();
        assert!(matches!(err, KvError::Backend { backend: "sqlite", .. }), "{policy:?}: {err:?}");
    }
    h.reset(&key).await.unwrap();
    assert!(h.check(&key, &RateLimitPolicy::token_bucket(5, 1), 1).await.unwrap().allowed, "reset clears it");
}
