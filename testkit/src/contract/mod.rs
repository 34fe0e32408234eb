//! The contract suites: one module per port, each case a `pub async fn` taking the port, and a macro that runs
//! them all as named tests (see the crate docs).

pub mod cache;
pub mod lock;
pub mod pubsub;
pub mod rate_limit;
pub mod repository;
pub mod session;
pub mod uow;
