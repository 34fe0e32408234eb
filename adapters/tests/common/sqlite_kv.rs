//! Harness for the `cpc-sqlite-kv` tests: a fresh migrated SQLite file in a temporary directory per case, a pool
//! on it and a port built on that pool.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::sqlite::{SqliteConfig, SqlitePool};
use tempfile::TempDir;

use super::harness::DynHarness;

/// A migrated database file in a temporary directory with a port on it; derefs to the port. The directory is
/// removed last.
pub struct Harness<T> {
    /// The port under test.
    pub port: T,
    /// The database file.
    pub path: PathBuf,
    /// The directory holding the file; dropping it removes the file.
    pub dir: TempDir,
}

impl<T> Deref for Harness<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.port
    }
}

impl<T> Harness<T> {
    /// The port as a trait object (`wrap` is `|p| Arc::new(p) as Arc<dyn Port>`), keeping the file alive.
    pub fn into_dyn<D: ?Sized>(self, wrap: impl FnOnce(T) -> Arc<D>) -> DynHarness<D, TempDir> {
        DynHarness::new(wrap(self.port), self.dir)
    }
}

/// A new pool of `connections` on the file at `path`.
pub async fn pool(path: &Path, connections: u32) -> SqlitePool {
    PoolFactory::create_sqlite_pool(&SqliteConfig::file(path), &PoolConfig::default().max_connections(connections))
        .await
        .unwrap()
}

/// A migrated file named `file` in a new temporary directory, and `make` run on a pool of 8 connections on it.
pub async fn harness<T>(file: &str, make: impl FnOnce(SqlitePool) -> T) -> Harness<T> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    migrations::run_pending(&MigrationTarget::Sqlite(SqliteConfig::file(&path))).await.unwrap();
    let port = make(pool(&path, 8).await);
    Harness { port, path, dir }
}
