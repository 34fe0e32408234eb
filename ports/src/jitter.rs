//! Randomised waits for anything that tries again: a backoff spread between half of it and all of it, so clients
//! that failed together do not all try again at the same moment. Shared by the adapters that back off (the Redis
//! lock's acquire loop, the retry decorator of `cpc-observe`); an app's own retry loop may use it too.
//!
//! ```
//! use std::time::Duration;
//! use cpc_ports::jitter::half_to_full;
//!
//! let wait = half_to_full(Duration::from_millis(100));
//! assert!(wait >= Duration::from_millis(50) && wait <= Duration::from_millis(100));
//! ```

use std::time::Duration;

/// A random duration between half of `full` and `full`, both included.
pub fn half_to_full(full: Duration) -> Duration {
    let half = full / 2;
    let spread = u64::try_from((full - half).as_nanos()).unwrap_or(u64::MAX);
    // No randomness from the OS (it cannot fail on Linux): the longest wait, which is still a valid one.
    let random = getrandom::u64().unwrap_or(u64::MAX);
    let offset = spread.checked_add(1).map_or(random, |choices| random % choices);
    half + Duration::from_nanos(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_half_to_full() {
        for full in [Duration::ZERO, Duration::from_nanos(1), Duration::from_millis(40), Duration::MAX] {
            for _ in 0..200 {
                let j = half_to_full(full);
                assert!(j >= full / 2 && j <= full, "{j:?} for {full:?}");
            }
        }
    }

    #[test]
    fn spreads_its_waits() {
        let waits: std::collections::HashSet<_> = (0..50).map(|_| half_to_full(Duration::from_secs(1))).collect();
        assert!(waits.len() > 40, "50 draws over a 500 ms range gave {} distinct waits", waits.len());
    }
}
