//! The row structs Diesel loads for the built-in records, turned back into domain models (whose fields are
//! validated newtypes, so a row that breaks a domain rule is reported, not returned).

use cpc_domain::{
    Customer, CustomerId, Email, Entity, EntityId, EntityKind, Money, Transaction, TransactionId, TransactionKind,
    User, UserId, Username, ValidationError, Version,
};
use cpc_ports::RepoError;
use diesel::Queryable;

type DbUuid = uuid::Uuid;
type DbTime = chrono::DateTime<chrono::Utc>;
type DbJson = serde_json::Value;

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
            id: UserId::from_uuid(r.id),
            username: Username::parse(&r.username).map_err(bad)?,
            email: Email::parse(&r.email).map_err(bad)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
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
            id: EntityId::from_uuid(r.id),
            kind: EntityKind::parse(&r.kind).map_err(|e| corrupt("entities", e))?,
            name: r.name,
            attributes: r.attributes,
            created_at: r.created_at,
            updated_at: r.updated_at,
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
            id: CustomerId::from_uuid(r.id),
            email: Email::parse(&r.email).map_err(|e| corrupt("customers", e))?,
            name: r.name,
            phone: r.phone,
            created_at: r.created_at,
            updated_at: r.updated_at,
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
            id: TransactionId::from_uuid(r.id),
            user_id: UserId::from_uuid(r.user_id),
            amount: Money::new(r.amount_minor, &r.currency).map_err(bad)?,
            kind: TransactionKind::parse(&r.kind).map_err(bad)?,
            description: r.description,
            occurred_at: r.occurred_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: Version::new(r.version),
        })
    }
}
