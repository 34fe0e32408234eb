//! The key-value ports on PostgreSQL (`cpc_adapters::pg_kv`) against the Redis adapters of the same ports, in one
//! run, through the port traits (`Arc<dyn Cache>`, `Arc<dyn Lock>`, `Arc<dyn RateLimiter>`, `Arc<dyn
//! SessionStore>`), so both sides do the same calls. Run (needs PostgreSQL at `DATABASE_URL` and Redis at
//! `REDIS_URL`, both defaulting to the local servers):
//!
//! ```sh
//! cargo bench -p cpc-adapters --features pg-kv,redis,diesel --bench pg_kv
//! ```
//!
//! PostgreSQL: a fresh migrated database ([`TestDatabase`]), one pool of [`PG_POOL`] connections shared by the
//! four adapters. Redis: a fresh namespace on the server, one `RedisManager` (one multiplexed connection) shared
//! by the four adapters. Each figure is the best of [`ROUNDS`] rounds of [`RUN`] (after [`WARM_UP`] uncounted),
//! PostgreSQL and Redis interleaved, the first of each pair alternating between rounds. Prints a markdown table:
//! operation, tasks, PostgreSQL ops/s, Redis ops/s, PG/Redis (with a row of `PgCache` gets one statement each,
//! `with_get_batching(0)`, beside the default batched gets); then the load average before and after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use common::{load_average, per_sec, rotated};

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::pg_kv::{PgCache, PgLock, PgRateLimiter, PgSessionStore};
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::redis::{CacheManager, DistributedLock, RedisManager, RedisRateLimiter, SessionManager};
use cpc_ports::{
    Bytes, Cache, CacheKey, Lock, LockKey, RateLimitKey, RateLimitPolicy, RateLimiter, SessionId, SessionStore,
};
use cpc_test_servers::TestDatabase;

/// Connections in the PostgreSQL pool (shared by the four adapters).
const PG_POOL: u32 = 16;
/// Rounds per figure; the best is kept.
const ROUNDS: usize = 3;
/// Counted time per measurement.
const RUN: Duration = Duration::from_secs(2);
/// Uncounted time at the start of each measurement (connections opened, statements prepared).
const WARM_UP: Duration = Duration::from_millis(200);
/// Keys of the cache and the rate limiter.
const KEYS: u64 = 10_000;
/// Sessions loaded by the session rows.
const SESSIONS: usize = 1_000;

/// The two sides of one port.
struct Pair<P: ?Sized> {
    pg: Arc<P>,
    redis: Arc<P>,
}

fn key(i: u64) -> CacheKey {
    CacheKey::new(format!("k{}", i % KEYS)).unwrap()
}

/// The measurement of `op` at `tasks` tasks, boxed to run later.
fn measured<F, Fut>(tasks: usize, op: F) -> BoxFuture<'static, f64>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::pin(per_sec(tasks, WARM_UP, RUN, op))
}

/// One row: a name, the tasks, and how to build the measurement of either side.
struct Row {
    name: String,
    tasks: usize,
    pg: Box<dyn Fn() -> BoxFuture<'static, f64>>,
    redis: Box<dyn Fn() -> BoxFuture<'static, f64>>,
}

fn cache_get(c: &Arc<dyn Cache>, tasks: usize) -> impl Fn() -> BoxFuture<'static, f64> + 'static {
    let c = c.clone();
    move || {
        let c = c.clone();
        measured(tasks, move |t, n| {
            let c = c.clone();
            async move {
                assert!(c.get_bytes(&key(t as u64 * 7919 + n)).await.unwrap().is_some());
            }
        })
    }
}

fn cache_set(c: &Arc<dyn Cache>, tasks: usize) -> impl Fn() -> BoxFuture<'static, f64> + 'static {
    let c = c.clone();
    move || {
        let c = c.clone();
        measured(tasks, move |t, n| {
            let c = c.clone();
            async move {
                c.set_bytes(&key(t as u64 * 7919 + n), Bytes::from_static(b"xxx"), None).await.unwrap();
            }
        })
    }
}

fn lock_cycle(l: &Arc<dyn Lock>, tasks: usize, prefix: &str) -> impl Fn() -> BoxFuture<'static, f64> + 'static {
    let l = l.clone();
    let keys: Arc<Vec<LockKey>> = Arc::new((0..tasks).map(|t| LockKey::new(format!("{prefix}{t}")).unwrap()).collect());
    move || {
        let (l, keys) = (l.clone(), keys.clone());
        measured(tasks, move |t, _| {
            let (l, keys) = (l.clone(), keys.clone());
            async move {
                let lease = l.try_acquire(&keys[t], Duration::from_secs(5)).await.unwrap().expect("uncontended");
                l.release(lease).await.unwrap();
            }
        })
    }
}

fn rate_check(
    l: &Arc<dyn RateLimiter>,
    tasks: usize,
    policy: RateLimitPolicy,
) -> impl Fn() -> BoxFuture<'static, f64> + 'static {
    let l = l.clone();
    let keys: Arc<Vec<RateLimitKey>> =
        Arc::new((0..KEYS).map(|i| RateLimitKey::new(format!("u{i}")).unwrap()).collect());
    move || {
        let (l, keys) = (l.clone(), keys.clone());
        measured(tasks, move |t, n| {
            let (l, keys) = (l.clone(), keys.clone());
            async move {
                let k = &keys[((t as u64 * 7919 + n) % KEYS) as usize];
                l.check(k, &policy, 1).await.unwrap();
            }
        })
    }
}

fn session_load(
    s: &Arc<dyn SessionStore>,
    ids: Arc<Vec<SessionId>>,
    tasks: usize,
) -> impl Fn() -> BoxFuture<'static, f64> + 'static {
    let s = s.clone();
    move || {
        let (s, ids) = (s.clone(), ids.clone());
        measured(tasks, move |t, n| {
            let (s, ids) = (s.clone(), ids.clone());
            async move {
                let id = &ids[((t as u64 * 7919 + n) % ids.len() as u64) as usize];
                assert!(s.load_bytes(id).await.unwrap().is_some());
            }
        })
    }
}

async fn sessions(s: &Arc<dyn SessionStore>) -> Arc<Vec<SessionId>> {
    let mut ids = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        ids.push(s.create_bytes(Bytes::from_static(b"xxx"), Duration::from_secs(600)).await.unwrap());
    }
    Arc::new(ids)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let db = TestDatabase::create().await;
    let pg_config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(pg_config.clone())).await.unwrap();
    let pool =
        PoolFactory::create_postgres_pool(&pg_config, &PoolConfig::default().max_connections(PG_POOL)).await.unwrap();

    let (_, redis_config) = common::redis_config("cpc-bench-pgkv");
    let manager = RedisManager::new(&redis_config).await.expect("Redis");
    let redis_cache = Arc::new(CacheManager::new(manager.clone(), Duration::from_secs(300)));

    let cache: Pair<dyn Cache> = Pair { pg: Arc::new(PgCache::new(pool.clone())), redis: redis_cache.clone() };
    // The same table read one statement per get, for the row that shows what batching gets buys.
    let unbatched: Arc<dyn Cache> = Arc::new(PgCache::new(pool.clone()).with_get_batching(0));
    let lock: Pair<dyn Lock> = Pair {
        pg: Arc::new(PgLock::new(pool.clone())),
        redis: Arc::new(DistributedLock::new(manager.clone()).with_fence_ttl(Duration::from_secs(60))),
    };
    let limiter: Pair<dyn RateLimiter> = Pair {
        pg: Arc::new(PgRateLimiter::new(pool.clone())),
        redis: Arc::new(RedisRateLimiter::new(manager.clone())),
    };
    let store: Pair<dyn SessionStore> =
        Pair { pg: Arc::new(PgSessionStore::new(pool.clone())), redis: Arc::new(SessionManager::new(manager.clone())) };

    for c in [&cache.pg, &cache.redis] {
        let entries: Vec<_> = (0..KEYS).map(|i| (key(i), Bytes::from_static(b"xxx"))).collect();
        for chunk in entries.chunks(1000) {
            c.set_many_bytes(chunk.to_vec(), None).await.unwrap();
        }
    }
    let (pg_ids, redis_ids) = (sessions(&store.pg).await, sessions(&store.redis).await);

    let token_bucket =
        RateLimitPolicy::TokenBucket { capacity: 1000, refill_tokens: 100, refill_interval: Duration::from_secs(1) };
    let sliding_window = RateLimitPolicy::SlidingWindow { limit: 100, window: Duration::from_secs(1) };

    let mut rows = Vec::new();
    for tasks in [1, 64] {
        rows.push(Row {
            name: "cache get".into(),
            tasks,
            pg: Box::new(cache_get(&cache.pg, tasks)),
            redis: Box::new(cache_get(&cache.redis, tasks)),
        });
        rows.push(Row {
            name: "cache get, PostgreSQL one statement per get (`with_get_batching(0)`)".into(),
            tasks,
            pg: Box::new(cache_get(&unbatched, tasks)),
            redis: Box::new(cache_get(&cache.redis, tasks)),
        });
        rows.push(Row {
            name: "cache set".into(),
            tasks,
            pg: Box::new(cache_set(&cache.pg, tasks)),
            redis: Box::new(cache_set(&cache.redis, tasks)),
        });
    }
    for tasks in [1, 16] {
        rows.push(Row {
            name: "lock try_acquire + release (distinct keys)".into(),
            tasks,
            pg: Box::new(lock_cycle(&lock.pg, tasks, "bench-")),
            redis: Box::new(lock_cycle(&lock.redis, tasks, "bench-")),
        });
    }
    for (name, policy) in
        [("rate limit check, token bucket", token_bucket), ("rate limit check, sliding window", sliding_window)]
    {
        rows.push(Row {
            name: name.into(),
            tasks: 64,
            pg: Box::new(rate_check(&limiter.pg, 64, policy)),
            redis: Box::new(rate_check(&limiter.redis, 64, policy)),
        });
    }
    rows.push(Row {
        name: "session load".into(),
        tasks: 64,
        pg: Box::new(session_load(&store.pg, pg_ids, 64)),
        redis: Box::new(session_load(&store.redis, redis_ids.clone(), 64)),
    });

    let load_before = load_average();
    let mut best = vec![[0f64; 2]; rows.len()];
    for round in 0..ROUNDS {
        for (row, best) in rows.iter().zip(best.iter_mut()) {
            rotated(round, vec![(row.pg)(), (row.redis)()], best).await;
        }
    }
    let load_after = load_average();

    println!("| operation | tasks | PostgreSQL (ops/s) | Redis (ops/s) | PG/Redis |");
    println!("|---|---:|---:|---:|---:|");
    for (row, [pg, redis]) in rows.iter().zip(&best) {
        println!("| {} | {} | {pg:.0} | {redis:.0} | {:.2}x |", row.name, row.tasks, pg / redis);
    }
    println!();
    println!("PostgreSQL pool: {PG_POOL} connections; Redis: one multiplexed connection.");
    println!("Load average (1, 5, 15 min) before the rounds: {load_before}; after: {load_after}.");

    redis_cache.delete_prefix("k").await.unwrap();
    redis_cache.delete_prefix("{rl:").await.unwrap();
    redis_cache.delete_prefix("{lock:").await.unwrap();
    for id in redis_ids.iter() {
        store.redis.destroy(id).await.unwrap();
    }
    drop((cache, unbatched, lock, limiter, store, pool));
    db.drop_now().await;
}
