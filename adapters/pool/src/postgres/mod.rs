//! PostgreSQL connection pools (feature `postgres`): [`PgConfig`] from the environment, bb8 + bb8-postgres
//! over tokio-postgres with rustls TLS. Health: [`HealthChecker`](crate::pool::HealthChecker). [`PgJobQueue`]: the
//! `JobQueue` port on a table taken with `FOR UPDATE SKIP LOCKED`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cpc_pool::pool::DatabaseError> {
//! use cpc_pool::PoolFactory;
//! use cpc_pool::pool::PoolConfig;
//! use cpc_pool::postgres::PgConfig;
//!
//! let db_config = PgConfig::from_env()?;
//! let pool_config = PoolConfig::default();
//! let pool = PoolFactory::create_postgres_pool(&db_config, &pool_config).await?;
//! let conn = pool.get().await?;
//! let row = conn.query_one("SELECT 1 + 1", &[]).await.map_err(|e| cpc_pool::pool::DatabaseError::Query(std::sync::Arc::new(e)))?;
//! assert_eq!(row.get::<_, i32>(0), 2);
//! # Ok(()) }
//! ```

mod backend;
mod config;
mod error;
mod job_queue;
pub mod kv;
mod listen;
mod timeouts;
mod tls;

pub use backend::{PgBackend, PgConnection};
pub use config::{PgConfig, PgConfigBuilder, SslMode};

/// The PostgreSQL configuration's former name (it configures PostgreSQL only; SQLite has
/// [`SqliteConfig`](crate::sqlite::SqliteConfig)).
#[deprecated(since = "0.1.0", note = "renamed PgConfig: it configures PostgreSQL only")]
pub type DatabaseConfig = PgConfig;

/// The PostgreSQL configuration builder's former name.
#[deprecated(since = "0.1.0", note = "renamed PgConfigBuilder")]
pub type DatabaseConfigBuilder = PgConfigBuilder;
pub use job_queue::PgJobQueue;
pub use listen::PgListener;

/// The statements with which [`PgJobQueue`] stores a job, for a caller that enqueues inside a transaction of its
/// own (the Diesel unit of work's `tx.jobs()`, the transactional outbox): the same table, columns and
/// idempotency-key claim, so the job is the queue's like any other once the transaction commits. Parameters:
/// `$1` job id (text), `$2` queue (text), `$3` payload (bytea), `$4` delay in ms (bigint), `$5` max attempts
/// (integer), and for [`ENQUEUE_KEYED`](enqueue_sql::ENQUEUE_KEYED) `$6` the key (text) and `$7` the
/// idempotency window in ms (bigint). Times are the server's `now()`.
pub mod enqueue_sql {
    pub use super::job_queue::{ENQUEUE_KEYED, INSERT, KEY_HOLDER};
}
pub use timeouts::QueryTimeouts;

/// A PostgreSQL connection pool; `pool.get().await?` derefs to a [`PgConnection`], which derefs to a
/// `tokio_postgres::Client`.
pub type PgPool = crate::pool::Pool<PgBackend>;
