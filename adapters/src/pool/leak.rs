//! Leak detection: remembers where each checkout was taken and warns about those held past a threshold.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Checkout {
    taken: Instant,
    location: &'static Location<'static>,
    warned: bool,
}

/// Outstanding checkouts of one pool.
#[derive(Debug)]
pub(crate) struct LeakDetector {
    threshold: Duration,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Checkout>>,
}

impl LeakDetector {
    pub(crate) fn new(threshold: Duration) -> Self {
        Self { threshold, next: AtomicU64::new(0), open: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn threshold(&self) -> Duration {
        self.threshold
    }

    /// Records a checkout taken at `location`; returns its ticket.
    pub(crate) fn track(&self, location: &'static Location<'static>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let checkout = Checkout { taken: Instant::now(), location, warned: false };
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, checkout);
        id
    }

    /// Forgets a returned checkout; warns if it was held past the threshold and not yet reported.
    pub(crate) fn release(&self, id: u64, pool: &str) {
        let checkout = self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
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
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut reported = 0;
        for c in open.values_mut().filter(|c| !c.warned && c.taken.elapsed() > self.threshold) {
            c.warned = true;
            reported += 1;
            tracing::warn!(pool, held_ms = c.taken.elapsed().as_millis() as u64, taken_at = %c.location,
                "possible database connection leak: still checked out past the leak detection threshold");
        }
        reported
    }
}
