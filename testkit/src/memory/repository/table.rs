//! The generic core of the in-memory data store: one [`Table`] per record type, the [`Tables`] of a database
//! (every record registered with it), and the row changes ([`Change`]) that writes
//! produce, apply, and (inside a unit of work) journal for commit.
//!
//! Every rule is the record's own declaration, as the databases enforce it: unique keys from
//! [`Record::unique_keys`], foreign keys (`ON DELETE RESTRICT`) from [`Record::REFERENCES`], optimistic versions
//! where [`Record::VERSIONED`], keys the database assigns (an `i64` sequence per table) where
//! [`Record::new_id`] gives none.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use cpc_domain::{ValidationError, Version};
use cpc_ports::{ConflictKind, Field, Record, RecordId, RepoError, Value, unknown_record};

pub(crate) use cpc_ports::UniqueKey;

/// Opens the repository of one record type on a store (given type-erased, as the repository layer's `Store`),
/// as `Box<Arc<dyn Repository<T>>>`; `None` if the store is not one the opener knows. Supplied with each table by
/// the layer that knows the repository type, so this one need not.
pub(crate) type Opener = fn(&dyn Any) -> Option<Box<dyn Any + Send>>;

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

impl<T: Record> Table<T> {
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

/// What the store needs of a table whatever its record type.
trait AnyTable: Send + Sync {
    fn entity(&self) -> &'static str;
    fn len(&self) -> usize;
    fn clone_box(&self) -> Box<dyn AnyTable>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Whether a row has this id.
    fn contains(&self, id: &Value) -> bool;
    /// The field through which a row refers to the `entity` row with this id, if any row does.
    fn referrer(&self, entity: &str, id: &Value) -> Option<&'static str>;
}

impl<T: Record> AnyTable for Table<T> {
    fn entity(&self) -> &'static str {
        T::ENTITY
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn clone_box(&self) -> Box<dyn AnyTable> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn contains(&self, id: &Value) -> bool {
        T::Id::from_value(id).is_some_and(|id| self.rows.contains_key(&id))
    }
    fn referrer(&self, entity: &str, id: &Value) -> Option<&'static str> {
        T::REFERENCES.iter().filter(|r| r.to == entity).find_map(|r| {
            let field = T::Field::from_name(r.field)?;
            self.rows.values().any(|row| row.value(field) == *id).then_some(r.field)
        })
    }
}

/// The next value of each table's key sequence (for keys the database assigns). Shared by every copy of a
/// database's tables and never rolled back, like a PostgreSQL sequence: ids are not reused.
type Sequences = Arc<Mutex<HashMap<TypeId, i64>>>;

/// Every table of one database (the four built-in records and any the app registered), with how to open each
/// record's repository.
#[derive(Default)]
pub struct Tables {
    tables: HashMap<TypeId, Box<dyn AnyTable>>,
    openers: HashMap<TypeId, Opener>,
    sequences: Sequences,
}

impl Clone for Tables {
    fn clone(&self) -> Self {
        let tables = self.tables.iter().map(|(id, table)| (*id, table.clone_box())).collect();
        Self { tables, openers: self.openers.clone(), sequences: self.sequences.clone() }
    }
}

impl fmt::Debug for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts: Vec<_> = self.tables.values().map(|t| (t.entity(), t.len())).collect();
        counts.sort_unstable();
        f.debug_map().entries(counts).finish()
    }
}

impl Tables {
    /// Adds an empty table for `T`, whose repositories `open` opens, unless it has one. Returns whether it was
    /// added.
    pub(crate) fn register<T: Record>(&mut self, open: Opener) -> bool {
        if self.tables.contains_key(&TypeId::of::<T>()) {
            return false;
        }
        self.tables.insert(TypeId::of::<T>(), Box::new(Table::<T>::default()));
        self.openers.insert(TypeId::of::<T>(), open);
        true
    }

    /// The rows of each table, by record name, sorted.
    pub(crate) fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<_> = self.tables.values().map(|t| (t.entity(), t.len())).collect();
        counts.sort_unstable();
        counts
    }

    /// `T`'s table; [`unknown_record`] when `T` was not registered.
    pub(crate) fn table<T: Record>(&self) -> Result<&Table<T>, RepoError> {
        self.tables
            .get(&TypeId::of::<T>())
            .and_then(|t| t.as_any().downcast_ref::<Table<T>>())
            .ok_or_else(unknown_record::<T>)
    }

    fn table_mut<T: Record>(&mut self) -> Result<&mut Table<T>, RepoError> {
        self.tables
            .get_mut(&TypeId::of::<T>())
            .and_then(|t| t.as_any_mut().downcast_mut::<Table<T>>())
            .ok_or_else(unknown_record::<T>)
    }

    /// The repository of the record whose `TypeId` is `record`, on `store`, if it has a table.
    pub(crate) fn repository(&self, record: TypeId, store: &dyn Any) -> Option<Box<dyn Any + Send>> {
        self.openers.get(&record).and_then(|open| open(store))
    }

    /// A fresh id for a new `T` row: the record's own (a UUID), or the next value of the table's sequence.
    pub(crate) fn new_id<T: Record>(&self) -> Result<T::Id, RepoError> {
        if let Some(id) = T::new_id() {
            return Ok(id);
        }
        let mut sequences = self.sequences.lock().unwrap_or_else(PoisonError::into_inner);
        let next = sequences.entry(TypeId::of::<T>()).or_insert(1);
        let id = T::Id::from_value(&Value::Int(*next)).map_or_else(|| cpc_ports::placeholder_id::<T>(), Ok)?;
        *next += 1;
        Ok(id)
    }

    /// Checks the row's references (foreign keys): each names an existing row of a registered record, or is null.
    fn check_references<T: Record>(&self, row: &T) -> Result<(), RepoError> {
        for reference in T::REFERENCES {
            let Some(field) = T::Field::from_name(reference.field) else {
                return Err(RepoError::Validation(ValidationError::new(
                    reference.field,
                    format!("is declared as a reference but is not a field of {}", T::ENTITY),
                )));
            };
            let value = row.value(field);
            if value == Value::Null {
                continue;
            }
            let Some(target) = self.tables.values().find(|t| t.entity() == reference.to) else {
                return Err(RepoError::Validation(ValidationError::new(
                    reference.field,
                    format!("refers to record {:?}, which is not registered with this database", reference.to),
                )));
            };
            if !target.contains(&value) {
                return Err(RepoError::missing_reference(reference.field));
            }
        }
        Ok(())
    }

    /// Checks that no row of any table still refers to the `T` row with this id (`ON DELETE RESTRICT`).
    fn check_unreferenced<T: Record>(&self, id: &T::Id) -> Result<(), RepoError> {
        let id = T::id_value(id);
        match self.tables.values().find_map(|t| t.referrer(T::ENTITY, &id)) {
            Some(field) => Err(RepoError::still_referenced(field)),
            None => Ok(()),
        }
    }

    /// Applies changes in order, checking each like the database would; stops at the first failure, leaving the
    /// earlier ones applied (callers apply to a copy they discard on error).
    pub(crate) fn apply_each(&mut self, changes: &[Change]) -> Result<(), RepoError> {
        changes.iter().try_for_each(|change| change.0.apply(self))
    }

    /// Applies changes all or nothing.
    pub(crate) fn apply_all(&mut self, changes: &[Change]) -> Result<(), RepoError> {
        match changes {
            [] => Ok(()),
            // A single change checks everything before it mutates anything.
            [one] => one.0.apply(self),
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

/// A [`RowChange`] of any record type.
trait AnyChange: fmt::Debug + Send + Sync {
    fn apply(&self, tables: &mut Tables) -> Result<(), RepoError>;
}

impl<T: Record> AnyChange for RowChange<T> {
    /// Checks the change against `tables` (unique keys, references, versions) and, if it passes, applies it.
    /// Versions and existence were checked when the change was made; failing them here means a concurrent
    /// commit got in between, so that is reported as [`ConflictKind::Concurrent`].
    fn apply(&self, tables: &mut Tables) -> Result<(), RepoError> {
        match self {
            Self::Insert(row) => {
                tables.check_references(row)?;
                let table = tables.table_mut::<T>()?;
                if table.rows.contains_key(row.id()) {
                    return Err(conflict::<T>(ConflictKind::Duplicate { field: T::ID_FIELD.name().to_owned() }));
                }
                table.check_unique(row, None)?;
                table.insert(row.clone());
            }
            Self::Replace { expected, row } => {
                let stored = tables.table::<T>()?.get(row.id()).map(Record::version);
                // Without versions the last write wins; the row must still be there.
                let current = if T::VERSIONED { stored == Some(*expected) } else { stored.is_some() };
                if !current {
                    return Err(conflict::<T>(ConflictKind::Concurrent));
                }
                tables.check_references(row)?;
                let table = tables.table_mut::<T>()?;
                table.check_unique(row, Some(row.id()))?;
                table.remove(row.id());
                table.insert(row.clone());
            }
            Self::Delete(id) => {
                if tables.table::<T>()?.get(id).is_some() {
                    tables.check_unreferenced::<T>(id)?;
                    tables.table_mut::<T>()?.remove(id);
                }
            }
        }
        Ok(())
    }
}

/// A [`RowChange`] to any table, as journaled.
#[derive(Debug, Clone)]
pub struct Change(Arc<dyn AnyChange>);

impl<T: Record> From<RowChange<T>> for Change {
    fn from(change: RowChange<T>) -> Self {
        Self(Arc::new(change))
    }
}
