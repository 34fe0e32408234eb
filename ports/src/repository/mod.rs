//! The data ports: the generic [`Repository`] and the repositories of the built-in records.

mod access;
mod field_value;
mod query;
mod records;
mod store;

use std::fmt;

use async_trait::async_trait;
use cpc_domain::{
    Customer, Email, Entity, EntityId, EntityKind, NewEntity, Timestamp, Transaction, User, UserId, Username, Version,
};

use crate::RepoError;

pub use access::{AccessExt, ReadOnly, Scope, Scoped};
pub use field_value::{FieldValue, RecordId};
pub use query::{
    Cursor, Direction, Field, Filter, Float, MAX_IN_VALUES, MAX_PAGE_SIZE, Page, PageRequest, Query, Sort, TimeRange,
    Value, ValueKind,
};
pub use records::{CustomerField, EntityField, TransactionField, UserField};
#[cfg(feature = "mocks")]
pub use store::MockRecordStore;
pub use store::{RecordStore, RecordStoreExt};

/// A unique key of a row, as the in-memory fake indexes it: the field (or constraint) name a duplicate is reported
/// under, and the row's normalised value of it (for example `("email", lowercased address)`).
pub type UniqueKey = (&'static str, String);

/// A foreign key of a record: `field` holds the id of a row of the record whose [`Record::ENTITY`] is `to`.
/// Deleting a referenced row is refused (`ON DELETE RESTRICT`), as the in-memory fake enforces it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The referring field, e.g. `"user_id"`.
    pub field: &'static str,
    /// The referenced record's [`Record::ENTITY`], e.g. `"user"`.
    pub to: &'static str,
}

/// A model a [`Repository`] stores: ties it to its id, its create and update forms, and its queryable fields.
///
/// Apps rarely implement it by hand: `cpc_adapters::record!` declares it (with the Diesel table operations) for a
/// model struct whose fields are the table's columns. The four built-in records implement it by hand because
/// their fields are domain types (an `Email`, a `Money` spread over two columns).
pub trait Record: Clone + fmt::Debug + Send + Sync + 'static {
    /// The id: a UUID made by the library or an `i64` the database assigns (see [`Record::new_id`]).
    type Id: RecordId;
    /// What `create` takes.
    type New: Clone + fmt::Debug + Send + Sync + 'static;
    /// What `update` takes.
    type Update: Clone + fmt::Debug + Send + Sync + 'static;
    /// The queryable fields.
    type Field: Field;
    /// The record's name in errors, e.g. `"user"`.
    const ENTITY: &'static str;
    /// The id field, the final tie-break of every sort.
    const ID_FIELD: Self::Field;
    /// Whether rows carry an optimistic-locking version. Without one, [`Record::version`] is always
    /// [`Version::FIRST`] and `update` does not compare versions (the last write wins).
    const VERSIONED: bool = true;
    /// The record's foreign keys.
    const REFERENCES: &'static [Reference] = &[];

    /// The row's id.
    fn id(&self) -> &Self::Id;
    /// An id as a query [`Value`].
    fn id_value(id: &Self::Id) -> Value {
        id.to_value()
    }
    /// The row's optimistic-locking version.
    fn version(&self) -> Version;
    /// The row's value of `field`.
    fn value(&self, field: Self::Field) -> Value;
    /// The row's unique keys (see [`UniqueKey`]); a constraint that does not apply to this row (a partial
    /// unique index) is left out.
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }

    /// A fresh id for a new row, or `None` when the database assigns it (a serial key): the store then builds
    /// the row with a placeholder id and sets the assigned one with [`Record::set_id`].
    fn new_id() -> Option<Self::Id> {
        Self::Id::generate()
    }
    /// Sets the row's id (for database-assigned keys).
    fn set_id(&mut self, id: Self::Id);
    /// A new row from its create form: [`Version::FIRST`], both timestamps `now`. Every store builds rows this
    /// way, so what `create` returns is the same whatever the backend.
    fn build(id: Self::Id, new: Self::New, now: Timestamp) -> Self;
    /// Applies a partial change to the row's own fields (not version or timestamps).
    fn apply(&mut self, changes: Self::Update);
    /// Sets the version and moves `updated_at` to `now`, never backwards (each where the record has them).
    fn touch(&mut self, version: Version, now: Timestamp);
    /// When the row last changed, where the record keeps it.
    fn updated_at(&self) -> Option<Timestamp>;
}

/// The placeholder id a row with a database-assigned key carries until the store sets the real one.
pub fn placeholder_id<T: Record>() -> Result<T::Id, RepoError> {
    T::Id::from_value(&Value::Int(0)).ok_or_else(|| {
        RepoError::Validation(cpc_domain::ValidationError::new(
            T::ID_FIELD.name(),
            "has no generated value and is not an integer the database can assign",
        ))
    })
}

/// The current time as every store keeps it: UTC, microsecond precision (PostgreSQL's `timestamptz`).
pub fn stored_now() -> Timestamp {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Generic CRUD over one record type.
///
/// Implementations: Diesel over PostgreSQL and SQLite (`cpc-adapters`, feature `diesel`), in-memory (`cpc-testkit`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Repository<T: Record>: Send + Sync + 'static {
    /// Stores a new row and returns it with its id, timestamps and [`Version::FIRST`].
    ///
    /// MUST return [`RepoError::Conflict`] with [`ConflictKind::Duplicate`](crate::ConflictKind::Duplicate)
    /// naming the field when a unique field (e.g. e-mail, compared case-insensitively) is taken, and
    /// [`RepoError::Validation`] naming the field ([`RepoError::missing_reference`], e.g. `user_id`) when a
    /// referenced row does not exist.
    /// Text MUST be stored verbatim, however odd (quotes, `'; DROP TABLE`, unicode).
    async fn create(&self, new: T::New) -> Result<T, RepoError>;

    /// Stores many rows atomically: all or, on any error, none.
    async fn create_many(&self, new: Vec<T::New>) -> Result<Vec<T>, RepoError>;

    /// The row with this id, or `None`.
    async fn find_by_id(&self, id: &T::Id) -> Result<Option<T>, RepoError>;

    /// A page of rows matching `query`'s filters, in its order (ties broken by id ascending).
    ///
    /// MUST refuse filters whose value kind does not match the field, and page sizes outside 1..=1000, with
    /// [`RepoError::Validation`]. With offset paging MUST set `total`; with keyset paging MUST set
    /// `next_cursor` exactly when more rows follow, and successive pages MUST neither overlap nor skip rows.
    async fn find_page(&self, query: &Query<T::Field>) -> Result<Page<T>, RepoError>;

    /// Applies `changes` to the row if it is still at version `expected`; returns the new row, whose version is
    /// `expected.next()` and whose `updated_at` is not earlier than before.
    ///
    /// MUST return [`RepoError::NotFound`] for an unknown id and [`RepoError::Conflict`] with
    /// [`ConflictKind::StaleVersion`](crate::ConflictKind::StaleVersion) when the stored version differs,
    /// changing nothing in either case.
    async fn update(&self, id: &T::Id, expected: Version, changes: T::Update) -> Result<T, RepoError>;

    /// Deletes the row; returns whether it existed. MUST refuse, deleting nothing, with [`RepoError::Validation`]
    /// naming the referring field ([`RepoError::still_referenced`], e.g. `user_id`) if other rows refer to it.
    async fn delete(&self, id: &T::Id) -> Result<bool, RepoError>;

    /// Whether a row with this id exists.
    async fn exists(&self, id: &T::Id) -> Result<bool, RepoError>;

    /// How many rows match all `filters` (every row for none).
    async fn count(&self, filters: &[Filter<T::Field>]) -> Result<u64, RepoError>;
}

/// Users: the built-in `UserRepository`.
#[async_trait]
pub trait UserRepository: Repository<User> {
    /// The user with this e-mail address, compared case-insensitively.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError>;
    /// The user with this username (exact match).
    async fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError>;
}

/// Generic entities: the built-in `EntityRepository`.
#[async_trait]
pub trait EntityRepository: Repository<Entity> {
    /// Entities of one kind, by name then id.
    async fn find_by_kind(&self, kind: &EntityKind, page: PageRequest) -> Result<Page<Entity>, RepoError>;

    /// Stores `new` under `id` (a "put"): creates the entity with this id when none exists, otherwise replaces
    /// its kind, name and attributes, keeps `created_at`, and bumps the version. Returns the stored row.
    ///
    /// MUST be atomic: of concurrent upserts of one id, each either creates or replaces, or fails with a
    /// retryable [`ConflictKind::Concurrent`](crate::ConflictKind::Concurrent); none is lost half-written.
    async fn upsert(&self, id: &EntityId, new: NewEntity) -> Result<Entity, RepoError>;
}

/// CRM customers: the built-in `CustomerRepository`.
#[async_trait]
pub trait CustomerRepository: Repository<Customer> {
    /// The customer with this e-mail address, compared case-insensitively.
    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepoError>;
}

/// Finance ledger entries: the built-in `TransactionRepository`.
#[async_trait]
pub trait TransactionRepository: Repository<Transaction> {
    /// A user's entries that occurred in `range`, newest first (ties by id ascending), paged.
    async fn history(&self, user: &UserId, range: TimeRange, page: PageRequest)
    -> Result<Page<Transaction>, RepoError>;
}

/// Conveniences over any [`Repository`]. Blanket-implemented, `dyn` ones included.
#[async_trait]
pub trait RepositoryExt<T: Record>: Repository<T> {
    /// The row with this id, or [`RepoError::NotFound`].
    async fn get(&self, id: &T::Id) -> Result<T, RepoError> {
        self.find_by_id(id).await?.ok_or_else(|| RepoError::NotFound { entity: T::ENTITY, id: id.to_string() })
    }
}

impl<T: Record, R: Repository<T> + ?Sized> RepositoryExt<T> for R {}
