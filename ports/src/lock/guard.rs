//! [`LeaseGuard`]: a held lock whose lease a background task (the watchdog) keeps extending, which reports a lost
//! lease and releases the lock when dropped. Taken with [`LockExt::acquire_guard`](crate::LockExt::acquire_guard)
//! or [`LockExt::try_acquire_guard`](crate::LockExt::try_acquire_guard) on any [`Lock`], `Arc<dyn Lock>` included.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cpc_ports::{KvError, Lock, LockExt, LockKey};
//!
//! async fn rebuild_index(lock: Arc<dyn Lock>) -> Result<(), KvError> {
//!     let key = LockKey::new("rebuild-index")?;
//!     let guard = lock.acquire_guard(&key, Duration::from_secs(10), Duration::from_secs(1)).await?;
//!     tokio::select! {
//!         () = guard.lost() => return Err(KvError::LeaseLost { key: key.as_str().to_owned() }),
//!         () = rebuild(guard.token().0) => {}
//!     }
//!     guard.release().await
//! }
//! # async fn rebuild(_fencing_token: u64) {}
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::retry::release_in_background;
use crate::{FencingToken, KvError, Lock, LockLease};

/// A held lock with a watchdog.
///
/// A background task extends the lease by its full TTL every third of it (from the last extension that
/// succeeded), so the lock stays held as long as the guard lives, however long the work takes. An extension that
/// fails for another reason than a lost lease (a dropped connection, a timeout) is tried again every twelfth of the
/// TTL. The watchdog stops and reports the lease lost when an extension answers [`KvError::LeaseLost`] (it expired
/// or another owner holds the lock), or when the last confirmed lease runs out before an extension succeeds:
/// [`LeaseGuard::is_lost`] turns true, [`LeaseGuard::lost`] resolves and [`LeaseGuard::lost_signal`] receivers see
/// `true`. The holder must then stop its protected work, and should pass [`LeaseGuard::token`] to the protected
/// resource with each write so that late writes are refused.
///
/// How long a lease surely lasts is counted from the moment the request that took or extended it was sent, so a
/// slow answer shortens it rather than lengthening it. For a lock taken after a wait, only the start of the wait is
/// known; if a third of the TTL passed during the wait, the watchdog extends at once, and the guard is lost if
/// that extension fails.
///
/// [`LeaseGuard::release`] stops the watchdog and releases, reporting [`KvError::LeaseLost`] if the lease was lost.
/// Dropping the guard instead stops the watchdog and releases in a task spawned on the current tokio runtime,
/// without blocking ([`release_in_background`]); with no runtime, the lease simply runs out.
///
/// The guard needs a tokio runtime with the time driver to be created (the watchdog is a spawned task).
#[must_use = "dropping the guard releases the lock"]
pub struct LeaseGuard {
    lock: Arc<dyn Lock>,
    lease: Arc<Mutex<LockLease>>,
    lost: watch::Receiver<bool>,
    watchdog: JoinHandle<()>,
    armed: bool,
}

impl LeaseGuard {
    /// Starts the watchdog for `lease`, held through `lock`. `taken_at` is an instant no later than the moment the
    /// lock's server set the lease: the moment the request that took it was sent, or the start of the wait that
    /// ended with it. (Later would let the guard believe in a lease that already ran out.)
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (like [`tokio::spawn`]).
    pub fn start(lock: Arc<dyn Lock>, lease: LockLease, taken_at: Instant) -> Self {
        let (tx, lost) = watch::channel(false);
        let shared = Arc::new(Mutex::new(lease));
        let watchdog = tokio::spawn(watch_lease(Arc::clone(&lock), Arc::clone(&shared), taken_at, tx));
        Self { lock, lease: shared, lost, watchdog, armed: true }
    }

    /// The lease as last extended (key, owner, fencing token, TTL of each extension).
    pub fn lease(&self) -> LockLease {
        current(&self.lease).clone()
    }

    /// The fencing token of this acquisition.
    pub fn token(&self) -> FencingToken {
        current(&self.lease).token
    }

    /// Whether the watchdog found the lease lost (or died: a lock whose `extend` panicked). Once true it stays true.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.lost.has_changed().is_err()
    }

    /// Resolves when the lease is lost (at once if it already is); pending for as long as the lock is held. For
    /// `tokio::select!` against the protected work.
    pub async fn lost(&self) {
        let mut signal = self.lost.clone();
        // An error means the watchdog is gone without reporting: nobody extends the lease any more.
        let _ = signal.wait_for(|lost| *lost).await;
    }

    /// A receiver that turns `true` when the lease is lost, for a task that does not hold the guard
    /// (`signal.wait_for(|lost| *lost)`). After the guard is released or dropped the sender is gone, so waiting
    /// for a value that never came returns an error.
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Stops the watchdog and releases the lock. [`KvError::LeaseLost`] if the lease was lost (the watchdog said
    /// so, or the lock was no longer held by this guard): the protected work was not exclusive throughout.
    pub async fn release(mut self) -> Result<(), KvError> {
        // Read before the abort, which drops the watchdog's sender (that alone would read as lost).
        let lost = self.is_lost();
        self.armed = false;
        self.watchdog.abort();
        let lease = self.lease();
        let released = self.lock.release(lease.clone()).await;
        match released {
            Ok(()) if lost => Err(KvError::LeaseLost { key: lease.key.as_str().to_owned() }),
            other => other,
        }
    }
}

impl fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lease = current(&self.lease);
        f.debug_struct("LeaseGuard")
            .field("key", &lease.key)
            .field("token", &lease.token)
            .field("ttl", &lease.ttl)
            .field("lost", &self.is_lost())
            .finish_non_exhaustive()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.watchdog.abort();
        if self.armed {
            release_in_background(&self.lock, self.lease());
        }
    }
}

fn current(lease: &Mutex<LockLease>) -> MutexGuard<'_, LockLease> {
    lease.lock().unwrap_or_else(|e| e.into_inner())
}

/// Extends the lease every third of its TTL until aborted, or until the lease is lost (then reports it).
async fn watch_lease(lock: Arc<dyn Lock>, lease: Arc<Mutex<LockLease>>, taken_at: Instant, lost: watch::Sender<bool>) {
    const RAN_OUT: &str = "lock lease could not be extended before it ran out";
    let mut held = current(&lease).clone();
    let ttl = held.ttl;
    let period = (ttl / 3).max(Duration::from_millis(1));
    let retry_pause = (ttl / 12).max(Duration::from_millis(1));
    // Until then the lease surely lasts (`None`: beyond what an `Instant` can hold, so forever).
    let mut held_until = taken_at.checked_add(ttl);
    let mut next = taken_at.checked_add(period);
    let mut first = true;
    loop {
        match (next, held_until) {
            (Some(at), Some(until)) => tokio::time::sleep_until(at.min(until)).await,
            (Some(at), None) => tokio::time::sleep_until(at).await,
            (None, _) => std::future::pending().await,
        }
        let sent = Instant::now();
        // `None`: the lease may have run out already. Only the first extension may still try then, since the
        // acquisition's own moment is not known (a wait longer than a third of the TTL); it must succeed.
        let deadline = match held_until {
            Some(until) if until <= sent => None,
            Some(until) => Some(Some(until)),
            None => Some(None),
        };
        if deadline.is_none() && !first {
            return report_lost(&lost, &held, RAN_OUT);
        }
        first = false;
        let extension = lock.extend(&held, ttl);
        let outcome = match deadline {
            Some(Some(until)) => tokio::time::timeout_at(until, extension).await.ok(),
            Some(None) | None => Some(extension.await),
        };
        match outcome {
            Some(Ok(extended)) => {
                held_until = sent.checked_add(extended.ttl);
                next = sent.checked_add(period);
                held = extended.clone();
                *current(&lease) = extended;
            }
            Some(Err(KvError::LeaseLost { .. })) => {
                return report_lost(&lost, &held, "lock lease was lost (expired or taken over)");
            }
            Some(Err(e)) if deadline.is_some() => {
                tracing::warn!(key = %held.key, error = %e, "lock lease extension failed; trying again");
                next = Instant::now().checked_add(retry_pause);
            }
            Some(Err(e)) => {
                tracing::warn!(key = %held.key, error = %e, "lock lease extension failed");
                return report_lost(&lost, &held, RAN_OUT);
            }
            None => return report_lost(&lost, &held, RAN_OUT),
        }
    }
}

fn report_lost(lost: &watch::Sender<bool>, lease: &LockLease, why: &'static str) {
    tracing::warn!(key = %lease.key, "{why}; reporting it lost");
    lost.send_replace(true);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::LockKey;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

    const TTL: Duration = Duration::from_millis(300);
    const OK: u8 = 0;
    const DOWN: u8 = 1;
    const GONE: u8 = 2;
    const HANG: u8 = 3;

    /// A lock whose `extend` answers as `mode` says, counting extends and releases.
    #[derive(Default)]
    struct Scripted {
        mode: AtomicU8,
        extends: AtomicU32,
        releases: AtomicU32,
    }

    #[async_trait]
    impl Lock for Scripted {
        async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<LockLease>, KvError> {
            Ok(Some(LockLease { key: key.clone(), owner: "me".into(), token: FencingToken(7), ttl }))
        }
        async fn acquire(&self, key: &LockKey, ttl: Duration, _: Duration) -> Result<LockLease, KvError> {
            Ok(self.try_acquire(key, ttl).await?.unwrap())
        }
        async fn extend(&self, lease: &LockLease, ttl: Duration) -> Result<LockLease, KvError> {
            self.extends.fetch_add(1, Ordering::SeqCst);
            match self.mode.load(Ordering::SeqCst) {
                OK => Ok(LockLease { ttl, ..lease.clone() }),
                DOWN => Err(KvError::Unavailable { backend: "test", reason: "down".into() }),
                GONE => Err(KvError::LeaseLost { key: lease.key.as_str().to_owned() }),
                _ => std::future::pending().await,
            }
        }
        async fn release(&self, _: LockLease) -> Result<(), KvError> {
            self.releases.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn is_held(&self, _: &LockLease) -> Result<bool, KvError> {
            Ok(true)
        }
    }

    fn scripted(mode: u8) -> Arc<Scripted> {
        let lock = Arc::new(Scripted::default());
        lock.mode.store(mode, Ordering::SeqCst);
        lock
    }

    async fn guard(lock: &Arc<Scripted>, taken_at: Instant) -> LeaseGuard {
        let lease = lock.try_acquire(&LockKey::new("k").unwrap(), TTL).await.unwrap().unwrap();
        LeaseGuard::start(Arc::clone(lock) as Arc<dyn Lock>, lease, taken_at)
    }

    #[tokio::test(start_paused = true)]
    async fn extends_every_third_of_the_ttl_while_held() {
        let lock = scripted(OK);
        let guard = guard(&lock, Instant::now()).await;
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(lock.extends.load(Ordering::SeqCst), 10, "one extension every 100 ms");
        assert!(!guard.is_lost());
        guard.release().await.unwrap();
        assert_eq!(lock.releases.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_extensions_are_retried_until_the_lease_runs_out_then_lost() {
        let lock = scripted(DOWN);
        let taken_at = Instant::now();
        let guard = guard(&lock, taken_at).await;
        guard.lost().await;
        assert_eq!(taken_at.elapsed(), TTL, "lost exactly when the last confirmed lease ran out");
        let tries = lock.extends.load(Ordering::SeqCst);
        assert!(tries >= 8, "retried every twelfth of the TTL after the first third: {tries} tries");
        assert!(guard.is_lost());
        assert!(matches!(guard.release().await, Err(KvError::LeaseLost { .. })), "a lost guard's release");
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_failure_does_not_lose_the_lease() {
        let lock = scripted(DOWN);
        let guard = guard(&lock, Instant::now()).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        lock.mode.store(OK, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(!guard.is_lost(), "an extension within the lease keeps it");
        guard.release().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_extension_that_hangs_past_the_lease_is_a_loss() {
        let lock = scripted(HANG);
        let taken_at = Instant::now();
        let guard = guard(&lock, taken_at).await;
        guard.lost().await;
        assert_eq!(taken_at.elapsed(), TTL);
    }

    #[tokio::test(start_paused = true)]
    async fn lease_lost_is_reported_at_the_next_extension() {
        let lock = scripted(GONE);
        let taken_at = Instant::now();
        let guard = guard(&lock, taken_at).await;
        let mut signal = guard.lost_signal();
        signal.wait_for(|lost| *lost).await.unwrap();
        assert_eq!(taken_at.elapsed(), TTL / 3);
        assert_eq!(lock.extends.load(Ordering::SeqCst), 1, "no extension after the loss");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_long_wait_the_first_extension_comes_at_once_and_must_succeed() {
        for (mode, lost) in [(OK, false), (DOWN, true)] {
            let lock = scripted(mode);
            let start = Instant::now();
            tokio::time::sleep(2 * TTL).await;
            let guard = guard(&lock, start).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(lock.extends.load(Ordering::SeqCst), 1, "extended at once");
            assert_eq!(guard.is_lost(), lost, "mode {mode}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_guard_stops_the_watchdog_and_releases() {
        let lock = scripted(OK);
        drop(guard(&lock, Instant::now()).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(lock.extends.load(Ordering::SeqCst), 0, "no extension after the drop");
        assert_eq!(lock.releases.load(Ordering::SeqCst), 1, "released in the background");
    }
}
