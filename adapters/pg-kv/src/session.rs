//! [`PgSessionStore`]: the [`SessionStore`] port on a PostgreSQL table, expiring on the server's clock.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cpc_pool::postgres::PgPool;
use cpc_pool::postgres::kv::{self, column};
use cpc_ports::{Bytes, Codec, KvError, SessionId, SessionStore};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// How many fresh ids a create or a cycle tries before giving up (a collision of 256 random bits does not happen;
/// this bounds the loop all the same).
const ID_ATTEMPTS: usize = 8;
/// One create in this many is followed by a sweep of expired sessions.
pub const SWEEP_EVERY: u64 = 32;
/// The most expired sessions one sweep deletes.
pub const SWEEP_BATCH: u32 = 100;

/// Stores session `$1` with data `$2` for `$3` milliseconds unless a live session has the id (an expired one is
/// replaced). Returns a row if it stored.
const CREATE: &str = "INSERT INTO cpc_sessions AS s (id, data, created_at, expires_at) \
     VALUES ($1, $2, now(), now() + $3::bigint * interval '1 millisecond') \
     ON CONFLICT (id) DO UPDATE \
       SET data = EXCLUDED.data, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at \
       WHERE s.expires_at <= now() \
     RETURNING 1";

const LOAD: &str = "SELECT data FROM cpc_sessions WHERE id = $1 AND expires_at > now()";

/// Replaces the data of live session `$1`, leaving its expiry alone.
const SAVE: &str = "UPDATE cpc_sessions SET data = $2 WHERE id = $1 AND expires_at > now() RETURNING 1";

/// Sets the lifetime of live session `$1` to `$2` milliseconds from now, capped at its creation plus `$3`
/// milliseconds (the absolute expiry; `NULL`: none). A session past that deadline is gone.
const EXTEND: &str = "UPDATE cpc_sessions SET expires_at = \
       LEAST(now() + $2::bigint * interval '1 millisecond', created_at + $3::bigint * interval '1 millisecond') \
     WHERE id = $1 AND expires_at > now() \
       AND ($3::bigint IS NULL OR created_at + $3::bigint * interval '1 millisecond' > now()) \
     RETURNING 1";

/// Deletes session `$1`; the row returned says whether it was live.
const DESTROY: &str = "DELETE FROM cpc_sessions WHERE id = $1 RETURNING expires_at > now()";

/// Moves live session `$1` to id `$2`: one row update, so data, creation time and expiry move with it, and of
/// concurrent cycles of one session exactly one matches the old id.
const CYCLE: &str = "UPDATE cpc_sessions SET id = $2 WHERE id = $1 AND expires_at > now() RETURNING 1";

/// The whole milliseconds live session `$1` has left.
const TTL: &str = "SELECT floor(extract(epoch FROM (expires_at - now())) * 1000)::bigint FROM cpc_sessions \
     WHERE id = $1 AND expires_at > now()";

/// Deletes up to `$1` expired sessions, oldest first, skipping rows another statement holds locked.
const SWEEP: &str = "DELETE FROM cpc_sessions WHERE ctid = ANY(ARRAY( \
       SELECT ctid FROM cpc_sessions WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))";

/// The [`SessionStore`] on PostgreSQL alone: the table `cpc_sessions` of migration `2026-12-06-000004_kv_sessions`
/// (run the embedded migrations first).
///
/// One row per session: its id (the primary key), the data (`bytea`, the bytes as given), when it was created and
/// when it expires, both on the database server's clock (`now()`). Every operation is one statement on one pooled
/// connection, touching one row by its primary key, committed on its own:
///
/// * create / insert: `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE cpc_sessions.expires_at <= now()`: a live
///   session is never overwritten, an expired row with the same id is replaced;
/// * load, ttl: a `SELECT` of a row with `expires_at > now()`: an expired session is never returned, whether or
///   not its row was swept yet;
/// * save: an `UPDATE` of the data of a live row (its expiry unchanged), so it never revives a session;
/// * extend: an `UPDATE` setting `expires_at` to the TTL from now (sliding expiry), capped by the absolute expiry
///   ([`PgSessionStore::with_absolute_ttl`]) when one is set, as the Redis store does;
/// * destroy: a `DELETE`, reporting whether the row was live;
/// * cycle_id: `UPDATE cpc_sessions SET id = <fresh> WHERE id = <old> AND expires_at > now()`, so data, creation
///   time and remaining lifetime move in one step, the old id is gone at once, and of concurrent cycles of one
///   session exactly one succeeds (the others see the row under its new id and report
///   [`KvError::NotFound`]).
///
/// Ids come from [`SessionId::generate`] (256 bits from the OS's CSPRNG, URL-safe base64), as in the Redis and
/// in-process stores. Lifetimes are rounded down to whole milliseconds (at least 1 ms).
///
/// **Expired rows** are swept opportunistically: after every [`SWEEP_EVERY`]th create through this value (or a
/// clone), one more statement deletes at most [`SWEEP_BATCH`] expired rows, oldest first, skipping rows another
/// statement holds. An app that creates few sessions may call [`PgSessionStore::sweep_expired`] on a timer
/// instead. A failed sweep is logged and never fails the create.
///
/// Cost per call: one statement on a pooled connection (a cached prepared statement) touching one row by its
/// primary key; one create in [`SWEEP_EVERY`] adds the sweep's statement.
///
/// Data is what the caller stored, byte for byte; the typed methods of
/// [`SessionStoreExt`](cpc_ports::SessionStoreExt) decode it with the store's codec (JSON unless
/// [`PgSessionStore::with_codec`]), so bytes another program wrote are a [`KvError::Codec`]. A row altered by hand
/// so that a column has another type is a [`KvError::Backend`], never a panic.
#[derive(Clone)]
pub struct PgSessionStore {
    pool: PgPool,
    codec: Codec,
    absolute_ttl: Option<Duration>,
    creates: Arc<AtomicU64>,
}

impl fmt::Debug for PgSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSessionStore")
            .field("table", &"cpc_sessions")
            .field("codec", &self.codec)
            .field("absolute_ttl", &self.absolute_ttl)
            .finish_non_exhaustive()
    }
}

impl PgSessionStore {
    /// A store on `pool`, with the JSON codec and no absolute expiry.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, codec: Codec::json(), absolute_ttl: None, creates: Arc::new(AtomicU64::new(0)) }
    }

    /// The same store, with `codec` for the typed methods.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same store, with an absolute expiry: a session never lives past its creation plus `ttl`, however
    /// often it is extended (creates and extends are capped at that deadline; a `cycle_id` keeps the creation
    /// time). The deadline is measured on the server's clock. A zero `ttl` means none.
    #[must_use]
    pub fn with_absolute_ttl(mut self, ttl: Duration) -> Self {
        self.absolute_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// The absolute expiry, if set.
    pub fn absolute_ttl(&self) -> Option<Duration> {
        self.absolute_ttl
    }

    /// The pool this store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Deletes at most `limit` expired sessions, oldest first, skipping rows another statement holds; returns how
    /// many it deleted. For an app that sweeps on a timer (see the type's docs).
    ///
    /// # Errors
    /// The pool's or the server's failure.
    pub async fn sweep_expired(&self, limit: u32) -> Result<u64, KvError> {
        let mut conn = self.pool.get().await.map_err(|e| kv::kv_error(e, "sweep sessions"))?;
        let classify = |e| kv::kv_error(self.pool.backend().classify(e), "sweep sessions");
        let statement = conn.prepare_cached(SWEEP).await.map_err(classify)?;
        conn.execute(&statement, &[&i64::from(limit)]).await.map_err(classify)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        operation: &'static str,
    ) -> Result<Vec<Row>, KvError> {
        kv::query(&self.pool, sql, params, operation).await
    }

    /// Stores `data` under `id` for `ttl` (capped by the absolute expiry) unless a live session has the id.
    async fn create_at(&self, id: &SessionId, data: &Bytes, ttl: Duration) -> Result<bool, KvError> {
        let ttl = self.absolute_ttl.map_or(ttl, |absolute| ttl.min(absolute));
        let ms = lifetime_millis(ttl)?;
        let rows = self.query(CREATE, &[&id.as_str(), &data.as_ref(), &ms], "create session").await?;
        Ok(!rows.is_empty())
    }

    /// Sweeps after every [`SWEEP_EVERY`]th create.
    async fn after_create(&self) {
        if self.creates.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
            && let Err(e) = self.sweep_expired(SWEEP_BATCH).await
        {
            tracing::debug!(error = %e, "sweeping expired sessions failed; a later create tries again");
        }
    }
}

/// A lifetime in whole milliseconds, rounded down but at least 1; a zero one is a validation error.
fn lifetime_millis(ttl: Duration) -> Result<i64, KvError> {
    if ttl.is_zero() {
        return Err(KvError::invalid("ttl", "must be greater than zero"));
    }
    kv::millis(ttl, "ttl").map(|ms| ms.max(1))
}

fn not_found() -> KvError {
    KvError::NotFound { what: "session" }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create_bytes(&self, data: Bytes, ttl: Duration) -> Result<SessionId, KvError> {
        cpc_ports::check_payload(&data)?;
        lifetime_millis(ttl)?;
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate();
            if self.create_at(&id, &data, ttl).await? {
                self.after_create().await;
                return Ok(id);
            }
        }
        Err(KvError::backend("postgres", "no free session id after several random draws"))
    }

    async fn insert_bytes(&self, id: &SessionId, data: Bytes, ttl: Duration) -> Result<bool, KvError> {
        cpc_ports::check_payload(&data)?;
        let stored = self.create_at(id, &data, ttl).await?;
        if stored {
            self.after_create().await;
        }
        Ok(stored)
    }

    async fn load_bytes(&self, id: &SessionId) -> Result<Option<Bytes>, KvError> {
        let rows = self.query(LOAD, &[&id.as_str()], "load session").await?;
        match rows.first() {
            Some(row) => Ok(Some(Bytes::from(column::<Vec<u8>>(row, 0)?))),
            None => Ok(None),
        }
    }

    async fn save_bytes(&self, id: &SessionId, data: Bytes) -> Result<(), KvError> {
        cpc_ports::check_payload(&data)?;
        let rows = self.query(SAVE, &[&id.as_str(), &data.as_ref()], "save session").await?;
        if rows.is_empty() { Err(not_found()) } else { Ok(()) }
    }

    async fn extend(&self, id: &SessionId, ttl: Duration) -> Result<(), KvError> {
        let ms = lifetime_millis(ttl)?;
        let absolute = self.absolute_ttl.map(lifetime_millis).transpose()?;
        let rows = self.query(EXTEND, &[&id.as_str(), &ms, &absolute], "extend session").await?;
        if rows.is_empty() { Err(not_found()) } else { Ok(()) }
    }

    async fn destroy(&self, id: &SessionId) -> Result<bool, KvError> {
        let rows = self.query(DESTROY, &[&id.as_str()], "destroy session").await?;
        match rows.first() {
            Some(row) => column::<bool>(row, 0),
            None => Ok(false),
        }
    }

    async fn cycle_id(&self, id: &SessionId) -> Result<SessionId, KvError> {
        let new = SessionId::generate();
        let rows = self.query(CYCLE, &[&id.as_str(), &new.as_str()], "cycle session id").await?;
        if rows.is_empty() { Err(not_found()) } else { Ok(new) }
    }

    async fn ttl(&self, id: &SessionId) -> Result<Option<Duration>, KvError> {
        let rows = self.query(TTL, &[&id.as_str()], "session ttl").await?;
        match rows.first() {
            Some(row) => {
                let ms = column::<i64>(row, 0)?;
                Ok(Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
            }
            None => Ok(None),
        }
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_round_down_to_milliseconds_and_refuse_zero() {
        assert_eq!(lifetime_millis(Duration::from_micros(1500)).unwrap_or_default(), 1);
        assert_eq!(lifetime_millis(Duration::from_micros(10)).unwrap_or_default(), 1);
        assert!(matches!(lifetime_millis(Duration::ZERO), Err(KvError::Validation(_))));
        assert!(matches!(lifetime_millis(Duration::MAX), Err(KvError::Validation(_))));
    }
}
