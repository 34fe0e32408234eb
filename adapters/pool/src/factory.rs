//! [`PoolFactory`]: the entry point for building pools, the one place that chooses a backend (PostgreSQL or
//! SQLite) for the generic [`Pool`](crate::pool::Pool).

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use crate::pool::{DatabaseError, PoolConfig};

/// Builds pools: `PoolFactory::create_postgres_pool(&db_config, &pool_config).await?`.
#[derive(Debug, Clone, Copy)]
pub struct PoolFactory;

impl PoolFactory {
    /// A PostgreSQL pool named `"postgres"`. Opens one connection before returning, so a wrong password, an
    /// unknown database, a refused port or a TLS failure is reported here, precisely and at once.
    #[cfg(feature = "postgres")]
    pub async fn create_postgres_pool(
        db: &crate::postgres::PgConfig,
        pool: &PoolConfig,
    ) -> Result<crate::postgres::PgPool, DatabaseError> {
        crate::pool::Pool::new(crate::postgres::PgBackend::new(db)?, pool, "postgres").await
    }

    /// A SQLite pool over `config` (a file, or a named shared in-memory database), named `"sqlite"`.
    #[cfg(feature = "sqlite")]
    pub async fn create_sqlite_pool(
        config: &crate::sqlite::SqliteConfig,
        pool: &PoolConfig,
    ) -> Result<crate::sqlite::SqlitePool, DatabaseError> {
        crate::sqlite::SqlitePool::new(config, pool).await
    }
}
