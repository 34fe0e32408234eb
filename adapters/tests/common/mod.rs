//! Helpers shared by several integration test files.

#[cfg(feature = "redis")]
pub mod acl;
#[cfg(all(feature = "postgres", feature = "redis"))]
pub mod fencing;
pub mod harness;
#[cfg(feature = "tower")]
pub mod http;
#[cfg(all(feature = "pg-kv", feature = "diesel"))]
pub mod pg_kv;
pub mod pubsub;
pub mod recorded;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(all(feature = "sqlite-kv", feature = "diesel"))]
pub mod sqlite_kv;
