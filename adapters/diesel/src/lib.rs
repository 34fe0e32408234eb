//! # cpc-diesel
//!
//! The data layer over Diesel (feature `diesel`): schema, embedded migrations, repositories and the
//! unit of work, for PostgreSQL (`AsyncPgConnection`) and SQLite (`SyncConnectionWrapper<SqliteConnection>`).
//!
//! * [`DbManager`]: one pool, the four repositories and the unit of work, as port trait objects; optionally
//!   with an audit trail ([`AuditConfig`]); a health check of its pool.
//! * [`connection`]: Diesel connections as pool backends ([`DieselPgBackend`], [`DieselSqliteBackend`]).
//! * [`repos`]: [`DieselRepository`], implementing the repository ports on both backends.
//! * [`uow`]: [`DieselUnitOfWork`] and its transactions.
//! * [`jobs`]: background jobs enqueued inside a transaction, committed with it ([`TxJobsExt::jobs`]).
//! * [`replicas`]: PostgreSQL read replicas: [`ReplicaSet`], [`ReplicaConfig`], [`ReadConsistency`].
//! * [`error`]: how Diesel errors become [`DbError`] variants.
//! * [`migrations`]: the embedded migrations: run pending, revert the last N, status.

mod audit_row;
pub mod builtin;
pub mod connection;
pub mod error;
pub mod jobs;
pub mod manager;
pub mod migrations;
pub mod records;
pub mod replicas;
pub mod repos;
pub mod schema;
pub mod sql;
pub mod sql_types;
pub mod uow;
mod values;

pub use connection::{AsyncSqliteConnection, DieselBackend, DieselPgBackend, DieselSqliteBackend, ReplicaState};
pub use jobs::{TxJobs, TxJobsExt};
pub use manager::{DbManager, DbPool};
pub use records::{DieselRecord, Records};
pub use replicas::{ReadConsistency, ReplicaConfig, ReplicaPolicy, ReplicaSet};
pub use repos::{AuditAction, AuditConfig, DieselRepository};
pub use uow::{DieselConn, DieselTx, DieselUnitOfWork, PgUnitOfWork, SqliteUnitOfWork, with_connection};

/// The unified `DbError`: the data ports' [`RepoError`](cpc_ports::RepoError). Diesel and driver errors are
/// mapped into its semantic variants (unique violation: `Conflict`, missing row: `NotFound`, lost connection:
/// `Unavailable`...), so callers handle one type whatever the backend.
pub type DbError = cpc_ports::RepoError;
