//! `PgCache` on PostgreSQL: the `Cache` contract (concrete and as `dyn Cache`, a fresh migrated database per
//! case), plus what only a real server shows: expiry on the server clock, the background sweeper and its stop,
//! the entry bound, namespaces, `delete_prefix` through the primary key's index, and rows altered by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "pg-kv", feature = "diesel"))]

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::pg_kv::PgCache;
use cpc_adapters::pg_kv::cache::Swept;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgPool};
use cpc_ports::{Bytes, Cache, CacheExt, CacheKey, KeyTtl, KvError};
use cpc_test_servers::TestDatabase;

/// A migrated database with a cache on it; derefs to the cache. The database is dropped last.
struct Harness {
    cache: PgCache,
    db: TestDatabase,
}

impl Deref for Harness {
    type Target = PgCache;
    fn deref(&self) -> &PgCache {
        &self.cache
    }
}

async fn pool(db: &TestDatabase) -> PgPool {
    let config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(16)).await.unwrap()
}

async fn harness() -> Harness {
    let db = TestDatabase::create().await;
    let cache = PgCache::new(pool(&db).await).with_compute_wait(cpc_testkit::contract::cache::COMPUTE_WAIT);
    Harness { cache, db }
}

/// `Arc<dyn Cache>` that keeps its database alive.
struct DynHarness {
    cache: Arc<dyn Cache>,
    _db: TestDatabase,
}

impl Deref for DynHarness {
    type Target = dyn Cache;
    fn deref(&self) -> &(dyn Cache + 'static) {
        &*self.cache
    }
}

async fn dyn_harness() -> DynHarness {
    let Harness { cache, db } = harness().await;
    DynHarness { cache: Arc::new(cache), _db: db }
}

mod contract_concrete {
    cpc_testkit::cache_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::cache_contract!(super::dyn_harness());
}

fn key(text: &str) -> CacheKey {
    CacheKey::new(text).unwrap()
}

/// Runs `sql` on a connection of the cache's pool.
async fn exec(cache: &PgCache, sql: &str) -> u64 {
    cache.pool().get().await.unwrap().execute(sql, &[]).await.unwrap()
}

async fn rows_in_table(cache: &PgCache) -> i64 {
    let conn = cache.pool().get().await.unwrap();
    conn.query_one("SELECT count(*) FROM cpc_cache", &[]).await.unwrap().get(0)
}

/// Writes `n` entries `<prefix><i>` in one `set_many`.
async fn fill(cache: &PgCache, prefix: &str, n: usize, ttl: Duration) {
    let entries = (0..n).map(|i| (key(&format!("{prefix}{i}")), Bytes::from_static(b"v"))).collect();
    cache.set_many_bytes(entries, Some(ttl)).await.unwrap();
}

#[tokio::test]
async fn expiry_is_decided_by_the_server_clock_not_by_the_sweep() {
    let h = harness().await;
    let cache = h.cache.clone().with_sweep_interval(None);
    let (k, other) = (key("k"), key("other"));
    cache.set_bytes(&k, Bytes::from_static(b"v"), Some(Duration::from_secs(3600))).await.unwrap();
    cache.set_bytes(&other, Bytes::from_static(b"w"), Some(Duration::from_secs(3600))).await.unwrap();
    // Moved into the past on the server: the row is still there, but no read may return it.
    exec(&cache, "UPDATE cpc_cache SET expires_at = now() - interval '1 second' WHERE key = 'k'::bytea").await;
    assert_eq!(rows_in_table(&cache).await, 2, "nothing swept the row");
    assert_eq!(cache.get_bytes(&k).await.unwrap(), None, "an expired row is never returned");
    assert!(!cache.exists(&k).await.unwrap());
    assert_eq!(cache.ttl(&k).await.unwrap(), KeyTtl::Missing);
    assert_eq!(cache.get_many_bytes(&[k.clone(), other.clone()]).await.unwrap(), vec![None, Some("w".into())]);
    assert!(!cache.delete(&k).await.unwrap(), "deleting an expired row reports it was not there");
    assert_eq!(rows_in_table(&cache).await, 1, "but deletes the row");
    // Moved far into the future on the server: the TTL reports the server's view.
    exec(&cache, "UPDATE cpc_cache SET expires_at = now() + interval '2 days' WHERE key = 'other'::bytea").await;
    match cache.ttl(&other).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left > Duration::from_secs(47 * 3600), "{left:?}"),
        ttl => panic!("{ttl:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_deletes_expired_rows_in_batches_and_stops_when_the_cache_is_dropped() {
    let h = harness().await;
    let cache = h.cache.clone().with_sweep_interval(Some(Duration::from_millis(100))).with_sweep_batch(7);
    fill(&cache, "short:", 50, Duration::from_millis(50)).await;
    fill(&cache, "long:", 5, Duration::from_secs(60)).await;
    assert_eq!(rows_in_table(&cache).await, 55);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rows_in_table(&cache).await, 5, "the sweeper deleted every expired row, 7 at a time");
    assert_eq!(cache.get_many_bytes(&[key("long:0"), key("long:4")]).await.unwrap(), vec![Some("v".into()); 2]);

    let pool = cache.pool().clone();
    drop(cache);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let conn = pool.get().await.unwrap();
    conn.execute(
        "INSERT INTO cpc_cache (namespace, key, value, expires_at) \
         SELECT '', ('late:' || i)::bytea, 'v', now() - interval '1 second' FROM generate_series(1, 20) i",
        &[],
    )
    .await
    .unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left: i64 = pool.get().await.unwrap().query_one("SELECT count(*) FROM cpc_cache", &[]).await.unwrap().get(0);
    assert_eq!(left, 25, "a dropped cache's sweeper must have stopped");
    let swept = PgCache::new(pool).with_sweep_interval(None).sweep().await.unwrap();
    assert_eq!(swept, Swept { expired: 20, evicted: 0 }, "a pass by hand sweeps what the stopped one left");
}

#[tokio::test]
async fn the_entry_bound_evicts_the_soonest_to_expire_of_its_namespace_only() {
    let h = harness().await;
    let cache = h.cache.clone().with_sweep_interval(None).with_namespace("bounded").with_max_entries(100);
    let other = h.cache.clone().with_sweep_interval(None).with_namespace("other");
    for i in 0..150_u64 {
        cache
            .set_bytes(&key(&format!("k{i}")), Bytes::from_static(b"v"), Some(Duration::from_secs(60 + i)))
            .await
            .unwrap();
    }
    fill(&other, "o", 30, Duration::from_secs(1)).await;
    let swept = cache.clone().with_sweep_batch(16).sweep().await.unwrap();
    assert_eq!(swept, Swept { expired: 0, evicted: 50 });
    let keys: Vec<CacheKey> = (0..150).map(|i| key(&format!("k{i}"))).collect();
    let got = cache.get_many_bytes(&keys).await.unwrap();
    let kept: Vec<usize> = got.iter().enumerate().filter(|(_, v)| v.is_some()).map(|(i, _)| i).collect();
    assert_eq!(kept, (50..150).collect::<Vec<_>>(), "the 50 entries expiring soonest were evicted");
    assert_eq!(rows_in_table(&cache).await, 130, "the other namespace keeps its 30 entries");
    assert_eq!(cache.sweep().await.unwrap(), Swept::default(), "within the bound nothing more goes");
}

#[tokio::test]
async fn namespaces_keep_their_keys_apart() {
    let h = harness().await;
    let (a, b) = (h.cache.clone().with_namespace("a:"), h.cache.clone().with_namespace("b:"));
    let k = key("user:1");
    a.set(&k, &1_u32, None).await.unwrap();
    b.set(&k, &2_u32, None).await.unwrap();
    assert_eq!((a.get::<u32>(&k).await.unwrap(), b.get::<u32>(&k).await.unwrap()), (Some(1), Some(2)));
    assert_eq!(a.delete_prefix("user:").await.unwrap(), 1);
    assert_eq!(b.get::<u32>(&k).await.unwrap(), Some(2), "delete_prefix stays in its namespace");
    assert!(a.set_if_absent(&key("n"), &1_u32, None).await.unwrap());
    assert!(b.set_if_absent(&key("n"), &2_u32, None).await.unwrap(), "the key is free in the other namespace");
    assert_eq!(b.get::<u32>(&key("n")).await.unwrap(), Some(2), "set_if_absent in one namespace ignores the other");
}

#[tokio::test]
async fn set_many_with_a_key_twice_keeps_the_last_value() {
    let h = harness().await;
    let (k, j) = (key("k"), key("j"));
    let entries = vec![(k.clone(), "first".into()), (j.clone(), "j".into()), (k.clone(), "last".into())];
    h.set_many_bytes(entries, None).await.unwrap();
    assert_eq!(h.get_many_bytes(&[k, j]).await.unwrap(), vec![Some("last".into()), Some("j".into())]);
}

/// The plan of `DELETE_PREFIX_SQL` for `prefix`, custom or generic.
async fn delete_prefix_plan(cache: &PgCache, prefix: &str, generic: bool) -> String {
    let conn = cache.pool().get().await.unwrap();
    let mode = if generic { "force_generic_plan" } else { "auto" };
    conn.execute(&format!("SET plan_cache_mode = {mode}"), &[]).await.unwrap();
    let to = {
        let mut b = prefix.as_bytes().to_vec();
        *b.last_mut().unwrap() += 1;
        b
    };
    let sql = format!("EXPLAIN {}", PgCache::DELETE_PREFIX_SQL);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&cache.namespace(), &prefix.as_bytes(), &to.as_slice(), &PgCache::DELETE_PREFIX_BATCH];
    let rows = conn.query(&sql, &params).await.unwrap();
    conn.execute("RESET plan_cache_mode", &[]).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn delete_prefix_walks_the_primary_key_range_never_the_whole_table() {
    let h = harness().await;
    let cache = h.cache.clone().with_sweep_interval(None);
    fill(&cache, "bulk:", 10_000, Duration::from_secs(600)).await;
    fill(&cache, "user:42:", 10, Duration::from_secs(600)).await;
    exec(&cache, "ANALYZE cpc_cache").await;
    for generic in [false, true] {
        let plan = delete_prefix_plan(&cache, "user:42:", generic).await;
        assert!(!plan.contains("Seq Scan"), "generic plan {generic}: no sequential scan:\n{plan}");
        assert!(plan.contains("Index Scan using cpc_cache_pkey"), "generic plan {generic}: the key's index:\n{plan}");
        assert!(plan.contains("Tid Scan"), "generic plan {generic}: rows deleted by ctid:\n{plan}");
    }
    assert_eq!(cache.delete_prefix("user:42:").await.unwrap(), 10);
    // More than one statement's batch of 10,000: the loop goes on until the range is empty.
    fill(&cache, "bulk:", 2_500, Duration::from_secs(600)).await;
    fill(&cache, "bulk:x", 500, Duration::from_secs(600)).await;
    fill(&cache, "bulk;", 3, Duration::from_secs(600)).await;
    assert_eq!(cache.delete_prefix("bulk:").await.unwrap(), 10_500);
    assert_eq!(rows_in_table(&cache).await, 3, "only the keys after the prefix's range are left");
}

#[tokio::test]
async fn rows_altered_by_hand_are_typed_errors_not_panics() {
    let h = harness().await;
    let (k, g) = (key("typed"), key("garbage"));
    h.set(&k, &42_u64, None).await.unwrap();
    h.set(&g, &42_u64, None).await.unwrap();
    exec(&h, "UPDATE cpc_cache SET value = '\\xdeadbeef00ff'::bytea WHERE key = 'garbage'::bytea").await;
    let err = h.get::<u64>(&g).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "garbage bytes for a typed get: {err:?}");
    let err = h.get_many::<u64>(&[k.clone(), g.clone()]).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "garbage bytes in a typed get_many: {err:?}");
    assert_eq!(h.get::<u64>(&k).await.unwrap(), Some(42), "the untouched row still reads");
    let err = h.get::<String>(&k).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "a value of another type: {err:?}");

    // A column of another type than the library's migration created.
    exec(&h, "ALTER TABLE cpc_cache ALTER COLUMN value TYPE text USING encode(value, 'hex')").await;
    let err = h.get_bytes(&k).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { .. }), "a text column where bytes belong: {err:?}");
    let err = h.get_many_bytes(std::slice::from_ref(&k)).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { .. }), "get_many on a text column: {err:?}");
    exec(&h, "ALTER TABLE cpc_cache ALTER COLUMN expires_at TYPE text").await;
    let err = h.ttl(&k).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { .. }), "ttl over a text expiry: {err:?}");
}

#[tokio::test]
async fn ttl_jitter_only_ever_shortens_and_spreads_the_expiry() {
    let h = harness().await;
    let cache = h.cache.clone().with_ttl_jitter(0.5);
    fill(&cache, "j", 200, Duration::from_secs(100)).await;
    let conn = cache.pool().get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT min(extract(epoch FROM expires_at - now()))::float8, max(extract(epoch FROM expires_at - now()))::float8, \
             count(DISTINCT expires_at) FROM cpc_cache",
            &[],
        )
        .await
        .unwrap();
    let (min, max, distinct): (f64, f64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(min >= 49.9 && max <= 100.0, "between half the TTL and the TTL: {min}..{max}");
    assert!(distinct > 150, "200 entries written together expire at {distinct} distinct times");
}

#[tokio::test]
async fn a_sweep_skips_the_rows_a_writer_holds_instead_of_waiting_for_them() {
    let h = harness().await;
    let cache = h.cache.clone().with_sweep_interval(None);
    fill(&cache, "e", 10, Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let holder = cache.pool().get().await.unwrap();
    holder.batch_execute("BEGIN; SELECT 1 FROM cpc_cache WHERE key = 'e0'::bytea FOR UPDATE").await.unwrap();
    let swept = tokio::time::timeout(Duration::from_secs(2), cache.sweep()).await.expect("the sweep must not wait");
    assert_eq!(swept.unwrap().expired, 9, "every expired row but the held one");
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(cache.sweep().await.unwrap().expired, 1, "the row once released");
}

/// Lookups of this database waiting for a lock (the gets queued behind a table lock).
async fn waiting_for_a_lock(cache: &PgCache) -> i64 {
    let conn = cache.pool().get().await.unwrap();
    conn.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' \
         AND query LIKE 'SELECT %value FROM cpc_cache %'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn concurrent_gets_share_statements_each_answered_with_its_own_key() {
    let h = harness().await;
    // No sweeper: its first pass would queue behind the table lock too.
    let base = h.cache.clone().with_sweep_interval(None);
    let entries = (0..100).map(|i| (key(&format!("b{i}")), Bytes::from(format!("v{i}")))).collect();
    base.set_many_bytes(entries, None).await.unwrap();
    for in_flight in [1, 3] {
        let cache = base.clone().with_get_batching(in_flight);
        // Hold the table so the first lookups wait, and every get called meanwhile queues behind them.
        let mut holder = cache.pool().get().await.unwrap();
        let tx = holder.transaction().await.unwrap();
        tx.batch_execute("LOCK TABLE cpc_cache IN ACCESS EXCLUSIVE MODE").await.unwrap();
        let gets: Vec<_> = (0..300)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move { (i, cache.get_bytes(&key(&format!("b{i}"))).await) })
            })
            .collect();
        let mut waiting = 0;
        for _ in 0..100 {
            waiting = waiting_for_a_lock(&cache).await;
            if waiting >= i64::try_from(in_flight).unwrap() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waiting = waiting.max(waiting_for_a_lock(&cache).await);
        // 300 gets: 128 + 128 + 44 keys, so as many statements as allowed, and no more.
        assert_eq!(waiting, i64::try_from(in_flight).unwrap(), "300 gets: {in_flight} statements at once");
        // A caller that stops waiting cancels nothing the others wait for.
        gets[0].abort();
        tx.rollback().await.unwrap();
        for get in gets.into_iter().skip(1) {
            let (i, value) = get.await.unwrap();
            let expected = (i < 100).then(|| Bytes::from(format!("v{i}")));
            assert_eq!(value.unwrap(), expected, "key b{i}, {in_flight} in flight");
        }
    }
}
