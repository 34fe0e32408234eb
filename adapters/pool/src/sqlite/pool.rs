//! [`SqlitePool`]: the generic pool over [`SqliteBackend`], plus a writer gate and an anchor for in-memory
//! databases.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{SqliteBackend, SqliteConfig, SqliteConn, SqliteTarget};
use crate::pool::{DatabaseError, Pool, PoolConfig, PoolMetricsSnapshot, PoolState, PooledConn};

/// A SQLite connection pool. Reads run concurrently (WAL); writes through [`SqlitePool::write`] take the pool's
/// writer gate first, so this pool's writers queue in order instead of racing for SQLite's lock (other processes
/// are still covered by `busy_timeout`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlitePool {
    pool: Pool<SqliteBackend>,
    writer: Arc<tokio::sync::Mutex<()>>,
    // Keeps a shared in-memory database alive while the pool lives.
    _anchor: Option<Arc<Mutex<Connection>>>,
}

impl SqlitePool {
    /// Opens the pool (and its first connection, so a bad path fails here).
    pub async fn new(config: &SqliteConfig, pool_config: &PoolConfig) -> Result<Self, DatabaseError> {
        let backend = SqliteBackend::new(config)?;
        let anchor = match config.target {
            SqliteTarget::SharedMemory(_) => {
                let c = config.clone();
                let conn = tokio::task::spawn_blocking(move || SqliteBackend::open(&c))
                    .await
                    .map_err(|e| DatabaseError::Unavailable(format!("sqlite worker failed: {e}")))??;
                Some(Arc::new(Mutex::new(conn)))
            }
            SqliteTarget::File(_) => None,
        };
        let pool = Pool::new(backend, pool_config, "sqlite").await?;
        Ok(Self { pool, writer: Arc::new(tokio::sync::Mutex::new(())), _anchor: anchor })
    }

    /// Checks out a connection.
    #[track_caller]
    pub fn get(
        &self,
    ) -> impl std::future::Future<Output = Result<PooledConn<'static, SqliteBackend>, DatabaseError>> + Send + 'static
    {
        self.pool.get_owned()
    }

    /// Runs `f` on a pooled connection, off the async runtime.
    pub async fn interact<F, R>(&self, f: F) -> Result<R, DatabaseError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let conn = self.pool.get().await?;
        let c: &SqliteConn = &conn;
        c.interact(f).await
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`) behind the pool's writer gate; commits on `Ok`,
    /// rolls back on `Err`.
    pub async fn write<F, R>(&self, f: F) -> Result<R, DatabaseError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let _gate = self.writer.lock().await;
        let conn = self.pool.get().await?;
        let c: &SqliteConn = &conn;
        c.write(f).await
    }

    /// Connections and checkouts now.
    pub fn state(&self) -> PoolState {
        self.pool.state()
    }

    /// Metrics so far.
    pub fn metrics(&self) -> PoolMetricsSnapshot {
        self.pool.metrics()
    }

    /// The generic pool underneath (for [`HealthChecker`](crate::pool::HealthChecker) and the Diesel layer).
    pub fn inner(&self) -> &Pool<SqliteBackend> {
        &self.pool
    }
}
