//! In-memory implementations of every port. They keep time on tokio's clock, so tests can
//! `tokio::time::pause()` and `advance()` through TTLs and windows.
//!
//! The key-value ones ([`InMemoryCache`], [`InMemoryLock`], [`InMemoryRateLimiter`], [`InMemorySessionStore`],
//! [`InMemoryPubSub`], [`StaticHealthCheck`]) live in `cpc_adapters::memory` (feature `memory`), where apps take
//! them as their single-process embedded default; they are re-exported here so tests keep one import path.
//! [`InMemoryDatabase`] and its repositories are test fakes and live here only.

mod repository;

pub use cpc_adapters::memory::*;
pub use repository::*;
