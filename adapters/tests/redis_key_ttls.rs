//! Every key the Redis adapters write carries a TTL, the lock fencing counters included (kept a day after their
//! lock's last use) and the job queue's once it holds no job still to be worked (its dead letters are kept for the
//! retention): a burst of every adapter's writes under one namespace, then a `SCAN` of that namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::shared_manager;

use std::time::Duration;

use cpc_adapters::redis::{
    CacheManager, DEFAULT_FENCE_TTL, DistributedLock, PubSubManager, RedisJobQueue, RedisManager, RedisRateLimiter,
    SessionManager,
};
use cpc_ports::{
    Bytes, Cache, CacheExt, CacheKey, Channel, EnqueueOptions, JobQueue, Lock, LockExt, LockKey, NackOutcome, PubSub,
    QueueName, RateLimitKey, RateLimitPolicy, RateLimiter, SessionStore,
};

/// Every key under the manager's namespace (the namespace is a uuid and plain characters: no glob escaping).
async fn keys_of(m: &RedisManager) -> Vec<String> {
    let mut conn = m.connection();
    let (mut cursor, mut keys) = (0u64, Vec::new());
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", m.config().namespace))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// One round of every kind of write each adapter makes, on keys numbered by `task`.
async fn burst(
    task: u32,
    cache: &CacheManager,
    lock: &DistributedLock,
    limiter: &RedisRateLimiter,
    s: &SessionManager,
    jobs: &RedisJobQueue,
) {
    let ttl = Duration::from_secs(60);
    let k = |name: &str| CacheKey::new(format!("{name}:{task}")).unwrap();
    cache.set_bytes(&k("set"), Bytes::from_static(b"v"), Some(ttl)).await.unwrap();
    cache.set_bytes(&k("default"), Bytes::from_static(b"v"), None).await.unwrap();
    cache.set_if_absent_bytes(&k("nx"), Bytes::from_static(b"v"), None).await.unwrap();
    cache
        .set_many_bytes(vec![(k("m1"), Bytes::from_static(b"1")), (k("m2"), Bytes::from_static(b"2"))], None)
        .await
        .unwrap();
    let _: u32 = cache.get_or_set(&k("computed"), Some(ttl), || async { Ok(task) }).await.unwrap();

    let held = LockKey::new(format!("held:{task}")).unwrap();
    let lease = lock.try_acquire(&held, ttl).await.unwrap().expect("a fresh lock key is free");
    lock.extend(&lease, ttl).await.unwrap();
    let cycled = LockKey::new(format!("cycled:{task}")).unwrap();
    let lease = lock.acquire(&cycled, ttl, ttl).await.unwrap();
    lock.release(lease).await.unwrap();
    let guard = lock.acquire_guard(&LockKey::new(format!("guarded:{task}")).unwrap(), ttl, ttl).await.unwrap();
    guard.release().await.unwrap();

    let rk = RateLimitKey::new(format!("user:{task}")).unwrap();
    let bucket =
        RateLimitPolicy::TokenBucket { capacity: 3, refill_tokens: 1, refill_interval: Duration::from_secs(10) };
    let window = RateLimitPolicy::SlidingWindow { limit: 3, window: Duration::from_secs(10) };
    for _ in 0..5 {
        limiter.check(&rk, &bucket, 1).await.unwrap();
        limiter.check(&rk, &window, 1).await.unwrap();
    }

    let id = s.create_bytes(Bytes::from_static(b"{}"), ttl).await.unwrap();
    s.save_bytes(&id, Bytes::from_static(b"[1]")).await.unwrap();
    s.extend(&id, ttl).await.unwrap();
    let id = s.cycle_id(&id).await.unwrap();
    s.save_bytes(&id, Bytes::from_static(b"[2]")).await.unwrap();
    let gone = s.create_bytes(Bytes::from_static(b"{}"), ttl).await.unwrap();
    s.destroy(&gone).await.unwrap();

    // A job acked, a job retried then dead, an idempotency key: nothing left to work, so every key expires.
    let q = QueueName::new(format!("mail:{task}")).unwrap();
    let keyed = EnqueueOptions::default().idempotency_key(format!("welcome:{task}"));
    jobs.enqueue_bytes(&q, Bytes::from_static(b"ok"), keyed).await.unwrap();
    jobs.enqueue_bytes(&q, Bytes::from_static(b"bad"), EnqueueOptions::default().max_attempts(2)).await.unwrap();
    let done = jobs.reserve(&q, ttl).await.unwrap().unwrap();
    jobs.ack(&done).await.unwrap();
    let failing = jobs.reserve(&q, ttl).await.unwrap().unwrap();
    assert_eq!(jobs.nack(&failing, Duration::ZERO).await.unwrap(), NackOutcome::Retrying);
    let failing = jobs.reserve(&q, ttl).await.unwrap().unwrap();
    assert_eq!(jobs.nack(&failing, Duration::ZERO).await.unwrap(), NackOutcome::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_lives_without_a_ttl() {
    let m = shared_manager("key-ttls").await;
    let cache = CacheManager::new(m.clone(), Duration::from_secs(60)).with_ttl_jitter(0.2);
    let lock = DistributedLock::new(m.clone());
    let limiter = RedisRateLimiter::new(m.clone());
    let sessions = SessionManager::new(m.clone()).with_absolute_ttl(Duration::from_secs(120));
    let bus = PubSubManager::new(m.clone());
    let jobs = RedisJobQueue::new(m.clone());

    let tasks = 8;
    futures::future::join_all((0..tasks).map(|t| burst(t, &cache, &lock, &limiter, &sessions, &jobs))).await;
    bus.publish_bytes(&Channel::new("news").unwrap(), Bytes::from_static(b"x")).await.unwrap();

    let keys = keys_of(&m).await;
    let mut conn = m.connection();
    let (mut offenders, mut fences, mut with_ttl) = (Vec::new(), 0, 0);
    let day_ms = i64::try_from(DEFAULT_FENCE_TTL.as_millis()).unwrap();
    for key in &keys {
        let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
        match pttl {
            -1 => offenders.push(key.clone()),
            -2 => {} // expired or deleted since the scan
            ttl if key.ends_with(":fence") && key.contains("{lock:") => {
                assert!(ttl > day_ms - 60_000 && ttl <= day_ms, "a fencing counter is kept a day: {key} {ttl}");
                fences += 1;
            }
            _ => with_ttl += 1,
        }
    }
    // What must be there, so the scan is known to see the adapters' keys: per task 6 cache entries, 1 held lock,
    // 3 fencing counters, 2 rate-limit keys, 1 session (the cycled one; the destroyed one is gone), and the job
    // queue's empty stream, dead-letter list and hash, and idempotency key.
    assert_eq!(fences, 3 * tasks as usize, "one fencing counter per lock name; keys: {keys:#?}");
    assert_eq!(with_ttl, 14 * tasks as usize, "keys with a TTL: {keys:#?}");
    assert!(offenders.is_empty(), "keys without a TTL: {offenders:#?}");

    for batch in keys_of(&m).await.chunks(500) {
        let _: i64 = redis::cmd("UNLINK").arg(batch).query_async(&mut conn).await.unwrap();
    }
}
