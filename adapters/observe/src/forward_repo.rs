//! The data ports of a [`Decorated`] port: the generic repository, the four specific ones, and the unit of work
//! (whose transactions are decorated too when [`Decorate::for_transaction`] says so).

use std::sync::Arc;

use async_trait::async_trait;
use cpc_ports::domain::{
    Customer, Email, Entity, EntityId, EntityKind, NewEntity, Transaction, User, UserId, Username, Version,
};
use cpc_ports::{
    CustomerRepository, EntityRepository, Filter, Page, PageRequest, Query, Record, RepoError, Repository, TimeRange,
    TransactionRepository, Tx, UnitOfWork, UserRepository,
};

use super::{Decorate, Decorated, Op};

#[async_trait]
impl<T: Record, P: Repository<T> + ?Sized, D: Decorate> Repository<T> for Decorated<P, D> {
    async fn create(&self, new: T::New) -> Result<T, RepoError> {
        self.decorator.around(Op::once(T::ENTITY, "create"), move || self.inner.create(new.clone())).await
    }

    async fn create_many(&self, new: Vec<T::New>) -> Result<Vec<T>, RepoError> {
        self.decorator.around(Op::once(T::ENTITY, "create_many"), move || self.inner.create_many(new.clone())).await
    }

    async fn find_by_id(&self, id: &T::Id) -> Result<Option<T>, RepoError> {
        self.decorator.around(Op::idempotent(T::ENTITY, "find_by_id"), move || self.inner.find_by_id(id)).await
    }

    async fn find_page(&self, query: &Query<T::Field>) -> Result<Page<T>, RepoError> {
        self.decorator.around(Op::idempotent(T::ENTITY, "find_page"), move || self.inner.find_page(query)).await
    }

    async fn update(&self, id: &T::Id, expected: Version, changes: T::Update) -> Result<T, RepoError> {
        let op = Op::once(T::ENTITY, "update");
        self.decorator.around(op, move || self.inner.update(id, expected, changes.clone())).await
    }

    async fn delete(&self, id: &T::Id) -> Result<bool, RepoError> {
        self.decorator.around(Op::idempotent(T::ENTITY, "delete"), move || self.inner.delete(id)).await
    }

    async fn exists(&self, id: &T::Id) -> Result<bool, RepoError> {
        self.decorator.around(Op::idempotent(T::ENTITY, "exists"), move || self.inner.exists(id)).await
    }

    async fn count(&self, filters: &[Filter<T::Field>]) -> Result<u64, RepoError> {
        self.decorator.around(Op::idempotent(T::ENTITY, "count"), move || self.inner.count(filters)).await
    }
}

#[async_trait]
impl<P: UserRepository + ?Sized, D: Decorate> UserRepository for Decorated<P, D> {
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        self.decorator
            .around(Op::idempotent(User::ENTITY, "find_by_email"), move || self.inner.find_by_email(email))
            .await
    }

    async fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError> {
        let op = Op::idempotent(User::ENTITY, "find_by_username");
        self.decorator.around(op, move || self.inner.find_by_username(username)).await
    }
}

#[async_trait]
impl<P: EntityRepository + ?Sized, D: Decorate> EntityRepository for Decorated<P, D> {
    async fn find_by_kind(&self, kind: &EntityKind, page: PageRequest) -> Result<Page<Entity>, RepoError> {
        let op = Op::idempotent(Entity::ENTITY, "find_by_kind");
        self.decorator.around(op, move || self.inner.find_by_kind(kind, page.clone())).await
    }

    async fn upsert(&self, id: &EntityId, new: NewEntity) -> Result<Entity, RepoError> {
        let op = Op::once(Entity::ENTITY, "upsert");
        self.decorator.around(op, move || self.inner.upsert(id, new.clone())).await
    }
}

#[async_trait]
impl<P: CustomerRepository + ?Sized, D: Decorate> CustomerRepository for Decorated<P, D> {
    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepoError> {
        let op = Op::idempotent(Customer::ENTITY, "find_by_email");
        self.decorator.around(op, move || self.inner.find_by_email(email)).await
    }
}

#[async_trait]
impl<P: TransactionRepository + ?Sized, D: Decorate> TransactionRepository for Decorated<P, D> {
    async fn history(
        &self,
        user: &UserId,
        range: TimeRange,
        page: PageRequest,
    ) -> Result<Page<Transaction>, RepoError> {
        let op = Op::idempotent(Transaction::ENTITY, "history");
        self.decorator.around(op, move || self.inner.history(user, range, page.clone())).await
    }
}

#[async_trait]
impl<P: UnitOfWork + ?Sized, D: Decorate> UnitOfWork for Decorated<P, D> {
    async fn begin(&self) -> Result<Box<dyn Tx>, RepoError> {
        let tx = self.decorator.around(Op::idempotent("unit_of_work", "begin"), move || self.inner.begin()).await?;
        Ok(match self.decorator.for_transaction() {
            Some(decorator) => Box::new(DecoratedTx { tx, decorator }),
            None => tx,
        })
    }
}

/// A transaction whose repositories, commit and rollback run through the decorator.
struct DecoratedTx<D> {
    tx: Box<dyn Tx>,
    decorator: D,
}

impl<D: Decorate> DecoratedTx<D> {
    /// Ends the transaction with `end` (commit or rollback), once, through the decorator.
    async fn end(self, name: &'static str, commit: bool) -> Result<(), RepoError> {
        let Self { tx, decorator } = self;
        let mut tx = Some(tx);
        let op = Op::once("unit_of_work", name);
        decorator
            .around(op, move || {
                let tx = tx.take();
                async move {
                    match tx {
                        Some(tx) if commit => tx.commit().await,
                        Some(tx) => tx.rollback().await,
                        None => Err(RepoError::TransactionFinished),
                    }
                }
            })
            .await
    }
}

#[async_trait]
impl<D: Decorate> Tx for DecoratedTx<D> {
    fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(Decorated::from_arc(self.tx.users(), self.decorator.clone()))
    }

    fn entities(&self) -> Arc<dyn EntityRepository> {
        Arc::new(Decorated::from_arc(self.tx.entities(), self.decorator.clone()))
    }

    fn customers(&self) -> Arc<dyn CustomerRepository> {
        Arc::new(Decorated::from_arc(self.tx.customers(), self.decorator.clone()))
    }

    fn transactions(&self) -> Arc<dyn TransactionRepository> {
        Arc::new(Decorated::from_arc(self.tx.transactions(), self.decorator.clone()))
    }

    /// An app record's repository, undecorated: its type is known only to the caller (decorate the repository
    /// the app gets from `TxExt::repo` with `Decorated` if it needs the same metrics).
    fn repository(&self, record: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.tx.repository(record)
    }

    fn backend_handle(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.tx.backend_handle()
    }

    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        self.end("commit", true).await
    }

    async fn rollback(self: Box<Self>) -> Result<(), RepoError> {
        self.end("rollback", false).await
    }

    async fn savepoint(&self) -> Result<Box<dyn Tx>, RepoError> {
        // Not retried: a retry after a savepoint that opened but timed out would nest a second one in it.
        let op = Op::once("unit_of_work", "savepoint");
        let tx = self.decorator.around(op, move || self.tx.savepoint()).await?;
        Ok(Box::new(DecoratedTx { tx, decorator: self.decorator.clone() }))
    }
}
