//! The local tier of a [`NearCache`](super::NearCache): a bounded moka cache of bytes, and the bookkeeping that
//! keeps it coherent with Redis: whether invalidation tracking is live, a generation bumped whenever the whole
//! tier is emptied, and a version per stripe of keys bumped whenever one of its keys is invalidated.
//!
//! A read that misses takes a [`Ticket`] before it asks Redis, and [`LocalTier::fill`] stores what Redis answered
//! only if nothing that could have changed the key happened since: tracking still live, same generation, same
//! stripe version. The check and the insert run under the locks that invalidations take, so an invalidation
//! either comes before the check (and the fill is refused) or after the insert (and removes it).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cpc_ports::Bytes;
use moka::policy::EvictionPolicy;

use super::{NearCacheConfig, NearCacheStats};
use crate::metrics::{FlushCause, NearCacheCounters};

/// How many stripes of keys have their own version. A collision only costs a refused fill (one more miss later).
const STRIPES: usize = 1024;

/// What each local entry is charged on top of its key and value, for the map's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 64;

/// One local entry: the value, how long it may stay, and the generation it was filled in.
#[derive(Clone)]
struct Entry {
    bytes: Bytes,
    ttl: Duration,
    generation: u64,
}

/// Each entry expires after its own TTL (the smaller of the local bound and the key's remaining TTL in Redis),
/// and a replaced entry after the new one's.
struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(&self, _: &String, entry: &Entry, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// What [`LocalTier::lookup`] found.
pub(super) enum Lookup {
    /// The local tier holds the value.
    Hit(Bytes),
    /// It does not; read Redis, then [`LocalTier::fill`] with the ticket.
    Miss(Ticket),
    /// Tracking is down: read Redis and keep nothing.
    Bypass,
}

/// The state a miss saw before it read Redis: a fill is accepted only if it is unchanged.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    generation: u64,
    stripe: usize,
    version: u64,
}

/// Counts kept for [`NearCacheStats`], beside the metrics.
#[derive(Default)]
struct Tally {
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    pushed_invalidations: AtomicU64,
    own_invalidations: AtomicU64,
    flushes: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The local tier and its coherence state. Shared by the near cache's clones and its tracking task.
pub(super) struct LocalTier {
    entries: moka::sync::Cache<String, Entry>,
    max_local_ttl: Duration,
    /// Whether invalidations are being received: only then is the tier read or filled.
    live: AtomicBool,
    /// Bumped (under the write lock of `emptying`) each time the tier is emptied whole; entries of an older
    /// generation are never served.
    generation: AtomicU64,
    /// Fills hold it shared while they check and insert; emptying the tier holds it exclusively.
    emptying: RwLock<()>,
    /// The version of each stripe of keys, bumped when one of its keys is invalidated.
    stripes: Box<[Mutex<u64>]>,
    hasher: RandomState,
    tally: Tally,
    counters: NearCacheCounters,
}

impl LocalTier {
    /// An empty tier bounded by `config`, not live until [`LocalTier::go_live`].
    ///
    /// moka bounds one weighted capacity; both bounds are kept by making it the byte bound and charging each
    /// entry at least `max_bytes / max_entries`, so no more than `max_entries` fit either.
    pub(super) fn new(config: &NearCacheConfig) -> Self {
        let floor = (config.max_bytes / config.max_entries.max(1)).max(1);
        let entries = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .eviction_policy(EvictionPolicy::lru())
            .weigher(move |key: &String, entry: &Entry| {
                let weight = (key.len() as u64 + entry.bytes.len() as u64 + ENTRY_OVERHEAD).max(floor);
                u32::try_from(weight).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self {
            entries,
            max_local_ttl: config.max_local_ttl,
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            emptying: RwLock::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: RandomState::new(),
            tally: Tally::default(),
            counters: NearCacheCounters::default(),
        }
    }

    fn stripe(&self, key: &str) -> usize {
        // The modulo keeps the value below STRIPES, so the cast cannot truncate.
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    /// Whether invalidations are being received (the tier is in use).
    pub(super) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Looks `key` up, counting a hit, a miss or a bypass.
    pub(super) fn lookup(&self, key: &str) -> Lookup {
        if !self.is_live() {
            bump(&self.tally.bypassed);
            self.counters.bypassed.increment(1);
            return Lookup::Bypass;
        }
        let generation = self.generation.load(Ordering::Acquire);
        match self.entries.get(key) {
            Some(entry) if entry.generation == generation => {
                bump(&self.tally.hits);
                self.counters.hits.increment(1);
                Lookup::Hit(entry.bytes)
            }
            _ => {
                bump(&self.tally.misses);
                self.counters.misses.increment(1);
                Lookup::Miss(self.ticket(key))
            }
        }
    }

    fn ticket(&self, key: &str) -> Ticket {
        let stripe = self.stripe(key);
        let version = *lock(&self.stripes[stripe]);
        Ticket { generation: self.generation.load(Ordering::Acquire), stripe, version }
    }

    /// Stores `bytes` under `key` for `remote_ttl` (the key's TTL in Redis, `None` when it has none) or the
    /// local bound, whichever is shorter, if nothing changed since `ticket` was taken; returns whether it stored.
    pub(super) fn fill(&self, ticket: Ticket, key: &str, bytes: Bytes, remote_ttl: Option<Duration>) -> bool {
        let ttl = remote_ttl.map_or(self.max_local_ttl, |remote| remote.min(self.max_local_ttl));
        if ttl.is_zero() {
            return false;
        }
        let _shared = self.emptying.read().unwrap_or_else(PoisonError::into_inner);
        if !self.is_live() || self.generation.load(Ordering::Acquire) != ticket.generation {
            return false;
        }
        let version = lock(&self.stripes[ticket.stripe]);
        if *version != ticket.version {
            return false;
        }
        self.entries.insert(key.to_owned(), Entry { bytes, ttl, generation: ticket.generation });
        drop(version);
        true
    }

    /// Drops `key` and refuses the fills of reads that started before: the server said it changed
    /// (`pushed`), or this near cache wrote it.
    pub(super) fn invalidate(&self, key: &str, pushed: bool) {
        let stripe = self.stripe(key);
        let mut version = lock(&self.stripes[stripe]);
        *version = version.wrapping_add(1);
        self.entries.invalidate(key);
        drop(version);
        if pushed {
            bump(&self.tally.pushed_invalidations);
            self.counters.pushed_invalidations.increment(1);
        } else {
            bump(&self.tally.own_invalidations);
            self.counters.own_invalidations.increment(1);
        }
    }

    /// Invalidation tracking is down: empties the tier and bypasses it until [`LocalTier::go_live`].
    pub(super) fn go_down(&self) {
        self.empty(FlushCause::Disconnect, Some(false));
    }

    /// Invalidation tracking is (back) on: empties the tier and uses it.
    pub(super) fn go_live(&self) {
        self.empty(FlushCause::Reconnect, Some(true));
    }

    /// Empties the tier (tracking stays as it is).
    pub(super) fn clear(&self, cause: FlushCause) {
        self.empty(cause, None);
    }

    /// Empties the tier and refuses every fill of a read that started before; `live`, when given, is whether
    /// the tier is in use afterwards.
    fn empty(&self, cause: FlushCause, live: Option<bool>) {
        let exclusive = self.emptying.write().unwrap_or_else(PoisonError::into_inner);
        if live == Some(false) {
            self.live.store(false, Ordering::Release);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
        if live == Some(true) {
            self.live.store(true, Ordering::Release);
        }
        drop(exclusive);
        bump(&self.tally.flushes);
        self.counters.flushes(cause).increment(1);
    }

    /// The counts so far, the tracking state and the current size (after moka's pending maintenance).
    pub(super) fn stats(&self) -> NearCacheStats {
        self.entries.run_pending_tasks();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NearCacheStats {
            hits: get(&self.tally.hits),
            misses: get(&self.tally.misses),
            bypassed: get(&self.tally.bypassed),
            pushed_invalidations: get(&self.tally.pushed_invalidations),
            own_invalidations: get(&self.tally.own_invalidations),
            flushes: get(&self.tally.flushes),
            tracking: self.is_live(),
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(max_entries: u64, max_bytes: u64) -> LocalTier {
        let config = NearCacheConfig { max_entries, max_bytes, ..NearCacheConfig::default() };
        let tier = LocalTier::new(&config);
        tier.go_live();
        tier
    }

    fn miss(tier: &LocalTier, key: &str) -> Ticket {
        match tier.lookup(key) {
            Lookup::Miss(ticket) => ticket,
            Lookup::Hit(_) => panic!("{key} should miss"),
            Lookup::Bypass => panic!("{key} should not bypass"),
        }
    }

    #[test]
    fn a_fill_after_an_invalidation_of_its_key_is_refused() {
        let tier = tier(100, 1 << 20);
        let ticket = miss(&tier, "k");
        tier.invalidate("k", true);
        assert!(!tier.fill(ticket, "k", Bytes::from_static(b"old"), None));
        assert!(matches!(tier.lookup("k"), Lookup::Miss(_)));
        let ticket = miss(&tier, "k");
        assert!(tier.fill(ticket, "k", Bytes::from_static(b"new"), None));
        assert!(matches!(tier.lookup("k"), Lookup::Hit(b) if b == "new"));
    }

    #[test]
    fn a_fill_across_an_emptying_is_refused_and_nothing_is_served_while_down() {
        let tier = tier(100, 1 << 20);
        let ticket = miss(&tier, "k");
        tier.clear(FlushCause::Flush);
        assert!(!tier.fill(ticket, "k", Bytes::from_static(b"v"), None));
        let ticket = miss(&tier, "k");
        assert!(tier.fill(ticket, "k", Bytes::from_static(b"v"), None));
        tier.go_down();
        assert!(matches!(tier.lookup("k"), Lookup::Bypass));
        assert!(!tier.fill(ticket, "k", Bytes::from_static(b"v"), None), "no fill while down");
        tier.go_live();
        assert!(matches!(tier.lookup("k"), Lookup::Miss(_)), "emptied, not restored, on reconnect");
        let stats = tier.stats();
        assert_eq!((stats.hits, stats.bypassed, stats.flushes, stats.pushed_invalidations), (0, 1, 4, 0));
    }

    #[test]
    fn the_local_ttl_is_the_shorter_of_the_bound_and_the_remote_ttl() {
        let tier = tier(100, 1 << 20);
        let ticket = miss(&tier, "short");
        assert!(tier.fill(ticket, "short", Bytes::from_static(b"v"), Some(Duration::from_millis(30))));
        assert!(matches!(tier.lookup("short"), Lookup::Hit(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(tier.lookup("short"), Lookup::Miss(_)), "outlived its remote TTL");
        let ticket = miss(&tier, "gone");
        assert!(!tier.fill(ticket, "gone", Bytes::from_static(b"v"), Some(Duration::ZERO)));
    }

    #[test]
    fn both_the_entry_and_the_byte_bounds_hold() {
        let by_entries = tier(10, 1 << 20);
        for i in 0..100 {
            let key = format!("k{i}");
            let ticket = miss(&by_entries, &key);
            by_entries.fill(ticket, &key, Bytes::from_static(b"tiny"), None);
        }
        assert!(by_entries.stats().entries <= 10, "{}", by_entries.stats().entries);
        let by_bytes = tier(1000, 64 * 1024);
        for i in 0..100 {
            let key = format!("k{i}");
            let ticket = miss(&by_bytes, &key);
            by_bytes.fill(ticket, &key, Bytes::from(vec![7_u8; 4096]), None);
        }
        let stats = by_bytes.stats();
        assert!(stats.bytes <= 64 * 1024 && stats.entries <= 16, "{stats:?}");
    }
}
