//! Metrics of the Redis adapters through the [`metrics`] facade (any exporter works: Prometheus, StatsD...).
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `cpc_redis_commands_total` | counter | `adapter`, `operation` | calls of an adapter operation |
//! | `cpc_redis_errors_total` | counter | `adapter`, `operation`, `kind` | calls that returned an error |
//! | `cpc_redis_command_seconds` | histogram | `adapter`, `operation` | time a call took, errors included |
//! | `cpc_redis_pubsub_delivered_total` | counter | `adapter` | messages put into a subscription's queue |
//! | `cpc_redis_pubsub_dropped_total` | counter | `adapter` | messages dropped from a full subscription queue |
//! | `cpc_redis_pubsub_lagged_total` | counter | `adapter` | `Lagged` notices read by subscribers |
//! | `cpc_redis_near_cache_local_total` | counter | `adapter`, `outcome` | reads of a near cache's local tier: `hit`, `miss`, or `bypass` (tracking down, read from Redis) |
//! | `cpc_redis_near_cache_invalidations_total` | counter | `adapter`, `cause` | local entries dropped: `push` (an invalidation from the server), `own_write` (a write through this near cache) |
//! | `cpc_redis_near_cache_flushes_total` | counter | `adapter`, `cause` | local tier emptied whole: `flush` (the server's null invalidation), `disconnect`, `reconnect`, `delete_prefix` |
//!
//! `adapter` is `cache`, `near_cache`, `lock`, `redlock`, `rate_limit`, `session` or `pubsub`; `operation` the port method (e.g. `get`,
//! `try_acquire`, `check_token_bucket`); `kind` the [`KvError`] variant in snake case (`unavailable`, `timeout`,
//! `lease_lost`, `not_found`, `validation`...). Every call counts, also one refused before any round trip (a zero
//! TTL is a `validation` error). A lock `acquire`'s time includes its wait.
//!
//! Overhead: the call counter and the histogram of every operation are registered once, when the adapter is
//! built; a call costs two reads of the CPU's time-stamp counter (`quanta`: a few ns each, where
//! `std::time::Instant` takes a `clock_gettime` call), an atomic add and a histogram record, with no allocation. An error
//! counter is registered on the first error of its kind and operation, then reused. So install the recorder
//! (exporter) globally before building the adapters, as for the pools.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use cpc_ports::KvError;
use metrics::{Counter, Histogram, counter, histogram};
use quanta::Clock;

/// Calls per adapter operation.
pub(crate) const COMMANDS: &str = "cpc_redis_commands_total";
/// Failed calls per adapter operation and error kind.
pub(crate) const ERRORS: &str = "cpc_redis_errors_total";
/// Call latency per adapter operation.
pub(crate) const SECONDS: &str = "cpc_redis_command_seconds";

/// How many error kinds there are (the [`KvError::KINDS`]).
const KINDS: usize = KvError::KINDS.len();

/// The operations of one adapter, as an enum whose discriminants index [`Operations::LABELS`]; made by
/// [`operations!`].
pub(crate) trait Operations: Copy {
    /// The `operation` label of each variant, in declaration order.
    const LABELS: &'static [&'static str];
    /// The variant's position in [`Operations::LABELS`].
    fn index(self) -> usize;
}

/// Declares an adapter's operations: `operations!(CacheOp { Get = "get", Set = "set" });`.
macro_rules! operations {
    ($name:ident { $($variant:ident = $label:literal),+ $(,)? }) => {
        /// The instrumented operations of this adapter (the `operation` label).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $(
                #[doc = $label]
                $variant
            ),+
        }

        impl $crate::metrics::Operations for $name {
            const LABELS: &'static [&'static str] = &[$($label),+];
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use operations;

/// The handles of one operation.
struct Operation {
    adapter: &'static str,
    name: &'static str,
    calls: Counter,
    seconds: Histogram,
    errors: [OnceLock<Counter>; KINDS],
}

/// The metrics of one adapter: pre-registered handles per operation of `O`. Share it behind an [`Arc`].
pub(crate) struct Instruments<O> {
    operations: Box<[Operation]>,
    /// Times the calls (calibrated once per process, on the first adapter built, not on a call).
    clock: Clock,
    _ops: PhantomData<fn(O)>,
}

impl<O: Operations> Instruments<O> {
    /// Registers the call counter and histogram of every operation of `O` for `adapter`.
    pub(crate) fn new(adapter: &'static str) -> Arc<Self> {
        let operations = O::LABELS
            .iter()
            .map(|&name| Operation {
                adapter,
                name,
                calls: counter!(COMMANDS, "adapter" => adapter, "operation" => name),
                seconds: histogram!(SECONDS, "adapter" => adapter, "operation" => name),
                errors: Default::default(),
            })
            .collect();
        Arc::new(Self { operations, clock: Clock::new(), _ops: PhantomData })
    }

    /// Runs `call` as operation `op`, counting it, timing it and counting its error by kind.
    pub(crate) async fn run<T>(&self, op: O, call: impl Future<Output = Result<T, KvError>>) -> Result<T, KvError> {
        let started = self.clock.raw();
        let result = call.await;
        if let Some(m) = self.operations.get(op.index()) {
            let ended = self.clock.raw();
            m.calls.increment(1);
            let nanos = if ended > started { self.clock.delta_as_nanos(started, ended) } else { 0 };
            m.seconds.record(nanos as f64 / 1e9);
            if let Err(e) = &result {
                let (slot, kind) = (e.kind_index(), e.kind());
                m.errors[slot]
                    .get_or_init(|| counter!(ERRORS, "adapter" => m.adapter, "operation" => m.name, "kind" => kind))
                    .increment(1);
            }
        }
        result
    }
}

/// The counters of one near cache's local tier (see the module docs).
pub(crate) struct NearCacheCounters {
    /// Reads answered by the local tier.
    pub(crate) hits: Counter,
    /// Reads the local tier could not answer (then read from Redis, and filled).
    pub(crate) misses: Counter,
    /// Reads that skipped the local tier while invalidation tracking was down.
    pub(crate) bypassed: Counter,
    /// Entries dropped because the server said the key changed.
    pub(crate) pushed_invalidations: Counter,
    /// Entries dropped because this near cache wrote the key.
    pub(crate) own_invalidations: Counter,
    /// The whole tier emptied, per cause.
    pub(crate) flushes: [Counter; 4],
}

/// Why a near cache's local tier was emptied whole: the `cause` label of `cpc_redis_near_cache_flushes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlushCause {
    /// The server flushed its keys (`FLUSHDB`/`FLUSHALL`: a null invalidation).
    Flush,
    /// The invalidation connection was lost.
    Disconnect,
    /// The invalidation connection is back.
    Reconnect,
    /// `delete_prefix` through the near cache.
    DeletePrefix,
}

impl Default for NearCacheCounters {
    /// Registers the counters with the current recorder.
    fn default() -> Self {
        const ADAPTER: &str = "near_cache";
        let local = |outcome: &'static str| counter!("cpc_redis_near_cache_local_total", "adapter" => ADAPTER, "outcome" => outcome);
        let invalidated = |cause: &'static str| counter!("cpc_redis_near_cache_invalidations_total", "adapter" => ADAPTER, "cause" => cause);
        let flushed = |cause: &'static str| counter!("cpc_redis_near_cache_flushes_total", "adapter" => ADAPTER, "cause" => cause);
        Self {
            hits: local("hit"),
            misses: local("miss"),
            bypassed: local("bypass"),
            pushed_invalidations: invalidated("push"),
            own_invalidations: invalidated("own_write"),
            flushes: [flushed("flush"), flushed("disconnect"), flushed("reconnect"), flushed("delete_prefix")],
        }
    }
}

impl NearCacheCounters {
    /// The counter of flushes for `cause`.
    pub(crate) fn flushes(&self, cause: FlushCause) -> &Counter {
        &self.flushes[cause as usize]
    }
}

/// The delivery counters of one pub/sub bus (see the module docs).
pub(crate) struct Deliveries {
    /// Messages put into a subscription's queue.
    pub(crate) delivered: Counter,
    /// Messages dropped from a full queue.
    pub(crate) dropped: Counter,
    /// `Lagged` notices read by subscribers.
    pub(crate) lagged: Counter,
}

impl Default for Deliveries {
    /// Registers the counters with the current recorder.
    fn default() -> Self {
        Self {
            delivered: counter!("cpc_redis_pubsub_delivered_total", "adapter" => "pubsub"),
            dropped: counter!("cpc_redis_pubsub_dropped_total", "adapter" => "pubsub"),
            lagged: counter!("cpc_redis_pubsub_lagged_total", "adapter" => "pubsub"),
        }
    }
}
