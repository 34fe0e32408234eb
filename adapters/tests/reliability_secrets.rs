//! Passwords never show (docs/RELIABILITY.md, "Bad input"), on the connection paths with more than one server:
//! a Redis Cluster, Redlock, PostgreSQL read replicas and pub/sub subscriber connections. Each test formats the
//! configurations with `Debug` and `Display`, makes the connections fail (wrong password, unreachable servers,
//! a password changed under a live subscriber), captures every `tracing` line at every level, and finds the
//! password nowhere. (`reliability_input.rs` covers one Redis server and one PostgreSQL server.)
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "postgres", feature = "redis"))]

#[path = "common/logs.rs"]
mod logs;

use std::time::Duration;

use cpc_adapters::diesel::manager::DbManager;
use cpc_adapters::diesel::replicas::ReplicaConfig;
use cpc_adapters::redis::{PubSubManager, RedisConfig, RedisManager, Redlock, RedlockConfig};
use cpc_ports::{Channel, KvError, Lock, LockKey, PubSub};
use cpc_test_servers::{PrivatePostgres, PrivateRedis, PrivateRedisCluster};
use futures::StreamExt;

const RIGHT: &str = "the-right-one";

/// Neither `secret` nor its percent-encoded form shows in what was formatted or logged, and something was
/// logged (else the capture proves nothing).
fn assert_hidden(secret: &str, shown: &str, logs: &logs::Capture) {
    let logs = logs.text();
    assert!(!shown.contains(secret), "{secret} shows in a Debug, Display or error: {shown}");
    assert!(!logs.contains(secret), "{secret} shows in the logs:\n{logs}");
    assert!(shown.contains("127.0.0.1"), "the formatted values say where: {shown}");
    assert!(!logs.is_empty(), "nothing was logged: the capture would prove nothing");
    eprintln!("{} log lines captured:\n{logs}", logs.lines().count());
}

/// Sets `requirepass` on a running server, over a connection that knows the current one.
async fn set_password(port: u16, current: Option<&str>, new: &str) {
    let auth = current.map_or_else(String::new, |p| format!(":{p}@"));
    let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{port}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg(new).query_async(&mut conn).await.unwrap();
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), f).await.unwrap_or_else(|_| panic!("{what} did not end in 15 s"))
}

/// A Redis Cluster whose nodes require a password, reached with a wrong one (`REDIS_CLUSTER_URLS` and
/// `redis+cluster://`), and a cluster configuration whose seed nodes are unreachable.
#[tokio::test(flavor = "current_thread")]
async fn a_cluster_with_a_wrong_password_or_unreachable_nodes_never_shows_it() {
    const SECRET: &str = "cluster-Secret-9fT3";
    let (captured, _guard) = logs::capture();
    let cluster = PrivateRedisCluster::start().await;
    for port in cluster.ports() {
        set_password(port, None, RIGHT).await;
    }
    let urls: Vec<String> = cluster.ports().iter().map(|p| format!("redis://:{SECRET}@127.0.0.1:{p}")).collect();
    let mut shown = String::new();
    let lookups = [
        ("REDIS_CLUSTER_URLS", urls.join(",")),
        ("REDIS_URL", format!("redis+cluster://:{SECRET}@127.0.0.1:{}", cluster.ports()[0])),
        ("REDIS_URL", format!("redis+cluster://app:{SECRET}@127.0.0.1:1,127.0.0.1:2")),
    ];
    for (variable, value) in lookups {
        let config = RedisConfig::from_lookup(|name| (name == variable).then(|| value.clone())).unwrap();
        assert!(config.is_cluster());
        shown += &format!("{config:?} {config}\n");
        let err = within("a cluster connect", RedisManager::new(&config)).await.unwrap_err();
        let refused = !value.contains("127.0.0.1:1,");
        assert_eq!(matches!(err, KvError::Authentication { .. }), refused, "a refused password is said so: {err:?}");
        assert!(!err.is_retryable() || !refused, "{err:?}");
        shown += &format!("{err} {err:?}\n");
    }
    assert_hidden(SECRET, &shown, &captured);
}

/// Redlock over three servers that require a password: one node with a wrong password (a quorum still
/// connects, and locks, while the third node's failures are logged), then every node wrong, then every node
/// unreachable.
#[tokio::test(flavor = "current_thread")]
async fn redlock_with_a_wrong_password_on_one_or_every_node_never_shows_it() {
    const SECRET: &str = "redlock-Secret-2hQ8";
    let (captured, _guard) = logs::capture();
    let servers = futures::future::join_all((0..3).map(|_| PrivateRedis::with_password(RIGHT))).await;
    let url = |port: u16, password: &str| format!("redis://:{password}@127.0.0.1:{port}/0");
    let mut shown = String::new();

    let one_wrong = RedlockConfig::builder()
        .url(url(servers[0].port(), RIGHT))
        .url(url(servers[1].port(), RIGHT))
        .url(url(servers[2].port(), SECRET))
        .namespace(format!("cpc-test:secrets:{}:", uuid::Uuid::new_v4()))
        .build()
        .unwrap();
    shown += &format!("{one_wrong:?}\n");
    let lock = within("redlock connect", Redlock::connect(&one_wrong)).await.unwrap();
    let lease = within("redlock acquire", lock.try_acquire(&LockKey::new("k").unwrap(), Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("a quorum of two grants the lock");
    shown += &format!("{lock:?} {lease:?}\n");
    within("redlock release", lock.release(lease)).await.unwrap();

    let every_wrong =
        servers.iter().fold(RedlockConfig::builder(), |b, s| b.url(url(s.port(), SECRET))).build().unwrap();
    let unreachable = (1..=3).fold(RedlockConfig::builder(), |b, p| b.url(url(p, SECRET))).build().unwrap();
    for config in [every_wrong, unreachable] {
        shown += &format!("{config:?}\n");
        let err = within("redlock connect", Redlock::connect(&config)).await.unwrap_err();
        shown += &format!("{err} {err:?}\n");
    }
    assert!(shown.contains("Authentication"), "a wrong password on every node is reported as such: {shown}");
    assert_hidden(SECRET, &shown, &captured);
}

/// Read replicas from `DATABASE_REPLICA_URLS`, each URL with its password: one unreachable (the set starts
/// with it out of rotation and logs why), one whose server refuses the password (the start fails).
#[tokio::test(flavor = "current_thread")]
async fn read_replicas_with_a_wrong_password_or_unreachable_never_show_it() {
    const SECRET: &str = "replica-Secret-6mZ1";
    let (captured, _guard) = logs::capture();
    let server = PrivatePostgres::builder().password_auth(RIGHT).start().await;
    let primary = server.url_for_user("postgres", Some(RIGHT));
    let mut shown = String::new();

    let replicas = [format!("postgres://app:{SECRET}@127.0.0.1:1/db"), server.url_for_user("postgres", Some(SECRET))];
    for replica in replicas {
        let config = ReplicaConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some(primary.clone()),
            "DATABASE_REPLICA_URLS" => Some(replica.clone()),
            "DB_POOL_TIMEOUT_MS" => Some("2000".into()),
            _ => None,
        })
        .unwrap();
        shown += &format!("{config:?}\n");
        match within("replica set start", DbManager::postgres_with_replicas(&config)).await {
            Ok(db) => {
                let set = db.replica_set().expect("a replica set");
                shown += &format!("{db:?} {set:?} {:?}\n", set.replicas());
            }
            Err(err) => shown += &format!("{err} {err:?}\n"),
        }
    }
    assert!(shown.contains("unreachable at start-up"), "the unreachable replica starts out of rotation: {shown}");
    assert_hidden(SECRET, &shown, &captured);
}

/// Pub/sub subscriber connections: a subscribe on a server that no longer takes the configured password (the
/// subscriber's connection is opened on the first subscribe), and a live subscription whose server changes its
/// password and drops the connection, as a restart with a new password would: the subscriber reads
/// `Unavailable`, and every reconnect fails and is logged, for a second.
#[tokio::test(flavor = "current_thread")]
async fn subscriber_connections_refused_their_password_never_show_it() {
    const SECRET: &str = "pubsub-Secret-3vK5";
    let (captured, _guard) = logs::capture();
    let mut shown = String::new();
    let server = PrivateRedis::with_password(SECRET).await;
    let config = RedisConfig::parse_url(&server.url(), "REDIS_URL").unwrap();
    shown += &format!("{config:?} {config}\n");
    let news = Channel::new("news").unwrap();

    let live = PubSubManager::new(within("connect", RedisManager::new(&config)).await.unwrap());
    let mut sub = within("subscribe", live.subscribe_bytes(&news)).await.unwrap();
    let late = PubSubManager::new(within("connect", RedisManager::new(&config)).await.unwrap());
    set_password(server.port(), Some(SECRET), RIGHT).await;
    let client = redis::Client::open(format!("redis://:{RIGHT}@127.0.0.1:{}/0", server.port())).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut admin).await.unwrap();

    let item = within("the subscriber's next item", sub.next()).await.expect("the stream goes on");
    assert!(matches!(item, Err(KvError::Unavailable { .. })), "{item:?}");
    shown += &format!("{item:?}\n");
    let err = within("a subscribe refused", late.subscribe_bytes(&news)).await.unwrap_err();
    assert!(matches!(err, KvError::Authentication { .. }), "{err:?}");
    shown += &format!("{err} {err:?} {live:?} {late:?}\n");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(captured.text().contains("pub/sub connection"), "the reconnects were logged:\n{}", captured.text());
    assert_hidden(SECRET, &shown, &captured);
}
