//! Leak detection: warns about connections held past a threshold, naming where they were taken. What it needs of
//! each checkout (when and where) is kept in the connection's [`ConnSlot`], so tracking a checkout costs no
//! shared lock and no map.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quanta::Clock;

use super::clock::elapsed_nanos;
use super::slot::ConnSlot;

/// The leak detection of one pool: its threshold and the slots of its open connections.
#[derive(Debug)]
pub(crate) struct LeakDetector {
    threshold: Duration,
    open: Mutex<Vec<Arc<ConnSlot>>>,
}

/// A connection's [`ConnSlot`], registered with its pool's [`LeakDetector`] for as long as the connection is open.
#[derive(Debug)]
pub(crate) struct LeakEntry {
    slot: Arc<ConnSlot>,
    detector: Arc<LeakDetector>,
}

impl LeakEntry {
    /// The connection's slot.
    pub(crate) fn slot(&self) -> &ConnSlot {
        &self.slot
    }
}

impl Drop for LeakEntry {
    fn drop(&mut self) {
        let mut open = self.detector.open();
        if let Some(i) = open.iter().position(|s| Arc::ptr_eq(s, &self.slot)) {
            open.swap_remove(i);
        }
    }
}

impl LeakDetector {
    pub(crate) fn new(threshold: Duration) -> Self {
        Self { threshold, open: Mutex::default() }
    }

    pub(crate) fn threshold(&self) -> Duration {
        self.threshold
    }

    fn open(&self) -> MutexGuard<'_, Vec<Arc<ConnSlot>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a newly opened connection.
    pub(crate) fn register(self: &Arc<Self>) -> LeakEntry {
        let slot = Arc::new(ConnSlot::default());
        self.open().push(slot.clone());
        LeakEntry { slot, detector: self.clone() }
    }

    /// A checkout came back after `held`: warns if that was past the threshold and the sweep has not said so.
    pub(crate) fn release(&self, slot: &ConnSlot, held: Duration, pool: &str) {
        if held > self.threshold
            && let Some((_, location)) = slot.unreported_checkout()
        {
            tracing::warn!(pool, held_ms = held.as_millis() as u64, taken_at = %location,
                "database connection held longer than the leak detection threshold");
        }
        slot.check_in();
    }

    /// Warns once about every checkout held past the threshold and still out; returns how many it reported.
    pub(crate) fn sweep(&self, clock: &Clock, pool: &str) -> usize {
        let now = clock.raw();
        let mut reported = 0;
        for slot in self.open().iter() {
            let Some((taken_at, location)) = slot.unreported_checkout() else { continue };
            let held = Duration::from_nanos(elapsed_nanos(clock, taken_at, now));
            if held > self.threshold {
                slot.mark_reported(taken_at);
                reported += 1;
                tracing::warn!(pool, held_ms = held.as_millis() as u64, taken_at = %location,
                    "possible database connection leak: still checked out past the leak detection threshold");
            }
        }
        reported
    }
}
