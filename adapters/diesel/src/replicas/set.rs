//! [`ReplicaSet`]: one primary pool and N replica pools, with the replicas' health: who is in rotation, how far
//! each has replayed, and a background recheck that takes a failing replica out and puts it back once it answers.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cpc_ports::RepoError;

use super::ReplicaPolicy;
use super::metrics::{PrimarySeries, ReplicaSeries};
use crate::connection::{DieselBackend, ReplicaState};
use cpc_pool::pool::{DatabaseError, Pool, PooledConn};

/// One primary and its read replicas, each with its own [`Pool`]. Cheap to clone (clones share everything).
///
/// Reads that allow stale data take the next replica in rotation (round robin); a replica that fails a checkout
/// or a query with a connection-level error, reports it is no longer in recovery, or lags more than
/// [`ReplicaPolicy::max_lag`] is taken out of rotation, and reads fall back to the primary. A background task
/// (every [`ReplicaPolicy::recheck_interval`], as long as a clone of the set lives) asks every replica how far
/// it has replayed and puts the ones that answer well back. Build one with
/// [`ReplicaSet::connect`](ReplicaSet::connect) from a [`ReplicaConfig`](super::ReplicaConfig), or with
/// [`ReplicaSet::new`] over pools you made.
pub struct ReplicaSet<B: DieselBackend> {
    inner: Arc<Inner<B>>,
}

struct Inner<B: DieselBackend> {
    primary: Pool<B>,
    replicas: Vec<Node<B>>,
    policy: ReplicaPolicy,
    next: AtomicUsize,
    primary_reads: AtomicU64,
    fallbacks: AtomicU64,
    primary_series: PrimarySeries,
}

/// A replica and what the set knows about it.
struct Node<B: DieselBackend> {
    pool: Pool<B>,
    up: AtomicBool,
    /// The highest WAL position it was seen to have replayed.
    replayed: AtomicU64,
    reads: AtomicU64,
    /// Why it was last taken out of rotation.
    last_error: Mutex<Option<String>>,
    series: ReplicaSeries,
}

/// A replica as the set sees it now ([`ReplicaSet::replicas`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaHealth {
    /// `host:port` (never credentials).
    pub address: String,
    /// In rotation: stale reads may go there.
    pub up: bool,
    /// The highest WAL position it was seen to have replayed.
    pub replayed: u64,
    /// Reads it served.
    pub reads: u64,
    /// Why it was last taken out of rotation (kept after it came back, for diagnosis).
    pub last_error: Option<String>,
}

/// Where the set's routed reads went so far ([`ReplicaSet::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingStats {
    /// Reads that allowed stale data but ran on the primary (no replica in rotation, none replayed the caller's
    /// last write yet, or the replica failed).
    pub primary_reads: u64,
    /// Reads served by each replica, in configuration order.
    pub replica_reads: Vec<u64>,
    /// Of the primary reads, those that tried a replica first and fell back because it failed (its checkout, its
    /// replay position query or the read itself failed with a connection error or timed out).
    pub fallbacks: u64,
}

/// How a bounded checkout of a replica connection ended.
enum Checkout<B: DieselBackend> {
    Ready(PooledConn<'static, B>),
    /// Every connection was serving reads, and none came back in time.
    Busy,
    /// The replica did not give a connection: why.
    Failed(String),
}

/// A checked-out replica connection, with which replica it is.
pub(crate) struct ReplicaConn<B: DieselBackend> {
    pub(crate) index: usize,
    pub(crate) conn: PooledConn<'static, B>,
}

impl<B: DieselBackend> Clone for ReplicaSet<B> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<B: DieselBackend> std::fmt::Debug for ReplicaSet<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("primary", &self.inner.primary.address())
            .field("replicas", &self.replicas())
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl<B: DieselBackend> ReplicaSet<B> {
    /// A set over existing pools, every replica in rotation. Starts the background recheck when called inside a
    /// tokio runtime (it stops when the last clone of the set is dropped); outside one, only failures take
    /// replicas out and [`check_now`](Self::check_now) puts them back.
    pub fn new(primary: Pool<B>, replicas: Vec<Pool<B>>, policy: ReplicaPolicy) -> Self {
        Self::with_states(primary, replicas.into_iter().map(|pool| (pool, None)).collect(), policy)
    }

    /// A set whose replicas start in rotation, or out of it with the reason given.
    fn with_states(primary: Pool<B>, replicas: Vec<(Pool<B>, Option<String>)>, policy: ReplicaPolicy) -> Self {
        let replicas = replicas
            .into_iter()
            .map(|(pool, down)| Node {
                series: ReplicaSeries::new(pool.address(), down.is_none()),
                pool,
                up: AtomicBool::new(down.is_none()),
                replayed: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                last_error: Mutex::new(down),
            })
            .collect();
        let inner = Arc::new(Inner {
            primary,
            replicas,
            policy,
            next: AtomicUsize::new(0),
            primary_reads: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            primary_series: PrimarySeries::new(),
        });
        if !inner.replicas.is_empty()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(recheck_loop(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    /// The primary's pool: writes, units of work and reads that must see the latest data.
    pub fn primary(&self) -> &Pool<B> {
        &self.inner.primary
    }

    /// The replicas' pools, in configuration order.
    pub fn replica_pools(&self) -> impl Iterator<Item = &Pool<B>> {
        self.inner.replicas.iter().map(|n| &n.pool)
    }

    /// The rules the set follows.
    pub fn policy(&self) -> &ReplicaPolicy {
        &self.inner.policy
    }

    /// Each replica's state now, in configuration order.
    pub fn replicas(&self) -> Vec<ReplicaHealth> {
        self.inner
            .replicas
            .iter()
            .map(|n| ReplicaHealth {
                address: n.pool.address().to_owned(),
                up: n.up.load(Ordering::Acquire),
                replayed: n.replayed.load(Ordering::Acquire),
                reads: n.reads.load(Ordering::Relaxed),
                last_error: n.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            })
            .collect()
    }

    /// Where routed reads went so far.
    pub fn stats(&self) -> RoutingStats {
        RoutingStats {
            primary_reads: self.inner.primary_reads.load(Ordering::Relaxed),
            replica_reads: self.inner.replicas.iter().map(|n| n.reads.load(Ordering::Relaxed)).collect(),
            fallbacks: self.inner.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Asks every replica now how far it has replayed (all at once; the checkout and the answer each bounded by
    /// [`ReplicaPolicy::check_timeout`]), taking failing ones
    /// out of rotation and putting answering ones back: what the background recheck does every interval.
    pub async fn check_now(&self) {
        self.inner.check_all().await;
    }

    /// A connection to the next replica in rotation that has replayed at least `min_position` (the caller's last
    /// write; 0 if none), or `None` when no replica can serve it (the read then goes to the primary). A replica
    /// whose checkout or replay query fails is taken out of rotation on the way, and `failed` set.
    pub(crate) async fn replica_for(&self, min_position: u64, failed: &mut bool) -> Option<ReplicaConn<B>> {
        let n = self.inner.replicas.len();
        if min_position == u64::MAX {
            return None; // The caller's last write position is unknown: only the primary is safe.
        }
        for _ in 0..n {
            let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % n;
            let node = &self.inner.replicas[index];
            if !node.up.load(Ordering::Acquire) {
                continue;
            }
            let mut conn = match self.inner.checkout(index).await {
                Checkout::Ready(conn) => conn,
                Checkout::Busy => continue, // Every connection serving reads: this read goes elsewhere.
                Checkout::Failed(reason) => {
                    self.inner.take_out(index, &reason);
                    *failed = true;
                    continue;
                }
            };
            if node.replayed.load(Ordering::Acquire) < min_position {
                match self.inner.probe(index, &mut conn).await {
                    Ok(state) if state.replayed < min_position => continue, // Not there yet: just not for this read.
                    Ok(_) => {}
                    Err(reason) => {
                        self.inner.take_out(index, &reason);
                        *failed = true;
                        continue;
                    }
                }
            }
            return Some(ReplicaConn { index, conn });
        }
        None
    }

    /// Counts a read served by replica `index`.
    pub(crate) fn served_by_replica(&self, index: usize) {
        if let Some(node) = self.inner.replicas.get(index) {
            node.reads.fetch_add(1, Ordering::Relaxed);
            node.series.reads.increment(1);
        }
    }

    /// Counts a routed read served by the primary (`fallback`: after a replica failed).
    pub(crate) fn served_by_primary(&self, fallback: bool) {
        self.inner.primary_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.primary_series.reads.increment(1);
        if fallback {
            self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.inner.primary_series.fallbacks.increment(1);
        }
    }

    /// Takes replica `index` out of rotation after `error` on it.
    pub(crate) fn replica_failed(&self, index: usize, error: &RepoError) {
        self.inner.take_out(index, &error.to_string());
    }

    /// Takes replica `index` out of rotation after a read got no answer within the policy's `read_timeout`.
    pub(crate) fn replica_timed_out(&self, index: usize, after: Duration) {
        self.inner.take_out(index, &format!("no answer to a read within {after:?}"));
    }
}

impl<B: DieselBackend> Inner<B> {
    fn take_out(&self, index: usize, reason: &str) {
        let Some(node) = self.replicas.get(index) else { return };
        *node.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_owned());
        if node.up.swap(false, Ordering::AcqRel) {
            node.series.up.set(0.0);
            node.series.taken_out.increment(1);
            tracing::warn!(
                replica = node.pool.address(),
                reason,
                "replica taken out of rotation; reads fall back to the primary"
            );
        }
    }

    fn put_back(&self, index: usize) {
        let Some(node) = self.replicas.get(index) else { return };
        if !node.up.swap(true, Ordering::AcqRel) {
            node.series.up.set(1.0);
            tracing::info!(replica = node.pool.address(), "replica back in rotation");
        }
    }

    async fn check_all(&self) {
        futures::future::join_all((0..self.replicas.len()).map(|i| self.check(i))).await;
    }

    /// A connection to replica `index` within `check_timeout`. A wait past it is the replica's fault (it does not
    /// answer a connect or a validation ping) unless every connection of its pool was already serving reads.
    async fn checkout(&self, index: usize) -> Checkout<B> {
        let pool = &self.replicas[index].pool;
        let state = pool.state();
        let busy = state.idle == 0 && state.connections >= state.max;
        match tokio::time::timeout(self.policy.check_timeout, pool.get_owned()).await {
            Ok(Ok(conn)) => Checkout::Ready(conn),
            Ok(Err(DatabaseError::PoolTimeout(_))) | Err(_) if busy => Checkout::Busy,
            Ok(Err(e)) => Checkout::Failed(e.to_string()),
            Err(_) => Checkout::Failed(format!("no connection within {:?}", self.policy.check_timeout)),
        }
    }

    async fn check(&self, index: usize) {
        let mut conn = match self.checkout(index).await {
            Checkout::Ready(conn) => conn,
            Checkout::Busy => return, // Every connection serving reads: no verdict this round.
            Checkout::Failed(reason) => return self.take_out(index, &reason),
        };
        match self.probe(index, &mut conn).await {
            Ok(state) => match self.policy.max_lag {
                Some(max) if state.lag > max => {
                    self.take_out(index, &format!("lags {:?} behind the primary (more than {max:?})", state.lag));
                }
                _ => self.put_back(index),
            },
            Err(reason) => self.take_out(index, &reason),
        }
    }

    /// Asks replica `index` (on `conn`, one of its connections) how far it has replayed, within `check_timeout`,
    /// and records the answer. `Err` says why the replica should leave the rotation: no answer in time (the
    /// connection, abandoned mid-query, is then discarded), an error, or no longer in recovery.
    async fn probe(&self, index: usize, conn: &mut PooledConn<'_, B>) -> Result<ReplicaState, String> {
        let state = match tokio::time::timeout(self.policy.check_timeout, B::replica_state(conn)).await {
            Ok(Ok(Some(state))) => state,
            Ok(Ok(None)) => return Err("the server is not in recovery (promoted?)".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                conn.discard();
                return Err(format!("no answer within {:?}", self.policy.check_timeout));
            }
        };
        self.replicas[index].replayed.fetch_max(state.replayed, Ordering::AcqRel);
        Ok(state)
    }
}

/// Rechecks the replicas every interval while the set lives.
async fn recheck_loop<B: DieselBackend>(set: Weak<Inner<B>>) {
    let interval = match set.upgrade() {
        Some(inner) => inner.policy.recheck_interval.max(Duration::from_millis(10)),
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = set.upgrade() else { return };
        inner.check_all().await;
    }
}

impl ReplicaSet<crate::DieselPgBackend> {
    /// Opens the primary's pool and one pool per replica, all at once, each opening its first connection now,
    /// then starts the background recheck. Pools are named `diesel-postgres-primary` and
    /// `diesel-postgres-replica-<i>`.
    ///
    /// Fails, naming the server, when the primary cannot be reached or refuses, and when a replica refuses for a
    /// reason waiting cannot fix (a wrong password, an unknown database, a TLS failure: a configuration
    /// mistake). A replica that is only unreachable (refused, timed out, down) does not stop the start: it
    /// starts out of rotation, with the reason in [`replicas`](Self::replicas), and the recheck puts it in
    /// once it answers.
    pub async fn connect(config: &super::ReplicaConfig) -> Result<Self, DatabaseError> {
        use crate::DieselPgBackend;
        config.validate()?;
        let primary = Pool::new(DieselPgBackend::new(&config.primary)?, &config.pool, "diesel-postgres-primary");
        let replicas = config.replicas.iter().enumerate().map(|(i, replica)| async move {
            let name = format!("diesel-postgres-replica-{i}");
            let pool = Pool::new_unconnected(DieselPgBackend::new(replica)?, &config.pool, name)?;
            // The first checkout opens the first connection, and fails fast with the cause when it cannot.
            let opened = pool.get().await.map(drop);
            match opened {
                Ok(()) => Ok((pool, None)),
                Err(e) if e.is_fatal() => Err(e),
                Err(e) => {
                    tracing::warn!(replica = %replica.address(), error = %e, "replica unreachable at start-up; it starts out of rotation");
                    Ok((pool, Some(format!("unreachable at start-up: {e}"))))
                }
            }
        });
        let (primary, replicas) = futures::future::join(primary, futures::future::try_join_all(replicas)).await;
        Ok(Self::with_states(primary?, replicas?, config.policy.clone()))
    }
}
