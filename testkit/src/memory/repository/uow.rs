//! The in-memory [`UnitOfWork`]: isolated, all-or-nothing transactions over an [`InMemoryDatabase`](super::InMemoryDatabase).

use std::sync::Arc;

use async_trait::async_trait;
use cpc_ports::{
    CustomerRepository, EntityRepository, RepoError, TransactionRepository, Tx, UnitOfWork, UserRepository,
};

use super::repos::InMemoryRepository;
use super::store::{Shared, Store, TxHandle};

/// Starts in-memory transactions. Get one from [`InMemoryDatabase::unit_of_work`](super::InMemoryDatabase::unit_of_work).
///
/// Each transaction sees the committed state plus its own writes (refreshed at every statement, like
/// PostgreSQL's READ COMMITTED); nobody else sees its writes before commit. Commit re-checks every write
/// (unique keys, references, versions) against the state at that moment and applies all or none: where
/// PostgreSQL would make a second writer wait for the first, the fake lets both proceed and fails the later
/// commit with the same conflict, so it never blocks. Unlike PostgreSQL, a failed statement does not abort the
/// transaction; portable code stops at the first error anyway (as [`UnitOfWorkExt::run`](cpc_ports::UnitOfWorkExt::run) does).
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
        Ok(Box::new(InMemoryTx { handle: Arc::new(TxHandle::begin(self.shared.clone())) }))
    }
}

/// An open in-memory transaction. Dropping it without committing rolls it back.
#[derive(Debug)]
pub struct InMemoryTx {
    handle: Arc<TxHandle>,
}

impl InMemoryTx {
    fn repository<T>(&self) -> InMemoryRepository<T> {
        InMemoryRepository::on(Store::Tx(self.handle.clone()))
    }
}

#[async_trait]
impl Tx for InMemoryTx {
    fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(self.repository::<cpc_domain::User>())
    }
    fn entities(&self) -> Arc<dyn EntityRepository> {
        Arc::new(self.repository::<cpc_domain::Entity>())
    }
    fn customers(&self) -> Arc<dyn CustomerRepository> {
        Arc::new(self.repository::<cpc_domain::Customer>())
    }
    fn transactions(&self) -> Arc<dyn TransactionRepository> {
        Arc::new(self.repository::<cpc_domain::Transaction>())
    }

    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        self.handle.commit()
    }

    async fn rollback(self: Box<Self>) -> Result<(), RepoError> {
        self.handle.rollback();
        Ok(())
    }
}

impl Drop for InMemoryTx {
    fn drop(&mut self) {
        // After commit this finds the transaction finished and does nothing.
        self.handle.rollback();
    }
}
