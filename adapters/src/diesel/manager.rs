//! [`DbManager`]: the seeds' entry point to the Diesel data layer: one pool, the four repositories and the unit of
//! work, on PostgreSQL or SQLite, handed out as port trait objects.

use std::sync::Arc;

use cpc_ports::{
    CustomerRepository, EntityRepository, RepoError, TransactionRepository, Tx, UnitOfWork, UnitOfWorkExt,
    UserRepository,
};
use futures::future::BoxFuture;

use crate::diesel::connection::{DieselPgBackend, DieselSqliteBackend};
use crate::diesel::repos::DieselRepository;
use crate::diesel::uow::DieselUnitOfWork;
use crate::pool::{DatabaseError, Pool, PoolConfig};
use crate::postgres::DatabaseConfig;
use crate::sqlite::SqliteConfig;

/// The pool behind a [`DbManager`].
#[derive(Debug, Clone)]
pub enum DbPool {
    /// PostgreSQL, `diesel_async::AsyncPgConnection`s.
    Postgres(Pool<DieselPgBackend>),
    /// SQLite, `SyncConnectionWrapper<SqliteConnection>`s.
    Sqlite(Pool<DieselSqliteBackend>),
}

/// The data layer of an app: repositories and the unit of work over one Diesel pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use cpc_adapters::diesel::DbManager;
/// use cpc_adapters::pool::PoolConfig;
/// use cpc_adapters::sqlite::SqliteConfig;
/// use cpc_ports::RepoError;
///
/// let db = DbManager::sqlite(&SqliteConfig::file("app.db"), &PoolConfig::default()).await?;
/// let ada = cpc_domain::NewUser::new("ada", "ada@example.org")?;
/// let user = db.transaction(|tx| Box::pin(async move { tx.users().create(ada).await })).await?;
/// assert_eq!(db.users().find_by_id(&user.id).await?, Some(user));
/// # Ok::<_, Box<dyn std::error::Error>>(()) }
/// ```
#[derive(Clone)]
pub struct DbManager {
    users: Arc<dyn UserRepository>,
    entities: Arc<dyn EntityRepository>,
    customers: Arc<dyn CustomerRepository>,
    transactions: Arc<dyn TransactionRepository>,
    uow: Arc<dyn UnitOfWork>,
    pool: DbPool,
}

impl std::fmt::Debug for DbManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbManager").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl DbManager {
    /// Connects to PostgreSQL (the first connection is opened now, so a wrong password or an unknown database is
    /// reported here, precisely). The schema must be migrated.
    pub async fn postgres(config: &DatabaseConfig, pool: &PoolConfig) -> Result<Self, DatabaseError> {
        let pool = Pool::new(DieselPgBackend::new(config)?, pool, "diesel-postgres").await?;
        Ok(Self::from_pg_pool(pool))
    }

    /// Opens a SQLite database (the first connection is opened now). The schema must be migrated.
    pub async fn sqlite(config: &SqliteConfig, pool: &PoolConfig) -> Result<Self, DatabaseError> {
        let pool = Pool::new(DieselSqliteBackend::new(config)?, pool, "diesel-sqlite").await?;
        Ok(Self::from_sqlite_pool(pool))
    }

    /// Over an existing PostgreSQL pool.
    pub fn from_pg_pool(pool: Pool<DieselPgBackend>) -> Self {
        Self {
            users: Arc::new(DieselRepository::new(pool.clone())),
            entities: Arc::new(DieselRepository::new(pool.clone())),
            customers: Arc::new(DieselRepository::new(pool.clone())),
            transactions: Arc::new(DieselRepository::new(pool.clone())),
            uow: Arc::new(DieselUnitOfWork::new(pool.clone())),
            pool: DbPool::Postgres(pool),
        }
    }

    /// Over an existing SQLite pool.
    pub fn from_sqlite_pool(pool: Pool<DieselSqliteBackend>) -> Self {
        Self {
            users: Arc::new(DieselRepository::new(pool.clone())),
            entities: Arc::new(DieselRepository::new(pool.clone())),
            customers: Arc::new(DieselRepository::new(pool.clone())),
            transactions: Arc::new(DieselRepository::new(pool.clone())),
            uow: Arc::new(DieselUnitOfWork::new(pool.clone())),
            pool: DbPool::Sqlite(pool),
        }
    }

    /// Users.
    pub fn users(&self) -> Arc<dyn UserRepository> {
        self.users.clone()
    }

    /// Generic entities.
    pub fn entities(&self) -> Arc<dyn EntityRepository> {
        self.entities.clone()
    }

    /// CRM customers.
    pub fn customers(&self) -> Arc<dyn CustomerRepository> {
        self.customers.clone()
    }

    /// Finance transactions.
    pub fn transactions(&self) -> Arc<dyn TransactionRepository> {
        self.transactions.clone()
    }

    /// The unit of work, for writes that must land together.
    pub fn unit_of_work(&self) -> Arc<dyn UnitOfWork> {
        self.uow.clone()
    }

    /// The pool, for metrics and health checks.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            DbPool::Postgres(_) => "postgres",
            DbPool::Sqlite(_) => "sqlite",
        }
    }

    /// Runs `work` in a transaction: commits if it returns `Ok`, rolls back if it returns `Err` or panics
    /// ([`UnitOfWorkExt::run`]).
    pub async fn transaction<R, E, F>(&self, work: F) -> Result<R, E>
    where
        R: Send,
        E: From<RepoError> + Send,
        F: for<'t> FnOnce(&'t dyn Tx) -> BoxFuture<'t, Result<R, E>> + Send,
    {
        self.uow.run(work).await
    }
}
