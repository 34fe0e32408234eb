//! The lock contract against [`InMemoryLock`], directly and as `Arc<dyn Lock>`, plus what only the fake can
//! show: leases on tokio's (paused) clock and the purge of abandoned leases.

use std::time::Duration;

use cpc_ports::{FencingToken, KvError, Lock, LockKey};
use cpc_testkit::memory::InMemoryLock;
use tokio::time::Instant;

mod concrete {
    cpc_testkit::lock_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemoryLock::new()) });
}

mod as_dyn_port {
    use std::sync::Arc;

    use cpc_ports::Lock;
    use cpc_testkit::memory::InMemoryLock;

    cpc_testkit::lock_contract!(async { Arc::new(InMemoryLock::new()) as Arc<dyn Lock> });
}

fn clock_micros() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn key(s: &str) -> LockKey {
    LockKey::new(s).expect("valid test key")
}

#[tokio::test(start_paused = true)]
async fn lease_expiry_follows_tokios_clock() {
    let lock = InMemoryLock::new();
    let before = clock_micros();
    let lease = lock.try_acquire(&key("k"), Duration::from_secs(10)).await.unwrap().unwrap();
    assert!(lease.token.0 >= before, "tokens start from the system clock: {:?} < {before}", lease.token);
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(lock.is_held(&lease).await.unwrap(), "1 ms before expiry the lease holds");
    assert_eq!(lock.try_acquire(&key("k"), Duration::from_secs(1)).await.unwrap(), None);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!lock.is_held(&lease).await.unwrap(), "at its TTL the lease is lost");
    let next = lock.try_acquire(&key("k"), Duration::from_secs(1)).await.unwrap().unwrap();
    assert!(next.token > lease.token, "{:?} after {:?}", next.token, lease.token);
}

#[tokio::test(start_paused = true)]
async fn acquire_wakes_exactly_when_the_lease_expires() {
    let lock = InMemoryLock::new();
    let abandoned = lock.try_acquire(&key("k"), Duration::from_secs(3)).await.unwrap().unwrap();
    let started = Instant::now();
    let lease = lock.acquire(&key("k"), Duration::from_secs(1), Duration::from_secs(60)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3), "the waiter takes the lock the moment the lease ends");
    assert!(lease.token > abandoned.token);
}

#[tokio::test(start_paused = true)]
async fn acquire_times_out_exactly_after_its_wait() {
    let lock = InMemoryLock::new();
    let _held = lock.try_acquire(&key("k"), Duration::from_secs(60)).await.unwrap().unwrap();
    let started = Instant::now();
    let err = lock.acquire(&key("k"), Duration::from_secs(1), Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(err, KvError::Timeout { operation: "acquire lock", after } if after == Duration::from_secs(5)),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn extend_moves_the_expiry_on_tokios_clock() {
    let lock = InMemoryLock::new();
    let lease = lock.try_acquire(&key("k"), Duration::from_secs(2)).await.unwrap().unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let lease = lock.extend(&lease, Duration::from_secs(2)).await.unwrap();
    tokio::time::advance(Duration::from_millis(1_999)).await;
    assert!(lock.is_held(&lease).await.unwrap(), "extended to 2 s from the extend, not from the acquire");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(matches!(lock.release(lease).await, Err(KvError::LeaseLost { .. })));
}

#[tokio::test(start_paused = true)]
async fn abandoned_leases_are_purged_and_tokens_keep_growing() {
    let lock = InMemoryLock::new();
    let (mut peak, mut last_of_job0) = (0, FencingToken(0));
    // 5 000 locks taken and abandoned, each leased for 1 s, one every 10 ms: about 100 live at any time.
    for i in 0..5_000 {
        let lease =
            lock.try_acquire(&key(&format!("job:{}", i % 2_500)), Duration::from_secs(1)).await.unwrap().unwrap();
        if i % 2_500 == 0 {
            assert!(lease.token > last_of_job0);
            last_of_job0 = lease.token;
        }
        peak = peak.max(lock.stored_leases());
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(peak <= 400, "expired leases must be swept, yet up to {peak} were stored for ~100 live");
    tokio::time::advance(Duration::from_secs(2)).await;
    let lease = lock.try_acquire(&key("job:0"), Duration::from_secs(1)).await.unwrap().unwrap();
    assert!(
        lease.token > last_of_job0,
        "the third acquisition of job:0 gets a greater token, though its lease was purged"
    );
}

#[tokio::test]
async fn an_unrepresentable_ttl_is_a_validation_error_not_a_panic() {
    let lock = InMemoryLock::new();
    let err = lock.try_acquire(&key("k"), Duration::MAX).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "{err:?}");
    let lease = lock.acquire(&key("k"), Duration::from_secs(1), Duration::MAX).await.unwrap();
    assert!(lock.is_held(&lease).await.unwrap(), "an endless wait is fine when the lock is free");
}
