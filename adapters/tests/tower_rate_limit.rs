//! `RateLimitLayer` end to end: a real axum server on 127.0.0.1, real HTTP requests, and the limiter on a real
//! Redis server (a namespace per test) or in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "tower", feature = "redis"))]

#[allow(dead_code)]
mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::http::{header, serve};
use cpc_adapters::redis::{RedisConfig, RedisManager, RedisRateLimiter};
use cpc_adapters::tower::{ClientIp, FailurePolicy, HeaderKey, RateLimitLayer};
use cpc_ports::{RateLimitPolicy, RateLimiter};
use cpc_test_servers::PrivateRedis;
use cpc_testkit::memory::InMemoryRateLimiter;
use http::HeaderName;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const WINDOW: RateLimitPolicy = RateLimitPolicy::sliding_window(3, Duration::from_secs(60));

/// An app whose one route counts how often it was reached.
fn app<L: RateLimiter + ?Sized>(
    layer: RateLimitLayer<L, impl cpc_adapters::tower::KeyExtractor>,
) -> (Router, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let router = Router::new()
        .route(
            "/",
            get(move || {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "hello"
                }
            }),
        )
        .layer(layer);
    (router, hits)
}

async fn redis_limiter(test: &str) -> Arc<RedisRateLimiter> {
    Arc::new(RedisRateLimiter::new(common::redis::shared_manager(test).await))
}

async fn allowed_then_429_with_retry_after(limiter: Arc<dyn RateLimiter>) {
    let layer = RateLimitLayer::new(limiter, WINDOW, ClientIp::peer()).unwrap().scope(uuid::Uuid::new_v4().to_string());
    let (router, hits) = app(layer);
    let base = serve(router).await;
    let client = reqwest::Client::new();
    for remaining in [2, 1, 0] {
        let response = client.get(&base).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-policy"), Some("3;w=60"));
        let expected = format!("limit=3, remaining={remaining}, reset=");
        assert!(header(&response, "ratelimit").unwrap().starts_with(&expected), "{:?}", response.headers());
        assert_eq!(header(&response, "retry-after"), None);
        assert_eq!(response.text().await.unwrap(), "hello");
    }
    let refused = client.get(&base).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(header(&refused, "ratelimit").unwrap().starts_with("limit=3, remaining=0, reset="));
    assert_eq!(hits.load(Ordering::SeqCst), 3, "a refused request never reaches the handler");
}

#[tokio::test]
async fn redis_allowed_requests_get_headers_and_the_fourth_gets_429_with_retry_after() {
    allowed_then_429_with_retry_after(redis_limiter("tower-rl").await).await;
}

#[tokio::test]
async fn memory_allowed_requests_get_headers_and_the_fourth_gets_429_with_retry_after() {
    allowed_then_429_with_retry_after(Arc::new(InMemoryRateLimiter::new())).await;
}

#[tokio::test]
async fn each_api_key_has_its_own_allowance_and_requests_without_one_pass() {
    let limiter = redis_limiter("tower-rl-keys").await;
    let policy = RateLimitPolicy::token_bucket(1, 1);
    let layer = RateLimitLayer::new(limiter, policy, HeaderKey::new(HeaderName::from_static("x-api-key"))).unwrap();
    let (router, hits) = app(layer);
    let base = serve(router).await;
    let client = reqwest::Client::new();
    let call = |key: Option<&'static str>| {
        let mut request = client.get(&base);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(call(Some("a")).await, 200);
    assert_eq!(call(Some("a")).await, 429);
    assert_eq!(call(Some("b")).await, 200, "another key has its own bucket");
    assert_eq!(call(None).await, 200, "no key: not limited");
    assert_eq!(call(None).await, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

/// Log lines written through `tracing`, and the metrics recorder, for this test binary.
struct Observed {
    logs: Arc<Mutex<Vec<u8>>>,
    metrics: Snapshotter,
}

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn observed() -> &'static Observed {
    static OBSERVED: OnceLock<Observed> = OnceLock::new();
    OBSERVED.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(Arc::clone(&logs));
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).init();
        let recorder = DebuggingRecorder::new();
        let metrics = recorder.snapshotter();
        recorder.install().unwrap();
        Observed { logs, metrics }
    })
}

fn outcome_count(snapshot: &[(String, String, u64)], outcome: &str) -> u64 {
    snapshot.iter().filter(|(n, o, _)| n == "cpc_http_rate_limit_total" && o == outcome).map(|(_, _, v)| *v).sum()
}

fn rate_limit_counters(metrics: &Snapshotter) -> Vec<(String, String, u64)> {
    metrics
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let outcome = key.labels().find(|l| l.key() == "outcome")?.value().to_owned();
            let DebugValue::Counter(n) = value else { return None };
            Some((key.name().to_owned(), outcome, n))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_that_is_down_fails_open_or_closed_as_configured_and_says_so() {
    let observed = observed();
    let server = PrivateRedis::start().await;
    let config = RedisConfig::builder()
        .port(server.port())
        .namespace("tower-rl-down:")
        .response_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let limiter = Arc::new(RedisRateLimiter::new(RedisManager::new(&config).await.unwrap()));
    let open = RateLimitLayer::new(Arc::clone(&limiter), WINDOW, ClientIp::peer()).unwrap();
    let closed = open.clone().on_failure(FailurePolicy::FailClosed);
    let (open_app, open_hits) = app(open);
    let (closed_app, closed_hits) = app(closed);
    let (open_url, closed_url) = (serve(open_app).await, serve(closed_app).await);
    let client = reqwest::Client::new();
    assert_eq!(client.get(&open_url).send().await.unwrap().status(), 200, "the limiter works while Redis is up");
    let _ = rate_limit_counters(&observed.metrics); // start counting from here

    server.kill();
    let response = client.get(&open_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "fail open lets the request through");
    assert_eq!(header(&response, "ratelimit"), None, "no headers without a decision");
    let response = client.get(&closed_url).send().await.unwrap();
    assert_eq!(response.status(), 503, "fail closed refuses it");
    assert_eq!((open_hits.load(Ordering::SeqCst), closed_hits.load(Ordering::SeqCst)), (2, 0));

    let counters = rate_limit_counters(&observed.metrics);
    assert_eq!(outcome_count(&counters, "failed_open"), 1, "{counters:?}");
    assert_eq!(outcome_count(&counters, "failed_closed"), 1, "{counters:?}");
    let logs = String::from_utf8(observed.logs.lock().unwrap().clone()).unwrap();
    let line = |policy: &str| {
        logs.lines().find(|l| l.contains("WARN") && l.contains(&format!("policy=\"{policy}\""))).map(str::to_owned)
    };
    let open_line = line("fail_open").unwrap_or_else(|| panic!("no fail-open warning in:\n{logs}"));
    assert!(open_line.contains("request let through") && open_line.contains("error.type="), "{open_line}");
    let closed_line = line("fail_closed").unwrap_or_else(|| panic!("no fail-closed warning in:\n{logs}"));
    assert!(closed_line.contains("request refused"), "{closed_line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_limiter_fails_open_or_closed_within_the_response_timeout() {
    let server = PrivateRedis::start().await;
    let response_timeout = Duration::from_millis(400);
    let manager = common::redis::private_manager(&server, "tower-rl-stuck:", response_timeout).await;
    let limiter = Arc::new(RedisRateLimiter::new(manager));
    let open = RateLimitLayer::new(Arc::clone(&limiter), WINDOW, HeaderKey::new(HeaderName::from_static("x-api-key")))
        .unwrap();
    let closed = open.clone().on_failure(FailurePolicy::FailClosed);
    let (open_app, open_hits) = app(open);
    let (closed_app, closed_hits) = app(closed);
    let (open_url, closed_url) = (serve(open_app).await, serve(closed_app).await);
    let client = reqwest::Client::new();
    let request = |url: &str, i: usize| {
        let call = client.get(url).header("x-api-key", format!("key{i}")).send();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let status = call.await.unwrap().status().as_u16();
            (status, started.elapsed())
        })
    };
    assert_eq!(request(&open_url, 0).await.unwrap().0, 200, "the limiter works while Redis answers");

    let stuck = common::redis::stall(&server, Duration::from_secs(2)).await;
    // Requests arriving one after another, so their checks queue behind the batches already in flight.
    let mut calls = Vec::new();
    for i in 1..=12 {
        calls.push((200, request(&open_url, i)));
        calls.push((503, request(&closed_url, i)));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (expected, call) in calls {
        let (status, took) =
            tokio::time::timeout(Duration::from_secs(10), call).await.expect("a request hangs").unwrap();
        assert_eq!(status, expected, "fail open lets requests through, fail closed refuses them");
        assert!(took <= response_timeout + Duration::from_millis(250), "a request answered after {took:?}");
    }
    assert_eq!((open_hits.load(Ordering::SeqCst), closed_hits.load(Ordering::SeqCst)), (13, 0));
    stuck.await.unwrap();
}
