//! [`SqliteSessionStore`]: the [`SessionStore`] port over a SQLite table, lifetimes on SQLite's clock.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use cpc_pool::sqlite::SqlitePool;
use cpc_ports::{Bytes, Codec, KvError, SessionId, SessionStore};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::kv::{millis, read, write};

/// How many expired sessions a create or insert deletes at most, oldest first.
const SWEEP_BATCH: i64 = 100;

/// Stores session `?1` with data `?2` for `?3` ms, unless a live session holds the id (an expired one is
/// replaced). Changes one row when it stored, none when the id is taken.
const INSERT: &str = concat!(
    "INSERT INTO cpc_sessions (id, data, created_at, expires_at) VALUES (?1, ?2, ",
    now_ms!(),
    ", ",
    now_ms!(),
    " + ?3) \
     ON CONFLICT (id) DO UPDATE SET data = excluded.data, created_at = excluded.created_at, \
       expires_at = excluded.expires_at \
     WHERE cpc_sessions.expires_at <= ",
    now_ms!()
);

/// Deletes up to `?1` expired sessions, the longest expired first.
const SWEEP: &str = concat!(
    "DELETE FROM cpc_sessions WHERE rowid IN (SELECT rowid FROM cpc_sessions WHERE expires_at <= ",
    now_ms!(),
    " ORDER BY expires_at LIMIT ?1)"
);

const LOAD: &str = concat!("SELECT data FROM cpc_sessions WHERE id = ?1 AND expires_at > ", now_ms!());

const SAVE: &str = concat!("UPDATE cpc_sessions SET data = ?2 WHERE id = ?1 AND expires_at > ", now_ms!());

const EXTEND: &str =
    concat!("UPDATE cpc_sessions SET expires_at = ", now_ms!(), " + ?2 WHERE id = ?1 AND expires_at > ", now_ms!());

/// Deletes session `?1`; returns whether it was live.
const DESTROY: &str = concat!("DELETE FROM cpc_sessions WHERE id = ?1 RETURNING expires_at > ", now_ms!());

/// Frees id `?1` of an expired session, so a cycled session can take it.
const DROP_EXPIRED_ID: &str = concat!("DELETE FROM cpc_sessions WHERE id = ?1 AND expires_at <= ", now_ms!());

/// Moves live session `?1` to id `?2`, data, creation and expiry unchanged.
const CYCLE: &str = concat!("UPDATE cpc_sessions SET id = ?2 WHERE id = ?1 AND expires_at > ", now_ms!());

/// The remaining lifetime of live session `?1`, in ms.
const TTL: &str = concat!(
    "WITH t AS (SELECT ",
    now_ms!(),
    " AS now) SELECT expires_at - t.now FROM cpc_sessions, t WHERE id = ?1 AND expires_at > t.now"
);

/// The SQLite [`SessionStore`]: the table `cpc_sessions` of migration `2026-12-06-000002_create_sessions` (run the
/// library's SQLite migrations first). Sessions survive a restart of the app: they are rows in the database file.
///
/// One row per session under its id, with its data and `expires_at` in milliseconds on SQLite's clock (see the
/// [crate docs](crate)), so lifetimes behave like the Redis store's: a session whose lifetime has passed is never
/// loaded, saved, extended or cycled (each statement checks `expires_at` against the clock it reads), a save keeps
/// the remaining lifetime, and [`cycle_id`](SessionStore::cycle_id) moves the row to a fresh
/// [`SessionId::generate`] id in one `UPDATE`, so the old id stops loading in the same instant the new one starts.
/// Lifetimes are whole milliseconds, at least one.
///
/// **Cost.** `load` and `ttl` are one indexed read, concurrent with everything (WAL). Every other call is one short
/// write transaction behind the pool's writer gate: `create` and `insert` also delete up to 100 expired sessions,
/// the longest expired first, so the table does not grow under churn without a background task
/// ([`purge_expired`](SqliteSessionStore::purge_expired) deletes them all at once).
#[derive(Clone)]
pub struct SqliteSessionStore {
    pool: SqlitePool,
    codec: Codec,
}

impl SqliteSessionStore {
    /// A session store on `pool`, with the default codec (JSON).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool, codec: Codec::default() }
    }

    /// The same store, with `codec` for the typed methods of [`cpc_ports::SessionStoreExt`].
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The pool this store runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Deletes every expired session now, rather than a batch at a time on creates. Returns how many it deleted.
    ///
    /// # Errors
    /// The database's failure, as a [`KvError`].
    pub async fn purge_expired(&self) -> Result<usize, KvError> {
        write(&self.pool, "purge expired sessions", |tx| tx.prepare_cached(SWEEP)?.execute(params![i64::MAX])).await
    }
}

impl fmt::Debug for SqliteSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSessionStore")
            .field("pool", &self.pool.inner().name())
            .field("codec", &self.codec)
            .finish()
    }
}

/// A lifetime in whole milliseconds (at least one); a zero one is refused.
fn lifetime(ttl: Duration) -> Result<i64, KvError> {
    if ttl.is_zero() {
        return Err(KvError::invalid("ttl", "must be greater than zero"));
    }
    Ok(millis(ttl, "ttl")?.max(1))
}

fn not_found() -> KvError {
    KvError::NotFound { what: "session" }
}

/// Stores a session under `id` in `tx` unless a live one holds it, sweeping a batch of expired sessions first.
fn insert_in(tx: &Transaction<'_>, id: &str, data: &[u8], ttl: i64) -> rusqlite::Result<bool> {
    tx.prepare_cached(SWEEP)?.execute(params![SWEEP_BATCH])?;
    Ok(tx.prepare_cached(INSERT)?.execute(params![id, data, ttl])? == 1)
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn create_bytes(&self, data: Bytes, ttl: Duration) -> Result<SessionId, KvError> {
        cpc_ports::check_payload(&data)?;
        let ttl = lifetime(ttl)?;
        write(&self.pool, "create session", move |tx| {
            // A live session under a fresh 256-bit id will not happen; if it did, draw again.
            loop {
                let id = SessionId::generate();
                if insert_in(tx, id.as_str(), &data, ttl)? {
                    return Ok(id);
                }
            }
        })
        .await
    }

    async fn insert_bytes(&self, id: &SessionId, data: Bytes, ttl: Duration) -> Result<bool, KvError> {
        cpc_ports::check_payload(&data)?;
        let ttl = lifetime(ttl)?;
        let id = id.as_str().to_owned();
        write(&self.pool, "insert session", move |tx| insert_in(tx, &id, &data, ttl)).await
    }

    async fn load_bytes(&self, id: &SessionId) -> Result<Option<Bytes>, KvError> {
        let id = id.as_str().to_owned();
        let data: Option<Vec<u8>> = read(&self.pool, "load session", move |c| {
            c.prepare_cached(LOAD)?.query_row(params![id], |r| r.get(0)).optional()
        })
        .await?;
        Ok(data.map(Bytes::from))
    }

    async fn save_bytes(&self, id: &SessionId, data: Bytes) -> Result<(), KvError> {
        cpc_ports::check_payload(&data)?;
        let id = id.as_str().to_owned();
        let saved =
            write(&self.pool, "save session", move |tx| tx.prepare_cached(SAVE)?.execute(params![id, data.as_ref()]))
                .await?;
        if saved == 0 { Err(not_found()) } else { Ok(()) }
    }

    async fn extend(&self, id: &SessionId, ttl: Duration) -> Result<(), KvError> {
        let ttl = lifetime(ttl)?;
        let id = id.as_str().to_owned();
        let extended =
            write(&self.pool, "extend session", move |tx| tx.prepare_cached(EXTEND)?.execute(params![id, ttl])).await?;
        if extended == 0 { Err(not_found()) } else { Ok(()) }
    }

    async fn destroy(&self, id: &SessionId) -> Result<bool, KvError> {
        let id = id.as_str().to_owned();
        let live: Option<bool> = write(&self.pool, "destroy session", move |tx| {
            tx.prepare_cached(DESTROY)?.query_row(params![id], |r| r.get(0)).optional()
        })
        .await?;
        Ok(live.unwrap_or(false))
    }

    async fn cycle_id(&self, id: &SessionId) -> Result<SessionId, KvError> {
        let old = id.as_str().to_owned();
        let moved = write(&self.pool, "cycle session id", move |tx| {
            let new = SessionId::generate();
            tx.prepare_cached(DROP_EXPIRED_ID)?.execute(params![new.as_str()])?;
            let moved = tx.prepare_cached(CYCLE)?.execute(params![old, new.as_str()])?;
            Ok((moved == 1).then_some(new))
        })
        .await?;
        moved.ok_or_else(not_found)
    }

    async fn ttl(&self, id: &SessionId) -> Result<Option<Duration>, KvError> {
        let id = id.as_str().to_owned();
        let left: Option<i64> = read(&self.pool, "session ttl", move |c| {
            c.prepare_cached(TTL)?.query_row(params![id], |r| r.get(0)).optional()
        })
        .await?;
        Ok(left.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }
}
