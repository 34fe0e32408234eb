//! The composition root, reusable: [`wire`] builds every port from [`Settings`], and [`Ports`] hands them out as
//! `Arc<dyn Port>`. It is the one place in an app that names adapter types (feature `wiring`, on by default).
//!
//! | setting | database | cache, lock, rate limiter, sessions, pub/sub, job queue |
//! |---|---|---|
//! | nothing set (embedded) | SQLite `<CPC_DATA_DIR or .cpc-data>/<app>.db`, migrated | in-process, single-process |
//! | `DATABASE_URL=postgres://...` | PostgreSQL (`DbManager`), migrated | unchanged |
//! | and `DATABASE_REPLICA_URLS=postgres://r1/...,...` | the same, with read replicas for [`Ports::stale_reads`] views | unchanged |
//! | `REDIS_URL=redis://...` | unchanged | Redis (`CacheManager`, `DistributedLock`, ..., `RedisJobQueue`) under `REDIS_NAMESPACE` |
//! | `REDIS_CLUSTER_URLS=redis://a:7000,...` or `REDIS_URL=redis+cluster://a:7000,b:7001` | unchanged | the same, on a Redis Cluster |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cpc_data::wiring::{Ports, Settings};
//! let dir = tempfile::tempdir()?;
//! let ports = Ports::wire(&Settings::embedded("demo", dir.path())).await?; // or Ports::from_env("demo")
//! let (status, reports) = ports.health().await;
//! println!("{status:?}: {} components", reports.len());
//! # Ok(()) }
//! ```

mod app_data;
mod error;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::{DbManager, ReplicaConfig};
use cpc_adapters::memory::{
    InMemoryCache, InMemoryJobQueue, InMemoryLock, InMemoryPubSub, InMemoryRateLimiter, InMemorySessionStore,
    StaticHealthCheck,
};
use cpc_adapters::pg_kv::{PgCache, PgLock, PgPubSub, PgRateLimiter, PgSessionStore};
use cpc_adapters::pool::{HealthChecker, Pool};
use cpc_adapters::postgres::{PgBackend, PgJobQueue};
use cpc_adapters::redis::{
    CacheManager, DistributedLock, NearCache, PubSubManager, RedisHealthChecker, RedisJobQueue, RedisManager,
    RedisRateLimiter, SessionManager,
};
use cpc_adapters::sqlite::SqlitePool;
use cpc_adapters::sqlite_kv::{SqliteJobQueue, SqliteLock, SqliteRateLimiter, SqliteSessionStore};
use cpc_ports::{
    Cache, Codec, CustomerRepository, EntityRepository, HealthCheck, HealthReport, HealthStatus, JobQueue, Lock,
    PubSub, RateLimiter, Record, RecordStore, RecordStoreExt, RepoError, Repository, SessionStore,
    TransactionRepository, UnitOfWork, UserRepository, check_all,
};

pub use app_data::AppData;
pub use error::WiringError;
use settings::kv_mismatch;
pub use settings::{DEFAULT_DATA_DIR, DatabaseSettings, KV_BACKEND_ENV, KvSettings, Settings};

/// How long a cache entry lives when the caller gives no TTL.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// How long [`Ports::health`] waits for one component.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Every port, wired. Clone it freely (it is a bundle of `Arc`s) and hand each service the ports it needs.
#[derive(Clone)]
pub struct Ports {
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Entities.
    pub entities: Arc<dyn EntityRepository>,
    /// Customers.
    pub customers: Arc<dyn CustomerRepository>,
    /// Finance transactions.
    pub transactions: Arc<dyn TransactionRepository>,
    /// Atomic writes across repositories.
    pub unit_of_work: Arc<dyn UnitOfWork>,
    /// The repository of every record the database knows, the app's own included ([`Ports::repo`]).
    pub records: Arc<dyn RecordStore>,
    /// Makes the views of [`Ports::stale_reads`].
    pub stale_views: StaleViews,
    /// The cache.
    pub cache: Arc<dyn Cache>,
    /// Locks with fencing tokens.
    pub lock: Arc<dyn Lock>,
    /// The rate limiter.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Publish/subscribe.
    pub pubsub: Arc<dyn PubSub>,
    /// Background jobs (Redis Streams, or in process: single-process, lost when the process ends).
    pub jobs: Arc<dyn JobQueue>,
    /// One health check per backend (the database, then Redis or the in-process store).
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
    /// What was wired, in words (e.g. `"SQLite .cpc-data/app.db + in-process key-value ports"`); no secrets.
    pub description: String,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").field("description", &self.description).finish_non_exhaustive()
    }
}

impl Ports {
    /// [`Settings::from_env`] then [`Ports::wire`]: the embedded default when `DATABASE_URL` and `REDIS_URL`
    /// are unset, PostgreSQL and/or Redis when they are.
    pub async fn from_env(app: &str) -> Result<Self, WiringError> {
        wire(&Settings::from_env(app)?).await
    }

    /// Same as [`wire`].
    pub async fn wire(settings: &Settings) -> Result<Self, WiringError> {
        wire(settings).await
    }

    /// [`Settings::from_env`] then [`wire_with`]: the app's own records and migrations beside the library's.
    pub async fn from_env_with(app: &str, data: &AppData) -> Result<Self, WiringError> {
        wire_with(&Settings::from_env(app)?, data).await
    }

    /// Same as [`wire_with`].
    pub async fn wire_with(settings: &Settings, data: &AppData) -> Result<Self, WiringError> {
        wire_with(settings, data).await
    }

    /// The repository of record `T` (an app's own record registered in its [`AppData`], or a built-in one), on
    /// the database the environment picked; [`RepoError::Validation`] naming `record` when `T` is not known.
    pub fn repo<T: Record>(&self) -> Result<Arc<dyn Repository<T>>, RepoError> {
        self.records.repo::<T>()
    }

    /// The repositories and unit of work of one caller (a request, a job) whose reads may come from a PostgreSQL
    /// read replica, so they may miss other callers' latest writes, never the caller's own: until a replica has
    /// replayed the caller's last write (through this view), its reads go to the primary. Writes and units of
    /// work always run on the primary. Take one view per caller. Without replicas the view reads the database
    /// like the other ports.
    pub fn stale_reads(&self) -> Repositories {
        (self.stale_views)()
    }

    /// Every health check at once, each bounded by [`HEALTH_TIMEOUT`]: the worst status and all reports.
    pub async fn health(&self) -> (HealthStatus, Vec<HealthReport>) {
        check_all(&self.health_checks, HEALTH_TIMEOUT).await
    }
}

/// The repositories and the unit of work, as one caller's view of the database (see [`Ports::stale_reads`]).
#[derive(Clone)]
pub struct Repositories {
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Entities.
    pub entities: Arc<dyn EntityRepository>,
    /// Customers.
    pub customers: Arc<dyn CustomerRepository>,
    /// Finance transactions.
    pub transactions: Arc<dyn TransactionRepository>,
    /// Atomic writes across repositories (on the primary).
    pub unit_of_work: Arc<dyn UnitOfWork>,
    /// Every record's repository, the app's own included, reading as this view does.
    pub records: Arc<dyn RecordStore>,
}

impl std::fmt::Debug for Repositories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repositories").finish_non_exhaustive()
    }
}

impl Repositories {
    /// Views that are all these same repositories: for a database without replicas, or fakes in tests.
    pub fn always(self) -> StaleViews {
        Arc::new(move || self.clone())
    }

    fn of(db: &DbManager) -> Self {
        Self {
            users: db.users(),
            entities: db.entities(),
            customers: db.customers(),
            transactions: db.transactions(),
            unit_of_work: db.unit_of_work(),
            records: Arc::new(db.clone()),
        }
    }
}

/// Makes one caller's [`Repositories`] view whose reads may come from a read replica ([`Ports::stale_reads`]).
pub type StaleViews = Arc<dyn Fn() -> Repositories + Send + Sync>;

/// Connects to (or creates) the database, runs the pending migrations, and builds the key-value ports on
/// Redis or in process. Fails fast with a one-line [`WiringError`] naming the server and the cause.
pub async fn wire(settings: &Settings) -> Result<Ports, WiringError> {
    wire_with(settings, &AppData::new()).await
}

/// [`wire`], with the app's own records and migrations: its migration sets run with the library's (under the
/// same lock), its records are registered, and every declaration is checked against the migrated database, so a
/// record whose table lacks a column fails here, naming the table and the column.
pub async fn wire_with(settings: &Settings, data: &AppData) -> Result<Ports, WiringError> {
    let db = open_database(settings, data).await?;
    let mut health_checks = vec![db.health_check()];
    let database = format!("{} {}", settings.database.server(), settings.database.describe());
    let kv = key_value(settings).await?;
    health_checks.push(Arc::new(PortBackends::of(&kv)));
    health_checks.push(kv.health);
    let stale_views: StaleViews = {
        let db = db.clone();
        Arc::new(move || Repositories::of(&db.stale_reads()))
    };
    let repos = Repositories::of(&db);
    Ok(Ports {
        users: repos.users,
        entities: repos.entities,
        customers: repos.customers,
        transactions: repos.transactions,
        unit_of_work: repos.unit_of_work,
        records: repos.records,
        stale_views,
        cache: kv.cache,
        lock: kv.lock,
        rate_limiter: kv.rate_limiter,
        sessions: kv.sessions,
        pubsub: kv.pubsub,
        jobs: kv.jobs,
        health_checks,
        description: match &settings.encryption {
            Some(keys) => format!("{database} + {}, values encrypted with key {}", kv.description, keys.primary()),
            None => format!("{database} + {}", kv.description),
        },
    })
}

/// The key-value half of [`Ports`].
struct KeyValue {
    cache: Arc<dyn Cache>,
    lock: Arc<dyn Lock>,
    rate_limiter: Arc<dyn RateLimiter>,
    sessions: Arc<dyn SessionStore>,
    pubsub: Arc<dyn PubSub>,
    jobs: Arc<dyn JobQueue>,
    /// The backend of each port, as [`PortBackends`] reports it.
    backends: [(&'static str, &'static str); 6],
    /// The health of the backend they share (Redis, their pool on the database, or in process).
    health: Arc<dyn HealthCheck>,
    description: String,
}

/// Builds the key-value ports where [`Settings::kv`] says.
async fn key_value(settings: &Settings) -> Result<KeyValue, WiringError> {
    settings.check_near_cache("near_cache")?;
    let ports = |cache, lock, limiter, sessions, pubsub, jobs| {
        [
            ("cache", cache),
            ("lock", lock),
            ("rate_limiter", limiter),
            ("sessions", sessions),
            ("pubsub", pubsub),
            ("jobs", jobs),
        ]
    };
    // Cache values and session data go through the settings' codec, encrypted when keys are configured.
    let codec = settings.codec();
    Ok(match &settings.kv {
        KvSettings::Redis(config) => {
            let manager =
                RedisManager::new(config).await.map_err(|e| WiringError::server("Redis", config.address(), e))?;
            let (cache_backend, near) =
                if settings.near_cache.is_some() { ("redis+near", ", near cache") } else { ("redis", "") };
            KeyValue {
                cache: redis_cache(settings, &manager, codec.clone()).await?,
                lock: Arc::new(DistributedLock::new(manager.clone())),
                rate_limiter: Arc::new(RedisRateLimiter::new(manager.clone())),
                sessions: Arc::new(SessionManager::new(manager.clone()).with_codec(codec)),
                pubsub: Arc::new(PubSubManager::new(manager.clone())),
                jobs: Arc::new(RedisJobQueue::new(manager.clone())),
                backends: ports(cache_backend, "redis", "redis", "redis", "redis", "redis"),
                health: Arc::new(RedisHealthChecker::new(manager)),
                description: format!("Redis {config} (namespace {:?}){near}", config.namespace),
            }
        }
        KvSettings::Postgres => {
            let config = match &settings.database {
                DatabaseSettings::Postgres(c) => c,
                DatabaseSettings::PostgresWithReplicas(c) => &c.primary,
                DatabaseSettings::Sqlite(_) => return Err(kv_mismatch("kv", &settings.kv, &settings.database)),
            };
            let address = format!("{}/{}", config.address(), config.database);
            let pool = PgBackend::new(config).map_err(|e| WiringError::server("PostgreSQL", &address, e))?;
            let pool = Pool::new(pool, &settings.pool, "postgres-kv")
                .await
                .map_err(|e| WiringError::server("PostgreSQL", &address, e))?;
            KeyValue {
                cache: Arc::new(
                    PgCache::new(pool.clone()).with_default_ttl(DEFAULT_CACHE_TTL).with_codec(codec.clone()),
                ),
                lock: Arc::new(PgLock::new(pool.clone())),
                rate_limiter: Arc::new(PgRateLimiter::new(pool.clone())),
                sessions: Arc::new(PgSessionStore::new(pool.clone()).with_codec(codec)),
                pubsub: Arc::new(PgPubSub::new(pool.clone())),
                jobs: Arc::new(PgJobQueue::new(pool.clone())),
                backends: ports("postgres", "postgres", "postgres", "postgres", "postgres", "postgres"),
                health: Arc::new(HealthChecker::new(pool)),
                description: "key-value ports on PostgreSQL".to_owned(),
            }
        }
        KvSettings::Sqlite => {
            let DatabaseSettings::Sqlite(config) = &settings.database else {
                return Err(kv_mismatch("kv", &settings.kv, &settings.database));
            };
            let pool = SqlitePool::new(config, &settings.pool)
                .await
                .map_err(|e| WiringError::server("SQLite", config.describe(), e))?;
            KeyValue {
                cache: Arc::new(memory_cache(settings, codec.clone())?),
                lock: Arc::new(SqliteLock::new(pool.clone())),
                rate_limiter: Arc::new(SqliteRateLimiter::new(pool.clone())),
                sessions: Arc::new(SqliteSessionStore::new(pool.clone()).with_codec(codec)),
                pubsub: Arc::new(InMemoryPubSub::new()),
                jobs: Arc::new(SqliteJobQueue::new(pool)),
                backends: ports("in-process", "sqlite", "sqlite", "sqlite", "in-process", "sqlite"),
                health: Arc::new(StaticHealthCheck::healthy("in-process")),
                description: "jobs, sessions, locks and rate limits on SQLite, cache and pub/sub in process".to_owned(),
            }
        }
        KvSettings::Memory => KeyValue {
            cache: Arc::new(memory_cache(settings, codec.clone())?),
            lock: Arc::new(InMemoryLock::default()),
            rate_limiter: Arc::new(InMemoryRateLimiter::default()),
            sessions: Arc::new(InMemorySessionStore::default().with_codec(codec)),
            pubsub: Arc::new(InMemoryPubSub::new()),
            jobs: Arc::new(InMemoryJobQueue::new()),
            backends: ports("in-process", "in-process", "in-process", "in-process", "in-process", "in-process"),
            health: Arc::new(StaticHealthCheck::healthy("in-process")),
            description: "in-process key-value ports".to_owned(),
        },
    })
}

/// The Redis cache with `codec` ([`Settings::codec`]), behind a near cache when [`Settings::near_cache`] says so.
async fn redis_cache(settings: &Settings, manager: &RedisManager, codec: Codec) -> Result<Arc<dyn Cache>, WiringError> {
    let remote = CacheManager::new(manager.clone(), DEFAULT_CACHE_TTL).with_codec(codec);
    let Some(config) = &settings.near_cache else { return Ok(Arc::new(remote)) };
    let address = manager.config().address();
    let near = NearCache::new(remote, config.clone()).await.map_err(|e| WiringError::server("Redis", address, e))?;
    Ok(Arc::new(near))
}

/// The in-process cache, within [`Settings::memory_cache`], with `codec` ([`Settings::codec`]).
fn memory_cache(settings: &Settings, codec: Codec) -> Result<InMemoryCache, WiringError> {
    let cache = InMemoryCache::builder().default_ttl(DEFAULT_CACHE_TTL).bounds(settings.memory_cache).build()?;
    Ok(cache.with_codec(codec))
}

/// A health report naming the backend of each key-value port (component `"ports"`, always healthy: the backends'
/// own checks say whether they answer).
struct PortBackends {
    backends: [(&'static str, &'static str); 6],
}

impl PortBackends {
    fn of(kv: &KeyValue) -> Self {
        Self { backends: kv.backends }
    }
}

#[async_trait::async_trait]
impl HealthCheck for PortBackends {
    async fn check(&self) -> HealthReport {
        self.backends
            .iter()
            .fold(HealthReport::new("ports", HealthStatus::Healthy, Duration::ZERO), |report, (port, backend)| {
                report.with_detail(*port, backend)
            })
    }
}

/// Opens the pool first (so a refused port or a wrong password is reported as such, at once), then migrates.
async fn open_database(settings: &Settings, data: &AppData) -> Result<DbManager, WiringError> {
    if let Some(dir) = settings.sqlite_dir() {
        std::fs::create_dir_all(dir).map_err(|source| WiringError::DataDir { path: dir.to_owned(), source })?;
    }
    let server = settings.database.server();
    let address = settings.database.describe();
    let (db, target) = match &settings.database {
        DatabaseSettings::Sqlite(c) => (DbManager::sqlite(c, &settings.pool).await, MigrationTarget::Sqlite(c.clone())),
        DatabaseSettings::Postgres(c) => {
            (DbManager::postgres(c, &settings.pool).await, MigrationTarget::Postgres(c.clone()))
        }
        DatabaseSettings::PostgresWithReplicas(c) => {
            let config = ReplicaConfig { pool: settings.pool.clone(), ..c.clone() };
            (DbManager::postgres_with_replicas(&config).await, MigrationTarget::Postgres(c.primary.clone()))
        }
    };
    let db = db.map_err(|e| match e.to_config_error() {
        Some(config) => WiringError::Config(config),
        None => WiringError::server(server, &address, e),
    })?;
    migrations::run_pending_with(&target, data.migration_sets())
        .await
        .map_err(|e| WiringError::server_in(server, &address, Some("migrations failed"), e))?;
    data.register_with(&db);
    db.verify_records()
        .await
        .map_err(|e| WiringError::server_in(server, &address, Some("a record does not match its table"), e))?;
    Ok(db)
}

#[cfg(test)]
mod encryption_tests;
#[cfg(test)]
mod tests;
