//! The metrics of an [`InMemoryCache`](super::InMemoryCache), through the [`metrics`] facade (registered with
//! the recorder in place when the cache is built, so install the exporter first).
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `cpc_memory_cache_evictions_total` | counter | `cache` | entries evicted to keep within the bounds (least recently used first); expired and deleted entries do not count |
//! | `cpc_memory_cache_entries` | gauge | `cache` | entries held, as of the store's last housekeeping |
//! | `cpc_memory_cache_weight_bytes` | gauge | `cache` | the weight held against `max_bytes` (each entry `max(its bytes, floor)`, see [`CacheBounds`](super::CacheBounds)) |
//!
//! `cache` is the name given with [`InMemoryCacheBuilder::name`](super::InMemoryCacheBuilder::name) (`"cache"`
//! by default). The gauges are set after every write: two atomic loads and two gauge stores.

use metrics::{Counter, Gauge, counter, gauge};

/// Entries evicted by the bounds.
pub const EVICTIONS: &str = "cpc_memory_cache_evictions_total";
/// Entries held.
pub const ENTRIES: &str = "cpc_memory_cache_entries";
/// Weight held against `max_bytes`.
pub const WEIGHT_BYTES: &str = "cpc_memory_cache_weight_bytes";

/// The handles of one cache.
pub(super) struct Instruments {
    pub(super) evictions: Counter,
    entries: Gauge,
    weight: Gauge,
}

impl Instruments {
    /// Registers the handles of the cache named `name`.
    pub(super) fn new(name: &str) -> Self {
        let name = name.to_owned();
        Self {
            evictions: counter!(EVICTIONS, "cache" => name.clone()),
            entries: gauge!(ENTRIES, "cache" => name.clone()),
            weight: gauge!(WEIGHT_BYTES, "cache" => name),
        }
    }

    /// Reports the size of the store.
    pub(super) fn observe(&self, entries: u64, weight: u64) {
        self.entries.set(entries as f64);
        self.weight.set(weight as f64);
    }
}
