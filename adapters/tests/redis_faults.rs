//! Fault injection on a private `redis-server`: commands through a [`RedisManager`] fail fast (never hang) while
//! the server is dead or stuck, and work again after it is back, on the same manager; so does every operation of
//! every adapter.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

use std::time::Duration;

use cpc_adapters::redis::{
    CacheManager, DistributedLock, PubSubManager, RedisConfig, RedisManager, RedisRateLimiter, SessionManager,
};
use cpc_ports::{
    Bytes, Cache, CacheKey, Channel, KvError, Lock, LockKey, LockLease, PubSub, RateLimitKey, RateLimitPolicy,
    RateLimiter, SessionId, SessionStore,
};
use cpc_test_servers::PrivateRedis;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::{Instant, timeout};

/// The response timeout every manager here uses.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// What a failing command may take beyond the response timeout (scheduling, a reconnect attempt).
const SLACK: Duration = Duration::from_millis(300);
/// A command that takes this long counts as hung.
const HANG: Duration = Duration::from_secs(5);

async fn manager_for(server: &PrivateRedis) -> RedisManager {
    let config = RedisConfig::builder()
        .port(server.port())
        .namespace("faults:")
        .response_timeout(RESPONSE_TIMEOUT)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisManager::new(&config).await.unwrap()
}

/// A few ordinary commands of the kinds the adapters send (plain, conditional write, script).
fn commands(m: &RedisManager) -> Vec<(&'static str, redis::Cmd)> {
    let key = m.key("k");
    let mut set = redis::cmd("SET");
    set.arg(&key).arg("v").arg("PX").arg(60_000);
    let mut get = redis::cmd("GET");
    get.arg(&key);
    let mut set_nx = redis::cmd("SET");
    set_nx.arg(m.key("nx")).arg("v").arg("NX").arg("PX").arg(60_000);
    let mut eval = redis::cmd("EVAL");
    eval.arg("return redis.call('INCR', KEYS[1])").arg(1).arg(m.key("n"));
    vec![("PING", redis::cmd("PING")), ("SET", set), ("GET", get), ("SET NX", set_nx), ("EVAL", eval)]
}

/// Runs `cmd` and returns its result and how long it took; fails the test if it hangs.
async fn timed(m: &RedisManager, name: &str, cmd: &redis::Cmd) -> (Result<redis::Value, KvError>, Duration) {
    let started = Instant::now();
    let result = timeout(HANG, m.query::<redis::Value>(cmd, "fault probe"))
        .await
        .unwrap_or_else(|_| panic!("{name} hung for {HANG:?}"));
    (result, started.elapsed())
}

/// Every command fails with `Unavailable` or `Timeout` within the response timeout plus slack.
async fn assert_all_fail_fast(m: &RedisManager, round: u32) {
    for (name, cmd) in commands(m) {
        let (result, took) = timed(m, name, &cmd).await;
        assert!(
            matches!(result, Err(KvError::Unavailable { .. } | KvError::Timeout { .. })),
            "round {round}: {name} must fail as Unavailable or Timeout, got {result:?}"
        );
        assert!(took <= RESPONSE_TIMEOUT + SLACK, "round {round}: {name} took {took:?}");
    }
}

/// Retries every command until it succeeds, for at most `within`; returns how long recovery took.
async fn assert_recovers_within(m: &RedisManager, within: Duration) -> Duration {
    let started = Instant::now();
    for (name, cmd) in commands(m) {
        loop {
            let (result, _) = timed(m, name, &cmd).await;
            if result.is_ok() {
                break;
            }
            assert!(started.elapsed() < within, "{name} still fails {within:?} after the restart: {result:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_fail_fast_while_the_server_is_dead_and_recover_on_the_same_manager() {
    let server = PrivateRedis::start().await;
    let m = manager_for(&server).await;
    assert_recovers_within(&m, Duration::from_secs(1)).await;

    server.kill();
    // Several rounds: the first command finds the dropped connection, later ones the failed reconnects.
    for round in 0..3 {
        assert_all_fail_fast(&m, round).await;
    }

    server.restart().await;
    let took = assert_recovers_within(&m, Duration::from_secs(2)).await;
    eprintln!("recovered {took:?} after the restart");
    let n: i64 = m.query(redis::cmd("INCR").arg(m.key("after")), "incr").await.unwrap();
    assert_eq!(n, 1, "the restarted server is empty (no persistence) and serves this manager");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_all_fail_fast_while_the_server_is_dead() {
    let server = PrivateRedis::start().await;
    let m = manager_for(&server).await;
    server.kill();
    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move {
                let key = m.key(&format!("c{i}"));
                timeout(HANG, m.query::<Option<String>>(redis::cmd("GET").arg(key), "get")).await
            })
        })
        .collect();
    for task in tasks {
        let result = task.await.unwrap().expect("a concurrent command hung");
        assert!(matches!(result, Err(KvError::Unavailable { .. } | KvError::Timeout { .. })), "{result:?}");
    }
    assert!(started.elapsed() <= RESPONSE_TIMEOUT + SLACK, "50 concurrent commands took {:?}", started.elapsed());
    server.restart().await;
    assert_recovers_within(&m, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_time_out_while_the_server_is_stuck_and_work_once_it_answers() {
    let server = PrivateRedis::start().await;
    let m = manager_for(&server).await;
    // Another client keeps the server busy in a script for 2 s; it answers nobody meanwhile.
    let busy = "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] \
                while true do local t = redis.call('TIME') \
                if t[1] * 1000000 + t[2] - t0 > 2000000 then break end end return 1";
    let mut other = redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stuck = tokio::spawn(async move {
        let _: redis::RedisResult<i64> = redis::cmd("EVAL").arg(busy).arg(0).query_async(&mut other).await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (name, cmd) in commands(&m).into_iter().take(2) {
        let (result, took) = timed(&m, name, &cmd).await;
        assert!(matches!(result, Err(KvError::Timeout { .. })), "{name} on a stuck server: {result:?}");
        assert!(took <= RESPONSE_TIMEOUT + SLACK, "{name} took {took:?}");
        assert!(took >= RESPONSE_TIMEOUT - Duration::from_millis(50), "{name} gave up early: {took:?}");
    }
    stuck.await.unwrap();
    assert_recovers_within(&m, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exclusive_pool_fails_within_the_connect_timeout_while_dead_and_recovers() {
    let server = PrivateRedis::start().await;
    let m = manager_for(&server).await;
    let connect_timeout = m.config().connect_timeout;
    drop(m.exclusive().await.unwrap());
    server.kill();
    for round in 0..2 {
        let started = Instant::now();
        let result = timeout(HANG, async {
            let mut conn = m.exclusive().await?;
            redis::cmd("PING").query_async::<String>(&mut *conn).await.map_err(|e| KvError::Unavailable {
                backend: "redis",
                reason: format!("the checked-out connection is dead: {e}"),
            })
        })
        .await
        .expect("an exclusive checkout hung");
        let took = started.elapsed();
        assert!(
            matches!(result, Err(KvError::Unavailable { .. } | KvError::Timeout { .. })),
            "round {round}: a dead server cannot answer: {result:?}"
        );
        assert!(took <= connect_timeout + SLACK, "round {round}: took {took:?}");
    }
    server.restart().await;
    let started = Instant::now();
    loop {
        let ok = match m.exclusive().await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut *conn).await.is_ok(),
            Err(_) => false,
        };
        if ok {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "the exclusive pool did not recover");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every adapter on one manager, for the all-operations fault test.
struct Adapters {
    cache: CacheManager,
    lock: DistributedLock,
    limiter: RedisRateLimiter,
    sessions: SessionManager,
    bus: PubSubManager,
}

fn adapters(m: &RedisManager) -> Adapters {
    Adapters {
        cache: CacheManager::new(m.clone(), Duration::from_secs(60)),
        lock: DistributedLock::new(m.clone()).with_fence_ttl(Duration::from_secs(60)),
        limiter: RedisRateLimiter::new(m.clone()),
        sessions: SessionManager::new(m.clone()),
        bus: PubSubManager::new(m.clone()),
    }
}

fn bucket() -> RateLimitPolicy {
    RateLimitPolicy::TokenBucket { capacity: 100, refill_tokens: 1, refill_interval: Duration::from_secs(1) }
}

fn window() -> RateLimitPolicy {
    RateLimitPolicy::SlidingWindow { limit: 100, window: Duration::from_secs(1) }
}

/// Every operation the adapters offer, each as one future reduced to `Result<(), KvError>`, on the lease and the
/// session `held` and `session` taken before the fault.
fn every_operation<'a>(
    a: &'a Adapters,
    held: &'a LockLease,
    session: &'a SessionId,
) -> Vec<(&'static str, BoxFuture<'a, Result<(), KvError>>)> {
    let k = || CacheKey::new("k").unwrap();
    let lk = || LockKey::new("other").unwrap();
    let rk = || RateLimitKey::new("user").unwrap();
    let ttl = Duration::from_secs(5);
    vec![
        ("cache get", async move { a.cache.get_bytes(&k()).await.map(drop) }.boxed()),
        ("cache set", async move { a.cache.set_bytes(&k(), Bytes::from_static(b"v"), None).await }.boxed()),
        (
            "cache set_if_absent",
            async move { a.cache.set_if_absent_bytes(&k(), Bytes::from_static(b"v"), None).await.map(drop) }.boxed(),
        ),
        ("cache get_many", async move { a.cache.get_many_bytes(&[k(), k()]).await.map(drop) }.boxed()),
        ("cache delete_prefix", async move { a.cache.delete_prefix("k").await.map(drop) }.boxed()),
        ("lock try_acquire", async move { a.lock.try_acquire(&lk(), ttl).await.map(drop) }.boxed()),
        ("lock acquire", async move { a.lock.acquire(&lk(), ttl, Duration::from_secs(3)).await.map(drop) }.boxed()),
        ("lock extend", async move { a.lock.extend(held, ttl).await.map(drop) }.boxed()),
        ("lock release", async move { a.lock.release(held.clone()).await }.boxed()),
        ("rate limit token bucket", async move { a.limiter.check(&rk(), &bucket(), 1).await.map(drop) }.boxed()),
        ("rate limit sliding window", async move { a.limiter.check(&rk(), &window(), 1).await.map(drop) }.boxed()),
        (
            "session create",
            async move { a.sessions.create_bytes(Bytes::from_static(b"{}"), ttl).await.map(drop) }.boxed(),
        ),
        ("session load", async move { a.sessions.load_bytes(session).await.map(drop) }.boxed()),
        ("session save", async move { a.sessions.save_bytes(session, Bytes::from_static(b"{}")).await }.boxed()),
        (
            "pubsub publish",
            async move { a.bus.publish_bytes(&Channel::new("news").unwrap(), Bytes::from_static(b"x")).await.map(drop) }
                .boxed(),
        ),
    ]
}

/// Runs `call` until it succeeds, failing the test if it hangs or `started` is `within` ago.
async fn until_ok<T>(
    name: &str,
    started: Instant,
    within: Duration,
    mut call: impl AsyncFnMut() -> Result<T, KvError>,
) -> T {
    loop {
        match timeout(HANG, call()).await.unwrap_or_else(|_| panic!("{name} hung for {HANG:?} after the restart")) {
            Ok(value) => return value,
            Err(e) => {
                assert!(started.elapsed() < within, "{name} still fails {within:?} after the restart: {e:?}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_operation_fails_fast_while_dead_and_works_again_on_the_same_adapters() {
    let server = PrivateRedis::start().await;
    let m = manager_for(&server).await;
    let a = adapters(&m);
    let held = a.lock.try_acquire(&LockKey::new("held").unwrap(), Duration::from_secs(30)).await.unwrap().unwrap();
    let session = a.sessions.create_bytes(Bytes::from_static(b"{}"), Duration::from_secs(30)).await.unwrap();
    // A live subscription too: its connection breaks with the server, which must not disturb the others.
    let _sub = a.bus.subscribe_bytes(&Channel::new("news").unwrap()).await.unwrap();

    server.kill();
    for round in 0..2 {
        for (name, call) in every_operation(&a, &held, &session) {
            let started = Instant::now();
            let result = timeout(HANG, call).await.unwrap_or_else(|_| panic!("round {round}: {name} hung"));
            let took = started.elapsed();
            assert!(
                matches!(result, Err(KvError::Unavailable { .. } | KvError::Timeout { .. })),
                "round {round}: {name} on a dead server must be Unavailable or Timeout, got {result:?}"
            );
            assert!(took <= RESPONSE_TIMEOUT + SLACK, "round {round}: {name} took {took:?}");
        }
    }

    server.restart().await;
    // The restarted server is empty (no persistence): the lease and the session are gone, so the lock and session
    // operations are checked on state made again through the same adapters.
    let started = Instant::now();
    let within = Duration::from_secs(2);
    let (k, rk) = (CacheKey::new("k").unwrap(), RateLimitKey::new("user").unwrap());
    let ttl = Duration::from_secs(5);
    until_ok("cache set", started, within, async || a.cache.set_bytes(&k, Bytes::from_static(b"v"), None).await).await;
    let got = until_ok("cache get", started, within, async || a.cache.get_bytes(&k).await).await;
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
    until_ok("cache set_if_absent", started, within, async || {
        a.cache.set_if_absent_bytes(&k, Bytes::from_static(b"w"), None).await
    })
    .await;
    until_ok("cache get_many", started, within, async || a.cache.get_many_bytes(std::slice::from_ref(&k)).await).await;
    until_ok("cache delete_prefix", started, within, async || a.cache.delete_prefix("k").await).await;
    let lk = LockKey::new("after").unwrap();
    let lease = until_ok("lock try_acquire", started, within, async || a.lock.try_acquire(&lk, ttl).await).await;
    let lease = lease.expect("the restarted server holds no lock");
    let lease = until_ok("lock extend", started, within, async || a.lock.extend(&lease, ttl).await).await;
    until_ok("lock release", started, within, async || a.lock.release(lease.clone()).await).await;
    let lease = until_ok("lock acquire", started, within, async || a.lock.acquire(&lk, ttl, ttl).await).await;
    assert!(lease.token.0 >= 1);
    until_ok("rate limit token bucket", started, within, async || a.limiter.check(&rk, &bucket(), 1).await).await;
    until_ok("rate limit sliding window", started, within, async || a.limiter.check(&rk, &window(), 1).await).await;
    let id = until_ok("session create", started, within, async || {
        a.sessions.create_bytes(Bytes::from_static(b"{}"), ttl).await
    })
    .await;
    until_ok("session save", started, within, async || a.sessions.save_bytes(&id, Bytes::from_static(b"[1]")).await)
        .await;
    let loaded = until_ok("session load", started, within, async || a.sessions.load_bytes(&id).await).await;
    assert_eq!(loaded.as_deref(), Some(&b"[1]"[..]));
    until_ok("pubsub publish", started, within, async || {
        a.bus.publish_bytes(&Channel::new("news").unwrap(), Bytes::from_static(b"x")).await
    })
    .await;
    eprintln!("every adapter operation recovered {:?} after the restart", started.elapsed());
}
