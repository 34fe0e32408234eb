//! SQLite connection pools (feature `sqlite`): bb8 over rusqlite, blocking work on tokio's blocking pool, WAL,
//! `busy_timeout` and foreign keys on by default, writers serialized so callers never see "database is locked".
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), cpc_pool::pool::DatabaseError> {
//! use cpc_pool::PoolFactory;
//! use cpc_pool::pool::PoolConfig;
//! use cpc_pool::sqlite::SqliteConfig;
//!
//! let pool = PoolFactory::create_sqlite_pool(&SqliteConfig::shared_memory("doc"), &PoolConfig::default()).await?;
//! pool.write(|tx| tx.execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (41);")).await?;
//! let n: i64 = pool.interact(|c| c.query_row("SELECT n + 1 FROM t", [], |r| r.get(0))).await?;
//! assert_eq!(n, 42);
//! # Ok(()) }
//! ```

mod backend;
mod config;
pub mod enqueue_sql;
mod pool;

pub use backend::{SqliteBackend, SqliteConn};
pub use config::{SqliteConfig, SqliteTarget};
pub use pool::SqlitePool;
