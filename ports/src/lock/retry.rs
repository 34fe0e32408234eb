//! The wait of [`Lock::acquire`]: try, and while the lock is taken, sleep an exponential
//! backoff with [jitter](crate::jitter) and try again until the wait runs out. The building block of the
//! [`Lock`] implementations (Redis, Redlock, PostgreSQL, SQLite), public so that another
//! implementation waits the same way.
//!
//! ```
//! use std::time::Duration;
//! use cpc_ports::KvError;
//! use cpc_ports::lock::retry::retry_until_taken;
//! use tokio::sync::Notify;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let released = Notify::new();
//! let mut busy = 2;
//! let taken = retry_until_taken(&released, Duration::from_secs(1), Duration::ZERO, || {
//!     busy -= 1;
//!     let outcome = if busy < 0 { Ok("lease") } else { Err(Some(Duration::from_millis(1))) };
//!     async move { Ok::<_, KvError>(outcome) }
//! })
//! .await;
//! assert_eq!(taken.unwrap(), "lease");
//! # });
//! ```

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::jitter::half_to_full;
use crate::{KvError, Lock, LockLease};

/// The first pause between two attempts on a busy lock.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause between two attempts; the backoff doubles from [`INITIAL_BACKOFF`] up to this.
pub const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Runs `attempt` until it takes the lock (`Ok(Ok(_))`) or `wait` runs out ([`KvError::Timeout`]); an error of
/// an attempt ends the wait with that error. Between attempts it sleeps an exponential backoff with jitter (from
/// [`INITIAL_BACKOFF`] up to [`MAX_BACKOFF`]), never longer than the holder's lease has left when the attempt says
/// (`Ok(Err(Some(left)))`, at least 1 ms), nor past the wait; it wakes early when this process releases a lock
/// (`released`, notified with [`Notify::notify_waiters`]). Woken that way, it first waits a random moment within
/// `wake_spread` (zero: none), so that waiters woken together do not all try at once (for Redlock: they would
/// split the nodes' votes and nobody would reach a quorum).
pub async fn retry_until_taken<T, F, Fut>(
    released: &Notify,
    wait: Duration,
    wake_spread: Duration,
    mut attempt: F,
) -> Result<T, KvError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, Option<Duration>>, KvError>>,
{
    let deadline = Instant::now().checked_add(wait);
    let mut backoff = INITIAL_BACKOFF;
    loop {
        // Registered before the attempt, so a local release between the attempt and the sleep still wakes us.
        let mut woken = pin!(released.notified());
        woken.as_mut().enable();
        let held_for = match attempt().await? {
            Ok(taken) => return Ok(taken),
            Err(held_for) => held_for,
        };
        let now = Instant::now();
        let left = match deadline {
            Some(deadline) if now >= deadline => {
                return Err(KvError::Timeout { operation: "acquire lock", after: wait });
            }
            Some(deadline) => deadline - now,
            None => Duration::MAX,
        };
        let mut pause = half_to_full(backoff);
        if let Some(held_for) = held_for {
            pause = pause.min(held_for.max(Duration::from_millis(1)));
        }
        tokio::select! {
            () = woken => {
                if !wake_spread.is_zero() {
                    tokio::time::sleep((half_to_full(2 * wake_spread) - wake_spread).min(left)).await;
                }
            }
            () = tokio::time::sleep(pause.min(left)) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Releases `lease` on a task of the current tokio runtime (nothing when there is none), logging a failure at
/// debug level unless the lease was already gone: for an acquisition whose outcome is unknown (a timeout after the
/// statement or script was sent), so the lock is freed for the owner nobody will ever know, and for a guard
/// dropped while it held its lease. Otherwise the lease runs out by itself.
pub fn release_in_background<L: Lock + Clone>(lock: &L, lease: LockLease) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let lock = lock.clone();
        runtime.spawn(async move {
            if let Err(e) = lock.release(lease).await
                && !matches!(e, KvError::LeaseLost { .. })
            {
                tracing::debug!(error = %e, "background lock release failed; the lease will run out");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_lock_that_stays_taken_times_out_after_the_wait() {
        let tries = AtomicU32::new(0);
        let started = Instant::now();
        let outcome: Result<(), KvError> =
            retry_until_taken(&Notify::new(), Duration::from_millis(500), Duration::ZERO, || {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Ok(Err(None)) }
            })
            .await;
        assert!(matches!(outcome, Err(KvError::Timeout { after, .. }) if after == Duration::from_millis(500)));
        assert!(started.elapsed() >= Duration::from_millis(500));
        let tries = tries.load(Ordering::SeqCst);
        assert!((6..=40).contains(&tries), "backs off: {tries} tries");
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_wakes_the_waiter_before_its_backoff_ends() {
        let released = Arc::new(Notify::new());
        let free = Arc::new(AtomicU32::new(0));
        let (r, f) = (Arc::clone(&released), Arc::clone(&free));
        let waiter = tokio::spawn(async move {
            let started = Instant::now();
            retry_until_taken(&r, Duration::from_secs(10), Duration::ZERO, || {
                let taken = f.load(Ordering::SeqCst) == 1;
                async move { Ok::<_, KvError>(if taken { Ok(()) } else { Err(Some(Duration::from_secs(60))) }) }
            })
            .await
            .unwrap();
            started.elapsed()
        });
        tokio::time::sleep(Duration::from_millis(1000)).await;
        free.store(1, Ordering::SeqCst);
        released.notify_waiters();
        let waited = waiter.await.unwrap();
        assert!(waited >= Duration::from_millis(1000) && waited < Duration::from_millis(1050), "{waited:?}");
    }

    #[tokio::test]
    async fn an_attempt_error_ends_the_wait() {
        let outcome: Result<(), KvError> = retry_until_taken(&Notify::new(), Duration::MAX, Duration::ZERO, || async {
            Err(KvError::Timeout { operation: "attempt", after: Duration::ZERO })
        })
        .await;
        assert!(matches!(outcome, Err(KvError::Timeout { operation: "attempt", .. })));
    }
}
