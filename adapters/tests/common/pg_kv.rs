//! Harness for the `cpc-pg-kv` tests: a fresh migrated PostgreSQL database per case, a pool on it and a port built
//! on that pool.

use std::ops::Deref;
use std::sync::Arc;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgPool};
use cpc_test_servers::TestDatabase;

use super::harness::DynHarness;

/// A migrated database with a port on it; derefs to the port. The database is dropped last.
pub struct Harness<T> {
    /// The port under test.
    pub port: T,
    /// The pool the port was built on.
    pub pool: PgPool,
    /// The database; dropping it drops the database.
    pub db: TestDatabase,
}

impl<T> Deref for Harness<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.port
    }
}

impl<T> Harness<T> {
    /// The port as a trait object (`wrap` is `|p| Arc::new(p) as Arc<dyn Port>`), keeping the database alive.
    pub fn into_dyn<D: ?Sized>(self, wrap: impl FnOnce(T) -> Arc<D>) -> DynHarness<D, TestDatabase> {
        DynHarness::new(wrap(self.port), self.db)
    }
}

/// A new pool of `connections` on `db`.
pub async fn pool_of(db: &TestDatabase, connections: u32) -> PgPool {
    let config = PgConfig::from_url(db.url()).unwrap();
    PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(connections)).await.unwrap()
}

/// A new pool of 16 connections on `db`.
pub async fn pool(db: &TestDatabase) -> PgPool {
    pool_of(db, 16).await
}

/// A fresh database with the library's migrations run on it.
pub async fn migrated_database() -> TestDatabase {
    let db = TestDatabase::create().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config)).await.unwrap();
    db
}

/// A migrated database and `make` run on a pool of `connections` on it.
pub async fn harness_on<T>(connections: u32, make: impl FnOnce(PgPool) -> T) -> Harness<T> {
    let db = migrated_database().await;
    let pool = pool_of(&db, connections).await;
    Harness { port: make(pool.clone()), pool, db }
}

/// A migrated database and `make` run on a pool of 16 connections on it.
pub async fn harness<T>(make: impl FnOnce(PgPool) -> T) -> Harness<T> {
    harness_on(16, make).await
}
