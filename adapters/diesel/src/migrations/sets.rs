//! Migration sets: the library's and an app's own, run together as one diesel source.

use std::fmt;

use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel_migrations::EmbeddedMigrations;

use super::{MigrationTarget, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, failure};
use crate::DbError;

/// The `action` of the [`MigrationFailure`](super::MigrationFailure) for a set of migration sets that cannot run
/// together (a duplicate version, a duplicate or empty set name). Nothing has touched the database when it is
/// returned.
pub const CHECK_SETS: &str = "check the migration sets";

/// A named set of embedded migrations, one directory per backend in diesel_cli's layout: the library's own
/// ([`LIBRARY`]) or an app's, which then run beside the library's, in version order, under the same lock.
///
/// An app embeds its directories and names the set (the name labels its migrations in [`status_with`] and in
/// errors, and must differ from every other set run with it):
///
/// ```
/// use cpc_diesel::migrations::{EmbeddedMigrations, MigrationSet, embed_migrations};
/// // `embed_migrations!` expands to `diesel_migrations::...` paths: depend on diesel_migrations 2.3 or bring the
/// // re-export into scope.
/// use cpc_diesel::migrations::diesel_migrations;
///
/// static APP_POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// static APP_SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
/// pub const APP: MigrationSet = MigrationSet::new("app", &APP_POSTGRES, &APP_SQLITE);
/// # assert_eq!(APP.name(), "app");
/// ```
///
/// (The paths are relative to the app's `Cargo.toml`; this example borrows the library's directories.) Then
/// `migrations::run_pending_with(&target, &[APP])`, or `migrations::cli(args, &[APP])` in the app's own `migrate`
/// binary.
///
/// Versions must be unique across the sets run together: give an app's migrations versions (folder dates) of its
/// own; two sets holding the same version are refused before anything runs.
///
/// [`status_with`]: super::status_with
#[derive(Clone, Copy)]
pub struct MigrationSet {
    name: &'static str,
    postgres: Option<&'static EmbeddedMigrations>,
    sqlite: Option<&'static EmbeddedMigrations>,
}

/// The library's own migrations (`migrations/postgres/`, `migrations/sqlite/`), named `"cpc-data"`. The `*_with`
/// functions always run it; listing it among their sets too is allowed and changes nothing.
pub const LIBRARY: MigrationSet = MigrationSet::new("cpc-data", &POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS);

impl MigrationSet {
    /// A set named `name` with migrations for both backends.
    pub const fn new(
        name: &'static str,
        postgres: &'static EmbeddedMigrations,
        sqlite: &'static EmbeddedMigrations,
    ) -> Self {
        Self { name, postgres: Some(postgres), sqlite: Some(sqlite) }
    }

    /// A set with PostgreSQL migrations only: it adds nothing on a SQLite target.
    pub const fn postgres_only(name: &'static str, postgres: &'static EmbeddedMigrations) -> Self {
        Self { name, postgres: Some(postgres), sqlite: None }
    }

    /// A set with SQLite migrations only: it adds nothing on a PostgreSQL target.
    pub const fn sqlite_only(name: &'static str, sqlite: &'static EmbeddedMigrations) -> Self {
        Self { name, postgres: None, sqlite: Some(sqlite) }
    }

    /// The set's name, as its migrations are labelled.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The set's migrations for `target`'s backend, if it has any.
    pub fn migrations_for(&self, target: &MigrationTarget) -> Option<&'static EmbeddedMigrations> {
        match target {
            MigrationTarget::Postgres(_) => self.postgres,
            MigrationTarget::Sqlite(_) => self.sqlite,
        }
    }

    /// Whether both sets have the same name and the same migrations (by folder name) for both backends.
    fn same_as(&self, other: &MigrationSet) -> bool {
        self.name == other.name
            && folder_names(self.postgres) == folder_names(other.postgres)
            && folder_names(self.sqlite) == folder_names(other.sqlite)
    }
}

impl fmt::Debug for MigrationSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationSet")
            .field("name", &self.name)
            .field("postgres", &folder_names(self.postgres))
            .field("sqlite", &folder_names(self.sqlite))
            .finish()
    }
}

/// The folder names (`<version>_<name>`) of an embedded directory; they do not depend on the backend.
fn folder_names(migrations: Option<&EmbeddedMigrations>) -> Option<Vec<String>> {
    migrations.map(|m| {
        MigrationSource::<Sqlite>::migrations(m)
            .map(|all| all.iter().map(|m| m.name().to_string()).collect())
            .unwrap_or_default()
    })
}

/// One migration of a set: what [`run_pending_with`](super::run_pending_with) applied or
/// [`revert_last_with`](super::revert_last_with) reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRef {
    /// The name of the set it belongs to.
    pub set: &'static str,
    /// Its version, the folder name's date-and-number prefix without dashes (`20261122000001`).
    pub version: String,
    /// Its folder name, `<version>_<name>` (`2026-11-22-000001_create_users`).
    pub name: String,
}

impl fmt::Display for MigrationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.set, self.name)
    }
}

/// Whether a migration listed by [`status_with`](super::status_with) is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied, and one of the given sets has it.
    Applied,
    /// In one of the given sets, not applied yet.
    Pending,
    /// Applied, but none of the given sets has it (another app's, or an older build's): it cannot be reverted
    /// from here.
    Unknown,
}

impl MigrationState {
    /// `"applied"`, `"pending"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for MigrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of [`MigrationReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationEntry {
    /// The set that has it; `None` for an [`Unknown`](MigrationState::Unknown) one.
    pub set: Option<&'static str>,
    /// Its version (`20261122000001`).
    pub version: String,
    /// Its folder name (`2026-11-22-000001_create_users`); `None` for an unknown one (the database records only
    /// versions).
    pub name: Option<String>,
    /// Applied, pending or unknown.
    pub state: MigrationState,
}

impl MigrationEntry {
    /// The set's name, or `"unknown"`.
    pub fn set_label(&self) -> &'static str {
        self.set.unwrap_or("unknown")
    }
}

/// Every migration of the given sets and every applied one, by version, oldest first: what
/// [`status_with`](super::status_with) returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationReport {
    /// One entry per version, in ascending version order.
    pub entries: Vec<MigrationEntry>,
}

impl MigrationReport {
    /// The entries in `state`, oldest first.
    pub fn in_state(&self, state: MigrationState) -> impl Iterator<Item = &MigrationEntry> {
        self.entries.iter().filter(move |e| e.state == state)
    }

    /// The entries of the set named `set`, oldest first.
    pub fn of_set<'a>(&'a self, set: &'a str) -> impl Iterator<Item = &'a MigrationEntry> {
        self.entries.iter().filter(move |e| e.set == Some(set))
    }

    /// The flat view [`status`](super::status) gives: applied versions (unknown ones included) and pending ones.
    pub fn to_status(&self) -> super::MigrationStatus {
        let versions = |keep: &dyn Fn(MigrationState) -> bool| {
            self.entries.iter().filter(|e| keep(e.state)).map(|e| e.version.clone()).collect()
        };
        super::MigrationStatus {
            applied: versions(&|s| s != MigrationState::Pending),
            pending: versions(&|s| s == MigrationState::Pending),
        }
    }
}

/// One migration of a [`CombinedSource`], with its set.
pub(super) struct Known<DB: Backend> {
    pub(super) set: &'static str,
    pub(super) version: String,
    pub(super) migration: Box<dyn Migration<DB>>,
}

impl<DB: Backend> Known<DB> {
    pub(super) fn to_ref(&self) -> MigrationRef {
        MigrationRef { set: self.set, version: self.version.clone(), name: self.migration.name().to_string() }
    }
}

/// The library's set and the given ones, for one backend, as one list of migrations labelled with their set. Built by [`CombinedSource::for_target`], which refuses sets that cannot run together.
#[derive(Clone)]
pub(super) struct CombinedSource {
    /// Every set's name, the library's first, those without migrations for this backend included.
    names: Vec<&'static str>,
    /// The sets that have migrations for this backend.
    sets: Vec<(&'static str, &'static EmbeddedMigrations)>,
}

impl CombinedSource {
    /// [`LIBRARY`] and `sets` for `target`'s backend. Errors (action [`CHECK_SETS`]) for an empty set name, a name
    /// given twice (listing [`LIBRARY`] itself is allowed) or a version in two sets (or twice in one).
    pub(super) fn for_target(target: &MigrationTarget, sets: &[MigrationSet]) -> Result<Self, DbError> {
        let mut source = Self { names: Vec::new(), sets: Vec::new() };
        for (i, set) in std::iter::once(&LIBRARY).chain(sets).enumerate() {
            if i > 0 && set.same_as(&LIBRARY) {
                continue;
            }
            if set.name.trim().is_empty() {
                return Err(failure(CHECK_SETS, None, "a migration set has an empty name"));
            }
            if source.names.contains(&set.name) {
                return Err(failure(
                    CHECK_SETS,
                    None,
                    format!("two migration sets are named {:?}; each set needs a name of its own", set.name),
                ));
            }
            source.names.push(set.name);
            if let Some(m) = set.migrations_for(target) {
                source.sets.push((set.name, m));
            }
        }
        match target {
            MigrationTarget::Postgres(_) => source.known::<Pg>().map(drop)?,
            MigrationTarget::Sqlite(_) => source.known::<Sqlite>().map(drop)?,
        }
        Ok(source)
    }

    /// The sets' names, for messages: `cpc-data, app`.
    pub(super) fn names(&self) -> String {
        self.names.join(", ")
    }

    /// Every migration with its set, by ascending version; an error names a version found twice and both sets.
    pub(super) fn known<DB: Backend>(&self) -> Result<Vec<Known<DB>>, DbError> {
        let mut known = Vec::new();
        for (set, migrations) in &self.sets {
            let all = MigrationSource::<DB>::migrations(*migrations)
                .map_err(|e| failure("read embedded migrations", None, e))?;
            for migration in all {
                known.push(Known { set, version: migration.name().version().to_string(), migration });
            }
        }
        known.sort_by(|a, b| a.version.cmp(&b.version));
        if let Some(pair) = known.windows(2).find(|w| w[0].version == w[1].version) {
            let (a, b) = (&pair[0], &pair[1]);
            return Err(failure(
                CHECK_SETS,
                None,
                format!(
                    "version {} is in set {:?} ({}) and in set {:?} ({}); versions must be unique across the sets \
                     run together",
                    a.version,
                    a.set,
                    a.migration.name(),
                    b.set,
                    b.migration.name()
                ),
            ));
        }
        Ok(known)
    }
}
