//! Fencing tokens keep growing when the counter behind them is gone: expired, deleted, or lost with a Redis
//! restart without persistence (the private servers here keep nothing on disk). Before tokens started from the
//! server's clock, the counter started again from 1 after a restart, and a store fenced by tokens refused every
//! write after it, one for each acquisition made before (docs/RELIABILITY.md, "Fencing tokens").
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "postgres", feature = "redis"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fencing::{AcquisitionLog, FencedStore};
use common::redis::shared_manager;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::redis::{DistributedLock, RedisConfig, RedisManager, Redlock, RedlockConfig};
use cpc_ports::{Lock, LockKey};
use cpc_test_servers::{PrivateRedis, PrivateRedisSet, TestDatabase};

const LEASE: Duration = Duration::from_secs(5);

fn key(s: &str) -> LockKey {
    LockKey::new(s).unwrap()
}

/// The server's clock in microseconds since the Unix epoch (`TIME`).
async fn server_micros(manager: &RedisManager) -> u64 {
    let (secs, micros): (u64, u64) = manager.query(&redis::cmd("TIME"), "time").await.unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test]
async fn tokens_start_from_the_server_clock_and_a_lost_counter_starts_from_it_again_not_from_one() {
    let manager = shared_manager("fencing-clock").await;
    let lock = DistributedLock::new(manager.clone());
    let k = key("clock");
    let before = server_micros(&manager).await;
    let first = lock.try_acquire(&k, LEASE).await.unwrap().unwrap();
    let after = server_micros(&manager).await;
    assert!(
        (before..=after).contains(&first.token.0),
        "the first token is the server's clock: {before} <= {} <= {after}",
        first.token.0
    );
    lock.release(first.clone()).await.unwrap();

    // Acquired in the same microsecond or not, each token is above the last.
    let mut last = first.token;
    for _ in 0..50 {
        let lease = lock.try_acquire(&k, LEASE).await.unwrap().unwrap();
        assert!(lease.token > last, "{:?} after {last:?}", lease.token);
        last = lease.token;
        lock.release(lease).await.unwrap();
    }

    // The counter is gone (expired or evicted): the next token comes from the clock, still above the last.
    let deleted: i64 = manager.query(redis::cmd("DEL").arg(lock.fence_key_name(&k)), "del").await.unwrap();
    assert_eq!(deleted, 1);
    let lease = lock.try_acquire(&k, LEASE).await.unwrap().unwrap();
    assert!(lease.token > last, "after the counter was lost: {:?} after {last:?}", lease.token);
    lock.release(lease.clone()).await.unwrap();

    // A counter ahead of the clock (tokens from another clock, say) goes on counting from where it is.
    let ahead = server_micros(&manager).await + 1_000_000_000_000;
    let () = manager.query(redis::cmd("SET").arg(lock.fence_key_name(&k)).arg(ahead), "set").await.unwrap();
    let next = lock.try_acquire(&k, LEASE).await.unwrap().unwrap();
    assert_eq!(next.token.0, ahead + 1);
    let written: String = manager.query(redis::cmd("GET").arg(lock.fence_key_name(&k)), "get").await.unwrap();
    assert_eq!(written, (ahead + 1).to_string(), "the counter is written back as an integer");
}

async fn private_manager(server: &PrivateRedis) -> RedisManager {
    let config = RedisConfig::builder()
        .port(server.port())
        .namespace("fencing:")
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisManager::new(&config).await.unwrap()
}

/// Two "processes" (two managers, so two connections and two lock values) increment a PostgreSQL row under the
/// lock, each write carrying its lease's token (`WHERE token < $t`). Redis is killed (`SIGKILL`) and restarted
/// mid-run, losing the counter. No holder can be overtaken (5 s leases, short work), so every write must be
/// accepted, before the restart and after it; and the tokens, logged with their send and answer times, grow
/// across the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_fenced_by_tokens_accepts_every_holders_write_across_a_redis_restart() {
    let server = Arc::new(PrivateRedis::start().await);
    let db = TestDatabase::create().await;
    let pool = PoolFactory::create_postgres_pool(&PgConfig::from_url(db.url()).unwrap(), &PoolConfig::default())
        .await
        .unwrap();
    let store = Arc::new(FencedStore::create(pool).await);
    let log = Arc::new(AcquisitionLog::default());
    let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop_at = Instant::now() + Duration::from_secs(4);
    let mut workers = Vec::new();
    for _process in 0..2 {
        let lock = DistributedLock::new(private_manager(&server).await);
        let (store, log, refused) = (store.clone(), log.clone(), refused.clone());
        workers.push(tokio::spawn(async move {
            let k = key("account:1");
            let mut writes = 0u32;
            while Instant::now() < stop_at {
                let Some(lease) = log.take(&lock, &k, LEASE, Duration::from_secs(10)).await else { continue };
                if store.write(lease.token.0).await {
                    writes += 1;
                } else {
                    refused.lock().unwrap().push(lease.token.0);
                }
                let _ = lock.release(lease).await; // fails while Redis is down: the lease then ends on its own
            }
            writes
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = log.all().len();
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().await;
    let mut accepted = 0;
    for w in workers {
        accepted += tokio::time::timeout(Duration::from_secs(30), w).await.expect("workers end").unwrap();
    }
    let all = log.all();
    let after_restart = all.len() - before_kill;
    let refused = refused.lock().unwrap().clone();
    assert!(
        before_kill >= 20 && after_restart >= 20,
        "{before_kill} acquisitions before the kill, {after_restart} after"
    );
    assert!(
        refused.is_empty(),
        "{} writes refused after the restart (tokens {:?}...)",
        refused.len(),
        &refused[..refused.len().min(5)]
    );
    let (_, stored) = store.state().await;
    assert_eq!(u64::from(accepted), stored);
    let compared = log.assert_tokens_grow();
    eprintln!(
        "{} acquisitions ({before_kill} before the kill), {accepted} writes accepted, 0 refused; {compared} ordered pairs",
        all.len()
    );
}

/// Redlock over three servers, all restarted without persistence: tokens still grow.
#[tokio::test]
async fn redlock_tokens_keep_growing_when_every_node_restarts_empty() {
    let servers = PrivateRedisSet::start(3).await;
    let config = servers.urls().into_iter().fold(RedlockConfig::builder(), |b, url| b.url(url));
    let config = config.namespace("fencing:").node_timeout(Duration::from_millis(500)).build().unwrap();
    let lock = Redlock::connect(&config).await.unwrap();
    let k = key("redlock");
    let mut last = cpc_ports::FencingToken(0);
    for _ in 0..20 {
        let lease = lock.try_acquire(&k, LEASE).await.unwrap().unwrap();
        assert!(lease.token > last);
        last = lease.token;
        lock.release(lease).await.unwrap();
    }
    for i in 0..servers.len() {
        servers.server(i).restart().await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let lease = loop {
        match lock.try_acquire(&k, LEASE).await {
            Ok(Some(lease)) => break lease,
            other => assert!(Instant::now() < deadline, "no acquisition 10 s after the restart: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(lease.token > last, "after every node restarted empty: {:?} after {last:?}", lease.token);
}
