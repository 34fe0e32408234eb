//! [`DbManager`]: the seeds' entry point to the Diesel data layer: one pool, the four repositories and the unit of
//! work, on PostgreSQL or SQLite, handed out as port trait objects; optionally with an audit trail
//! ([`DbManager::with_audit`]); itself a [`HealthCheck`] of its pool.

use std::sync::Arc;

use async_trait::async_trait;
use cpc_domain::{Customer, Entity, Transaction, User};
use cpc_ports::{
    CustomerRepository, EntityRepository, HealthCheck, HealthReport, RepoError, TransactionRepository, Tx, UnitOfWork,
    UnitOfWorkExt, UserRepository,
};
use futures::future::BoxFuture;

use crate::diesel::connection::{DieselBackend, DieselPgBackend, DieselSqliteBackend};
use crate::diesel::repos::{AuditConfig, DieselRepository, EmailTable, SqlTable};
use crate::diesel::uow::DieselUnitOfWork;
use crate::pool::{DatabaseError, HealthChecker, Pool, PoolConfig};
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
///
/// With an audit trail, every create, update and delete through its repositories (and those of its units of
/// work) also writes `audit_log` rows in the same transaction:
///
/// ```no_run
/// # async fn demo(db: cpc_adapters::diesel::DbManager) -> Result<(), Box<dyn std::error::Error>> {
/// use cpc_adapters::diesel::AuditConfig;
///
/// let audited = db.with_audit(AuditConfig::actor("alice"));
/// audited.users().create(cpc_domain::NewUser::new("ada", "ada@example.org")?).await?; // + one audit row
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DbManager {
    users: Arc<dyn UserRepository>,
    entities: Arc<dyn EntityRepository>,
    customers: Arc<dyn CustomerRepository>,
    transactions: Arc<dyn TransactionRepository>,
    uow: Arc<dyn UnitOfWork>,
    pool: DbPool,
    audit: Option<Arc<AuditConfig>>,
}

impl std::fmt::Debug for DbManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbManager").field("pool", &self.pool).field("audit", &self.audit).finish_non_exhaustive()
    }
}

/// The repositories and unit of work over `pool`, auditing when `audit` is given.
fn assemble<B>(pool: Pool<B>, wrap: fn(Pool<B>) -> DbPool, audit: Option<Arc<AuditConfig>>) -> DbManager
where
    B: DieselBackend,
    User: EmailTable<B::Conn>,
    Entity: SqlTable<B::Conn>,
    Customer: EmailTable<B::Conn>,
    Transaction: SqlTable<B::Conn>,
{
    DbManager {
        users: Arc::new(DieselRepository::<User, B>::new(pool.clone()).audited(audit.clone())),
        entities: Arc::new(DieselRepository::<Entity, B>::new(pool.clone()).audited(audit.clone())),
        customers: Arc::new(DieselRepository::<Customer, B>::new(pool.clone()).audited(audit.clone())),
        transactions: Arc::new(DieselRepository::<Transaction, B>::new(pool.clone()).audited(audit.clone())),
        uow: Arc::new(DieselUnitOfWork::new(pool.clone()).audited(audit.clone())),
        pool: wrap(pool),
        audit,
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

    /// Over an existing PostgreSQL pool (no audit trail).
    pub fn from_pg_pool(pool: Pool<DieselPgBackend>) -> Self {
        assemble(pool, DbPool::Postgres, None)
    }

    /// Over an existing SQLite pool (no audit trail).
    pub fn from_sqlite_pool(pool: Pool<DieselSqliteBackend>) -> Self {
        assemble(pool, DbPool::Sqlite, None)
    }

    /// A manager over the same pool whose repositories, units of work and transactions write one `audit_log` row
    /// (table, row id, action, `audit.actor`, time) for every row created (each row of a `create_many`), updated
    /// or deleted (only when a row was deleted), in the same database transaction as the write: a write that
    /// fails or is rolled back leaves no audit row, and a failing audit insert fails the write. The time is the
    /// row's `updated_at` for creates and updates, the deletion time for deletes. Off by default. Cheap (the pool
    /// is shared), so a manager per actor (e.g. per request) is fine.
    pub fn with_audit(&self, audit: AuditConfig) -> Self {
        let audit = Some(Arc::new(audit));
        match &self.pool {
            DbPool::Postgres(pool) => assemble(pool.clone(), DbPool::Postgres, audit),
            DbPool::Sqlite(pool) => assemble(pool.clone(), DbPool::Sqlite, audit),
        }
    }

    /// The audit trail's configuration, when it is on.
    pub fn audit(&self) -> Option<&AuditConfig> {
        self.audit.as_deref()
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

    /// A health check of the pool ([`HealthChecker`]): round-trip latency, server version and pool state. The
    /// manager is a [`HealthCheck`] itself too.
    pub fn health_check(&self) -> Arc<dyn HealthCheck> {
        match &self.pool {
            DbPool::Postgres(pool) => Arc::new(HealthChecker::new(pool.clone())),
            DbPool::Sqlite(pool) => Arc::new(HealthChecker::new(pool.clone())),
        }
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

/// Checks the pool through [`HealthChecker`] (component `"postgres"` or `"sqlite"`, with `server_version`).
#[async_trait]
impl HealthCheck for DbManager {
    async fn check(&self) -> HealthReport {
        match &self.pool {
            DbPool::Postgres(pool) => HealthChecker::check_pool(pool).await,
            DbPool::Sqlite(pool) => HealthChecker::check_pool(pool).await,
        }
    }
}
