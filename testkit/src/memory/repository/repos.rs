//! The repositories: one generic implementation of [`Repository`], plus the four specific traits.

use std::fmt;
use std::marker::PhantomData;

use async_trait::async_trait;
use cpc_domain::{
    Customer, Email, Entity, EntityId, EntityKind, NewEntity, Transaction, User, UserId, Username, Version,
};
use cpc_ports::{
    ConflictKind, CustomerRepository, Direction, EntityField, EntityRepository, Filter, Page, PageRequest, Query,
    Record, RepoError, Repository, Sort, TimeRange, TransactionField, TransactionRepository, UserRepository, Value,
};

use super::select;
use super::store::{Shared, Store};
use super::table::{Change, RowChange, conflict, now};

/// An in-memory repository of `T` rows, behaving like the PostgreSQL adapter: case-insensitive unique e-mails,
/// foreign keys, optimistic versions, microsecond timestamps, offset and keyset paging.
///
/// Get one from an [`InMemoryDatabase`](super::InMemoryDatabase) (repositories of one database share its rows)
/// or from a unit of work's `Tx`. `Default` gives a repository on a fresh database of its own.
pub struct InMemoryRepository<T> {
    store: Store,
    record: PhantomData<fn() -> T>,
}

/// In-memory [`UserRepository`].
pub type InMemoryUserRepository = InMemoryRepository<User>;
/// In-memory [`EntityRepository`].
pub type InMemoryEntityRepository = InMemoryRepository<Entity>;
/// In-memory [`CustomerRepository`].
pub type InMemoryCustomerRepository = InMemoryRepository<Customer>;
/// In-memory [`TransactionRepository`]; its `user_id` must name a user of the same database.
pub type InMemoryTransactionRepository = InMemoryRepository<Transaction>;

impl<T> InMemoryRepository<T> {
    pub(crate) fn on(store: Store) -> Self {
        Self { store, record: PhantomData }
    }

    pub(crate) fn committed(shared: &Shared) -> Self {
        Self::on(Store::Committed(shared.clone()))
    }
}

impl<T> Clone for InMemoryRepository<T> {
    fn clone(&self) -> Self {
        Self::on(self.store.clone())
    }
}

/// A repository on a fresh database of its own (the four built-in records), with `T` registered.
impl<T: Record> Default for InMemoryRepository<T> {
    fn default() -> Self {
        let shared = new_database();
        register::<T>(&shared);
        Self::committed(&shared)
    }
}

/// A fresh database holding the four built-in records' tables.
pub(crate) fn new_database() -> Shared {
    let shared = Shared::default();
    register::<User>(&shared);
    register::<Entity>(&shared);
    register::<Customer>(&shared);
    register::<Transaction>(&shared);
    shared
}

/// Gives `T` a table on `shared` (unless it has one), whose repositories are [`InMemoryRepository`]s.
pub(crate) fn register<T: Record>(shared: &Shared) {
    super::store::lock(shared).register::<T>(open::<T>);
}

/// The [`Opener`](super::table::Opener) of `T`'s repositories: an `Arc<dyn Repository<T>>` on a [`Store`].
fn open<T: Record>(store: &dyn std::any::Any) -> Option<Box<dyn std::any::Any + Send>> {
    let store = store.downcast_ref::<Store>()?;
    let repo: std::sync::Arc<dyn cpc_ports::Repository<T>> =
        std::sync::Arc::new(InMemoryRepository::<T>::on(store.clone()));
    Some(Box::new(repo))
}

impl<T: Record> fmt::Debug for InMemoryRepository<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.store {
            Store::Committed(_) => "committed",
            Store::Tx(_) => "unit of work",
        };
        f.debug_struct("InMemoryRepository").field("entity", &T::ENTITY).field("scope", &scope).finish()
    }
}

#[async_trait]
impl<T: Record> Repository<T> for InMemoryRepository<T> {
    async fn create(&self, new: T::New) -> Result<T, RepoError> {
        self.store.write(|tables| {
            let row = T::build(tables.new_id::<T>()?, new, now());
            Ok((row.clone(), vec![Change::from(RowChange::Insert(row))]))
        })
    }

    async fn create_many(&self, new: Vec<T::New>) -> Result<Vec<T>, RepoError> {
        let now = now();
        self.store.write(|tables| {
            let rows = new
                .into_iter()
                .map(|n| Ok(T::build(tables.new_id::<T>()?, n, now)))
                .collect::<Result<Vec<T>, RepoError>>()?;
            let changes = rows.iter().map(|row| Change::from(RowChange::Insert(row.clone()))).collect();
            Ok((rows, changes))
        })
    }

    async fn find_by_id(&self, id: &T::Id) -> Result<Option<T>, RepoError> {
        self.store.read(|tables| Ok(tables.table::<T>()?.get(id).cloned()))
    }

    async fn find_page(&self, query: &Query<T::Field>) -> Result<Page<T>, RepoError> {
        self.store.read(|tables| select::page(tables.table::<T>()?.rows(), query))
    }

    async fn update(&self, id: &T::Id, expected: Version, changes: T::Update) -> Result<T, RepoError> {
        self.store.write(|tables| {
            let Some(old) = tables.table::<T>()?.get(id) else {
                return Err(RepoError::NotFound { entity: T::ENTITY, id: id.to_string() });
            };
            if T::VERSIONED && old.version() != expected {
                return Err(conflict::<T>(ConflictKind::StaleVersion { expected, actual: old.version() }));
            }
            let (mut row, stored) = (old.clone(), old.version());
            row.apply(changes);
            row.touch(stored.next(), now());
            Ok((row.clone(), vec![Change::from(RowChange::Replace { expected: stored, row })]))
        })
    }

    async fn delete(&self, id: &T::Id) -> Result<bool, RepoError> {
        self.store.write(|tables| match tables.table::<T>()?.get(id) {
            None => Ok((false, Vec::new())),
            Some(_) => Ok((true, vec![Change::from(RowChange::<T>::Delete(id.clone()))])),
        })
    }

    async fn exists(&self, id: &T::Id) -> Result<bool, RepoError> {
        self.store.read(|tables| Ok(tables.table::<T>()?.get(id).is_some()))
    }

    async fn count(&self, filters: &[Filter<T::Field>]) -> Result<u64, RepoError> {
        self.store.read(|tables| select::count(tables.table::<T>()?.rows(), filters))
    }
}

#[async_trait]
impl UserRepository for InMemoryRepository<User> {
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        self.store.read(|tables| Ok(tables.table::<User>()?.find_unique("email", email.normalized()).cloned()))
    }

    async fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError> {
        self.store
            .read(|tables| Ok(tables.table::<User>()?.find_unique("username", username.as_str().to_owned()).cloned()))
    }
}

#[async_trait]
impl CustomerRepository for InMemoryRepository<Customer> {
    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepoError> {
        self.store.read(|tables| Ok(tables.table::<Customer>()?.find_unique("email", email.normalized()).cloned()))
    }
}

#[async_trait]
impl EntityRepository for InMemoryRepository<Entity> {
    async fn find_by_kind(&self, kind: &EntityKind, page: PageRequest) -> Result<Page<Entity>, RepoError> {
        let query = Query {
            filters: vec![Filter::Eq(EntityField::Kind, Value::Text(kind.as_str().to_owned()))],
            sort: vec![Sort { field: EntityField::Name, direction: Direction::Asc }],
            page,
        };
        self.find_page(&query).await
    }

    async fn upsert(&self, id: &EntityId, new: NewEntity) -> Result<Entity, RepoError> {
        self.store.write(|tables| match tables.table::<Entity>()?.get(id) {
            None => {
                let row = Entity::build(*id, new, now());
                Ok((row.clone(), vec![Change::from(RowChange::Insert(row))]))
            }
            Some(old) => {
                let expected = old.version;
                let mut row = old.clone();
                row.replace_with(new);
                row.touch(expected.next(), now());
                Ok((row.clone(), vec![Change::from(RowChange::Replace { expected, row })]))
            }
        })
    }
}

#[async_trait]
impl TransactionRepository for InMemoryRepository<Transaction> {
    async fn history(
        &self,
        user: &UserId,
        range: TimeRange,
        page: PageRequest,
    ) -> Result<Page<Transaction>, RepoError> {
        let query = Query {
            filters: vec![
                Filter::Eq(TransactionField::UserId, Value::Uuid(*user.as_uuid())),
                Filter::Range {
                    field: TransactionField::OccurredAt,
                    from: Some(Value::Time(range.from)),
                    to: Some(Value::Time(range.to)),
                },
            ],
            sort: vec![Sort { field: TransactionField::OccurredAt, direction: Direction::Desc }],
            page,
        };
        self.find_page(&query).await
    }
}
