//! [`TimeLimit`]: every port call bounded in time.

use std::future::Future;
use std::time::Duration;

use metrics::counter;

use super::{Decorate, Op, PortError};

/// The decorator of [`Timeout`](super::Timeout): a call that has not finished after the limit (plus the wait
/// its own contract allows, such as a lock `acquire`'s `wait`) is dropped and fails with the port's `Timeout`
/// error, which is retryable (so a [`Retry`](super::Retry) around a `Timeout` retries it). Counted in
/// `cpc_port_timeouts_total`. Dropping a call is safe for every adapter of this crate (a cancelled transaction
/// is rolled back); a write that was cut off may or may not have happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimit {
    limit: Duration,
}

impl TimeLimit {
    /// A limit of `limit` per call.
    pub const fn new(limit: Duration) -> Self {
        Self { limit }
    }

    /// The limit.
    pub const fn limit(&self) -> Duration {
        self.limit
    }
}

impl Decorate for TimeLimit {
    fn around<'a, T, E, F, Fut>(&'a self, op: Op, mut call: F) -> impl Future<Output = Result<T, E>> + Send + 'a
    where
        T: Send + 'a,
        E: PortError,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        let limit = self.limit.saturating_add(op.wait);
        async move {
            match tokio::time::timeout(limit, call()).await {
                Ok(result) => result,
                Err(_) => {
                    counter!("cpc_port_timeouts_total", "port" => op.port, "operation" => op.name).increment(1);
                    Err(E::timed_out(op.name, limit))
                }
            }
        }
    }

    fn for_transaction(&self) -> Option<Self> {
        Some(*self)
    }
}
