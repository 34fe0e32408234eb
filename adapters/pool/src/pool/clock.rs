//! Durations from raw `quanta` clock readings, shared by the pool and its leak detector.

use quanta::Clock;

/// Nanoseconds from raw clock reading `start` to `end`; 0 if `end` is not later (readings taken on two cores may
/// be a few cycles apart).
pub(super) fn elapsed_nanos(clock: &Clock, start: u64, end: u64) -> u64 {
    if end <= start { 0 } else { clock.delta_as_nanos(start, end) }
}
