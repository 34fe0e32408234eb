//! In-memory implementations of every port. They keep time on tokio's clock, so tests can
//! `tokio::time::pause()` and `advance()` through TTLs and windows.

mod cache;
mod health;
mod lock;
mod pubsub;
mod rate_limit;
mod repository;
mod session;

pub use cache::*;
pub use health::*;
pub use lock::*;
pub use pubsub::*;
pub use rate_limit::*;
pub use repository::*;
pub use session::*;
