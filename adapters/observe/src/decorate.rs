//! [`Decorated`]: a port wrapped by a [`Decorate`], and the [`Op`] every decorator sees (its errors are [`PortError`]s).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cpc_ports::{HealthReport, PortError};

/// One port method, as a decorator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// The port: `cache`, `lock`, `rate_limit`, `session`, `pubsub`, `health`, `unit_of_work`, or a
    /// repository's record (`user`, ...). A metric label and `cpc.port`.
    pub port: &'static str,
    /// The method, e.g. `get_bytes` (a metric label and `db.operation`).
    pub name: &'static str,
    /// Whether calling it twice has the effect of calling it once. [`Retry`](super::Retry) retries only these
    /// unless told otherwise: a retried `publish`, `create` or rate-limit `check` could happen twice.
    pub idempotent: bool,
    /// How long the method may wait by its own contract (a lock `acquire`'s `wait`); a
    /// [`Timeout`](super::Timeout) adds it to its limit.
    pub wait: Duration,
}

impl Op {
    /// An idempotent operation (a read, a put, a delete) with no wait of its own.
    pub const fn idempotent(port: &'static str, name: &'static str) -> Self {
        Self { port, name, idempotent: true, wait: Duration::ZERO }
    }

    /// An operation that must not run twice for one call (a create, a publish, a rate-limit check).
    pub const fn once(port: &'static str, name: &'static str) -> Self {
        Self { port, name, idempotent: false, wait: Duration::ZERO }
    }

    /// The same operation, allowed to wait `wait` by its contract.
    #[must_use]
    pub const fn waiting(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

/// Something that runs around every port call: tracing, metrics, a time limit, retries.
pub trait Decorate: Clone + Send + Sync + 'static {
    /// Runs operation `op`, calling `call` for each attempt (once, unless the decorator retries).
    fn around<'a, T, E, F, Fut>(&'a self, op: Op, call: F) -> impl Future<Output = Result<T, E>> + Send + 'a
    where
        T: Send + 'a,
        E: PortError,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a;

    /// Runs a health check, which cannot fail (an unhealthy component is a report). By default the check runs
    /// as is: there is no error to retry, and `check_all` bounds its time.
    fn around_report<'a, Fut>(&'a self, op: Op, check: Fut) -> impl Future<Output = HealthReport> + Send + 'a
    where
        Fut: Future<Output = HealthReport> + Send + 'a,
    {
        let _ = op;
        check
    }

    /// The decorator for the repositories and commit of a transaction `begin` opened, or `None` to leave
    /// them bare (a retry inside a transaction would run on an aborted one: retry the whole unit of work).
    fn for_transaction(&self) -> Option<Self> {
        None
    }
}

/// A port `P` whose every method runs through the decorator `D`. Build one with the aliases
/// [`Observed`](super::Observed), [`Timeout`](super::Timeout), [`Retry`](super::Retry).
pub struct Decorated<P: ?Sized, D> {
    pub(super) inner: Arc<P>,
    pub(super) decorator: D,
}

impl<P, D> Decorated<P, D> {
    /// Wraps `inner`.
    pub fn new(inner: P, decorator: D) -> Self {
        Self { inner: Arc::new(inner), decorator }
    }
}

impl<P: ?Sized, D> Decorated<P, D> {
    /// Wraps a shared port, e.g. an `Arc<dyn Cache>`.
    pub fn from_arc(inner: Arc<P>, decorator: D) -> Self {
        Self { inner, decorator }
    }

    /// The wrapped port.
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    /// The decorator.
    pub fn decorator(&self) -> &D {
        &self.decorator
    }
}

impl<P: ?Sized, D: Clone> Clone for Decorated<P, D> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), decorator: self.decorator.clone() }
    }
}

impl<P: ?Sized, D: std::fmt::Debug> std::fmt::Debug for Decorated<P, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decorated").field("decorator", &self.decorator).finish_non_exhaustive()
    }
}
