//! [`Redlock`]: the [`Lock`] port over N independent Redis servers (the Redlock algorithm).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::RedisConnection;
use async_trait::async_trait;
use cpc_ports::{FencingToken, KvError, Lock, LockKey, LockLease};
use futures::future::join_all;
use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;

use super::redlock_config::{RedlockConfig, quorum};
use super::scripts::{ACQUIRE_SCRIPT, EXTEND_SCRIPT, RAISE_FENCE_SCRIPT, RELEASE_SCRIPT};
use super::{DEFAULT_FENCE_TTL, LockOp, fence_millis, lease_lost, lease_millis, owner_token, retry_until_taken};
use crate::error::classify;
use crate::metrics::Instruments;
use crate::{RedisConfig, RedisManager};

/// Waiters woken by a local release start their next attempt at a random moment within this.
const WAKE_SPREAD: Duration = Duration::from_millis(5);
/// How long a node that could not be connected to is left alone before the next attempt.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// A distributed lock over N independent Redis servers (the Redlock algorithm of
/// <https://redis.io/docs/latest/develop/use/patterns/distributed-locks/>), implementing [`Lock`]. It keeps
/// working while fewer than half the servers are down, where [`DistributedLock`](super::DistributedLock) depends
/// on one server (and its failover, which can lose a lock).
///
/// * **Acquire**: the same Lua script as `DistributedLock` (`SET NX PX` then `INCR` of the fencing counter) is
///   sent to every node at once, each call limited to the per-node timeout. The lock is taken if a quorum of
///   `N/2 + 1` nodes said yes and the *validity* is positive: `ttl - elapsed - drift`, where `elapsed` is the
///   time since the first request went out and `drift = ttl * 1 % + 2 ms` (configurable) allows for clocks that
///   run at different speeds. Otherwise the acquisition is undone on every node that said yes or did not answer
///   (partial acquisitions released) before the call returns.
/// * **Release, extend, `is_held`** also go to every node at once and need a quorum: release succeeds if a
///   quorum deleted the owner's key; extend if a quorum reset the lease and the new lease still has a positive
///   validity (else the lease is released everywhere and reported lost); `is_held` if a quorum holds the owner.
/// * **Too many nodes down**: when fewer than a quorum of nodes answer, the result is
///   `KvError::Unavailable` naming how many answered against the quorum (or `Authentication` if a server
///   rejected the credentials). [`Lock::acquire`] stops waiting at once on it.
///
/// # Fencing tokens
///
/// Each node keeps its own fencing counter per lock, advanced by every acquisition that takes that node: one
/// more than before, and never less than the acquiring process's clock in microseconds, which it sends to every
/// node alike (so counters that agreed before still agree after). The
/// token of an acquisition is the **largest** counter among the nodes that said yes. Before the lock is handed
/// out, every node of the quorum whose counter is lower is raised to that token (one more round trip, only when
/// the counters differ, i.e. after some node was down or lost a race). So when an acquisition `A` returns with
/// token `t`, a quorum of nodes has a counter `>= t`. A later acquisition `B` needs a quorum too, and any two
/// quorums of the same N nodes share at least one node; on that node `B`'s `SET NX` can only succeed after `A`'s
/// key left it, and its counter then yields more than `t`. `B`'s token, the maximum over its quorum, is
/// therefore greater than `t`: tokens grow strictly across acquisitions, releases and expiries, as the port
/// requires. A node that lost its counter (expired, or restarted without persistence) starts again from the
/// clock, above the tokens issued before it; this relies on the clocks of the processes taking the lock agreeing
/// to within the time between two acquisitions of the key, and matters only when a quorum of nodes lost it.
///
/// # Keys
///
/// The same layout as `DistributedLock` on every node: `<namespace>{lock:<key>}` (value: owner, TTL: lease) and
/// `<namespace>{lock:<key>}:fence` (the counter, kept [`DEFAULT_FENCE_TTL`](super::DEFAULT_FENCE_TTL) after its
/// last use).
///
/// # Nodes that are down
///
/// [`Redlock::connect`] needs a quorum of nodes reachable at start-up; a node that was not is connected to on a
/// later call (at most once per second), and one that goes away later is reconnected by its
/// [`RedisManager`]. Each call waits at most the per-node timeout for a node, so dead nodes cost little.
///
/// Cheap to clone; clones share the connections and the local wake-ups.
#[derive(Clone)]
pub struct Redlock {
    nodes: Arc<[Node]>,
    quorum: usize,
    node_timeout: Duration,
    drift_factor: f64,
    drift_floor: Duration,
    fence_ttl: Duration,
    released: Arc<Notify>,
    metrics: Arc<Instruments<LockOp>>,
}

impl std::fmt::Debug for Redlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redlock")
            .field("nodes", &self.nodes.iter().map(|n| n.config.to_string()).collect::<Vec<_>>())
            .field("quorum", &self.quorum)
            .field("node_timeout", &self.node_timeout)
            .field("fence_ttl", &self.fence_ttl)
            .finish()
    }
}

/// One Redis server, connected now or on a later call.
struct Node {
    config: RedisConfig,
    manager: OnceCell<RedisManager>,
    /// No connection attempt before this instant (after a failed one).
    retry_at: Mutex<Option<Instant>>,
}

impl Node {
    fn connected(manager: RedisManager) -> Self {
        Self {
            config: manager.config().clone(),
            manager: OnceCell::new_with(Some(manager)),
            retry_at: Mutex::new(None),
        }
    }

    /// The node's manager, connecting if needed (not more than once per [`RECONNECT_PAUSE`] after a failure).
    async fn manager(&self) -> Result<&RedisManager, KvError> {
        if let Some(m) = self.manager.get() {
            return Ok(m);
        }
        let waiting = *self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.is_some_and(|at| Instant::now() < at) {
            return Err(KvError::Unavailable {
                backend: "redis",
                reason: format!("{}: not connected (the last attempt failed)", self.config.address()),
            });
        }
        self.manager.get_or_try_init(|| RedisManager::new(&self.config)).await.inspect_err(|_| {
            *self.retry_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + RECONNECT_PAUSE);
        })
    }

    fn lock_key(&self, key: &LockKey) -> String {
        format!("{}{{lock:{}}}", self.config.namespace, key.as_str())
    }

    fn fence_key(&self, key: &LockKey) -> String {
        format!("{}:fence", self.lock_key(key))
    }
}

/// What the nodes answered to one acquisition attempt.
enum Attempt {
    /// Taken, and safely held until `valid_until` (the lease from the first request, minus the drift).
    Taken { lease: LockLease, valid_until: Instant },
    /// Held by someone else, free on some node in about this long (`None`: unknown).
    Busy(Option<Duration>),
}

/// One node's answer to the acquire script.
enum Vote {
    Taken(u64),
    Busy(Option<Duration>),
}

impl Redlock {
    /// A Redlock over already connected servers, one [`RedisManager`] each (with the default timings of
    /// [`RedlockConfig`]). Errors: no manager, or two for the same server (`nodes[i]`).
    pub fn new(managers: Vec<RedisManager>) -> Result<Self, KvError> {
        let config = RedlockConfig::builder();
        let config = managers.iter().fold(config, |b, m| b.node(m.config().clone())).build()?;
        Ok(Self::from_nodes(&config, managers.into_iter().map(Node::connected).collect()))
    }

    /// Connects to every server of `config` at once. Succeeds if a quorum is reachable (the others are tried
    /// again on later calls); otherwise `KvError::Unavailable` naming how many answered, or `Authentication` if
    /// a server rejected the credentials.
    pub async fn connect(config: &RedlockConfig) -> Result<Self, KvError> {
        config.validate()?;
        let nodes: Vec<Node> = config
            .nodes
            .iter()
            .map(|c| Node { config: c.clone(), manager: OnceCell::new(), retry_at: Mutex::new(None) })
            .collect();
        let results = join_all(nodes.iter().map(Node::manager)).await;
        let errors: Vec<KvError> = results.into_iter().filter_map(Result::err).collect();
        let lock = Self::from_nodes(config, nodes);
        lock.check_quorum(lock.nodes.len() - errors.len(), errors, "connect")?;
        Ok(lock)
    }

    /// [`Redlock::connect`] with [`RedlockConfig::from_env`] (`REDLOCK_URLS`, ...).
    pub async fn from_env() -> Result<Self, KvError> {
        Self::connect(&RedlockConfig::from_env()?).await
    }

    fn from_nodes(config: &RedlockConfig, nodes: Vec<Node>) -> Self {
        Self {
            quorum: quorum(nodes.len()),
            nodes: nodes.into(),
            node_timeout: config.node_timeout,
            drift_factor: config.clock_drift_factor,
            drift_floor: config.clock_drift_floor,
            fence_ttl: DEFAULT_FENCE_TTL,
            released: Arc::new(Notify::new()),
            metrics: Instruments::new("redlock"),
        }
    }

    /// Keeps each node's fencing counters for `ttl` after the last acquisition or extension, as
    /// [`DistributedLock::with_fence_ttl`] does (default [`DEFAULT_FENCE_TTL`](super::DEFAULT_FENCE_TTL)).
    ///
    /// [`DistributedLock::with_fence_ttl`]: super::DistributedLock::with_fence_ttl
    pub fn with_fence_ttl(mut self, ttl: Duration) -> Self {
        self.fence_ttl = ttl;
        self
    }

    /// How many nodes there are.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// How many nodes must agree: `N/2 + 1`.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// The Redis key holding the lock of `key` on node `node` (`None` if there is no such node). For operators
    /// and tests.
    pub fn lock_key_name(&self, node: usize, key: &LockKey) -> Option<String> {
        self.nodes.get(node).map(|n| n.lock_key(key))
    }

    /// The Redis key holding the fencing counter of `key` on node `node`.
    pub fn fence_key_name(&self, node: usize, key: &LockKey) -> Option<String> {
        self.nodes.get(node).map(|n| n.fence_key(key))
    }

    /// Takes the lock if a quorum grants it, like [`Lock::try_acquire`], and also returns the lease's validity:
    /// how long, from the return, the lock is safely held at most (the lease minus the time the acquisition
    /// took and the allowed clock drift). Finish the protected work within it, or extend.
    pub async fn try_acquire_with_validity(
        &self,
        key: &LockKey,
        ttl: Duration,
    ) -> Result<Option<(LockLease, Duration)>, KvError> {
        self.metrics
            .run(LockOp::TryAcquire, async {
                Ok(match self.attempt(key, ttl).await? {
                    Attempt::Taken { lease, valid_until } => {
                        Some((lease, valid_until.saturating_duration_since(Instant::now())))
                    }
                    Attempt::Busy(_) => None,
                })
            })
            .await
    }

    /// The drift allowance of a lease of `ttl`.
    fn drift(&self, ttl: Duration) -> Duration {
        ttl.mul_f64(self.drift_factor).saturating_add(self.drift_floor)
    }

    /// What is left of `ttl` after `elapsed` and the drift; `None` if nothing.
    fn validity(&self, ttl: Duration, elapsed: Duration) -> Option<Duration> {
        ttl.checked_sub(elapsed.saturating_add(self.drift(ttl))).filter(|v| !v.is_zero())
    }

    fn fence_millis(&self, lease_ms: u64) -> u64 {
        fence_millis(self.fence_ttl, lease_ms)
    }

    /// Runs `call` on `node`'s shared connection within the per-node timeout.
    async fn on_node<T, F, Fut>(&self, node: &Node, operation: &'static str, call: F) -> Result<T, KvError>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let run = async {
            let manager = node.manager().await?;
            call(manager.connection()).await.map_err(|e| classify(e, operation, manager.config().response_timeout))
        };
        tokio::time::timeout(self.node_timeout, run)
            .await
            .unwrap_or(Err(KvError::Timeout { operation, after: self.node_timeout }))
    }

    /// `Ok` if `answered` nodes make a quorum; else the error to report: a rejected login as itself, otherwise
    /// `Unavailable` with the counts and the first node error.
    fn check_quorum(&self, answered: usize, errors: Vec<KvError>, operation: &str) -> Result<(), KvError> {
        if answered >= self.quorum {
            return Ok(());
        }
        let mut errors = errors;
        if let Some(at) = errors.iter().position(|e| matches!(e, KvError::Authentication { .. })) {
            return Err(errors.swap_remove(at));
        }
        let first = errors.first().map(|e| format!(": {e}")).unwrap_or_default();
        Err(KvError::Unavailable {
            backend: "redis",
            reason: format!(
                "redlock {operation}: {answered} of {} Redis nodes answered, a quorum of {} is needed{first}",
                self.nodes.len(),
                self.quorum
            ),
        })
    }

    /// `ttl` in milliseconds, refused if it is zero, too large, or no longer than the drift allowance (such a
    /// lease could never be valid).
    fn lease_millis(&self, ttl: Duration) -> Result<u64, KvError> {
        let ms = lease_millis(ttl)?;
        if self.validity(ttl, Duration::ZERO).is_none() {
            return Err(KvError::invalid(
                "ttl",
                "must be longer than the clock drift allowance (1 % + 2 ms by default)",
            ));
        }
        Ok(ms)
    }

    async fn attempt(&self, key: &LockKey, ttl: Duration) -> Result<Attempt, KvError> {
        let ttl_ms = self.lease_millis(ttl)?;
        let fence_ms = self.fence_millis(ttl_ms);
        let owner = owner_token();
        let clock = clock_micros();
        let sent = Instant::now();
        let votes = join_all(self.nodes.iter().map(|node| {
            let mut invocation = ACQUIRE_SCRIPT.key(node.lock_key(key));
            invocation.key(node.fence_key(key)).arg(&owner).arg(ttl_ms).arg(fence_ms).arg(clock);
            self.on_node(node, "acquire lock", move |mut conn| async move {
                invocation.invoke_async::<(i64, i64)>(&mut conn).await
            })
        }))
        .await;
        let votes: Vec<Result<Vote, KvError>> = votes
            .into_iter()
            .map(|reply| match reply? {
                (1, token) => u64::try_from(token)
                    .map(Vote::Taken)
                    .map_err(|_| KvError::backend("redis", format!("fencing counter of {key:?} is negative"))),
                (0, pttl) => Ok(Vote::Busy(u64::try_from(pttl).ok().map(Duration::from_millis))),
                other => Err(KvError::backend("redis", format!("unexpected reply {other:?} from the acquire script"))),
            })
            .collect();
        let taken: Vec<(usize, u64)> = votes
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Ok(Vote::Taken(token)) => Some((i, *token)),
                _ => None,
            })
            .collect();
        if taken.len() >= self.quorum
            && let Some(token) = self.confirm_token(key, &owner, &taken, fence_ms).await
            && let Some(validity) = self.validity(ttl, sent.elapsed())
        {
            let lease = LockLease { key: key.clone(), owner, token: FencingToken(token), ttl };
            return Ok(Attempt::Taken { lease, valid_until: Instant::now() + validity });
        }
        // Not taken: undo it on every node that may hold it (said yes, or whose answer is unknown).
        let maybe_ours: Vec<usize> =
            votes.iter().enumerate().filter(|(_, v)| !matches!(v, Ok(Vote::Busy(_)))).map(|(i, _)| i).collect();
        self.release_on(key, &owner, &maybe_ours).await;
        let busy_for = votes
            .iter()
            .filter_map(|v| match v {
                Ok(Vote::Busy(left)) => *left,
                _ => None,
            })
            .min();
        let answered = votes.iter().filter(|v| v.is_ok()).count();
        self.check_quorum(answered, votes.into_iter().filter_map(Result::err).collect(), "acquire")?;
        Ok(Attempt::Busy(busy_for))
    }

    /// The token of an acquisition that `taken` nodes granted (index, their counter): the largest counter,
    /// once a quorum of nodes holds a counter at least that large (see "Fencing tokens"). `None` if fewer
    /// than a quorum could be brought there while still holding the lock.
    async fn confirm_token(&self, key: &LockKey, owner: &str, taken: &[(usize, u64)], fence_ms: u64) -> Option<u64> {
        let token = taken.iter().map(|(_, t)| *t).max()?;
        let at_max = taken.iter().filter(|(_, t)| *t == token).count();
        if at_max >= self.quorum {
            return Some(token);
        }
        let raised = join_all(taken.iter().filter(|(_, t)| *t < token).map(|(i, _)| {
            let node = &self.nodes[*i];
            let mut invocation = RAISE_FENCE_SCRIPT.key(node.lock_key(key));
            invocation.key(node.fence_key(key)).arg(owner).arg(token).arg(fence_ms);
            self.on_node(node, "acquire lock", move |mut conn| async move {
                invocation.invoke_async::<i64>(&mut conn).await
            })
        }))
        .await;
        let confirmed = at_max + raised.iter().filter(|r| matches!(r, Ok(1))).count();
        (confirmed >= self.quorum).then_some(token)
    }

    /// Runs the release script for `owner` on the nodes `on`; returns each node's answer (1: deleted).
    async fn release_on(&self, key: &LockKey, owner: &str, on: &[usize]) -> Vec<Result<i64, KvError>> {
        join_all(on.iter().map(|i| {
            let node = &self.nodes[*i];
            let mut invocation = RELEASE_SCRIPT.key(node.lock_key(key));
            invocation.arg(owner);
            self.on_node(node, "release lock", move |mut conn| async move { invocation.invoke_async(&mut conn).await })
        }))
        .await
    }

    fn all_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    async fn acquire_timed(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError> {
        retry_until_taken(&self.released, wait, WAKE_SPREAD, || async {
            Ok(match self.attempt(key, ttl).await? {
                Attempt::Taken { lease, .. } => Ok(lease),
                Attempt::Busy(held_for) => Err(held_for),
            })
        })
        .await
    }
}

#[async_trait]
impl Lock for Redlock {
    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<LockLease>, KvError> {
        self.metrics
            .run(LockOp::TryAcquire, async {
                Ok(match self.attempt(key, ttl).await? {
                    Attempt::Taken { lease, .. } => Some(lease),
                    Attempt::Busy(_) => None,
                })
            })
            .await
    }

    async fn acquire(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError> {
        self.metrics.run(LockOp::Acquire, self.acquire_timed(key, ttl, wait)).await
    }

    async fn extend(&self, lease: &LockLease, ttl: Duration) -> Result<LockLease, KvError> {
        self.metrics
            .run(LockOp::Extend, async {
                let ttl_ms = self.lease_millis(ttl)?;
                let fence_ms = self.fence_millis(ttl_ms);
                let sent = Instant::now();
                let replies = join_all(self.nodes.iter().map(|node| {
                    let mut invocation = EXTEND_SCRIPT.key(node.lock_key(&lease.key));
                    invocation.key(node.fence_key(&lease.key)).arg(&lease.owner).arg(ttl_ms).arg(fence_ms);
                    self.on_node(node, "extend lock", move |mut conn| async move {
                        invocation.invoke_async::<i64>(&mut conn).await
                    })
                }))
                .await;
                let extended = replies.iter().filter(|r| matches!(r, Ok(1))).count();
                if extended >= self.quorum && self.validity(ttl, sent.elapsed()).is_some() {
                    return Ok(LockLease { ttl, ..lease.clone() });
                }
                // Lost: drop what is left of it everywhere, so a minority of nodes does not keep the lock.
                let maybe_ours: Vec<usize> =
                    replies.iter().enumerate().filter(|(_, r)| !matches!(r, Ok(0))).map(|(i, _)| i).collect();
                self.release_on(&lease.key, &lease.owner, &maybe_ours).await;
                let answered = replies.iter().filter(|r| r.is_ok()).count();
                self.check_quorum(answered, replies.into_iter().filter_map(Result::err).collect(), "extend")?;
                Err(lease_lost(lease))
            })
            .await
    }

    async fn release(&self, lease: LockLease) -> Result<(), KvError> {
        self.metrics
            .run(LockOp::Release, async {
                let replies = self.release_on(&lease.key, &lease.owner, &self.all_nodes()).await;
                let deleted = replies.iter().filter(|r| matches!(r, Ok(1))).count();
                if deleted >= self.quorum {
                    self.released.notify_waiters();
                    return Ok(());
                }
                if deleted > 0 {
                    // Part of the lock was still there: others may now take it sooner.
                    self.released.notify_waiters();
                }
                let answered = replies.iter().filter(|r| r.is_ok()).count();
                self.check_quorum(answered, replies.into_iter().filter_map(Result::err).collect(), "release")?;
                Err(lease_lost(&lease))
            })
            .await
    }

    async fn is_held(&self, lease: &LockLease) -> Result<bool, KvError> {
        self.metrics
            .run(LockOp::IsHeld, async {
                let replies = join_all(self.nodes.iter().map(|node| {
                    let mut get = redis::cmd("GET");
                    get.arg(node.lock_key(&lease.key));
                    self.on_node(node, "check lock", move |mut conn| async move {
                        get.query_async::<Option<Vec<u8>>>(&mut conn).await
                    })
                }))
                .await;
                let held = replies
                    .iter()
                    .filter(|r| matches!(r, Ok(Some(owner)) if owner.as_slice() == lease.owner.as_bytes()))
                    .count();
                if held >= self.quorum {
                    return Ok(true);
                }
                let answered = replies.iter().filter(|r| r.is_ok()).count();
                self.check_quorum(answered, replies.into_iter().filter_map(Result::err).collect(), "check")?;
                Ok(false)
            })
            .await
    }
}

/// This process's clock in microseconds since the Unix epoch: the floor of the fencing tokens of one acquisition,
/// sent to every node (see "Fencing tokens"). A clock before 1970 counts as 0 (the counters alone then order
/// the tokens).
fn clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(nodes: usize) -> Redlock {
        let builder =
            (0..nodes).fold(RedlockConfig::builder(), |b, i| b.url(format!("redis://127.0.0.1:{}", 1000 + i)));
        let config = builder.build().unwrap();
        let nodes = config
            .nodes
            .iter()
            .map(|c| Node { config: c.clone(), manager: OnceCell::new(), retry_at: Mutex::new(None) })
            .collect();
        Redlock::from_nodes(&config, nodes)
    }

    #[test]
    fn validity_subtracts_elapsed_time_and_drift() {
        let lock = lock(3);
        assert_eq!(lock.drift(Duration::from_secs(10)), Duration::from_millis(102));
        assert_eq!(
            lock.validity(Duration::from_secs(10), Duration::from_millis(98)),
            Some(Duration::from_millis(9800))
        );
        assert_eq!(lock.validity(Duration::from_millis(100), Duration::from_millis(97)), None);
        assert_eq!(lock.validity(Duration::from_millis(1), Duration::ZERO), None, "drift alone eats 1 ms");
    }

    #[test]
    fn too_few_answers_name_the_counts() {
        let lock = lock(5);
        assert_eq!(lock.quorum(), 3);
        assert!(lock.check_quorum(3, Vec::new(), "acquire").is_ok());
        let refused = KvError::Unavailable { backend: "redis", reason: "refused".into() };
        match lock.check_quorum(2, vec![refused], "acquire") {
            Err(KvError::Unavailable { reason, .. }) => {
                assert!(reason.contains("2 of 5 Redis nodes answered, a quorum of 3 is needed"), "{reason}");
                assert!(reason.contains("refused"), "{reason}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let auth = KvError::Authentication { backend: "redis", reason: "WRONGPASS".into() };
        assert!(matches!(lock.check_quorum(0, vec![auth], "connect"), Err(KvError::Authentication { .. })));
    }
}
