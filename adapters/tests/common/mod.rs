//! Helpers shared by several integration test files.

pub mod http;
pub mod redis;
