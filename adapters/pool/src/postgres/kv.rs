//! What the key-value ports on PostgreSQL share ([`PgJobQueue`](super::PgJobQueue) here, the cache, lock, rate
//! limiter, sessions and pub/sub in `cpc-pg-kv`): one statement run on a pooled connection as a cached prepared
//! statement, failures mapped to the ports' [`KvError`], durations in whole milliseconds, columns read without a
//! panic.

use std::time::Duration;

use cpc_ports::KvError;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::PgPool;
use crate::pool::DatabaseError;

/// Runs `sql` on a connection from `pool` as a cached prepared statement and returns its rows; every failure is a
/// [`KvError`] naming `operation` (see [`kv_error`]).
///
/// # Errors
/// The pool's or the server's failure, mapped by [`kv_error`].
pub async fn query(
    pool: &PgPool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    operation: &'static str,
) -> Result<Vec<Row>, KvError> {
    let mut conn = pool.get().await.map_err(|e| kv_error(e, operation))?;
    let classify = |e| kv_error(pool.backend().classify(e), operation);
    let statement = conn.prepare_cached(sql).await.map_err(classify)?;
    conn.query(&statement, params).await.map_err(classify)
}

/// Maps a pool or query failure to the ports' error: a pool or statement timeout is [`KvError::Timeout`], refused
/// credentials [`KvError::Authentication`], a failure worth retrying [`KvError::Unavailable`], anything else
/// [`KvError::Backend`].
pub fn kv_error(e: DatabaseError, operation: &'static str) -> KvError {
    match e {
        DatabaseError::PoolTimeout(after) | DatabaseError::QueryTimeout { after, .. } => {
            KvError::Timeout { operation, after }
        }
        DatabaseError::Authentication { message, .. } => {
            KvError::Authentication { backend: "postgres", reason: message }
        }
        e if e.is_retryable() => KvError::Unavailable { backend: "postgres", reason: e.to_string() },
        e => KvError::backend("postgres", e),
    }
}

/// `d` in whole milliseconds, as the statements take it (`$n::bigint * interval '1 millisecond'`); a duration over
/// 10^15 ms is a validation error naming `field`.
///
/// # Errors
/// [`KvError::Validation`] naming `field`.
pub fn millis(d: Duration, field: &'static str) -> Result<i64, KvError> {
    const MAX: i64 = 1_000_000_000_000_000;
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms <= MAX)
        .ok_or_else(|| KvError::invalid(field, "must be at most 10^15 milliseconds"))
}

/// Column `i` of `row`; a type the table should not hold (a table altered by hand) is a backend error, not a panic.
///
/// # Errors
/// [`KvError::Backend`] when the column is missing or of another type.
pub fn column<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, KvError> {
    row.try_get(i).map_err(|e| KvError::backend("postgres", e))
}
