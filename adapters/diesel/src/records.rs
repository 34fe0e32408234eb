//! [`Records`]: the records a database knows (the four built-in ones, plus every record the app registers), and
//! how to make each one's repository on either backend, on the pool, a replica set or inside a unit of work.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use cpc_domain::{Customer, Entity, Transaction, User};
use cpc_ports::{Record, RepoError, Repository};
use diesel_async::AsyncPgConnection;
use futures::future::BoxFuture;

use crate::connection::{AsyncSqliteConnection, DieselBackend, DieselPgBackend, DieselSqliteBackend};
use crate::repos::{AuditConfig, DieselRepository, Source};
use crate::sql::SqlTable;
use cpc_pool::pool::Pool;

/// A record stored through Diesel on both backends: what [`record!`](crate::record) and
/// [`sql_table!`](crate::sql_table) declare. Blanket-implemented.
pub trait DieselRecord: Record + SqlTable<AsyncPgConnection> + SqlTable<AsyncSqliteConnection> {}

impl<T: Record + SqlTable<AsyncPgConnection> + SqlTable<AsyncSqliteConnection>> DieselRecord for T {}

/// Makes a record's repository on a source of backend `B`, as `Box<Arc<dyn Repository<T>>>`.
type Maker<B> = fn(Source<B>, Option<Arc<AuditConfig>>) -> Box<dyn Any + Send>;

/// Checks a record's declaration against its table on one of `B`'s connections.
type Verifier<B> = for<'c> fn(&'c mut <B as cpc_pool::pool::Backend>::Conn) -> BoxFuture<'c, Result<(), RepoError>>;

/// One registered record (internal to [`Records`]).
#[doc(hidden)]
pub struct Entry {
    entity: &'static str,
    pg: Maker<DieselPgBackend>,
    sqlite: Maker<DieselSqliteBackend>,
    verify_pg: Verifier<DieselPgBackend>,
    verify_sqlite: Verifier<DieselSqliteBackend>,
}

fn make<T, B>(source: Source<B>, audit: Option<Arc<AuditConfig>>) -> Box<dyn Any + Send>
where
    T: DieselRecord + SqlTable<B::Conn>,
    B: DieselBackend,
{
    let repo: Arc<dyn Repository<T>> = Arc::new(DieselRepository::<T, B>::on(source).audited(audit));
    Box::new(repo)
}

fn verify<T: SqlTable<C>, C>(conn: &mut C) -> BoxFuture<'_, Result<(), RepoError>>
where
    C: Send,
{
    Box::pin(T::verify(conn))
}

/// The records a database knows. Cloning shares the set: a record registered on one clone is known to all (so
/// to every unit of work of the database, including those begun earlier).
#[derive(Clone)]
pub struct Records {
    entries: Arc<RwLock<HashMap<TypeId, Entry>>>,
}

impl Default for Records {
    /// The four built-in records.
    fn default() -> Self {
        let records = Self { entries: Arc::default() };
        records.register::<User>();
        records.register::<Entity>();
        records.register::<Customer>();
        records.register::<Transaction>();
        records
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entities()).finish()
    }
}

/// Picks a backend's maker and verifier out of an entry. Implemented by the two Diesel backends; sealed in
/// practice, as its methods name crate-private types.
#[allow(private_interfaces)]
pub trait PickBackend: DieselBackend + Sized {
    /// The maker of repositories on this backend.
    #[doc(hidden)]
    fn maker(entry: &Entry) -> Maker<Self>;
    /// The declaration check on this backend.
    #[doc(hidden)]
    fn verifier(entry: &Entry) -> Verifier<Self>;
}

#[allow(private_interfaces)]
impl PickBackend for DieselPgBackend {
    fn maker(entry: &Entry) -> Maker<Self> {
        entry.pg
    }
    fn verifier(entry: &Entry) -> Verifier<Self> {
        entry.verify_pg
    }
}

#[allow(private_interfaces)]
impl PickBackend for DieselSqliteBackend {
    fn maker(entry: &Entry) -> Maker<Self> {
        entry.sqlite
    }
    fn verifier(entry: &Entry) -> Verifier<Self> {
        entry.verify_sqlite
    }
}

impl Records {
    /// Registers record `T` (again is harmless).
    pub fn register<T: DieselRecord>(&self) {
        let entry = Entry {
            entity: T::ENTITY,
            pg: make::<T, DieselPgBackend>,
            sqlite: make::<T, DieselSqliteBackend>,
            verify_pg: verify::<T, AsyncPgConnection>,
            verify_sqlite: verify::<T, AsyncSqliteConnection>,
        };
        self.entries.write().unwrap_or_else(PoisonError::into_inner).insert(TypeId::of::<T>(), entry);
    }

    /// Whether `T` is registered.
    pub fn contains<T: Record>(&self) -> bool {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).contains_key(&TypeId::of::<T>())
    }

    /// The registered records' names ([`Record::ENTITY`]), sorted.
    pub fn entities(&self) -> Vec<&'static str> {
        let mut names: Vec<_> =
            self.entries.read().unwrap_or_else(PoisonError::into_inner).values().map(|e| e.entity).collect();
        names.sort_unstable();
        names
    }

    /// The repository of the record with this `TypeId` on `source`, as `Box<Arc<dyn Repository<T>>>`.
    pub(crate) fn make<B: PickBackend>(
        &self,
        record: TypeId,
        source: &Source<B>,
        audit: Option<Arc<AuditConfig>>,
    ) -> Option<Box<dyn Any + Send>> {
        let maker = self.entries.read().unwrap_or_else(PoisonError::into_inner).get(&record).map(B::maker)?;
        Some(maker(source.clone(), audit))
    }

    /// Checks every registered declaration against the database on one connection of `pool`: a missing table or
    /// column is a [`RepoError::Validation`] naming the table and the column.
    pub async fn verify<B: PickBackend>(&self, pool: &Pool<B>) -> Result<(), RepoError> {
        let checks: Vec<(&'static str, Verifier<B>)> = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|e| (e.entity, B::verifier(e)))
            .collect();
        let mut conn = pool.get().await.map_err(RepoError::from)?;
        for (_, check) in checks {
            check(&mut conn).await?;
        }
        Ok(())
    }
}
