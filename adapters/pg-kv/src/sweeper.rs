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
