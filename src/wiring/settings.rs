//! [`Settings`]: which backends to wire, read from the environment or built by hand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cpc_adapters::diesel::ReplicaConfig;
use cpc_adapters::diesel::replicas::REPLICA_URLS_ENV;
use cpc_adapters::memory::CacheBounds;
use cpc_adapters::pool::{DatabaseTarget, PoolConfig};
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::redis::{NEAR_CACHE_ENV, NearCacheConfig, RedisConfig};
use cpc_adapters::sqlite::{SqliteConfig, SqliteTarget};

use cpc_ports::{Codec, ConfigError, Keyring};

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

/// Where the key-value ports live: the cache, lock, rate limiter, sessions, pub/sub and job queue.
///
/// | backend | cache | lock, rate limiter, sessions | pub/sub | jobs | across processes |
/// |---|---|---|---|---|---|
/// | [`Redis`](KvSettings::Redis) | Redis | Redis | Redis | Redis Streams | every port shared |
/// | [`Postgres`](KvSettings::Postgres) | PostgreSQL (unlogged table) | PostgreSQL | `LISTEN`/`NOTIFY` | `PgJobQueue` | every port shared |
/// | [`Sqlite`](KvSettings::Sqlite) | in process | the SQLite file | in process | the SQLite file | locks, limits, sessions and jobs shared by the processes on one machine and kept across restarts; cache and messages per process |
/// | [`Memory`](KvSettings::Memory) | in process | in process | in process | in process | nothing shared, nothing kept |
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KvSettings {
    /// Redis, one server or a cluster.
    Redis(RedisConfig),
    /// The PostgreSQL database itself (`cpc-pg-kv` and `PgJobQueue`), on a pool of its own: an app with one
    /// PostgreSQL and no Redis, run as several instances. Needs a PostgreSQL database.
    Postgres,
    /// The SQLite database itself for the durable ports (`cpc-sqlite-kv`), the cache and pub/sub in process: the
    /// embedded default. Needs a SQLite database.
    Sqlite,
    /// Every port in process: one process, nothing kept when it exits.
    Memory,
}

impl KvSettings {
    /// The values `CPC_KV_BACKEND` takes, in the order [`KvSettings::name`] gives them.
    pub const NAMES: [&'static str; 4] = ["redis", "postgres", "sqlite", "memory"];

    /// `"redis"`, `"postgres"`, `"sqlite"` or `"memory"`, as `CPC_KV_BACKEND` names it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Redis(_) => Self::NAMES[0],
            Self::Postgres => Self::NAMES[1],
            Self::Sqlite => Self::NAMES[2],
            Self::Memory => Self::NAMES[3],
        }
    }

    /// The Redis configuration, when the ports are on Redis.
    pub fn redis(&self) -> Option<&RedisConfig> {
        match self {
            Self::Redis(c) => Some(c),
            _ => None,
        }
    }
}

/// What [`wire`](super::wire) builds: a database (always) and the key-value ports on Redis, on that database, or
/// in process ([`KvSettings`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database.
    pub database: DatabaseSettings,
    /// Its connection pool (and that of the key-value ports when they are on the database).
    pub pool: PoolConfig,
    /// Where the cache, lock, rate limiter, sessions, pub/sub and job queue live.
    pub kv: KvSettings,
    /// The bounds of the in-process cache, when the cache is in process ([`KvSettings::Sqlite`],
    /// [`KvSettings::Memory`]): at most this many entries and bytes, least recently used evicted first.
    pub memory_cache: CacheBounds,
    /// A near cache in front of Redis ([`NearCache`](cpc_adapters::redis::NearCache)): `Some(bounds)` puts a
    /// bounded in-process tier, kept coherent by Redis invalidations, in front of the Redis cache. Needs
    /// [`KvSettings::Redis`] on one server (not a cluster); `None` (the default) keeps every read a round trip.
    pub near_cache: Option<NearCacheConfig>,
    /// The keys that encrypt cache values and session data at rest, on every backend; `None` stores them in
    /// plaintext. `Debug` shows the key ids only.
    pub encryption: Option<Arc<Keyring>>,
}

impl Settings {
    /// The embedded default: SQLite at `<data_dir>/<app>.db`, the durable key-value ports in it (jobs, sessions,
    /// locks, rate limits; [`KvSettings::Sqlite`]), default pool.
    pub fn embedded(app: &str, data_dir: impl AsRef<Path>) -> Self {
        Self {
            database: DatabaseSettings::Sqlite(SqliteConfig::file(data_dir.as_ref().join(format!("{app}.db")))),
            pool: PoolConfig::default(),
            kv: KvSettings::Sqlite,
            memory_cache: CacheBounds::default(),
            near_cache: None,
            encryption: None,
        }
    }

    /// The same settings, encrypting cache values and session data with `keyring`.
    #[must_use]
    pub fn with_encryption(mut self, keyring: impl Into<Arc<Keyring>>) -> Self {
        self.encryption = Some(keyring.into());
        self
    }

    /// The codec of the cache and the sessions: JSON, encrypted with [`Settings::encryption`] when it is set.
    /// Only the values the typed methods (`CacheExt::set`, `SessionStoreExt::save`...) encode go through it:
    /// counters (`Cache::increment_by`) are stored as decimal text, which the server's atomic increment needs,
    /// and the `*_bytes` methods store the bytes they are given.
    pub fn codec(&self) -> Codec {
        match &self.encryption {
            Some(keyring) => Codec::json().with_encryption(keyring.clone()),
            None => Codec::json(),
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
    /// * the key-value ports ([`KvSettings`]): `CPC_KV_BACKEND` (`redis`, `postgres`, `sqlite` or `memory`) when
    ///   set; else Redis when `REDIS_URL` or `REDIS_CLUSTER_URLS` (a Redis Cluster) is set (with
    ///   `REDIS_NAMESPACE`, default `cpc:<app>:`, and the other `REDIS_*` variables of `RedisConfig::from_env`);
    ///   else the database itself: PostgreSQL's tables, or SQLite's for the durable ports. `postgres` with a
    ///   SQLite database, or `sqlite` with PostgreSQL, is an error naming `CPC_KV_BACKEND`.
    /// * the in-process cache's bounds ([`CacheBounds::from_lookup`]): `CPC_MEMORY_CACHE_MAX_ENTRIES` (default
    ///   10,000) and `CPC_MEMORY_CACHE_MAX_BYTES` (default 64 MiB), read whichever the backend.
    /// * the near cache ([`NearCacheConfig::from_lookup`]): `CPC_NEAR_CACHE=on` puts a bounded local tier in front
    ///   of Redis (`CPC_NEAR_CACHE_MAX_ENTRIES`, `_MAX_BYTES`, `_MAX_LOCAL_TTL_MS`, `_KEEPALIVE_MS`); with any
    ///   other backend than one Redis server it is an error naming `CPC_NEAR_CACHE`.
    /// * encryption at rest ([`Keyring::from_lookup`]): `CPC_ENCRYPTION_KEYS` (`id:base64key,...`, oldest
    ///   first) encrypts cache values and session data on every backend; `CPC_ENCRYPTION_ALLOW_PLAINTEXT`
    ///   (`false` by default) says whether values written before are still read; it is ignored without keys.
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
        let kv = kv_settings(app, &get, &database)?;
        let memory_cache = CacheBounds::from_lookup(&get)?;
        let near_cache = NearCacheConfig::from_lookup(&get)?;
        let encryption = Keyring::from_lookup(&get)?.map(Arc::new);
        let settings = Self { database, pool, kv, memory_cache, near_cache, encryption };
        settings.check_near_cache(NEAR_CACHE_ENV)?;
        Ok(settings)
    }

    /// A near cache needs the cache on one Redis server: its invalidations come over one RESP3 connection (on a
    /// cluster each key's master sends its own), and the other backends have none. The error names `key`.
    pub(crate) fn check_near_cache(&self, key: &str) -> Result<(), WiringError> {
        let Some(config) = &self.near_cache else { return Ok(()) };
        let refused = match &self.kv {
            KvSettings::Redis(redis) if redis.is_cluster() => {
                "a near cache needs one Redis server; on a Redis Cluster use the plain Redis cache".to_owned()
            }
            KvSettings::Redis(_) => return config.validate().map_err(WiringError::Config),
            other => format!("a near cache fronts Redis, but the key-value ports are on {}", other.name()),
        };
        Err(WiringError::Config(ConfigError::new(key, refused)))
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

/// The environment variable that chooses where the key-value ports live.
pub const KV_BACKEND_ENV: &str = "CPC_KV_BACKEND";

/// [`KvSettings`] from `CPC_KV_BACKEND`, else from `REDIS_URL`/`REDIS_CLUSTER_URLS`, else from the database.
fn kv_settings(
    app: &str,
    get: &impl Fn(&str) -> Option<String>,
    database: &DatabaseSettings,
) -> Result<KvSettings, WiringError> {
    let redis = || -> Result<KvSettings, WiringError> {
        let mut config = RedisConfig::from_lookup(get)?;
        if get("REDIS_NAMESPACE").is_none() {
            config.namespace = format!("cpc:{app}:");
        }
        Ok(KvSettings::Redis(config))
    };
    let on_sqlite = matches!(database, DatabaseSettings::Sqlite(_));
    match get(KV_BACKEND_ENV).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("redis") => redis(),
        Some("postgres" | "postgresql") if on_sqlite => {
            Err(kv_mismatch(KV_BACKEND_ENV, &KvSettings::Postgres, database))
        }
        Some("postgres" | "postgresql") => Ok(KvSettings::Postgres),
        Some("sqlite") if !on_sqlite => Err(kv_mismatch(KV_BACKEND_ENV, &KvSettings::Sqlite, database)),
        Some("sqlite") => Ok(KvSettings::Sqlite),
        Some("memory") => Ok(KvSettings::Memory),
        Some(other) => Err(WiringError::Config(ConfigError::new(
            KV_BACKEND_ENV,
            format!("must be one of {}, not {other:?}", KvSettings::NAMES.join(", ")),
        ))),
        None if get("REDIS_URL").is_some() || get("REDIS_CLUSTER_URLS").is_some() => redis(),
        None if on_sqlite => Ok(KvSettings::Sqlite),
        None => Ok(KvSettings::Postgres),
    }
}

/// The error for key-value ports kept in a database of the other kind (`kv` is `Postgres` or `Sqlite`), naming
/// `key`: `CPC_KV_BACKEND` when read from the environment, `kv` for settings built by hand.
pub(crate) fn kv_mismatch(key: &str, kv: &KvSettings, database: &DatabaseSettings) -> WiringError {
    let needs = if matches!(kv, KvSettings::Sqlite) { "SQLite" } else { "PostgreSQL" };
    WiringError::Config(ConfigError::new(
        key,
        format!(
            "{} keeps the ports in the database, which must be {needs}, but it is {}",
            kv.name(),
            database.server()
        ),
    ))
}
