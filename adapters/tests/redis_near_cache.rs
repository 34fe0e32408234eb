//! `NearCache` against the shared Redis (`REDIS_URL`) and private servers: the `Cache` contract (concrete and as
//! `dyn Cache`), and coherence with independent clients: another client's write reaches the local tier within a
//! second, two near caches see each other's writes, a racing writer never leaves a stale value behind, a lost
//! invalidation connection empties and bypasses the local tier until it is back, and a cluster is refused.
//! Every test asserts the local hit/miss/bypass counters, not only the values.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::{private_manager, shared_manager};

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpc_adapters::redis::{CacheManager, NearCache, NearCacheConfig, NearCacheStats, RedisConfig, RedisManager};
use cpc_ports::{Bytes, Cache, CacheExt, CacheKey, KvError};
use cpc_test_servers::{PrivateRedis, PrivateRedisCluster};

/// How long another client's write may take to reach a near cache's reads.
const DELIVERY: Duration = Duration::from_secs(1);

/// A local TTL far longer than any test, so only invalidations can make a local value go.
fn long_lived() -> NearCacheConfig {
    NearCacheConfig::default().with_max_local_ttl(Duration::from_secs(60))
}

/// A near cache with the default bounds; its `get_or_set` waiters give up after the contract suite's
/// `COMPUTE_WAIT`.
async fn near(namespace: &str) -> NearCache {
    let remote = CacheManager::new(shared_manager(namespace).await, Duration::from_secs(60))
        .with_compute_wait(cpc_testkit::contract::cache::COMPUTE_WAIT);
    NearCache::new(remote, NearCacheConfig::default()).await.unwrap()
}

/// An independent client on `near`'s entries: its own manager (its own connections) on the same namespace.
async fn other_client(near: &NearCache) -> CacheManager {
    let manager = RedisManager::new(near.remote().manager().config()).await.unwrap();
    CacheManager::new(manager, Duration::from_secs(60))
}

/// A second near cache, with its own connections, on `near`'s entries.
async fn other_near(near: &NearCache) -> NearCache {
    NearCache::new(other_client(near).await, long_lived()).await.unwrap()
}

fn key(text: &str) -> CacheKey {
    CacheKey::new(text).unwrap()
}

/// Reads `k` through `near` until it holds `want`; panics after `within`.
async fn read_until<T>(near: &NearCache, k: &CacheKey, want: Option<T>, within: Duration) -> Duration
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Send,
{
    let started = Instant::now();
    loop {
        let got: Option<T> = near.get(k).await.unwrap();
        if got == want {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "still {got:?} instead of {want:?} after {within:?}: {:?}", near.stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads the counter `k` through `near` until it is `want`; panics after `within`.
async fn counter_until(near: &NearCache, k: &CacheKey, want: Option<i64>, within: Duration) {
    let started = Instant::now();
    while near.get_counter(k).await.unwrap() != want {
        assert!(started.elapsed() < within, "the counter is not {want:?} after {within:?}: {:?}", near.stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `check` holds of `near`'s stats; panics after `within`.
async fn stats_until(near: &NearCache, within: Duration, check: impl Fn(&NearCacheStats) -> bool) -> NearCacheStats {
    let started = Instant::now();
    loop {
        let stats = near.stats();
        if check(&stats) {
            return stats;
        }
        assert!(started.elapsed() < within, "not reached within {within:?}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `write` (of `keys` keys of the near caches' entries) and waits until each of `nears` has applied its
/// invalidations: a write, also one through the near cache itself, comes back as an invalidation, and one that
/// arrives after a later read filled the local tier drops that value again (one more miss), which would make
/// the counters a test asserts depend on timing.
async fn settled<T>(
    nears: &[&NearCache],
    keys: u64,
    write: impl std::future::Future<Output = Result<T, KvError>>,
) -> T {
    let before: Vec<u64> = nears.iter().map(|near| near.stats().pushed_invalidations).collect();
    let written = write.await.unwrap();
    for (near, before) in nears.iter().zip(before) {
        stats_until(near, DELIVERY, |s| s.pushed_invalidations >= before + keys).await;
    }
    written
}

/// The client ids connected to the shared server.
async fn client_ids(admin: &RedisManager) -> Vec<i64> {
    let list: String = admin.query(redis::cmd("CLIENT").arg("LIST"), "client list").await.unwrap();
    list.lines()
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")).and_then(|id| id.parse().ok()))
        .collect()
}

mod contract_concrete {
    cpc_testkit::cache_contract!(async { std::sync::Arc::new(super::near("near-contract").await) });
}

mod contract_dyn {
    use std::sync::Arc;

    use cpc_ports::Cache;

    cpc_testkit::cache_contract!(async { Arc::new(super::near("near-contract-dyn").await) as Arc<dyn Cache> });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_write_reaches_reads_within_a_second_after_local_hits_served_the_old_value() {
    let remote = CacheManager::new(shared_manager("near-other").await, Duration::from_secs(60));
    let near = NearCache::new(remote, long_lived()).await.unwrap();
    let other = other_client(&near).await;
    let k = key("price");
    settled(&[&near], 1, other.set(&k, "old", None)).await;

    for _ in 0..3 {
        assert_eq!(near.get::<String>(&k).await.unwrap().as_deref(), Some("old"));
    }
    let before = near.stats();
    assert_eq!((before.misses, before.hits, before.entries), (1, 2, 1), "one read from Redis, then local hits");

    other.set(&k, "new", None).await.unwrap();
    let took = read_until(&near, &k, Some("new".to_owned()), DELIVERY).await;
    let after = stats_until(&near, DELIVERY, |s| s.pushed_invalidations >= 1).await;
    assert!(after.misses >= 2, "the new value came from Redis: {after:?}");
    assert_eq!(near.get::<String>(&k).await.unwrap().as_deref(), Some("new"));
    assert!(near.stats().hits > after.hits, "and is served locally again");
    println!("another client's write reached the near cache's reads after {took:?}");

    // A delete and an expiry set elsewhere reach it too.
    other.delete(&k).await.unwrap();
    read_until(&near, &k, None::<String>, DELIVERY).await;
    other.set(&k, "short", Some(Duration::from_millis(300))).await.unwrap();
    read_until(&near, &k, Some("short".to_owned()), DELIVERY).await;
    read_until(&near, &k, None::<String>, DELIVERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_near_caches_read_each_others_writes_and_their_own_at_once() {
    let a = NearCache::new(CacheManager::new(shared_manager("near-two").await, Duration::from_secs(60)), long_lived())
        .await
        .unwrap();
    let b = other_near(&a).await;
    let k = key("profile:7");
    settled(&[&a, &b], 1, a.set(&k, &1_u32, None)).await;
    for near in [&a, &b] {
        for _ in 0..2 {
            assert_eq!(near.get::<u32>(&k).await.unwrap(), Some(1));
        }
        assert_eq!((near.stats().misses, near.stats().hits), (1, 1));
    }

    a.set(&k, &2_u32, None).await.unwrap();
    assert_eq!(a.get::<u32>(&k).await.unwrap(), Some(2), "a reads its own write at once");
    assert!(a.stats().own_invalidations >= 1);
    read_until(&b, &k, Some(2_u32), DELIVERY).await;
    assert!(b.stats().pushed_invalidations >= 1, "{:?}", b.stats());

    // A counter, an expiry and a get-and-delete through b reach a.
    let n = key("visits");
    a.set_bytes(&n, Bytes::from_static(b"10"), None).await.unwrap();
    assert_eq!(a.get_counter(&n).await.unwrap(), Some(10));
    assert_eq!(b.increment_by(&n, 5, None).await.unwrap(), 15);
    counter_until(&a, &n, Some(15), DELIVERY).await;
    assert!(b.expire(&n, Some(Duration::from_millis(200))).await.unwrap());
    counter_until(&a, &n, None, Duration::from_millis(200) + DELIVERY).await;
    assert_eq!(b.get_and_delete::<u32>(&k).await.unwrap(), Some(2));
    read_until(&a, &k, None::<u32>, DELIVERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_another_clients_writes_never_keep_a_stale_value() {
    let near =
        NearCache::new(CacheManager::new(shared_manager("near-race").await, Duration::from_secs(60)), long_lived())
            .await
            .unwrap();
    let near = Arc::new(near);
    let writer = other_client(&near).await;
    let k = key("racing");
    writer.set(&k, &0_u32, None).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers keep missing and filling while the writer writes: a read that fetched the value before a write
    // and stores it after that write's invalidation was applied would keep it until the next write.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (near, k, stop) = (Arc::clone(&near), k.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    near.get::<u32>(&k).await.unwrap();
                    // A local hit completes without yielding: let the test's own task run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for round in 1..=300_u32 {
        let applied = near.stats().pushed_invalidations;
        writer.set(&k, &round, None).await.unwrap();
        stats_until(&near, DELIVERY, |s| s.pushed_invalidations > applied).await;
        // The reads in flight when the invalidation was applied are done by now: none may have kept the old value.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let seen: u32 = near.get(&k).await.unwrap().unwrap();
        assert_eq!(seen, round, "round {round}: a stale value stayed in the local tier: {:?}", near.stats());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    let stats = near.stats();
    assert!(stats.hits > 0 && stats.misses > 300 && stats.pushed_invalidations >= 300, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_invalidation_connection_empties_the_local_tier_and_local_hits_resume_after_reconnect() {
    let near =
        NearCache::new(CacheManager::new(shared_manager("near-kill").await, Duration::from_secs(60)), long_lived())
            .await
            .unwrap();
    let admin = shared_manager("near-kill-admin").await;
    let k = key("kept");
    settled(&[&near], 1, near.set(&k, "v1", None)).await;
    near.get::<String>(&k).await.unwrap();
    near.get::<String>(&k).await.unwrap();
    let before = near.stats();
    assert_eq!((before.hits, before.entries, before.flushes), (1, 1, 1));
    let old_id = near.tracking_client_id().unwrap();
    assert!(client_ids(&admin).await.contains(&old_id));

    let killed: u64 = admin.query(redis::cmd("CLIENT").arg("KILL").arg("ID").arg(old_id), "kill").await.unwrap();
    assert_eq!(killed, 1);
    let after = stats_until(&near, Duration::from_secs(3), |s| s.flushes >= 3 && s.tracking).await;
    assert_eq!(after.entries, 0, "emptied on the loss (and again on the reconnect): {after:?}");
    let new_id = near.tracking_client_id().unwrap();
    assert_ne!(new_id, old_id);

    // Still correct: the value is read from Redis again (a miss), then served locally.
    assert_eq!(near.get::<String>(&k).await.unwrap().as_deref(), Some("v1"));
    assert_eq!(near.stats().misses, before.misses + 1);
    assert_eq!(near.get::<String>(&k).await.unwrap().as_deref(), Some("v1"));
    assert_eq!(near.stats().hits, before.hits + 1, "local hits resume after the reconnect");

    // And the new connection tracks: another client's write still arrives.
    other_client(&near).await.set(&k, "v2", None).await.unwrap();
    read_until(&near, &k, Some("v2".to_owned()), DELIVERY).await;

    // Dropping the near cache closes its invalidation connection.
    drop(near);
    let deadline = Instant::now() + DELIVERY;
    while client_ids(&admin).await.contains(&new_id) {
        assert!(Instant::now() < deadline, "the tracking connection outlived its near cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_server_is_gone_reads_bypass_the_local_tier_and_never_serve_what_it_held() {
    let server = PrivateRedis::start().await;
    let manager = private_manager(&server, "near-down:", Duration::from_millis(300)).await;
    let config = long_lived().with_keepalive(Duration::from_millis(100));
    let near = NearCache::new(CacheManager::new(manager, Duration::from_secs(60)), config).await.unwrap();
    let k = key("held");
    settled(&[&near], 1, near.set(&k, "before the crash", None)).await;
    near.get::<String>(&k).await.unwrap();
    near.get::<String>(&k).await.unwrap();
    assert_eq!(near.stats().hits, 1);

    server.kill();
    let down = stats_until(&near, Duration::from_secs(2), |s| !s.tracking).await;
    assert_eq!(down.entries, 0);
    let read = near.get::<String>(&k).await;
    assert!(matches!(read, Err(KvError::Unavailable { .. } | KvError::Timeout { .. })), "{read:?}");
    assert_eq!(near.stats().bypassed, 1, "the read went to Redis, not to the local tier");
    assert_eq!(near.stats().hits, 1);

    // The server comes back empty: the value the local tier held is gone for good, never served again.
    server.restart().await;
    stats_until(&near, Duration::from_secs(5), |s| s.tracking).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let got = loop {
        match near.get::<String>(&k).await {
            Ok(got) => break got,
            Err(e) => assert!(Instant::now() < deadline, "the data connection did not come back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got, None);
    settled(&[&near], 1, near.set(&k, "after", None)).await;
    near.get::<String>(&k).await.unwrap();
    let hits = near.stats().hits;
    assert_eq!(near.get::<String>(&k).await.unwrap().as_deref(), Some("after"));
    assert_eq!(near.stats().hits, hits + 1, "local hits resume once tracking is back");
}

#[tokio::test]
async fn a_remote_ttl_shorter_than_the_local_bound_is_kept_locally_too() {
    let near = near("near-ttl").await;
    let k = key("brief");
    settled(&[&near], 1, near.set(&k, "soon gone", Some(Duration::from_millis(250)))).await;
    near.get::<String>(&k).await.unwrap();
    assert_eq!(near.get::<String>(&k).await.unwrap().as_deref(), Some("soon gone"));
    assert_eq!(near.stats().hits, 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(near.get::<String>(&k).await.unwrap(), None, "the local copy expired with the remote key");
}

#[tokio::test]
async fn get_many_serves_local_hits_and_reads_only_the_rest() {
    let near = near("near-many").await;
    let keys: Vec<CacheKey> = (0..4).map(|i| key(&format!("k{i}"))).collect();
    settled(&[&near], 1, near.set(&keys[0], &0, None)).await;
    settled(&[&near], 1, near.set(&keys[2], &2, None)).await;
    near.get::<i32>(&keys[0]).await.unwrap();
    let got: Vec<Option<i32>> = near.get_many(&keys).await.unwrap();
    assert_eq!(got, vec![Some(0), None, Some(2), None]);
    let stats = near.stats();
    assert_eq!((stats.hits, stats.misses), (1, 4), "k0 local, k1..k3 read in one round trip");
    let got: Vec<Option<i32>> = near.get_many(&keys).await.unwrap();
    assert_eq!(got, vec![Some(0), None, Some(2), None]);
    assert_eq!(near.stats().hits, 3, "k0 and k2 local now; missing keys are not kept");
}

#[tokio::test]
async fn delete_prefix_empties_the_local_tier() {
    let near = near("near-prefix").await;
    let (a, b) = (key("user:1"), key("order:1"));
    settled(&[&near], 1, near.set(&a, "ann", None)).await;
    settled(&[&near], 1, near.set(&b, "book", None)).await;
    near.get::<String>(&a).await.unwrap();
    near.get::<String>(&b).await.unwrap();
    assert_eq!(near.stats().entries, 2);
    assert_eq!(near.delete_prefix("user:").await.unwrap(), 1);
    assert_eq!(near.stats().entries, 0);
    assert_eq!(near.get::<String>(&a).await.unwrap(), None);
    assert_eq!(near.get::<String>(&b).await.unwrap().as_deref(), Some("book"));
}

#[tokio::test]
async fn a_zero_bound_is_refused_naming_the_field() {
    let remote = CacheManager::new(shared_manager("near-config").await, Duration::from_secs(60));
    let error = NearCache::new(remote, NearCacheConfig::default().with_max_entries(0)).await.unwrap_err();
    assert!(matches!(&error, KvError::Validation(v) if v.field == "max_entries"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_is_refused_with_a_typed_error() {
    let cluster = PrivateRedisCluster::start().await;
    let config = RedisConfig::parse_cluster_urls(&cluster.urls(), "REDIS_CLUSTER_URLS").unwrap();
    let remote = CacheManager::new(RedisManager::new(&config).await.unwrap(), Duration::from_secs(60));
    let error = NearCache::new(remote, NearCacheConfig::default()).await.unwrap_err();
    assert!(matches!(error, KvError::Unsupported { operation: "near cache", .. }), "{error:?}");
}
