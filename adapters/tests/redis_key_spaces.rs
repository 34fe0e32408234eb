//! Each Redis adapter keeps to a key space of its own under the namespace, so the cache port, whose keys an app
//! may build from request data, cannot reach another adapter's data: `delete_prefix` of the other adapters'
//! prefixes, and `set` / `delete` of their exact stored names (taken from a `SCAN` on one server, from the
//! adapters' own names on a cluster), leave sessions, locks and their fencing counters, rate limits and job queues
//! untouched. On the shared server and on a private Redis Cluster (hash tags kept).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use std::time::Duration;

use cpc_adapters::redis::{
    CacheManager, DistributedLock, RedisConfig, RedisJobQueue, RedisManager, RedisRateLimiter, SessionManager,
};
use cpc_ports::{
    Bytes, Cache, CacheKey, EnqueueOptions, JobQueue, Lock, LockKey, QueueName, RateLimitKey, RateLimitPolicy,
    RateLimiter, SessionStore,
};
use cpc_test_servers::PrivateRedisCluster;

const TTL: Duration = Duration::from_secs(60);

fn keyed(key: &str) -> EnqueueOptions {
    EnqueueOptions { idempotency_key: Some(key.to_owned()), ..EnqueueOptions::default() }
}

/// Writes through every other adapter, attacks their keys through the cache, and checks their data.
/// `stored_names` lists every key the other adapters wrote (full stored names).
async fn the_cache_cannot_reach_the_other_adapters(
    m: RedisManager,
    stored_names: impl AsyncFnOnce(&RedisManager) -> Vec<String>,
) {
    let cache = CacheManager::new(m.clone(), TTL);
    let lock = DistributedLock::new(m.clone());
    let limiter = RedisRateLimiter::new(m.clone());
    let sessions = SessionManager::new(m.clone());
    let jobs = RedisJobQueue::new(m.clone());

    let account = LockKey::new("account:42").unwrap();
    let first = lock.acquire(&account, TTL, Duration::ZERO).await.unwrap();
    lock.release(first.clone()).await.unwrap();
    let held = lock.acquire(&LockKey::new("account:43").unwrap(), TTL, Duration::ZERO).await.unwrap();
    let session = sessions.create_bytes(Bytes::from_static(b"ada"), TTL).await.unwrap();
    let login = RateLimitKey::new("login:ada").unwrap();
    let policy =
        RateLimitPolicy::TokenBucket { capacity: 5, refill_tokens: 1, refill_interval: Duration::from_secs(3600) };
    assert_eq!(limiter.check(&login, &policy, 2).await.unwrap().remaining, 3);
    let window = RateLimitPolicy::SlidingWindow { limit: 5, window: Duration::from_secs(3600) };
    assert_eq!(limiter.check(&login, &window, 2).await.unwrap().remaining, 3);
    let mail = QueueName::new("mail").unwrap();
    let job = jobs.enqueue_bytes(&mail, Bytes::from_static(b"hello"), keyed("welcome:ada")).await.unwrap();

    // What an app building cache keys from request data could send.
    for prefix in ["session:", "s", "j", "jq:", "{", "{lock:", "{rl:", "account", "login"] {
        cache.delete_prefix(prefix).await.unwrap();
    }
    let namespace = m.key("");
    let names = stored_names(&m).await;
    assert!(names.len() >= 6, "the other adapters wrote their keys: {names:?}");
    for name in &names {
        let bare = name.strip_prefix(&namespace).expect("every key is under the namespace");
        let Ok(key) = CacheKey::new(bare) else { continue };
        cache.set_bytes(&key, Bytes::from_static(b"0"), None).await.unwrap();
        cache.set_many_bytes(vec![(key.clone(), Bytes::from_static(b"1"))], None).await.unwrap();
        assert_eq!(
            cache.get_bytes(&key).await.unwrap(),
            Some(Bytes::from_static(b"1")),
            "the cache reads its own entry"
        );
        assert!(cache.delete(&key).await.unwrap(), "{bare}: the cache deletes only its own entry");
        assert!(!cache.delete(&key).await.unwrap());
        assert_eq!(cache.delete_prefix(bare).await.unwrap(), 0, "{bare}");
    }

    // Every other adapter's data is as it was.
    assert_eq!(sessions.load_bytes(&session).await.unwrap(), Some(Bytes::from_static(b"ada")), "the session survives");
    assert!(lock.is_held(&held).await.unwrap(), "the held lease survives");
    let next = lock.acquire(&account, TTL, Duration::ZERO).await.unwrap();
    assert!(
        next.token > first.token,
        "the fencing counter never went backwards: {:?} after {:?}",
        next.token,
        first.token
    );
    assert_eq!(limiter.check(&login, &policy, 1).await.unwrap().remaining, 2, "the token bucket kept its spend");
    assert_eq!(limiter.check(&login, &window, 1).await.unwrap().remaining, 2, "the window kept its spend");
    let again = jobs.enqueue_bytes(&mail, Bytes::from_static(b"hello"), keyed("welcome:ada")).await.unwrap();
    assert_eq!(again, job, "the idempotency key survives");
    let reserved = jobs.reserve(&mail, TTL).await.unwrap().expect("the job survives");
    assert_eq!((reserved.id, reserved.payload), (job, Bytes::from_static(b"hello")));
    assert!(jobs.reserve(&mail, TTL).await.unwrap().is_none(), "and exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_server_the_cache_cannot_reach_the_other_adapters_keys() {
    let m = common::redis::shared_manager("key-spaces").await;
    the_cache_cannot_reach_the_other_adapters(m, async |m| {
        let cache_space = CacheManager::new(m.clone(), TTL).stored_key("");
        let names = common::redis::namespace_keys(m).await;
        assert!(names.iter().all(|k| !k.starts_with(&cache_space)), "no adapter but the cache writes under cache:");
        names
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_cache_cannot_reach_the_other_adapters_keys() {
    let cluster = PrivateRedisCluster::start().await;
    let namespace = format!("cpc-cluster-test:key-spaces:{}:", uuid::Uuid::new_v4());
    let config = RedisConfig::from_lookup(|name| match name {
        "REDIS_CLUSTER_URLS" => Some(cluster.urls()),
        "REDIS_NAMESPACE" => Some(namespace.clone()),
        _ => None,
    })
    .unwrap();
    let m = RedisManager::new(&config).await.unwrap();
    the_cache_cannot_reach_the_other_adapters(m, async |m| {
        let lock = DistributedLock::new(m.clone());
        let limiter = RedisRateLimiter::new(m.clone());
        let (account, held) = (LockKey::new("account:42").unwrap(), LockKey::new("account:43").unwrap());
        let login = RateLimitKey::new("login:ada").unwrap();
        let queue = m.key("jq:{mail}:");
        vec![
            lock.lock_key_name(&held),
            lock.fence_key_name(&account),
            lock.fence_key_name(&held),
            limiter.token_bucket_key_name(&login),
            limiter.sliding_window_key_name(&login),
            format!("{queue}s"),
            format!("{queue}x"),
            format!("{queue}i:welcome:ada"),
        ]
    })
    .await;
}
