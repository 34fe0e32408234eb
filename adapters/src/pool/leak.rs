//! Leak detection: remembers where each checkout was taken and warns about those held past a threshold.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quanta::Instant;

#[derive(Debug)]
struct Checkout {
    taken: Instant,
    location: &'static Location<'static>,
    warned: bool,
}

const SHARDS: usize = 16;

/// Outstanding checkouts of one pool, in shards so concurrent checkouts rarely share a lock.
#[derive(Debug)]
pub(crate) struct LeakDetector {
    threshold: Duration,
    next: AtomicU64,
    shards: [Mutex<HashMap<u64, Checkout>>; SHARDS],
}

impl LeakDetector {
    pub(crate) fn new(threshold: Duration) -> Self {
        Self { threshold, next: AtomicU64::new(0), shards: std::array::from_fn(|_| Mutex::new(HashMap::new())) }
    }

    pub(crate) fn threshold(&self) -> Duration {
        self.threshold
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Checkout>> {
        self.shards[(id % SHARDS as u64) as usize].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a checkout taken at `location` at `taken`; returns its ticket.
    pub(crate) fn track(&self, location: &'static Location<'static>, taken: Instant) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.shard(id).insert(id, Checkout { taken, location, warned: false });
        id
    }

    /// Forgets a returned checkout; warns if it was held past the threshold and not yet reported.
    pub(crate) fn release(&self, id: u64, pool: &str) {
        let checkout = self.shard(id).remove(&id);
        if let Some(c) = checkout {
            let held = c.taken.elapsed();
            if held > self.threshold && !c.warned {
                tracing::warn!(pool, held_ms = held.as_millis() as u64, taken_at = %c.location,
                    "database connection held longer than the leak detection threshold");
            }
        }
    }

    /// Warns once about every checkout held past the threshold and still out; returns how many it reported.
    pub(crate) fn sweep(&self, pool: &str) -> usize {
        let mut reported = 0;
        for shard in &self.shards {
            let mut open = shard.lock().unwrap_or_else(|e| e.into_inner());
            for c in open.values_mut().filter(|c| !c.warned && c.taken.elapsed() > self.threshold) {
                c.warned = true;
                reported += 1;
                tracing::warn!(pool, held_ms = c.taken.elapsed().as_millis() as u64, taken_at = %c.location,
                    "possible database connection leak: still checked out past the leak detection threshold");
            }
        }
        reported
    }
}
