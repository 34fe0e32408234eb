//! Embedded migrations: the SQL under `migrations/postgres/` and `migrations/sqlite/` is compiled into the binary,
//! so an app migrates at start-up without diesel_cli.
//!
//! The functions are async and safe to call from any tokio runtime, current-thread ones included (where
//! diesel-async's own `AsyncMigrationHarness` would panic): the work runs on tokio's blocking pool with diesel's
//! synchronous [`MigrationHarness`]. For PostgreSQL it goes through an `AsyncConnectionWrapper` over an
//! `AsyncPgConnection` built from a [`PgBackend`] connection (so the configured TLS applies), driven by a small
//! private runtime that lives for the call; SQLite uses a plain `SqliteConnection` with the configured pragmas.
//!
//! Each migration runs in its own transaction. On PostgreSQL, applying and reverting hold a session advisory lock,
//! so app instances starting together migrate one after the other instead of racing.
//!
//! An app's own migrations run beside the library's: it embeds its directories as a [`MigrationSet`] and calls
//! [`run_pending_with`], [`revert_last_with`] and [`status_with`] (or [`cli`] from its own `migrate` binary). The
//! library's set ([`LIBRARY`]) and the app's then behave as one list ordered by version, under the same lock:
//! `down 1` reverts the newest migration whichever set has it. [`run_pending`], [`revert_last`] and [`status`] are
//! the same with the library's set only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cpc_diesel::DbError> {
//! use cpc_diesel::migrations::{self, MigrationTarget};
//!
//! let target = MigrationTarget::from_env()?;
//! let applied = migrations::run_pending(&target).await?;
//! println!("applied {applied:?}");
//! # Ok(()) }
//! ```

mod cli;
mod sets;

use std::fmt;

use diesel::Connection;
use diesel::backend::Backend;
use diesel::connection::SimpleConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
/// The `diesel_migrations` crate this module uses: [`embed_migrations!`] expands to `diesel_migrations::...` paths,
/// so an app that does not depend on it brings this into scope (`use cpc_diesel::migrations::diesel_migrations;`).
pub use diesel_migrations;
use diesel_migrations::MigrationHarness;
pub use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub use cli::{CliError, cli, cli_on};
use sets::CombinedSource;
pub use sets::{CHECK_SETS, LIBRARY, MigrationEntry, MigrationRef, MigrationReport, MigrationSet, MigrationState};

use super::DbError;
use cpc_pool::pool::{Backend as _, DatabaseError};
use cpc_pool::postgres::{PgBackend, PgConfig};
use cpc_pool::sqlite::{SqliteConfig, SqliteTarget};
use cpc_ports::RepoError;

/// The PostgreSQL migrations (`migrations/postgres/`), embedded at compile time.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The SQLite migrations (`migrations/sqlite/`), embedded at compile time.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The `backend` named in [`RepoError::Backend`] for a migration that failed.
pub const MIGRATIONS_BACKEND: &str = "migrations";

/// The key of the PostgreSQL advisory lock held while applying or reverting ("cpc_migr" in ASCII).
pub const PG_ADVISORY_LOCK_KEY: i64 = 0x6370_635f_6d69_6772;

/// Which database to migrate: the pool crate's [`DatabaseTarget`](cpc_pool::DatabaseTarget) (PostgreSQL or
/// SQLite, [`from_env`](cpc_pool::DatabaseTarget::from_env) by the one rule that tells them apart).
/// [`POSTGRES_MIGRATIONS`] apply to PostgreSQL, [`SQLITE_MIGRATIONS`] to SQLite. A named in-memory SQLite database
/// only lives while a connection to it is open, so migrate it while the pool that uses it exists.
pub type MigrationTarget = cpc_pool::DatabaseTarget;

/// Which migrations a database has, by version (the folder name's date-and-number prefix without dashes, e.g.
/// `20261122000001`), both lists in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationStatus {
    /// Applied, oldest first (including versions the embedded set does not know, if the database has any).
    pub applied: Vec<String>,
    /// Embedded but not yet applied, in the order [`run_pending`] would apply them.
    pub pending: Vec<String>,
}

/// Why a migration step failed: the source of a [`RepoError::Backend`] whose backend is [`MIGRATIONS_BACKEND`].
#[derive(Debug, thiserror::Error)]
pub struct MigrationFailure {
    /// What was being done: `"apply"`, `"revert"`, `"read applied migrations"` or [`CHECK_SETS`] (the sets
    /// given cannot run together).
    pub action: &'static str,
    /// The migration (`<version>_<name>`, or only the version for one no given set knows), when one was
    /// involved.
    pub migration: Option<String>,
    /// Diesel's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for MigrationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.migration {
            Some(m) => write!(f, "could not {} migration {m}: {}", self.action, self.source),
            None => write!(f, "could not {}: {}", self.action, self.source),
        }
    }
}

fn failure(
    action: &'static str,
    migration: Option<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> DbError {
    RepoError::backend(MIGRATIONS_BACKEND, MigrationFailure { action, migration, source: source.into() })
}

/// Applies every pending migration of the library's set, oldest first, each in its own transaction; returns the
/// versions applied (empty when the database is up to date). On failure the migrations before the failing one stay
/// applied and the error names the failing one. Applied versions the library does not know (an app's) are left
/// alone. [`run_pending_with`] with no app set.
pub async fn run_pending(target: &MigrationTarget) -> Result<Vec<String>, DbError> {
    Ok(versions(run_pending_with(target, &[]).await?))
}

/// Reverts the `n` most recently applied migrations (fewer if fewer are applied), newest first; returns the
/// versions reverted in that order. If one of those `n` is not the library's (an app's, applied with
/// [`run_pending_with`]), nothing is reverted and the error names it: revert it with [`revert_last_with`] and its
/// set. [`revert_last_with`] with no app set.
pub async fn revert_last(target: &MigrationTarget, n: usize) -> Result<Vec<String>, DbError> {
    Ok(versions(revert_last_with(target, n, &[]).await?))
}

/// Which migrations are applied and which are pending, the library's set only (applied versions it does not know
/// are listed as applied). Creates diesel's bookkeeping table (`__diesel_schema_migrations`) if the database has
/// none yet, as diesel_cli does. [`status_with`] with no app set, flattened.
pub async fn status(target: &MigrationTarget) -> Result<MigrationStatus, DbError> {
    Ok(status_with(target, &[]).await?.to_status())
}

/// Applies every pending migration of the library's set and of `sets`, by ascending version whichever set has it,
/// each in its own transaction and (PostgreSQL) under the migration lock; returns those applied, in that order.
///
/// Before connecting, refuses sets that cannot run together (action [`CHECK_SETS`]): a version in two sets (the
/// error names the version and both sets), two sets with one name. On failure the migrations before the failing one
/// stay applied and the error names the failing one. Applied versions no given set knows are left alone.
pub async fn run_pending_with(target: &MigrationTarget, sets: &[MigrationSet]) -> Result<Vec<MigrationRef>, DbError> {
    match execute(target, sets, Op::RunPending).await? {
        Outcome::Migrations(v) => Ok(v),
        Outcome::Report(_) => unreachable_outcome(),
    }
}

/// Reverts the `n` most recently applied migrations (by version, as diesel orders them, whichever set has them;
/// fewer if fewer are applied), newest first, under the migration lock; returns them in that order.
///
/// If one of those `n` is in none of the library's set and `sets`, nothing is reverted and the error (action
/// `"revert"`) names its version. Sets that cannot run together are refused as by [`run_pending_with`].
pub async fn revert_last_with(
    target: &MigrationTarget,
    n: usize,
    sets: &[MigrationSet],
) -> Result<Vec<MigrationRef>, DbError> {
    match execute(target, sets, Op::Revert(n)).await? {
        Outcome::Migrations(v) => Ok(v),
        Outcome::Report(_) => unreachable_outcome(),
    }
}

/// Every migration of the library's set and of `sets`, applied or pending, with its set, plus the applied versions
/// none of them knows ([`MigrationState::Unknown`]), by version. Creates diesel's bookkeeping table if the database
/// has none yet. Sets that cannot run together are refused as by [`run_pending_with`].
pub async fn status_with(target: &MigrationTarget, sets: &[MigrationSet]) -> Result<MigrationReport, DbError> {
    match execute(target, sets, Op::Status).await? {
        Outcome::Report(r) => Ok(r),
        Outcome::Migrations(_) => unreachable_outcome(),
    }
}

fn versions(migrations: Vec<MigrationRef>) -> Vec<String> {
    migrations.into_iter().map(|m| m.version).collect()
}

fn unreachable_outcome<T>() -> Result<T, DbError> {
    Err(failure("migrate", None, "internal error: unexpected outcome"))
}

#[derive(Debug, Clone, Copy)]
enum Op {
    RunPending,
    Revert(usize),
    Status,
}

enum Outcome {
    Migrations(Vec<MigrationRef>),
    Report(MigrationReport),
}

/// Checks the sets, then runs `op` on the blocking pool, so neither the caller's runtime flavor nor a slow migration
/// matters.
async fn execute(target: &MigrationTarget, sets: &[MigrationSet], op: Op) -> Result<Outcome, DbError> {
    let source = CombinedSource::for_target(target, sets)?;
    let target = target.clone();
    tokio::task::spawn_blocking(move || match &target {
        MigrationTarget::Postgres(config) => execute_postgres(config, &source, op),
        MigrationTarget::Sqlite(config) => execute_sqlite(config, &source, op),
    })
    .await
    .map_err(|e| failure("migrate", None, format!("migration worker failed: {e}")))?
}

fn execute_postgres(config: &PgConfig, source: &CombinedSource, op: Op) -> Result<Outcome, DbError> {
    // A private runtime drives the connection: its worker thread does the I/O while this blocking thread waits in
    // `Handle::block_on` (through the wrapper), which works whatever runtime the caller runs on.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cpc-migrations")
        .enable_all()
        .build()
        .map_err(|e| failure("start the migration runtime", None, e))?;
    // Migrations may build large indexes and wait for another migrator's lock: no statement or lock limit here.
    let mut unlimited = config.clone();
    unlimited.timeouts.statement = std::time::Duration::ZERO;
    unlimited.timeouts.lock = std::time::Duration::ZERO;
    let config = &unlimited;
    let connection = runtime.block_on(async {
        let client = PgBackend::new(config)?.connect().await?.into_client();
        AsyncPgConnection::try_from(client).await.map_err(|e| DatabaseError::Unavailable(e.to_string()))
    })?;
    // The wrapper takes the runtime of the current context: make that the private one.
    let _context = runtime.enter();
    let mut conn: AsyncConnectionWrapper<AsyncPgConnection> = AsyncConnectionWrapper::from(connection);
    let locks = !matches!(op, Op::Status);
    if locks {
        conn.batch_execute(&format!("SELECT pg_advisory_lock({PG_ADVISORY_LOCK_KEY})"))
            .map_err(|e| failure("take the migration lock", None, e))?;
    }
    let outcome = perform(&mut conn, source, op);
    if locks {
        // Dropping the connection releases the lock anyway; unlocking first just makes it prompt.
        let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({PG_ADVISORY_LOCK_KEY})"));
    }
    drop(conn);
    outcome
}

fn execute_sqlite(config: &SqliteConfig, source: &CombinedSource, op: Op) -> Result<Outcome, DbError> {
    config.validate()?;
    let address = config.describe();
    let refused = |message: String| DatabaseError::ConnectionRefused { address: address.clone(), message };
    let url = match &config.target {
        SqliteTarget::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| refused(format!("cannot create {}: {e}", dir.display())))?;
            }
            path.to_str().ok_or_else(|| DatabaseError::config("path", "must be valid UTF-8 for diesel"))?.to_owned()
        }
        SqliteTarget::SharedMemory(name) => format!("file:/{name}?vfs=memdb"),
    };
    let mut conn = diesel::SqliteConnection::establish(&url).map_err(|e| refused(e.to_string()))?;
    let mut pragmas = format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = {};",
        config.busy_timeout.as_millis(),
        if config.foreign_keys { "ON" } else { "OFF" }
    );
    if config.wal && matches!(config.target, SqliteTarget::File(_)) {
        pragmas.push_str(" PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    }
    // Reading the schema makes a file that is not a database fail here, as a connection error.
    pragmas.push_str(" SELECT count(*) FROM sqlite_master;");
    conn.batch_execute(&pragmas).map_err(|e| refused(e.to_string()))?;
    perform(&mut conn, source, op)
}

/// The backend-independent part, on any synchronous diesel connection.
fn perform<C, DB>(conn: &mut C, source: &CombinedSource, op: Op) -> Result<Outcome, DbError>
where
    DB: Backend,
    C: MigrationHarness<DB>,
{
    let known = source.known::<DB>()?;
    // Newest first, as diesel orders them.
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(|e| failure("read applied migrations", None, e))?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    match op {
        Op::Status => {
            let mut entries: Vec<MigrationEntry> = known
                .iter()
                .map(|k| MigrationEntry {
                    set: Some(k.set),
                    version: k.version.clone(),
                    name: Some(k.migration.name().to_string()),
                    state: if applied.contains(&k.version) { MigrationState::Applied } else { MigrationState::Pending },
                })
                .collect();
            entries.extend(
                applied.iter().filter(|v| !known.iter().any(|k| &k.version == *v)).map(|v| MigrationEntry {
                    set: None,
                    version: v.clone(),
                    name: None,
                    state: MigrationState::Unknown,
                }),
            );
            entries.sort_by(|a, b| a.version.cmp(&b.version));
            Ok(Outcome::Report(MigrationReport { entries }))
        }
        Op::RunPending => {
            // `known` is in ascending version order.
            let mut done = Vec::new();
            for k in known.iter().filter(|k| !applied.contains(&k.version)) {
                conn.run_migration(&*k.migration)
                    .map_err(|e| failure("apply", Some(k.migration.name().to_string()), e))?;
                done.push(k.to_ref());
            }
            Ok(Outcome::Migrations(done))
        }
        Op::Revert(n) => {
            // Every one of the n must be known before the first is reverted.
            let mut plan = Vec::with_capacity(n.min(applied.len()));
            for v in applied.iter().take(n) {
                let k = known.iter().find(|k| &k.version == v).ok_or_else(|| {
                    failure(
                        "revert",
                        Some(v.clone()),
                        format!(
                            "the database has it applied but none of the migration sets given ({}) has it; \
                             nothing was reverted",
                            source.names()
                        ),
                    )
                })?;
                plan.push(k);
            }
            let mut done = Vec::with_capacity(plan.len());
            for k in plan {
                conn.revert_migration(&*k.migration)
                    .map_err(|e| failure("revert", Some(k.migration.name().to_string()), e))?;
                done.push(k.to_ref());
            }
            Ok(Outcome::Migrations(done))
        }
    }
}
