//! [`Redlock`] against private Redis servers started for each test ([`PrivateRedisSet`]): the `Lock` contract
//! with 3 and with 5 nodes, nodes going down, partial acquisitions released, fencing tokens across changing
//! quorums.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpc_adapters::redis::{RedisConfig, RedisManager, Redlock, RedlockConfig};
use cpc_ports::{KvError, Lock, LockKey, LockLease};
use cpc_test_servers::PrivateRedisSet;

/// Generous for a loaded 2-core CI machine; production would use less (the default is 100 ms).
const NODE_TIMEOUT: Duration = Duration::from_millis(500);

/// A Redlock and the servers under it; the servers die with it.
pub struct Nodes<L: ?Sized> {
    lock: Arc<L>,
    servers: PrivateRedisSet,
}

impl<L: ?Sized> Deref for Nodes<L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.lock
    }
}

fn config(servers: &PrivateRedisSet) -> RedlockConfig {
    let builder = servers.urls().into_iter().fold(RedlockConfig::builder(), |b, url| b.url(url));
    builder.namespace("cpc-test:redlock:").node_timeout(NODE_TIMEOUT).build().unwrap()
}

/// `n` fresh servers and a Redlock over them.
pub async fn nodes(n: usize) -> Nodes<Redlock> {
    let servers = PrivateRedisSet::start(n).await;
    let lock = Redlock::connect(&config(&servers)).await.unwrap();
    Nodes { lock: Arc::new(lock), servers }
}

/// The same, as `Arc<dyn Lock>` (what an app holds, and a lock the guard cases can clone).
pub async fn dyn_nodes(n: usize) -> Nodes<Arc<dyn Lock>> {
    let Nodes { lock, servers } = nodes(n).await;
    Nodes { lock: Arc::new(lock as Arc<dyn Lock>), servers }
}

mod three_nodes {
    cpc_testkit::lock_contract!(super::nodes(3));
}

mod five_nodes {
    cpc_testkit::lock_contract!(super::nodes(5));
}

mod three_nodes_as_dyn {
    cpc_testkit::lock_contract!(super::dyn_nodes(3));
}

fn key(name: &str) -> LockKey {
    LockKey::new(name).unwrap()
}

/// A plain connection to server `i`, to look at (or plant) keys behind the Redlock's back.
async fn direct(nodes: &Nodes<Redlock>, i: usize) -> RedisManager {
    RedisManager::new(&RedisConfig::parse_url(&nodes.servers.server(i).url(), "url").unwrap()).await.unwrap()
}

async fn get(manager: &RedisManager, key: &str) -> Option<String> {
    manager.query(redis::cmd("GET").arg(key), "get").await.unwrap()
}

/// `try_acquire` until a quorum answers (a restarted node's connection needs a moment to come back).
async fn take_when_reachable(lock: &Redlock, key: &LockKey) -> LockLease {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match lock.try_acquire(key, Duration::from_secs(10)).await {
            Ok(Some(lease)) => return lease,
            other if Instant::now() > deadline => panic!("no quorum within 5 s: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn assert_unavailable(result: Result<impl std::fmt::Debug, KvError>, answered: &str) {
    match result {
        Err(KvError::Unavailable { reason, .. }) => {
            assert!(reason.contains(answered) && reason.contains("a quorum of 2 is needed"), "{reason}")
        }
        other => panic!("expected Unavailable naming {answered:?} and the quorum, got {other:?}"),
    }
}

#[tokio::test]
async fn with_one_node_of_three_down_the_lock_still_works() {
    let nodes = nodes(3).await;
    let k = key("one-down");
    let before = nodes.try_acquire(&k, Duration::from_secs(10)).await.unwrap().unwrap();
    nodes.release(before.clone()).await.unwrap();
    nodes.servers.kill(2);
    let started = Instant::now();
    let lease = nodes.try_acquire(&k, Duration::from_secs(10)).await.unwrap().expect("2 of 3 nodes are a quorum");
    assert!(started.elapsed() < Duration::from_secs(1), "a dead node costs at most its timeout");
    assert!(lease.token > before.token);
    assert!(nodes.is_held(&lease).await.unwrap());
    assert_eq!(nodes.try_acquire(&k, Duration::from_secs(10)).await.unwrap(), None, "still exclusive");
    let lease = nodes.extend(&lease, Duration::from_secs(20)).await.unwrap();
    nodes.release(lease.clone()).await.unwrap();
    assert!(!nodes.is_held(&lease).await.unwrap());
}

#[tokio::test]
async fn with_two_nodes_of_three_down_acquisition_fails_fast_with_a_clear_error() {
    let nodes = nodes(3).await;
    let k = key("two-down");
    let held = nodes.try_acquire(&k, Duration::from_secs(10)).await.unwrap().unwrap();
    nodes.servers.kill(1);
    nodes.servers.kill(2);
    let started = Instant::now();
    assert_unavailable(nodes.try_acquire(&key("other"), Duration::from_secs(10)).await, "1 of 3 Redis nodes answered");
    assert_unavailable(
        nodes.acquire(&key("other"), Duration::from_secs(10), Duration::from_secs(10)).await,
        "1 of 3 Redis nodes answered",
    );
    assert_unavailable(nodes.is_held(&held).await, "1 of 3");
    assert_unavailable(nodes.extend(&held, Duration::from_secs(10)).await, "1 of 3");
    assert_unavailable(nodes.release(held).await, "1 of 3");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "five calls took {took:?}: each must give up within its node timeout");
}

#[tokio::test]
async fn connect_needs_a_quorum_and_picks_up_a_node_that_was_down() {
    let servers = PrivateRedisSet::start(3).await;
    servers.kill(1);
    servers.kill(2);
    match Redlock::connect(&config(&servers)).await {
        Err(KvError::Unavailable { reason, .. }) => assert!(reason.contains("1 of 3"), "{reason}"),
        other => panic!("connect with 1 of 3 nodes must be Unavailable, got {other:?}"),
    }
    servers.server(1).restart().await;
    let lock = Redlock::connect(&config(&servers)).await.expect("2 of 3 nodes are enough to start");
    servers.server(2).restart().await;
    servers.kill(0);
    // Node 2 was never connected: it is connected on a later call (at most once a second), completing a quorum.
    let lease = take_when_reachable(&lock, &key("late")).await;
    lock.release(lease).await.unwrap();
}

#[tokio::test]
async fn a_failed_quorum_releases_the_nodes_that_said_yes() {
    let nodes = nodes(3).await;
    let k = key("partial");
    let names: Vec<String> = (0..3).map(|i| nodes.lock_key_name(i, &k).unwrap()).collect();
    let direct: Vec<RedisManager> = futures::future::join_all((0..3).map(|i| direct(&nodes, i))).await;
    // Someone else holds the lock on nodes 0 and 1 only; node 2 is free and will say yes.
    for (node, name) in direct.iter().zip(&names).take(2) {
        let _: () =
            node.query(redis::cmd("SET").arg(name).arg("someone-else").arg("PX").arg(10_000), "plant").await.unwrap();
    }
    assert_eq!(nodes.try_acquire(&k, Duration::from_secs(10)).await.unwrap(), None, "1 of 3 is no quorum");
    assert_eq!(get(&direct[2], &names[2]).await, None, "node 2's yes must have been taken back");
    let waited = nodes.acquire(&k, Duration::from_secs(10), Duration::from_millis(300)).await;
    assert!(matches!(waited, Err(KvError::Timeout { .. })), "{waited:?}");
    assert_eq!(get(&direct[2], &names[2]).await, None, "a timed-out acquire leaves nothing behind");
    for (node, name) in direct.iter().zip(&names).take(2) {
        assert_eq!(get(node, name).await.as_deref(), Some("someone-else"), "others' keys stay");
    }
}

/// Checks `lease`'s token exceeds `last`, and records it.
fn grows(last: &mut u64, lease: LockLease) -> LockLease {
    assert!(lease.token.0 > *last, "token {} after #{last}", lease.token);
    *last = lease.token.0;
    lease
}

#[tokio::test]
async fn fencing_tokens_grow_while_the_quorum_changes() {
    let nodes = nodes(3).await;
    let k = key("fence");
    let mut last = 0;
    // Nodes 0 and 1 count up while node 2 is down...
    nodes.servers.kill(2);
    for _ in 0..5 {
        let lease = grows(&mut last, take_when_reachable(&nodes, &k).await);
        nodes.release(lease).await.unwrap();
    }
    // ...node 2 comes back empty, node 0 goes: the quorum {1, 2} disagrees (6 against 1); the token is the max,
    // and node 2 is raised to it.
    nodes.servers.server(2).restart().await;
    nodes.servers.kill(0);
    let lease = grows(&mut last, take_when_reachable(&nodes, &k).await);
    nodes.release(lease).await.unwrap();
    let direct2 = direct(&nodes, 2).await;
    let fence2 = get(&direct2, &nodes.fence_key_name(2, &k).unwrap()).await;
    assert_eq!(fence2, Some(last.to_string()), "node 2's counter was raised to the token handed out");
    // Node 0 comes back empty, node 1 goes: {0, 2} still knows the last token through node 2.
    nodes.servers.server(0).restart().await;
    nodes.servers.kill(1);
    let lease = grows(&mut last, take_when_reachable(&nodes, &k).await);
    nodes.release(lease).await.unwrap();
}

#[tokio::test]
async fn validity_is_the_lease_minus_elapsed_time_and_drift() {
    let nodes = nodes(3).await;
    let ttl = Duration::from_secs(10);
    let (lease, validity) = nodes.try_acquire_with_validity(&key("validity"), ttl).await.unwrap().unwrap();
    let drift = Duration::from_millis(102);
    assert!(validity <= ttl - drift, "{validity:?}");
    assert!(validity > ttl - drift - Duration::from_secs(1), "{validity:?}");
    assert!(nodes.try_acquire_with_validity(&key("validity"), ttl).await.unwrap().is_none());
    nodes.release(lease).await.unwrap();
    // A lease no longer than the drift allowance could never be valid: refused before any round trip.
    let err = nodes.try_acquire(&key("tiny"), Duration::from_millis(2)).await.unwrap_err();
    assert!(matches!(&err, KvError::Validation(v) if v.field == "ttl"), "{err:?}");
}

#[tokio::test]
async fn new_refuses_no_nodes_and_duplicate_servers() {
    let servers = PrivateRedisSet::start(1).await;
    let config = RedisConfig::parse_url(&servers.urls()[0], "url").unwrap();
    let manager = RedisManager::new(&config).await.unwrap();
    let err = Redlock::new(vec![manager.clone(), manager.clone()]).unwrap_err();
    assert!(matches!(&err, KvError::Validation(v) if v.field == "nodes[1]"), "{err:?}");
    assert!(matches!(Redlock::new(Vec::new()), Err(KvError::Validation(_))));
    let single = Redlock::new(vec![manager]).unwrap();
    assert_eq!((single.node_count(), single.quorum()), (1, 1));
}
