//! The seeds' `db_abstraction` over Diesel (feature `diesel`): schema, embedded migrations, repositories and the
//! unit of work, for PostgreSQL (`AsyncPgConnection`) and SQLite (`SyncConnectionWrapper<SqliteConnection>`).

pub mod migrations;
pub mod schema;

/// The seeds' unified `DbError`: the data ports' [`RepoError`](cpc_ports::RepoError). Diesel and driver errors are
/// mapped into its semantic variants (unique violation: `Conflict`, missing row: `NotFound`, lost connection:
/// `Unavailable`...), so callers handle one type whatever the backend.
pub type DbError = cpc_ports::RepoError;
