//! The pool's metrics reach an installed `metrics` recorder under the documented names and labels.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(any(feature = "postgres", feature = "sqlite"))]

use std::time::Duration;

use cpc_adapters::pool::{CloseReason, MetricsCollector};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[allow(dead_code)]
mod common;

#[test]
fn every_documented_series_is_reported_with_backend_and_pool_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let m = MetricsCollector::new("postgres", "orders");
        m.record_connection_created(Duration::from_millis(4));
        m.record_connection_acquired(Duration::from_millis(2));
        m.record_connection_acquired(Duration::from_millis(3)); // still held: in use = 1
        m.record_connection_returned(Duration::from_millis(9));
        m.record_connection_dropped(CloseReason::Lifetime, 3);
        m.record_timeout();
        m.record_waiting(1);
        m.record_idle(5);
        m.refresh_gauges();
    });
    let series = common::recorded::series(&snapshotter);
    let find = |name: &str, extra: Option<(&str, &str)>| {
        series
            .iter()
            .find(|(n, labels, _)| {
                n == name
                    && labels.contains(&("backend".into(), "postgres".into()))
                    && labels.contains(&("pool".into(), "orders".into()))
                    && extra.is_none_or(|(k, v)| labels.contains(&(k.into(), v.into())))
            })
            .map(|(_, _, v)| v)
            .unwrap_or_else(|| panic!("series {name} {extra:?} not reported; got {series:#?}"))
    };
    assert!(matches!(find("cpc_db_pool_acquire_seconds", None), DebugValue::Histogram(h) if h.len() == 2));
    assert!(matches!(find("cpc_db_pool_in_use_seconds", None), DebugValue::Histogram(h) if h.len() == 1));
    assert!(matches!(find("cpc_db_pool_connect_seconds", None), DebugValue::Histogram(h) if h.len() == 1));
    assert_eq!(find("cpc_db_pool_connections_created_total", None), &DebugValue::Counter(1));
    assert_eq!(find("cpc_db_pool_timeouts_total", None), &DebugValue::Counter(1));
    assert_eq!(find("cpc_db_pool_connections_closed_total", Some(("reason", "lifetime"))), &DebugValue::Counter(3));
    assert_eq!(find("cpc_db_pool_connections_closed_total", Some(("reason", "broken"))), &DebugValue::Counter(0));
    assert!(
        matches!(find("cpc_db_pool_connections", Some(("state", "idle"))), DebugValue::Gauge(g) if g.into_inner() == 5.0)
    );
    assert!(
        matches!(find("cpc_db_pool_connections", Some(("state", "in_use"))), DebugValue::Gauge(g) if g.into_inner() == 1.0)
    );
    assert!(matches!(find("cpc_db_pool_waiting", None), DebugValue::Gauge(g) if g.into_inner() == 1.0));
}

/// The striped counters add up across threads: 8 threads each record 10,000 checkouts and returns and raise and
/// lower the waiting gauge, some raising on one thread and lowering on another.
#[test]
fn counters_add_up_across_threads() {
    let m = std::sync::Arc::new(cpc_adapters::pool::MetricsCollector::new("postgres", "striped"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    m.record_connection_acquired(Duration::from_nanos(3));
                    m.record_connection_returned(Duration::from_nanos(5));
                    m.record_waiting(if t % 2 == 0 { 1 } else { -1 });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = m.snapshot();
    assert_eq!((s.acquired, s.returned, s.in_use, s.waiting), (80_000, 80_000, 0, 0));
    assert_eq!((s.acquire_wait_total, s.in_use_total), (Duration::from_nanos(240_000), Duration::from_nanos(400_000)));
}
