//! [`DistributedLock`] against the shared Redis server (`REDIS_URL`), each test under its own key namespace: the
//! `Lock` contract (concrete and `dyn`), the watchdog guard, and what the adapter adds beyond the port.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::shared_manager;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpc_adapters::redis::{DEFAULT_FENCE_TTL, DistributedLock, RedisConfig, RedisManager};
use cpc_ports::{KvError, Lock, LockExt, LockKey};
use cpc_test_servers::PrivateRedis;

/// A lock whose fencing counters expire after an hour, so test runs do not leave keys behind on the shared
/// server (far longer than any case, so tokens still only grow within one).
fn test_lock(manager: RedisManager) -> DistributedLock {
    DistributedLock::new(manager).with_fence_ttl(Duration::from_secs(3600))
}

mod concrete {
    cpc_testkit::lock_contract!(async {
        std::sync::Arc::new(super::test_lock(super::shared_manager("lock-contract").await))
    });
}

mod as_dyn {
    cpc_testkit::lock_contract!(async {
        std::sync::Arc::new(super::test_lock(super::shared_manager("lock-contract-dyn").await))
            as std::sync::Arc<dyn cpc_ports::Lock>
    });
}

fn key(name: &str) -> LockKey {
    LockKey::new(name).unwrap()
}

async fn lock(case: &str) -> (DistributedLock, RedisManager) {
    let manager = shared_manager(case).await;
    (test_lock(manager.clone()), manager)
}

async fn pttl(manager: &RedisManager, key: &str) -> i64 {
    manager.query(redis::cmd("PTTL").arg(key), "pttl").await.unwrap()
}

async fn get(manager: &RedisManager, key: &str) -> Option<String> {
    manager.query(redis::cmd("GET").arg(key), "get").await.unwrap()
}

/// The lock key carries the lease as its TTL; by default the fencing counter is kept a day after the lock's
/// last use, and the two share a hash tag.
#[tokio::test]
async fn the_lock_key_expires_with_the_lease_and_the_fencing_counter_after_a_day() {
    let manager = shared_manager("lock-keys").await;
    let lock = DistributedLock::new(manager.clone());
    let k = key("orders:42");
    let lease = lock.try_acquire(&k, Duration::from_secs(5)).await.unwrap().unwrap();
    let (lock_key, fence_key) = (lock.lock_key_name(&k), lock.fence_key_name(&k));
    assert!(lock_key.starts_with(&manager.config().namespace), "{lock_key}");
    assert!(lock_key.ends_with("{lock:orders:42}") && fence_key == format!("{lock_key}:fence"), "{fence_key}");
    let ttl = pttl(&manager, &lock_key).await;
    assert!(ttl > 4000 && ttl <= 5000, "the lock key's TTL is the lease: {ttl}");
    assert_eq!(get(&manager, &lock_key).await.as_deref(), Some(lease.owner.as_str()));
    assert!(
        lease.owner.len() >= 43,
        "the owner token carries 256 random bits (43 base64url characters): {}",
        lease.owner
    );
    let fence_ttl = pttl(&manager, &fence_key).await;
    assert_eq!(get(&manager, &fence_key).await, Some(lease.token.0.to_string()));
    let _: i64 = manager.query(redis::cmd("DEL").arg(&fence_key).arg(&lock_key), "cleanup").await.unwrap();
    let day_ms = i64::try_from(DEFAULT_FENCE_TTL.as_millis()).unwrap();
    assert!(
        fence_ttl > day_ms - 60_000 && fence_ttl <= day_ms,
        "by default the fencing counter is kept a day: {fence_ttl}"
    );
}

/// With `with_fence_ttl`, the counter expires, but never before the lease: acquisitions and extensions push its
/// TTL to at least the lease.
#[tokio::test]
async fn a_fence_ttl_always_outlives_the_lease() {
    let manager = shared_manager("lock-fence-ttl").await;
    let lock = DistributedLock::new(manager.clone()).with_fence_ttl(Duration::from_millis(200));
    let k = key("k");
    let fence_key = lock.fence_key_name(&k);
    let lease = lock.try_acquire(&k, Duration::from_secs(2)).await.unwrap().unwrap();
    let ttl = pttl(&manager, &fence_key).await;
    assert!(ttl > 1500 && ttl <= 2000, "the counter outlives the 2 s lease: {ttl}");
    let lease = lock.extend(&lease, Duration::from_secs(6)).await.unwrap();
    let ttl = pttl(&manager, &fence_key).await;
    assert!(ttl > 5500 && ttl <= 6000, "extending pushes the counter's TTL too: {ttl}");
    lock.release(lease.clone()).await.unwrap();
    let long = DistributedLock::new(manager.clone()).with_fence_ttl(Duration::from_secs(60));
    let next = long.try_acquire(&k, Duration::from_secs(1)).await.unwrap().unwrap();
    assert!(next.token > lease.token, "the counter kept counting");
    let ttl = pttl(&manager, &fence_key).await;
    assert!(ttl > 59_000 && ttl <= 60_000, "the fence TTL when longer than the lease: {ttl}");
}

/// A holder whose lease expired cannot release (nor extend) the lock the next holder took: the next holder's
/// key, owner and lease stay exactly as they were.
#[tokio::test]
async fn a_stale_holder_cannot_release_or_extend_the_new_owners_lock() {
    let (lock, manager) = lock("lock-stale").await;
    let k = key("stale");
    let stale = lock.try_acquire(&k, Duration::from_millis(100)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let owner = lock.try_acquire(&k, Duration::from_secs(3)).await.unwrap().expect("the expired lock is free");
    let result = lock.release(stale.clone()).await;
    assert!(matches!(result, Err(KvError::LeaseLost { .. })), "{result:?}");
    let result = lock.extend(&stale, Duration::from_secs(60)).await;
    assert!(matches!(result, Err(KvError::LeaseLost { .. })), "{result:?}");
    let lock_key = lock.lock_key_name(&k);
    assert_eq!(get(&manager, &lock_key).await.as_deref(), Some(owner.owner.as_str()), "the new owner keeps it");
    assert!(pttl(&manager, &lock_key).await <= 3000, "the stale extend must not have touched the lease");
}

/// 16 tasks each doing 50 read-modify-write increments of a Redis counter under the lock end at exactly 800:
/// no two critical sections ever overlapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_times_fifty_locked_increments_make_800() {
    let (lock, manager) = lock("lock-counter").await;
    let counter = manager.key("counter");
    let k = key("counter-lock");
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (lock, manager, counter, k) = (lock.clone(), manager.clone(), counter.clone(), k.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    let lease = lock.acquire(&k, Duration::from_secs(5), Duration::from_secs(30)).await.unwrap();
                    let value: Option<u64> = manager.query(redis::cmd("GET").arg(&counter), "get").await.unwrap();
                    tokio::task::yield_now().await;
                    let next = value.unwrap_or(0) + 1;
                    let mut set = redis::cmd("SET");
                    set.arg(&counter).arg(next).arg("PX").arg(60_000);
                    let () = manager.query(&set, "set").await.unwrap();
                    lock.release(lease).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total: u64 = manager.query(redis::cmd("GET").arg(&counter), "get").await.unwrap();
    assert_eq!(total, 800, "lost updates mean two holders overlapped");
    eprintln!("800 locked increments took {:?}", started.elapsed());
}

/// Waiters in other processes (here: another `DistributedLock` on another connection, which gets no local
/// wake-up) poll with backoff capped at 100 ms, so they notice a release quickly.
#[tokio::test]
async fn a_waiter_on_another_connection_notices_a_release_within_the_backoff_cap() {
    let (lock, manager) = lock("lock-remote-waiter").await;
    let other = test_lock(RedisManager::new(manager.config()).await.unwrap());
    let k = key("remote");
    let held = lock.try_acquire(&k, Duration::from_secs(10)).await.unwrap().unwrap();
    let waiter = tokio::spawn({
        let k = k.clone();
        async move {
            let lease = other.acquire(&k, Duration::from_secs(10), Duration::from_secs(5)).await;
            lease.map(|l| (l, Instant::now()))
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let released_at = Instant::now();
    lock.release(held).await.unwrap();
    let (lease, got_at) = waiter.await.unwrap().unwrap();
    let delay = got_at.duration_since(released_at);
    assert!(delay < Duration::from_millis(150), "the waiter took {delay:?} to notice the release");
    assert!(lock.is_held(&lease).await.unwrap());
}

/// The watchdog keeps a short lease alive well past its TTL, and nobody else can take the lock meanwhile.
#[tokio::test]
async fn the_watchdog_keeps_a_short_lease_alive_past_its_ttl() {
    let (lock, _manager) = lock("lock-watchdog").await;
    let k = key("renewed");
    let guard = lock.acquire_guard(&k, Duration::from_millis(300), Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!guard.is_lost(), "the watchdog must keep the lease");
    assert!(lock.is_held(&guard.lease()).await.unwrap(), "held after more than three TTLs");
    assert_eq!(lock.try_acquire(&k, Duration::from_secs(1)).await.unwrap(), None, "nobody else can take it");
    let token = guard.token();
    guard.release().await.unwrap();
    let next = lock.try_acquire(&k, Duration::from_secs(1)).await.unwrap().expect("released");
    assert!(next.token > token);
}

/// When the lock key disappears (deleted, or expired and taken by another), the watchdog's next renewal finds it
/// gone: `is_lost()` turns true, the signal fires, and `release` reports `LeaseLost` without touching the thief's
/// lock.
#[tokio::test]
async fn lost_turns_true_when_the_lock_is_deleted_or_stolen() {
    let (lock, manager) = lock("lock-lost").await;
    let ttl = Duration::from_millis(300);
    // Deleted.
    let k = key("deleted");
    let guard = lock.acquire_guard(&k, ttl, Duration::from_secs(1)).await.unwrap();
    let mut signal = guard.lost_signal();
    assert!(!guard.is_lost());
    let _: i64 = manager.query(redis::cmd("DEL").arg(lock.lock_key_name(&k)), "del").await.unwrap();
    tokio::time::timeout(Duration::from_millis(500), signal.wait_for(|lost| *lost))
        .await
        .expect("the watchdog must report the loss within a renewal period")
        .unwrap();
    assert!(guard.is_lost());
    let result = guard.release().await;
    assert!(matches!(result, Err(KvError::LeaseLost { .. })), "{result:?}");

    // Stolen: the key is replaced by another owner's.
    let k = key("stolen");
    let guard = lock.acquire_guard(&k, ttl, Duration::from_secs(1)).await.unwrap();
    let mut set = redis::cmd("SET");
    set.arg(lock.lock_key_name(&k)).arg("thief").arg("PX").arg(10_000);
    let () = manager.query(&set, "set").await.unwrap();
    let mut signal = guard.lost_signal();
    tokio::time::timeout(Duration::from_millis(500), signal.wait_for(|lost| *lost)).await.unwrap().unwrap();
    assert!(guard.is_lost());
    drop(guard);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&manager, &lock.lock_key_name(&k)).await.as_deref(), Some("thief"), "drop must not steal back");
}

/// Dropping a guard releases the lock in the background: another acquirer (on another connection, so without
/// the local wake-up) gets it long before the lease would have run out.
#[tokio::test]
async fn dropping_the_guard_releases_the_lock() {
    let (lock, manager) = lock("lock-drop").await;
    let other = test_lock(RedisManager::new(manager.config()).await.unwrap());
    let k = key("dropped");
    let guard = lock.acquire_guard(&k, Duration::from_secs(30), Duration::from_secs(1)).await.unwrap();
    assert_eq!(other.try_acquire(&k, Duration::from_secs(1)).await.unwrap(), None);
    let started = Instant::now();
    drop(guard);
    let next = other.acquire(&k, Duration::from_secs(5), Duration::from_secs(2)).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300), "got the dropped lock after {:?}", started.elapsed());
    assert!(other.is_held(&next).await.unwrap());
}

/// The one-key form: a handle on one key with `acquire()` / `release(guard)`.
#[tokio::test]
async fn for_key_gives_acquire_and_release_on_one_key() {
    let manager = shared_manager("lock-for-key").await;
    let handle = DistributedLock::for_key(manager.clone(), key("job"), Duration::from_secs(5))
        .with_wait(Duration::from_millis(200));
    let guard = handle.acquire().await.unwrap();
    assert!(handle.try_acquire().await.unwrap().is_none(), "held");
    let result = handle.acquire().await;
    assert!(matches!(result, Err(KvError::Timeout { operation: "acquire lock", .. })), "{:?}", result.map(|_| ()));
    handle.release(guard).await.unwrap();
    let again = handle.try_acquire().await.unwrap().expect("released");
    assert!(handle.lock().is_held(&again.lease()).await.unwrap());
    let fence_key = handle.lock().fence_key_name(handle.key());
    let _: i64 = manager.query(redis::cmd("DEL").arg(fence_key), "cleanup").await.unwrap();
}

/// The scripts run with EVALSHA and are loaded again after the server forgot them (`SCRIPT FLUSH`, on a private
/// server so the shared one is left alone).
#[tokio::test]
async fn scripts_survive_a_script_flush() {
    let server = PrivateRedis::start().await;
    let config = RedisConfig::builder().port(server.port()).build().unwrap();
    let manager = RedisManager::new(&config).await.unwrap();
    let lock: Arc<dyn Lock> = Arc::new(DistributedLock::new(manager.clone()));
    let k = key("flushed");
    let first = lock.try_acquire(&k, Duration::from_secs(5)).await.unwrap().unwrap();
    let () = manager.query(redis::cmd("SCRIPT").arg("FLUSH"), "script flush").await.unwrap();
    lock.extend(&first, Duration::from_secs(5)).await.unwrap();
    let () = manager.query(redis::cmd("SCRIPT").arg("FLUSH"), "script flush").await.unwrap();
    lock.release(first.clone()).await.unwrap();
    let () = manager.query(redis::cmd("SCRIPT").arg("FLUSH"), "script flush").await.unwrap();
    let second = lock.try_acquire(&k, Duration::from_secs(5)).await.unwrap().unwrap();
    assert!(second.token > first.token);
}

/// A dead server is reported as an error a caller can act on, not a hang or a panic.
#[tokio::test]
async fn a_dead_server_is_an_error_not_a_hang() {
    let server = PrivateRedis::start().await;
    let config = RedisConfig::builder()
        .port(server.port())
        .response_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let lock = DistributedLock::new(RedisManager::new(&config).await.unwrap());
    server.kill();
    let started = Instant::now();
    let result = lock.acquire(&key("dead"), Duration::from_secs(1), Duration::from_secs(1)).await;
    assert!(result.as_ref().is_err_and(KvError::is_retryable), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// A blocked `acquire` backs off (5 ms doubling to 100 ms, with jitter) instead of hammering the server: about
/// a dozen attempts in a second, counted by the (private) server's command statistics.
#[tokio::test]
async fn a_blocked_acquire_backs_off_instead_of_busy_looping() {
    let server = PrivateRedis::start().await;
    let manager = RedisManager::new(&RedisConfig::builder().port(server.port()).build().unwrap()).await.unwrap();
    let lock = DistributedLock::new(manager.clone());
    let k = key("busy");
    let _held = lock.try_acquire(&k, Duration::from_secs(30)).await.unwrap().unwrap();
    let () = manager.query(redis::cmd("CONFIG").arg("RESETSTAT"), "resetstat").await.unwrap();
    let wait = Duration::from_secs(1);
    let result = lock.acquire(&k, Duration::from_secs(1), wait).await;
    assert!(
        matches!(result, Err(KvError::Timeout { operation: "acquire lock", after }) if after == wait),
        "{result:?}"
    );
    let stats: String = manager.query(redis::cmd("INFO").arg("commandstats"), "info").await.unwrap();
    let calls = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    };
    let attempts = calls("evalsha") + calls("eval");
    assert!((8..=30).contains(&attempts), "{attempts} attempts in {wait:?}:\n{stats}");
}
