//! [`Striped`]: the per-checkout counters of a pool, split by thread so that counting costs neither a locked
//! read-modify-write nor a cache line shared between cores.
//!
//! Every thread that counts is given an index of its own (recycled when the thread ends). The first [`STRIPES`]
//! indices each own a stripe that only that thread writes, so a count is a plain load and store on a line that no
//! other core writes. A thread with a higher index (a program with very many threads) adds to a shared stripe with
//! an atomic add. A snapshot sums every stripe.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Stripes with a single writer each; threads beyond these share one.
pub(crate) const STRIPES: usize = 64;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// Checkouts that got a connection.
    Acquired,
    /// Their total wait, in nanoseconds.
    AcquireNanos,
    /// Connections returned.
    Returned,
    /// Total time held, in nanoseconds.
    InUseNanos,
    /// Checkouts waiting now (raised and lowered, so a stripe may wrap "below zero"; the sum is right).
    Waiting,
}

const FIELDS: usize = 5;

/// One thread's counters, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; FIELDS]);

/// Counters split by thread (see the module docs).
#[derive(Debug)]
pub(crate) struct Striped {
    own: Box<[Stripe]>,
    shared: Stripe,
}

impl Default for Striped {
    fn default() -> Self {
        Self { own: (0..STRIPES).map(|_| Stripe::default()).collect(), shared: Stripe::default() }
    }
}

impl Striped {
    /// Adds each `(field, n)` (wrapping) for the calling thread.
    pub(crate) fn add(&self, adds: &[(Field, u64)]) {
        match thread_index().and_then(|i| self.own.get(i)) {
            Some(stripe) => {
                for &(field, n) in adds {
                    // This thread is the stripe's only writer: no read-modify-write needed.
                    let counter = &stripe.0[field as usize];
                    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
                }
            }
            None => {
                for &(field, n) in adds {
                    self.shared.0[field as usize].fetch_add(n, Relaxed);
                }
            }
        }
    }

    /// The sum of `field` over every stripe (wrapping).
    pub(crate) fn sum(&self, field: Field) -> u64 {
        let i = field as usize;
        self.own.iter().fold(self.shared.0[i].load(Relaxed), |sum, s| sum.wrapping_add(s.0[i].load(Relaxed)))
    }
}

/// Indices of threads that have ended, for the next threads to take.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A thread's index, given back when the thread ends. At most one live thread holds an index at a time, which
/// makes each of the first [`STRIPES`] stripes single-writer.
struct ThreadIndex(usize);

impl ThreadIndex {
    fn claim() -> Self {
        let recycled = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Self(recycled.unwrap_or_else(|| NEXT.fetch_add(1, Relaxed)))
    }
}

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        FREE.lock().unwrap_or_else(|e| e.into_inner()).push(self.0);
    }
}

thread_local! {
    static INDEX: ThreadIndex = ThreadIndex::claim();
}

/// The calling thread's index; `None` while the thread is ending (its index may already be someone else's).
fn thread_index() -> Option<usize> {
    INDEX.try_with(|i| i.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_exact_across_threads_and_a_gauge_may_fall_on_another_thread() {
        let striped = std::sync::Arc::new(Striped::default());
        let threads: Vec<_> = (0..STRIPES + 8)
            .map(|_| {
                let s = striped.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.add(&[(Field::Acquired, 1), (Field::InUseNanos, 3)]);
                    }
                    s.add(&[(Field::Waiting, 1)]);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = (STRIPES as u64 + 8) * 1000;
        assert_eq!((striped.sum(Field::Acquired), striped.sum(Field::InUseNanos)), (n, 3 * n));
        striped.add(&[(Field::Waiting, (STRIPES as u64 + 8).wrapping_neg())]);
        assert_eq!(striped.sum(Field::Waiting), 0, "raised on many threads, lowered on one");
        assert_eq!(striped.sum(Field::Returned), 0);
    }
}
