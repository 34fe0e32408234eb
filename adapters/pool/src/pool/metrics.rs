//! [`MetricsCollector`]: pool metrics through the `metrics` crate, plus a snapshot for apps without a recorder.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::stripes::{Field, Striped};

/// Why a pooled connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// It was found broken (closed by the server, failed validation).
    Broken,
    /// It sat idle longer than `idle_timeout`.
    Idle,
    /// It lived longer than `max_lifetime`.
    Lifetime,
}

impl CloseReason {
    /// The `reason` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Broken => "broken",
            Self::Idle => "idle",
            Self::Lifetime => "lifetime",
        }
    }
}

/// The metrics of one pool, reported through the [`metrics`] facade (so any exporter works: Prometheus,
/// StatsD...) with the labels `backend` and `pool`:
///
/// | name | kind | meaning |
/// |---|---|---|
/// | `cpc_db_pool_acquire_seconds` | histogram | time a checkout waited |
/// | `cpc_db_pool_in_use_seconds` | histogram | time a connection was held |
/// | `cpc_db_pool_connect_seconds` | histogram | time to open a connection |
/// | `cpc_db_pool_connections` | gauge, `state` = `idle` / `in_use` | open connections |
/// | `cpc_db_pool_waiting` | gauge | checkouts waiting for a connection |
/// | `cpc_db_pool_timeouts_total` | counter | checkouts that timed out |
/// | `cpc_db_pool_connections_created_total` | counter | connections opened |
/// | `cpc_db_pool_connections_closed_total` | counter, `reason` = `broken` / `idle` / `lifetime` | connections closed |
///
/// Handles are registered when the collector is made, so install the recorder (exporter) before building pools.
/// [`MetricsCollector::snapshot`] gives the same figures without any recorder.

#[derive(Debug)]
pub struct MetricsCollector {
    acquire: Histogram,
    in_use_time: Histogram,
    connect: Histogram,
    idle_gauge: Gauge,
    in_use_gauge: Gauge,
    waiting_gauge: Gauge,
    timeouts: Counter,
    created: Counter,
    closed: [Counter; 3],
    stats: Stats,
}

/// The counters behind [`MetricsCollector::snapshot`]. Those written on every checkout and return (and by every
/// waiting checkout) are striped by thread: a plain store on a line of the thread's own (see `Striped`).
#[derive(Debug, Default)]
struct Stats {
    striped: Striped,
    created: AtomicU64,
    connect_nanos: AtomicU64,
    timeouts: AtomicU64,
    closed: [AtomicU64; 3],
    idle: AtomicU64,
}

/// The figures of a [`MetricsCollector`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolMetricsSnapshot {
    /// Checkouts that got a connection.
    pub acquired: u64,
    /// Their total wait.
    pub acquire_wait_total: Duration,
    /// Connections returned.
    pub returned: u64,
    /// Total time connections were held.
    pub in_use_total: Duration,
    /// Connections opened.
    pub created: u64,
    /// Total time spent opening them.
    pub connect_total: Duration,
    /// Checkouts that timed out.
    pub timeouts: u64,
    /// Connections closed because broken.
    pub closed_broken: u64,
    /// Connections closed after `idle_timeout`.
    pub closed_idle: u64,
    /// Connections closed after `max_lifetime`.
    pub closed_lifetime: u64,
    /// Idle connections at the last update.
    pub idle: u64,
    /// Connections in use now.
    pub in_use: u64,
    /// Checkouts waiting now.
    pub waiting: u64,
}

/// `d` in nanoseconds, saturating.
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn secs(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

impl MetricsCollector {
    /// A collector for the pool `pool` of `backend` (`"postgres"`, `"sqlite"`).
    pub fn new(backend: &'static str, pool: impl Into<String>) -> Self {
        let pool: String = pool.into();
        let labels = [("backend", backend.to_owned()), ("pool", pool)];
        let with = |extra: (&'static str, &'static str)| {
            let mut l: Vec<(&'static str, String)> = labels.to_vec();
            l.push((extra.0, extra.1.to_owned()));
            l
        };
        Self {
            acquire: histogram!("cpc_db_pool_acquire_seconds", &labels),
            in_use_time: histogram!("cpc_db_pool_in_use_seconds", &labels),
            connect: histogram!("cpc_db_pool_connect_seconds", &labels),
            idle_gauge: gauge!("cpc_db_pool_connections", &with(("state", "idle"))),
            in_use_gauge: gauge!("cpc_db_pool_connections", &with(("state", "in_use"))),
            waiting_gauge: gauge!("cpc_db_pool_waiting", &labels),
            timeouts: counter!("cpc_db_pool_timeouts_total", &labels),
            created: counter!("cpc_db_pool_connections_created_total", &labels),
            closed: [CloseReason::Broken, CloseReason::Idle, CloseReason::Lifetime]
                .map(|r| counter!("cpc_db_pool_connections_closed_total", &with(("reason", r.as_str())))),
            stats: Stats::default(),
        }
    }

    /// [`record_connection_acquired`](Self::record_connection_acquired) in nanoseconds (the pool's clock).
    pub(crate) fn record_acquired_nanos(&self, wait: u64) {
        self.acquire.record(secs(wait));
        // Most checkouts find an idle connection and wait for nothing: skip adding their zero.
        if wait == 0 {
            self.stats.striped.add(&[(Field::Acquired, 1)]);
        } else {
            self.stats.striped.add(&[(Field::Acquired, 1), (Field::AcquireNanos, wait)]);
        }
    }

    /// [`record_connection_returned`](Self::record_connection_returned) in nanoseconds (the pool's clock).
    pub(crate) fn record_returned_nanos(&self, held: u64) {
        self.in_use_time.record(secs(held));
        self.stats.striped.add(&[(Field::Returned, 1), (Field::InUseNanos, held)]);
    }

    /// A checkout got a connection after waiting `wait`.
    pub fn record_connection_acquired(&self, wait: Duration) {
        self.record_acquired_nanos(nanos(wait));
    }

    /// A connection went back to the pool after being held for `held`.
    pub fn record_connection_returned(&self, held: Duration) {
        self.record_returned_nanos(nanos(held));
    }

    /// Sets the `in_use` and `waiting` gauges from the counters (the pool does it about once a second, and on
    /// [`Pool::metrics`](super::Pool::metrics)).
    pub fn refresh_gauges(&self) {
        let s = self.snapshot();
        self.in_use_gauge.set(s.in_use as f64);
        self.waiting_gauge.set(s.waiting as f64);
    }

    /// A new connection was opened in `took`.
    pub fn record_connection_created(&self, took: Duration) {
        self.connect.record(took.as_secs_f64());
        self.created.increment(1);
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        self.stats.connect_nanos.fetch_add(nanos(took), Ordering::Relaxed);
    }

    /// A connection was closed for `reason` (`count` of them).
    pub fn record_connection_dropped(&self, reason: CloseReason, count: u64) {
        let i = reason as usize;
        self.closed[i].increment(count);
        self.stats.closed[i].fetch_add(count, Ordering::Relaxed);
    }

    /// A checkout timed out.
    pub fn record_timeout(&self) {
        self.timeouts.increment(1);
        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A checkout started (`+1`) or stopped (`-1`) waiting for a connection.
    pub fn record_waiting(&self, delta: i64) {
        // Two's complement: adding the wrapped value of a negative delta subtracts.
        self.stats.striped.add(&[(Field::Waiting, delta as u64)]);
    }

    /// The number of idle connections, read from the pool.
    pub fn record_idle(&self, idle: u64) {
        self.stats.idle.store(idle, Ordering::Relaxed);
        self.idle_gauge.set(idle as f64);
    }

    /// The figures so far.
    pub fn snapshot(&self) -> PoolMetricsSnapshot {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Returns are read first: a checkout counted between the two reads can only make in_use larger, never
        // wrap it below zero.
        let sum = |field| s.striped.sum(field);
        let returned = sum(Field::Returned);
        let acquired = sum(Field::Acquired);
        PoolMetricsSnapshot {
            acquired,
            acquire_wait_total: Duration::from_nanos(sum(Field::AcquireNanos)),
            returned,
            in_use_total: Duration::from_nanos(sum(Field::InUseNanos)),
            created: get(&s.created),
            connect_total: Duration::from_nanos(get(&s.connect_nanos)),
            timeouts: get(&s.timeouts),
            closed_broken: get(&s.closed[0]),
            closed_idle: get(&s.closed[1]),
            closed_lifetime: get(&s.closed[2]),
            idle: get(&s.idle),
            in_use: acquired.saturating_sub(returned),
            // The stripes are read one after another: a wait that ended on a stripe already read but began on
            // one read later would make the sum -1, which is 0.
            waiting: u64::try_from(sum(Field::Waiting) as i64).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_adds_up_without_a_recorder() {
        let m = MetricsCollector::new("postgres", "main");
        m.record_connection_created(Duration::from_millis(3));
        m.record_connection_acquired(Duration::from_millis(2));
        m.record_connection_acquired(Duration::from_millis(5));
        m.record_connection_returned(Duration::from_millis(10));
        m.record_connection_dropped(CloseReason::Idle, 2);
        m.record_timeout();
        m.record_waiting(1);
        m.record_waiting(1);
        m.record_waiting(-1);
        let s = m.snapshot();
        assert_eq!((s.acquired, s.returned, s.in_use, s.created, s.timeouts, s.waiting), (2, 1, 1, 1, 1, 1));
        assert_eq!(s.acquire_wait_total, Duration::from_millis(7));
        assert_eq!((s.closed_idle, s.closed_broken), (2, 0));
    }
}
