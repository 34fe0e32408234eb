//! What the ports on SQLite share: durations in whole milliseconds, statements run on the pool, and
//! failures mapped to the ports' [`KvError`].

use std::time::Duration;

use cpc_pool::pool::DatabaseError;
use cpc_pool::sqlite::SqlitePool;
use cpc_ports::KvError;
use rusqlite::Transaction;

/// `d` in whole milliseconds, as the statements take it; a duration over 10^15 ms is a validation error naming
/// `field`.
pub(crate) fn millis(d: Duration, field: &'static str) -> Result<i64, KvError> {
    const MAX: i64 = 1_000_000_000_000_000;
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms <= MAX)
        .ok_or_else(|| KvError::invalid(field, "must be at most 10^15 milliseconds"))
}

/// Maps a pool or statement failure to the ports' error: a pool timeout is [`KvError::Timeout`], a failure worth
/// retrying (the database busy past `busy_timeout`, a file that cannot be opened) [`KvError::Unavailable`], anything
/// else (a bad row, a missing table) [`KvError::Backend`].
pub(crate) fn kv_error(e: DatabaseError, operation: &'static str) -> KvError {
    match e {
        DatabaseError::PoolTimeout(after) | DatabaseError::QueryTimeout { after, .. } => {
            KvError::Timeout { operation, after }
        }
        e if e.is_retryable() => KvError::Unavailable { backend: "sqlite", reason: e.to_string() },
        e => KvError::backend("sqlite", e),
    }
}

/// Runs `f` in a write transaction behind the pool's writer gate; a failure is mapped by [`kv_error`].
pub(crate) async fn write<F, R>(pool: &SqlitePool, operation: &'static str, f: F) -> Result<R, KvError>
where
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<R> + Send + 'static,
    R: Send + 'static,
{
    pool.write(f).await.map_err(|e| kv_error(e, operation))
}

/// Runs `f` on a pooled connection, without the writer gate (reads); a failure is mapped by [`kv_error`].
pub(crate) async fn read<F, R>(pool: &SqlitePool, operation: &'static str, f: F) -> Result<R, KvError>
where
    F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
    R: Send + 'static,
{
    pool.interact(f).await.map_err(|e| kv_error(e, operation))
}

/// A stored count or attempt number as the ports type it; a negative or oversized value (a row edited by hand)
/// reads as 0 or the maximum rather than failing.
pub(crate) fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_is_the_one_of_the_shared_enqueue_statements() {
        assert_eq!(now_ms!(), cpc_pool::sqlite::enqueue_sql::NOW_MS);
    }
}
