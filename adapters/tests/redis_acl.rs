//! Redis ACL (README "Redis server requirements"): every adapter passes its contract suite under an ACL user
//! limited to the app's key and channel patterns (`~<namespace>*`, `&<namespace>*`) and to the commands the
//! adapters need ([`COMMANDS`], the list the README shows); the server refuses a key or a command outside them,
//! and the adapters report that as `KvError::Authentication` (not retryable); a user limited to one adapter's
//! sub-namespace (`~<namespace>cache:*`) can use that adapter and no other; the health check of a user without
//! `INFO` stays healthy and says what it could not check. Each test starts a private Redis and creates its users
//! over an admin connection (the default user).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::redis::{
    CacheManager, DistributedLock, NearCache, NearCacheConfig, PubSubManager, RedisConfig, RedisHealthChecker,
    RedisJobQueue, RedisManager, RedisRateLimiter, SessionManager,
};
use cpc_ports::{Bytes, Cache, CacheKey, Channel, ChannelPattern, HealthCheck, HealthStatus, Lock, LockKey, PubSub};
use cpc_test_servers::PrivateRedis;
use futures::StreamExt;

#[allow(dead_code)]
mod common;

use common::acl::{COMMANDS, assert_refused, set_user};

const PASSWORD: &str = "acl-test-password";
const TTL: Duration = Duration::from_secs(60);
/// Each test ends well within this.
const LIMIT: Duration = Duration::from_secs(15);

/// A private server and a key root (`cpc:acl:<uuid>:`) for the test: no glob characters, so it can be written
/// into ACL patterns as it is.
struct Server {
    redis: PrivateRedis,
    root: String,
}

impl Server {
    async fn start() -> Self {
        Self { redis: PrivateRedis::start().await, root: format!("cpc:acl:{}:", uuid::Uuid::new_v4().simple()) }
    }

    /// `ACL SETUSER <name> on ><password> <rules...> -@all +<command>...` over the default user.
    async fn user(&self, name: &str, rules: &[String], commands: &[&str]) {
        set_user(self.redis.port(), name, PASSWORD, rules, commands).await;
    }

    /// The app's user: its keys and channels under the root, [`COMMANDS`].
    async fn app_user(&self, name: &str) {
        self.user(name, &[format!("~{}*", self.root), format!("&{}*", self.root)], COMMANDS).await;
    }

    fn config(&self, user: &str, namespace: &str) -> RedisConfig {
        let url = format!("redis://{user}:{PASSWORD}@127.0.0.1:{}/0", self.redis.port());
        let mut config = RedisConfig::parse_url(&url, "REDIS_URL").unwrap();
        config.namespace = namespace.to_owned();
        config
    }

    /// A manager logged in as `user` under `namespace`.
    async fn manager(&self, user: &str, namespace: &str) -> RedisManager {
        RedisManager::new(&self.config(user, namespace)).await.unwrap()
    }

    /// A manager logged in as `user` under a fresh namespace below the root (one per contract case).
    async fn fresh(&self, user: &str) -> RedisManager {
        self.manager(user, &format!("{}{}:", self.root, uuid::Uuid::new_v4().simple())).await
    }
}

/// Runs `test` within [`LIMIT`].
async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(LIMIT, test).await.expect("the test ends within its limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_passes_its_contract_under_an_acl_user_limited_to_the_namespace() {
    let server = Server::start().await;
    server.app_user("app").await;
    bounded(async {
        cpc_testkit::cache_contract!(
            async {
                Arc::new(
                    CacheManager::new(server.fresh("app").await, TTL)
                        .with_compute_wait(cpc_testkit::contract::cache::COMPUTE_WAIT),
                )
            },
            inline
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_passes_the_cache_contract_under_the_app_user_and_without_client_tracking_is_refused() {
    let server = Server::start().await;
    server.app_user("app").await;
    bounded(async {
        cpc_testkit::cache_contract!(
            async {
                let remote = CacheManager::new(server.fresh("app").await, TTL)
                    .with_compute_wait(cpc_testkit::contract::cache::COMPUTE_WAIT);
                Arc::new(NearCache::new(remote, NearCacheConfig::default()).await.unwrap())
            },
            inline
        );
        let without: Vec<&str> = COMMANDS.iter().copied().filter(|c| *c != "client|tracking").collect();
        server.user("untracked", &[format!("~{}*", server.root)], &without).await;
        let remote = CacheManager::new(server.fresh("untracked").await, TTL);
        assert_refused(NearCache::new(remote, NearCacheConfig::default()).await, "client tracking");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_passes_its_contract_under_an_acl_user_limited_to_the_namespace() {
    let server = Server::start().await;
    server.app_user("app").await;
    bounded(async {
        cpc_testkit::lock_contract!(async { Arc::new(DistributedLock::new(server.fresh("app").await)) }, inline);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limiter_and_sessions_pass_their_contracts_under_an_acl_user_limited_to_the_namespace() {
    let server = Server::start().await;
    server.app_user("app").await;
    bounded(async {
        cpc_testkit::rate_limit_contract!(async { Arc::new(RedisRateLimiter::new(server.fresh("app").await)) }, inline);
        cpc_testkit::session_contract!(async { Arc::new(SessionManager::new(server.fresh("app").await)) }, inline);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_queue_passes_its_contract_under_an_acl_user_limited_to_the_namespace() {
    let server = Server::start().await;
    server.app_user("app").await;
    bounded(async {
        cpc_testkit::job_queue_contract!(async { Arc::new(RedisJobQueue::new(server.fresh("app").await)) }, inline);
    })
    .await;
}

/// Channel subscriptions need `&<namespace>*`. Redis compares a `PSUBSCRIBE` pattern with the user's channel
/// patterns literally, so each pattern an app subscribes to is granted as it is sent (`&<namespace>news.*`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_works_under_an_acl_user_and_each_pattern_is_granted_literally() {
    use cpc_testkit::contract::pubsub as suite;
    let server = Server::start().await;
    let namespace = format!("{}bus:", server.root);
    server
        .user(
            "app",
            &[format!("~{}*", server.root), format!("&{}*", server.root), format!("&{namespace}news.*")],
            COMMANDS,
        )
        .await;
    bounded(async {
        let bus = || async { PubSubManager::new(server.fresh("app").await) };
        suite::subscriber_receives_the_payload_byte_for_byte(&bus().await).await;
        suite::every_subscriber_receives_and_publish_counts_them(&bus().await).await;
        suite::channels_are_isolated(&bus().await).await;
        suite::channel_subscription_treats_glob_characters_literally(&bus().await).await;
        suite::dropping_a_subscription_stops_delivery_to_it(&bus().await).await;
        suite::odd_channel_names_work(&bus().await).await;

        let bus = PubSubManager::new(server.manager("app", &namespace).await);
        let mut news = bus.psubscribe_bytes(&ChannelPattern::new("news.*").unwrap()).await.unwrap();
        assert_eq!(bus.publish_bytes(&Channel::new("news.eu").unwrap(), Bytes::from_static(b"hi")).await.unwrap(), 1);
        let got = tokio::time::timeout(Duration::from_secs(2), news.next()).await.unwrap().unwrap().unwrap();
        assert_eq!((got.channel.as_str(), got.payload), ("news.eu", Bytes::from_static(b"hi")));
        assert_refused(bus.psubscribe_bytes(&ChannelPattern::new("news.eu.*").unwrap()).await, "an ungranted pattern");
        let outside = PubSubManager::new(server.manager("app", "elsewhere:").await);
        assert_refused(outside.subscribe_bytes(&Channel::new("news").unwrap()).await, "a channel outside");
        assert_refused(outside.publish_bytes(&Channel::new("news").unwrap(), Bytes::new()).await, "publish outside");
    })
    .await;
}

/// A raw command on a key outside the namespace, an adapter configured with another namespace (plain commands
/// and scripts), and a command the user was not given: each refused by the server, each a typed, not retryable
/// `KvError::Authentication` naming `NOPERM`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_commands_outside_the_grant_are_refused_as_a_typed_error() {
    let server = Server::start().await;
    server.app_user("app").await;
    bounded(async {
        let inside = server.fresh("app").await;
        let mut get = redis::cmd("GET");
        get.arg("someone-else:key");
        assert_refused(inside.query::<Option<String>>(&get, "get").await, "a raw GET outside the namespace");
        assert_refused(inside.query::<()>(&redis::cmd("FLUSHALL"), "flushall").await, "FLUSHALL");
        assert_refused(inside.query::<Vec<String>>(redis::cmd("KEYS").arg("*"), "keys").await, "KEYS");

        let outside = server.manager("app", "someone-else:").await;
        let key = CacheKey::new("k").unwrap();
        let cache = CacheManager::new(outside.clone(), TTL);
        assert_refused(cache.set_bytes(&key, Bytes::from_static(b"v"), None).await, "cache set outside");
        assert_refused(cache.get_bytes(&key).await, "cache get outside");
        let lock = DistributedLock::new(outside.clone());
        assert_refused(lock.try_acquire(&LockKey::new("k").unwrap(), TTL).await, "a lock script outside");
        let sessions = SessionManager::new(outside);
        assert_refused(
            cpc_ports::SessionStore::create_bytes(&sessions, Bytes::from_static(b"s"), TTL).await,
            "a session script outside",
        );

        // The same adapters inside the namespace work, on the same server and user.
        let cache = CacheManager::new(inside.clone(), TTL);
        cache.set_bytes(&key, Bytes::from_static(b"v"), None).await.unwrap();
        assert_eq!(cache.get_bytes(&key).await.unwrap(), Some(Bytes::from_static(b"v")));
    })
    .await;
}

/// Each adapter keeps to its own sub-namespace (`cache:`, `{lock:`, `{rl:`, `session:`, `jq:`), so an operator
/// can give a process only the adapters it uses: a user allowed `~<namespace>cache:*` uses the cache, and its
/// lock, session and rate-limit calls are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_the_caches_sub_namespace_uses_the_cache_and_nothing_else() {
    let server = Server::start().await;
    let namespace = format!("{}svc:", server.root);
    server.user("cache-only", &[format!("~{namespace}cache:*")], COMMANDS).await;
    server.user("lock-only", &[format!("~{namespace}{{lock:*")], COMMANDS).await;
    bounded(async {
        let m = server.manager("cache-only", &namespace).await;
        let cache = CacheManager::new(m.clone(), TTL);
        let key = CacheKey::new("report:1").unwrap();
        cache.set_bytes(&key, Bytes::from_static(b"v"), None).await.unwrap();
        assert_eq!(cache.get_bytes(&key).await.unwrap(), Some(Bytes::from_static(b"v")));
        assert_eq!(cache.delete_prefix("report:").await.unwrap(), 1);
        let lock_key = LockKey::new("account:1").unwrap();
        assert_refused(DistributedLock::new(m.clone()).try_acquire(&lock_key, TTL).await, "the lock");
        assert_refused(
            cpc_ports::SessionStore::create_bytes(&SessionManager::new(m.clone()), Bytes::new(), TTL).await,
            "sessions",
        );
        let policy = cpc_ports::RateLimitPolicy::SlidingWindow { limit: 5, window: TTL };
        let rl_key = cpc_ports::RateLimitKey::new("login").unwrap();
        assert_refused(
            cpc_ports::RateLimiter::check(&RedisRateLimiter::new(m.clone()), &rl_key, &policy, 1).await,
            "the rate limiter",
        );

        let m = server.manager("lock-only", &namespace).await;
        let lock = DistributedLock::new(m.clone());
        let lease = lock.try_acquire(&lock_key, TTL).await.unwrap().expect("the lock is free");
        lock.release(lease).await.unwrap();
        assert_refused(CacheManager::new(m, TTL).get_bytes(&key).await, "the cache, for the lock's user");
    })
    .await;
}

/// A user without `INFO` (a grant an operator may leave out): the health check still answers from `PING`,
/// healthy, and says that the server's details (eviction policy) could not be read; it does not report the
/// refusal as a fault of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_of_a_user_without_info_stays_healthy_and_says_what_it_could_not_check() {
    let server = Server::start().await;
    let without_info: Vec<&str> = COMMANDS.iter().copied().filter(|c| *c != "info").collect();
    server.user("no-info", &[format!("~{}*", server.root)], &without_info).await;
    server.app_user("app").await;
    bounded(async {
        let report = RedisHealthChecker::new(server.fresh("no-info").await).check().await;
        assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
        let details = format!("{:?}", report.details);
        assert!(details.contains("INFO") && details.contains("not permitted"), "{report:?}");
        assert!(!details.contains("maxmemory_policy"), "{report:?}");

        let report = RedisHealthChecker::new(server.fresh("app").await).check().await;
        assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
        assert!(format!("{:?}", report.details).contains("maxmemory_policy"), "with INFO it is read: {report:?}");
    })
    .await;
}
