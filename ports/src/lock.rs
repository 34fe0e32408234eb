//! The [`Lock`] port: mutual exclusion across processes, with leases and fencing tokens.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{KvError, LockKey};

pub mod guard;
pub mod retry;

pub use guard::LeaseGuard;

/// A number that grows with every successful acquisition of a lock key. Hand it to the protected resource with
/// each write; the resource refuses writes carrying a token lower than the highest it has seen, which makes a
/// holder whose lease silently expired harmless (Kleppmann's fencing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Proof of holding a lock: the key, a unique owner id, and the fencing token of this acquisition. Plain data;
/// pass it back to [`Lock::extend`] and [`Lock::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLease {
    /// The lock held.
    pub key: LockKey,
    /// Random id of this acquisition; only it can extend or release the lock.
    pub owner: String,
    /// The fencing token of this acquisition.
    pub token: FencingToken,
    /// The lease the lock was taken (or last extended) for.
    pub ttl: Duration,
}

/// A distributed lock. Acquisitions are leases: a holder that dies loses the lock when its lease runs out.
///
/// Implementations: Redis (`DistributedLock` and `Redlock` in `cpc-adapters`), PostgreSQL (`PgLock`), SQLite
/// (`SqliteLock`), in-process (`InMemoryLock`, feature `memory`; re-exported by `cpc-testkit`), and `Arc<L>` of any
/// of them, `Arc<dyn Lock>` included (forwarding, so a shared lock gets [`LockExt`]'s guard too).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Lock: Send + Sync + 'static {
    /// Takes the lock if it is free; `Ok(None)` if someone else holds it.
    ///
    /// MUST refuse a zero `ttl` with [`KvError::Validation`]. MUST give each acquisition of a key a fencing
    /// token greater than every earlier one for that key, across releases and expiries.
    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<LockLease>, KvError>;

    /// Takes the lock, waiting up to `wait` for it to be free.
    ///
    /// MUST return [`KvError::Timeout`] once `wait` has passed without acquiring (and MUST NOT hold the lock then).
    /// Of many concurrent callers, MUST let only one hold the lock at any time.
    async fn acquire(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError>;

    /// Resets the lease to `ttl` from now.
    ///
    /// MUST return [`KvError::LeaseLost`] if the lease expired or another owner holds the lock now.
    async fn extend(&self, lease: &LockLease, ttl: Duration) -> Result<LockLease, KvError>;

    /// Releases the lock.
    ///
    /// MUST NOT release a lock now held by another owner; in that case, or when the lease already expired, it
    /// MUST return [`KvError::LeaseLost`] so the caller learns its protected work was not exclusive.
    async fn release(&self, lease: LockLease) -> Result<(), KvError>;

    /// Whether `lease` still holds its lock: the way to learn a lease was lost without changing anything.
    async fn is_held(&self, lease: &LockLease) -> Result<bool, KvError>;
}

/// The future of a forwarded [`Lock`] method, as `#[async_trait]` declares it.
type Forwarded<'a, T> = Pin<Box<dyn Future<Output = Result<T, KvError>> + Send + 'a>>;

/// A shared lock is a lock: every method forwards to the one behind the [`Arc`] (the same boxed future, no second
/// allocation). What lets an app's `Arc<dyn Lock>` take a [`LeaseGuard`], which needs a lock it can clone.
impl<L: Lock + ?Sized> Lock for Arc<L> {
    fn try_acquire<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 LockKey,
        ttl: Duration,
    ) -> Forwarded<'async_trait, Option<LockLease>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).try_acquire(key, ttl)
    }

    fn acquire<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 LockKey,
        ttl: Duration,
        wait: Duration,
    ) -> Forwarded<'async_trait, LockLease>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).acquire(key, ttl, wait)
    }

    fn extend<'life0, 'life1, 'async_trait>(
        &'life0 self,
        lease: &'life1 LockLease,
        ttl: Duration,
    ) -> Forwarded<'async_trait, LockLease>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).extend(lease, ttl)
    }

    fn release<'life0, 'async_trait>(&'life0 self, lease: LockLease) -> Forwarded<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).release(lease)
    }

    fn is_held<'life0, 'life1, 'async_trait>(&'life0 self, lease: &'life1 LockLease) -> Forwarded<'async_trait, bool>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).is_held(lease)
    }
}

/// Conveniences over any [`Lock`]. Blanket-implemented, `dyn Lock` included; the guards need a lock they can
/// clone into their watchdog (every adapter, and `Arc<dyn Lock>`).
#[async_trait]
pub trait LockExt: Lock {
    /// Acquires `key` (waiting up to `wait`), runs `work` with the lease, and releases.
    ///
    /// Returns [`KvError::LeaseLost`] if the lease was lost before release, even though `work` finished: its
    /// result cannot be trusted to have been exclusive.
    async fn with_lock<F, Fut, T>(&self, key: &LockKey, ttl: Duration, wait: Duration, work: F) -> Result<T, KvError>
    where
        F: FnOnce(LockLease) -> Fut + Send,
        Fut: Future<Output = T> + Send,
        T: Send,
    {
        let lease = self.acquire(key, ttl, wait).await?;
        let out = work(lease.clone()).await;
        self.release(lease).await?;
        Ok(out)
    }

    /// Takes the lock like [`Lock::acquire`] (waiting up to `wait`) and returns a [`LeaseGuard`] whose watchdog
    /// extends the lease by `ttl` every `ttl / 3` until the guard is released or dropped, and reports a lost lease.
    async fn acquire_guard(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LeaseGuard, KvError>
    where
        Self: Clone + Sized,
    {
        let started = tokio::time::Instant::now();
        let lease = self.acquire(key, ttl, wait).await?;
        Ok(LeaseGuard::start(Arc::new(self.clone()), lease, started))
    }

    /// Takes the lock if it is free, like [`Lock::try_acquire`], and returns a [`LeaseGuard`] with a watchdog;
    /// `Ok(None)` if someone else holds it.
    async fn try_acquire_guard(&self, key: &LockKey, ttl: Duration) -> Result<Option<LeaseGuard>, KvError>
    where
        Self: Clone + Sized,
    {
        let sent = tokio::time::Instant::now();
        let lease = self.try_acquire(key, ttl).await?;
        Ok(lease.map(|lease| LeaseGuard::start(Arc::new(self.clone()), lease, sent)))
    }
}

impl<L: Lock + ?Sized> LockExt for L {}
