//! Helpers shared by several integration test files.

#[cfg(feature = "tower")]
pub mod http;
pub mod recorded;
#[cfg(feature = "redis")]
pub mod redis;
