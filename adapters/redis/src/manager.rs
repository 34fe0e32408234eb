//! [`RedisManager`]: the connections every Redis adapter shares.

use std::time::Duration;

use cpc_ports::KvError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::classify;
use super::{RedisConfig, RedisConnection};
use cpc_pool::pool::{Backend, DatabaseError, Pool, PoolConfig, PooledConn};

/// bb8-redis's `RedisConnectionManager` as a pool [`Backend`], so exclusive connections get the pool core's fast,
/// precise errors (a refused connection is reported as that, at once, not as a checkout timeout), validation skip
/// window and metrics.
pub struct ExclusiveBackend {
    manager: bb8_redis::RedisConnectionManager,
    address: String,
}

impl std::fmt::Debug for ExclusiveBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExclusiveBackend").field("address", &self.address).finish()
    }
}

fn to_database_error(e: redis::RedisError, address: &str) -> DatabaseError {
    match classify(e, "connect", Duration::ZERO) {
        KvError::Authentication { reason, .. } => {
            DatabaseError::Authentication { user: "redis".into(), message: reason }
        }
        KvError::Unavailable { reason, .. } => {
            DatabaseError::ConnectionRefused { address: address.to_owned(), message: reason }
        }
        other => DatabaseError::Unavailable(other.to_string()),
    }
}

/// An exclusive Redis connection as the pool keeps it. It remembers a connection-level failure (I/O error,
/// dropped connection, timeout) seen by any command sent through it, so the pool discards it when it comes back
/// instead of handing a dead connection out again. Use it like any redis-rs async connection.
pub struct TrackedRedisConnection {
    conn: redis::aio::MultiplexedConnection,
    broken: bool,
}

impl TrackedRedisConnection {
    fn note<T>(&mut self, result: &redis::RedisResult<T>) {
        if let Err(e) = result
            && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout())
        {
            self.broken = true;
        }
    }

    /// Whether a command on this connection failed at the connection level.
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

impl redis::aio::ConnectionLike for TrackedRedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let result = self.conn.req_packed_command(cmd).await;
            self.note(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let result = self.conn.req_packed_commands(pipeline, offset, count).await;
            self.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

impl Backend for ExclusiveBackend {
    type Conn = TrackedRedisConnection;
    const NAME: &'static str = "redis";

    async fn connect(&self) -> Result<Self::Conn, DatabaseError> {
        let conn =
            bb8::ManageConnection::connect(&self.manager).await.map_err(|e| to_database_error(e, &self.address))?;
        Ok(TrackedRedisConnection { conn, broken: false })
    }

    async fn ping(&self, conn: &mut Self::Conn) -> Result<(), DatabaseError> {
        redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .map(|_| ())
            .map_err(|e| to_database_error(e, &self.address))
    }

    fn is_broken(&self, conn: &mut Self::Conn) -> bool {
        conn.broken
    }

    async fn server_version(&self, conn: &mut Self::Conn) -> Result<String, DatabaseError> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(conn)
            .await
            .map_err(|e| to_database_error(e, &self.address))?;
        Ok(info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_owned())
    }

    fn address(&self) -> String {
        self.address.clone()
    }
}

/// An exclusive connection checked out of the [`RedisManager`]'s pool; derefs to a redis-rs connection.
pub type ExclusiveConnection = PooledConn<'static, ExclusiveBackend>;

/// Owns the connections to one Redis server or to a Redis Cluster:
///
/// * a shared, multiplexed [`RedisConnection`] for ordinary commands. On one server it is a [`ConnectionManager`]:
///   every caller pipelines over one socket, it reconnects by itself after a disconnect, and a reply that
///   arrives after its caller timed out is consumed in order and dropped, never handed to another caller. On a
///   cluster ([`RedisConfig::is_cluster`]) it is redis-rs's async cluster connection: one multiplexed socket per
///   node, each command routed to the master of its key's slot, the slot map refreshed after a failover;
/// * on one server, a bb8-redis pool of exclusive connections for what must not share a socket (blocking
///   commands, `WATCH`/`MULTI`), sized by `exclusive_pool_size`. A cluster has none ([`RedisManager::exclusive`]
///   answers [`KvError::Unsupported`]).
///
/// Cheap to clone.
#[derive(Clone)]
pub struct RedisManager {
    config: RedisConfig,
    shared: RedisConnection,
    exclusive: Option<Pool<ExclusiveBackend>>,
}

impl std::fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisManager").field("config", &self.config).finish()
    }
}

impl RedisManager {
    /// Connects (eagerly, so a wrong password or an unreachable server is reported here, within
    /// `connect_timeout`; for a cluster, within `connect_timeout` plus `response_timeout`).
    pub async fn new(config: &RedisConfig) -> Result<Self, KvError> {
        config.validate()?;
        if config.is_cluster() {
            return Self::new_cluster(config).await;
        }
        let unavailable = |reason: String| KvError::Unavailable { backend: "redis", reason };
        let client = config.client()?;
        let info = client.get_connection_info().clone();
        let cm_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let shared = tokio::time::timeout(
            config.connect_timeout + Duration::from_millis(500),
            ConnectionManager::new_with_config(client, cm_config),
        )
        .await
        .map_err(|_| unavailable(format!("no connection to {} within {:?}", config.address(), config.connect_timeout)))
        .and_then(|r| r.map_err(|e| classify(e, "connect", config.response_timeout)))
        .inspect_err(|error| tracing::warn!(address = %config.address(), %error, "could not connect to Redis"))?;
        let manager = bb8_redis::RedisConnectionManager::new(info)
            .map_err(|e| classify(e, "connect", config.response_timeout))?;
        let pool_config = PoolConfig::default()
            .max_connections(config.exclusive_pool_size)
            .connection_timeout(config.connect_timeout);
        let backend = ExclusiveBackend { manager, address: config.address() };
        let exclusive =
            Pool::new(backend, &pool_config, "redis-exclusive").await.map_err(|e| from_database_error(e, config))?;
        Ok(Self { config: config.clone(), shared: RedisConnection::Single(shared), exclusive: Some(exclusive) })
    }

    async fn new_cluster(config: &RedisConfig) -> Result<Self, KvError> {
        let client = super::cluster::client(config, None)?;
        let limit = super::cluster::connect_limit(config);
        let shared = tokio::time::timeout(limit, client.get_async_connection())
            .await
            .map_err(|_| KvError::Unavailable {
                backend: "redis",
                reason: format!("no connection to the cluster at {} within {limit:?}", config.address()),
            })
            .and_then(|r| r.map_err(|e| classify(e, "connect", config.response_timeout)))
            .inspect_err(
                |error| tracing::warn!(nodes = %config.address(), %error, "could not connect to the Redis Cluster"),
            )?;
        Ok(Self { config: config.clone(), shared: RedisConnection::Cluster(shared), exclusive: None })
    }

    /// The shared multiplexed connection (clone it per use; clones share the sockets).
    pub fn connection(&self) -> RedisConnection {
        self.shared.clone()
    }

    /// Whether this manager runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.shared.is_cluster()
    }

    /// An exclusive connection from the pool, for blocking commands and transactions. A refused connection or
    /// rejected credentials are reported at once as `Unavailable` / `Authentication`, not as a timeout. On a
    /// cluster: [`KvError::Unsupported`] (a cluster has no one server to hold a connection to).
    pub async fn exclusive(&self) -> Result<ExclusiveConnection, KvError> {
        let pool = self.exclusive.as_ref().ok_or(KvError::Unsupported {
            backend: "redis",
            operation: "exclusive connections",
            reason: "a Redis Cluster has no single server to hold one to",
        })?;
        pool.get_owned().await.map_err(|e| from_database_error(e, &self.config))
    }

    /// The pool of exclusive connections (state, metrics, health); `None` on a cluster.
    pub fn exclusive_pool(&self) -> Option<&Pool<ExclusiveBackend>> {
        self.exclusive.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// `key` with the configured namespace in front: the name under which it is stored.
    pub fn key(&self, key: &str) -> String {
        [self.config.namespace.as_str(), key].concat()
    }

    /// Runs one command on the shared connection, mapping errors; `operation` names it in errors.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        operation: &'static str,
    ) -> Result<T, KvError> {
        let mut conn = self.shared.clone();
        cmd.query_async(&mut conn).await.map_err(|e| classify(e, operation, self.config.response_timeout))
    }
}

fn from_database_error(e: DatabaseError, config: &RedisConfig) -> KvError {
    match e {
        DatabaseError::Authentication { message, .. } => KvError::Authentication { backend: "redis", reason: message },
        DatabaseError::PoolTimeout(after) => KvError::Timeout { operation: "acquire exclusive connection", after },
        DatabaseError::Config(e) => e.into(),
        other => KvError::Unavailable { backend: "redis", reason: format!("{}: {other}", config.address()) },
    }
}
