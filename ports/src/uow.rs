//! The [`UnitOfWork`] port: several repository writes that land together or not at all.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::{CustomerRepository, EntityRepository, RepoError, TransactionRepository, UserRepository};

/// An open database transaction, with repositories bound to it.
///
/// Everything done through the repositories it hands out becomes visible to others only on
/// [`Tx::commit`]. Dropping a `Tx` without committing rolls it back (so does a panic that unwinds through it).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Tx: Send + Sync {
    /// Users, inside this transaction.
    fn users(&self) -> Arc<dyn UserRepository>;
    /// Entities, inside this transaction.
    fn entities(&self) -> Arc<dyn EntityRepository>;
    /// Customers, inside this transaction.
    fn customers(&self) -> Arc<dyn CustomerRepository>;
    /// Finance transactions, inside this transaction.
    fn transactions(&self) -> Arc<dyn TransactionRepository>;

    /// Makes every write visible at once.
    ///
    /// MUST apply all writes or none. After commit (or rollback), repositories from this `Tx` MUST fail with
    /// [`RepoError::TransactionFinished`].
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;

    /// Discards every write.
    async fn rollback(self: Box<Self>) -> Result<(), RepoError>;
}

/// Starts transactions.
///
/// Implementations: Diesel over PostgreSQL and SQLite (`cpc-adapters`), in-memory (`cpc-testkit`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UnitOfWork: Send + Sync + 'static {
    /// Opens a transaction.
    ///
    /// MUST isolate it: its writes MUST NOT be visible outside it before commit, and MUST vanish entirely if it
    /// is rolled back, dropped, or its commit fails.
    async fn begin(&self) -> Result<Box<dyn Tx>, RepoError>;
}

/// Runs a closure in a transaction. Blanket-implemented, `dyn UnitOfWork` included.
///
/// ```
/// # async fn demo(uow: &dyn cpc_ports::UnitOfWork, a: cpc_domain::NewUser, b: cpc_domain::NewUser) -> Result<(), cpc_ports::RepoError> {
/// use cpc_ports::UnitOfWorkExt;
/// uow.run(|tx| Box::pin(async move {
///     tx.users().create(a).await?;
///     tx.users().create(b).await?; // if this fails, `a` is not stored either
///     Ok::<_, cpc_ports::RepoError>(())
/// })).await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait UnitOfWorkExt: UnitOfWork {
    /// Begins a transaction, runs `work`, and commits if it returns `Ok`; rolls back if it returns `Err` or
    /// panics (the panic then continues). The closure's error type only has to accept a [`RepoError`].
    async fn run<R, E, F>(&self, work: F) -> Result<R, E>
    where
        R: Send,
        E: From<RepoError> + Send,
        F: for<'t> FnOnce(&'t dyn Tx) -> BoxFuture<'t, Result<R, E>> + Send,
    {
        let tx = self.begin().await?;
        let outcome = AssertUnwindSafe(work(&*tx)).catch_unwind().await;
        match outcome {
            Ok(Ok(value)) => {
                tx.commit().await?;
                Ok(value)
            }
            Ok(Err(e)) => {
                // The work's error is what the caller needs; a failing rollback changes nothing for it (the
                // backend discards an unfinished transaction anyway).
                let _ = tx.rollback().await;
                Err(e)
            }
            Err(panic) => {
                let _ = tx.rollback().await;
                std::panic::resume_unwind(panic)
            }
        }
    }
}

impl<U: UnitOfWork + ?Sized> UnitOfWorkExt for U {}
