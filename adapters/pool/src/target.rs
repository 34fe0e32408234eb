//! [`DatabaseTarget`]: which database an app runs on, PostgreSQL or SQLite, told apart by one rule.

use cpc_ports::ConfigError;

use crate::postgres::PgConfig;
use crate::sqlite::SqliteConfig;

/// The database to connect to, migrate or wire: PostgreSQL or SQLite. The migrations
/// (`cpc_diesel::migrations::MigrationTarget` is this type) and the composition root (`DatabaseSettings`) read it
/// from the environment with [`DatabaseTarget::from_env`], so the rule that tells SQLite from PostgreSQL is
/// written once ([`SqliteConfig::is_chosen_by`]).
///
/// ```
/// use cpc_pool::DatabaseTarget;
///
/// let get = |k: &str| (k == "DATABASE_URL").then(|| "sqlite://data/app.db".to_owned());
/// let target = DatabaseTarget::from_lookup(get)?;
/// assert_eq!((target.backend_name(), target.server()), ("sqlite", "SQLite"));
/// assert!(matches!(target, DatabaseTarget::Sqlite(_)));
/// # Ok::<_, cpc_ports::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// A PostgreSQL database.
    Postgres(PgConfig),
    /// A SQLite database. A named in-memory database only lives while a connection to it is open.
    Sqlite(SqliteConfig),
}

impl DatabaseTarget {
    /// SQLite when `SQLITE_PATH` is set or `DATABASE_URL` is a `sqlite:` URL ([`SqliteConfig::from_env`]), else
    /// PostgreSQL ([`PgConfig::from_env`]). Errors name the variable at fault.
    ///
    /// # Errors
    /// A missing or malformed variable, named.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`DatabaseTarget::from_env`] over any variable lookup.
    ///
    /// # Errors
    /// A missing or malformed variable, named.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(if SqliteConfig::is_chosen_by(&get) {
            Self::Sqlite(SqliteConfig::from_lookup(get)?)
        } else {
            Self::Postgres(PgConfig::from_lookup(get)?)
        })
    }

    /// `"postgres"` or `"sqlite"`, for metric labels and command output.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// `"PostgreSQL"` or `"SQLite"`, for messages.
    pub fn server(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "PostgreSQL",
            Self::Sqlite(_) => "SQLite",
        }
    }

    /// Where the database is (`host:port/database`, a file path or `:memory:<name>`), for messages; never a
    /// password.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(c) => format!("{}/{}", c.address(), c.database),
            Self::Sqlite(c) => c.describe(),
        }
    }
}

impl From<PgConfig> for DatabaseTarget {
    fn from(c: PgConfig) -> Self {
        Self::Postgres(c)
    }
}

impl From<SqliteConfig> for DatabaseTarget {
    fn from(c: SqliteConfig) -> Self {
        Self::Sqlite(c)
    }
}
