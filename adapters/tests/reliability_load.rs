//! Load and concurrency, measured (docs/RELIABILITY.md): pool exhaustion, lock-protected read-modify-write
//! counters on Redis and PostgreSQL, fencing tokens with leases shorter than the work, and rate-limit exactness
//! at a limit of 100. Real servers: the shared PostgreSQL (`DATABASE_URL`, a database per test) and Redis
//! (`REDIS_URL`, a namespace per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "postgres", feature = "redis"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fencing::{AcquisitionLog, FencedStore};
use common::redis::shared_manager;
use cpc_adapters::pool::{DatabaseError, PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgPool};
use cpc_adapters::redis::{DistributedLock, RedisManager, RedisRateLimiter};
use cpc_ports::{Lock, LockExt, LockKey, RateLimitKey, RateLimitPolicy, RateLimiter};
use cpc_test_servers::TestDatabase;

async fn pg_pool(db: &TestDatabase, config: PoolConfig) -> PgPool {
    PoolFactory::create_postgres_pool(&PgConfig::from_url(db.url()).unwrap(), &config).await.unwrap()
}

/// 1,000 tasks against a pool of 8 with a 200 ms acquire timeout: each gets a connection or a pool timeout within
/// 300 ms, and afterwards the pool serves normally, with nothing left checked out or waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_on_eight_connections_each_answer_within_300_ms() {
    let db = TestDatabase::create().await;
    let pool =
        pg_pool(&db, PoolConfig::default().max_connections(8).connection_timeout(Duration::from_millis(200))).await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let checkout = pool.get().await;
                let took = started.elapsed();
                match checkout {
                    Ok(conn) => {
                        conn.batch_execute("SELECT pg_sleep(0.002)").await.unwrap();
                        Ok(took)
                    }
                    Err(e) => Err((e, took)),
                }
            })
        })
        .collect();
    let (mut served, mut timed_out) = (0, 0);
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await.expect("a task hung").unwrap() {
            Ok(took) => {
                served += 1;
                assert!(took < Duration::from_millis(300), "a connection came after {took:?}");
            }
            Err((e, took)) => {
                timed_out += 1;
                assert!(matches!(e, DatabaseError::PoolTimeout(_)), "{e:?}");
                assert!(took < Duration::from_millis(300), "a pool timeout took {took:?}");
            }
        }
    }
    assert_eq!(served + timed_out, 1000);
    assert!(served >= 8 && timed_out > 0, "both outcomes happen: served {served}, timed out {timed_out}");
    for _ in 0..20 {
        let conn = pool.get().await.expect("the pool serves normally afterwards");
        let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
    }
    let state = pool.state();
    assert_eq!((state.in_use, state.waiting), (0, 0), "{state:?}");
    eprintln!("pool exhaustion: {served} served, {timed_out} pool timeouts, of 1000");
}

const WORKERS: u64 = 16;
const INCREMENTS: u64 = 1000;

/// 16 workers each do 1,000 read-modify-write increments of one counter under the Redis lock, the counter kept
/// in Redis and in PostgreSQL: each ends at exactly 16,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_protected_increments_add_up_exactly_on_redis_and_postgres() {
    let manager = shared_manager("rel-lock-count").await;
    let db = TestDatabase::create().await;
    let pool = pg_pool(&db, PoolConfig::default().max_connections(4)).await;
    pool.get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE counter (n BIGINT NOT NULL); INSERT INTO counter VALUES (0)")
        .await
        .unwrap();
    let lock = Arc::new(DistributedLock::new(manager.clone()));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (lock, manager, pool) = (lock.clone(), manager.clone(), pool.clone());
            tokio::spawn(async move {
                let key = LockKey::new("counter").unwrap();
                for _ in 0..INCREMENTS {
                    lock.with_lock(&key, Duration::from_secs(10), Duration::from_secs(30), |_lease| {
                        increment_both(&manager, &pool)
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let redis_count: u64 = manager.query(redis::cmd("GET").arg(manager.key("counter")), "get").await.unwrap();
    let pg_count: i64 = pool.get().await.unwrap().query_one("SELECT n FROM counter", &[]).await.unwrap().get(0);
    assert_eq!(redis_count, WORKERS * INCREMENTS);
    assert_eq!(pg_count, i64::try_from(WORKERS * INCREMENTS).unwrap());
    eprintln!("lock-protected increments: {} on Redis and PostgreSQL in {took:?}", WORKERS * INCREMENTS);
}

/// One unprotected read-modify-write of each counter: read, then write the read value plus one.
async fn increment_both(manager: &RedisManager, pool: &PgPool) {
    let key = manager.key("counter");
    let n: Option<u64> = manager.query(redis::cmd("GET").arg(&key), "get").await.unwrap();
    let () = manager.query(redis::cmd("SET").arg(&key).arg(n.unwrap_or(0) + 1), "set").await.unwrap();
    let conn = pool.get().await.unwrap();
    let n: i64 = conn.query_one("SELECT n FROM counter", &[]).await.unwrap().get(0);
    conn.execute("UPDATE counter SET n = $1", &[&(n + 1)]).await.unwrap();
}

/// Leases deliberately shorter than the work (20 ms leases, 30-110 ms of work), so holders overlap; the store
/// refuses a write whose token is not above the last accepted one (`common::fencing`). Asserted, independently of
/// the store: every acquisition that answered before another was sent has the smaller token (a lock handing out
/// equal, decreasing or random tokens fails this), and a holder that nobody can have overtaken before its write
/// finished has that write accepted; and overlapping holders did happen (some writes were refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_let_the_store_refuse_every_stale_write() {
    let manager = shared_manager("rel-fencing").await;
    let db = TestDatabase::create().await;
    let store = Arc::new(FencedStore::create(pg_pool(&db, PoolConfig::default().max_connections(8)).await).await);
    let lock = Arc::new(DistributedLock::new(manager.clone()));
    let log = Arc::new(AcquisitionLog::default());
    let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (lock, store, log, writes) = (lock.clone(), store.clone(), log.clone(), writes.clone());
            tokio::spawn(async move {
                let key = LockKey::new("fenced").unwrap();
                for i in 0..10u64 {
                    let lease = log.take(&*lock, &key, Duration::from_millis(20), Duration::from_secs(20)).await;
                    let lease = lease.expect("the lock is taken within 20 s");
                    let taken = *log.all().iter().find(|a| a.token == lease.token.0).unwrap();
                    // 30-110 ms of work: it outlives the 20 ms lease, and a holder may finish after the ones
                    // that took the lock over from it.
                    tokio::time::sleep(Duration::from_millis(30 + (w * 7 + i * 13) % 9 * 10)).await;
                    let accepted = store.write(lease.token.0).await;
                    writes.lock().unwrap().push((taken, Instant::now(), accepted));
                    let _ = lock.release(lease).await; // usually lost already: that is the point
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let compared = log.assert_tokens_grow();
    let all = log.all();
    let writes = writes.lock().unwrap().clone();
    for (me, done, accepted) in &writes {
        let overtaken = all.iter().any(|b| b.token != me.token && b.answered >= me.sent && b.sent <= *done);
        assert!(accepted | overtaken, "token {} was refused though no holder can have come after it", me.token);
    }
    let accepted = writes.iter().filter(|w| w.2).count() as u64;
    let refused = writes.len() as u64 - accepted;
    let (_, stored_writes) = store.state().await;
    assert_eq!(writes.len(), 80);
    assert_eq!(stored_writes, accepted);
    assert!(compared >= 80 * 79 / 4, "the order check compared {compared} pairs of the 80 acquisitions");
    assert!(refused > 0, "holders overlapped, and the late ones were refused: accepted {accepted}, refused {refused}");
    eprintln!("fencing: {accepted} writes accepted, {refused} stale writes refused; {compared} ordered pairs compared");
}

/// 64 concurrent clients send 5 checks each (320) against a limit of 100: exactly 100 are allowed, for both
/// algorithms; for the sliding window the same holds again in the next window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_get_exactly_one_hundred_per_window() {
    let limiter = Arc::new(RedisRateLimiter::new(shared_manager("rel-rate").await));
    // A bucket of 100 that refills one token per hour: a burst sees exactly its capacity.
    let bucket =
        RateLimitPolicy::TokenBucket { capacity: 100, refill_tokens: 1, refill_interval: Duration::from_secs(3600) };
    let window = RateLimitPolicy::sliding_window(100, Duration::from_secs(1));
    assert_eq!(burst(&limiter, "bucket", bucket).await, 100, "token bucket");
    assert_eq!(burst(&limiter, "window", window).await, 100, "sliding window, first window");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(burst(&limiter, "window", window).await, 100, "sliding window, next window");
}

async fn burst(limiter: &Arc<RedisRateLimiter>, key: &str, policy: RateLimitPolicy) -> u64 {
    let key = RateLimitKey::new(key).unwrap();
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (limiter, key) = (limiter.clone(), key.clone());
            tokio::spawn(async move {
                let mut allowed = 0;
                for _ in 0..5 {
                    allowed += u64::from(limiter.check(&key, &policy, 1).await.unwrap().allowed);
                }
                allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for c in clients {
        allowed += c.await.unwrap();
    }
    allowed
}
