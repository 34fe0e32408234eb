//! How each domain model is stored: its unique keys and references, mirroring the PostgreSQL schema
//! (`users.username` unique, `users.email` and `customers.email` unique on `lower(email)`,
//! `transactions.user_id` referencing `users.id`).

use chrono::SubsecRound;
use cpc_domain::{
    Customer, CustomerId, Entity, EntityId, Timestamp, Transaction, TransactionId, User, UserId, Version,
};
use cpc_ports::{ConflictKind, RepoError};

use super::table::{Change, RowChange, StoredRecord, Table, Tables, UniqueKey, conflict};

impl StoredRecord for User {
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
    fn touch(&mut self, version: Version, now: Timestamp) {
        self.version = version;
        self.updated_at = self.updated_at.max(now);
    }
    fn unique_keys(&self) -> Vec<UniqueKey> {
        vec![("username", self.username.as_str().to_owned()), ("email", self.email.normalized())]
    }
    fn table(tables: &Tables) -> &Table<Self> {
        &tables.users
    }
    fn table_mut(tables: &mut Tables) -> &mut Table<Self> {
        &mut tables.users
    }
    fn journal(change: RowChange<Self>) -> Change {
        Change::User(change)
    }
    fn check_unreferenced(id: &UserId, tables: &Tables) -> Result<(), RepoError> {
        // ON DELETE RESTRICT on transactions.user_id.
        if tables.transactions.rows().any(|t| t.user_id == *id) {
            return Err(conflict::<Self>(ConflictKind::Reference { field: "user_id".to_owned() }));
        }
        Ok(())
    }
}

impl StoredRecord for Entity {
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
    fn touch(&mut self, version: Version, now: Timestamp) {
        self.version = version;
        self.updated_at = self.updated_at.max(now);
    }
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
    fn table(tables: &Tables) -> &Table<Self> {
        &tables.entities
    }
    fn table_mut(tables: &mut Tables) -> &mut Table<Self> {
        &mut tables.entities
    }
    fn journal(change: RowChange<Self>) -> Change {
        Change::Entity(change)
    }
}

impl StoredRecord for Customer {
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
    fn touch(&mut self, version: Version, now: Timestamp) {
        self.version = version;
        self.updated_at = self.updated_at.max(now);
    }
    fn unique_keys(&self) -> Vec<UniqueKey> {
        vec![("email", self.email.normalized())]
    }
    fn table(tables: &Tables) -> &Table<Self> {
        &tables.customers
    }
    fn table_mut(tables: &mut Tables) -> &mut Table<Self> {
        &mut tables.customers
    }
    fn journal(change: RowChange<Self>) -> Change {
        Change::Customer(change)
    }
}

impl StoredRecord for Transaction {
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
            // timestamptz keeps microseconds.
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
    fn touch(&mut self, version: Version, now: Timestamp) {
        self.version = version;
        self.updated_at = self.updated_at.max(now);
    }
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
    fn table(tables: &Tables) -> &Table<Self> {
        &tables.transactions
    }
    fn table_mut(tables: &mut Tables) -> &mut Table<Self> {
        &mut tables.transactions
    }
    fn journal(change: RowChange<Self>) -> Change {
        Change::Transaction(change)
    }
    fn check_references(&self, tables: &Tables) -> Result<(), RepoError> {
        if tables.users.get(&self.user_id).is_none() {
            return Err(conflict::<Self>(ConflictKind::Reference { field: "user_id".to_owned() }));
        }
        Ok(())
    }
}
