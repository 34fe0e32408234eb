//! The [`UnitOfWork`] over Diesel: a transaction on one checked-out connection, with repositories bound to it,
//! and transactions nested in it as savepoints.
//!
//! The connection lives in an `Arc<tokio::sync::Mutex<..>>` shared by the [`DieselTx`]s of one unit (the top-level
//! one and those nested in it) and the repositories they hand out. Commit and rollback go through the
//! connection's transaction manager, which keeps the nesting depth: [`Tx::savepoint`] issues `SAVEPOINT`, a nested
//! commit `RELEASE SAVEPOINT`, a nested rollback `ROLLBACK TO SAVEPOINT`. Levels form a stack: only the innermost
//! open one may run statements, any other gets [`RepoError::NestedTransactionOpen`].
//!
//! A top-level `DieselTx` dropped without commit is rolled back on a spawned task (its repositories fail with
//! `TransactionFinished` at once); if the rollback cannot run (no runtime, or a call was cancelled halfway so the
//! connection's state is unknown), the connection goes back to the pool still inside its transaction, which the
//! pool's broken-connection check sees, so it is closed (the server then discards the transaction), never handed
//! out again. A nested `DieselTx` dropped without commit is finished at once and rolled back to its savepoint
//! before the next statement of the unit runs (on a spawned task, or by that next call, whichever comes first).

use std::any::{Any, TypeId};
use std::sync::Arc;

use async_trait::async_trait;
use cpc_domain::{Customer, Entity, Transaction, User};
use cpc_ports::{
    CustomerRepository, EntityRepository, RepoError, TransactionRepository, Tx, UnitOfWork, UserRepository,
};
use diesel_async::{AsyncConnection, TransactionManager};

use crate::connection::{AsyncSqliteConnection, DieselBackend, DieselPgBackend, DieselSqliteBackend};
use crate::records::{PickBackend, Records};
use crate::replicas::Session;
use crate::repos::{AuditConfig, DieselRepository, TxScope, record_write, roll_back_levels};
use crate::repos::{Mode, Source};
use crate::sql::{EmailTable, SqlTable};
use cpc_pool::pool::Pool;

/// Starts transactions on connections of a pool.
pub struct DieselUnitOfWork<B: DieselBackend> {
    pool: Pool<B>,
    audit: Option<Arc<AuditConfig>>,
    session: Option<Arc<Session>>,
    records: Records,
}

/// The unit of work on PostgreSQL.
pub type PgUnitOfWork = DieselUnitOfWork<DieselPgBackend>;
/// The unit of work on SQLite.
pub type SqliteUnitOfWork = DieselUnitOfWork<DieselSqliteBackend>;

impl<B: DieselBackend> DieselUnitOfWork<B> {
    /// Units of work on `pool`'s connections: each holds one connection from `begin` to commit or rollback.
    pub fn new(pool: Pool<B>) -> Self {
        Self { pool, audit: None, session: None, records: Records::default() }
    }

    /// Units of work whose transactions hand out the repositories of `records` ([`TxExt::repo`](cpc_ports::TxExt::repo)).
    pub fn with_records(mut self, records: Records) -> Self {
        self.records = records;
        self
    }

    /// Units of work whose repositories write an audit row for every create, update and delete, in the
    /// transaction (`None`: no audit trail).
    pub fn audited(mut self, audit: Option<Arc<AuditConfig>>) -> Self {
        self.audit = audit;
        self
    }

    /// Units of work whose commits count as writes of `session` (a caller reading from replicas): its next reads
    /// wait for a replica that replayed the commit, or go to the primary.
    pub(crate) fn in_session(mut self, session: Option<Arc<Session>>) -> Self {
        self.session = session;
        self
    }
}

impl<B: DieselBackend> Clone for DieselUnitOfWork<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            audit: self.audit.clone(),
            session: self.session.clone(),
            records: self.records.clone(),
        }
    }
}

impl<B: DieselBackend> std::fmt::Debug for DieselUnitOfWork<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselUnitOfWork").field("backend", &B::NAME).field("audit", &self.audit).finish()
    }
}

#[async_trait]
impl<B> UnitOfWork for DieselUnitOfWork<B>
where
    B: PickBackend,
    User: EmailTable<B::Conn>,
    Entity: SqlTable<B::Conn>,
    Customer: EmailTable<B::Conn>,
    Transaction: SqlTable<B::Conn>,
{
    async fn begin(&self) -> Result<Box<dyn Tx>, RepoError> {
        let mut conn = self.pool.get_owned().await.map_err(RepoError::from)?;
        // If this is cancelled halfway, the transaction manager marks the connection broken and the pool drops it.
        B::begin(&mut conn).await.map_err(|e| crate::repos::tx_context(B::NAME).map(e))?;
        Ok(Box::new(DieselTx {
            scope: TxScope::begin(conn),
            audit: self.audit.clone(),
            session: self.session.clone(),
            records: self.records.clone(),
        }))
    }
}

/// An open transaction: the top-level one of a unit of work, or one nested in it ([`Tx::savepoint`]). Dropping it
/// without committing rolls it back (a nested one to its savepoint).
pub struct DieselTx<B: DieselBackend> {
    scope: TxScope<B>,
    audit: Option<Arc<AuditConfig>>,
    session: Option<Arc<Session>>,
    records: Records,
}

impl<B: DieselBackend> std::fmt::Debug for DieselTx<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselTx")
            .field("backend", &B::NAME)
            .field("nested", &!self.scope.is_top())
            .field("finished", &self.scope.is_finished())
            .finish()
    }
}

type Tm<C> = <C as AsyncConnection>::TransactionManager;

#[async_trait]
impl<B> Tx for DieselTx<B>
where
    B: PickBackend,
    User: EmailTable<B::Conn>,
    Entity: SqlTable<B::Conn>,
    Customer: EmailTable<B::Conn>,
    Transaction: SqlTable<B::Conn>,
{
    fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(DieselRepository::<User, B>::in_tx(&self.scope).audited(self.audit.clone()))
    }
    fn entities(&self) -> Arc<dyn EntityRepository> {
        Arc::new(DieselRepository::<Entity, B>::in_tx(&self.scope).audited(self.audit.clone()))
    }
    fn customers(&self) -> Arc<dyn CustomerRepository> {
        Arc::new(DieselRepository::<Customer, B>::in_tx(&self.scope).audited(self.audit.clone()))
    }
    fn transactions(&self) -> Arc<dyn TransactionRepository> {
        Arc::new(DieselRepository::<Transaction, B>::in_tx(&self.scope).audited(self.audit.clone()))
    }

    fn repository(&self, record: TypeId) -> Option<Box<dyn Any + Send>> {
        self.records.make(record, &Source::Tx(self.scope.clone()), self.audit.clone())
    }

    /// This transaction's level, for [`with_connection`].
    fn backend_handle(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(Arc::new(self.scope.clone()))
    }

    /// Commits (a nested transaction: releases its savepoint). With a transaction nested in this one still open,
    /// fails with [`RepoError::NestedTransactionOpen`] and rolls this one back instead.
    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        if !self.scope.is_top() {
            return self.scope.release().await;
        }
        let ctx = crate::repos::tx_context(B::NAME);
        let (mut conn, savepoints, nested_open) = self.scope.finish_top().await?;
        if nested_open {
            // A failure leaves the connection marked broken; the pool then drops it.
            let _ = roll_back_levels::<B>(&mut *conn, savepoints + 1).await;
            return Err(RepoError::NestedTransactionOpen);
        }
        // Savepoints of dropped nested transactions are undone first; their writes must not be committed.
        roll_back_levels::<B>(&mut *conn, savepoints).await?;
        // On failure the transaction manager rolls back or marks the connection broken (then the pool drops it).
        let committed = Tm::<B::Conn>::commit_transaction(&mut *conn).await.map_err(|e| ctx.map(e));
        if let Some(session) = &self.session {
            record_write::<B>(session, &mut *conn, committed.is_ok()).await;
        }
        committed
    }

    async fn rollback(self: Box<Self>) -> Result<(), RepoError> {
        if !self.scope.is_top() {
            return self.scope.roll_back_nested().await;
        }
        let (mut conn, savepoints, _) = self.scope.finish_top().await?;
        roll_back_levels::<B>(&mut *conn, savepoints + 1).await
    }

    async fn savepoint(&self) -> Result<Box<dyn Tx>, RepoError> {
        let scope = self.scope.savepoint().await?;
        Ok(Box::new(DieselTx {
            scope,
            audit: self.audit.clone(),
            session: self.session.clone(),
            records: self.records.clone(),
        }))
    }
}

impl<B: DieselBackend> Drop for DieselTx<B> {
    fn drop(&mut self) {
        if !self.scope.is_top() {
            self.scope.abandon_nested();
            return;
        }
        if self.scope.shared.top.finish() {
            return;
        }
        let shared = self.scope.shared.clone();
        let rollback = async move {
            let mut state = shared.state.lock().await;
            let taken = state.conn.take();
            let savepoints = std::mem::take(&mut state.savepoints);
            drop(state);
            for level in &savepoints {
                level.finish();
            }
            if let Some(mut conn) = taken
                && !shared.interrupted.load(std::sync::atomic::Ordering::SeqCst)
            {
                // A failure leaves the connection marked broken; the pool then drops it.
                let _ = roll_back_levels::<B>(&mut *conn, savepoints.len() + 1).await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(rollback)),
            // No runtime to roll back on: the connection returns inside its transaction and the pool drops it.
            Err(_) => {
                if let Ok(mut state) = self.scope.shared.state.try_lock() {
                    state.conn.take();
                    for level in std::mem::take(&mut state.savepoints) {
                        level.finish();
                    }
                }
            }
        }
    }
}

/// A unit of work's connection, as [`with_connection`] hands it to an app's own Diesel query.
pub enum DieselConn<'c> {
    /// PostgreSQL.
    Postgres(&'c mut diesel_async::AsyncPgConnection),
    /// SQLite.
    Sqlite(&'c mut AsyncSqliteConnection),
}

/// Runs an app's own Diesel query (a join, an aggregate the query model lacks) on the connection of the open
/// transaction `tx`, at its level, in a savepoint of its own: its writes commit or roll back with the
/// transaction's, and a failure leaves the transaction usable.
///
/// ```no_run
/// # async fn demo(uow: &dyn cpc_ports::UnitOfWork) -> Result<(), cpc_ports::RepoError> {
/// use cpc_diesel::{DieselConn, with_connection};
/// use cpc_ports::UnitOfWorkExt;
/// use diesel::sql_types::BigInt;
/// use diesel_async::RunQueryDsl;
///
/// #[derive(diesel::QueryableByName)]
/// struct Count { #[diesel(sql_type = BigInt)] n: i64 }
///
/// let n = uow.run(|tx| Box::pin(async move {
///     with_connection(tx, |conn| Box::pin(async move {
///         let query = diesel::sql_query("SELECT count(*) AS n FROM users");
///         let row: Count = match conn {
///             DieselConn::Postgres(c) => query.get_result(c).await,
///             DieselConn::Sqlite(c) => query.get_result(c).await,
///         }
///         .map_err(|e| cpc_ports::RepoError::backend("diesel", e))?;
///         Ok(row.n)
///     })).await
/// })).await?;
/// # Ok(()) }
/// ```
///
/// Fails with [`RepoError::Validation`] naming `tx` when `tx` is not a Diesel transaction (the in-memory fake).
pub async fn with_connection<R, F>(tx: &dyn Tx, f: F) -> Result<R, RepoError>
where
    R: Send,
    F: for<'c> FnOnce(DieselConn<'c>) -> futures::future::BoxFuture<'c, Result<R, RepoError>> + Send,
{
    let handle = tx.backend_handle();
    if let Some(scope) = handle.as_deref().and_then(|h| h.downcast_ref::<TxScope<DieselPgBackend>>()) {
        return Source::Tx(scope.clone()).run(Mode::Write, move |c| f(DieselConn::Postgres(c))).await;
    }
    if let Some(scope) = handle.as_deref().and_then(|h| h.downcast_ref::<TxScope<DieselSqliteBackend>>()) {
        return Source::Tx(scope.clone()).run(Mode::Write, move |c| f(DieselConn::Sqlite(c))).await;
    }
    Err(RepoError::Validation(cpc_domain::ValidationError::new(
        "tx",
        "is not a Diesel transaction: run app-specific SQL on a PostgreSQL or SQLite unit of work",
    )))
}
