//! [`Settings`]: which backends to wire, read from the environment or built by hand.

use std::path::{Path, PathBuf};

use cpc_adapters::diesel::ReplicaConfig;
use cpc_adapters::diesel::replicas::REPLICA_URLS_ENV;
use cpc_adapters::pool::{DatabaseTarget, PoolConfig};
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::redis::RedisConfig;
use cpc_adapters::sqlite::{SqliteConfig, SqliteTarget};

use cpc_ports::ConfigError;

use super::WiringError;

/// Where the embedded database lives when `CPC_DATA_DIR` is not set (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = ".cpc-data";

/// The database to wire.
#[derive(Debug, Clone)]
pub enum DatabaseSettings {
    /// SQLite (the embedded default: a file under the data directory, created with its directory if missing).
    Sqlite(SqliteConfig),
    /// PostgreSQL.
    Postgres(PgConfig),
    /// PostgreSQL with read replicas: writes, units of work and strong reads on the primary, reads of
    /// [`Ports::stale_reads`](super::Ports::stale_reads) views on a replica. Its `pool` is replaced by
    /// [`Settings::pool`] when wired.
    PostgresWithReplicas(ReplicaConfig),
}

impl From<DatabaseTarget> for DatabaseSettings {
    fn from(target: DatabaseTarget) -> Self {
        match target {
            DatabaseTarget::Postgres(c) => Self::Postgres(c),
            DatabaseTarget::Sqlite(c) => Self::Sqlite(c),
        }
    }
}

impl DatabaseSettings {
    /// `"SQLite"` or `"PostgreSQL"`.
    pub fn server(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres(_) | Self::PostgresWithReplicas(_) => "PostgreSQL",
        }
    }

    /// Where the database is (`host:port/database` or a path), for messages; never a password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(c) => c.describe(),
            Self::Postgres(c) => format!("{}/{}", c.address(), c.database),
            Self::PostgresWithReplicas(c) => {
                let replicas: Vec<String> =
                    c.replicas.iter().map(|r| format!("{}/{}", r.address(), r.database)).collect();
                format!("{}/{} (replicas: {})", c.primary.address(), c.primary.database, replicas.join(", "))
            }
        }
    }
}

/// What [`wire`](super::wire) builds: a database (always) and Redis (optional; the in-process implementations
/// of the key-value ports otherwise).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database.
    pub database: DatabaseSettings,
    /// Its connection pool.
    pub pool: PoolConfig,
    /// Redis for cache, lock, rate limiter, sessions and pub/sub; `None` wires the single-process in-memory ones.
    pub redis: Option<RedisConfig>,
}

impl Settings {
    /// The embedded default: SQLite at `<data_dir>/<app>.db`, in-process key-value ports, default pool.
    pub fn embedded(app: &str, data_dir: impl AsRef<Path>) -> Self {
        Self {
            database: DatabaseSettings::Sqlite(SqliteConfig::file(data_dir.as_ref().join(format!("{app}.db")))),
            pool: PoolConfig::default(),
            redis: None,
        }
    }

    /// Reads the environment (see [`Settings::from_lookup`]).
    pub fn from_env(app: &str) -> Result<Self, WiringError> {
        Self::from_lookup(app, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// The settings for `app` from a variable lookup:
    ///
    /// * database: SQLite when `SQLITE_PATH` is set or `DATABASE_URL` starts with `sqlite:`; PostgreSQL when
    ///   `DATABASE_URL` is set otherwise (refined by the libpq `PG*` variables, see `PgConfig::from_env`);
    ///   else the embedded default, `<CPC_DATA_DIR or .cpc-data>/<app>.db`. The pool reads `DB_POOL_*`. With
    ///   PostgreSQL, `DATABASE_REPLICA_URLS` (comma-separated) adds read replicas (and `DB_REPLICA_*` tunes them,
    ///   see `ReplicaConfig::from_env`); with SQLite it is an error.
    /// * Redis when `REDIS_URL` or `REDIS_CLUSTER_URLS` (a Redis Cluster) is set (with `REDIS_NAMESPACE`, default
    ///   `cpc:<app>:`, and the other `REDIS_*` variables of `RedisConfig::from_env`); else the in-process
    ///   implementations.
    ///
    /// A malformed variable is a [`WiringError::Config`] naming it.
    pub fn from_lookup(app: &str, get: impl Fn(&str) -> Option<String>) -> Result<Self, WiringError> {
        let url = get("DATABASE_URL");
        let replicas = get(REPLICA_URLS_ENV).is_some_and(|v| !v.trim().is_empty());
        let database = if SqliteConfig::is_chosen_by(&get) || url.is_some() {
            match DatabaseTarget::from_lookup(&get)? {
                DatabaseTarget::Postgres(_) if replicas => {
                    DatabaseSettings::PostgresWithReplicas(ReplicaConfig::from_lookup(&get)?)
                }
                target => target.into(),
            }
        } else {
            let dir = get("CPC_DATA_DIR").map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
            Self::embedded(app, dir).database
        };
        if !matches!(database, DatabaseSettings::PostgresWithReplicas(_)) && get(REPLICA_URLS_ENV).is_some() {
            return Err(WiringError::Config(ConfigError::new(
                REPLICA_URLS_ENV,
                format!("read replicas need a PostgreSQL DATABASE_URL, but the database is {}", database.server()),
            )));
        }
        let pool = PoolConfig::from_lookup(&get)?;
        let redis = match get("REDIS_URL").or_else(|| get("REDIS_CLUSTER_URLS")) {
            Some(_) => {
                let mut config = RedisConfig::from_lookup(&get)?;
                if get("REDIS_NAMESPACE").is_none() {
                    config.namespace = format!("cpc:{app}:");
                }
                Some(config)
            }
            None => None,
        };
        Ok(Self { database, pool, redis })
    }

    /// The directory a SQLite file needs, if any.
    pub(crate) fn sqlite_dir(&self) -> Option<&Path> {
        match &self.database {
            DatabaseSettings::Sqlite(SqliteConfig { target: SqliteTarget::File(path), .. }) => {
                path.parent().filter(|p| !p.as_os_str().is_empty())
            }
            _ => None,
        }
    }
}
