//! [`PgLock`]: the [`Lock`] port on a PostgreSQL lease table, with fencing tokens that survive restarts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpc_pool::postgres::PgPool;
use cpc_pool::postgres::kv::{self, column};
use cpc_ports::lock::retry::{release_in_background, retry_until_taken};
use cpc_ports::{FencingToken, KvError, Lock, LockKey, LockLease, SessionId};
use tokio::sync::Notify;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Takes the lease of `$1` for owner `$2` and `$3` milliseconds if it is free (never taken, released, or expired),
/// in one statement. The token issued is one more than the key's last one, and never less than the server's clock
/// in microseconds since the Unix epoch (as the Redis lock's are). Returns `(token, NULL)` when taken, `(NULL, ms)`
/// with the holder's remaining lease when busy, and no row when a concurrent acquisition committed after this
/// statement's snapshot (busy, for how long unknown).
const ACQUIRE: &str = "WITH taken AS ( \
       INSERT INTO cpc_locks AS l (key, owner, fence, expires_at) \
       VALUES ($1, $2, GREATEST((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 1), \
               now() + $3::bigint * interval '1 millisecond') \
       ON CONFLICT (key) DO UPDATE \
         SET owner = EXCLUDED.owner, fence = GREATEST(l.fence + 1, EXCLUDED.fence), expires_at = EXCLUDED.expires_at \
         WHERE l.owner IS NULL OR l.expires_at <= now() \
       RETURNING l.fence) \
     SELECT fence, NULL::bigint FROM taken \
     UNION ALL \
     SELECT NULL::bigint, ceil(extract(epoch FROM (expires_at - now())) * 1000)::bigint FROM cpc_locks \
       WHERE key = $1 AND owner IS NOT NULL AND expires_at > now() AND NOT EXISTS (SELECT 1 FROM taken)";

/// Resets the live lease of `$1` held by `$2` to `$3` milliseconds from now.
const EXTEND: &str = "UPDATE cpc_locks SET expires_at = now() + $3::bigint * interval '1 millisecond' \
     WHERE key = $1 AND owner = $2 AND expires_at > now() RETURNING fence";

/// Frees the live lease of `$1` held by `$2`, keeping the row (and its last token).
const RELEASE: &str = "UPDATE cpc_locks SET owner = NULL, expires_at = now() \
     WHERE key = $1 AND owner = $2 AND expires_at > now() RETURNING fence";

/// Whether `$2` holds a live lease of `$1`.
const IS_HELD: &str = "SELECT 1 FROM cpc_locks WHERE key = $1 AND owner = $2 AND expires_at > now()";

/// The distributed [`Lock`] on PostgreSQL alone: the table `cpc_locks` of migration
/// `2026-12-06-000003_kv_locks` (run the embedded migrations first).
///
/// One row per lock key: the current owner (a random 256-bit id drawn for each acquisition, `NULL` once released),
/// when its lease ends (`expires_at`, on the database server's clock `now()`), and the last fencing token issued.
/// Every operation is one statement, so one round trip on one pooled connection, committed on its own:
///
/// * try_acquire: `INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE cpc_locks.owner IS NULL OR
///   cpc_locks.expires_at <= now() RETURNING fence` takes a lease that is free, released or expired, and issues
///   the token in the same statement. Two acquirers racing on one key serialise on the row: exactly one of them
///   takes it, whichever connections or pools they use.
/// * extend, release: an `UPDATE` matching the key, the owner and a live lease; no row matched is
///   [`KvError::LeaseLost`], so a holder whose lease expired can never extend or free the next holder's lock.
///   A release keeps the row (owner `NULL`), it never deletes it.
/// * is_held: a `SELECT` on the same three conditions.
///
/// **Fencing tokens.** The token of an acquisition is one more than the key's last one, and never less than the
/// server's clock in microseconds since the Unix epoch. The counter lives on the row, which neither a release nor
/// an expiry deletes, so tokens grow strictly per key across releases, expiries, new pools and server restarts
/// (the row is as durable as any committed row). Starting from the clock makes them comparable with the Redis
/// lock's tokens: an app moving a lock from Redis to PostgreSQL keeps its fenced resources accepting writes, and a
/// row deleted by hand starts again above every token issued before (unless the server's clock stepped back).
///
/// **Rows left behind.** One row of about a hundred bytes per lock key ever taken, kept for its counter: bounded
/// by the app's set of lock names. An app that makes lock names without bound may delete rows idle for long, e.g.
/// `DELETE FROM cpc_locks WHERE expires_at < now() - interval '1 day'`, at the cost above (the next token comes
/// from the clock).
///
/// **Waiting.** [`Lock::acquire`] tries again with exponential backoff and jitter (from 5 ms, doubling up to
/// 100 ms, spread by [`half_to_full`](cpc_ports::jitter::half_to_full), never sleeping past the holder's remaining lease or the caller's deadline),
/// and wakes at once when a lock released through this value (or a clone) frees up. It gives up with
/// `KvError::Timeout { operation: "acquire lock", after: wait }`; any other error ends the wait at once.
///
/// **No advisory locks.** This lock never uses PostgreSQL's session-level advisory locks
/// (`pg_advisory_lock`): those belong to a server connection, and a pooled connection goes back to the pool and to
/// other callers between two statements, so the lock would be held by whoever checks the connection out next,
/// and would never expire with a dead holder. Leases are rows, owned by a random id, and expire on their own.
///
/// If an acquire's outcome is unknown (a timeout or a dropped connection while the statement ran), the lock may
/// have been taken for an owner nobody knows: a best-effort release for that owner is spawned, and failing that,
/// the lease runs out by itself. The same holds for an acquire future dropped while its statement runs.
///
/// Cost per call: one statement on a pooled connection (a cached prepared statement), touching one row by its
/// primary key; a busy `acquire` repeats it every 5 to 100 ms until its wait is over.
///
/// Cheap to clone; clones share the pool and the local wake-ups.
#[derive(Clone)]
pub struct PgLock {
    pool: PgPool,
    released: Arc<Notify>,
}

impl fmt::Debug for PgLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLock").field("table", &"cpc_locks").finish_non_exhaustive()
    }
}

/// What one attempt to take a lock found.
enum Attempt {
    /// Taken, with this lease.
    Taken(LockLease),
    /// Held by someone else for about this long (`None`: unknown).
    Busy(Option<Duration>),
}

impl PgLock {
    /// A lock service on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, released: Arc::new(Notify::new()) }
    }

    /// The pool this lock runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        operation: &'static str,
    ) -> Result<Vec<Row>, KvError> {
        kv::query(&self.pool, sql, params, operation).await
    }

    async fn attempt(&self, key: &LockKey, ttl: Duration) -> Result<Attempt, KvError> {
        let ttl_ms = lease_millis(ttl)?;
        let name = key_text(key)?;
        let owner = owner_token();
        let rows = match self.query(ACQUIRE, &[&name, &owner, &ttl_ms], "acquire lock").await {
            Ok(rows) => rows,
            Err(e) => {
                if e.is_retryable() {
                    // The statement may have committed: free the lock for the owner nobody will ever know.
                    release_in_background(self, LockLease { key: key.clone(), owner, token: FencingToken(0), ttl });
                }
                return Err(e);
            }
        };
        let Some(row) = rows.first() else {
            return Ok(Attempt::Busy(None));
        };
        if let Some(fence) = column::<Option<i64>>(row, 0)? {
            let token = u64::try_from(fence)
                .map_err(|_| KvError::backend("postgres", format!("fencing counter of {key:?} is negative")))?;
            return Ok(Attempt::Taken(LockLease { key: key.clone(), owner, token: FencingToken(token), ttl }));
        }
        let left = column::<Option<i64>>(row, 1)?.and_then(|ms| u64::try_from(ms).ok());
        Ok(Attempt::Busy(left.map(Duration::from_millis)))
    }

    /// Runs attempts until one takes the lock or `wait` runs out (see the type's docs).
    async fn acquire_within(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError> {
        retry_until_taken(&self.released, wait, Duration::ZERO, || async {
            Ok(match self.attempt(key, ttl).await? {
                Attempt::Taken(lease) => Ok(lease),
                Attempt::Busy(held_for) => Err(held_for),
            })
        })
        .await
    }
}

/// The lease in whole milliseconds, rounded up; a zero or absurdly long lease is a validation error.
fn lease_millis(ttl: Duration) -> Result<i64, KvError> {
    if ttl.is_zero() {
        return Err(KvError::invalid("ttl", "must be greater than zero"));
    }
    let up = ttl.checked_add(Duration::from_nanos(999_999)).unwrap_or(Duration::MAX);
    kv::millis(up, "ttl")
}

/// The key as PostgreSQL text, which cannot hold a NUL character.
fn key_text(key: &LockKey) -> Result<&str, KvError> {
    let text = key.as_str();
    if text.contains('\0') {
        return Err(KvError::invalid("lock_key", "must not contain a NUL character on PostgreSQL"));
    }
    Ok(text)
}

/// A random owner id: 256 bits from the operating system, as the Redis lock draws them.
fn owner_token() -> String {
    SessionId::generate().as_str().to_owned()
}

fn lease_lost(lease: &LockLease) -> KvError {
    KvError::LeaseLost { key: lease.key.as_str().to_owned() }
}

#[async_trait]
impl Lock for PgLock {
    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<LockLease>, KvError> {
        Ok(match self.attempt(key, ttl).await? {
            Attempt::Taken(lease) => Some(lease),
            Attempt::Busy(_) => None,
        })
    }

    async fn acquire(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError> {
        self.acquire_within(key, ttl, wait).await
    }

    async fn extend(&self, lease: &LockLease, ttl: Duration) -> Result<LockLease, KvError> {
        let ttl_ms = lease_millis(ttl)?;
        let name = key_text(&lease.key)?;
        let rows = self.query(EXTEND, &[&name, &lease.owner, &ttl_ms], "extend lock").await?;
        if rows.is_empty() { Err(lease_lost(lease)) } else { Ok(LockLease { ttl, ..lease.clone() }) }
    }

    async fn release(&self, lease: LockLease) -> Result<(), KvError> {
        let name = key_text(&lease.key)?;
        let rows = self.query(RELEASE, &[&name, &lease.owner], "release lock").await?;
        if rows.is_empty() {
            return Err(lease_lost(&lease));
        }
        self.released.notify_waiters();
        Ok(())
    }

    async fn is_held(&self, lease: &LockLease) -> Result<bool, KvError> {
        let name = key_text(&lease.key)?;
        let rows = self.query(IS_HELD, &[&name, &lease.owner], "check lock").await?;
        Ok(!rows.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_up_to_milliseconds_and_refuse_zero() {
        assert_eq!(lease_millis(Duration::from_micros(1500)).unwrap_or_default(), 2);
        assert_eq!(lease_millis(Duration::from_nanos(1)).unwrap_or_default(), 1);
        assert_eq!(lease_millis(Duration::from_millis(150)).unwrap_or_default(), 150);
        assert!(matches!(lease_millis(Duration::ZERO), Err(KvError::Validation(_))));
        assert!(matches!(lease_millis(Duration::MAX), Err(KvError::Validation(_))));
    }

    #[test]
    fn a_nul_in_a_key_is_a_validation_error() {
        let key = LockKey::new("a\0b").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(key_text(&key), Err(KvError::Validation(_))));
    }
}
