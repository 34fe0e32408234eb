//! [`StaticHealthCheck`]: a health check a test controls, used directly and through `check_all`.

use std::sync::Arc;
use std::time::Duration;

use cpc_ports::{HealthCheck, HealthStatus, check_all};
use cpc_testkit::memory::StaticHealthCheck;

#[tokio::test]
async fn reports_what_it_was_told() {
    let check = StaticHealthCheck::new("postgres", HealthStatus::Degraded);
    check.set_latency(Duration::from_millis(42));
    check.set_detail("pool", "3/10");
    let report = check.check().await;
    assert_eq!(report.component, "postgres");
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.latency, Duration::from_millis(42));
    assert_eq!(report.details.get("pool").map(String::as_str), Some("3/10"));
    assert_eq!(report.details.len(), 1);
}

#[tokio::test]
async fn changes_take_effect_through_a_dyn_handle() {
    let check = Arc::new(StaticHealthCheck::healthy("redis"));
    let port: Arc<dyn HealthCheck> = check.clone();
    assert_eq!(port.check().await.status, HealthStatus::Healthy);
    check.set_unhealthy("connection refused");
    let report = port.check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert_eq!(report.details.get("error").map(String::as_str), Some("connection refused"));
    check.set_healthy();
    let report = port.check().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert!(!report.details.contains_key("error"), "recovering clears the error");
    check.set_status(HealthStatus::Degraded);
    check.set_detail("a", 1);
    check.clear_details();
    let report = port.check().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert!(report.details.is_empty());
    assert_eq!(check.check_count(), 4);
}

#[tokio::test]
async fn unhealthy_constructor_sets_the_error_detail() {
    let report = StaticHealthCheck::unhealthy("sqlite", "disk full").check().await;
    assert_eq!((report.component.as_str(), report.status), ("sqlite", HealthStatus::Unhealthy));
    assert_eq!(report.details.get("error").map(String::as_str), Some("disk full"));
}

#[tokio::test(start_paused = true)]
async fn a_delay_waits_on_tokios_clock() {
    let check = StaticHealthCheck::healthy("slow");
    check.set_delay(Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    check.check().await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn check_all_reports_the_worst_status_and_times_out_a_slow_check() {
    let fine = Arc::new(StaticHealthCheck::healthy("fine"));
    let degraded = Arc::new(StaticHealthCheck::new("degraded", HealthStatus::Degraded));
    let slow = Arc::new(StaticHealthCheck::healthy("slow"));
    slow.set_delay(Duration::from_secs(10));
    let checks: Vec<Arc<dyn HealthCheck>> = vec![fine.clone(), degraded.clone()];
    let (worst, reports) = check_all(&checks, Duration::from_secs(1)).await;
    assert_eq!(worst, HealthStatus::Degraded);
    assert_eq!(reports.len(), 2);

    let checks: Vec<Arc<dyn HealthCheck>> = vec![fine.clone(), slow.clone()];
    let (worst, reports) = check_all(&checks, Duration::from_secs(1)).await;
    assert_eq!(worst, HealthStatus::Unhealthy, "a check slower than the timeout counts as unhealthy");
    assert_eq!(reports[1].status, HealthStatus::Unhealthy);
    assert!(reports[1].details.contains_key("error"));
    assert_eq!(slow.check_count(), 1, "the slow check was started");
}

mod contract_concrete {
    use std::sync::Arc;

    use cpc_testkit::memory::StaticHealthCheck;

    cpc_testkit::health_contract!(
        healthy = async { Arc::new(StaticHealthCheck::healthy("cache")) },
        unreachable = async { Arc::new(StaticHealthCheck::unhealthy("cache", "connection refused")) }
    );
}

mod contract_as_dyn_port {
    use std::sync::Arc;

    use cpc_ports::HealthCheck;
    use cpc_testkit::memory::StaticHealthCheck;

    cpc_testkit::health_contract!(
        healthy = async { Arc::new(StaticHealthCheck::healthy("cache")) as Arc<dyn HealthCheck> },
        unreachable =
            async { Arc::new(StaticHealthCheck::unhealthy("db", "no route to host")) as Arc<dyn HealthCheck> }
    );
}
