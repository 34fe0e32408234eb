//! The [`HealthCheck`] contract. A health check never fails and never hangs: a component that cannot be reached is
//! an [`HealthStatus::Unhealthy`] report with the cause in `details["error"]`.
//!
//! The suite takes two factories: one for a check of a reachable, working component, and one for a check of a
//! component that cannot be reached (for an adapter: a pool pointed at a closed port).
//!
//! ```
//! mod memory_health {
//!     use std::sync::Arc;
//!     use cpc_testkit::memory::StaticHealthCheck;
//!     cpc_testkit::health_contract!(
//!         healthy = async { Arc::new(StaticHealthCheck::healthy("cache")) },
//!         unreachable = async { Arc::new(StaticHealthCheck::unhealthy("cache", "connection refused")) }
//!     );
//! }
//! # fn main() {}
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpc_ports::{HealthCheck, HealthReport, HealthStatus, check_all};

/// The longest a single check may take in these cases.
pub const CHECK_LIMIT: Duration = Duration::from_secs(5);

/// Runs every [`HealthCheck`] contract case as its own `#[tokio::test]`. `healthy` and `unreachable` are async
/// expressions yielding a fresh check, as an `Arc` (of the concrete type or of `dyn HealthCheck`), of a working
/// and of an unreachable component.
#[macro_export]
macro_rules! health_contract {
    (healthy = $healthy:expr, unreachable = $unreachable:expr $(,)?) => {
        $crate::__contract_cases!(
            $crate::contract::health,
            $healthy,
            [
                a_reachable_component_is_not_unhealthy,
                reports_name_the_component,
                latency_is_no_longer_than_the_check_took,
                a_check_answers_within_the_limit,
                repeated_checks_name_the_same_component,
                concurrent_checks_all_answer,
                details_never_reveal_secrets,
            ]
        );
        $crate::__contract_cases!(
            $crate::contract::health,
            $unreachable,
            [
                an_unreachable_component_is_unhealthy_with_an_error_detail,
                an_unreachable_component_answers_within_the_limit,
                unreachable_details_never_reveal_secrets,
            ]
        );
        #[::tokio::test]
        async fn check_all_reports_the_worst_status() {
            let healthy: ::std::sync::Arc<dyn ::cpc_ports::HealthCheck> = $healthy.await;
            let unreachable: ::std::sync::Arc<dyn ::cpc_ports::HealthCheck> = $unreachable.await;
            $crate::contract::health::check_all_reports_the_worst_status(healthy, unreachable).await;
        }
    };
}

async fn timed<H: HealthCheck + ?Sized>(check: &H) -> (HealthReport, Duration) {
    let started = Instant::now();
    let report = tokio::time::timeout(CHECK_LIMIT * 2, check.check())
        .await
        .unwrap_or_else(|_| panic!("a health check must never hang; no answer after {:?}", CHECK_LIMIT * 2));
    (report, started.elapsed())
}

/// A working component is reported `Healthy` (or `Degraded`), never `Unhealthy`.
pub async fn a_reachable_component_is_not_unhealthy<H: HealthCheck + ?Sized>(check: &H) {
    let (report, _) = timed(check).await;
    assert_ne!(report.status, HealthStatus::Unhealthy, "a reachable component reported unhealthy: {report:?}");
}

/// Every report names its component with a non-empty, single-line name.
pub async fn reports_name_the_component<H: HealthCheck + ?Sized>(check: &H) {
    let (report, _) = timed(check).await;
    assert!(!report.component.trim().is_empty(), "the component name must not be empty: {report:?}");
    assert!(!report.component.contains('\n'), "the component name must be one line: {report:?}");
}

/// The reported latency is a measurement of this check: never longer than the call itself took.
pub async fn latency_is_no_longer_than_the_check_took<H: HealthCheck + ?Sized>(check: &H) {
    let (report, took) = timed(check).await;
    assert!(report.latency <= took, "reported latency {:?} exceeds the {took:?} the check took", report.latency);
}

/// A check of a working component answers well within [`CHECK_LIMIT`].
pub async fn a_check_answers_within_the_limit<H: HealthCheck + ?Sized>(check: &H) {
    let (_, took) = timed(check).await;
    assert!(took < CHECK_LIMIT, "a health check took {took:?}");
}

/// Checking again reports on the same component.
pub async fn repeated_checks_name_the_same_component<H: HealthCheck + ?Sized>(check: &H) {
    let (first, _) = timed(check).await;
    for _ in 0..3 {
        let (again, _) = timed(check).await;
        assert_eq!(again.component, first.component, "the component must not change between checks");
    }
}

/// Sixteen checks at once all answer (a `/health` endpoint is hit by several probes at a time).
pub async fn concurrent_checks_all_answer<H: HealthCheck + ?Sized>(check: &H) {
    let reports = tokio::time::timeout(CHECK_LIMIT * 2, futures::future::join_all((0..16).map(|_| check.check())))
        .await
        .expect("16 concurrent health checks must all answer");
    assert_eq!(reports.len(), 16);
    assert!(reports.iter().all(|r| r.status != HealthStatus::Unhealthy), "{reports:?}");
}

fn assert_no_secrets(report: &HealthReport) {
    for (key, value) in &report.details {
        let lower = value.to_lowercase();
        assert!(!lower.contains("password="), "detail {key:?} reveals a password: {value:?}");
        // A URL with credentials: scheme://user:secret@host
        if let Some(rest) = value.split("://").nth(1) {
            let authority = rest.split('/').next().unwrap_or("");
            assert!(
                !(authority.contains('@') && authority.split('@').next().is_some_and(|u| u.contains(':'))),
                "detail {key:?} reveals URL credentials: {value:?}"
            );
        }
    }
}

/// Details help an operator but never carry a password or URL credentials.
pub async fn details_never_reveal_secrets<H: HealthCheck + ?Sized>(check: &H) {
    let (report, _) = timed(check).await;
    assert_no_secrets(&report);
}

/// An unreachable component is a report, not an error: `Unhealthy`, with the cause in `details["error"]`.
pub async fn an_unreachable_component_is_unhealthy_with_an_error_detail<H: HealthCheck + ?Sized>(check: &H) {
    let (report, _) = timed(check).await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    let error = report.details.get("error").expect("an unhealthy report must say why in details[\"error\"]");
    assert!(!error.trim().is_empty(), "the error detail must not be empty");
}

/// An unreachable component is reported within [`CHECK_LIMIT`], not after a long pool timeout.
pub async fn an_unreachable_component_answers_within_the_limit<H: HealthCheck + ?Sized>(check: &H) {
    let (_, took) = timed(check).await;
    assert!(took < CHECK_LIMIT, "reporting an unreachable component took {took:?}");
}

/// The error detail of an unreachable component does not leak credentials either.
pub async fn unreachable_details_never_reveal_secrets<H: HealthCheck + ?Sized>(check: &H) {
    let (report, _) = timed(check).await;
    assert_no_secrets(&report);
}

/// [`check_all`] over a working and an unreachable component reports both, and `Unhealthy` overall.
pub async fn check_all_reports_the_worst_status(healthy: Arc<dyn HealthCheck>, unreachable: Arc<dyn HealthCheck>) {
    let checks = vec![healthy, unreachable];
    let (overall, reports) = check_all(&checks, CHECK_LIMIT).await;
    assert_eq!(reports.len(), 2);
    assert_ne!(reports[0].status, HealthStatus::Unhealthy, "{:?}", reports[0]);
    assert_eq!(reports[1].status, HealthStatus::Unhealthy, "{:?}", reports[1]);
    assert_eq!(overall, HealthStatus::Unhealthy, "the overall status is the worst one");
}
