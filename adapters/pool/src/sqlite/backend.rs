//! [`SqliteBackend`]: rusqlite connections for the pool, with blocking work kept off the async runtime.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::{SqliteConfig, SqliteTarget};
use crate::pool::{Backend, DatabaseError};

/// A pooled SQLite connection. Every call runs on tokio's blocking thread pool, so a slow query or a wait for a
/// lock never stalls the async runtime.
#[derive(Debug, Clone)]
pub struct SqliteConn {
    inner: Arc<Mutex<Connection>>,
    address: Arc<str>,
}

impl SqliteConn {
    /// Runs `f` with the connection on the blocking pool.
    pub async fn interact<F, R>(&self, f: F) -> Result<R, DatabaseError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        let address = self.address.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn).map_err(|e| classify(e, &address))
        })
        .await
        .map_err(|e| DatabaseError::Unavailable(format!("sqlite worker failed: {e}")))?
    }

    /// Runs `f` inside a write transaction started with `BEGIN IMMEDIATE` (so it waits for the write lock up to
    /// `busy_timeout` instead of failing on upgrade), committing on `Ok` and rolling back on `Err`.
    pub async fn write<F, R>(&self, f: F) -> Result<R, DatabaseError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.interact(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

/// Maps rusqlite errors: a lock not obtained in time is `Unavailable` (retryable); a file that cannot be opened
/// is `ConnectionRefused`; the rest is a query error.
pub(crate) fn classify(e: rusqlite::Error, address: &str) -> DatabaseError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => DatabaseError::Unavailable(format!("{address}: {e}")),
        Some(CannotOpen | PermissionDenied | NotADatabase | ReadOnly) => {
            DatabaseError::ConnectionRefused { address: address.to_owned(), message: e.to_string() }
        }
        _ => DatabaseError::Query(Arc::new(e)),
    }
}

/// Opens SQLite connections with the configured pragmas.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    config: SqliteConfig,
}

impl SqliteBackend {
    /// A backend for `config`.
    pub fn new(config: &SqliteConfig) -> Result<Self, DatabaseError> {
        config.validate()?;
        Ok(Self { config: config.clone() })
    }

    /// Opens one connection synchronously (used by the pool's workers and to anchor in-memory databases).
    pub(crate) fn open(config: &SqliteConfig) -> Result<Connection, DatabaseError> {
        let address = config.describe();
        let classify = |e| classify(e, &address);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match &config.target {
            SqliteTarget::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| DatabaseError::ConnectionRefused {
                        address: address.clone(),
                        message: format!("cannot create {}: {e}", dir.display()),
                    })?;
                }
                Connection::open_with_flags(path, flags).map_err(classify)?
            }
            SqliteTarget::SharedMemory(name) => {
                Connection::open_with_flags(format!("file:/{name}?vfs=memdb"), flags).map_err(classify)?
            }
        };
        conn.busy_timeout(config.busy_timeout).map_err(classify)?;
        // SQLite opens lazily; reading the schema makes a file that is not a database fail here, at connect,
        // where the pool reports it, instead of on every later statement.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(classify)?;
        conn.pragma_update(None, "foreign_keys", config.foreign_keys).map_err(classify)?;
        if config.wal && matches!(config.target, SqliteTarget::File(_)) {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(classify)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(DatabaseError::config("wal", format!("{address} refused WAL (journal_mode is {mode})")));
            }
            conn.pragma_update(None, "synchronous", "NORMAL").map_err(classify)?;
        }
        Ok(conn)
    }
}

impl Backend for SqliteBackend {
    type Conn = SqliteConn;
    const NAME: &'static str = "sqlite";

    async fn connect(&self) -> Result<SqliteConn, DatabaseError> {
        let config = self.config.clone();
        let conn = tokio::task::spawn_blocking(move || Self::open(&config))
            .await
            .map_err(|e| DatabaseError::Unavailable(format!("sqlite worker failed: {e}")))??;
        Ok(SqliteConn { inner: Arc::new(Mutex::new(conn)), address: self.config.describe().into() })
    }

    async fn ping(&self, conn: &mut SqliteConn) -> Result<(), DatabaseError> {
        // Reads the schema, so the database file itself is checked, not just the connection object.
        conn.interact(|c| c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))).await
    }

    fn is_broken(&self, _: &mut SqliteConn) -> bool {
        false
    }

    async fn server_version(&self, conn: &mut SqliteConn) -> Result<String, DatabaseError> {
        conn.interact(|c| {
            c.query_row("SELECT sqlite_version() FROM (SELECT count(*) FROM sqlite_master)", [], |r| r.get(0))
        })
        .await
    }

    fn address(&self) -> String {
        self.config.describe()
    }
}
