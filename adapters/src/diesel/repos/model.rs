//! What the repositories do to domain models that does not depend on the database: building a new row, applying a
//! partial update, moving version and `updated_at`; and the row structs Diesel loads, turned back into models.

use chrono::SubsecRound;
use cpc_domain::{
    Customer, CustomerId, Email, Entity, EntityId, EntityKind, Money, Timestamp, Transaction, TransactionId,
    TransactionKind, User, UserId, Username, ValidationError, Version,
};
use cpc_ports::{Record, RepoError};
use diesel::Queryable;

use super::values::{DbJson, DbTime, DbUuid};

/// The current time as both databases store it: UTC, microsecond precision.
pub(crate) fn now() -> Timestamp {
    chrono::Utc::now().trunc_subsecs(6)
}

/// A model the repositories store. Public only because the repositories' generic impls name it; it lives in a
/// private module, so nothing outside this crate can name or implement it. Ids are UUIDs (the audit trail stores
/// them as such).
pub trait Model: Record<Id: Into<uuid::Uuid>> {
    /// A fresh id.
    fn new_id() -> Self::Id;
    /// A new row from its create form, with [`Version::FIRST`] and both timestamps `now`.
    fn build(id: Self::Id, new: Self::New, now: Timestamp) -> Self;
    /// Applies a partial change to the row's own fields (not version or timestamps).
    fn apply(&mut self, changes: Self::Update);
    /// Sets the version and moves `updated_at` to `now`, never backwards.
    fn touch(&mut self, version: Version, now: Timestamp);
    /// When the row last changed (its creation time for a new row).
    fn updated_at(&self) -> Timestamp;
}

macro_rules! touch {
    () => {
        fn touch(&mut self, version: Version, now: Timestamp) {
            self.version = version;
            self.updated_at = self.updated_at.max(now);
        }
        fn updated_at(&self) -> Timestamp {
            self.updated_at
        }
    };
}

impl Model for User {
    fn new_id() -> UserId {
        UserId::new()
    }
    fn build(id: UserId, new: Self::New, now: Timestamp) -> Self {
        Self { id, username: new.username, email: new.email, created_at: now, updated_at: now, version: Version::FIRST }
    }
    fn apply(&mut self, changes: Self::Update) {
        if let Some(username) = changes.username {
            self.username = username;
        }
        if let Some(email) = changes.email {
            self.email = email;
        }
    }
    touch!();
}

impl Model for Entity {
    fn new_id() -> EntityId {
        EntityId::new()
    }
    fn build(id: EntityId, new: Self::New, now: Timestamp) -> Self {
        Self {
            id,
            kind: new.kind,
            name: new.name,
            attributes: new.attributes,
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }
    fn apply(&mut self, changes: Self::Update) {
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(attributes) = changes.attributes {
            self.attributes = attributes;
        }
    }
    touch!();
}

impl Model for Customer {
    fn new_id() -> CustomerId {
        CustomerId::new()
    }
    fn build(id: CustomerId, new: Self::New, now: Timestamp) -> Self {
        Self {
            id,
            email: new.email,
            name: new.name,
            phone: new.phone,
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }
    fn apply(&mut self, changes: Self::Update) {
        if let Some(email) = changes.email {
            self.email = email;
        }
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(phone) = changes.phone {
            self.phone = phone;
        }
    }
    touch!();
}

impl Model for Transaction {
    fn new_id() -> TransactionId {
        TransactionId::new()
    }
    fn build(id: TransactionId, new: Self::New, now: Timestamp) -> Self {
        Self {
            id,
            user_id: new.user_id,
            amount: new.amount,
            kind: new.kind,
            description: new.description,
            // Both schemas keep microseconds.
            occurred_at: new.occurred_at.trunc_subsecs(6),
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }
    fn apply(&mut self, changes: Self::Update) {
        if let Some(description) = changes.description {
            self.description = description;
        }
    }
    touch!();
}

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
