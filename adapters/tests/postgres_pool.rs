//! The PostgreSQL pool against real servers: the shared test server (a database of its own per test) and
//! private servers the tests start, stop and configure (password auth, TLS).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "postgres")]

use std::time::{Duration, Instant};

use cpc_adapters::pool::{DatabaseError, HealthChecker, PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgPool, SslMode};
use cpc_ports::{HealthCheck, HealthStatus};
use cpc_test_servers::{PrivatePostgres, TestDatabase};

async fn pool_for(url: &str, config: PoolConfig) -> PgPool {
    PoolFactory::create_postgres_pool(&PgConfig::from_url(url).unwrap(), &config).await.unwrap()
}

async fn build(url: &str) -> (Result<PgPool, DatabaseError>, Duration) {
    let started = Instant::now();
    let result = PoolFactory::create_postgres_pool(&PgConfig::from_url(url).unwrap(), &PoolConfig::default()).await;
    (result, started.elapsed())
}

#[tokio::test]
async fn queries_run_through_the_pool_and_statements_are_cached_per_connection() {
    let db = TestDatabase::create().await;
    let pool = pool_for(db.url(), PoolConfig::default().max_connections(1)).await;
    let mut conn = pool.get().await.unwrap();
    let stmt = conn.prepare_cached("SELECT $1::int + 1").await.unwrap();
    conn.prepare_cached("SELECT $1::int + 1").await.unwrap();
    // simple_query: the count itself must not prepare a statement.
    let rows = conn.simple_query("SELECT count(*) FROM pg_prepared_statements").await.unwrap();
    let prepared = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(prepared.as_deref(), Some("1"), "the second call must reuse the statement prepared on the server");
    let row = conn.query_one(&stmt, &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(conn.cached_statements(), 1);
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.cached_statements(), 1, "the cache lives with the connection across checkouts");
}

#[tokio::test]
async fn an_unknown_database_is_reported_as_such_within_two_seconds() {
    let probe = TestDatabase::create().await; // proves the server is up, gives host and port
    let url =
        format!("postgres://{}@{}:{}/cpc_no_such_db_{}", probe.user(), probe.host(), probe.port(), std::process::id());
    let (result, took) = build(&url).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, DatabaseError::DatabaseNotFound { ref database } if database.starts_with("cpc_no_such_db")),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_refused_port_is_reported_as_such_within_two_seconds() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let (result, took) = build(&format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable")).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, DatabaseError::ConnectionRefused { ref address, .. } if address.ends_with(&port.to_string())),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_within_two_seconds_and_never_shows_the_password() {
    let pg = PrivatePostgres::builder().password_auth("right-horse-battery").start().await;
    let good = pg.url_for_user("postgres", Some("right-horse-battery"));
    build(&good).await.0.expect("the right password connects");
    let bad = pg.url_for_user("postgres", Some("wrong-staple-9431"));
    let (result, took) = build(&bad).await;
    let err = result.unwrap_err();
    assert!(matches!(err, DatabaseError::Authentication { ref user, .. } if user == "postgres"), "{err:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!format!("{err} {err:?}").contains("wrong-staple-9431"), "the password leaked into the error: {err:?}");
    let missing = pg.url_for_user("postgres", None);
    let err = build(&missing).await.0.unwrap_err();
    assert!(matches!(err, DatabaseError::Authentication { .. }), "no password at all: {err:?}");
}

#[tokio::test]
async fn a_waiting_checkout_learns_of_a_wrong_password_at_once() {
    // A pool whose server changes its mind about the password after start-up: the next connect fails, and the
    // checkout waiting for it gets Authentication, not a timeout 30 s later.
    let pg = PrivatePostgres::builder().password_auth("first").start().await;
    let pool = pool_for(
        &pg.url_for_user("postgres", Some("first")),
        PoolConfig::default().max_connections(2).connection_timeout(Duration::from_secs(30)),
    )
    .await;
    let held = pool.get().await.unwrap();
    pg.set_password("postgres", "second").await;
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, DatabaseError::Authentication { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    drop(held);
}

mod tls {
    use super::*;

    fn verified(url: &str, mode: SslMode, ca: &std::path::Path) -> PgConfig {
        let mut c = PgConfig::from_url(url).unwrap();
        c.ssl_mode = mode;
        c.ssl_root_cert = Some(ca.to_path_buf());
        c
    }

    async fn connect(config: &PgConfig) -> Result<PgPool, DatabaseError> {
        PoolFactory::create_postgres_pool(config, &PoolConfig::default()).await
    }

    async fn is_encrypted(pool: &PgPool) -> bool {
        let conn = pool.get().await.unwrap();
        conn.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
    }

    #[tokio::test]
    async fn verify_full_with_the_right_ca_connects_encrypted() {
        let pg = PrivatePostgres::builder().tls(true).start().await;
        let pool = connect(&verified(&pg.url(), SslMode::VerifyFull, pg.ca_cert_path())).await.unwrap();
        assert!(is_encrypted(&pool).await);
        let by_name =
            connect(&verified(&pg.url_for_host("localhost"), SslMode::VerifyFull, pg.ca_cert_path())).await.unwrap();
        assert!(is_encrypted(&by_name).await);
    }

    #[tokio::test]
    async fn a_wrong_ca_is_a_tls_error() {
        let pg = PrivatePostgres::builder().tls(true).start().await;
        let started = Instant::now();
        let err = connect(&verified(&pg.url(), SslMode::VerifyFull, pg.wrong_ca_cert_path())).await.unwrap_err();
        assert!(matches!(err, DatabaseError::Tls { .. }), "{err:?}");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let err = connect(&verified(&pg.url(), SslMode::VerifyCa, pg.wrong_ca_cert_path())).await.unwrap_err();
        assert!(matches!(err, DatabaseError::Tls { .. }), "verify-ca checks the chain too: {err:?}");
    }

    #[tokio::test]
    async fn a_host_name_not_in_the_certificate_fails_verify_full_but_passes_verify_ca() {
        let pg = PrivatePostgres::builder().tls(true).start().await;
        let other = pg.url_for_host(pg.tls_mismatch_ip());
        let err = connect(&verified(&other, SslMode::VerifyFull, pg.ca_cert_path())).await.unwrap_err();
        assert!(matches!(err, DatabaseError::Tls { .. }), "{err:?}");
        assert!(err.to_string().contains("not valid for name"), "{err}");
        let pool = connect(&verified(&other, SslMode::VerifyCa, pg.ca_cert_path())).await.unwrap();
        assert!(is_encrypted(&pool).await, "verify-ca checks the chain, not the name");
    }

    #[tokio::test]
    async fn require_encrypts_without_a_root_certificate() {
        let pg = PrivatePostgres::builder().tls(true).start().await;
        let mut c = PgConfig::from_url(&pg.url()).unwrap();
        c.ssl_mode = SslMode::Require;
        let pool = connect(&c).await.unwrap();
        assert!(is_encrypted(&pool).await);
    }

    #[tokio::test]
    async fn requiring_tls_from_a_server_without_it_is_a_tls_error() {
        let pg = PrivatePostgres::start_default().await;
        let mut c = PgConfig::from_url(&pg.url()).unwrap();
        c.ssl_mode = SslMode::Require;
        let err = connect(&c).await.unwrap_err();
        assert!(matches!(err, DatabaseError::Tls { .. }), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_heals_after_a_server_restart_without_hanging() {
    let pg = PrivatePostgres::start_default().await;
    let timeout = Duration::from_secs(2);
    let pool = pool_for(&pg.url(), PoolConfig::default().max_connections(4).connection_timeout(timeout)).await;
    let query = |pool: PgPool| async move {
        let conn = pool.get().await?;
        let row = conn.query_one("SELECT 1", &[]).await.map_err(|e| pool.backend().classify(e))?;
        Ok::<i32, DatabaseError>(row.get(0))
    };
    assert_eq!(query(pool.clone()).await.unwrap(), 1);

    pg.stop().await;
    for i in 0..50 {
        let started = Instant::now();
        let err = tokio::time::timeout(timeout * 2, query(pool.clone())).await.expect("no call may hang").unwrap_err();
        assert!(started.elapsed() <= timeout + Duration::from_millis(500), "{:?}", started.elapsed());
        assert!(err.is_retryable(), "an outage is retryable: {err:?}");
        assert!(
            matches!(err, DatabaseError::Unavailable(_) | DatabaseError::ConnectionRefused { .. }),
            "call {i} in the outage must be Unavailable or ConnectionRefused: {err:?} (state {:?})",
            pool.state()
        );
    }

    pg.start().await;
    let back = Instant::now();
    loop {
        if query(pool.clone()).await.is_ok() {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(2), "the pool must heal within 2 s of the server's return");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        assert_eq!(query(pool.clone()).await.unwrap(), 1, "steady again after recovery");
    }
}

#[tokio::test]
async fn an_exhausted_pool_times_out_and_serves_again() {
    let db = TestDatabase::create().await;
    let pool =
        pool_for(db.url(), PoolConfig::default().max_connections(2).connection_timeout(Duration::from_millis(200)))
            .await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, DatabaseError::PoolTimeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(300));
    drop((a, b));
    pool.get().await.unwrap();
    assert_eq!(pool.metrics().timeouts, 1);
}

#[tokio::test]
async fn health_reports_server_version_and_pool_state() {
    let db = TestDatabase::create().await;
    let pool = pool_for(db.url(), PoolConfig::default()).await;
    let report = HealthChecker::check_pool(&pool).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.component, "postgres");
    assert!(report.details["server_version"].chars().next().unwrap().is_ascii_digit(), "{report:?}");
    assert_eq!(report.details["connections"], "1");
    assert!(!report.details["address"].contains('@'));
}

mod health_contract {
    use std::sync::Arc;

    use super::*;

    async fn healthy() -> Arc<dyn HealthCheck> {
        let db = TestDatabase::create().await;
        let pool = pool_for(db.url(), PoolConfig::default()).await;
        std::mem::forget(db); // keep the database for the checker; it is dropped by the next run's clean-up
        Arc::new(HealthChecker::new(pool))
    }

    async fn unreachable() -> Arc<dyn HealthCheck> {
        let db = TestDatabase::create().await;
        let pool = pool_for(db.url(), PoolConfig::default().validation_skip_window(Duration::ZERO)).await;
        db.drop_now().await; // the database vanishes: its connections are cut, reconnecting finds nothing
        Arc::new(HealthChecker::new(pool))
    }

    cpc_testkit::health_contract!(healthy = healthy(), unreachable = unreachable());
}

#[tokio::test]
async fn metrics_count_real_connections_and_checkouts() {
    let db = TestDatabase::create().await;
    let pool = pool_for(db.url(), PoolConfig::default()).await;
    for _ in 0..5 {
        let conn = pool.get().await.unwrap();
        conn.query_one("SELECT 1", &[]).await.unwrap();
    }
    let m = pool.metrics();
    assert_eq!((m.acquired, m.returned, m.in_use), (5, 5, 0));
    assert!(m.created >= 1 && m.connect_total > Duration::ZERO, "{m:?}");
}

#[path = "common/logs.rs"]
mod logs;

/// A server on another machine reached with `sslmode=prefer` (libpq's default) or `disable` is warned about once
/// when the pool's backend is built (nothing is sent: the address is never dialled here); loopback servers and
/// required TLS are not.
#[test]
fn plain_text_to_another_machine_is_warned_about() {
    use cpc_adapters::postgres::{PgBackend, SslMode};
    let warned = |host: &str, mode: SslMode| {
        let (captured, _guard) = logs::capture();
        let config = PgConfig::builder().host(host).ssl_mode(mode).build().unwrap();
        PgBackend::new(&config).unwrap();
        captured.text().contains("can be downgraded to plain text")
    };
    assert!(warned("10.255.255.1", SslMode::Prefer));
    assert!(warned("db.example.org", SslMode::Disable));
    assert!(!warned("127.0.0.1", SslMode::Prefer));
    assert!(!warned("localhost", SslMode::Prefer));
    assert!(!warned("::1", SslMode::Disable));
    assert!(!warned("db.example.org", SslMode::Require));
}
