//! The clients an app could use instead of `CacheManager`, driven the way such an app would: bare redis-rs
//! (`MultiplexedConnection`, `ConnectionManager`, each with its defaults) and fred, doing the same `GET` and
//! `SET .. PX` on the same stored keys (`#[path = "common/bare_redis.rs"] mod bare_redis;`).

#![allow(dead_code, clippy::unwrap_used)]

use fred::interfaces::{ClientLike, KeysInterface};

/// Which bare client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// redis-rs `MultiplexedConnection` (`Client::get_multiplexed_async_connection`).
    Multiplexed,
    /// redis-rs `ConnectionManager` (`Client::get_connection_manager`).
    Manager,
    /// fred `Client` (pipelines concurrent commands by itself).
    Fred,
}

impl Kind {
    /// Every bare client, in table order.
    pub const ALL: [Kind; 3] = [Kind::Multiplexed, Kind::Manager, Kind::Fred];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Multiplexed => "redis-rs MultiplexedConnection",
            Kind::Manager => "redis-rs ConnectionManager",
            Kind::Fred => "fred Client",
        }
    }
}

/// A connected bare client; clone it per task (clones share the socket).
#[derive(Clone)]
pub enum Bare {
    Multiplexed(redis::aio::MultiplexedConnection),
    Manager(redis::aio::ConnectionManager),
    Fred(fred::clients::Client),
}

impl Bare {
    /// Connects a `kind` client to `url` with the client's defaults.
    pub async fn connect(kind: Kind, url: &str) -> Self {
        match kind {
            Kind::Multiplexed => {
                Self::Multiplexed(redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap())
            }
            Kind::Manager => Self::Manager(redis::Client::open(url).unwrap().get_connection_manager().await.unwrap()),
            Kind::Fred => {
                let config = fred::types::config::Config::from_url(url).unwrap();
                let client = fred::types::Builder::from_config(config).build().unwrap();
                client.init().await.unwrap();
                Self::Fred(client)
            }
        }
    }

    /// `GET key`: whether it was there.
    pub async fn get(&mut self, key: String) -> bool {
        match self {
            Self::Multiplexed(c) => redis::cmd("GET").arg(key).query_async::<Option<Vec<u8>>>(c).await,
            Self::Manager(c) => redis::cmd("GET").arg(key).query_async::<Option<Vec<u8>>>(c).await,
            Self::Fred(c) => return c.get::<Option<fred::bytes::Bytes>, _>(key).await.unwrap().is_some(),
        }
        .unwrap()
        .is_some()
    }

    /// `SET key value PX ttl_ms`.
    pub async fn set(&mut self, key: String, value: &'static [u8], ttl_ms: u64) {
        match self {
            Self::Multiplexed(c) => set_cmd(key, value, ttl_ms).query_async::<()>(c).await.unwrap(),
            Self::Manager(c) => set_cmd(key, value, ttl_ms).query_async::<()>(c).await.unwrap(),
            Self::Fred(c) => {
                let px = fred::types::Expiration::PX(ttl_ms as i64);
                c.set::<(), _, _>(key, value, Some(px), None, false).await.unwrap();
            }
        }
    }
}

/// The name under which the cache stores key `k<i mod keys>` (`prefix` is `CacheManager::stored_key("")`), built
/// per call as an app building its keys would.
pub fn stored_key(prefix: &str, i: u64, keys: u64) -> String {
    format!("{prefix}k{}", i % keys)
}

/// The redis-rs `SET key value PX ttl_ms`.
pub fn set_cmd(key: String, value: &[u8], ttl_ms: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value).arg("PX").arg(ttl_ms);
    cmd
}

/// The exact sliding log an app would write by hand, one `EVALSHA` per check: the same four commands per check as
/// the library's script (`ZREMRANGEBYSCORE`, `ZCARD`, `ZADD`, `PEXPIRE`) on the server's clock, a member per
/// check from the client. `KEYS[1]` the log; `ARGV` limit, window (µs), member. Returns `{allowed, remaining}`.
pub const SLIDING_WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count + 1 > limit then return {0, limit - count} end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {1, limit - count - 1}
";

/// One check of [`SLIDING_WINDOW`] (loaded as `script`) on `key`: whether it was allowed. `member` must be unique
/// per check.
pub async fn sliding_window(
    conn: &mut redis::aio::MultiplexedConnection,
    script: &redis::Script,
    key: String,
    limit: u64,
    window_us: u64,
    member: u64,
) -> bool {
    let mut invocation = script.key(key);
    invocation.arg(limit).arg(window_us).arg(member);
    let (allowed, _remaining): (i64, i64) = invocation.invoke_async(conn).await.unwrap();
    allowed == 1
}
