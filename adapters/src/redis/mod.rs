//! Redis (feature `redis`, the seeds' `redis_utils`): [`RedisConfig`] and [`RedisManager`] own the connections;
//! [`CacheManager`], [`SessionManager`] and [`PubSubManager`] implement the `Cache`, `SessionStore` and `PubSub`
//! ports over them; [`RedisHealthCheck`] reports on the server.

mod cache;
mod config;
mod error;
mod health;
mod manager;
mod pubsub;
mod session;

pub use cache::CacheManager;
pub use config::{RedisConfig, RedisConfigBuilder};
pub use health::RedisHealthCheck;
pub use manager::{ExclusiveBackend, ExclusiveConnection, RedisManager, TrackedRedisConnection};
pub use pubsub::{DEFAULT_SUBSCRIPTION_BUFFER, PubSubManager};
pub use session::SessionManager;
