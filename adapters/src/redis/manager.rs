//! [`RedisManager`]: the connections every Redis adapter shares.

use std::time::Duration;

use cpc_ports::KvError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::RedisConfig;
use super::error::classify;

/// Owns the connections to one Redis server (the seeds' `RedisManager`):
///
/// * a shared, multiplexed [`ConnectionManager`] for ordinary commands: every caller pipelines over one socket,
///   it reconnects by itself after a disconnect, and a reply that arrives after its caller timed out is consumed
///   in order and dropped, never handed to another caller;
/// * a bb8-redis pool of exclusive connections for what must not share a socket (blocking commands,
///   `WATCH`/`MULTI`), sized by `exclusive_pool_size`.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct RedisManager {
    config: RedisConfig,
    shared: ConnectionManager,
    exclusive: bb8::Pool<bb8_redis::RedisConnectionManager>,
}

impl std::fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisManager").field("config", &self.config).finish()
    }
}

impl RedisManager {
    /// Connects (eagerly, so a wrong password or an unreachable server is reported here, within
    /// `connect_timeout`).
    pub async fn new(config: &RedisConfig) -> Result<Self, KvError> {
        config.validate()?;
        let url = config.connection_url();
        let unavailable = |reason: String| KvError::Unavailable { backend: "redis", reason };
        let client = redis::Client::open(url.as_str()).map_err(|e| classify(e, "connect", config.response_timeout))?;
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
        .map_err(|_| unavailable(format!("no connection to {} within {:?}", config.address(), config.connect_timeout)))?
        .map_err(|e| classify(e, "connect", config.response_timeout))?;
        let manager = bb8_redis::RedisConnectionManager::new(url.as_str())
            .map_err(|e| classify(e, "connect", config.response_timeout))?;
        let exclusive = bb8::Pool::builder()
            .max_size(config.exclusive_pool_size)
            .connection_timeout(config.connect_timeout)
            .build_unchecked(manager);
        Ok(Self { config: config.clone(), shared, exclusive })
    }

    /// The shared multiplexed connection (clone it per use; clones share the socket).
    pub fn connection(&self) -> ConnectionManager {
        self.shared.clone()
    }

    /// An exclusive connection from the pool, for blocking commands and transactions.
    pub async fn exclusive(&self) -> Result<bb8::PooledConnection<'_, bb8_redis::RedisConnectionManager>, KvError> {
        self.exclusive.get().await.map_err(|e| match e {
            bb8::RunError::User(e) => classify(e, "acquire exclusive connection", self.config.response_timeout),
            bb8::RunError::TimedOut => {
                KvError::Timeout { operation: "acquire exclusive connection", after: self.config.connect_timeout }
            }
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// `key` with the configured namespace in front: the name under which it is stored.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.config.namespace)
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
