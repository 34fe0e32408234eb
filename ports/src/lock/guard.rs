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
        self.armed = false;
        self.watchdog.abort();
        let lease = self.lease();
        let lost = self.is_lost();
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
