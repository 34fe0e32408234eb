//! Every Redis adapter on a Redis Cluster of 3 masters and 3 replicas started by the harness
//! (`PrivateRedisCluster`): the cache, lock, rate limiter, session, job queue and pub/sub contract suites unchanged (pub/sub
//! without its pattern cases: sharded channels have no pattern form, and a pattern subscription must be refused
//! as `Unsupported`), multi-key operations whose keys span hash slots, the configuration forms, two failovers
//! (a master is killed, or swapped with its replica by `CLUSTER FAILOVER`) after which the same adapters work
//! again, and a TLS-only cluster (`rediss://` seeds, the CA from `REDIS_CA_CERT`; a wrong CA fails fast).
//!
//! Each contract suite runs in one test on a cluster of its own (starting one costs a few seconds), each case
//! under a fresh key namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpc_adapters::redis::{
    CacheManager, DistributedLock, PubSubManager, RedisConfig, RedisHealthChecker, RedisJobQueue, RedisManager,
    RedisRateLimiter, SessionManager,
};
use cpc_ports::{
    Bytes, Cache, CacheKey, Channel, HealthCheck, HealthStatus, KvError, Lock, LockKey, PubSub, RateLimitKey,
    RateLimitPolicy, RateLimiter, SessionStore,
};
use cpc_test_servers::PrivateRedisCluster;
use futures::StreamExt;

/// A manager on `cluster` (from `REDIS_CLUSTER_URLS`, plus `REDIS_CA_CERT` for a TLS cluster) under a namespace
/// of its own.
async fn manager(cluster: &PrivateRedisCluster, case: &str) -> RedisManager {
    let namespace = format!("cpc-cluster-test:{case}:{}:", uuid::Uuid::new_v4());
    let ca = cluster.is_tls().then(|| cluster.ca_cert_path().display().to_string());
    let config = RedisConfig::from_lookup(|name| match name {
        "REDIS_CLUSTER_URLS" => Some(cluster.urls()),
        "REDIS_NAMESPACE" => Some(namespace.clone()),
        "REDIS_CA_CERT" => ca.clone(),
        _ => None,
    })
    .unwrap();
    assert!(config.is_cluster());
    RedisManager::new(&config).await.unwrap_or_else(|e| panic!("no connection to the test cluster {config}: {e}"))
}

/// A cache for the contract suite (its `get_or_set` waiters give up after the suite's compute wait).
fn cache_on(manager: RedisManager) -> CacheManager {
    CacheManager::new(manager, Duration::from_secs(60)).with_compute_wait(cpc_testkit::contract::cache::COMPUTE_WAIT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_contract_holds_on_a_cluster() {
    let cluster = PrivateRedisCluster::start().await;
    cpc_testkit::cache_contract!(async { Arc::new(cache_on(manager(&cluster, "cache").await)) }, inline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_contract_holds_on_a_cluster() {
    let cluster = PrivateRedisCluster::start().await;
    cpc_testkit::lock_contract!(async { Arc::new(DistributedLock::new(manager(&cluster, "lock").await)) }, inline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_contract_holds_on_a_cluster() {
    let cluster = PrivateRedisCluster::start().await;
    cpc_testkit::rate_limit_contract!(async { Arc::new(RedisRateLimiter::new(manager(&cluster, "rl").await)) }, inline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_contract_holds_on_a_cluster() {
    let cluster = PrivateRedisCluster::start().await;
    cpc_testkit::session_contract!(async { Arc::new(SessionManager::new(manager(&cluster, "session").await)) }, inline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pubsub_contract_holds_on_a_cluster_with_sharded_channels_and_no_patterns() {
    let cluster = PrivateRedisCluster::start().await;
    cpc_testkit::pubsub_contract!(async { Arc::new(PubSubManager::new(manager(&cluster, "pubsub").await)) }, inline);
}

/// The job queue keeps every key of a queue under the hash tag `{queue}`, so its scripts run on one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_queue_contract_holds_on_a_cluster() {
    let cluster = PrivateRedisCluster::start().await;
    cpc_testkit::job_queue_contract!(async { Arc::new(RedisJobQueue::new(manager(&cluster, "jobs").await)) }, inline);
}

/// Keys spread over many hash slots (and so over the three masters), and what crosses slots: `get_many` and
/// `set_many` of 60 keys, `delete_prefix` over every master, 64 concurrent rate-limit checks batched per slot,
/// the health check, and the exclusive pool a cluster does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_spanning_hash_slots_work_on_a_cluster() {
    let cluster = PrivateRedisCluster::start().await;
    let m = manager(&cluster, "slots").await;
    assert!(m.is_cluster());
    let cache = cache_on(m.clone());
    let keys: Vec<CacheKey> = (0..60).map(|i| CacheKey::new(format!("item:{i}")).unwrap()).collect();
    let entries: Vec<(CacheKey, Bytes)> =
        keys.iter().enumerate().map(|(i, k)| (k.clone(), Bytes::from(format!("value {i}")))).collect();
    cache.set_many_bytes(entries, None).await.unwrap();
    let mut asked = keys.clone();
    asked.insert(30, CacheKey::new("missing").unwrap());
    let found = cache.get_many_bytes(&asked).await.unwrap();
    assert_eq!(found.len(), 61);
    assert_eq!(found[30], None, "the missing key reads as None in its place");
    for (i, value) in found.iter().enumerate().filter(|(i, _)| *i != 30) {
        let n = if i < 30 { i } else { i - 1 };
        assert_eq!(value.as_deref(), Some(format!("value {n}").as_bytes()), "entry {i} in order");
    }
    assert_eq!(cache.delete_prefix("item:").await.unwrap(), 60, "every master was walked");
    assert!(cache.get_many_bytes(&keys).await.unwrap().iter().all(Option::is_none));

    let limiter = RedisRateLimiter::new(m.clone());
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 2, refill_tokens: 1, refill_interval: Duration::from_secs(60) };
    let checks = (0..64).map(|i| {
        let (limiter, key) = (limiter.clone(), RateLimitKey::new(format!("user:{}", i % 32)).unwrap());
        async move { limiter.check(&key, &policy, 1).await.unwrap().allowed }
    });
    let allowed = futures::future::join_all(checks).await.into_iter().filter(|a| *a).count();
    assert_eq!(allowed, 64, "two checks per key fit a capacity of 2, whatever slot each key is in");
    let third = limiter.check(&RateLimitKey::new("user:7").unwrap(), &policy, 1).await.unwrap();
    assert!(!third.allowed, "a third check on one key is refused");

    let report = RedisHealthChecker::new(m.clone()).check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(format!("{report:?}").contains("cluster_state"), "{report:?}");
    assert_eq!(report.details["maxmemory_policy"].matches("=noeviction").count(), 3, "each master's: {report:?}");
    assert!(matches!(m.exclusive().await, Err(KvError::Unsupported { .. })));

    // One master that may evict keys without a TTL degrades the report, naming it.
    let evicting = cluster.master_of("any-key");
    let admin = redis::Client::open(format!("redis://127.0.0.1:{evicting}/0")).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut admin)
        .await
        .unwrap();
    let report = RedisHealthChecker::new(m.clone()).check().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.details["reason"].contains(&format!("allkeys-lru on 127.0.0.1:{evicting}")), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_configuration_forms_reach_the_cluster() {
    let cluster = PrivateRedisCluster::start().await;
    let from_url = RedisConfig::from_lookup(|name| (name == "REDIS_URL").then(|| cluster.cluster_url())).unwrap();
    let from_list = RedisConfig::from_lookup(|name| (name == "REDIS_CLUSTER_URLS").then(|| cluster.urls())).unwrap();
    assert_eq!(from_url.cluster_nodes, from_list.cluster_nodes);
    assert_eq!(from_url.cluster_nodes.len(), 6);
    for config in [from_url, from_list] {
        let cache = cache_on(RedisManager::new(&config).await.unwrap());
        let key = CacheKey::new(format!("form:{}", uuid::Uuid::new_v4())).unwrap();
        cache.set_bytes(&key, Bytes::from_static(b"ok"), None).await.unwrap();
        assert_eq!(cache.get_bytes(&key).await.unwrap().as_deref(), Some(&b"ok"[..]));
    }
}

/// Retries `op` until it succeeds, for at most `limit`; panics with the last error after that.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KvError>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match op().await {
            Ok(value) => return value,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%e, "{what}: not yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what} still fails {limit:?} after the failover: {e}"),
        }
    }
}

/// A master is killed (`SIGKILL`); once its replica is promoted (bounded: 30 s), the cache, lock, rate limiter,
/// sessions and pub/sub built before the failover work again on keys of that master's slots, without being
/// rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_master_fails_over_the_same_adapters_work_again() {
    let cluster = PrivateRedisCluster::start().await;
    let m = manager(&cluster, "failover").await;
    let cache = cache_on(m.clone());
    let lock = DistributedLock::new(m.clone());
    let limiter = RedisRateLimiter::new(m.clone());
    let sessions = SessionManager::new(m.clone());
    let bus = PubSubManager::new(m.clone());
    let key = CacheKey::new("hot").unwrap();
    let lock_key = LockKey::new("hot").unwrap();
    // The channel's stored name is the cache key's (`<namespace>cache:hot`), so both live on the master that is
    // killed.
    let channel = Channel::new(format!("{}hot", CacheManager::KEY_PREFIX)).unwrap();
    cache.set_bytes(&key, Bytes::from_static(b"before"), None).await.unwrap();
    let mut sub = bus.subscribe_bytes(&channel).await.unwrap();
    assert_eq!(bus.publish_bytes(&channel, Bytes::from_static(b"before")).await.unwrap(), 1);
    let first = tokio::time::timeout(Duration::from_secs(2), sub.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.payload, Bytes::from_static(b"before"));

    let old = cluster.master_of(&cache.stored_key("hot"));
    assert_eq!(cluster.master_of(&m.key(channel.as_str())), old);
    assert_eq!(cluster.master_of(&lock.lock_key_name(&lock_key)), cluster.master_of(&lock.fence_key_name(&lock_key)));
    let killed_at = Instant::now();
    cluster.kill(old);
    let new = cluster.wait_for_new_master(&cache.stored_key("hot"), old).await;
    assert_ne!(new, old);
    eprintln!("replica on port {new} took over from {old} after {:?}", killed_at.elapsed());

    let limit = Duration::from_secs(30);
    eventually("cache set", limit, || cache.set_bytes(&key, Bytes::from_static(b"after"), None)).await;
    assert_eq!(cache.get_bytes(&key).await.unwrap().as_deref(), Some(&b"after"[..]));
    let lease =
        eventually("lock acquire", limit, || lock.acquire(&lock_key, Duration::from_secs(5), Duration::ZERO)).await;
    lock.release(lease).await.unwrap();
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 5, refill_tokens: 1, refill_interval: Duration::from_secs(1) };
    let rl_key = RateLimitKey::new("hot").unwrap();
    let decision = eventually("rate limit", limit, || limiter.check(&rl_key, &policy, 1)).await;
    assert!(decision.allowed);
    let id = eventually("session create", limit, || {
        sessions.create_bytes(Bytes::from_static(b"s"), Duration::from_secs(60))
    })
    .await;
    assert_eq!(sessions.load_bytes(&id).await.unwrap().as_deref(), Some(&b"s"[..]));

    // The subscription survives: the bus subscribes again on the new master of the channel's slot.
    let deadline = Instant::now() + limit;
    loop {
        let _ = bus.publish_bytes(&channel, Bytes::from_static(b"after")).await;
        match tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
            Ok(Some(Ok(message))) if message.payload == Bytes::from_static(b"after") => break,
            Ok(Some(_)) | Err(_) => assert!(Instant::now() < deadline, "the subscription never received again"),
            Ok(None) => panic!("the subscription ended"),
        }
    }
    assert!(killed_at.elapsed() < Duration::from_secs(60), "the whole failover took {:?}", killed_at.elapsed());
}

/// Retries `op` until it succeeds, for at most `limit`, and fails at once on an error a caller could not retry:
/// during a failover an operation may fail, but only as `Timeout` or `Unavailable`. Returns the value and how
/// many tries failed.
async fn retryably<T, F, Fut>(what: &str, limit: Duration, mut op: F) -> (T, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KvError>>,
{
    let deadline = Instant::now() + limit;
    let mut failures = 0;
    loop {
        match op().await {
            Ok(value) => return (value, failures),
            Err(e) => {
                assert!(e.is_retryable(), "{what} failed with an error that is not retryable: {e:?}");
                assert!(Instant::now() < deadline, "{what} still fails {limit:?} after the failover: {e}");
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The first of the keys `make(0)`, `make(1)`, ... (up to 500) that satisfies `wanted`.
fn first<K, E: std::fmt::Debug>(make: impl Fn(usize) -> Result<K, E>, wanted: impl Fn(&K) -> bool) -> K {
    (0..500).map(|i| make(i).unwrap()).find(|k| wanted(k)).expect("a key that satisfies the condition among 500")
}

/// A manual failover (`CLUSTER FAILOVER` on the replica): no node goes down and the old master keeps every
/// connection open, but answers writes with `READONLY` or `MOVED` now. The cache, a lock, a rate limiter and a
/// live sharded subscription, all built and used before the switch, work again within 5 s on the same
/// manager; a writer running through the switch sees only retryable errors, if any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_manual_failover_the_same_adapters_work_within_seconds() {
    let cluster = PrivateRedisCluster::start().await;
    let m = manager(&cluster, "manual-failover").await;
    let cache = cache_on(m.clone());
    let lock = DistributedLock::new(m.clone());
    let limiter = RedisRateLimiter::new(m.clone());
    let bus = PubSubManager::new(m.clone());
    let key = CacheKey::new("hot").unwrap();
    let old = cluster.master_of(&cache.stored_key("hot"));
    // The channel's stored name is the cache key's; the lock and the rate limit get keys on the same master.
    let channel = Channel::new(format!("{}hot", CacheManager::KEY_PREFIX)).unwrap();
    // A writer runs through the switch on a key of its own on that master.
    let on_old = |names: &[String]| names.iter().all(|name| cluster.master_of(name) == old);
    let lock_key =
        first(|i| LockKey::new(format!("hot{i}")), |k| on_old(&[lock.lock_key_name(k), lock.fence_key_name(k)]));
    let rl_key = first(|i| RateLimitKey::new(format!("hot{i}")), |k| on_old(&[limiter.token_bucket_key_name(k)]));
    let writer_key = first(|i| CacheKey::new(format!("hot-writer{i}")), |k| on_old(&[cache.stored_key(k.as_str())]));
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 100, refill_tokens: 1, refill_interval: Duration::from_secs(3600) };
    // Every adapter has talked to the master before the switch, so each holds its connection and slot map.
    cache.set_bytes(&key, Bytes::from_static(b"before"), None).await.unwrap();
    lock.release(lock.acquire(&lock_key, Duration::from_secs(5), Duration::ZERO).await.unwrap()).await.unwrap();
    assert!(limiter.check(&rl_key, &policy, 1).await.unwrap().allowed);
    let mut sub = bus.subscribe_bytes(&channel).await.unwrap();
    assert_eq!(bus.publish_bytes(&channel, Bytes::from_static(b"before")).await.unwrap(), 1);
    let first = tokio::time::timeout(Duration::from_secs(2), sub.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.payload, Bytes::from_static(b"before"));
    assert_eq!(cluster.master_of(&m.key(channel.as_str())), old);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (cache, key, stop) = (cache.clone(), writer_key, Arc::clone(&stop));
        async move {
            let (mut ok, mut errors) = (0_usize, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match cache.set_bytes(&key, Bytes::from_static(b"during"), None).await {
                    Ok(()) => ok += 1,
                    Err(e) => errors.push(e),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, errors)
        }
    });
    let started = Instant::now();
    let new = cluster.manual_failover(old).await;
    let switched = Instant::now();
    assert_ne!(new, old);
    assert_eq!(cluster.master_of(&cache.stored_key("hot")), new);
    eprintln!("the replica on port {new} took over from {old} in {:?}", switched - started);

    let limit = Duration::from_secs(5);
    let ((), set_failures) =
        retryably("cache set", limit, || cache.set_bytes(&key, Bytes::from_static(b"after"), None)).await;
    assert_eq!(cache.get_bytes(&key).await.unwrap().as_deref(), Some(&b"after"[..]));
    let (lease, lock_failures) =
        retryably("lock acquire", limit, || lock.acquire(&lock_key, Duration::from_secs(5), Duration::ZERO)).await;
    assert!(lock.is_held(&lease).await.unwrap());
    lock.release(lease).await.unwrap();
    let (decision, rl_failures) = retryably("rate limit", limit, || limiter.check(&rl_key, &policy, 1)).await;
    assert!(decision.allowed);
    assert_eq!(decision.remaining, 98, "the bucket kept its state through the switch (two of 100 taken)");

    // The subscription was made on the old master; it must now receive what is published on the new one.
    let mut received = false;
    while !received && switched.elapsed() < limit {
        let _ = bus.publish_bytes(&channel, Bytes::from_static(b"after")).await;
        match tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            Ok(Some(Ok(message))) => received = message.payload == Bytes::from_static(b"after"),
            Ok(Some(Err(e))) => assert!(e.is_retryable(), "the subscription reported {e:?}"),
            Ok(None) => panic!("the subscription ended"),
            Err(_) => {}
        }
    }
    assert!(received, "the subscription received nothing published in the {limit:?} after the failover");
    let recovered = switched.elapsed();

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (written, errors) = writer.await.unwrap();
    assert!(written > 0);
    assert!(errors.iter().all(KvError::is_retryable), "the writer saw an error that is not retryable: {errors:?}");
    eprintln!(
        "recovered {recovered:?} after the switch; failed tries: set {set_failures}, lock {lock_failures}, \
         rate limit {rl_failures}; the writer wrote {written} times and failed {} times: {errors:?}",
        errors.len()
    );
}

/// TLS-only nodes (clients, cluster bus and replication): the cache contract holds through `rediss://` seeds
/// with the test CA from `REDIS_CA_CERT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_contract_holds_on_a_tls_cluster() {
    let cluster = PrivateRedisCluster::with_tls().await;
    assert!(cluster.urls().starts_with("rediss://"));
    cpc_testkit::cache_contract!(async { Arc::new(cache_on(manager(&cluster, "tls-cache").await)) }, inline);
}

/// A `rediss+cluster://` URL and the CA reach every master of a TLS-only cluster (the nodes have no plain
/// port): keys on all three masters one by one and in batches, a prefix delete that walks every master, a lock
/// that excludes a second holder, and a sharded subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_cluster_url_with_the_ca_serves_every_master_a_lock_and_pub_sub_over_tls() {
    let cluster = PrivateRedisCluster::with_tls().await;
    let (ca, namespace) = (cluster.ca_cert_path().display().to_string(), format!("tls:{}:", uuid::Uuid::new_v4()));
    let config = RedisConfig::from_lookup(|name| match name {
        "REDIS_URL" => Some(cluster.cluster_url()),
        "REDIS_CA_CERT" => Some(ca.clone()),
        "REDIS_NAMESPACE" => Some(namespace.clone()),
        _ => None,
    })
    .unwrap();
    assert!(config.tls && config.is_cluster(), "{config}");
    assert!(config.to_string().starts_with("rediss+cluster://"), "{config}");
    let m = RedisManager::new(&config).await.unwrap();
    let cache = cache_on(m.clone());
    let keys: Vec<CacheKey> = (0..30).map(|i| CacheKey::new(format!("tls:{i}")).unwrap()).collect();
    let masters: std::collections::HashSet<u16> =
        keys.iter().map(|k| cluster.master_of(&cache.stored_key(k.as_str()))).collect();
    assert_eq!(masters.len(), 3, "the keys cover every master");
    for (i, key) in keys.iter().enumerate() {
        cache.set_bytes(key, Bytes::from(format!("one {i}")), None).await.unwrap();
        assert_eq!(cache.get_bytes(key).await.unwrap(), Some(Bytes::from(format!("one {i}"))));
    }
    let entries = keys.iter().enumerate().map(|(i, k)| (k.clone(), Bytes::from(format!("many {i}")))).collect();
    cache.set_many_bytes(entries, None).await.unwrap();
    let found = cache.get_many_bytes(&keys).await.unwrap();
    let want: Vec<Option<Bytes>> = (0..30).map(|i| Some(Bytes::from(format!("many {i}")))).collect();
    assert_eq!(found, want);
    assert_eq!(cache.delete_prefix("tls:").await.unwrap(), 30, "every master was walked over TLS");

    let lock = DistributedLock::new(m.clone());
    let lock_key = LockKey::new("tls").unwrap();
    let lease = lock.acquire(&lock_key, Duration::from_secs(5), Duration::ZERO).await.unwrap();
    assert!(lock.try_acquire(&lock_key, Duration::from_secs(5)).await.unwrap().is_none(), "the lock excludes");
    lock.release(lease).await.unwrap();
    assert!(lock.try_acquire(&lock_key, Duration::from_secs(5)).await.unwrap().is_some(), "released");

    let bus = PubSubManager::new(m.clone());
    let channel = Channel::new("tls-events").unwrap();
    let mut sub = bus.subscribe_bytes(&channel).await.unwrap();
    assert_eq!(bus.publish_bytes(&channel, Bytes::from_static(b"sealed")).await.unwrap(), 1);
    let message = tokio::time::timeout(Duration::from_secs(2), sub.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(message.payload, Bytes::from_static(b"sealed"));
}

/// A CA that did not sign the nodes' certificate is refused within the connect limit (no hang), as a
/// validation error naming `ca_cert` (not retryable) that states the certificate problem; plain
/// `redis+cluster://` to TLS-only nodes fails as fast, as a retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_with_a_wrong_ca_or_without_tls_fails_fast() {
    let cluster = PrivateRedisCluster::with_tls().await;
    let mut config = RedisConfig::parse_cluster_url(&cluster.cluster_url(), "url").unwrap();
    config.ca_cert = Some(cluster.wrong_ca_cert_path());
    config.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = RedisManager::new(&config).await.unwrap_err();
    let took = started.elapsed();
    eprintln!("wrong CA: {err:?} after {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(matches!(&err, KvError::Validation(v) if v.field == "ca_cert"), "names the field to fix: {err:?}");
    assert!(!err.is_retryable(), "retrying cannot fix a wrong CA: {err:?}");
    assert!(err.to_string().contains("UnknownIssuer"), "the certificate check must be what fails: {err}");

    let mut plain =
        RedisConfig::parse_cluster_url(&cluster.cluster_url().replacen("rediss+", "redis+", 1), "url").unwrap();
    plain.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = RedisManager::new(&plain).await.unwrap_err();
    eprintln!("plain: {err:?} after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(err.is_retryable(), "{err:?}");
}
