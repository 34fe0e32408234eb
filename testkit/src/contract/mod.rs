//! The contract suites: one module per port, each case a `pub async fn` taking the port, and a macro that runs
//! them all as named tests (see the crate docs).

pub mod access;
pub mod cache;
pub mod cache_counters;
pub mod cache_get_or_set;
pub mod health;
pub mod job_queue;
pub mod lock;
pub mod pubsub;
pub mod rate_limit;
pub mod record;
pub mod repository;
pub mod session;
pub mod uow;

use std::future::Future;

/// Runs `task(0..n)` at the same time: on OS threads released together by a barrier when the runtime is
/// multi-threaded (real parallelism, even for an in-memory port), else interleaved on this task. Returns the
/// results in order; a panic in a task is re-raised here.
pub(crate) async fn concurrently<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut + Sync,
    Fut: Future<Output = T>,
    T: Send,
{
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return futures::future::join_all((0..n).map(&task)).await;
    }
    let barrier = std::sync::Barrier::new(n);
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..n)
                .map(|i| {
                    let (task, barrier, handle) = (&task, &barrier, &handle);
                    scope.spawn(move || {
                        barrier.wait();
                        handle.block_on(task(i))
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        })
    })
}
