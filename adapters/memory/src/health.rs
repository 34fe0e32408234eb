//! [`StaticHealthCheck`]: a [`HealthCheck`] whose answer a test sets and changes at run time.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{HealthCheck, HealthReport, HealthStatus};

/// A [`HealthCheck`] that reports what the test told it to: status, latency and details can be changed at any
/// time through `&self` (hold it in an `Arc`, and hand a clone of that `Arc` to the code under test as
/// `Arc<dyn HealthCheck>`). A delay makes [`check`](HealthCheck::check) take that long on tokio's clock, to
/// exercise timeouts such as the one in [`cpc_ports::check_all`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use cpc_ports::{HealthCheck, HealthStatus};
/// use cpc_memory::StaticHealthCheck;
///
/// let redis = Arc::new(StaticHealthCheck::healthy("redis"));
/// let as_port: Arc<dyn HealthCheck> = redis.clone();
/// redis.set_unhealthy("connection refused");
/// let report = as_port.check().await;
/// assert_eq!(report.status, HealthStatus::Unhealthy);
/// assert_eq!(report.details["error"], "connection refused");
/// # }
/// ```
#[derive(Debug)]
pub struct StaticHealthCheck {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    component: String,
    status: HealthStatus,
    latency: Duration,
    delay: Duration,
    details: BTreeMap<String, String>,
    checks: u64,
}

impl StaticHealthCheck {
    /// A check of `component` that reports `status`, zero latency and no details, at once.
    pub fn new(component: impl Into<String>, status: HealthStatus) -> Self {
        Self {
            state: Mutex::new(State {
                component: component.into(),
                status,
                latency: Duration::ZERO,
                delay: Duration::ZERO,
                details: BTreeMap::new(),
                checks: 0,
            }),
        }
    }

    /// A check of `component` that reports [`HealthStatus::Healthy`].
    pub fn healthy(component: impl Into<String>) -> Self {
        Self::new(component, HealthStatus::Healthy)
    }

    /// A check of `component` that reports [`HealthStatus::Unhealthy`] with `error` in `details["error"]`.
    pub fn unhealthy(component: impl Into<String>, error: impl ToString) -> Self {
        let check = Self::new(component, HealthStatus::Unhealthy);
        check.set_detail("error", error);
        check
    }

    /// Reports `status` from now on.
    pub fn set_status(&self, status: HealthStatus) {
        self.lock().status = status;
    }

    /// Reports [`HealthStatus::Healthy`] from now on, and removes `details["error"]`.
    pub fn set_healthy(&self) {
        let mut state = self.lock();
        state.status = HealthStatus::Healthy;
        state.details.remove("error");
    }

    /// Reports [`HealthStatus::Unhealthy`] with `error` in `details["error"]` from now on.
    pub fn set_unhealthy(&self, error: impl ToString) {
        let mut state = self.lock();
        state.status = HealthStatus::Unhealthy;
        state.details.insert("error".to_owned(), error.to_string());
    }

    /// Reports `latency` as the time the check took (without waiting; see [`set_delay`](Self::set_delay)).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Makes each check wait `delay` on tokio's clock before it answers.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Adds or replaces a detail.
    pub fn set_detail(&self, key: impl Into<String>, value: impl ToString) {
        self.lock().details.insert(key.into(), value.to_string());
    }

    /// Removes every detail.
    pub fn clear_details(&self) {
        self.lock().details.clear();
    }

    /// How many times [`check`](HealthCheck::check) has been called (including ones still waiting out a delay).
    pub fn check_count(&self) -> u64 {
        self.lock().checks
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl HealthCheck for StaticHealthCheck {
    async fn check(&self) -> HealthReport {
        let delay = {
            let mut state = self.lock();
            state.checks += 1;
            state.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let state = self.lock();
        HealthReport {
            component: state.component.clone(),
            status: state.status,
            latency: state.latency,
            details: state.details.clone(),
        }
    }
}
