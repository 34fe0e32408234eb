//! mockall mocks of the traits that extend [`Repository`] (mockall's `automock` cannot see
//! supertraits, so these are spelled out). The other core traits get theirs from `automock`: [`MockCache`],
//! [`MockLock`], [`MockRateLimiter`], [`MockSessionStore`], [`MockPubSub`], [`MockHealthCheck`], [`MockJobQueue`],
//! [`MockRepository`], [`MockRecordStore`], [`MockUnitOfWork`], [`MockTx`].

use async_trait::async_trait;
use cpc_domain::{
    Customer, Email, Entity, EntityId, EntityKind, NewEntity, Transaction, User, UserId, Username, Version,
};

pub use crate::cache::MockCache;
pub use crate::health::MockHealthCheck;
pub use crate::job_queue::MockJobQueue;
pub use crate::lock::MockLock;
pub use crate::pubsub::MockPubSub;
pub use crate::rate_limit::MockRateLimiter;
pub use crate::repository::{MockRecordStore, MockRepository};
pub use crate::session::MockSessionStore;
pub use crate::uow::{MockTx, MockUnitOfWork};
use crate::{
    CustomerRepository, EntityRepository, Filter, Page, PageRequest, Query, Record, RepoError, Repository, TimeRange,
    TransactionRepository, UserRepository,
};

mockall::mock! {
    /// A mock [`UserRepository`]: expectations for the generic [`Repository`] methods and the specific ones.
    pub UserRepository {}

    #[async_trait]
    impl Repository<User> for UserRepository {
            async fn create(&self, new: <User as Record>::New) -> Result<User, RepoError>;
            async fn create_many(&self, new: Vec<<User as Record>::New>) -> Result<Vec<User>, RepoError>;
            async fn find_by_id(&self, id: &<User as Record>::Id) -> Result<Option<User>, RepoError>;
            async fn find_page(&self, query: &Query<<User as Record>::Field>) -> Result<Page<User>, RepoError>;
            async fn update(&self, id: &<User as Record>::Id, expected: Version, changes: <User as Record>::Update) -> Result<User, RepoError>;
            async fn delete(&self, id: &<User as Record>::Id) -> Result<bool, RepoError>;
            async fn exists(&self, id: &<User as Record>::Id) -> Result<bool, RepoError>;
            async fn count(&self, filters: &[Filter<<User as Record>::Field>]) -> Result<u64, RepoError>;
    }

    #[async_trait]
    impl UserRepository for UserRepository {
        async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError>;
        async fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError>;
    }
}

mockall::mock! {
    /// A mock [`EntityRepository`]: expectations for the generic [`Repository`] methods and the specific ones.
    pub EntityRepository {}

    #[async_trait]
    impl Repository<Entity> for EntityRepository {
            async fn create(&self, new: <Entity as Record>::New) -> Result<Entity, RepoError>;
            async fn create_many(&self, new: Vec<<Entity as Record>::New>) -> Result<Vec<Entity>, RepoError>;
            async fn find_by_id(&self, id: &<Entity as Record>::Id) -> Result<Option<Entity>, RepoError>;
            async fn find_page(&self, query: &Query<<Entity as Record>::Field>) -> Result<Page<Entity>, RepoError>;
            async fn update(&self, id: &<Entity as Record>::Id, expected: Version, changes: <Entity as Record>::Update) -> Result<Entity, RepoError>;
            async fn delete(&self, id: &<Entity as Record>::Id) -> Result<bool, RepoError>;
            async fn exists(&self, id: &<Entity as Record>::Id) -> Result<bool, RepoError>;
            async fn count(&self, filters: &[Filter<<Entity as Record>::Field>]) -> Result<u64, RepoError>;
    }

    #[async_trait]
    impl EntityRepository for EntityRepository {
        async fn find_by_kind(&self, kind: &EntityKind, page: PageRequest) -> Result<Page<Entity>, RepoError>;
        async fn upsert(&self, id: &EntityId, new: NewEntity) -> Result<Entity, RepoError>;
    }
}

mockall::mock! {
    /// A mock [`CustomerRepository`]: expectations for the generic [`Repository`] methods and the specific ones.
    pub CustomerRepository {}

    #[async_trait]
    impl Repository<Customer> for CustomerRepository {
            async fn create(&self, new: <Customer as Record>::New) -> Result<Customer, RepoError>;
            async fn create_many(&self, new: Vec<<Customer as Record>::New>) -> Result<Vec<Customer>, RepoError>;
            async fn find_by_id(&self, id: &<Customer as Record>::Id) -> Result<Option<Customer>, RepoError>;
            async fn find_page(&self, query: &Query<<Customer as Record>::Field>) -> Result<Page<Customer>, RepoError>;
            async fn update(&self, id: &<Customer as Record>::Id, expected: Version, changes: <Customer as Record>::Update) -> Result<Customer, RepoError>;
            async fn delete(&self, id: &<Customer as Record>::Id) -> Result<bool, RepoError>;
            async fn exists(&self, id: &<Customer as Record>::Id) -> Result<bool, RepoError>;
            async fn count(&self, filters: &[Filter<<Customer as Record>::Field>]) -> Result<u64, RepoError>;
    }

    #[async_trait]
    impl CustomerRepository for CustomerRepository {
        async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepoError>;
    }
}

mockall::mock! {
    /// A mock [`TransactionRepository`]: expectations for the generic [`Repository`] methods and the specific ones.
    pub TransactionRepository {}

    #[async_trait]
    impl Repository<Transaction> for TransactionRepository {
            async fn create(&self, new: <Transaction as Record>::New) -> Result<Transaction, RepoError>;
            async fn create_many(&self, new: Vec<<Transaction as Record>::New>) -> Result<Vec<Transaction>, RepoError>;
            async fn find_by_id(&self, id: &<Transaction as Record>::Id) -> Result<Option<Transaction>, RepoError>;
            async fn find_page(&self, query: &Query<<Transaction as Record>::Field>) -> Result<Page<Transaction>, RepoError>;
            async fn update(&self, id: &<Transaction as Record>::Id, expected: Version, changes: <Transaction as Record>::Update) -> Result<Transaction, RepoError>;
            async fn delete(&self, id: &<Transaction as Record>::Id) -> Result<bool, RepoError>;
            async fn exists(&self, id: &<Transaction as Record>::Id) -> Result<bool, RepoError>;
            async fn count(&self, filters: &[Filter<<Transaction as Record>::Field>]) -> Result<u64, RepoError>;
    }

    #[async_trait]
    impl TransactionRepository for TransactionRepository {
        async fn history(&self, user: &UserId, range: TimeRange, page: PageRequest) -> Result<Page<Transaction>, RepoError>;
    }
}
