//! The generic pool's own logic, over an in-process backend that counts what the pool asks of it: skipping
//! validation for recently used connections, never handing out a broken one, failing fast with the cause,
//! timing out when exhausted, metrics and leak reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(any(feature = "postgres", feature = "sqlite"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cpc_adapters::pool::{Backend, DatabaseError, Pool, PoolConfig};

#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU32,
    pings: AtomicU32,
    fail_with: std::sync::Mutex<Option<DatabaseError>>,
}

#[derive(Debug)]
struct Conn {
    broken: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Default)]
struct CountingBackend(Arc<Counters>);

impl Backend for CountingBackend {
    type Conn = Conn;
    const NAME: &'static str = "counting";

    async fn connect(&self) -> Result<Conn, DatabaseError> {
        if let Some(e) = self.0.fail_with.lock().unwrap().clone() {
            return Err(e);
        }
        self.0.connects.fetch_add(1, Ordering::SeqCst);
        Ok(Conn { broken: Arc::new(AtomicBool::new(false)) })
    }
    async fn ping(&self, _: &mut Conn) -> Result<(), DatabaseError> {
        self.0.pings.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn is_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::SeqCst)
    }
    async fn server_version(&self, _: &mut Conn) -> Result<String, DatabaseError> {
        Ok("counting 1.0".into())
    }
    fn address(&self) -> String {
        "in-process".into()
    }
}

fn config() -> PoolConfig {
    PoolConfig::default().max_connections(2).connection_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn a_recently_used_connection_is_handed_out_without_a_round_trip() {
    let backend = CountingBackend::default();
    let pool = Pool::new(backend.clone(), &config(), "t").await.unwrap();
    for _ in 0..50 {
        drop(pool.get().await.unwrap());
    }
    assert_eq!(backend.0.pings.load(Ordering::SeqCst), 0, "no validation within the skip window");
    assert_eq!(backend.0.connects.load(Ordering::SeqCst), 1, "the one connection is reused");
}

#[tokio::test]
async fn an_idle_connection_is_validated_before_reuse() {
    let backend = CountingBackend::default();
    let cfg = config().validation_skip_window(Duration::from_millis(50));
    let pool = Pool::new(backend.clone(), &cfg, "t").await.unwrap();
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(backend.0.pings.load(Ordering::SeqCst), 1, "a connection idle past the window is pinged once");
}

#[tokio::test]
async fn a_broken_connection_is_never_handed_out_again() {
    let backend = CountingBackend::default();
    let pool = Pool::new(backend.clone(), &config(), "t").await.unwrap();
    let conn = pool.get().await.unwrap();
    conn.broken.store(true, Ordering::SeqCst);
    drop(conn);
    let fresh = pool.get().await.unwrap();
    assert!(!fresh.broken.load(Ordering::SeqCst), "the broken connection must have been discarded");
    assert_eq!(backend.0.connects.load(Ordering::SeqCst), 2);
    assert!(pool.metrics().closed_broken >= 1, "{:?}", pool.metrics());
}

#[tokio::test]
async fn a_connection_returned_past_its_max_lifetime_is_closed_and_counted_as_a_lifetime_close() {
    let backend = CountingBackend::default();
    let pool = Pool::new(backend.clone(), &config().max_lifetime(Some(Duration::from_millis(100))), "t").await.unwrap();
    let held = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(held);
    drop(pool.get().await.unwrap());
    assert_eq!(backend.0.connects.load(Ordering::SeqCst), 2, "the expired connection must have been replaced");
    let m = pool.metrics();
    assert_eq!((m.closed_lifetime, m.closed_broken), (1, 0), "{m:?}");
}

#[tokio::test]
async fn an_idle_connection_past_its_max_lifetime_is_never_handed_out() {
    let backend = CountingBackend::default();
    let pool = Pool::new(backend.clone(), &config().max_lifetime(Some(Duration::from_millis(100))), "t").await.unwrap();
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    drop(pool.get().await.unwrap());
    assert!(started.elapsed() < Duration::from_millis(250), "replacing it took {:?}", started.elapsed());
    assert_eq!(backend.0.connects.load(Ordering::SeqCst), 2, "the expired connection must have been replaced");
    let m = pool.metrics();
    assert_eq!((m.closed_lifetime, m.closed_broken), (1, 0), "{m:?}");
}

#[tokio::test]
async fn connections_within_their_max_lifetime_are_reused() {
    let backend = CountingBackend::default();
    let pool = Pool::new(backend.clone(), &config().max_lifetime(Some(Duration::from_secs(60))), "t").await.unwrap();
    for _ in 0..20 {
        drop(pool.get().await.unwrap());
    }
    assert_eq!(backend.0.connects.load(Ordering::SeqCst), 1);
    assert_eq!(pool.metrics().closed_lifetime, 0);
}

#[tokio::test]
async fn a_fatal_connect_failure_fails_a_waiting_checkout_at_once_not_after_the_timeout() {
    let backend = CountingBackend::default();
    let cfg = config().connection_timeout(Duration::from_secs(30));
    let pool = Pool::new(backend.clone(), &cfg, "t").await.unwrap();
    let held = pool.get().await.unwrap();
    held.broken.store(true, Ordering::SeqCst);
    drop(held); // the only connection is gone; the next checkout must connect
    *backend.0.fail_with.lock().unwrap() =
        Some(DatabaseError::Authentication { user: "app".into(), message: "password authentication failed".into() });
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, DatabaseError::Authentication { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_refused_connect_with_no_connection_left_fails_fast_and_the_pool_heals() {
    let backend = CountingBackend::default();
    let cfg = config().connection_timeout(Duration::from_secs(30));
    let pool = Pool::new(backend.clone(), &cfg, "t").await.unwrap();
    let held = pool.get().await.unwrap();
    held.broken.store(true, Ordering::SeqCst);
    drop(held);
    *backend.0.fail_with.lock().unwrap() =
        Some(DatabaseError::ConnectionRefused { address: "db:5432".into(), message: "refused".into() });
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, DatabaseError::ConnectionRefused { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2));
    *backend.0.fail_with.lock().unwrap() = None;
    pool.get().await.expect("the pool must heal once connecting works again");
}

#[tokio::test]
async fn the_first_connection_failing_fails_the_pool_build_with_the_cause() {
    let backend = CountingBackend::default();
    *backend.0.fail_with.lock().unwrap() = Some(DatabaseError::DatabaseNotFound { database: "nope".into() });
    let err = Pool::new(backend, &config(), "t").await.unwrap_err();
    assert!(matches!(err, DatabaseError::DatabaseNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unconnected_pool_opens_nothing_until_asked_then_reports_the_cause_and_heals() {
    let backend = CountingBackend::default();
    *backend.0.fail_with.lock().unwrap() =
        Some(DatabaseError::ConnectionRefused { address: "db:5432".into(), message: "refused".into() });
    let cfg = config().connection_timeout(Duration::from_secs(30));
    let pool = Pool::new_unconnected(backend.clone(), &cfg, "t").expect("no connection is opened to build it");
    assert_eq!(pool.state().connections, 0);
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, DatabaseError::ConnectionRefused { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    *backend.0.fail_with.lock().unwrap() = None;
    pool.get().await.expect("connects once the server answers");
    assert_eq!(backend.0.connects.load(Ordering::SeqCst), 1);
    let bad = PoolConfig::default().max_connections(0);
    assert!(matches!(Pool::new_unconnected(backend, &bad, "t"), Err(DatabaseError::Config(_))));
}

#[tokio::test]
async fn a_discarded_connection_is_closed_not_handed_out_again() {
    let backend = CountingBackend::default();
    let pool = Pool::new(backend.clone(), &config(), "t").await.unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.discard();
    drop(conn);
    let _again = pool.get().await.unwrap();
    assert_eq!(backend.0.connects.load(Ordering::SeqCst), 2, "a new connection replaced the discarded one");
    assert_eq!(pool.metrics().closed_broken, 1);
}

#[tokio::test]
async fn an_exhausted_pool_times_out_after_connection_timeout_and_recovers() {
    let pool = Pool::new(CountingBackend::default(), &config(), "t").await.unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, DatabaseError::PoolTimeout(_)), "{err:?}");
    assert!(waited >= Duration::from_millis(290) && waited < Duration::from_millis(1000), "{waited:?}");
    assert_eq!(pool.metrics().timeouts, 1);
    drop((a, b));
    pool.get().await.expect("connections returned to an exhausted pool serve again");
}

#[tokio::test]
async fn state_and_metrics_follow_checkouts() {
    let pool = Pool::new(CountingBackend::default(), &config(), "t").await.unwrap();
    let a = pool.get().await.unwrap();
    let s = pool.state();
    assert_eq!((s.connections, s.in_use, s.max), (1, 1, 2));
    let m = pool.metrics();
    assert_eq!((m.acquired, m.in_use, m.created), (1, 1, 1));
    drop(a);
    let m = pool.metrics();
    assert_eq!((m.returned, m.in_use), (1, 0));
}

#[tokio::test]
async fn an_invalid_pool_config_is_refused_naming_the_field() {
    match Pool::new(CountingBackend::default(), &PoolConfig::default().max_connections(0), "t").await {
        Err(DatabaseError::Config(e)) => assert_eq!(e.key(), "max_connections"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn many_tasks_share_a_small_pool_without_deadlock() {
    let pool =
        Pool::new(CountingBackend::default(), &config().connection_timeout(Duration::from_secs(5)), "t").await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let c = pool.get().await.unwrap();
                    tokio::task::yield_now().await;
                    drop(c);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let m = pool.metrics();
    assert_eq!(m.acquired, 64 * 20);
    assert_eq!(m.in_use, 0);
    assert!(pool.state().connections <= 2);
}

#[tokio::test]
async fn a_checkout_waiting_on_a_full_pool_whose_connection_dies_reports_the_connect_failure() {
    // One connection, held: the next checkout waits on a full pool (and so does not listen for connect
    // failures). The held connection dies and reconnecting is refused: the waiter ends at its timeout, naming
    // the refusal rather than a bare timeout.
    let backend = CountingBackend::default();
    let cfg = config().max_connections(1).connection_timeout(Duration::from_millis(400));
    let pool = Pool::new(backend.clone(), &cfg, "t").await.unwrap();
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            (pool.get_owned().await.map(drop), started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    *backend.0.fail_with.lock().unwrap() =
        Some(DatabaseError::ConnectionRefused { address: "db:5432".into(), message: "refused".into() });
    held.broken.store(true, Ordering::SeqCst);
    drop(held);
    let (result, waited) = waiter.await.unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, DatabaseError::ConnectionRefused { .. }), "{err:?}");
    assert!(waited < Duration::from_millis(1000), "bounded by connection_timeout: {waited:?}");
    *backend.0.fail_with.lock().unwrap() = None;
    pool.get().await.expect("the pool heals once connecting works again");
}

#[tokio::test]
async fn an_owned_checkout_outlives_the_borrow_of_the_pool_and_returns_on_drop() {
    let pool = Pool::new(CountingBackend::default(), &config(), "t").await.unwrap();
    let conn = {
        let borrowed = pool.clone();
        borrowed.get_owned().await.unwrap()
    };
    let task = tokio::spawn(async move {
        assert!(!conn.broken.load(Ordering::SeqCst));
        drop(conn);
    });
    task.await.unwrap();
    let m = pool.metrics();
    assert_eq!((m.acquired, m.returned, m.in_use), (1, 1, 0));
    assert_eq!(pool.state().in_use, 0);
}
