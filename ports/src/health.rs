//! The [`HealthCheck`] port, and [`check_all`] to aggregate many for a `/health` endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

/// How a component is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but slow or short of capacity.
    Degraded,
    /// Not working.
    Unhealthy,
}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The component checked, e.g. `"postgres"` or `"redis-cache"`.
    pub component: String,
    /// Its status.
    pub status: HealthStatus,
    /// How long the check took.
    pub latency: Duration,
    /// Details worth showing: server version, pool size, the error seen. Never secrets.
    pub details: BTreeMap<String, String>,
}

impl HealthReport {
    /// A report with no details.
    pub fn new(component: impl Into<String>, status: HealthStatus, latency: Duration) -> Self {
        Self { component: component.into(), status, latency, details: BTreeMap::new() }
    }

    /// Adds a detail.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.details.insert(key.into(), value.to_string());
        self
    }
}

/// Something whose health can be checked.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks the component once.
    ///
    /// MUST NOT fail: a component that cannot be reached is a report with [`HealthStatus::Unhealthy`] and the
    /// cause in `details["error"]`. SHOULD finish within the component's own timeouts.
    async fn check(&self) -> HealthReport;
}

/// Runs every check at once, each bounded by `timeout` (a check that takes longer is reported unhealthy), and
/// returns the worst status with all reports.
pub async fn check_all(checks: &[Arc<dyn HealthCheck>], timeout: Duration) -> (HealthStatus, Vec<HealthReport>) {
    let reports = futures::future::join_all(checks.iter().enumerate().map(|(i, c)| async move {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(timeout, c.check()).await {
            Ok(r) => r,
            Err(_) => HealthReport::new(format!("check #{i}"), HealthStatus::Unhealthy, started.elapsed())
                .with_detail("error", format!("no answer within {timeout:?}")),
        }
    }))
    .await;
    let worst = reports.iter().map(|r| r.status).max().unwrap_or(HealthStatus::Healthy);
    (worst, reports)
}
