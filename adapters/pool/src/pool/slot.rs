//! [`ConnSlot`]: the current checkout of one open connection, for leak detection. Written by whoever holds the
//! connection, read by the leak sweep.

use std::panic::Location;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// When and where one open connection was checked out. Only the holder writes it (a checkout is exclusive); the
/// leak sweep reads it, and marks a checkout it has reported.
#[derive(Debug, Default)]
pub(crate) struct ConnSlot {
    /// Raw clock reading of the current checkout; 0 while idle. Kept only when leak detection is on.
    taken_at: AtomicU64,
    /// Where the current checkout was taken; valid while `taken_at` is not 0.
    location: Mutex<Option<&'static Location<'static>>>,
    /// `taken_at` of the checkout already reported as a possible leak, so each is reported once.
    warned_for: AtomicU64,
}

impl ConnSlot {
    /// Records the current checkout, taken at `location` at raw clock reading `taken_at` (not 0).
    pub(crate) fn check_out(&self, location: &'static Location<'static>, taken_at: u64) {
        *self.location.lock().unwrap_or_else(|e| e.into_inner()) = Some(location);
        self.taken_at.store(taken_at, Relaxed);
    }

    /// Forgets the current checkout.
    pub(crate) fn check_in(&self) {
        self.taken_at.store(0, Relaxed);
    }

    /// The current checkout, unless idle or already reported: its raw start and where it was taken.
    pub(crate) fn unreported_checkout(&self) -> Option<(u64, &'static Location<'static>)> {
        let taken_at = self.taken_at.load(Relaxed);
        if taken_at == 0 || self.warned_for.load(Relaxed) == taken_at {
            return None;
        }
        let location = (*self.location.lock().unwrap_or_else(|e| e.into_inner()))?;
        Some((taken_at, location))
    }

    /// Marks the checkout that started at `taken_at` as reported.
    pub(crate) fn mark_reported(&self, taken_at: u64) {
        self.warned_for.store(taken_at, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_is_reported_once() {
        let slot = ConnSlot::default();
        assert_eq!(slot.unreported_checkout(), None, "idle");
        let here = Location::caller();
        slot.check_out(here, 42);
        assert_eq!(slot.unreported_checkout(), Some((42, here)));
        slot.mark_reported(42);
        assert_eq!(slot.unreported_checkout(), None, "already reported");
        slot.check_in();
        assert_eq!(slot.unreported_checkout(), None, "idle again");
        slot.check_out(here, 43);
        assert_eq!(slot.unreported_checkout(), Some((43, here)), "a new checkout is reported anew");
    }
}
