//! [`SqliteLock`]: the [`Lock`] port over a SQLite table, leases on SQLite's clock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpc_pool::sqlite::SqlitePool;
use cpc_ports::lock::retry::retry_until_taken;
use cpc_ports::{FencingToken, KvError, Lock, LockKey, LockLease, SessionId};
use rusqlite::{OptionalExtension, params};
use tokio::sync::Notify;

use crate::kv::{kv_error, millis, write};

/// Takes lock `?1` for owner `?2` for `?3` ms if it is free (never taken, released, or its lease over), raising its
/// fencing token. Returns the new token, or no row when a live lease holds the lock.
const ACQUIRE: &str = concat!(
    "INSERT INTO cpc_locks (key, owner, fence, expires_at) VALUES (?1, ?2, 1, ",
    now_ms!(),
    " + ?3) \
     ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, fence = cpc_locks.fence + 1, \
       expires_at = excluded.expires_at \
     WHERE cpc_locks.owner IS NULL OR cpc_locks.expires_at <= ",
    now_ms!(),
    " RETURNING fence"
);

/// How long the live lease on lock `?1` has left, in ms.
const HELD_FOR: &str = concat!(
    "SELECT expires_at - ",
    now_ms!(),
    " FROM cpc_locks WHERE key = ?1 AND owner IS NOT NULL AND expires_at > ",
    now_ms!()
);

/// Moves the end of owner `?2`'s live lease on lock `?1` to `?3` ms from now.
const EXTEND: &str = concat!(
    "UPDATE cpc_locks SET expires_at = ",
    now_ms!(),
    " + ?3 WHERE key = ?1 AND owner = ?2 AND expires_at > ",
    now_ms!()
);

/// Ends owner `?2`'s live lease on lock `?1`; the row (and its fencing token) stays.
const RELEASE: &str = concat!(
    "UPDATE cpc_locks SET owner = NULL, expires_at = ",
    now_ms!(),
    " WHERE key = ?1 AND owner = ?2 AND expires_at > ",
    now_ms!()
);

const IS_HELD: &str = concat!("SELECT 1 FROM cpc_locks WHERE key = ?1 AND owner = ?2 AND expires_at > ", now_ms!());

/// The SQLite [`Lock`]: the table `cpc_locks` of migration `2026-12-06-000003_create_locks` (run the library's
/// SQLite migrations first), for several connections, tasks or processes on one database file.
///
/// One row per key ever locked: the current owner (a random 256-bit id per acquisition), the lease's end in
/// milliseconds on SQLite's clock, and the last fencing token. An acquisition is one
/// `INSERT ... ON CONFLICT DO UPDATE ... WHERE free RETURNING fence` in a `BEGIN IMMEDIATE` transaction, so of
/// any number of contenders exactly one gets the lock, and its token is one above the key's last (a release or an
/// expiry keeps the row, so tokens grow across both). Extend, release and `is_held` match the owner id and a live
/// lease, so a holder whose lease ran out gets [`KvError::LeaseLost`] and cannot touch the next holder's lock.
///
/// **Waiting.** [`acquire`](Lock::acquire) retries with a backoff and jitter from 5 ms doubling to 100 ms (never
/// past the current lease's end, nor the wait); a release through this store (or a clone of it) wakes its
/// waiters at once.
///
/// **Cost.** Every call is one short statement; all but `is_held` are write transactions behind the pool's writer
/// gate. Rows are never deleted: one row per distinct key, a few dozen bytes each.
#[derive(Clone)]
pub struct SqliteLock {
    pool: SqlitePool,
    released: Arc<Notify>,
}

impl SqliteLock {
    /// A lock on `pool`.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool, released: Arc::new(Notify::new()) }
    }

    /// The pool this lock runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// One acquisition attempt: the lease, or how long the current holder's lease has left.
    async fn attempt(&self, key: &LockKey, ttl: Duration) -> Result<Result<LockLease, Duration>, KvError> {
        let ttl_ms = lease_millis(ttl)?;
        let owner = SessionId::generate().as_str().to_owned();
        let (name, who) = (key.as_str().to_owned(), owner.clone());
        let outcome = write(&self.pool, "acquire lock", move |tx| {
            let fence: Option<i64> =
                tx.prepare_cached(ACQUIRE)?.query_row(params![name, who, ttl_ms], |r| r.get(0)).optional()?;
            match fence {
                Some(fence) => Ok(Ok(fence)),
                None => {
                    let left: Option<i64> =
                        tx.prepare_cached(HELD_FOR)?.query_row(params![name], |r| r.get(0)).optional()?;
                    Ok(Err(left.unwrap_or(0)))
                }
            }
        })
        .await?;
        Ok(match outcome {
            Ok(fence) => {
                Ok(LockLease { key: key.clone(), owner, token: FencingToken(u64::try_from(fence).unwrap_or(0)), ttl })
            }
            Err(left) => Err(Duration::from_millis(u64::try_from(left).unwrap_or(0))),
        })
    }
}

impl fmt::Debug for SqliteLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLock").field("pool", &self.pool.inner().name()).finish()
    }
}

/// A lease in whole milliseconds, rounded up (so a lease never ends before the `ttl` asked for); zero is refused.
fn lease_millis(ttl: Duration) -> Result<i64, KvError> {
    if ttl.is_zero() {
        return Err(KvError::invalid("ttl", "must be greater than zero"));
    }
    millis(ttl.checked_add(Duration::from_nanos(999_999)).unwrap_or(Duration::MAX), "ttl")
}

fn lease_lost(lease: &LockLease) -> KvError {
    KvError::LeaseLost { key: lease.key.as_str().to_owned() }
}

#[async_trait]
impl Lock for SqliteLock {
    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<LockLease>, KvError> {
        Ok(self.attempt(key, ttl).await?.ok())
    }

    async fn acquire(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError> {
        retry_until_taken(&self.released, wait, Duration::ZERO, || async {
            Ok(self.attempt(key, ttl).await?.map_err(Some))
        })
        .await
    }

    async fn extend(&self, lease: &LockLease, ttl: Duration) -> Result<LockLease, KvError> {
        let ttl_ms = lease_millis(ttl)?;
        let (name, owner) = (lease.key.as_str().to_owned(), lease.owner.clone());
        let extended = write(&self.pool, "extend lock", move |tx| {
            tx.prepare_cached(EXTEND)?.execute(params![name, owner, ttl_ms])
        })
        .await?;
        if extended == 0 { Err(lease_lost(lease)) } else { Ok(LockLease { ttl, ..lease.clone() }) }
    }

    async fn release(&self, lease: LockLease) -> Result<(), KvError> {
        let (name, owner) = (lease.key.as_str().to_owned(), lease.owner.clone());
        let released =
            write(&self.pool, "release lock", move |tx| tx.prepare_cached(RELEASE)?.execute(params![name, owner]))
                .await?;
        if released == 0 {
            return Err(lease_lost(&lease));
        }
        self.released.notify_waiters();
        Ok(())
    }

    async fn is_held(&self, lease: &LockLease) -> Result<bool, KvError> {
        let (name, owner) = (lease.key.as_str().to_owned(), lease.owner.clone());
        let held: Option<i64> = self
            .pool
            .interact(move |c| c.prepare_cached(IS_HELD)?.query_row(params![name, owner], |r| r.get(0)).optional())
            .await
            .map_err(|e| kv_error(e, "check lock"))?;
        Ok(held.is_some())
    }
}
