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
    _manager: DbManager,
    _db: Db,
}

impl<Db> Deref for Harness<Db> {
    type Target = DataPorts;
    fn deref(&self) -> &DataPorts {
        &self.ports
    }
}

mod postgres {
    use cpc_adapters::postgres::DatabaseConfig;
    use cpc_testkit::harness::TestDatabase;

    use super::*;

    /// A fresh database on the test server (see `cpc_testkit::harness` for how to point it at one), migrated.
    async fn harness() -> Harness<TestDatabase> {
        let db = TestDatabase::create().await;
        let config = DatabaseConfig::from_url(db.url()).unwrap();
        migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
        let manager = DbManager::postgres(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
        Harness { ports: ports(&manager), _manager: manager, _db: db }
    }

    cpc_testkit::access_contract!(harness());
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
        Harness { ports: ports(&manager), _manager: manager, _db: dir }
    }

    cpc_testkit::access_contract!(harness());
}
