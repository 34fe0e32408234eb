//! The [`UnitOfWork`] over Diesel: a transaction on one checked-out connection, with repositories bound to it.
//!
//! The connection lives in an `Arc<tokio::sync::Mutex<..>>` shared by the [`DieselTx`] and the repositories it
//! hands out. Commit and rollback go through the connection's transaction manager. A `DieselTx` dropped without
//! commit is rolled back on a spawned task (its repositories fail with `TransactionFinished` at once); if the
//! rollback cannot run (no runtime, or a call was cancelled halfway so the connection's state is unknown), the
//! connection goes back to the pool still inside its transaction, which the pool's broken-connection check sees,
//! so it is closed (the server then discards the transaction), never handed out again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use cpc_domain::{Customer, Entity, Transaction, User};
use cpc_ports::{
    CustomerRepository, EntityRepository, RepoError, TransactionRepository, Tx, UnitOfWork, UserRepository,
};
use diesel_async::{AsyncConnection, TransactionManager};

use crate::diesel::connection::{DieselBackend, DieselPgBackend, DieselSqliteBackend};
use crate::diesel::repos::{AuditConfig, DieselRepository, EmailTable, SqlTable, TxShared};
use crate::pool::{Pool, PooledConn};

/// Starts transactions on connections of a pool.
pub struct DieselUnitOfWork<B: DieselBackend> {
    pool: Pool<B>,
    audit: Option<Arc<AuditConfig>>,
}

/// The unit of work on PostgreSQL.
pub type PgUnitOfWork = DieselUnitOfWork<DieselPgBackend>;
/// The unit of work on SQLite.
pub type SqliteUnitOfWork = DieselUnitOfWork<DieselSqliteBackend>;

impl<B: DieselBackend> DieselUnitOfWork<B> {
    /// Units of work on `pool`'s connections: each holds one connection from `begin` to commit or rollback.
    pub fn new(pool: Pool<B>) -> Self {
        Self { pool, audit: None }
    }

    /// Units of work whose repositories write an audit row for every create, update and delete, in the
    /// transaction (`None`: no audit trail).
    pub fn audited(mut self, audit: Option<Arc<AuditConfig>>) -> Self {
        self.audit = audit;
        self
    }
}

impl<B: DieselBackend> Clone for DieselUnitOfWork<B> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), audit: self.audit.clone() }
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
        Ok(Box::new(DieselTx { shared: Arc::new(TxShared::new(conn)), audit: self.audit.clone() }))
    }
}

/// An open transaction. Dropping it without committing rolls it back.
pub struct DieselTx<B: DieselBackend> {
    shared: Arc<TxShared<B>>,
    audit: Option<Arc<AuditConfig>>,
}

impl<B: DieselBackend> std::fmt::Debug for DieselTx<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselTx")
            .field("backend", &B::NAME)
            .field("finished", &self.shared.finished.load(Ordering::SeqCst))
            .finish()
    }
}

type Tm<C> = <C as AsyncConnection>::TransactionManager;

impl<B: DieselBackend> DieselTx<B> {
    /// Marks the transaction finished and takes its connection, unless it was already finished.
    async fn finish(&self) -> Result<PooledConn<'static, B>, RepoError> {
        if self.shared.finished.swap(true, Ordering::SeqCst) {
            return Err(RepoError::TransactionFinished);
        }
        let conn = self.shared.conn.lock().await.take().ok_or(RepoError::TransactionFinished)?;
        if self.shared.interrupted.load(Ordering::SeqCst) {
            // Dropping it returns it to the pool inside a transaction: the pool discards it.
            drop(conn);
            return Err(TxShared::<B>::interrupted_error());
        }
        Ok(conn)
    }
}

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
        Arc::new(DieselRepository::<User, B>::in_tx(&self.shared).audited(self.audit.clone()))
    }
    fn entities(&self) -> Arc<dyn EntityRepository> {
        Arc::new(DieselRepository::<Entity, B>::in_tx(&self.shared).audited(self.audit.clone()))
    }
    fn customers(&self) -> Arc<dyn CustomerRepository> {
        Arc::new(DieselRepository::<Customer, B>::in_tx(&self.shared).audited(self.audit.clone()))
    }
    fn transactions(&self) -> Arc<dyn TransactionRepository> {
        Arc::new(DieselRepository::<Transaction, B>::in_tx(&self.shared).audited(self.audit.clone()))
    }

    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        let mut conn = self.finish().await?;
        // On failure the transaction manager rolls back or marks the connection broken (then the pool drops it).
        Tm::<B::Conn>::commit_transaction(&mut *conn)
            .await
            .map_err(|e| crate::diesel::repos::tx_context(B::NAME).map(e))
    }

    async fn rollback(self: Box<Self>) -> Result<(), RepoError> {
        let mut conn = self.finish().await?;
        Tm::<B::Conn>::rollback_transaction(&mut *conn)
            .await
            .map_err(|e| crate::diesel::repos::tx_context(B::NAME).map(e))
    }
}

impl<B: DieselBackend> Drop for DieselTx<B> {
    fn drop(&mut self) {
        if self.shared.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.shared.clone();
        let rollback = async move {
            let taken = shared.conn.lock().await.take();
            if let Some(mut conn) = taken
                && !shared.interrupted.load(Ordering::SeqCst)
            {
                // A failure leaves the connection marked broken; the pool then drops it.
                let _ = Tm::<B::Conn>::rollback_transaction(&mut *conn).await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(rollback)),
            // No runtime to roll back on: the connection returns inside its transaction and the pool drops it.
            Err(_) => {
                if let Ok(mut conn) = self.shared.conn.try_lock() {
                    conn.take();
                }
            }
        }
    }
}
