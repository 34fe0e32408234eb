//! # cpc-tower
//!
//! tower and axum glue (feature `tower`): [`RateLimitLayer`] puts any [`RateLimiter`](cpc_ports::RateLimiter) in
//! front of a service, keyed by a [`KeyExtractor`]; [`TowerSessionStore`] makes any
//! [`SessionStore`](cpc_ports::SessionStore) a [`tower_sessions_core::SessionStore`], for tower-sessions'
//! `SessionManagerLayer`.
//!
//! Metrics:
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `cpc_http_rate_limit_total` | counter | `outcome` | requests seen by a [`RateLimitLayer`]: `allowed`, `refused`, `unkeyed` (no key could be extracted: let through), `failed_open`, `failed_closed` (the limiter failed) |

mod key;
mod rate_limit;
mod session_store;

pub use key::{ClientIp, ExtensionKey, HeaderKey, KeyExtractor, RequestView};
pub use rate_limit::{FailurePolicy, RateLimitLayer, RateLimitService};
pub use session_store::TowerSessionStore;
