//! How each domain model is stored: its unique keys and references, mirroring the PostgreSQL schema
//! (`users.username` unique, `users.email` and `customers.email` unique on `lower(email)`,
//! `transactions.user_id` referencing `users.id`).

use cpc_domain::{Customer, Entity, Transaction, User, UserId};
use cpc_ports::RepoError;

use super::table::{Change, RowChange, StoredRecord, Table, Tables};

impl StoredRecord for User {
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
            return Err(RepoError::still_referenced("user_id"));
        }
        Ok(())
    }
}

impl StoredRecord for Entity {
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
            return Err(RepoError::missing_reference("user_id"));
        }
        Ok(())
    }
}
