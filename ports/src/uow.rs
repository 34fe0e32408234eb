//! The [`UnitOfWork`] port: several repository writes that land together or not at all.

use std::any::{Any, TypeId};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::{
    CustomerRepository, EntityRepository, Record, RepoError, Repository, TransactionRepository, UserRepository,
};

/// An open database transaction, with repositories bound to it.
///
/// Everything done through the repositories it hands out becomes visible to others only on
/// [`Tx::commit`]. Dropping a `Tx` without committing rolls it back (so does a panic that unwinds through it).
///
/// # Nested transactions
///
/// [`Tx::savepoint`] opens a transaction nested in this one (an SQL `SAVEPOINT`), itself a `Tx`. Its commit
/// releases the savepoint: its writes become part of the enclosing transaction, still invisible outside until
/// the top-level one commits, and still undone if an enclosing one rolls back. Its rollback, or dropping it,
/// rolls back to the savepoint: its own writes are undone, the enclosing transaction's earlier writes are kept and
/// it stays usable. On PostgreSQL this is how a unit of work survives a failed step: there an error aborts the
/// whole transaction unless it happened inside a savepoint.
///
/// Nesting is a stack on one connection, as Diesel's transaction manager keeps it (it tracks the depth; `begin`
/// inside a transaction issues `SAVEPOINT`, commit `RELEASE SAVEPOINT`, rollback `ROLLBACK TO SAVEPOINT`): only
/// the innermost open `Tx` may be used. While a nested `Tx` is open, the enclosing one's repositories,
/// `savepoint` and `commit` fail with [`RepoError::NestedTransactionOpen`] (a commit that fails that way rolls
/// the enclosing `Tx` back, as any failed commit does), and writes never land in the wrong level. Rolling back
/// (or dropping) an enclosing `Tx` rolls back every `Tx` nested in it too; their repositories then fail with
/// [`RepoError::TransactionFinished`]. [`TxExt::nested`] is the scoped form.
///
/// ```
/// # async fn demo(tx: &dyn cpc_ports::Tx, a: cpc_domain::NewUser, b: cpc_domain::NewUser) -> Result<(), cpc_ports::RepoError> {
/// let ada = tx.users().create(a).await?;
/// let inner = tx.savepoint().await?;
/// inner.users().create(b).await?;
/// inner.rollback().await?; // undoes `b` only
/// assert!(tx.users().exists(&ada.id).await?); // the outer transaction goes on, `ada` included
/// # Ok(()) }
/// ```
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

    /// The repository of the record type whose `TypeId` is `record`, inside this transaction, as a
    /// `Box<Arc<dyn Repository<T>>>` behind `dyn Any`; `None` when the unit of work does not know the record (it
    /// was not registered with the database at start-up). Call it through [`TxExt::repo`], which is typed.
    ///
    /// MUST hand out a repository whose writes belong to this transaction (this level of it), exactly like the
    /// built-in accessors.
    fn repository(&self, record: TypeId) -> Option<Box<dyn Any + Send>>;

    /// The backend's own handle on this transaction, for an adapter's escape hatch (for example
    /// `cpc_adapters::diesel::with_connection`, which runs an app's own Diesel query on the transaction's
    /// connection). `None` where there is none (the in-memory fake).
    fn backend_handle(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }

    /// Makes every write visible at once.
    ///
    /// MUST apply all writes or none. After commit (or rollback), repositories from this `Tx` MUST fail with
    /// [`RepoError::TransactionFinished`].
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;

    /// Discards every write (of a nested `Tx`: its own, back to its savepoint), and those of every `Tx` nested in
    /// this one.
    async fn rollback(self: Box<Self>) -> Result<(), RepoError>;

    /// Opens a transaction nested in this one (a savepoint); see [Nested transactions](Tx#nested-transactions).
    ///
    /// MUST fail with [`RepoError::NestedTransactionOpen`] while another `Tx` nested in this one is open, and
    /// with [`RepoError::TransactionFinished`] once this one is finished. The nested `Tx`'s commit MUST keep its
    /// writes in this transaction (visible to it, invisible outside until the top-level commit); its rollback or
    /// drop MUST undo exactly its own writes and leave this transaction usable.
    async fn savepoint(&self) -> Result<Box<dyn Tx>, RepoError>;
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
        finish_after(self.begin().await?, work).await
    }
}

impl<U: UnitOfWork + ?Sized> UnitOfWorkExt for U {}

/// Runs a closure in a transaction nested in a [`Tx`]. Blanket-implemented, `dyn Tx` included.
///
/// ```
/// # async fn demo(uow: &dyn cpc_ports::UnitOfWork, a: cpc_domain::NewUser, b: cpc_domain::NewUser) -> Result<(), cpc_ports::RepoError> {
/// use cpc_ports::{TxExt, UnitOfWorkExt};
/// uow.run(|tx| Box::pin(async move {
///     tx.users().create(a).await?;
///     // An optional step: if it fails, only its own writes are undone, and `a` is still committed.
///     let optional = tx.nested(|inner| Box::pin(async move { inner.users().create(b).await })).await;
///     if let Err(e) = optional {
///         eprintln!("skipped: {e}");
///     }
///     Ok::<_, cpc_ports::RepoError>(())
/// })).await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait TxExt: Tx {
    /// The repository of record `T` inside this transaction (an app's own record, or a built-in one).
    ///
    /// ```
    /// # async fn demo(tx: &dyn cpc_ports::Tx) -> Result<(), cpc_ports::RepoError> {
    /// use cpc_ports::{Repository, TxExt};
    /// let users = tx.repo::<cpc_domain::User>()?;
    /// assert_eq!(users.count(&[]).await?, tx.users().count(&[]).await?);
    /// # Ok(()) }
    /// ```
    ///
    /// Fails with [`RepoError::Validation`] naming `record` when the unit of work does not know `T`.
    fn repo<T: Record>(&self) -> Result<Arc<dyn Repository<T>>, RepoError> {
        self.repository(TypeId::of::<T>())
            .and_then(|any| any.downcast::<Arc<dyn Repository<T>>>().ok())
            .map(|boxed| *boxed)
            .ok_or_else(unknown_record::<T>)
    }

    /// Opens a nested transaction ([`Tx::savepoint`]), runs `work` in it, and commits it (its writes join this
    /// transaction) if it returns `Ok`; rolls back to the savepoint if it returns `Err` or panics (the panic
    /// then continues), leaving this transaction usable with its earlier writes. The closure's error type only
    /// has to accept a [`RepoError`].
    async fn nested<R, E, F>(&self, work: F) -> Result<R, E>
    where
        R: Send,
        E: From<RepoError> + Send,
        F: for<'t> FnOnce(&'t dyn Tx) -> BoxFuture<'t, Result<R, E>> + Send,
    {
        finish_after(self.savepoint().await?, work).await
    }
}

impl<T: Tx + ?Sized> TxExt for T {}

/// Runs `work` in `tx`, then commits it if `work` returned `Ok`, rolls it back if it returned `Err` or panicked
/// (the panic then continues).
async fn finish_after<R, E, F>(tx: Box<dyn Tx>, work: F) -> Result<R, E>
where
    E: From<RepoError>,
    F: for<'t> FnOnce(&'t dyn Tx) -> BoxFuture<'t, Result<R, E>>,
{
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

/// The error of a repository asked for a record type the database was not told about.
pub fn unknown_record<T: Record>() -> RepoError {
    RepoError::Validation(cpc_domain::ValidationError::new(
        "record",
        format!("{} is not registered with this database (register it at start-up)", T::ENTITY),
    ))
}
