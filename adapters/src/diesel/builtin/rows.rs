//! What the repositories do to domain models that does not depend on the database: building a new row, applying a
//! partial update, moving version and `updated_at`; and the row structs Diesel loads, turned back into models.

use cpc_domain::{
    Customer, CustomerId, Email, Entity, EntityId, EntityKind, Money, Transaction, TransactionId, TransactionKind,
    User, UserId, Username, ValidationError, Version,
};
use cpc_ports::{Record, RepoError};
use diesel::Queryable;

use super::values::{DbJson, DbTime, DbUuid};

/// The current time as both databases store it: UTC, microsecond precision.
pub(crate) use cpc_ports::repository::stored_now as now;

/// A model the repositories store: a [`Record`] whose ids are UUIDs (the audit trail stores them as such). How
/// rows are built and updated is [`Record`]'s, shared with the in-memory fake. Public only because the
/// repositories' generic impls name it; it lives in a private module.
pub trait Model: Record<Id: Into<uuid::Uuid>> {}

impl<T: Record<Id: Into<uuid::Uuid>>> Model for T {}

/// Data read back from the database that breaks a domain rule (it was not written by these repositories).
fn corrupt(table: &'static str, e: ValidationError) -> RepoError {
    RepoError::backend("database", format!("stored {table} row is invalid: {e}"))
}

/// A `users` row, in `users::all_columns` order.
#[derive(Debug, Queryable)]
pub struct UserRow {
    id: DbUuid,
    username: String,
    email: String,
    created_at: DbTime,
    updated_at: DbTime,
    version: i64,
}

impl TryFrom<UserRow> for User {
    type Error = RepoError;
    fn try_from(r: UserRow) -> Result<Self, RepoError> {
        let bad = |e| corrupt("users", e);
        Ok(User {
            id: UserId::from_uuid(r.id.0),
            username: Username::parse(&r.username).map_err(bad)?,
            email: Email::parse(&r.email).map_err(bad)?,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            version: Version::new(r.version),
        })
    }
}

/// An `entities` row, in `entities::all_columns` order.
#[derive(Debug, Queryable)]
pub struct EntityRow {
    id: DbUuid,
    kind: String,
    name: String,
    attributes: DbJson,
    created_at: DbTime,
    updated_at: DbTime,
    version: i64,
}

impl TryFrom<EntityRow> for Entity {
    type Error = RepoError;
    fn try_from(r: EntityRow) -> Result<Self, RepoError> {
        Ok(Entity {
            id: EntityId::from_uuid(r.id.0),
            kind: EntityKind::parse(&r.kind).map_err(|e| corrupt("entities", e))?,
            name: r.name,
            attributes: r.attributes.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            version: Version::new(r.version),
        })
    }
}

/// A `customers` row, in `customers::all_columns` order.
#[derive(Debug, Queryable)]
pub struct CustomerRow {
    id: DbUuid,
    email: String,
    name: String,
    phone: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
    version: i64,
}

impl TryFrom<CustomerRow> for Customer {
    type Error = RepoError;
    fn try_from(r: CustomerRow) -> Result<Self, RepoError> {
        Ok(Customer {
            id: CustomerId::from_uuid(r.id.0),
            email: Email::parse(&r.email).map_err(|e| corrupt("customers", e))?,
            name: r.name,
            phone: r.phone,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            version: Version::new(r.version),
        })
    }
}

/// A `transactions` row, in `transactions::all_columns` order.
#[derive(Debug, Queryable)]
pub struct TransactionRow {
    id: DbUuid,
    user_id: DbUuid,
    amount_minor: i64,
    currency: String,
    kind: String,
    description: String,
    occurred_at: DbTime,
    created_at: DbTime,
    updated_at: DbTime,
    version: i64,
}

impl TryFrom<TransactionRow> for Transaction {
    type Error = RepoError;
    fn try_from(r: TransactionRow) -> Result<Self, RepoError> {
        let bad = |e| corrupt("transactions", e);
        Ok(Transaction {
            id: TransactionId::from_uuid(r.id.0),
            user_id: UserId::from_uuid(r.user_id.0),
            amount: Money::new(r.amount_minor, &r.currency).map_err(bad)?,
            kind: TransactionKind::parse(&r.kind).map_err(bad)?,
            description: r.description,
            occurred_at: r.occurred_at.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            version: Version::new(r.version),
        })
    }
}
