//! [`RedisRateLimiter`] when things go wrong: a stuck server (another client runs a long Lua script, so the
//! server answers nobody), a full queue of checks, and a limiter used from a second tokio runtime after the one
//! that ran its first check has ended. Stalls use a private server so the shared one is never blocked.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::{private_manager, stall};

use std::time::{Duration, Instant};

use cpc_adapters::redis::RedisRateLimiter;
use cpc_ports::{KvError, RateLimitKey, RateLimitPolicy, RateLimiter};
use cpc_test_servers::PrivateRedis;
use tokio::task::JoinHandle;

/// What a failing check may take beyond the response timeout (scheduling on a busy machine).
const SLACK: Duration = Duration::from_millis(250);

fn key(name: &str) -> RateLimitKey {
    RateLimitKey::new(name).unwrap()
}

fn bucket() -> RateLimitPolicy {
    RateLimitPolicy::TokenBucket { capacity: 1000, refill_tokens: 1, refill_interval: Duration::from_secs(1) }
}

async fn limiter_on(server: &PrivateRedis, response_timeout: Duration) -> RedisRateLimiter {
    RedisRateLimiter::new(private_manager(server, "rl-faults:", response_timeout).await)
}

/// Starts one check (timed from its start) every `gap`, so each one finds the driver free to take it alone.
async fn staggered_checks(
    limiter: &RedisRateLimiter,
    count: usize,
    gap: Duration,
) -> Vec<JoinHandle<(Result<bool, KvError>, Duration)>> {
    let mut checks = Vec::new();
    for i in 0..count {
        let limiter = limiter.clone();
        checks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = limiter.check(&key(&format!("k{i}")), &bucket(), 1).await.map(|d| d.allowed);
            (result, started.elapsed())
        }));
        tokio::time::sleep(gap).await;
    }
    checks
}

async fn assert_works_again(limiter: &RedisRateLimiter) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match limiter.check(&key("after"), &bucket(), 1).await {
            Ok(decision) => return assert!(decision.allowed),
            Err(e) => assert!(Instant::now() < deadline, "the limiter does not recover: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_queued_on_a_stuck_server_times_out_within_the_response_timeout() {
    let server = PrivateRedis::start().await;
    let response_timeout = Duration::from_millis(400);
    let limiter = limiter_on(&server, response_timeout).await;
    assert!(limiter.check(&key("warm"), &bucket(), 1).await.unwrap().allowed, "the script is loaded");

    let stuck = stall(&server, Duration::from_secs(2)).await;
    // 16 checks 20 ms apart: the first four fill the batches the driver keeps in flight, the rest queue
    // behind them. Each must still answer within the response timeout of its own call.
    let checks = staggered_checks(&limiter, 16, Duration::from_millis(20)).await;
    for (i, check) in checks.into_iter().enumerate() {
        let (result, took) =
            tokio::time::timeout(Duration::from_secs(10), check).await.expect("a check hangs").unwrap();
        assert!(
            matches!(result, Err(KvError::Timeout { operation: "check rate limit", after }) if after == response_timeout),
            "check {i} on a stuck server: {result:?}"
        );
        assert!(took <= response_timeout + SLACK, "check {i} answered after {took:?}");
    }
    stuck.await.unwrap();
    assert_works_again(&limiter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_finds_the_queue_full_fails_at_once_with_unavailable() {
    let server = PrivateRedis::start().await;
    let response_timeout = Duration::from_millis(1500);
    let limiter = limiter_on(&server, response_timeout).await.with_queue_capacity(4);
    assert_eq!(limiter.queue_capacity(), 4);
    assert_eq!(RedisRateLimiter::DEFAULT_QUEUE_CAPACITY, 4096);
    assert!(limiter.check(&key("warm"), &bucket(), 1).await.unwrap().allowed);

    let stuck = stall(&server, Duration::from_secs(3)).await;
    // Four batches in flight (the most the driver sends at once), then four checks fill the queue.
    let fillers = staggered_checks(&limiter, 12, Duration::from_millis(25)).await;
    for i in 0..20 {
        let started = Instant::now();
        let result = limiter.check(&key(&format!("extra{i}")), &bucket(), 1).await;
        let took = started.elapsed();
        match &result {
            Err(KvError::Unavailable { backend: "redis", reason }) => {
                assert!(reason.contains("queue is full (4 checks waiting)"), "{reason}");
            }
            other => panic!("extra check {i} with a full queue: {other:?}"),
        }
        assert!(result.as_ref().unwrap_err().is_retryable());
        assert!(took < Duration::from_millis(100), "a full queue answers at once, not after {took:?}");
    }
    for check in fillers {
        let (result, took) =
            tokio::time::timeout(Duration::from_secs(10), check).await.expect("a check hangs").unwrap();
        assert!(
            matches!(result, Err(KvError::Timeout { .. }) | Err(KvError::Unavailable { .. })),
            "a filler check: {result:?}"
        );
        assert!(took <= response_timeout + SLACK, "a filler check answered after {took:?}");
    }
    stuck.await.unwrap();
    assert_works_again(&limiter).await;
}

#[test]
fn a_limiter_keeps_working_from_a_second_runtime_after_the_first_has_ended() {
    // The manager's connection lives on a runtime that stays up; the limiter's first check runs on another one.
    let base = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let limiter = base.block_on(async { RedisRateLimiter::new(common::redis::shared_manager("rl-runtimes").await) });
    let policy = RateLimitPolicy::sliding_window(3, Duration::from_secs(60));
    let check = |runtime: &tokio::runtime::Runtime| {
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), limiter.check(&key("k"), &policy, 1))
                .await
                .expect("a check hangs")
        })
    };
    let current_thread = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let first = current_thread();
    assert_eq!(check(&first).unwrap().remaining, 2, "the first runtime starts the batching task");
    drop(first);

    let second = current_thread();
    let decision = check(&second).expect("the limiter must work on a new runtime");
    assert_eq!((decision.allowed, decision.remaining), (true, 1), "and keep counting: {decision:?}");
    let decision = check(&second).unwrap();
    assert_eq!((decision.allowed, decision.remaining), (true, 0));
    assert!(!check(&second).unwrap().allowed, "the limit holds across runtimes");
    drop(second);
    // And the base runtime, which outlived both, takes over the same way.
    assert!(!check(&base).unwrap().allowed);
}
