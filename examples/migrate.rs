//! Applies, reverts or lists the embedded migrations of the database named by the environment.
//!
//! ```text
//! cargo run --example migrate --features diesel -- status     # the default
//! cargo run --example migrate --features diesel -- up         # apply every pending migration
//! cargo run --example migrate --features diesel -- down [N]   # revert the N (default 1) latest
//! ```
//!
//! The database: SQLite when `SQLITE_PATH` is set or `DATABASE_URL` is a `sqlite:` URL, else PostgreSQL from
//! `DATABASE_URL` and the libpq `PG*` variables. On error it prints one line to stderr and exits with status 1
//! (2 for a usage error).
//!
//! This binary runs the library's migrations only. An app's own `migrate` binary is this file with its own sets
//! (see `MigrationSet` and `migrations/README.md`): the library's and the app's then run as one list, by version,
//! under the same lock.
//!
//! ```ignore
//! static APP_POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
//! static APP_SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
//! const APP: MigrationSet = MigrationSet::new("app", &APP_POSTGRES, &APP_SQLITE);
//! // ... migrations::cli(std::env::args().skip(1), &[APP]).await
//! ```

use std::process::ExitCode;

use cpc_adapters::diesel::migrations::{self, MigrationSet};

/// The app's own migration sets: none here, this is the library's own `migrate`.
const APP_SETS: &[MigrationSet] = &[];

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    migrations::cli(std::env::args().skip(1), APP_SETS).await
}
