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

use std::sync::Arc;

use async_trait::async_trait;
use cpc_domain::{Customer, Entity, Transaction, User};
use cpc_ports::{
    CustomerRepository, EntityRepository, RepoError, TransactionRepository, Tx, UnitOfWork, UserRepository,
};
use diesel_async::{AsyncConnection, TransactionManager};

use crate::diesel::connection::{DieselBackend, DieselPgBackend, DieselSqliteBackend};
use crate::diesel::replicas::Session;
use crate::diesel::repos::{
    AuditConfig, DieselRepository, EmailTable, SqlTable, TxScope, record_write, roll_back_levels,
};
use crate::pool::Pool;

/// Starts transactions on connections of a pool.
pub struct DieselUnitOfWork<B: DieselBackend> {
    pool: Pool<B>,
    audit: Option<Arc<AuditConfig>>,
    session: Option<Arc<Session>>,
}

/// The unit of work on PostgreSQL.
pub type PgUnitOfWork = DieselUnitOfWork<DieselPgBackend>;
/// The unit of work on SQLite.
pub type SqliteUnitOfWork = DieselUnitOfWork<DieselSqliteBackend>;

impl<B: DieselBackend> DieselUnitOfWork<B> {
    /// Units of work on `pool`'s connections: each holds one connection from `begin` to commit or rollback.
    pub fn new(pool: Pool<B>) -> Self {
        Self { pool, audit: None, session: None }
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
        Self { pool: self.pool.clone(), audit: self.audit.clone(), session: self.session.clone() }
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
    B: DieselBackend,
    User: EmailTable<B::Conn>,
    Entity: SqlTable<B::Conn>,
    Customer: EmailTable<B::Conn>,
    Transaction: SqlTable<B::Conn>,
{
    async fn begin(&self) -> Result<Box<dyn Tx>, RepoError> {
        let mut conn = self.pool.get_owned().await.map_err(RepoError::from)?;
        // If this is cancelled halfway, the transaction manager marks the connection broken and the pool drops it.
        B::begin(&mut conn).await.map_err(|e| crate::diesel::repos::tx_context(B::NAME).map(e))?;
        Ok(Box::new(DieselTx { scope: TxScope::begin(conn), audit: self.audit.clone(), session: self.session.clone() }))
    }
}

/// An open transaction: the top-level one of a unit of work, or one nested in it ([`Tx::savepoint`]). Dropping it
/// without committing rolls it back (a nested one to its savepoint).
pub struct DieselTx<B: DieselBackend> {
    scope: TxScope<B>,
    audit: Option<Arc<AuditConfig>>,
    session: Option<Arc<Session>>,
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
    B: DieselBackend,
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

    /// Commits (a nested transaction: releases its savepoint). With a transaction nested in this one still open,
    /// fails with [`RepoError::NestedTransactionOpen`] and rolls this one back instead.
    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        if !self.scope.is_top() {
            return self.scope.release().await;
        }
        let ctx = crate::diesel::repos::tx_context(B::NAME);
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
        Ok(Box::new(DieselTx { scope, audit: self.audit.clone(), session: self.session.clone() }))
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
