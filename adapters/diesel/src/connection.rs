//! Diesel connections as pool [`Backend`]s, so the repositories get the pool's fast errors, metrics, leak
//! detection and health checks: [`DieselPgBackend`] (`diesel_async::AsyncPgConnection`, over the same
//! tokio-postgres connect and TLS as [`PgBackend`]) and [`DieselSqliteBackend`]
//! (`SyncConnectionWrapper<SqliteConnection>`, with the pragmas of [`SqliteConfig`]).
//!
//! Both report a connection as broken while it is inside a transaction or its transaction state is unknown (a
//! future dropped during `BEGIN`/`COMMIT`): the pool then discards it instead of handing a connection with an open
//! transaction to the next caller.

use std::future::Future;

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool, Double, Nullable};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryResult};
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use cpc_pool::pool::{Backend, DatabaseError};
use cpc_pool::postgres::{PgBackend, PgConfig};
use cpc_pool::sqlite::{SqliteConfig, SqliteTarget};

pub use crate::sql::AsyncSqliteConnection;

/// A pool [`Backend`] whose connections are Diesel async connections, with how to open a transaction on them.
pub trait DieselBackend: Backend<Conn: AsyncConnection + Send + crate::sql::RecordConn> {
    /// Opens a top-level transaction: `BEGIN` on PostgreSQL (READ COMMITTED), `BEGIN IMMEDIATE` on SQLite (so a
    /// transaction takes the write lock up front, waiting up to `busy_timeout`, instead of failing when a reader
    /// later tries to write).
    fn begin(conn: &mut Self::Conn) -> impl Future<Output = QueryResult<()>> + Send;

    /// The WAL position a replica must have replayed to show everything committed on this (primary) connection
    /// so far: PostgreSQL's `pg_current_wal_insert_lsn()`. `None` on a backend without replicas (SQLite).
    fn write_position(conn: &mut Self::Conn) -> impl Future<Output = QueryResult<Option<u64>>> + Send;

    /// What a replica connection says about its replication: `None` when the server is not a replica (SQLite, or
    /// a PostgreSQL server not in recovery, e.g. a promoted one).
    fn replica_state(conn: &mut Self::Conn) -> impl Future<Output = QueryResult<Option<ReplicaState>>> + Send;
}

/// How far a replica is, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    /// The WAL position replayed so far (PostgreSQL `pg_last_wal_replay_lsn()`), comparable with
    /// [`DieselBackend::write_position`] on the primary.
    pub replayed: u64,
    /// How far behind the primary the replayed data is: zero when everything received is replayed, else the
    /// age of the last replayed transaction (the usual `now() - pg_last_xact_replay_timestamp()` measure).
    pub lag: std::time::Duration,
}

/// Opens `diesel_async::AsyncPgConnection`s: connects (TLS included) through [`PgBackend`], then hands the
/// tokio-postgres client to Diesel.
#[derive(Debug)]
pub struct DieselPgBackend {
    inner: PgBackend,
}

impl DieselPgBackend {
    /// A backend for `config` (TLS set up per its `ssl_mode`).
    pub fn new(config: &PgConfig) -> Result<Self, DatabaseError> {
        Ok(Self { inner: PgBackend::new(config)? })
    }

    /// The configuration it connects with.
    pub fn config(&self) -> &PgConfig {
        self.inner.config()
    }
}

fn query_error(e: diesel::result::Error) -> DatabaseError {
    DatabaseError::Query(std::sync::Arc::new(e))
}

impl Backend for DieselPgBackend {
    type Conn = AsyncPgConnection;
    const NAME: &'static str = "postgres";

    async fn connect(&self) -> Result<AsyncPgConnection, DatabaseError> {
        let client = self.inner.connect().await?.into_client();
        AsyncPgConnection::try_from(client).await.map_err(|e| DatabaseError::Unavailable(e.to_string()))
    }

    async fn ping(&self, conn: &mut AsyncPgConnection) -> Result<(), DatabaseError> {
        conn.batch_execute("SELECT 1").await.map_err(|e| match e {
            diesel::result::Error::DatabaseError(_, info) => DatabaseError::Unavailable(info.message().to_owned()),
            other => query_error(other),
        })
    }

    /// Closed, or inside a transaction (open, failed or interrupted): never handed out again.
    fn is_broken(&self, conn: &mut AsyncPgConnection) -> bool {
        PoolableConnection::is_broken(conn)
    }

    async fn server_version(&self, conn: &mut AsyncPgConnection) -> Result<String, DatabaseError> {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("current_setting('server_version')"))
            .get_result(conn)
            .await
            .map_err(query_error)
    }

    fn address(&self) -> String {
        self.inner.address()
    }
}

/// `pg_lsn` as a number of bytes (`pg_lsn` itself has no Diesel type); exact up to 8 EiB of WAL.
const LSN_BYTES: &str = "pg_wal_lsn_diff({}, '0/0')::bigint";

impl DieselBackend for DieselPgBackend {
    fn begin(conn: &mut AsyncPgConnection) -> impl Future<Output = QueryResult<()>> + Send {
        <diesel_async::AnsiTransactionManager as diesel_async::TransactionManager<_>>::begin_transaction(conn)
    }

    async fn write_position(conn: &mut AsyncPgConnection) -> QueryResult<Option<u64>> {
        let sql = LSN_BYTES.replace("{}", "pg_current_wal_insert_lsn()");
        let lsn: i64 = diesel::select(diesel::dsl::sql::<BigInt>(&sql)).get_result(conn).await?;
        Ok(Some(lsn.unsigned_abs()))
    }

    async fn replica_state(conn: &mut AsyncPgConnection) -> QueryResult<Option<ReplicaState>> {
        let sql = format!(
            "pg_is_in_recovery(), {}, (CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
             ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END)::float8",
            LSN_BYTES.replace("{}", "pg_last_wal_replay_lsn()")
        );
        let (in_recovery, replayed, lag): (bool, Option<i64>, Option<f64>) =
            diesel::select(diesel::dsl::sql::<(Bool, Nullable<BigInt>, Nullable<Double>)>(&sql))
                .get_result(conn)
                .await?;
        Ok(match (in_recovery, replayed) {
            (true, Some(replayed)) => Some(ReplicaState {
                replayed: replayed.unsigned_abs(),
                // No transaction replayed since start-up: nothing is known to be behind.
                lag: std::time::Duration::try_from_secs_f64(lag.unwrap_or(0.0).max(0.0)).unwrap_or_default(),
            }),
            _ => None,
        })
    }
}

/// Opens Diesel SQLite connections with the configured pragmas (busy timeout, foreign keys, WAL with
/// `synchronous = NORMAL` for files), each wrapped for async use.
#[derive(Debug, Clone)]
pub struct DieselSqliteBackend {
    config: SqliteConfig,
}

impl DieselSqliteBackend {
    /// A backend for `config`.
    pub fn new(config: &SqliteConfig) -> Result<Self, DatabaseError> {
        config.validate()?;
        Ok(Self { config: config.clone() })
    }

    /// The configuration it connects with.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// Opens and configures one connection (blocking).
    fn open(config: &SqliteConfig) -> Result<SqliteConnection, DatabaseError> {
        let address = config.describe();
        let refused = |message: String| DatabaseError::ConnectionRefused { address: address.clone(), message };
        let url = match &config.target {
            SqliteTarget::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| refused(format!("cannot create {}: {e}", dir.display())))?;
                }
                path.to_str().ok_or_else(|| refused("the path is not valid UTF-8".to_owned()))?.to_owned()
            }
            SqliteTarget::SharedMemory(name) => format!("file:/{name}?vfs=memdb"),
        };
        let mut conn = SqliteConnection::establish(&url).map_err(|e| refused(e.to_string()))?;
        let failed = |e: diesel::result::Error| refused(e.to_string());
        // Busy timeout first, so the rest waits for locks held by others instead of failing.
        conn.batch_execute(&format!("PRAGMA busy_timeout = {}", config.busy_timeout.as_millis())).map_err(failed)?;
        // SQLite opens lazily: reading the schema makes a file that is not a database fail here, at connect.
        conn.batch_execute("SELECT count(*) FROM sqlite_master").map_err(failed)?;
        let foreign_keys = if config.foreign_keys { "ON" } else { "OFF" };
        conn.batch_execute(&format!("PRAGMA foreign_keys = {foreign_keys}")).map_err(failed)?;
        if config.wal && matches!(config.target, SqliteTarget::File(_)) {
            conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL").map_err(failed)?;
        }
        Ok(conn)
    }
}

impl Backend for DieselSqliteBackend {
    type Conn = AsyncSqliteConnection;
    const NAME: &'static str = "sqlite";

    async fn connect(&self) -> Result<AsyncSqliteConnection, DatabaseError> {
        let config = self.config.clone();
        let conn = tokio::task::spawn_blocking(move || Self::open(&config))
            .await
            .map_err(|e| DatabaseError::Unavailable(format!("sqlite worker failed: {e}")))??;
        Ok(SyncConnectionWrapper::new(conn))
    }

    async fn ping(&self, conn: &mut AsyncSqliteConnection) -> Result<(), DatabaseError> {
        conn.batch_execute("SELECT count(*) FROM sqlite_master").await.map_err(query_error)
    }

    /// Inside a transaction (open, failed or interrupted): never handed out again.
    fn is_broken(&self, conn: &mut AsyncSqliteConnection) -> bool {
        PoolableConnection::is_broken(conn)
    }

    async fn server_version(&self, conn: &mut AsyncSqliteConnection) -> Result<String, DatabaseError> {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("sqlite_version()"))
            .get_result(conn)
            .await
            .map_err(query_error)
    }

    fn address(&self) -> String {
        self.config.describe()
    }
}

impl DieselBackend for DieselSqliteBackend {
    fn begin(conn: &mut AsyncSqliteConnection) -> impl Future<Output = QueryResult<()>> + Send {
        conn.spawn_blocking(|c| diesel::connection::AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"))
    }

    /// SQLite has no replicas.
    fn write_position(_: &mut AsyncSqliteConnection) -> impl Future<Output = QueryResult<Option<u64>>> + Send {
        std::future::ready(Ok(None))
    }

    /// SQLite has no replicas.
    fn replica_state(_: &mut AsyncSqliteConnection) -> impl Future<Output = QueryResult<Option<ReplicaState>>> + Send {
        std::future::ready(Ok(None))
    }
}
