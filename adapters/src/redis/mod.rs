//! Redis (feature `redis`, the seeds' `redis_utils`): [`RedisConfig`], [`RedisManager`] and
//! [`RedisHealthCheck`]. The cache, lock, rate limiter, session and pub/sub adapters build on the manager.

mod config;
mod error;
mod health;
mod manager;
mod pubsub;

pub use config::{RedisConfig, RedisConfigBuilder};
pub use health::RedisHealthCheck;
pub use manager::RedisManager;
pub use pubsub::{DEFAULT_SUBSCRIPTION_BUFFER, PubSubManager};
