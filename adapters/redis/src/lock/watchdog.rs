//! [`LockGuard`]: a held lock whose lease a background task keeps renewing.

use std::time::Duration;

use cpc_ports::{FencingToken, KvError, Lock, LockLease};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::DistributedLock;

/// A held lock with a watchdog (from [`DistributedLock::acquire_guard`]).
///
/// A background task extends the lease by its full TTL every third of it, so the lock stays held as long as the
/// guard lives, however long the work takes. If an extension finds the lease gone (expired or taken over), or
/// extensions keep failing until the last confirmed lease has run out, the watchdog stops and reports the loss:
/// [`LockGuard::lost`] turns true and [`LockGuard::lost_signal`] receivers see `true`. The holder must then stop
/// its protected work (and pass [`LockGuard::token`] to the protected resource so late writes are refused).
///
/// [`LockGuard::release`] stops the watchdog and releases, reporting [`KvError::LeaseLost`] if the lock was no
/// longer held. Dropping the guard instead stops the watchdog and releases in a task spawned on the current
/// tokio runtime, without blocking; with no runtime, the lease simply runs out.
#[derive(Debug)]
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard {
    lock: DistributedLock,
    lease: LockLease,
    lost: watch::Receiver<bool>,
    watchdog: JoinHandle<()>,
    armed: bool,
}

impl LockGuard {
    /// Starts the watchdog for `lease`, taken by a request sent at `sent`.
    pub(super) fn start(lock: DistributedLock, lease: LockLease, sent: Instant) -> Self {
        let (tx, lost) = watch::channel(false);
        let watchdog = tokio::spawn(renew(lock.clone(), lease.clone(), sent, tx));
        Self { lock, lease, lost, watchdog, armed: true }
    }

    /// The lease (key, owner, fencing token, TTL of each renewal).
    pub fn lease(&self) -> &LockLease {
        &self.lease
    }

    /// The fencing token of this acquisition.
    pub fn token(&self) -> FencingToken {
        self.lease.token
    }

    /// Whether the watchdog found the lease lost. Once true it stays true.
    pub fn lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// A receiver that turns `true` when the lease is lost, e.g. to `select!` against the protected work
    /// (`signal.wait_for(|lost| *lost)`). After the guard is released or dropped the sender is gone, so waiting
    /// for a value that never came returns an error.
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Stops the watchdog and releases the lock. [`KvError::LeaseLost`] if the lock was no longer held by this
    /// guard: the protected work was not exclusive. (A success means the lock was held without a break from
    /// acquisition to release, whatever [`LockGuard::lost`] said after renewals failed.)
    pub async fn release(mut self) -> Result<(), KvError> {
        self.armed = false;
        self.watchdog.abort();
        self.lock.release(self.lease.clone()).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.watchdog.abort();
        if self.armed {
            cpc_ports::lock::retry::release_in_background(&self.lock, self.lease.clone());
        }
    }
}

/// Renews `lease` every third of its TTL until aborted, or until the lease is lost (then reports it).
async fn renew(lock: DistributedLock, lease: LockLease, sent: Instant, lost: watch::Sender<bool>) {
    let period = (lease.ttl / 3).max(Duration::from_millis(1));
    // The lease surely lasts until then: it was set no earlier than the request that took or extended it left.
    let mut held_until = sent + lease.ttl;
    loop {
        let now = Instant::now();
        if now >= held_until {
            tracing::warn!(key = %lease.key, "lock lease could not be renewed in time; reporting it lost");
            lost.send_replace(true);
            return;
        }
        tokio::time::sleep(period.min(held_until - now)).await;
        let sent = Instant::now();
        match lock.extend(&lease, lease.ttl).await {
            Ok(_) => held_until = sent + lease.ttl,
            Err(KvError::LeaseLost { .. }) => {
                tracing::warn!(key = %lease.key, "lock lease was lost (expired or taken over)");
                lost.send_replace(true);
                return;
            }
            Err(e) => tracing::warn!(key = %lease.key, error = %e, "lock lease renewal failed; retrying"),
        }
    }
}
