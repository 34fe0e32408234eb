//! In-memory data store: the four repositories and the unit of work over one [`InMemoryDatabase`], behaving like
//! the PostgreSQL adapter with the project's schema.
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

mod records;
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
/// `lower(email)`) and `transactions` (`user_id` referencing `users`, which cannot be deleted while referenced).
///
/// Cloning shares the data; every repository and unit of work it hands out works on the same rows.
#[derive(Clone, Default)]
pub struct InMemoryDatabase {
    shared: Shared,
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
}

/// The four built-in records (app records arrive with the generic tables).
impl cpc_ports::RecordStore for InMemoryDatabase {
    fn repository(&self, record: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        use std::any::TypeId;
        use std::sync::Arc;
        fn boxed<T: cpc_ports::Record>(repo: InMemoryRepository<T>) -> Option<Box<dyn std::any::Any + Send>>
        where
            InMemoryRepository<T>: cpc_ports::Repository<T>,
        {
            let repo: Arc<dyn cpc_ports::Repository<T>> = Arc::new(repo);
            Some(Box::new(repo))
        }
        match record {
            r if r == TypeId::of::<cpc_domain::User>() => boxed(self.users()),
            r if r == TypeId::of::<cpc_domain::Entity>() => boxed(self.entities()),
            r if r == TypeId::of::<cpc_domain::Customer>() => boxed(self.customers()),
            r if r == TypeId::of::<cpc_domain::Transaction>() => boxed(self.transactions()),
            _ => None,
        }
    }

    fn unit_of_work(&self) -> std::sync::Arc<dyn cpc_ports::UnitOfWork> {
        std::sync::Arc::new(InMemoryDatabase::unit_of_work(self))
    }
}

impl fmt::Debug for InMemoryDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let committed = lock(&self.shared);
        let t = &committed.tables;
        f.debug_struct("InMemoryDatabase")
            .field("users", &t.users.rows().count())
            .field("entities", &t.entities.rows().count())
            .field("customers", &t.customers.rows().count())
            .field("transactions", &t.transactions.rows().count())
            .finish()
    }
}
