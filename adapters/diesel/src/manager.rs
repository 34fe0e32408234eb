//! [`DbManager`]: the entry point to the Diesel data layer: one pool, the four repositories and the unit of
//! work, on PostgreSQL or SQLite, handed out as port trait objects; optionally with an audit trail
//! ([`DbManager::with_audit`]); itself a [`HealthCheck`] of its pool.

use std::any::{Any, TypeId};
use std::sync::Arc;

use async_trait::async_trait;
use cpc_domain::{Customer, Entity, Transaction, User};
use cpc_ports::{
    CustomerRepository, EntityRepository, HealthCheck, HealthReport, HealthStatus, RecordStore, RepoError, Repository,
    TransactionRepository, Tx, UnitOfWork, UnitOfWorkExt, UserRepository,
};
use futures::future::BoxFuture;

use crate::connection::{DieselPgBackend, DieselSqliteBackend};
use crate::records::{DieselRecord, PickBackend, Records};
use crate::replicas::{ReadConsistency, ReplicaConfig, ReplicaSet, Session};
use crate::repos::{AuditConfig, DieselRepository, Routed, Source};
use crate::sql::{EmailTable, SqlTable};
use crate::uow::DieselUnitOfWork;
use cpc_pool::pool::{DatabaseError, HealthChecker, Pool, PoolConfig};
use cpc_pool::postgres::PgConfig;
use cpc_pool::sqlite::SqliteConfig;

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
/// use cpc_diesel::DbManager;
/// use cpc_pool::pool::PoolConfig;
/// use cpc_pool::sqlite::SqliteConfig;
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
/// # async fn demo(db: cpc_diesel::DbManager) -> Result<(), Box<dyn std::error::Error>> {
/// use cpc_diesel::AuditConfig;
///
/// let audited = db.with_audit(AuditConfig::actor("alice"));
/// audited.users().create(cpc_domain::NewUser::new("ada", "ada@example.org")?).await?; // + one audit row
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DbManager {
    source: AnySource,
    records: Records,
    users: Arc<dyn UserRepository>,
    entities: Arc<dyn EntityRepository>,
    customers: Arc<dyn CustomerRepository>,
    transactions: Arc<dyn TransactionRepository>,
    uow: Arc<dyn UnitOfWork>,
    pool: DbPool,
    audit: Option<Arc<AuditConfig>>,
    replicas: Option<ReplicaSet<DieselPgBackend>>,
    consistency: ReadConsistency,
}

impl std::fmt::Debug for DbManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbManager")
            .field("pool", &self.pool)
            .field("audit", &self.audit)
            .field("replicas", &self.replicas)
            .field("consistency", &self.consistency)
            .finish_non_exhaustive()
    }
}

/// Where a manager's repositories run, on either backend.
#[derive(Clone)]
enum AnySource {
    Postgres(Source<DieselPgBackend>),
    Sqlite(Source<DieselSqliteBackend>),
}

/// A backend whose sources a [`DbManager`] can hold.
trait ManagedBackend: PickBackend {
    fn wrap(source: Source<Self>) -> AnySource;
}

impl ManagedBackend for DieselPgBackend {
    fn wrap(source: Source<Self>) -> AnySource {
        AnySource::Postgres(source)
    }
}

impl ManagedBackend for DieselSqliteBackend {
    fn wrap(source: Source<Self>) -> AnySource {
        AnySource::Sqlite(source)
    }
}

/// The repositories on `source` and the unit of work on `uow_pool` (its commits counting as writes of `session`),
/// for `records`, auditing when `audit` is given; strong reads, no replica set (callers set those).
fn assemble<B>(
    source: Source<B>,
    uow_pool: Pool<B>,
    session: Option<Arc<Session>>,
    pool: DbPool,
    audit: Option<Arc<AuditConfig>>,
    records: Records,
) -> DbManager
where
    B: ManagedBackend,
    User: EmailTable<B::Conn>,
    Entity: SqlTable<B::Conn>,
    Customer: EmailTable<B::Conn>,
    Transaction: SqlTable<B::Conn>,
{
    DbManager {
        source: B::wrap(source.clone()),
        users: Arc::new(DieselRepository::<User, B>::on(source.clone()).audited(audit.clone())),
        entities: Arc::new(DieselRepository::<Entity, B>::on(source.clone()).audited(audit.clone())),
        customers: Arc::new(DieselRepository::<Customer, B>::on(source.clone()).audited(audit.clone())),
        transactions: Arc::new(DieselRepository::<Transaction, B>::on(source).audited(audit.clone())),
        uow: Arc::new(
            DieselUnitOfWork::new(uow_pool).audited(audit.clone()).in_session(session).with_records(records.clone()),
        ),
        records,
        pool,
        audit,
        replicas: None,
        consistency: ReadConsistency::Strong,
    }
}

impl DbManager {
    /// Connects to PostgreSQL (the first connection is opened now, so a wrong password or an unknown database is
    /// reported here, precisely). The schema must be migrated.
    pub async fn postgres(config: &PgConfig, pool: &PoolConfig) -> Result<Self, DatabaseError> {
        let pool = Pool::new(DieselPgBackend::new(config)?, pool, "diesel-postgres").await?;
        Ok(Self::from_pg_pool(pool))
    }

    /// Connects to a PostgreSQL primary and its read replicas ([`ReplicaSet::connect`]). The manager reads
    /// strongly (everything on the primary); [`stale_reads`](Self::stale_reads) gives the view whose reads may
    /// go to the replicas. The schema must be migrated (on the primary; the replicas follow).
    pub async fn postgres_with_replicas(config: &ReplicaConfig) -> Result<Self, DatabaseError> {
        Ok(Self::replicated(ReplicaSet::connect(config).await?))
    }

    /// Opens a SQLite database (the first connection is opened now). The schema must be migrated.
    pub async fn sqlite(config: &SqliteConfig, pool: &PoolConfig) -> Result<Self, DatabaseError> {
        let pool = Pool::new(DieselSqliteBackend::new(config)?, pool, "diesel-sqlite").await?;
        Ok(Self::from_sqlite_pool(pool))
    }

    /// Over an existing PostgreSQL pool (no audit trail).
    pub fn from_pg_pool(pool: Pool<DieselPgBackend>) -> Self {
        assemble(Source::Pool(pool.clone()), pool.clone(), None, DbPool::Postgres(pool), None, Records::default())
    }

    /// Over an existing SQLite pool (no audit trail).
    pub fn from_sqlite_pool(pool: Pool<DieselSqliteBackend>) -> Self {
        assemble(Source::Pool(pool.clone()), pool.clone(), None, DbPool::Sqlite(pool), None, Records::default())
    }

    /// Over a PostgreSQL [`ReplicaSet`] (no audit trail), reading strongly: [`pool`](Self::pool) is its primary.
    pub fn replicated(set: ReplicaSet<DieselPgBackend>) -> Self {
        let mut manager = Self::from_pg_pool(set.primary().clone());
        manager.replicas = Some(set);
        manager
    }

    /// A view of this manager whose repositories' reads may go to a replica ([`ReadConsistency::AllowStale`]):
    /// they may miss other callers' latest writes, never the view's own. The view is one caller: its writes and
    /// its units of work's commits send its next reads to the primary until a replica has replayed them
    /// (read-your-writes). Take one view per caller (a request, a job) for the most replica reads; a view shared
    /// by the whole app is still correct, only more of its reads go to the primary. Writes and units of work run
    /// on the primary as always. Without replicas (SQLite, or a plain PostgreSQL pool) reads stay on the pool.
    pub fn stale_reads(&self) -> Self {
        self.view(self.audit.clone(), ReadConsistency::AllowStale)
    }

    /// A view of this manager reading everything from the primary ([`ReadConsistency::Strong`], the default).
    pub fn strong_reads(&self) -> Self {
        self.view(self.audit.clone(), ReadConsistency::Strong)
    }

    /// A manager over the same pool whose repositories, units of work and transactions write one `audit_log` row
    /// (table, row id, action, `audit.actor`, time) for every row created (each row of a `create_many`), updated
    /// or deleted (only when a row was deleted), in the same database transaction as the write: a write that
    /// fails or is rolled back leaves no audit row, and a failing audit insert fails the write. The time is the
    /// row's `updated_at` for creates and updates, the deletion time for deletes. Off by default. Cheap (the pool
    /// is shared), so a manager per actor (e.g. per request) is fine. It reads as this one does (a stale-reads
    /// view gives a stale-reads view, with a session of its own).
    pub fn with_audit(&self, audit: AuditConfig) -> Self {
        self.view(Some(Arc::new(audit)), self.consistency)
    }

    /// The same pools, auditing as `audit` says, reading as `consistency` says (with a new session).
    fn view(&self, audit: Option<Arc<AuditConfig>>, consistency: ReadConsistency) -> Self {
        let records = self.records.clone();
        let mut manager = match (&self.pool, &self.replicas, consistency) {
            (DbPool::Postgres(_), Some(set), ReadConsistency::AllowStale) => {
                let session = Arc::new(Session::default());
                let source = Source::Replicas(Routed { set: set.clone(), session: session.clone() });
                assemble(source, set.primary().clone(), Some(session), self.pool.clone(), audit, records)
            }
            (DbPool::Postgres(pool), _, _) => {
                assemble(Source::Pool(pool.clone()), pool.clone(), None, self.pool.clone(), audit, records)
            }
            (DbPool::Sqlite(pool), _, _) => {
                assemble(Source::Pool(pool.clone()), pool.clone(), None, self.pool.clone(), audit, records)
            }
        };
        manager.replicas = self.replicas.clone();
        manager.consistency = consistency;
        manager
    }

    /// How this manager's repositories read.
    pub fn consistency(&self) -> ReadConsistency {
        self.consistency
    }

    /// The replica set, when the manager has one: its replicas' health and where routed reads went.
    pub fn replica_set(&self) -> Option<&ReplicaSet<DieselPgBackend>> {
        self.replicas.as_ref()
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

    /// Registers an app's record (declared with [`record!`](crate::record) or [`sql_table!`](crate::sql_table)),
    /// so its repository is handed out by [`repository`](Self::repository), by the [`RecordStore`] port and
    /// inside units of work ([`TxExt::repo`](cpc_ports::TxExt::repo)). Every view of this manager (audited,
    /// stale reads) shares the registration. Check the declarations against the database with
    /// [`verify_records`](Self::verify_records) at start-up.
    pub fn register<T: DieselRecord>(&self) -> &Self {
        self.records.register::<T>();
        self
    }

    /// The records this manager knows: the four built-in ones and those registered.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The repository of record `T` (registering it), reading and auditing as this manager does.
    pub fn repository<T: DieselRecord>(&self) -> Arc<dyn Repository<T>> {
        self.records.register::<T>();
        match &self.source {
            AnySource::Postgres(source) => {
                Arc::new(DieselRepository::<T, DieselPgBackend>::on(source.clone()).audited(self.audit.clone()))
                    as Arc<dyn Repository<T>>
            }
            AnySource::Sqlite(source) => {
                Arc::new(DieselRepository::<T, DieselSqliteBackend>::on(source.clone()).audited(self.audit.clone()))
            }
        }
    }

    /// Checks every registered record's declaration against the database (one query per table reading no row):
    /// a missing table or column fails here, at start-up, with a [`RepoError::Validation`] naming the table and
    /// the column, rather than at the first query in production.
    pub async fn verify_records(&self) -> Result<(), RepoError> {
        match &self.pool {
            DbPool::Postgres(pool) => self.records.verify(pool).await,
            DbPool::Sqlite(pool) => self.records.verify(pool).await,
        }
    }

    /// The pool, for metrics and health checks.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// A health check of the pool ([`HealthChecker`]): round-trip latency, server version and pool state; with
    /// replicas, the manager's own check (the primary's report, `replicas_up`, `Degraded` while one is out).
    pub fn health_check(&self) -> Arc<dyn HealthCheck> {
        match (&self.pool, &self.replicas) {
            (_, Some(_)) => Arc::new(self.clone()), // Adds the replicas to the primary's report.
            (DbPool::Postgres(pool), None) => Arc::new(HealthChecker::new(pool.clone())),
            (DbPool::Sqlite(pool), None) => Arc::new(HealthChecker::new(pool.clone())),
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

impl RecordStore for DbManager {
    fn repository(&self, record: TypeId) -> Option<Box<dyn Any + Send>> {
        match &self.source {
            AnySource::Postgres(source) => self.records.make(record, source, self.audit.clone()),
            AnySource::Sqlite(source) => self.records.make(record, source, self.audit.clone()),
        }
    }

    fn unit_of_work(&self) -> Arc<dyn UnitOfWork> {
        self.uow.clone()
    }
}

/// Checks the pool through [`HealthChecker`] (component `"postgres"` or `"sqlite"`, with `server_version`). With
/// replicas, `replicas_up` says how many replicas are in rotation (`"1/2"`), and a healthy primary with a replica
/// out of rotation is `Degraded` (reads fall back to the primary: working, short of capacity).
#[async_trait]
impl HealthCheck for DbManager {
    async fn check(&self) -> HealthReport {
        let report = match &self.pool {
            DbPool::Postgres(pool) => HealthChecker::check_pool(pool).await,
            DbPool::Sqlite(pool) => HealthChecker::check_pool(pool).await,
        };
        match &self.replicas {
            Some(set) => {
                let replicas = set.replicas();
                let up = replicas.iter().filter(|r| r.up).count();
                let mut report = report.with_detail("replicas_up", format!("{up}/{}", replicas.len()));
                // Reads still work (they fall back to the primary), with less capacity than configured.
                if up < replicas.len() && report.status == HealthStatus::Healthy {
                    report.status = HealthStatus::Degraded;
                }
                report
            }
            None => report,
        }
    }
}
