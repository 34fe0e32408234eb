//! Helpers shared by several integration test files.

#[cfg(feature = "redis")]
pub mod acl;
#[cfg(all(feature = "postgres", feature = "redis"))]
pub mod fencing;
#[cfg(feature = "tower")]
pub mod http;
pub mod recorded;
#[cfg(feature = "redis")]
pub mod redis;
