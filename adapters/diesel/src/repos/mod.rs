//! The four repositories over Diesel, for PostgreSQL and SQLite: one generic [`DieselRepository`] whose SQL is
//! written once (a macro expanded per backend).
//!
//! Semantics are those of the in-memory fake in `cpc-testkit` (and the contract suites check it): ids are
//! UUIDv7s made here, timestamps are `now` truncated to microseconds, a new row has version 1, `create_many` is
//! one multi-row `INSERT` (all or nothing), `update` is optimistic (`WHERE id = ? AND version = ?`), pages are
//! ordered by the sort keys then id ascending, keyset cursors hold the last row's sort values and id.
//!
//! A repository works either on the pool (every call checks a connection out and commits on its own) or inside a
//! unit of work, at one level of it (the top-level transaction or a nested one): every call runs on the
//! transaction's connection, only while its level is the innermost one open; writes run in a savepoint, so a
//! failed write leaves the transaction usable, as the fake does.
//!
//! With an [`AuditConfig`] ([`DieselRepository::audited`]), every create (one row per created row), update and
//! delete (when a row was deleted) also inserts into `audit_log`, in the same transaction as the write: on the pool
//! the write and its audit rows run in a transaction of their own, inside a unit of work in one savepoint. The
//! audit time is the row's own `updated_at` (the same clock), or the deletion time.

mod audit;
mod source;
mod tx_state;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use cpc_domain::{
    Customer, Email, Entity, EntityId, EntityKind, NewEntity, Transaction, User, UserId, Username, Version,
};
use cpc_ports::{
    ConflictKind, Cursor, CustomerRepository, Direction, EntityField, EntityRepository, Field, Filter, Page,
    PageRequest, Query, Record, RepoError, Repository, Sort, TimeRange, TransactionField, TransactionRepository,
    UserField, UserRepository, Value, ValueKind,
};

pub use crate::audit_row::{AuditAction, AuditEntry};
pub use crate::values::{DbJson, DbTime, DbUuid};
pub use audit::AuditConfig;
pub use source::Mode;
pub(crate) use source::{Routed, Source, record_write};
pub(crate) use tx_state::{TxScope, roll_back_levels, tx_context};

use crate::connection::{DieselBackend, DieselPgBackend, DieselSqliteBackend};
use crate::replicas::{ReadConsistency, ReplicaSet};
use crate::sql::{EmailTable, SqlTable};
use cpc_pool::pool::Pool;

/// Rows per `INSERT` statement in `create_many` (well under both backends' bind-parameter limits); larger
/// batches run as several statements in one transaction.
const INSERT_CHUNK: usize = 500;

/// A repository of `T` rows over Diesel backend `B`. Get them from a [`DbManager`](crate::DbManager), or
/// from a unit of work's `Tx`.
pub struct DieselRepository<T, B: DieselBackend> {
    source: Source<B>,
    audit: Option<Arc<AuditConfig>>,
    record: PhantomData<fn() -> T>,
}

/// Users on PostgreSQL.
pub type PgUserRepository = DieselRepository<User, DieselPgBackend>;
/// Entities on PostgreSQL.
pub type PgEntityRepository = DieselRepository<Entity, DieselPgBackend>;
/// Customers on PostgreSQL.
pub type PgCustomerRepository = DieselRepository<Customer, DieselPgBackend>;
/// Finance transactions on PostgreSQL.
pub type PgTransactionRepository = DieselRepository<Transaction, DieselPgBackend>;
/// Users on SQLite.
pub type SqliteUserRepository = DieselRepository<User, DieselSqliteBackend>;
/// Entities on SQLite.
pub type SqliteEntityRepository = DieselRepository<Entity, DieselSqliteBackend>;
/// Customers on SQLite.
pub type SqliteCustomerRepository = DieselRepository<Customer, DieselSqliteBackend>;
/// Finance transactions on SQLite.
pub type SqliteTransactionRepository = DieselRepository<Transaction, DieselSqliteBackend>;

impl<T, B: DieselBackend> DieselRepository<T, B> {
    /// A repository on the pool: every call checks a connection out and commits on its own.
    pub fn new(pool: Pool<B>) -> Self {
        Self::on(Source::Pool(pool))
    }

    /// A repository over a replica set: writes on the primary; reads on the primary too when `consistency` is
    /// [`Strong`](ReadConsistency::Strong), else on a replica that has replayed this repository's last write
    /// (its clones share that memory; a new repository starts with none).
    pub fn replicated(set: ReplicaSet<B>, consistency: ReadConsistency) -> Self {
        match consistency {
            ReadConsistency::Strong => Self::new(set.primary().clone()),
            ReadConsistency::AllowStale => Self::on(Source::Replicas(Routed { set, session: Arc::default() })),
        }
    }

    pub(crate) fn on(source: Source<B>) -> Self {
        Self { source, audit: None, record: PhantomData }
    }

    /// A repository bound to one level of a unit of work.
    pub(crate) fn in_tx(scope: &TxScope<B>) -> Self {
        Self::on(Source::Tx(scope.clone()))
    }

    /// This repository writing an audit row for every create, update and delete (`None`: no audit trail).
    pub fn audited(mut self, audit: Option<Arc<AuditConfig>>) -> Self {
        self.audit = audit;
        self
    }

    /// How a write is wrapped: with an audit trail, the write and its audit rows must land together.
    fn write_mode(&self, without_audit: Mode) -> Mode {
        if self.audit.is_some() { Mode::Atomic } else { without_audit }
    }
}

impl<T, B: DieselBackend> Clone for DieselRepository<T, B> {
    fn clone(&self) -> Self {
        Self::on(self.source.clone()).audited(self.audit.clone())
    }
}

impl<T: Record, B: DieselBackend> fmt::Debug for DieselRepository<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.source {
            Source::Pool(_) => "pool",
            Source::Tx(_) => "unit of work",
            Source::Replicas(_) => "replicas (stale reads allowed)",
        };
        f.debug_struct("DieselRepository")
            .field("entity", &T::ENTITY)
            .field("backend", &B::NAME)
            .field("scope", &scope)
            .field("audit", &self.audit)
            .finish()
    }
}

/// The current time as both databases store it: UTC, microsecond precision.
fn now() -> cpc_domain::Timestamp {
    cpc_ports::repository::stored_now()
}

/// The id of a new row: made here, or a placeholder the database's assigned key replaces.
fn new_id<T: Record>() -> Result<T::Id, RepoError> {
    match T::new_id() {
        Some(id) => Ok(id),
        None => cpc_ports::placeholder_id::<T>(),
    }
}

fn stale<T: Record>(expected: Version, actual: Version) -> RepoError {
    RepoError::Conflict { entity: T::ENTITY, kind: ConflictKind::StaleVersion { expected, actual } }
}

fn not_found<T: Record>(id: &T::Id) -> RepoError {
    RepoError::NotFound { entity: T::ENTITY, id: id.to_string() }
}

/// The row's sort-key values followed by its id: what a cursor holds.
fn sort_key<T: Record>(row: &T, sort: &[Sort<T::Field>]) -> Vec<Value> {
    sort.iter().map(|s| row.value(s.field)).chain(std::iter::once(T::id_value(row.id()))).collect()
}

#[async_trait]
impl<T, B> Repository<T> for DieselRepository<T, B>
where
    B: DieselBackend,
    T: SqlTable<B::Conn>,
{
    async fn create(&self, new: T::New) -> Result<T, RepoError> {
        let now = now();
        let mut row = T::build(new_id::<T>()?, new, now);
        let audit = self.audit.clone();
        self.source
            .run(self.write_mode(Mode::Write), move |conn| {
                Box::pin(async move {
                    T::insert(conn, std::slice::from_mut(&mut row)).await?;
                    let at = row.updated_at().unwrap_or(now);
                    audit::record::<T, _>(conn, audit.as_deref(), AuditAction::Create, [(row.id(), at)]).await?;
                    Ok(row)
                })
            })
            .await
    }

    async fn create_many(&self, new: Vec<T::New>) -> Result<Vec<T>, RepoError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let now = now();
        let mut rows =
            new.into_iter().map(|n| Ok(T::build(new_id::<T>()?, n, now))).collect::<Result<Vec<T>, RepoError>>()?;
        // One statement is atomic by itself; several need a transaction. Rows with database-assigned keys are
        // inserted one statement each (to read every assigned key back), so a batch of them needs one too.
        let statements = if T::new_id().is_none() { rows.len() } else { rows.len().div_ceil(INSERT_CHUNK) };
        let mode = self.write_mode(if statements > 1 { Mode::Atomic } else { Mode::Write });
        let audit = self.audit.clone();
        self.source
            .run(mode, move |conn| {
                Box::pin(async move {
                    for chunk in rows.chunks_mut(INSERT_CHUNK) {
                        T::insert(conn, chunk).await?;
                    }
                    let created = rows.iter().map(|r| (r.id(), r.updated_at().unwrap_or(now)));
                    audit::record::<T, _>(conn, audit.as_deref(), AuditAction::Create, created).await?;
                    Ok(rows)
                })
            })
            .await
    }

    async fn find_by_id(&self, id: &T::Id) -> Result<Option<T>, RepoError> {
        let id = id.clone();
        self.source.read(move |conn| Box::pin(async move { T::find(conn, &id).await })).await
    }

    async fn find_page(&self, query: &Query<T::Field>) -> Result<Page<T>, RepoError> {
        query.validate()?;
        let query = query.clone();
        self.source
            .read(move |conn| {
                Box::pin(async move {
                    match &query.page {
                        PageRequest::Offset { offset, limit } => {
                            let offset = i64::try_from(*offset).unwrap_or(i64::MAX);
                            let items =
                                T::select(conn, &query.filters, &query.sort, None, offset, i64::from(*limit)).await?;
                            let total = T::count(conn, &query.filters).await?;
                            Ok(Page { items, total: Some(total), next_cursor: None })
                        }
                        PageRequest::Keyset { after, limit } => {
                            let after = match after {
                                None => None,
                                Some(cursor) => {
                                    let kinds: Vec<ValueKind> = query
                                        .sort
                                        .iter()
                                        .map(|s| s.field.kind())
                                        .chain(std::iter::once(T::ID_FIELD.kind()))
                                        .collect();
                                    Some(cursor.decode(&kinds)?)
                                }
                            };
                            let limit = *limit as usize;
                            let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
                            let mut items = T::select(conn, &query.filters, &query.sort, after, 0, fetch).await?;
                            // A next page exists exactly when a row follows the last one returned.
                            let next_cursor = if items.len() > limit {
                                items.truncate(limit);
                                items.last().map(|row| Cursor::encode(&sort_key(row, &query.sort)))
                            } else {
                                None
                            };
                            Ok(Page { items, total: None, next_cursor })
                        }
                    }
                })
            })
            .await
    }

    async fn update(&self, id: &T::Id, expected: Version, changes: T::Update) -> Result<T, RepoError> {
        let id = id.clone();
        let audit = self.audit.clone();
        self.source
            .run(self.write_mode(Mode::Write), move |conn| {
                Box::pin(async move {
                    let Some(old) = T::find(conn, &id).await? else {
                        return Err(not_found::<T>(&id));
                    };
                    if T::VERSIONED && old.version() != expected {
                        return Err(stale::<T>(expected, old.version()));
                    }
                    let stored = old.version();
                    let mut row = old;
                    let now = now();
                    row.apply(changes);
                    row.touch(stored.next(), now);
                    if T::overwrite(conn, &row, stored).await? {
                        let updated = [(row.id(), row.updated_at().unwrap_or(now))];
                        audit::record::<T, _>(conn, audit.as_deref(), AuditAction::Update, updated).await?;
                        return Ok(row);
                    }
                    // Changed or deleted since it was read.
                    match T::stored_version(conn, &id).await? {
                        None => Err(not_found::<T>(&id)),
                        Some(actual) => Err(stale::<T>(expected, actual)),
                    }
                })
            })
            .await
    }

    async fn delete(&self, id: &T::Id) -> Result<bool, RepoError> {
        let id = id.clone();
        let audit = self.audit.clone();
        self.source
            .run(self.write_mode(Mode::Write), move |conn| {
                Box::pin(async move {
                    let deleted = T::remove(conn, &id).await?;
                    if deleted {
                        audit::record::<T, _>(conn, audit.as_deref(), AuditAction::Delete, [(&id, now())]).await?;
                    }
                    Ok(deleted)
                })
            })
            .await
    }

    async fn exists(&self, id: &T::Id) -> Result<bool, RepoError> {
        let id = id.clone();
        self.source.read(move |conn| Box::pin(async move { T::exists(conn, &id).await })).await
    }

    async fn count(&self, filters: &[Filter<T::Field>]) -> Result<u64, RepoError> {
        filters.iter().try_for_each(Filter::validate)?;
        let filters = filters.to_vec();
        self.source.read(move |conn| Box::pin(async move { T::count(conn, &filters).await })).await
    }
}

#[async_trait]
impl<B> UserRepository for DieselRepository<User, B>
where
    B: DieselBackend,
    User: EmailTable<B::Conn>,
{
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        let email = email.as_str().to_owned();
        self.source.read(move |conn| Box::pin(async move { User::find_by_email(conn, &email).await })).await
    }

    async fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError> {
        let filters = vec![Filter::Eq(UserField::Username, Value::Text(username.as_str().to_owned()))];
        self.source
            .read(move |conn| Box::pin(async move { Ok(User::select(conn, &filters, &[], None, 0, 1).await?.pop()) }))
            .await
    }
}

#[async_trait]
impl<B> CustomerRepository for DieselRepository<Customer, B>
where
    B: DieselBackend,
    Customer: EmailTable<B::Conn>,
{
    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepoError> {
        let email = email.as_str().to_owned();
        self.source.read(move |conn| Box::pin(async move { Customer::find_by_email(conn, &email).await })).await
    }
}

#[async_trait]
impl<B> EntityRepository for DieselRepository<Entity, B>
where
    B: DieselBackend,
    Entity: SqlTable<B::Conn>,
{
    async fn find_by_kind(&self, kind: &EntityKind, page: PageRequest) -> Result<Page<Entity>, RepoError> {
        let query = Query {
            filters: vec![Filter::Eq(EntityField::Kind, Value::Text(kind.as_str().to_owned()))],
            sort: vec![Sort { field: EntityField::Name, direction: Direction::Asc }],
            page,
        };
        self.find_page(&query).await
    }

    async fn upsert(&self, id: &EntityId, new: NewEntity) -> Result<Entity, RepoError> {
        let id = *id;
        let audit = self.audit.clone();
        self.source
            .run(self.write_mode(Mode::Atomic), move |conn| {
                Box::pin(async move {
                    let now = now();
                    let Some(old) = Entity::find(conn, &id).await? else {
                        let mut row = Entity::build(id, new, now);
                        // A concurrent upsert that created the same id first makes this insert a duplicate.
                        Entity::insert(conn, std::slice::from_mut(&mut row)).await.map_err(|e| match e {
                            RepoError::Conflict { kind: ConflictKind::Duplicate { .. }, .. } => {
                                RepoError::Conflict { entity: "entity", kind: ConflictKind::Concurrent }
                            }
                            other => other,
                        })?;
                        audit::record::<Entity, _>(conn, audit.as_deref(), AuditAction::Create, [(&row.id, now)])
                            .await?;
                        return Ok(row);
                    };
                    let expected = old.version;
                    let mut row = old;
                    row.replace_with(new);
                    row.touch(expected.next(), now);
                    if !Entity::overwrite(conn, &row, expected).await? {
                        return Err(RepoError::Conflict { entity: "entity", kind: ConflictKind::Concurrent });
                    }
                    audit::record::<Entity, _>(
                        conn,
                        audit.as_deref(),
                        AuditAction::Update,
                        [(&row.id, row.updated_at)],
                    )
                    .await?;
                    Ok(row)
                })
            })
            .await
    }
}

#[async_trait]
impl<B> TransactionRepository for DieselRepository<Transaction, B>
where
    B: DieselBackend,
    Transaction: SqlTable<B::Conn>,
{
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
