//! The in-memory [`UnitOfWork`]: isolated, all-or-nothing transactions over an [`InMemoryDatabase`](super::InMemoryDatabase).

use std::sync::Arc;

use async_trait::async_trait;
use cpc_ports::{
    CustomerRepository, EntityRepository, RepoError, TransactionRepository, Tx, UnitOfWork, UserRepository,
};

use super::repos::InMemoryRepository;
use super::store::{Shared, Store, TxScope};

/// Starts in-memory transactions. Get one from [`InMemoryDatabase::unit_of_work`](super::InMemoryDatabase::unit_of_work).
///
/// Each transaction sees the committed state plus its own writes (refreshed at every statement, like
/// PostgreSQL's READ COMMITTED); nobody else sees its writes before commit. Commit re-checks every write
/// (unique keys, references, versions) against the state at that moment and applies all or none: where
/// PostgreSQL would make a second writer wait for the first, the fake lets both proceed and fails the later
/// commit with the same error, so it never blocks. Unlike PostgreSQL, a failed statement does not abort the
/// transaction; portable code stops at the first error anyway (as [`UnitOfWorkExt::run`](cpc_ports::UnitOfWorkExt::run) does).
///
/// Nested transactions ([`Tx::savepoint`]) behave as on the databases: a stack where only the innermost open
/// level may be used (others get [`RepoError::NestedTransactionOpen`]); a nested commit keeps its writes in the
/// enclosing level, a nested rollback or drop undoes exactly its own.
#[derive(Debug, Clone)]
pub struct InMemoryUnitOfWork {
    shared: Shared,
}

impl InMemoryUnitOfWork {
    pub(crate) fn new(shared: &Shared) -> Self {
        Self { shared: shared.clone() }
    }
}

#[async_trait]
impl UnitOfWork for InMemoryUnitOfWork {
    async fn begin(&self) -> Result<Box<dyn Tx>, RepoError> {
        Ok(Box::new(InMemoryTx { scope: TxScope::begin(self.shared.clone()) }))
    }
}

/// An open in-memory transaction: the top-level one of a unit of work, or one nested in it ([`Tx::savepoint`]).
/// Dropping it without committing rolls it back (a nested one to its savepoint, at once).
#[derive(Debug)]
pub struct InMemoryTx {
    scope: TxScope,
}

impl InMemoryTx {
    fn repo<T>(&self) -> InMemoryRepository<T> {
        InMemoryRepository::on(Store::Tx(self.scope.clone()))
    }
}

#[async_trait]
impl Tx for InMemoryTx {
    fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(self.repo::<cpc_domain::User>())
    }
    fn entities(&self) -> Arc<dyn EntityRepository> {
        Arc::new(self.repo::<cpc_domain::Entity>())
    }
    fn customers(&self) -> Arc<dyn CustomerRepository> {
        Arc::new(self.repo::<cpc_domain::Customer>())
    }
    fn transactions(&self) -> Arc<dyn TransactionRepository> {
        Arc::new(self.repo::<cpc_domain::Transaction>())
    }

    fn repository(&self, record: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        Store::Tx(self.scope.clone()).repository(record)
    }

    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        if self.scope.is_top() { self.scope.handle.commit() } else { self.scope.release() }
    }

    async fn rollback(self: Box<Self>) -> Result<(), RepoError> {
        if self.scope.is_top() {
            self.scope.handle.rollback();
            Ok(())
        } else {
            self.scope.roll_back_nested()
        }
    }

    async fn savepoint(&self) -> Result<Box<dyn Tx>, RepoError> {
        Ok(Box::new(InMemoryTx { scope: self.scope.savepoint()? }))
    }
}

impl Drop for InMemoryTx {
    fn drop(&mut self) {
        // After commit or rollback this finds the level finished and does nothing.
        if self.scope.is_top() {
            self.scope.handle.rollback();
        } else {
            self.scope.abandon_nested();
        }
    }
}
