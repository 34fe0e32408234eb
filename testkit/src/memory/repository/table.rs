//! The generic core of the in-memory data store: one [`Table`] per record type, the [`Tables`] of a database,
//! and the row changes ([`Change`]) that writes produce, apply, and (inside a unit of work) journal for commit.

use std::collections::HashMap;

use cpc_domain::{Customer, Entity, Transaction, User, Version};
use cpc_ports::{ConflictKind, Field, Record, RepoError};

pub(crate) use cpc_ports::UniqueKey;

/// What the store needs beyond [`Record`] to keep a record type: building, updating, unique keys, references.
///
/// Public only because the repositories' blanket impls name it; it lives in a private module, so nothing
/// outside this crate can name or implement it.
pub trait StoredRecord: Record {
    /// This record's table.
    fn table(tables: &Tables) -> &Table<Self>;
    /// This record's table, mutably.
    fn table_mut(tables: &mut Tables) -> &mut Table<Self>;
    /// Wraps a row change for the journal.
    fn journal(change: RowChange<Self>) -> Change;
    /// Checks the row's outgoing references (foreign keys).
    fn check_references(&self, _tables: &Tables) -> Result<(), RepoError> {
        Ok(())
    }
    /// Checks that no other row still refers to the row with this id.
    fn check_unreferenced(_id: &Self::Id, _tables: &Tables) -> Result<(), RepoError> {
        Ok(())
    }
}

/// The current time as PostgreSQL stores it: UTC, microsecond precision.
pub(crate) use cpc_ports::repository::stored_now as now;

/// The rows of one record type, with an index of their unique keys.
#[derive(Debug, Clone)]
pub struct Table<T: Record> {
    rows: HashMap<T::Id, T>,
    unique: HashMap<UniqueKey, T::Id>,
}

impl<T: Record> Default for Table<T> {
    fn default() -> Self {
        Self { rows: HashMap::new(), unique: HashMap::new() }
    }
}

impl<T: StoredRecord> Table<T> {
    /// The row with this id.
    pub(crate) fn get(&self, id: &T::Id) -> Option<&T> {
        self.rows.get(id)
    }

    /// Every row, in no particular order.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &T> {
        self.rows.values()
    }

    /// The row whose unique `field` has the (normalised) value `key`.
    pub(crate) fn find_unique(&self, field: &'static str, key: String) -> Option<&T> {
        self.unique.get(&(field, key)).and_then(|id| self.rows.get(id))
    }

    fn check_unique(&self, row: &T, except: Option<&T::Id>) -> Result<(), RepoError> {
        for key in Record::unique_keys(row) {
            if self.unique.get(&key).is_some_and(|holder| Some(holder) != except) {
                return Err(conflict::<T>(ConflictKind::Duplicate { field: key.0.to_owned() }));
            }
        }
        Ok(())
    }

    fn insert(&mut self, row: T) {
        for key in Record::unique_keys(&row) {
            self.unique.insert(key, row.id().clone());
        }
        self.rows.insert(row.id().clone(), row);
    }

    fn remove(&mut self, id: &T::Id) {
        if let Some(old) = self.rows.remove(id) {
            for key in Record::unique_keys(&old) {
                self.unique.remove(&key);
            }
        }
    }
}

/// A conflict on record type `T`.
pub(crate) fn conflict<T: Record>(kind: ConflictKind) -> RepoError {
    RepoError::Conflict { entity: T::ENTITY, kind }
}

/// Every table of one database.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub(crate) users: Table<User>,
    pub(crate) entities: Table<Entity>,
    pub(crate) customers: Table<Customer>,
    pub(crate) transactions: Table<Transaction>,
}

impl Tables {
    /// Applies changes in order, checking each like the database would; stops at the first failure, leaving the
    /// earlier ones applied (callers apply to a copy they discard on error).
    pub(crate) fn apply_each(&mut self, changes: &[Change]) -> Result<(), RepoError> {
        changes.iter().try_for_each(|change| change.apply(self))
    }

    /// Applies changes all or nothing.
    pub(crate) fn apply_all(&mut self, changes: &[Change]) -> Result<(), RepoError> {
        match changes {
            [] => Ok(()),
            // A single change checks everything before it mutates anything.
            [one] => one.apply(self),
            _ => {
                let mut next = self.clone();
                next.apply_each(changes)?;
                *self = next;
                Ok(())
            }
        }
    }
}

/// One write to one row, as it is journaled inside a unit of work and replayed on commit.
#[derive(Debug, Clone)]
pub enum RowChange<T: Record> {
    /// A new row, fully built (id, timestamps, version).
    Insert(T),
    /// The row after an update that expected the stored row to be at version `expected`.
    Replace {
        /// The version the row had when the update was made.
        expected: Version,
        /// The updated row.
        row: T,
    },
    /// The row with this id was deleted.
    Delete(T::Id),
}

impl<T: StoredRecord> RowChange<T> {
    /// Checks the change against `tables` (unique keys, references, versions) and, if it passes, applies it.
    /// Versions and existence were checked when the change was made; failing them here means a concurrent
    /// commit got in between, so that is reported as [`ConflictKind::Concurrent`].
    fn apply(&self, tables: &mut Tables) -> Result<(), RepoError> {
        match self {
            Self::Insert(row) => {
                row.check_references(tables)?;
                let table = T::table_mut(tables);
                if table.rows.contains_key(row.id()) {
                    return Err(conflict::<T>(ConflictKind::Duplicate { field: T::ID_FIELD.name().to_owned() }));
                }
                table.check_unique(row, None)?;
                table.insert(row.clone());
            }
            Self::Replace { expected, row } => {
                let stored = T::table(tables).get(row.id()).map(Record::version);
                if stored != Some(*expected) {
                    return Err(conflict::<T>(ConflictKind::Concurrent));
                }
                row.check_references(tables)?;
                let table = T::table_mut(tables);
                table.check_unique(row, Some(row.id()))?;
                table.remove(row.id());
                table.insert(row.clone());
            }
            Self::Delete(id) => {
                if T::table(tables).get(id).is_some() {
                    T::check_unreferenced(id, tables)?;
                    T::table_mut(tables).remove(id);
                }
            }
        }
        Ok(())
    }
}

/// A [`RowChange`] to any table.
#[derive(Debug, Clone)]
pub enum Change {
    /// To `users`.
    User(RowChange<User>),
    /// To `entities`.
    Entity(RowChange<Entity>),
    /// To `customers`.
    Customer(RowChange<Customer>),
    /// To `transactions`.
    Transaction(RowChange<Transaction>),
}

impl Change {
    fn apply(&self, tables: &mut Tables) -> Result<(), RepoError> {
        match self {
            Self::User(c) => c.apply(tables),
            Self::Entity(c) => c.apply(tables),
            Self::Customer(c) => c.apply(tables),
            Self::Transaction(c) => c.apply(tables),
        }
    }
}
