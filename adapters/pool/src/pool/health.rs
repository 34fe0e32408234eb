//! [`HealthChecker`]: the health check for any pool, as a [`HealthCheck`] port.

use std::time::{Duration, Instant};

use cpc_ports::{HealthCheck, HealthReport, HealthStatus};

use super::{Backend, Pool};

/// Checks a pool by taking a connection and asking the server for its version: reports round-trip latency,
/// server version and pool state (connections, idle, in use, waiting). Never fails: problems are an `Unhealthy`
/// report with the cause in `details["error"]`; a pool with checkouts waiting and nothing idle is `Degraded`.
#[derive(Debug)]
pub struct HealthChecker<B: Backend> {
    pool: Pool<B>,
    timeout: Duration,
}

impl<B: Backend> Clone for HealthChecker<B> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), timeout: self.timeout }
    }
}

impl<B: Backend> HealthChecker<B> {
    /// A checker for `pool`, each check bounded by the pool's connection timeout (at most 5 s).
    pub fn new(pool: Pool<B>) -> Self {
        let timeout = pool.config().connection_timeout.min(Duration::from_secs(5));
        Self { pool, timeout }
    }

    /// Checks the pool once.
    pub async fn check_pool(pool: &Pool<B>) -> HealthReport {
        Self::new(pool.clone()).check().await
    }
}

#[async_trait::async_trait]
impl<B: Backend> HealthCheck for HealthChecker<B> {
    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let probe = async {
            let mut conn = self.pool.get().await?;
            let (backend, conn) = (self.pool.backend(), &mut *conn);
            backend.server_version(conn).await
        };
        let outcome = tokio::time::timeout(self.timeout, probe).await;
        let latency = started.elapsed();
        let mut report = match outcome {
            Ok(Ok(version)) => {
                HealthReport::new(B::NAME, HealthStatus::Healthy, latency).with_detail("server_version", version)
            }
            Ok(Err(e)) => HealthReport::new(B::NAME, HealthStatus::Unhealthy, latency).with_detail("error", e),
            Err(_) => HealthReport::new(B::NAME, HealthStatus::Unhealthy, latency)
                .with_detail("error", format!("no answer within {:?}", self.timeout)),
        };
        let s = self.pool.state();
        if report.status == HealthStatus::Healthy && s.waiting > 0 && s.idle == 0 {
            report.status = HealthStatus::Degraded;
        }
        report
            .with_detail("address", self.pool.address())
            .with_detail("pool", self.pool.name())
            .with_detail("connections", s.connections)
            .with_detail("idle", s.idle)
            .with_detail("in_use", s.in_use)
            .with_detail("waiting", s.waiting)
            .with_detail("max_connections", s.max)
    }
}
