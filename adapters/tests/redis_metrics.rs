//! The Redis adapters report calls, errors by kind, latency and pub/sub deliveries through the `metrics` facade.
//! One test: the recorder is global to this binary, and a snapshot resets the counters it reads, so it is
//! taken once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::shared_manager;

use std::time::Duration;

use cpc_adapters::redis::{
    CacheManager, DistributedLock, NearCache, NearCacheConfig, PubSubManager, RedisConfig, RedisManager,
    RedisRateLimiter, SessionManager,
};
use cpc_ports::{
    Bytes, Cache, CacheKey, Channel, KvError, Lock, LockKey, PubSub, RateLimitKey, RateLimitPolicy, RateLimiter,
    SessionId, SessionStore,
};
use cpc_test_servers::PrivateRedis;
use futures::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use common::recorded::{Series, find, series};

fn counter(all: &[Series], name: &str, labels: &[(&str, &str)]) -> u64 {
    match find(all, name, labels) {
        DebugValue::Counter(n) => *n,
        other => panic!("{name} {labels:?} is not a counter: {other:?}"),
    }
}

fn samples(all: &[Series], name: &str, labels: &[(&str, &str)]) -> usize {
    match find(all, name, labels) {
        DebugValue::Histogram(h) => h.len(),
        other => panic!("{name} {labels:?} is not a histogram: {other:?}"),
    }
}

fn calls(all: &[Series], adapter: &str, operation: &str) -> u64 {
    let labels = [("adapter", adapter), ("operation", operation)];
    let n = counter(all, "cpc_redis_commands_total", &labels);
    assert_eq!(samples(all, "cpc_redis_command_seconds", &labels) as u64, n, "one latency sample per call");
    n
}

fn errors(all: &[Series], adapter: &str, operation: &str, kind: &str) -> u64 {
    counter(all, "cpc_redis_errors_total", &[("adapter", adapter), ("operation", operation), ("kind", kind)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_reports_calls_errors_by_kind_latency_and_deliveries() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");

    let m = shared_manager("metrics").await;
    let cache = CacheManager::new(m.clone(), Duration::from_secs(30));
    let lock = DistributedLock::new(m.clone()).with_fence_ttl(Duration::from_secs(30));
    let limiter = RedisRateLimiter::new(m.clone());
    let sessions = SessionManager::new(m.clone());
    let bus = PubSubManager::new(m.clone()).with_buffer(1);

    // Cache: 2 sets, 3 gets, 1 get_many, 1 refused set (zero TTL).
    let key = CacheKey::new("a").unwrap();
    for _ in 0..2 {
        cache.set_bytes(&key, Bytes::from_static(b"1"), None).await.unwrap();
    }
    for _ in 0..3 {
        cache.get_bytes(&key).await.unwrap();
    }
    cache.get_many_bytes(std::slice::from_ref(&key)).await.unwrap();
    let zero = cache.set_bytes(&key, Bytes::from_static(b"1"), Some(Duration::ZERO)).await;
    assert!(matches!(zero, Err(KvError::Validation(_))), "{zero:?}");

    // Lock: acquire, release, release again (lease lost).
    let lk = LockKey::new("job").unwrap();
    let lease = lock.try_acquire(&lk, Duration::from_secs(5)).await.unwrap().unwrap();
    lock.release(lease.clone()).await.unwrap();
    assert!(matches!(lock.release(lease).await, Err(KvError::LeaseLost { .. })));

    // Rate limiter: 3 token bucket checks, 2 sliding window checks.
    let rk = RateLimitKey::new("user").unwrap();
    let bucket =
        RateLimitPolicy::TokenBucket { capacity: 10, refill_tokens: 1, refill_interval: Duration::from_secs(1) };
    let window = RateLimitPolicy::SlidingWindow { limit: 10, window: Duration::from_secs(1) };
    for _ in 0..3 {
        limiter.check(&rk, &bucket, 1).await.unwrap();
    }
    for _ in 0..2 {
        limiter.check(&rk, &window, 1).await.unwrap();
    }

    // Sessions: create, load, save of an unknown id (not found).
    let id = sessions.create_bytes(Bytes::from_static(b"{}"), Duration::from_secs(30)).await.unwrap();
    assert!(sessions.load_bytes(&id).await.unwrap().is_some());
    let unknown = sessions.save_bytes(&SessionId::generate(), Bytes::from_static(b"{}")).await;
    assert!(matches!(unknown, Err(KvError::NotFound { .. })), "{unknown:?}");

    // Pub/sub: 3 messages to a subscriber with a buffer of 1 that reads late: 2 dropped, 1 lag notice. One
    // connection delivers in order, so once a later message on another channel is read, the 3 have been routed.
    let channel = Channel::new("news").unwrap();
    let done = Channel::new("done").unwrap();
    let mut sub = bus.subscribe_bytes(&channel).await.unwrap();
    let mut marker = bus.subscribe_bytes(&done).await.unwrap();
    for n in 0..3u8 {
        assert_eq!(bus.publish_bytes(&channel, Bytes::from(vec![n])).await.unwrap(), 1);
    }
    bus.publish_bytes(&done, Bytes::from_static(b"end")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), marker.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(sub.next().await, Some(Err(KvError::Lagged { missed: 2 }))));
    assert_eq!(sub.next().await.unwrap().unwrap().payload.as_ref(), &[2]);

    // Near cache over the same entries: a miss (read from Redis, kept), then a local hit; no write.
    let near = NearCache::new(cache.clone(), NearCacheConfig::default()).await.unwrap();
    for _ in 0..2 {
        assert_eq!(near.get_bytes(&key).await.unwrap().as_deref(), Some(&b"1"[..]));
    }

    // A transport error: a cache on a private server that is then killed.
    let server = PrivateRedis::start().await;
    let config = RedisConfig::builder()
        .port(server.port())
        .namespace("metrics:")
        .response_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let dead = CacheManager::new(RedisManager::new(&config).await.unwrap(), Duration::from_secs(30));
    server.kill();
    let lost = dead.get_bytes(&key).await;
    let kind = match lost {
        Err(KvError::Unavailable { .. }) => "unavailable",
        Err(KvError::Timeout { .. }) => "timeout",
        other => panic!("a dead server must be Unavailable or Timeout: {other:?}"),
    };

    let all = series(&snapshotter);
    assert_eq!(calls(&all, "cache", "set"), 3, "two sets and the refused one");
    assert_eq!(errors(&all, "cache", "set", "validation"), 1);
    assert_eq!(calls(&all, "cache", "get"), 4, "three gets on the shared server, one on the dead one");
    assert_eq!(errors(&all, "cache", "get", kind), 1);
    assert_eq!(calls(&all, "cache", "get_many"), 1);
    assert_eq!(calls(&all, "cache", "delete_prefix"), 0, "registered up front, never called");
    assert_eq!(calls(&all, "lock", "try_acquire"), 1);
    assert_eq!(calls(&all, "lock", "release"), 2);
    assert_eq!(errors(&all, "lock", "release", "lease_lost"), 1);
    assert_eq!(calls(&all, "rate_limit", "check_token_bucket"), 3);
    assert_eq!(calls(&all, "rate_limit", "check_sliding_window"), 2);
    assert_eq!(calls(&all, "session", "create"), 1);
    assert_eq!(calls(&all, "session", "load"), 1);
    assert_eq!(calls(&all, "session", "save"), 1);
    assert_eq!(errors(&all, "session", "save", "not_found"), 1);
    assert_eq!(calls(&all, "pubsub", "subscribe"), 2);
    assert_eq!(calls(&all, "pubsub", "publish"), 4);
    assert_eq!(counter(&all, "cpc_redis_pubsub_delivered_total", &[("adapter", "pubsub")]), 4);
    assert_eq!(counter(&all, "cpc_redis_pubsub_dropped_total", &[("adapter", "pubsub")]), 2);
    assert_eq!(counter(&all, "cpc_redis_pubsub_lagged_total", &[("adapter", "pubsub")]), 1);
    assert_eq!(calls(&all, "near_cache", "get"), 2);
    let local =
        |outcome| counter(&all, "cpc_redis_near_cache_local_total", &[("adapter", "near_cache"), ("outcome", outcome)]);
    assert_eq!((local("hit"), local("miss"), local("bypass")), (1, 1, 0));
    let flushes =
        |cause| counter(&all, "cpc_redis_near_cache_flushes_total", &[("adapter", "near_cache"), ("cause", cause)]);
    assert_eq!((flushes("reconnect"), flushes("disconnect")), (1, 0), "tracking turned on once, never lost");
    let no_errors = all
        .iter()
        .filter(|(n, l, _)| n == "cpc_redis_errors_total" && l.contains(&("operation".into(), "try_acquire".into())));
    assert_eq!(no_errors.count(), 0, "an error series appears only once an error of its kind happened");

    cache.delete_prefix("a").await.unwrap();
    sessions.destroy(&id).await.unwrap();
    limiter.reset(&rk).await.unwrap();
}
