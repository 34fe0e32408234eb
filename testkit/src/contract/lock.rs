//! The [`Lock`] contract: every implementation (Redis, in-memory, `dyn Lock` of either) must pass these cases,
//! those of its lease guard ([`LockExt::acquire_guard`]) included.
//!
//! Run them all with [`lock_contract!`](crate::lock_contract):
//!
//! ```
//! mod memory_lock {
//!     cpc_testkit::lock_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemoryLock::new()) });
//! }
//! # fn main() {}
//! ```
//!
//! Each case uses lock keys under its own random namespace and real (short) sleeps for expiry, so it runs
//! unchanged against a shared real server.
//!
//! The guard cases take a clone of the lock ([`GuardedLock`]), which the guard's watchdog keeps: the factory
//! must yield something that derefs to a `Lock + Clone` (every adapter, `Arc<dyn Lock>`) or is one
//! (`Arc<L>` of any lock: `Arc<InMemoryLock>`, `Arc<dyn Lock>`).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cpc_ports::{KvError, Lock, LockExt, LockKey, LockLease};
use tokio::time::{Instant, sleep, timeout};

use super::concurrently;

/// Runs every case of the [`Lock`] contract as a `#[tokio::test]`. `$factory` is an async expression yielding
/// a fresh lock service behind anything that derefs to it (`Arc<InMemoryLock>`, `Arc<dyn Lock>`); the guard
/// cases also need a clone of it (see [`GuardedLock`]), so a wrapper (a test harness) must deref to a lock that
/// is `Clone`: an adapter, or `Arc<dyn Lock>` rather than `dyn Lock`.
/// `lock_contract!(factory, inline)` expands instead to a block that runs every case in turn, inside a test of
/// the caller's (for a server costly to start, such as a Redis Cluster, that the factory may then borrow).
#[macro_export]
macro_rules! lock_contract {
    ($factory:expr $(, $mode:ident)?) => {
        $crate::__contract_cases!(
            $crate::contract::lock,
            $factory,
            [
                only_one_holder_at_a_time_and_every_waiter_gets_the_lock,
                fencing_tokens_grow_across_release_and_expiry,
                try_acquire_on_a_held_lock_returns_none,
                acquire_times_out_and_then_does_not_hold_the_lock,
                acquire_takes_the_lock_when_it_is_released,
                acquire_takes_the_lock_when_the_lease_expires,
                expired_lease_can_be_taken_by_another,
                extend_keeps_the_lock_past_its_original_ttl,
                extend_and_release_after_expiry_are_lease_lost,
                stale_lease_cannot_release_or_extend_the_new_owners_lock,
                released_lease_is_no_longer_held_and_cannot_release_again,
                is_held_is_false_for_a_forged_owner,
                with_lock_runs_the_work_and_releases,
                with_lock_reports_a_lease_lost_during_the_work,
                zero_ttl_is_refused,
                odd_keys_are_distinct_locks,
            ] $(, $mode)?
        );
        $crate::__contract_cases!(
            $crate::contract::lock,
            $factory,
            via $crate::contract::lock::GuardedLock => guarded_lock,
            [
                a_guard_keeps_its_lock_past_three_ttls,
                a_guard_reports_its_lease_lost_to_another_owner,
                dropping_a_guard_frees_its_lock,
                releasing_a_guard_frees_its_lock_at_once,
            ] $(, $mode)?
        );
    };
}

/// What the guard cases run on: a clone of the port, which a [`LeaseGuard`](cpc_ports::LeaseGuard)'s watchdog
/// keeps. Implemented for every `Lock + Clone` (each adapter, `Arc<L>` of any lock, `Arc<dyn Lock>`); the suite
/// macro calls it as a method, so it is found through the factory's wrapper (an `Arc`, a test harness) by
/// auto-deref.
pub trait GuardedLock: Lock + Clone {
    /// A clone of this lock.
    fn guarded_lock(&self) -> Self {
        self.clone()
    }
}

impl<L: Lock + Clone> GuardedLock for L {}

const SHORT_TTL: Duration = Duration::from_millis(150);
const PAST_SHORT_TTL: Duration = Duration::from_millis(400);
const LONG_TTL: Duration = Duration::from_secs(10);
/// The lease of the guard cases: short, so that holding it for three TTLs takes little time, long enough for an
/// extension every third of it on a loaded machine.
const GUARD_TTL: Duration = Duration::from_millis(450);

/// A lock key no other case or run shares: `cpc-contract:<case>:<random>:<suffix>`.
fn lock_key(case: &str, suffix: &str) -> LockKey {
    let text = format!("cpc-contract:{case}:{}:{suffix}", uuid::Uuid::new_v4().simple());
    LockKey::new(text.clone()).unwrap_or_else(|e| panic!("test key {text:?} should be valid: {e}"))
}

async fn take<P: Lock + ?Sized>(port: &P, key: &LockKey, ttl: Duration) -> LockLease {
    port.try_acquire(key, ttl).await.unwrap().unwrap_or_else(|| panic!("lock {key} should be free"))
}

fn assert_lease_lost(result: Result<impl std::fmt::Debug, KvError>, what: &str) {
    match result {
        Err(KvError::LeaseLost { .. }) => {}
        other => panic!("{what} must be LeaseLost, got {other:?}"),
    }
}

/// 16 callers contending for one lock: never two inside at once, every one gets it within its wait, each with
/// its own owner id, and tokens grow in the order holders entered.
pub async fn only_one_holder_at_a_time_and_every_waiter_gets_the_lock<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("only_one_holder_at_a_time_and_every_waiter_gets_the_lock", "contended");
    let inside = AtomicUsize::new(0);
    let overlaps = AtomicUsize::new(0);
    let entries: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let (key, inside, overlaps, entries_ref) = (&key, &inside, &overlaps, &entries);
    let results = concurrently(16, |_| async move {
        let lease = port.acquire(key, LONG_TTL, Duration::from_millis(1800)).await?;
        if inside.fetch_add(1, Ordering::SeqCst) != 0 {
            overlaps.fetch_add(1, Ordering::SeqCst);
        }
        entries_ref.lock().unwrap().push((lease.token.0, lease.owner.clone()));
        sleep(Duration::from_millis(5)).await;
        inside.fetch_sub(1, Ordering::SeqCst);
        port.release(lease).await
    })
    .await;
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two callers held the lock at the same time");
    let failures: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failures.is_empty(), "every caller must acquire and release within its wait: {failures:?}");
    let entries = entries.into_inner().unwrap();
    assert_eq!(entries.len(), 16, "all 16 callers must have held the lock");
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "tokens must grow in order of holding: {entries:?}");
    let owners: HashSet<_> = entries.iter().map(|(_, owner)| owner).collect();
    assert_eq!(owners.len(), 16, "every acquisition must have its own owner id");
}

/// Each acquisition of a key gets a larger fencing token than the last, whether it was released or expired.
pub async fn fencing_tokens_grow_across_release_and_expiry<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("fencing_tokens_grow_across_release_and_expiry", "k");
    let first = take(port, &key, LONG_TTL).await;
    let first_token = first.token;
    port.release(first).await.unwrap();
    let second = take(port, &key, SHORT_TTL).await;
    assert!(second.token > first_token, "token after release: {} must exceed {}", second.token, first_token);
    sleep(PAST_SHORT_TTL).await;
    let third = take(port, &key, LONG_TTL).await;
    assert!(third.token > second.token, "token after expiry: {} must exceed {}", third.token, second.token);
    port.release(third.clone()).await.unwrap();
    let fourth = port.acquire(&key, LONG_TTL, Duration::from_secs(1)).await.unwrap();
    assert!(fourth.token > third.token, "acquire's token must exceed try_acquire's: {}", fourth.token);
}

/// `try_acquire` on a held lock answers `None` at once and leaves the holder in place.
pub async fn try_acquire_on_a_held_lock_returns_none<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("try_acquire_on_a_held_lock_returns_none", "k");
    let held = take(port, &key, LONG_TTL).await;
    let started = Instant::now();
    assert_eq!(port.try_acquire(&key, LONG_TTL).await.unwrap(), None, "a held lock cannot be taken");
    assert!(started.elapsed() < Duration::from_millis(500), "try_acquire must not wait");
    assert!(port.is_held(&held).await.unwrap(), "a failed try_acquire must not disturb the holder");
    port.release(held).await.unwrap();
}

/// `acquire` on a lock held throughout its wait fails with `Timeout` once the wait is over (not much later),
/// and the failed caller does not end up holding the lock.
pub async fn acquire_times_out_and_then_does_not_hold_the_lock<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("acquire_times_out_and_then_does_not_hold_the_lock", "k");
    let held = take(port, &key, LONG_TTL).await;
    let wait = Duration::from_millis(250);
    let started = Instant::now();
    let result = port.acquire(&key, LONG_TTL, wait).await;
    let waited = started.elapsed();
    match result {
        Err(KvError::Timeout { after, .. }) => assert_eq!(after, wait, "Timeout must report the wait"),
        other => panic!("acquire on a held lock must time out, got {other:?}"),
    }
    assert!(waited >= wait, "acquire gave up after {waited:?}, before its wait of {wait:?}");
    assert!(waited < wait + Duration::from_millis(750), "acquire took {waited:?} to give up after {wait:?}");
    assert!(port.is_held(&held).await.unwrap(), "the holder keeps the lock");
    port.release(held).await.unwrap();
    sleep(Duration::from_millis(100)).await;
    let after = port.try_acquire(&key, LONG_TTL).await.unwrap();
    assert!(after.is_some(), "a caller that timed out must not hold (or later take) the lock");
}

/// A waiting `acquire` gets the lock soon after the holder releases it (not only when its wait or the lease
/// runs out), with a larger token.
pub async fn acquire_takes_the_lock_when_it_is_released<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("acquire_takes_the_lock_when_it_is_released", "k");
    let held = take(port, &key, LONG_TTL).await;
    let held_token = held.token;
    let started = Instant::now();
    let waiting = async {
        let lease = port.acquire(&key, LONG_TTL, Duration::from_millis(1900)).await;
        (lease, started.elapsed())
    };
    let ((waiter, waited), ()) = tokio::join!(waiting, async {
        sleep(Duration::from_millis(150)).await;
        port.release(held).await.unwrap();
    });
    let waiter = waiter.expect("the waiter must get the released lock within its wait");
    assert!(waited >= Duration::from_millis(150), "the waiter got the lock after {waited:?}, while it was held");
    assert!(waited < Duration::from_secs(1), "the waiter took {waited:?} to notice a release at 150 ms");
    assert!(waiter.token > held_token, "the waiter's token must exceed the previous holder's");
    assert!(port.is_held(&waiter).await.unwrap());
}

/// A waiting `acquire` gets a lock whose holder never releases, once the holder's lease runs out.
pub async fn acquire_takes_the_lock_when_the_lease_expires<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("acquire_takes_the_lock_when_the_lease_expires", "k");
    let abandoned = take(port, &key, Duration::from_millis(200)).await;
    let started = Instant::now();
    let waiter = port.acquire(&key, LONG_TTL, Duration::from_millis(1500)).await;
    let waiter = waiter.expect("the waiter must get the lock once the abandoned lease expires");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "the lock was taken after {waited:?}, before the lease ran out");
    assert!(waiter.token > abandoned.token, "the new token must exceed the abandoned one");
    assert!(!port.is_held(&abandoned).await.unwrap(), "the abandoned lease is no longer held");
}

/// Once a lease expires, another caller can take the lock, and the old lease no longer holds it.
pub async fn expired_lease_can_be_taken_by_another<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("expired_lease_can_be_taken_by_another", "k");
    let old = take(port, &key, SHORT_TTL).await;
    assert!(port.is_held(&old).await.unwrap(), "a fresh lease is held");
    sleep(PAST_SHORT_TTL).await;
    assert!(!port.is_held(&old).await.unwrap(), "an expired lease is not held");
    let new = port.try_acquire(&key, LONG_TTL).await.unwrap().expect("an expired lock must be free");
    assert_ne!(new.owner, old.owner, "the new holder has its own owner id");
    assert!(port.is_held(&new).await.unwrap());
    assert!(!port.is_held(&old).await.unwrap(), "the old lease stays lost");
}

/// `extend` resets the lease: the lock stays held past its original TTL, same owner and token, new TTL.
pub async fn extend_keeps_the_lock_past_its_original_ttl<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("extend_keeps_the_lock_past_its_original_ttl", "k");
    let lease = take(port, &key, Duration::from_millis(300)).await;
    sleep(Duration::from_millis(100)).await;
    let extended = port.extend(&lease, Duration::from_secs(2)).await.unwrap();
    assert_eq!((&extended.key, &extended.owner, extended.token), (&lease.key, &lease.owner, lease.token));
    assert_eq!(extended.ttl, Duration::from_secs(2), "the extended lease carries its new TTL");
    sleep(Duration::from_millis(400)).await;
    assert!(port.is_held(&extended).await.unwrap(), "an extended lease must outlive its original TTL");
    assert_eq!(port.try_acquire(&key, LONG_TTL).await.unwrap(), None, "the extended lock is still taken");
    port.release(extended).await.unwrap();
}

/// After the lease expired, `extend` and `release` both report `LeaseLost`.
pub async fn extend_and_release_after_expiry_are_lease_lost<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("extend_and_release_after_expiry_are_lease_lost", "k");
    let lease = take(port, &key, SHORT_TTL).await;
    sleep(PAST_SHORT_TTL).await;
    assert_lease_lost(port.extend(&lease, LONG_TTL).await, "extend after expiry");
    assert!(!port.is_held(&lease).await.unwrap(), "a failed extend must not revive the lease");
    assert_lease_lost(port.release(lease).await, "release after expiry");
    assert!(port.try_acquire(&key, LONG_TTL).await.unwrap().is_some(), "the expired lock is free");
}

/// A stale lease (expired, then taken by someone else) can neither release nor extend the new owner's lock.
pub async fn stale_lease_cannot_release_or_extend_the_new_owners_lock<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("stale_lease_cannot_release_or_extend_the_new_owners_lock", "k");
    let stale = take(port, &key, SHORT_TTL).await;
    sleep(PAST_SHORT_TTL).await;
    let owner = take(port, &key, LONG_TTL).await;
    assert_lease_lost(port.release(stale.clone()).await, "release by a stale lease");
    assert_lease_lost(port.extend(&stale, LONG_TTL).await, "extend by a stale lease");
    assert!(port.is_held(&owner).await.unwrap(), "the new owner must keep the lock");
    assert_eq!(port.try_acquire(&key, LONG_TTL).await.unwrap(), None, "the lock must still be taken");
    port.release(owner).await.unwrap();
}

/// After `release`, the lease is not held, the lock is free, and releasing again is `LeaseLost`.
pub async fn released_lease_is_no_longer_held_and_cannot_release_again<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("released_lease_is_no_longer_held_and_cannot_release_again", "k");
    let lease = take(port, &key, LONG_TTL).await;
    assert!(port.is_held(&lease).await.unwrap(), "a fresh lease is held");
    port.release(lease.clone()).await.unwrap();
    assert!(!port.is_held(&lease).await.unwrap(), "a released lease is not held");
    assert_lease_lost(port.release(lease.clone()).await, "a second release");
    assert_lease_lost(port.extend(&lease, LONG_TTL).await, "extend after release");
    let next = take(port, &key, LONG_TTL).await;
    assert!(!port.is_held(&lease).await.unwrap(), "the released lease does not hold the next owner's lock");
    port.release(next).await.unwrap();
}

/// `is_held` (and `extend`, `release`) check the owner, not just the key: a forged lease holds nothing.
pub async fn is_held_is_false_for_a_forged_owner<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("is_held_is_false_for_a_forged_owner", "k");
    let lease = take(port, &key, LONG_TTL).await;
    let forged = LockLease { owner: format!("{}-forged", lease.owner), ..lease.clone() };
    assert!(!port.is_held(&forged).await.unwrap(), "a lease with another owner id is not held");
    assert_lease_lost(port.extend(&forged, LONG_TTL).await, "extend by a forged owner");
    assert_lease_lost(port.release(forged).await, "release by a forged owner");
    assert!(port.is_held(&lease).await.unwrap(), "the real holder keeps the lock");
    let other_key = LockLease { key: lock_key("is_held_is_false_for_a_forged_owner", "other"), ..lease.clone() };
    assert!(!port.is_held(&other_key).await.unwrap(), "a lease names one key only");
    port.release(lease).await.unwrap();
}

/// `with_lock` runs the work holding the lock and releases it afterwards.
pub async fn with_lock_runs_the_work_and_releases<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("with_lock_runs_the_work_and_releases", "k");
    let out = port
        .with_lock(&key, LONG_TTL, Duration::from_secs(1), |lease| async move {
            let held = port.is_held(&lease).await.unwrap();
            let free = port.try_acquire(&lease.key, LONG_TTL).await.unwrap().is_some();
            (held, free, lease.token)
        })
        .await
        .unwrap();
    assert!(out.0, "the work must run holding the lock");
    assert!(!out.1, "nobody else can take the lock during the work");
    let next = take(port, &key, LONG_TTL).await;
    assert!(next.token > out.2, "with_lock must release, and the next token grows");
}

/// If the lease runs out while `with_lock`'s work runs, the result is `LeaseLost`: the work was not exclusive.
pub async fn with_lock_reports_a_lease_lost_during_the_work<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("with_lock_reports_a_lease_lost_during_the_work", "k");
    let result = port.with_lock(&key, SHORT_TTL, Duration::from_secs(1), |_| sleep(PAST_SHORT_TTL)).await;
    assert_lease_lost(result, "with_lock whose lease expired during the work");
    assert!(port.try_acquire(&key, LONG_TTL).await.unwrap().is_some(), "the lock is free afterwards");
}

/// A zero TTL is a validation error for `try_acquire`, `acquire` and `extend`, and takes nothing.
pub async fn zero_ttl_is_refused<P: Lock + ?Sized>(port: &P) {
    let key = lock_key("zero_ttl_is_refused", "k");
    let err = port.try_acquire(&key, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "try_acquire with a zero TTL: Validation, got {err:?}");
    let err = port.acquire(&key, Duration::ZERO, Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "acquire with a zero TTL: Validation, got {err:?}");
    let lease = take(port, &key, LONG_TTL).await;
    let err = port.extend(&lease, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "extend with a zero TTL: Validation, got {err:?}");
    assert!(port.is_held(&lease).await.unwrap(), "a refused extend leaves the lease as it was");
    port.release(lease).await.unwrap();
}

/// Odd keys (unicode, spaces, newlines, glob characters, 1 KiB) work, and each is its own lock: holding one
/// does not block a key that is its prefix or differs by a character.
pub async fn odd_keys_are_distinct_locks<P: Lock + ?Sized>(port: &P) {
    let base = lock_key("odd_keys_are_distinct_locks", "").as_str().to_owned();
    let suffixes = ["ünïcödé 🔒", "with space", "with space ", "new\nline", "glob*?[x]", "glob", &"k".repeat(1024)];
    let mut leases = Vec::new();
    for suffix in suffixes {
        let key = LockKey::new(format!("{base}{suffix}")).unwrap();
        let lease = port.try_acquire(&key, LONG_TTL).await.unwrap();
        let lease = lease.unwrap_or_else(|| panic!("lock {suffix:?} must be free: no other key may block it"));
        assert_eq!(port.try_acquire(&key, LONG_TTL).await.unwrap(), None, "lock {suffix:?} is now held");
        leases.push(lease);
    }
    for lease in leases {
        assert!(port.is_held(&lease).await.unwrap(), "lock {:?} is held", lease.key);
        port.release(lease).await.unwrap();
    }
}

/// A guard held for three times its TTL still holds the lock: its watchdog extended the lease, nobody else can
/// take it (not even as a guard), and the guard is not lost. Released, the lock goes to the next with a larger
/// token.
pub async fn a_guard_keeps_its_lock_past_three_ttls<P: Lock + Clone>(port: &P) {
    let key = lock_key("a_guard_keeps_its_lock_past_three_ttls", "k");
    let guard = port.acquire_guard(&key, GUARD_TTL, Duration::from_secs(1)).await.unwrap();
    assert!(!guard.is_lost(), "a fresh guard is not lost");
    sleep(3 * GUARD_TTL).await;
    assert!(!guard.is_lost(), "the watchdog must keep the lease for as long as the guard lives");
    assert!(port.is_held(&guard.lease()).await.unwrap(), "held after three TTLs");
    assert_eq!(port.try_acquire(&key, LONG_TTL).await.unwrap(), None, "nobody else can take a guarded lock");
    assert!(port.try_acquire_guard(&key, LONG_TTL).await.unwrap().is_none(), "nor take a guard on it");
    assert_eq!(guard.lease().token, guard.token(), "extensions keep the fencing token");
    let token = guard.token();
    guard.release().await.unwrap();
    let next = take(port, &key, LONG_TTL).await;
    assert!(next.token > token, "the next holder's token {} must exceed the guard's {token}", next.token);
}

/// When another owner takes the lock (here: the lease released behind the guard's back, then acquired), the
/// guard's `lost()` resolves within about one TTL (its next extension finds the lease gone), `is_lost()` turns
/// true, and `release()` reports `LeaseLost` without freeing the new owner's lock.
pub async fn a_guard_reports_its_lease_lost_to_another_owner<P: Lock + Clone>(port: &P) {
    let key = lock_key("a_guard_reports_its_lease_lost_to_another_owner", "k");
    let guard = port.try_acquire_guard(&key, GUARD_TTL).await.unwrap().expect("a fresh lock is free");
    let signal = guard.lost_signal();
    port.release(guard.lease()).await.unwrap();
    let thief = take(port, &key, LONG_TTL).await;
    let started = Instant::now();
    timeout(GUARD_TTL + Duration::from_millis(500), guard.lost())
        .await
        .unwrap_or_else(|_| panic!("lost() must resolve within about one TTL of the lease going to another owner"));
    let noticed = started.elapsed();
    assert!(guard.is_lost(), "is_lost() after lost() resolved");
    assert!(*signal.borrow(), "the lost signal turned true");
    assert!(noticed <= GUARD_TTL + Duration::from_millis(500), "noticed after {noticed:?}");
    assert!(!port.is_held(&guard.lease()).await.unwrap(), "the guard's lease is gone");
    assert_lease_lost(guard.release().await, "release of a lost guard");
    assert!(port.is_held(&thief).await.unwrap(), "releasing the lost guard must not free the new owner's lock");
    port.release(thief).await.unwrap();
}

/// Dropping a guard releases its lock in the background: another caller gets it long before the lease (10 s)
/// would have run out.
pub async fn dropping_a_guard_frees_its_lock<P: Lock + Clone>(port: &P) {
    let key = lock_key("dropping_a_guard_frees_its_lock", "k");
    let guard = port.acquire_guard(&key, LONG_TTL, Duration::from_secs(1)).await.unwrap();
    let token = guard.token();
    assert_eq!(port.try_acquire(&key, LONG_TTL).await.unwrap(), None, "held while the guard lives");
    drop(guard);
    let started = Instant::now();
    let next = loop {
        if let Some(lease) = port.try_acquire(&key, LONG_TTL).await.unwrap() {
            break lease;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "a dropped guard must free its lock soon");
        sleep(Duration::from_millis(20)).await;
    };
    assert!(next.token > token, "the next token {} must exceed the dropped guard's {token}", next.token);
    port.release(next).await.unwrap();
}

/// `release()` frees the lock at once: a `try_acquire` right after it succeeds, and the released guard's lease
/// is no longer held.
pub async fn releasing_a_guard_frees_its_lock_at_once<P: Lock + Clone>(port: &P) {
    let key = lock_key("releasing_a_guard_frees_its_lock_at_once", "k");
    let guard = port.try_acquire_guard(&key, LONG_TTL).await.unwrap().expect("a fresh lock is free");
    let lease = guard.lease();
    assert!(port.is_held(&lease).await.unwrap());
    guard.release().await.unwrap();
    assert!(!port.is_held(&lease).await.unwrap(), "a released guard's lease is not held");
    let next = port.try_acquire(&key, LONG_TTL).await.unwrap().expect("a released guard's lock is free at once");
    assert!(next.token > lease.token);
    port.release(next).await.unwrap();
}
