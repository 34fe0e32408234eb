//! The Redis connection layer against real servers: the shared test server (`REDIS_URL`, each test under its own
//! key namespace) and private `redis-server`s the tests start and kill.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::shared_manager;

use std::time::{Duration, Instant};

use cpc_adapters::redis::{RedisConfig, RedisHealthChecker, RedisManager};
use cpc_ports::{HealthCheck, HealthStatus, KvError};
use cpc_test_servers::PrivateRedis;

#[tokio::test]
async fn commands_run_on_the_shared_connection_under_the_namespace() {
    let m = shared_manager("commands").await;
    let key = m.key("greeting");
    assert!(key.starts_with("cpc-test:commands:"), "{key}");
    let mut set = redis::cmd("SET");
    set.arg(&key).arg("hello").arg("PX").arg(10_000);
    let _: () = m.query(&set, "set").await.unwrap();
    let got: String = m.query(redis::cmd("GET").arg(&key), "get").await.unwrap();
    assert_eq!(got, "hello");
    let mut conn = m.exclusive().await.unwrap();
    let got: String = redis::cmd("GET").arg(&key).query_async(&mut *conn).await.unwrap();
    assert_eq!(got, "hello", "the exclusive pool reaches the same database");
}

#[tokio::test]
async fn a_reply_that_comes_after_its_timeout_never_reaches_another_caller() {
    let server = PrivateRedis::start().await;
    let config =
        RedisConfig::builder().port(server.port()).response_timeout(Duration::from_millis(200)).build().unwrap();
    let m = RedisManager::new(&config).await.unwrap();
    let _: () = m.query(redis::cmd("SET").arg("k").arg("the value"), "set").await.unwrap();
    // A script that keeps the server busy for 500 ms; its reply ("late") arrives after the caller gave up.
    let busy = "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] \
                while true do local t = redis.call('TIME') \
                if t[1] * 1000000 + t[2] - t0 > 500000 then break end end return 'late'";
    let slow = m.query::<String>(redis::cmd("EVAL").arg(busy).arg(0), "slow script").await;
    assert!(matches!(slow, Err(KvError::Timeout { .. })), "{slow:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        let got: String = m.query(redis::cmd("GET").arg("k"), "get").await.unwrap();
        assert_eq!(got, "the value", "a late reply must never be delivered to a later command");
    }
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_within_two_seconds() {
    let server = PrivateRedis::with_password("right-pass").await;
    let started = Instant::now();
    let config = RedisConfig::builder().port(server.port()).password("wrong-pass-1234").build().unwrap();
    let err = RedisManager::new(&config).await.unwrap_err();
    assert!(matches!(err, KvError::Authentication { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("wrong-pass-1234"), "the password leaked: {err:?}");
    let ok = RedisConfig::builder().port(server.port()).password("right-pass").build().unwrap();
    RedisManager::new(&ok).await.expect("the right password connects");
}

#[tokio::test]
async fn a_refused_port_is_unavailable_within_two_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let err = RedisManager::new(&RedisConfig::builder().port(port).build().unwrap()).await.unwrap_err();
    assert!(matches!(err, KvError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn health_reports_version_and_role() {
    let m = shared_manager("health").await;
    let report = RedisHealthChecker::new(m).check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(report.details["server_version"].starts_with(|c: char| c.is_ascii_digit()), "{report:?}");
    assert_eq!(report.details["role"], "master");
}

/// A server that may evict keys without a TTL (the job queues' jobs still to be worked) is reported `Degraded` with the
/// reason; `noeviction` and `volatile-*` are healthy.
#[tokio::test]
async fn health_is_degraded_when_the_eviction_policy_can_drop_durable_keys() {
    let server = PrivateRedis::start().await;
    let m = RedisManager::new(&RedisConfig::builder().port(server.port()).build().unwrap()).await.unwrap();
    let check = RedisHealthChecker::new(m.clone());
    for (policy, status) in [
        ("noeviction", HealthStatus::Healthy),
        ("volatile-lru", HealthStatus::Healthy),
        ("allkeys-lru", HealthStatus::Degraded),
        ("allkeys-random", HealthStatus::Degraded),
    ] {
        let _: () =
            m.query(redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg(policy), "config").await.unwrap();
        let report = check.check().await;
        assert_eq!((report.status, report.details["maxmemory_policy"].as_str()), (status, policy), "{report:?}");
        assert_eq!(report.details.contains_key("reason"), status == HealthStatus::Degraded, "{report:?}");
    }
}

mod health_contract {
    use std::sync::Arc;

    use super::*;

    async fn unreachable() -> Arc<dyn HealthCheck> {
        let server = PrivateRedis::start().await;
        let config = RedisConfig::builder()
            .port(server.port())
            .connect_timeout(Duration::from_millis(300))
            .response_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let m = RedisManager::new(&config).await.unwrap();
        drop(server); // killed: the manager's connection is gone and reconnecting is refused
        Arc::new(RedisHealthChecker::new(m))
    }

    cpc_testkit::health_contract!(
        healthy = async {
            Arc::new(RedisHealthChecker::new(shared_manager("health-contract").await)) as Arc<dyn HealthCheck>
        },
        unreachable = unreachable()
    );
}

mod tls {
    use super::*;
    use cpc_adapters::redis::PubSubManager;
    use cpc_ports::{Channel, PubSub};
    use futures::StreamExt;

    fn config(server: &PrivateRedis, ca: std::path::PathBuf) -> RedisConfig {
        let mut c = RedisConfig::parse_url(&server.url(), "url").unwrap();
        c.ca_cert = Some(ca);
        c.connect_timeout = Duration::from_secs(1);
        c
    }

    #[tokio::test]
    async fn rediss_with_the_right_ca_connects_for_commands_exclusive_use_and_pub_sub() {
        let server = PrivateRedis::with_tls().await;
        assert!(server.url().starts_with("rediss://"));
        let m = RedisManager::new(&config(&server, server.ca_cert_path())).await.unwrap();
        let _: () = m.query(redis::cmd("SET").arg("k").arg("over tls"), "set").await.unwrap();
        let got: String = m.query(redis::cmd("GET").arg("k"), "get").await.unwrap();
        assert_eq!(got, "over tls");
        let mut conn = m.exclusive().await.unwrap();
        let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
        assert_eq!(pong, "PONG");
        let bus = PubSubManager::new(m.clone());
        let channel = Channel::new("tls-events").unwrap();
        let mut sub = bus.subscribe_bytes(&channel).await.unwrap();
        bus.publish_bytes(&channel, cpc_ports::Bytes::from_static(b"hello")).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(2), sub.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(msg.payload, cpc_ports::Bytes::from_static(b"hello"));
    }

    #[tokio::test]
    async fn rediss_with_a_wrong_ca_fails_fast_and_plain_redis_is_refused() {
        let server = PrivateRedis::with_tls().await;
        let started = Instant::now();
        let err = RedisManager::new(&config(&server, server.wrong_ca_cert_path())).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(!matches!(err, KvError::Authentication { .. }), "{err:?}");
        assert!(err.to_string().contains("UnknownIssuer"), "the certificate check must be what fails: {err}");
        assert!(matches!(&err, KvError::Validation(v) if v.field == "ca_cert"), "not retryable: {err:?}");
        let plain =
            RedisConfig::builder().port(server.port()).connect_timeout(Duration::from_millis(500)).build().unwrap();
        assert!(RedisManager::new(&plain).await.is_err(), "a TLS-only server must not serve plain connections");
    }
}
