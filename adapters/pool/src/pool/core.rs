//! The pool every backend shares: bb8 underneath, with what bb8 lacks added around it.
//!
//! * **Errors that say what happened.** bb8 retries a failing connect until the checkout times out and then
//!   reports only "timed out". Here the manager broadcasts every connect failure; a waiting checkout fails at once
//!   with the real cause when it is fatal (wrong password, unknown database, TLS) or when the pool has no
//!   connection left to wait for (server down), and the pool's first connection is opened directly at start-up.
//! * **Cheap checkout.** A connection used within `validation_skip_window` is handed out without a validation
//!   round trip; an older one is pinged first, and one known to be broken is never handed out.
//! * **Metrics and leak detection** on every checkout ([`MetricsCollector`], `leak_detection_threshold`).

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

// A TSC clock: a checkout and its return read the clock once each, and a `quanta::Clock` reads it in a few ns
// where `std::time::Instant` (a vDSO `clock_gettime`) takes 25-35 ns on the project's machine. Readings are kept
// raw (`Clock::raw`, u64) and turned into nanoseconds only as differences (`elapsed_nanos`).
use quanta::Clock;
use tokio::sync::watch;

use super::clock::elapsed_nanos;

use super::leak::{LeakDetector, LeakEntry};
use super::metrics::nanos;
use super::{CloseReason, DatabaseError, MetricsCollector, PoolConfig, PoolMetricsSnapshot};

/// A database the pool can open connections to: the part that differs between PostgreSQL and SQLite.
pub trait Backend: Send + Sync + 'static {
    /// The connection type.
    type Conn: Send + 'static;
    /// The `backend` label of metrics and logs, e.g. `"postgres"`.
    const NAME: &'static str;
    /// Opens a connection, mapping failures to precise [`DatabaseError`] variants.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, DatabaseError>> + Send;
    /// One cheap round trip proving the connection works.
    fn ping(&self, conn: &mut Self::Conn) -> impl Future<Output = Result<(), DatabaseError>> + Send;
    /// Whether the connection is known to be unusable, without I/O.
    fn is_broken(&self, conn: &mut Self::Conn) -> bool;
    /// The server's version, for health reports.
    fn server_version(&self, conn: &mut Self::Conn) -> impl Future<Output = Result<String, DatabaseError>> + Send;
    /// Where the database is (`host:port`, a file path), for messages. Never includes credentials.
    fn address(&self) -> String;
}

/// A connection as the pool keeps it: the backend's connection, when it was opened and last handed back (raw
/// clock readings), and its leak detection slot.
#[derive(Debug)]
pub struct Tracked<C> {
    conn: C,
    opened_at: u64,
    returned_at: u64,
    invalid: bool,
    leak: Option<LeakEntry>,
    /// The pool's count of open connections, which this one leaves when bb8 drops it (for whatever reason).
    live: Arc<AtomicU32>,
}

impl<C> Drop for Tracked<C> {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The bb8 connection manager over a [`Backend`].
#[derive(Debug)]
pub(crate) struct Manager<B: Backend> {
    backend: Arc<B>,
    metrics: Arc<MetricsCollector>,
    /// Open connections (bb8's own count is behind its lock).
    live: Arc<AtomicU32>,
    clock: Clock,
    leaks: Option<Arc<LeakDetector>>,
}

impl<B: Backend> Manager<B> {
    /// The manager of pool `name` over `backend`.
    fn new(backend: B, config: &PoolConfig, name: &str) -> Self {
        Self {
            backend: Arc::new(backend),
            metrics: Arc::new(MetricsCollector::new(B::NAME, name.to_owned())),
            live: Arc::new(AtomicU32::new(0)),
            clock: Clock::new(),
            leaks: config.leak_detection_threshold.map(|threshold| Arc::new(LeakDetector::new(threshold))),
        }
    }
}

/// bb8's error sink: where it reports connect failures once their bookkeeping is done.
#[derive(Debug, Clone)]
struct FailureSink(Arc<Failures>);

impl bb8::ErrorSink<DatabaseError> for FailureSink {
    fn sink(&self, error: DatabaseError) {
        tracing::debug!(%error, "connecting to the database failed");
        self.0.record(&error);
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<DatabaseError>> {
        Box::new(self.clone())
    }
}

/// Connect failures, for checkouts that wait: broadcast to those subscribed, and the latest kept with a
/// generation number so a checkout that subscribes late still sees one that happened meanwhile.
#[derive(Debug)]
struct Failures {
    /// Bumped on every failure. A `watch` channel rather than a `Notify`: it wakes waiters through sharded lists
    /// (64 waiting checkouts registering on one `Notify` measurably contended on its lock), and a receiver that
    /// subscribes late still sees a version it has not seen.
    tx: watch::Sender<u64>,
    rx: watch::Receiver<u64>,
    generation: AtomicU64,
    last: Mutex<Option<DatabaseError>>,
}

impl Default for Failures {
    fn default() -> Self {
        let (tx, rx) = watch::channel(0);
        Self { tx, rx, generation: AtomicU64::new(0), last: Mutex::new(None) }
    }
}

impl Failures {
    fn record(&self, e: &DatabaseError) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
        let generation = self.generation.fetch_add(1, Ordering::Release) + 1;
        self.tx.send_replace(generation);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The latest failure if any happened after `generation`; moves `generation` to now.
    fn since(&self, generation: &mut u64) -> Option<DatabaseError> {
        let now = self.generation();
        if now == *generation {
            return None;
        }
        *generation = now;
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl<B: Backend> bb8::ManageConnection for Manager<B> {
    type Connection = Tracked<B::Conn>;
    type Error = DatabaseError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let started = self.clock.raw();
        match self.backend.connect().await {
            Ok(conn) => {
                let opened_at = self.clock.raw();
                let took = elapsed_nanos(&self.clock, started, opened_at);
                self.metrics.record_connection_created(Duration::from_nanos(took));
                self.live.fetch_add(1, Ordering::Relaxed);
                Ok(Tracked {
                    conn,
                    opened_at,
                    returned_at: opened_at,
                    invalid: false,
                    leak: self.leaks.as_ref().map(LeakDetector::register),
                    live: self.live.clone(),
                })
            }
            // Waiting checkouts learn of the failure through the error sink, which bb8 calls after releasing the
            // failed attempt's slot: told any earlier, a new checkout could find the slot still taken, start no
            // connect of its own, and wait out the whole timeout.
            Err(e) => Err(e),
        }
    }

    /// Validation happens in [`Pool::get`], where the checkout's start time is known (one clock read less);
    /// bb8's own check-out test is off.
    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        self.backend.ping(&mut conn.conn).await
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        conn.invalid || self.backend.is_broken(&mut conn.conn)
    }
}

struct Shared<B: Backend> {
    pool: bb8::Pool<Manager<B>>,
    backend: Arc<B>,
    metrics: Arc<MetricsCollector>,
    leaks: Option<Arc<LeakDetector>>,
    failures: Arc<Failures>,
    live: Arc<AtomicU32>,
    clock: Clock,
    config: PoolConfig,
    /// `validation_skip_window` and `max_lifetime` in nanoseconds, compared on every checkout and return.
    skip_window_nanos: u64,
    lifetime_nanos: Option<u64>,
    name: String,
    address: String,
    closed_seen: Mutex<[u64; 3]>,
    /// Connections closed for `max_lifetime` by this pool (bb8 counts them as broken).
    retired: AtomicU64,
}

type Checkout<'p, B> = Result<bb8::PooledConnection<'p, Manager<B>>, bb8::RunError<DatabaseError>>;

impl<B: Backend> Shared<B> {
    /// The slow path of a checkout: waits for bb8, or for a connect failure that should end the wait.
    async fn wait<'p>(
        &self,
        mut get: Pin<&mut (impl Future<Output = Checkout<'p, B>> + Send)>,
        generation: &mut u64,
    ) -> Checkout<'p, B> {
        let _waiting = WaitingGuard::new(&self.metrics);
        // Listening for connect failures costs every waiting checkout a registration, so only a checkout that
        // may need a new connection listens: one that starts waiting while the pool is below its maximum. A
        // checkout waiting on a full pool waits for a connection to come back; if connecting fails meanwhile
        // (every connection died with the server), it still ends at `connection_timeout` and reports that
        // failure rather than a timeout (see `checkout`).
        if self.live.load(Ordering::Relaxed) >= self.config.max_connections {
            return get.await;
        }
        let mut failures = self.failures.rx.clone();
        loop {
            // Checked before waiting: a failure recorded after this check changes the watch's version, so
            // `changed` below returns at once and the next turn sees it.
            if let Some(e) = self.failures.since(generation).filter(|e| self.ends_wait(e)) {
                return Err(bb8::RunError::User(e));
            }
            tokio::select! {
                r = get.as_mut() => return r,
                changed = failures.changed() => {
                    if changed.is_err() {
                        return get.await;
                    }
                }
            }
        }
    }

    /// A checkout: bb8's (`get` makes its future), then validation, metrics and leak tracking.
    async fn checkout<'p, F, Fut>(
        &self,
        location: &'static Location<'static>,
        mut get: F,
    ) -> Result<(bb8::PooledConnection<'p, Manager<B>>, u64), DatabaseError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Checkout<'p, B>> + Send,
    {
        let started = self.clock.raw();
        let first_generation = self.failures.generation();
        let mut generation = first_generation;
        let mut waited = false;
        loop {
            let checkout = {
                let mut get = std::pin::pin!(get());
                // Fast path: a connection is idle and bb8 hands it out on the first poll.
                match futures::poll!(&mut get) {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        waited = true;
                        self.wait(get, &mut generation).await
                    }
                }
            };
            let mut conn = checkout.map_err(|e| match e {
                bb8::RunError::User(e) => e,
                bb8::RunError::TimedOut => {
                    self.metrics.record_timeout();
                    // Connecting failed while this checkout waited: that failure is why, not the wait.
                    let mut since = first_generation;
                    self.failures
                        .since(&mut since)
                        .unwrap_or(DatabaseError::PoolTimeout(self.config.connection_timeout))
                }
            })?;
            if self.expired(&conn, started) {
                // Past `max_lifetime`: closed by bb8 when it comes back; try another.
                self.retire(&mut conn);
            } else if self.fresh(&mut conn, started) || Box::pin(self.answers(&mut conn, started)).await {
                // A checkout served on the first poll did not wait for a connection: its wait is zero.
                let taken = if waited { self.clock.raw() } else { started };
                self.metrics.record_acquired_nanos(elapsed_nanos(&self.clock, started, taken));
                if let Some(leak) = &conn.leak {
                    leak.slot().check_out(location, taken);
                }
                return Ok((conn, taken));
            } else {
                // Broken: bb8 discards it when it comes back; try another within the same time limit.
                conn.invalid = true;
            }
            drop(conn);
            waited = true;
            if self.elapsed(started) >= self.config.connection_timeout {
                self.metrics.record_timeout();
                return Err(DatabaseError::PoolTimeout(self.config.connection_timeout));
            }
        }
    }

    /// Marks a connection past its `max_lifetime` for closing when it goes back to bb8, which counts it as
    /// broken; `retired` lets `refresh` report it as a lifetime close instead.
    fn retire(&self, conn: &mut Tracked<B::Conn>) {
        conn.invalid = true;
        self.retired.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a connect failure should end waiting checkouts: it is fatal, or no connection is left to wait for.
    fn ends_wait(&self, e: &DatabaseError) -> bool {
        e.is_fatal() || self.live.load(Ordering::Relaxed) == 0
    }

    /// Time since raw clock reading `since`.
    fn elapsed(&self, since: u64) -> Duration {
        Duration::from_nanos(elapsed_nanos(&self.clock, since, self.clock.raw()))
    }

    /// Whether a connection has lived past `max_lifetime` at raw clock reading `now`.
    fn expired(&self, conn: &Tracked<B::Conn>, now: u64) -> bool {
        self.lifetime_nanos.is_some_and(|lifetime| elapsed_nanos(&self.clock, conn.opened_at, now) >= lifetime)
    }

    /// Whether a checked-out connection may be handed out without a ping: not broken, and used recently.
    fn fresh(&self, conn: &mut Tracked<B::Conn>, started: u64) -> bool {
        elapsed_nanos(&self.clock, conn.returned_at, started) < self.skip_window_nanos
            && !self.backend.is_broken(&mut conn.conn)
    }

    /// Whether a connection that is not [`fresh`](Self::fresh) may be handed out: not broken, and answering a
    /// ping (boxed by the caller: the slow path's state stays out of every checkout's future).
    async fn answers(&self, conn: &mut Tracked<B::Conn>, started: u64) -> bool {
        if self.backend.is_broken(&mut conn.conn) {
            return false;
        }
        // A half-open connection may never answer: the ping gets what is left of the checkout's time. Until it
        // answers the connection counts as broken, so a checkout abandoned mid-ping (its future dropped by a
        // caller's own timeout) leaves it to be closed, not handed out with a reply still on its way.
        let left = self.config.connection_timeout.saturating_sub(self.elapsed(started));
        conn.invalid = true;
        let answered = matches!(tokio::time::timeout(left, self.backend.ping(&mut conn.conn)).await, Ok(Ok(())));
        conn.invalid = !answered;
        answered
    }
}

/// A connection pool over a [`Backend`]. Cheap to clone (all clones share the pool).
pub struct Pool<B: Backend> {
    shared: Arc<Shared<B>>,
}

impl<B: Backend> Clone for Pool<B> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<B: Backend> std::fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("backend", &B::NAME)
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish()
    }
}

/// How many connections a pool has and what they are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections.
    pub connections: u32,
    /// Of which idle.
    pub idle: u32,
    /// Of which checked out.
    pub in_use: u32,
    /// Checkouts waiting for a connection.
    pub waiting: u64,
    /// The configured maximum.
    pub max: u32,
}

impl<B: Backend> Pool<B> {
    /// Builds a pool, opening its first connection directly so a wrong password, an unknown database, a refused
    /// port or a TLS failure is reported at once, precisely.
    pub async fn new(backend: B, config: &PoolConfig, name: impl Into<String>) -> Result<Self, DatabaseError> {
        config.validate()?;
        let name = name.into();
        let manager = Manager::new(backend, config, &name);
        let first = bb8::ManageConnection::connect(&manager).await.inspect_err(|error| {
            let address = manager.backend.address();
            tracing::warn!(backend = B::NAME, pool = %name, %address, %error, "could not open the pool's first connection");
        })?;
        let pool = Self::assemble(manager, config, name);
        // A fresh pool has room for its first connection; if not, dropping it is harmless.
        let _ = pool.shared.pool.add(first);
        Ok(pool)
    }

    /// Builds a pool without connecting: the first checkout (or bb8's `min_connections` upkeep) opens the first
    /// connection, and reports why it could not. For a server that may be down at start-up and should not stop
    /// the app from starting (a read replica, say); [`Pool::new`] is the right choice for everything else, since
    /// it reports a wrong password or an unreachable server at once. Must be called inside a tokio runtime.
    pub fn new_unconnected(backend: B, config: &PoolConfig, name: impl Into<String>) -> Result<Self, DatabaseError> {
        config.validate()?;
        let name = name.into();
        Ok(Self::assemble(Manager::new(backend, config, &name), config, name))
    }

    /// The pool over `manager`, with its housekeeping started; holds no connection yet.
    fn assemble(manager: Manager<B>, config: &PoolConfig, name: String) -> Self {
        let failures = Arc::new(Failures::default());
        let (backend, metrics, live, clock, leaks) = (
            manager.backend.clone(),
            manager.metrics.clone(),
            manager.live.clone(),
            manager.clock.clone(),
            manager.leaks.clone(),
        );
        let address = backend.address();
        let pool = bb8::Pool::builder()
            .max_size(config.max_connections)
            .min_idle(Some(config.min_connections).filter(|n| *n > 0))
            .connection_timeout(config.connection_timeout)
            .idle_timeout(config.idle_timeout)
            // The pool enforces `max_lifetime` itself, on checkout and on return, with the TSC reading it takes
            // anyway; bb8 would read the system clock once more on every return. An idle connection past its
            // lifetime is closed when next checked out, or by `idle_timeout`.
            .max_lifetime(None)
            .test_on_check_out(false)
            .retry_connection(false)
            .error_sink(Box::new(FailureSink(failures.clone())))
            .build_unchecked(manager);
        let shared = Arc::new(Shared {
            pool,
            backend,
            metrics,
            leaks,
            failures,
            live,
            clock,
            config: config.clone(),
            skip_window_nanos: nanos(config.validation_skip_window),
            lifetime_nanos: config.max_lifetime.map(nanos),
            name,
            address,
            closed_seen: Mutex::new([0; 3]),
            retired: AtomicU64::new(0),
        });
        spawn_housekeeping(Arc::downgrade(&shared));
        Self { shared }
    }

    /// Checks out a connection, waiting up to `connection_timeout`. The connection borrows the pool (as bb8's
    /// `get` does); [`Pool::get_owned`] gives one that does not.
    ///
    /// Fails fast with the cause (not a timeout) when connecting fails for a reason waiting cannot fix, or when
    /// the server is unreachable and no connection is left to wait for. Records where it was called from, for
    /// leak detection.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<PooledConn<'_, B>, DatabaseError>> + Send + '_ {
        let location = Location::caller();
        let shared: &Shared<B> = &self.shared;
        async move {
            let (conn, taken) = shared.checkout(location, || shared.pool.get()).await?;
            Ok(PooledConn { conn, shared: SharedRef::Borrowed(shared), taken })
        }
    }

    /// Like [`Pool::get`], but the connection (and the future) own a handle on the pool, so they are `'static`:
    /// for a connection kept in a struct or moved into a spawned task. Costs two reference-count updates more.
    #[track_caller]
    pub fn get_owned(&self) -> impl Future<Output = Result<PooledConn<'static, B>, DatabaseError>> + Send + 'static {
        let location = Location::caller();
        let shared = self.shared.clone();
        async move {
            let (conn, taken) = shared.checkout(location, || shared.pool.get_owned()).await?;
            Ok(PooledConn { conn, shared: SharedRef::Owned(shared), taken })
        }
    }

    /// Connections and checkouts now.
    pub fn state(&self) -> PoolState {
        let s = self.shared.pool.state();
        let m = self.shared.metrics.snapshot();
        PoolState {
            connections: s.connections,
            idle: s.idle_connections,
            in_use: s.connections.saturating_sub(s.idle_connections),
            waiting: m.waiting,
            max: self.shared.config.max_connections,
        }
    }

    /// The pool's metrics so far (also reported through the `metrics` crate).
    pub fn metrics(&self) -> PoolMetricsSnapshot {
        refresh(&self.shared);
        self.shared.metrics.snapshot()
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The pool's name (the `pool` metrics label).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The backend the pool opens connections with.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }

    /// Where the database is (`host:port` or a file path); never includes credentials.
    pub fn address(&self) -> &str {
        &self.shared.address
    }
}

/// Counts a checkout as waiting for as long as it lives, even if the checkout future is dropped.
struct WaitingGuard<'a>(&'a MetricsCollector);

impl<'a> WaitingGuard<'a> {
    fn new(metrics: &'a MetricsCollector) -> Self {
        metrics.record_waiting(1);
        Self(metrics)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.record_waiting(-1);
    }
}

/// Brings gauges and close counters up to date from bb8's statistics.
fn refresh<B: Backend>(shared: &Shared<B>) {
    let state = shared.pool.state();
    shared.metrics.record_idle(u64::from(state.idle_connections));
    shared.metrics.refresh_gauges();
    let s = &state.statistics;
    // Read after bb8's figures: a connection retired since then is in `retired` but not yet in bb8's broken
    // count, which makes `broken` briefly low; `seen` only ever grows, so that is never counted twice.
    let retired = shared.retired.load(Ordering::Relaxed);
    let now = [
        (s.connections_closed_broken + s.connections_closed_invalid).saturating_sub(retired),
        s.connections_closed_idle_timeout,
        s.connections_closed_max_lifetime + retired,
    ];
    let mut seen = shared.closed_seen.lock().unwrap_or_else(|e| e.into_inner());
    for (i, reason) in [CloseReason::Broken, CloseReason::Idle, CloseReason::Lifetime].into_iter().enumerate() {
        let delta = now[i].saturating_sub(seen[i]);
        if delta > 0 {
            shared.metrics.record_connection_dropped(reason, delta);
        }
        seen[i] = seen[i].max(now[i]);
    }
}

/// Once a second (or faster for short leak thresholds): refresh metrics and report leaks. Stops with the pool.
fn spawn_housekeeping<B: Backend>(shared: Weak<Shared<B>>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
    let period = shared
        .upgrade()
        .and_then(|s| s.leaks.as_ref().map(|l| l.threshold() / 2))
        .map_or(Duration::from_secs(1), |p| p.clamp(Duration::from_millis(10), Duration::from_secs(1)));
    handle.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else { return };
            refresh(&shared);
            if let Some(leaks) = &shared.leaks {
                leaks.sweep(&shared.clock, &shared.name);
            }
        }
    });
}

/// The pool behind a checkout: borrowed ([`Pool::get`]) or shared ([`Pool::get_owned`]).
enum SharedRef<'a, B: Backend> {
    Borrowed(&'a Shared<B>),
    Owned(Arc<Shared<B>>),
}

impl<B: Backend> Deref for SharedRef<'_, B> {
    type Target = Shared<B>;
    fn deref(&self) -> &Shared<B> {
        match self {
            Self::Borrowed(s) => s,
            Self::Owned(s) => s,
        }
    }
}

/// A checked-out connection. Derefs to the backend's connection; goes back to the pool when dropped.
/// `PooledConn<'static, B>` (from [`Pool::get_owned`]) does not borrow the pool.
pub struct PooledConn<'a, B: Backend> {
    conn: bb8::PooledConnection<'a, Manager<B>>,
    shared: SharedRef<'a, B>,
    /// Raw clock reading of the checkout.
    taken: u64,
}

impl<B: Backend> std::fmt::Debug for PooledConn<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("pool", &self.shared.name)
            .field("held", &self.shared.elapsed(self.taken))
            .finish()
    }
}

impl<B: Backend> PooledConn<'_, B> {
    /// Marks the connection as unusable: the pool closes it when it comes back (counted as broken) instead of
    /// handing it out again. For a connection left in an unknown state, such as one whose query was abandoned
    /// at a timeout.
    pub fn discard(&mut self) {
        self.conn.invalid = true;
    }
}

impl<B: Backend> Deref for PooledConn<'_, B> {
    type Target = B::Conn;
    fn deref(&self) -> &B::Conn {
        &self.conn.conn
    }
}

impl<B: Backend> DerefMut for PooledConn<'_, B> {
    fn deref_mut(&mut self) -> &mut B::Conn {
        &mut self.conn.conn
    }
}

impl<B: Backend> Drop for PooledConn<'_, B> {
    fn drop(&mut self) {
        let shared = &*self.shared;
        let now = shared.clock.raw();
        let held = elapsed_nanos(&shared.clock, self.taken, now);
        let conn = &mut *self.conn;
        conn.returned_at = now;
        if shared.expired(conn, now) {
            shared.retire(conn);
        }
        shared.metrics.record_returned_nanos(held);
        if let (Some(leaks), Some(leak)) = (&shared.leaks, &conn.leak) {
            leaks.release(leak.slot(), Duration::from_nanos(held), &shared.name);
        }
    }
}
