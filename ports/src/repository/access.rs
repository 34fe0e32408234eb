//! Repository-level access control: [`ReadOnly`], a view that refuses every write, and [`Scoped`], a view that
//! sees and writes only the rows whose field holds one value (a tenant, an owner). Both wrap any
//! `Arc<dyn Repository<T>>` and are one themselves, so they compose, and they behave the same on every backend
//! and inside a unit of work. [`AccessExt`] builds them.
//!
//! They are a guard in the app's own process, not database row-level security: code holding the unwrapped
//! repository, another process, or SQL run by hand still sees every row.
//!
//! ```
//! # async fn demo(
//! #     all: std::sync::Arc<dyn cpc_ports::Repository<cpc_domain::Transaction>>,
//! #     ada: cpc_domain::User,
//! #     bob: cpc_domain::Transaction,
//! #     entry: cpc_domain::NewTransaction,
//! # ) -> Result<(), cpc_ports::RepoError> {
//! use cpc_ports::{AccessExt, RepoError, Repository, TransactionField};
//!
//! let adas = all.scoped(TransactionField::UserId, ada.id)?; // only Ada's ledger entries
//! assert_eq!(adas.find_by_id(&bob.id).await?, None); // another user's row looks absent
//! if entry.user_id != ada.id {
//!     assert!(matches!(adas.create(entry).await, Err(RepoError::Forbidden { .. }))); // nothing written
//! }
//! let report = adas.read_only(); // views compose
//! assert!(matches!(report.delete(&bob.id).await, Err(RepoError::Forbidden { .. })));
//! # Ok(()) }
//! ```
//!
//! `cpc_testkit::contract::access` runs the same checks on the in-memory fake and the Diesel backends.

use std::sync::Arc;

use async_trait::async_trait;
use cpc_domain::{Customer, Entity, Transaction, User, ValidationError, Version};

use super::{Field, Filter, Page, Query, Record, Repository, Value, ValueKind, placeholder_id, stored_now};
use crate::{ConflictKind, CustomerRepository, EntityRepository, RepoError, TransactionRepository, UserRepository};

/// A view of a repository that reads through and refuses every write (`create`, `create_many`, `update`,
/// `delete`) with [`RepoError::Forbidden`], without forwarding it.
pub struct ReadOnly<T: Record> {
    inner: Arc<dyn Repository<T>>,
}

impl<T: Record> ReadOnly<T> {
    /// A read-only view of `inner`.
    pub fn new(inner: Arc<dyn Repository<T>>) -> Self {
        Self { inner }
    }

    fn refuse(operation: &'static str) -> RepoError {
        RepoError::Forbidden { entity: T::ENTITY, operation, reason: "the repository is read-only".into() }
    }
}

impl<T: Record> std::fmt::Debug for ReadOnly<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnly").field("entity", &T::ENTITY).finish_non_exhaustive()
    }
}

#[async_trait]
impl<T: Record> Repository<T> for ReadOnly<T> {
    async fn create(&self, _new: T::New) -> Result<T, RepoError> {
        Err(Self::refuse("create"))
    }
    async fn create_many(&self, _new: Vec<T::New>) -> Result<Vec<T>, RepoError> {
        Err(Self::refuse("create_many"))
    }
    async fn find_by_id(&self, id: &T::Id) -> Result<Option<T>, RepoError> {
        self.inner.find_by_id(id).await
    }
    async fn find_page(&self, query: &Query<T::Field>) -> Result<Page<T>, RepoError> {
        self.inner.find_page(query).await
    }
    async fn update(&self, _id: &T::Id, _expected: Version, _changes: T::Update) -> Result<T, RepoError> {
        Err(Self::refuse("update"))
    }
    async fn delete(&self, _id: &T::Id) -> Result<bool, RepoError> {
        Err(Self::refuse("delete"))
    }
    async fn exists(&self, id: &T::Id) -> Result<bool, RepoError> {
        self.inner.exists(id).await
    }
    async fn count(&self, filters: &[Filter<T::Field>]) -> Result<u64, RepoError> {
        self.inner.count(filters).await
    }
}

/// The condition of a [`Scoped`] view: `field = value`, checked on construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope<F> {
    field: F,
    value: Value,
}

impl<F: Field> Scope<F> {
    /// The scope `field = value`. Fails with [`RepoError::Validation`] naming the field when the field cannot be
    /// compared (JSON) or `value` is `NULL` or not of the field's kind.
    ///
    /// A nullable field may scope a view: rows whose field is `NULL` are outside every scope (SQL semantics:
    /// `NULL = x` is never true), so the view neither shows nor creates them.
    pub fn new(field: F, value: impl Into<Value>) -> Result<Self, RepoError> {
        let value = value.into();
        let invalid = |rule: String| RepoError::Validation(ValidationError::new(field.name(), rule));
        if !field.kind().is_comparable() {
            return Err(invalid(format!("a {:?} field cannot scope a repository", field.kind())));
        }
        if value.kind() == ValueKind::Null {
            return Err(invalid("a scope value must not be NULL".to_owned()));
        }
        if value.kind() != field.kind() {
            return Err(invalid(format!("the scope value must be of kind {:?}", field.kind())));
        }
        Ok(Self { field, value })
    }

    /// The field.
    pub fn field(&self) -> F {
        self.field
    }

    /// The value every row in the scope has.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The condition as a filter.
    pub fn filter(&self) -> Filter<F> {
        Filter::Eq(self.field, self.value.clone())
    }

    /// Whether `row` is in the scope.
    pub fn contains<T: Record<Field = F>>(&self, row: &T) -> bool {
        self.filter().matches(&|f| row.value(f))
    }
}

/// A view of a repository holding only the rows whose scope field equals the scope value (say `user_id = ada`).
///
/// * `find_page` and `count` add the condition to the caller's filters; `find_by_id` and `exists` answer `None` /
///   `false` for a row outside the scope, exactly as for an absent one.
/// * `create` and `create_many` build each row as the store would ([`Record::build`]) and refuse one outside the
///   scope with [`RepoError::Forbidden`] before writing anything (a batch is refused whole).
/// * `update` of a row outside the scope is [`RepoError::NotFound`]; a change that would move the row out of
///   the scope is [`RepoError::Forbidden`]. For a versioned record the row is checked at `expected` and the write
///   is conditional on that version, so a concurrent change in between is a stale-version conflict, never a
///   write to a row that left the scope. For an unversioned record ([`Record::VERSIONED`] false) the check and
///   the write are two statements: a concurrent move out of the scope between them is not caught.
/// * `delete` of a row outside the scope returns `Ok(false)` and deletes nothing. The check and the delete are
///   two statements: a row moved out of the scope concurrently in between can still be deleted; inside a unit of
///   work whose isolation forbids that (SERIALIZABLE), it cannot.
pub struct Scoped<T: Record> {
    inner: Arc<dyn Repository<T>>,
    scope: Scope<T::Field>,
}

impl<T: Record> Scoped<T> {
    /// The view of `inner` limited to `scope`.
    pub fn new(inner: Arc<dyn Repository<T>>, scope: Scope<T::Field>) -> Self {
        Self { inner, scope }
    }

    /// The scope.
    pub fn scope(&self) -> &Scope<T::Field> {
        &self.scope
    }

    fn outside(&self, operation: &'static str) -> RepoError {
        RepoError::Forbidden {
            entity: T::ENTITY,
            operation,
            reason: format!("the row is outside the scope on `{}`", self.scope.field.name()),
        }
    }

    /// Checks that the row `new` would become is in the scope.
    fn check_new(&self, new: &T::New, operation: &'static str) -> Result<(), RepoError> {
        let id = match T::new_id() {
            Some(id) => id,
            None => placeholder_id::<T>()?,
        };
        let row = T::build(id, new.clone(), stored_now());
        if self.scope.contains(&row) { Ok(()) } else { Err(self.outside(operation)) }
    }

    async fn in_scope(&self, id: &T::Id) -> Result<Option<T>, RepoError> {
        Ok(self.inner.find_by_id(id).await?.filter(|row| self.scope.contains(row)))
    }
}

impl<T: Record> std::fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").field("entity", &T::ENTITY).field("scope", &self.scope).finish_non_exhaustive()
    }
}

#[async_trait]
impl<T: Record> Repository<T> for Scoped<T> {
    async fn create(&self, new: T::New) -> Result<T, RepoError> {
        self.check_new(&new, "create")?;
        self.inner.create(new).await
    }

    async fn create_many(&self, new: Vec<T::New>) -> Result<Vec<T>, RepoError> {
        new.iter().try_for_each(|n| self.check_new(n, "create_many"))?;
        self.inner.create_many(new).await
    }

    async fn find_by_id(&self, id: &T::Id) -> Result<Option<T>, RepoError> {
        self.in_scope(id).await
    }

    async fn find_page(&self, query: &Query<T::Field>) -> Result<Page<T>, RepoError> {
        let mut scoped = query.clone();
        scoped.filters.push(self.scope.filter());
        self.inner.find_page(&scoped).await
    }

    async fn update(&self, id: &T::Id, expected: Version, changes: T::Update) -> Result<T, RepoError> {
        let Some(current) = self.in_scope(id).await? else {
            return Err(RepoError::NotFound { entity: T::ENTITY, id: id.to_string() });
        };
        if T::VERSIONED && current.version() != expected {
            // Checked here so the write below only lands on the row as checked.
            let kind = ConflictKind::StaleVersion { expected, actual: current.version() };
            return Err(RepoError::Conflict { entity: T::ENTITY, kind });
        }
        let mut after = current;
        after.apply(changes.clone());
        if !self.scope.contains(&after) {
            return Err(self.outside("update"));
        }
        self.inner.update(id, expected, changes).await
    }

    async fn delete(&self, id: &T::Id) -> Result<bool, RepoError> {
        if self.in_scope(id).await?.is_none() {
            return Ok(false);
        }
        self.inner.delete(id).await
    }

    async fn exists(&self, id: &T::Id) -> Result<bool, RepoError> {
        Ok(self.in_scope(id).await?.is_some())
    }

    async fn count(&self, filters: &[Filter<T::Field>]) -> Result<u64, RepoError> {
        let mut scoped = filters.to_vec();
        scoped.push(self.scope.filter());
        self.inner.count(&scoped).await
    }
}

/// Builds access-controlled views of a repository: `repo.read_only()`, `repo.scoped(field, value)?`. Each
/// returns an `Arc<dyn Repository<T>>`, so views compose (`repo.scoped(..)?.read_only()`).
///
/// Implemented for `Arc<dyn Repository<T>>` (what [`RecordStoreExt::repo`](crate::RecordStoreExt::repo) and
/// [`TxExt::repo`](crate::TxExt::repo) hand out) and for the built-in typed repositories (`Arc<dyn
/// UserRepository>` and the others; their views offer the generic methods only).
pub trait AccessExt<T: Record> {
    /// A [`ReadOnly`] view.
    fn read_only(&self) -> Arc<dyn Repository<T>>;

    /// A [`Scoped`] view of the rows whose `field` equals `value`; [`RepoError::Validation`] naming the field
    /// when the scope is invalid (see [`Scope::new`]).
    fn scoped(&self, field: T::Field, value: impl Into<Value>) -> Result<Arc<dyn Repository<T>>, RepoError>;
}

impl<T: Record> AccessExt<T> for Arc<dyn Repository<T>> {
    fn read_only(&self) -> Arc<dyn Repository<T>> {
        Arc::new(ReadOnly::new(self.clone()))
    }

    fn scoped(&self, field: T::Field, value: impl Into<Value>) -> Result<Arc<dyn Repository<T>>, RepoError> {
        Ok(Arc::new(Scoped::new(self.clone(), Scope::new(field, value)?)))
    }
}

macro_rules! typed_access {
    ($($repo:ident => $record:ty),+) => {$(
        impl AccessExt<$record> for Arc<dyn $repo> {
            fn read_only(&self) -> Arc<dyn Repository<$record>> {
                let generic: Arc<dyn Repository<$record>> = self.clone();
                generic.read_only()
            }

            fn scoped(
                &self,
                field: <$record as Record>::Field,
                value: impl Into<Value>,
            ) -> Result<Arc<dyn Repository<$record>>, RepoError> {
                let generic: Arc<dyn Repository<$record>> = self.clone();
                generic.scoped(field, value)
            }
        }
    )+};
}

typed_access!(
    UserRepository => User,
    EntityRepository => Entity,
    CustomerRepository => Customer,
    TransactionRepository => Transaction
);
