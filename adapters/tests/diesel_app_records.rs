//! The record contract (`cpc_testkit::record_contract!`) on two app records declared with `record!`
//! (`app_contract`), on PostgreSQL and SQLite. Each case gets its own database (a fresh PostgreSQL database, a fresh SQLite file).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "diesel")]

mod app_contract;

use std::any::{Any, TypeId};
use std::sync::Arc;

use app_contract::{Project, Projects, Task, Tasks};
use cpc_adapters::diesel::{DbManager, DbPool};
use cpc_adapters::pool::PoolConfig;
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_ports::{RecordStore, UnitOfWork};
use cpc_test_servers::TestDatabase;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};

const PG_TABLES: &str = "
CREATE TABLE projects (
    id UUID PRIMARY KEY, user_id UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    code TEXT NOT NULL UNIQUE, name TEXT NOT NULL, rank INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, version BIGINT NOT NULL);
CREATE TABLE tasks (
    id BIGSERIAL PRIMARY KEY, project_id UUID NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    title TEXT NOT NULL, done BOOLEAN NOT NULL);";

const SQLITE_TABLES: &str = "
CREATE TABLE projects (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    code TEXT NOT NULL UNIQUE, name TEXT NOT NULL, rank INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    title TEXT NOT NULL, done BOOLEAN NOT NULL);";

/// A store that keeps its database (a `TestDatabase`, a temporary directory) alive as long as it is used.
struct Held {
    db: DbManager,
    _guard: Box<dyn Any + Send + Sync>,
}

impl RecordStore for Held {
    fn repository(&self, record: TypeId) -> Option<Box<dyn Any + Send>> {
        RecordStore::repository(&self.db, record)
    }
    fn unit_of_work(&self) -> Arc<dyn UnitOfWork> {
        RecordStore::unit_of_work(&self.db)
    }
}

fn registered(db: DbManager, guard: Box<dyn Any + Send + Sync>) -> Arc<dyn RecordStore> {
    db.register::<Project>().register::<Task>();
    Arc::new(Held { db, _guard: guard })
}

/// A migrated PostgreSQL database with the app's tables and records.
async fn postgres() -> Arc<dyn RecordStore> {
    let test_db = TestDatabase::create().await;
    let config = PgConfig::from_url(test_db.url()).unwrap();
    let target = cpc_adapters::diesel::migrations::MigrationTarget::Postgres(config.clone());
    cpc_adapters::diesel::migrations::run_pending(&target).await.unwrap();
    let mut conn = diesel_async::AsyncPgConnection::establish(test_db.url()).await.unwrap();
    conn.batch_execute(PG_TABLES).await.unwrap();
    let db = DbManager::postgres(&config, &PoolConfig::default()).await.unwrap();
    registered(db, Box::new(test_db))
}

/// A migrated SQLite file with the app's tables and records.
async fn sqlite() -> Arc<dyn RecordStore> {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("app.db"));
    let target = cpc_adapters::diesel::migrations::MigrationTarget::Sqlite(config.clone());
    cpc_adapters::diesel::migrations::run_pending(&target).await.unwrap();
    let db = DbManager::sqlite(&config, &PoolConfig::default()).await.unwrap();
    let DbPool::Sqlite(pool) = db.pool() else { unreachable!() };
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(SQLITE_TABLES).await.unwrap();
    drop(conn);
    registered(db, Box::new(dir))
}

mod projects_on_postgres {
    use super::*;
    cpc_testkit::record_contract!(Projects, postgres());
}

mod projects_on_sqlite {
    use super::*;
    cpc_testkit::record_contract!(Projects, sqlite());
}

mod tasks_on_postgres {
    use super::*;
    cpc_testkit::record_contract!(Tasks, postgres());
}

mod tasks_on_sqlite {
    use super::*;
    cpc_testkit::record_contract!(Tasks, sqlite());
}
