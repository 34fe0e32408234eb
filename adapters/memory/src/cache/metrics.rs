//! The metrics of an [`InMemoryCache`](super::InMemoryCache), through the [`metrics`] facade (registered with
//! the recorder in place when the cache is built, so install the exporter first).
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `cpc_memory_cache_evictions_total` | counter | `cache` | entries evicted to keep within the bounds (least recently used first); expired and deleted entries do not count |
//! | `cpc_memory_cache_entries` | gauge | `cache` | entries held, as of the store's last housekeeping |
//! | `cpc_memory_cache_fill_ratio` | gauge | `cache` | how full the cache is, 0 to 1: the weight held over the capacity ([`CacheBounds`](super::CacheBounds)); 1 means the next write evicts |
//!
//! `cache` is the name given with [`InMemoryCacheBuilder::name`](super::InMemoryCacheBuilder::name) (`"cache"`
//! by default). The gauges are set after every write: two atomic loads, a division and two gauge stores.

use metrics::{Counter, Gauge, counter, gauge};

/// Entries evicted by the bounds.
pub const EVICTIONS: &str = "cpc_memory_cache_evictions_total";
/// Entries held.
pub const ENTRIES: &str = "cpc_memory_cache_entries";
/// Weight held over capacity.
pub const FILL_RATIO: &str = "cpc_memory_cache_fill_ratio";

/// The handles of one cache.
pub(super) struct Instruments {
    pub(super) evictions: Counter,
    entries: Gauge,
    fill: Gauge,
}

impl Instruments {
    /// Registers the handles of the cache named `name`.
    pub(super) fn new(name: &str) -> Self {
        let name = name.to_owned();
        Self {
            evictions: counter!(EVICTIONS, "cache" => name.clone()),
            entries: gauge!(ENTRIES, "cache" => name.clone()),
            fill: gauge!(FILL_RATIO, "cache" => name),
        }
    }

    /// Reports the size of the store: `entries` holding `weight` out of `capacity`.
    pub(super) fn observe(&self, entries: u64, weight: u64, capacity: u64) {
        self.entries.set(entries as f64);
        self.fill.set(weight as f64 / capacity.max(1) as f64);
    }
}
