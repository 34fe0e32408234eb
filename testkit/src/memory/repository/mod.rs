//! In-memory data store: a repository for every record registered with one [`InMemoryDatabase`] (the four built-in
//! records always, an app's own with [`InMemoryDatabase::register`]) and the unit of work over them, behaving like
//! the PostgreSQL adapter: unique keys, foreign keys, optimistic versions, database-assigned keys, paging order.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cpc_ports::{Repository, UserRepository};
//! use cpc_testkit::memory::InMemoryDatabase;
//!
//! let db = InMemoryDatabase::new();
//! let users = db.users();
//! let ada = users.create(cpc_domain::NewUser::new("ada", "Ada@Example.org")?).await?;
//! let found = users.find_by_email(&cpc_domain::Email::parse("ada@example.ORG")?).await?;
//! assert_eq!(found, Some(ada));
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! An app's own record (declared with `cpc_adapters::record!`, or any hand-written [`Record`](cpc_ports::Record))
//! is [registered](InMemoryDatabase::register) once, then reached as on the databases: through
//! [`RecordStoreExt::repo`](cpc_ports::RecordStoreExt::repo), or `tx.repo::<T>()` in a unit of work. Its unique
//! keys and references (here to the built-in users) are enforced:
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use cpc_ports::{RecordStoreExt, RepoError, Repository};
//! use cpc_testkit::memory::InMemoryDatabase;
//! use uuid::Uuid;
//!
//! diesel::table! {
//!     use cpc_adapters::diesel::sql_types::*;
//!     notes (id) {
//!         id -> Uuid,
//!         author_id -> Uuid,
//!         title -> Text,
//!         created_at -> Timestamptz,
//!         updated_at -> Timestamptz,
//!         version -> BigInt,
//!     }
//! }
//!
//! #[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
//! #[diesel(table_name = notes)]
//! pub struct Note {
//!     pub id: Uuid,
//!     pub author_id: Uuid,
//!     pub title: String,
//!     pub created_at: DateTime<Utc>,
//!     pub updated_at: DateTime<Utc>,
//!     pub version: i64,
//! }
//! #[derive(Debug, Clone)]
//! pub struct NewNote {
//!     pub author_id: Uuid,
//!     pub title: String,
//! }
//! #[derive(Debug, Clone, Default)]
//! pub struct NoteChanges {
//!     pub title: Option<String>,
//! }
//!
//! cpc_adapters::record! {
//!     Note in notes as "note" {
//!         key: id: Uuid,
//!         new: NewNote,
//!         update: NoteChanges { title },
//!         fields: NoteField { author_id, title },
//!         version: version,
//!         created_at: created_at,
//!         updated_at: updated_at,
//!         unique: { "title" => |n| Some(n.title.clone()) },
//!         references: { author_id => cpc_domain::User },
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let db = InMemoryDatabase::new();
//! db.register::<Note>();
//! let notes = db.repo::<Note>()?; // Arc<dyn Repository<Note>>
//! let ada = db.users().create(cpc_domain::NewUser::new("ada", "ada@example.org")?).await?;
//! let note = notes.create(NewNote { author_id: *ada.id.as_uuid(), title: "hello".into() }).await?;
//! assert_eq!(notes.find_by_id(&note.id).await?, Some(note));
//! // No user has this id: the reference is refused, naming its field.
//! let orphan = notes.create(NewNote { author_id: Uuid::now_v7(), title: "bye".into() }).await;
//! assert!(matches!(orphan, Err(RepoError::Validation(e)) if e.field == "author_id"));
//! # Ok(()) })
//! # }
//! ```

mod repos;
mod select;
mod store;
mod table;
mod uow;

use std::fmt;

pub use repos::{
    InMemoryCustomerRepository, InMemoryEntityRepository, InMemoryRepository, InMemoryTransactionRepository,
    InMemoryUserRepository,
};
pub use uow::{InMemoryTx, InMemoryUnitOfWork};

use store::{Shared, lock};

/// One in-memory database: `users` (unique `username`, unique `lower(email)`), `entities`, `customers` (unique
/// `lower(email)`) and `transactions` (`user_id` referencing `users`, which cannot be deleted while referenced),
/// plus a table for every record [registered](Self::register) with it, keeping that record's declared rules.
///
/// Cloning shares the data; every repository and unit of work it hands out works on the same rows.
#[derive(Clone)]
pub struct InMemoryDatabase {
    shared: Shared,
}

impl Default for InMemoryDatabase {
    fn default() -> Self {
        Self { shared: repos::new_database() }
    }
}

impl InMemoryDatabase {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// The users repository.
    pub fn users(&self) -> InMemoryUserRepository {
        InMemoryRepository::committed(&self.shared)
    }

    /// The generic entities repository.
    pub fn entities(&self) -> InMemoryEntityRepository {
        InMemoryRepository::committed(&self.shared)
    }

    /// The customers repository.
    pub fn customers(&self) -> InMemoryCustomerRepository {
        InMemoryRepository::committed(&self.shared)
    }

    /// The finance transactions repository.
    pub fn transactions(&self) -> InMemoryTransactionRepository {
        InMemoryRepository::committed(&self.shared)
    }

    /// The unit of work, for writes that must land together.
    pub fn unit_of_work(&self) -> InMemoryUnitOfWork {
        InMemoryUnitOfWork::new(&self.shared)
    }

    /// Gives record `T` (an app's own) a table, so [`RecordStore::repository`](cpc_ports::RecordStore::repository),
    /// `db.repo::<T>()` and `tx.repo::<T>()` hand out its repository. Its unique keys
    /// ([`Record::unique_keys`](cpc_ports::Record::unique_keys)), references
    /// ([`Record::REFERENCES`](cpc_ports::Record::REFERENCES): `ON DELETE RESTRICT`; a reference to a record not
    /// registered here is refused at the first write, naming the field), versions and database-assigned keys
    /// (an `i64` sequence per table, never reused, like PostgreSQL's) are enforced as the databases do.
    /// Registering again is harmless. Returns `self`, to chain.
    pub fn register<T: cpc_ports::Record>(&self) -> &Self {
        repos::register::<T>(&self.shared);
        self
    }
}

/// Every registered record, the four built-in ones included.
impl cpc_ports::RecordStore for InMemoryDatabase {
    fn repository(&self, record: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        store::Store::Committed(self.shared.clone()).repository(record)
    }

    fn unit_of_work(&self) -> std::sync::Arc<dyn cpc_ports::UnitOfWork> {
        std::sync::Arc::new(InMemoryDatabase::unit_of_work(self))
    }
}

impl fmt::Debug for InMemoryDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let committed = lock(&self.shared);
        let mut out = f.debug_struct("InMemoryDatabase");
        for (entity, rows) in committed.tables.counts() {
            out.field(entity, &rows);
        }
        out.finish()
    }
}
