//! [`Observe`]: a `tracing` span and `metrics` for every port call.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use cpc_ports::{HealthReport, HealthStatus};
use metrics::{counter, histogram};
use tracing::Instrument as _;
use tracing::field::Empty;

use super::{Decorate, Op, PortError};

/// Calls per port operation.
pub(super) const CALLS: &str = "cpc_port_calls_total";
/// Failed calls per port operation and error kind.
pub(super) const ERRORS: &str = "cpc_port_errors_total";
/// Call latency per port operation.
pub(super) const SECONDS: &str = "cpc_port_call_seconds";

/// The decorator of [`Observed`](super::Observed): one span per call with the OpenTelemetry database attributes,
/// and the call, error and latency metrics (see the [module docs](super)).
#[derive(Debug, Clone)]
pub struct Observe {
    system: &'static str,
    namespace: Arc<str>,
}

impl Observe {
    /// Spans with `db.system = system` (`redis`, `postgresql`, `sqlite`, `memory`) and `db.namespace =
    /// namespace` (a key namespace or database name: never a secret, it is recorded as is).
    pub fn new(system: &'static str, namespace: impl Into<String>) -> Self {
        Self { system, namespace: namespace.into().into() }
    }

    /// `db.system`.
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// `db.namespace`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn span(&self, op: Op) -> tracing::Span {
        tracing::info_span!(
            "cpc.port",
            otel.name = op.name,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system = self.system,
            db.operation = op.name,
            db.namespace = &*self.namespace,
            cpc.port = op.port,
            error.type = Empty,
        )
    }

    /// Counts and times a finished call; counts and records its failure `kind`, if any.
    fn record(span: &tracing::Span, op: Op, started: Instant, failure: Option<&'static str>) {
        counter!(CALLS, "port" => op.port, "operation" => op.name).increment(1);
        histogram!(SECONDS, "port" => op.port, "operation" => op.name).record(started.elapsed().as_secs_f64());
        if let Some(kind) = failure {
            span.record("error.type", kind);
            span.record("otel.status_code", "ERROR");
            counter!(ERRORS, "port" => op.port, "operation" => op.name, "kind" => kind).increment(1);
        }
    }
}

impl Decorate for Observe {
    fn around<'a, T, E, F, Fut>(&'a self, op: Op, mut call: F) -> impl Future<Output = Result<T, E>> + Send + 'a
    where
        T: Send + 'a,
        E: PortError,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        let span = self.span(op);
        async move {
            let started = Instant::now();
            let result = call().instrument(span.clone()).await;
            Self::record(&span, op, started, result.as_ref().err().map(PortError::kind));
            result
        }
    }

    fn around_report<'a, Fut>(&'a self, op: Op, check: Fut) -> impl Future<Output = HealthReport> + Send + 'a
    where
        Fut: Future<Output = HealthReport> + Send + 'a,
    {
        let span = self.span(op);
        async move {
            let started = Instant::now();
            let report = check.instrument(span.clone()).await;
            let failure = (report.status == HealthStatus::Unhealthy).then_some("unhealthy");
            Self::record(&span, op, started, failure);
            report
        }
    }

    fn for_transaction(&self) -> Option<Self> {
        Some(self.clone())
    }
}
