//! [`RecordStore`]: a database as a source of repositories for any record it knows, the app's own included.

use std::any::{Any, TypeId};
use std::sync::Arc;

use crate::{Record, RepoError, Repository, UnitOfWork, unknown_record};

/// A database that hands out the repository of any record registered with it (the built-in ones always are),
/// and units of work spanning them all. Object-safe, so apps hold `Arc<dyn RecordStore>`; typed through
/// [`RecordStoreExt::repo`].
///
/// Implementations: the Diesel `DbManager` (PostgreSQL, SQLite) in `cpc-adapters`, `InMemoryDatabase` in
/// `cpc-testkit`.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait RecordStore: Send + Sync + 'static {
    /// The repository of the record type whose `TypeId` is `record`, as a `Box<Arc<dyn Repository<T>>>` behind
    /// `dyn Any`; `None` when the record was not registered.
    fn repository(&self, record: TypeId) -> Option<Box<dyn Any + Send>>;

    /// Units of work whose transactions hand out every registered record's repository
    /// ([`TxExt::repo`](crate::TxExt::repo)).
    fn unit_of_work(&self) -> Arc<dyn UnitOfWork>;
}

/// Typed access to a [`RecordStore`]. Blanket-implemented, `dyn RecordStore` included.
pub trait RecordStoreExt: RecordStore {
    /// The repository of record `T`; [`RepoError::Validation`] naming `record` when `T` was not registered.
    fn repo<T: Record>(&self) -> Result<Arc<dyn Repository<T>>, RepoError> {
        self.repository(TypeId::of::<T>())
            .and_then(|any| any.downcast::<Arc<dyn Repository<T>>>().ok())
            .map(|boxed| *boxed)
            .ok_or_else(unknown_record::<T>)
    }
}

impl<S: RecordStore + ?Sized> RecordStoreExt for S {}
