//! The access-control contract (`cpc_testkit::contract::access`) on the Diesel repositories: `ReadOnly` and
//! `Scoped` views over PostgreSQL (a fresh, migrated database per case) and SQLite (a fresh, migrated file per
//! case), with the ledger entries of two users (two tenants), customers of two names, and a unit of work. The
//! scope condition reaches the database as a filter, so these cases check that each backend evaluates it like
//! the in-memory fake.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use std::ops::Deref;

use cpc_adapters::diesel::DbManager;
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::pool::PoolConfig;
use cpc_domain::{Money, NewTransaction, NewUser, Transaction, TransactionKind, User, UserId};
use cpc_ports::{AccessExt, RecordStore, RecordStoreExt, RepoError, TransactionField, TxExt, UnitOfWorkExt};
use cpc_testkit::contract::repository::DataPorts;

/// Every port of one `DbManager`.
fn ports(manager: &DbManager) -> DataPorts {
    DataPorts {
        users: manager.users(),
        entities: manager.entities(),
        customers: manager.customers(),
        transactions: manager.transactions(),
        uow: manager.unit_of_work(),
    }
}

/// The ports of one migrated database, which lives (and is dropped) with it.
struct Harness<Db> {
    ports: DataPorts,
    manager: DbManager,
    _db: Db,
}

impl<Db> Deref for Harness<Db> {
    type Target = DataPorts;
    fn deref(&self) -> &DataPorts {
        &self.ports
    }
}

fn entry(user: UserId, minor: i64) -> NewTransaction {
    NewTransaction::new(user, Money::new(minor, "EUR").unwrap(), TransactionKind::Debit, "", chrono::Utc::now())
        .unwrap()
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, RepoError>, operation: &str) {
    assert!(
        matches!(&result, Err(RepoError::Forbidden { operation: op, .. }) if *op == operation),
        "expected {operation} to be forbidden, got {result:?}"
    );
}

/// The views over the repositories the brief's other paths hand out: `RecordStoreExt::repo` on the manager, and
/// `TxExt::repo` inside `UnitOfWorkExt::run`, where a refused write leaves the unit usable and committable.
async fn views_over_record_store_and_tx_repositories<Db>(h: &Harness<Db>) {
    let ada = h.users.create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    let bob = h.users.create(NewUser::new("bob", "bob@example.org").unwrap()).await.unwrap();
    let bobs = h.transactions.create(entry(bob.id, 900)).await.unwrap();
    let store: &dyn RecordStore = &h.manager;

    let adas = store.repo::<Transaction>().unwrap().scoped(TransactionField::UserId, ada.id).unwrap();
    let own = adas.create(entry(ada.id, 100)).await.unwrap();
    assert_forbidden(adas.create(entry(bob.id, 101)).await, "create");
    assert_eq!(adas.find_by_id(&bobs.id).await.unwrap(), None, "Bob's row looks absent");
    assert_eq!(adas.find_by_id(&own.id).await.unwrap(), Some(own.clone()));

    let ada_id = ada.id;
    let in_unit = store
        .unit_of_work()
        .run(|tx| {
            Box::pin(async move {
                let scoped = tx.repo::<Transaction>()?.scoped(TransactionField::UserId, ada_id)?;
                assert_forbidden(scoped.create(entry(bob.id, 102)).await, "create");
                assert!(!scoped.delete(&bobs.id).await?, "Bob's row is not deleted inside the unit either");
                let written = scoped.create(entry(ada_id, 103)).await?;
                assert_eq!(scoped.count(&[]).await?, 2, "the unit sees its write, in the scope only");
                Ok::<_, RepoError>(written)
            })
        })
        .await
        .unwrap();
    let all = store.repo::<Transaction>().unwrap();
    assert_eq!(all.find_by_id(&in_unit.id).await.unwrap(), Some(in_unit), "committed after a refused write");
    assert_eq!(adas.count(&[]).await.unwrap(), 2);
    assert_eq!(all.count(&[]).await.unwrap(), 3, "Bob still has exactly his one row");

    let users = store.repo::<User>().unwrap().read_only();
    assert_forbidden(users.delete(&ada.id).await, "delete");
    assert_eq!(users.find_by_id(&ada.id).await.unwrap(), Some(ada));
}

mod postgres {
    use cpc_adapters::postgres::PgConfig;
    use cpc_test_servers::TestDatabase;

    use super::*;

    /// A fresh database on the test server (see `cpc_test_servers` for how to point it at one), migrated.
    async fn harness() -> Harness<TestDatabase> {
        let db = TestDatabase::create().await;
        let config = PgConfig::from_url(db.url()).unwrap();
        migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
        let manager = DbManager::postgres(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
        Harness { ports: ports(&manager), manager, _db: db }
    }

    cpc_testkit::access_contract!(harness());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn views_over_record_store_and_tx_repositories() {
        super::views_over_record_store_and_tx_repositories(&harness().await).await;
    }
}

mod sqlite {
    use cpc_adapters::sqlite::SqliteConfig;

    use super::*;

    /// A fresh database file in a temporary directory, migrated.
    async fn harness() -> Harness<tempfile::TempDir> {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::file(dir.path().join("data.db"));
        migrations::run_pending(&MigrationTarget::Sqlite(config.clone())).await.unwrap();
        let manager = DbManager::sqlite(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
        Harness { ports: ports(&manager), manager, _db: dir }
    }

    cpc_testkit::access_contract!(harness());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn views_over_record_store_and_tx_repositories() {
        super::views_over_record_store_and_tx_repositories(&harness().await).await;
    }
}
