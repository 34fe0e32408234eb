//! A background task that runs a sweep (deleting expired rows in small batches) every interval while its owner
//! lives: started by the owner's first call on the caller's tokio runtime, stopped when the owner (and so the
//! [`Sweeper`]) is dropped, and started again on the caller's runtime if the runtime it ran on has ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpc_ports::KvError;
use tokio::sync::watch;

/// One sweep pass: what it deleted, or why it failed.
pub(crate) type Pass = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<u64, KvError>> + Send>> + Send + Sync>;

/// The sweeper of one cache or limiter (shared by its clones).
pub(crate) struct Sweeper {
    every: Option<Duration>,
    pass: Pass,
    /// True while a task runs; cleared by the task itself when it ends or its runtime drops it.
    running: Arc<AtomicBool>,
    /// Dropping the sender (with the sweeper) tells the task to stop.
    stop: Mutex<Option<watch::Sender<()>>>,
    what: &'static str,
}

impl Sweeper {
    /// A sweeper running `pass` every `every` (`None`: never in the background), naming itself `what` in logs.
    pub(crate) fn new(every: Option<Duration>, what: &'static str, pass: Pass) -> Self {
        Self { every, pass, running: Arc::new(AtomicBool::new(false)), stop: Mutex::new(None), what }
    }

    /// Starts the task unless it runs (one atomic load on the common path). Without a tokio runtime it does
    /// nothing: the next call from within one starts it.
    pub(crate) fn ensure_running(&self) {
        let Some(every) = self.every.filter(|d| !d.is_zero()) else { return };
        if self.running.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        if self.running.load(Ordering::Acquire) {
            return;
        }
        let (sender, mut stopped) = watch::channel(());
        let running = ClearOnDrop(Arc::clone(&self.running));
        running.0.store(true, Ordering::Release);
        let (pass, what) = (Arc::clone(&self.pass), self.what);
        runtime.spawn(async move {
            let _running = running;
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = ticks.tick() => {
                        if let Err(e) = pass().await {
                            tracing::warn!(error = %e, "{what}: sweeping expired rows failed; trying again in {every:?}");
                        }
                    }
                }
            }
        });
        *stop = Some(sender);
    }
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("every", &self.every)
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish()
    }
}

/// Clears the running flag when the task ends, however it ends (stopped, or dropped with its runtime).
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// A sweeper every 10 ms whose pass counts its runs.
    fn counting() -> (Sweeper, Arc<AtomicU64>) {
        let runs = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&runs);
        let pass: Pass = Arc::new(move || {
            let counter = Arc::clone(&counter);
            Box::pin(async move { Ok(counter.fetch_add(1, Ordering::SeqCst)) })
        });
        (Sweeper::new(Some(Duration::from_millis(10)), "test", pass), runs)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build().unwrap()
    }

    #[test]
    fn runs_while_its_owner_lives_restarts_on_a_new_runtime_and_stops_when_dropped() {
        let (sweeper, runs) = counting();
        sweeper.ensure_running();
        assert!(!sweeper.running.load(Ordering::SeqCst), "without a runtime nothing starts");

        let first = runtime();
        first.block_on(async {
            sweeper.ensure_running();
            sweeper.ensure_running();
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        let on_first = runs.load(Ordering::SeqCst);
        assert!(on_first >= 3, "one task sweeping every 10 ms: {on_first} passes in 100 ms");
        assert!(on_first <= 12, "a second call must not start a second task: {on_first} passes in 100 ms");
        drop(first);
        assert!(!sweeper.running.load(Ordering::SeqCst), "the task dropped with its runtime clears the flag");

        let second = runtime();
        second.block_on(async {
            sweeper.ensure_running();
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        assert!(runs.load(Ordering::SeqCst) >= on_first + 3, "the next caller's runtime runs a new task");

        second.block_on(async {
            drop(sweeper);
            tokio::time::sleep(Duration::from_millis(30)).await;
            let after_drop = runs.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(runs.load(Ordering::SeqCst), after_drop, "a dropped sweeper's task has stopped");
        });
    }

    #[test]
    fn without_an_interval_nothing_runs() {
        let runs = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&runs);
        let pass: Pass = Arc::new(move || {
            let counter = Arc::clone(&counter);
            Box::pin(async move { Ok(counter.fetch_add(1, Ordering::SeqCst)) })
        });
        for every in [None, Some(Duration::ZERO)] {
            let sweeper = Sweeper::new(every, "test", Arc::clone(&pass));
            runtime().block_on(async {
                sweeper.ensure_running();
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        }
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }
}
