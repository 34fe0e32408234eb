//! The worker loop over the in-memory job queue: concurrency, retries then dead letters, graceful shutdown that
//! finishes or releases in-flight jobs, and its metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "worker", feature = "memory"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cpc_adapters::memory::InMemoryJobQueue;
use cpc_adapters::worker::{Worker, WorkerConfig, WorkerReport};
use cpc_ports::{EnqueueOptions, JobQueue, QueueName, QueueStats};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

fn queue_name() -> QueueName {
    QueueName::new("thumbnails").unwrap()
}

async fn filled(n: usize, options: EnqueueOptions) -> Arc<dyn JobQueue> {
    let queue: Arc<dyn JobQueue> = Arc::new(InMemoryJobQueue::new());
    for i in 0..n {
        queue.enqueue_bytes(&queue_name(), format!("job-{i}").into(), options.clone()).await.unwrap();
    }
    queue
}

async fn wait_until_drained(queue: &dyn JobQueue) {
    let q = queue_name();
    for _ in 0..1000 {
        let s = queue.stats(&q).await.unwrap();
        if s.pending + s.in_flight + s.delayed == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the queue was not drained: {:?}", queue.stats(&q).await.unwrap());
}

fn fast(config: WorkerConfig) -> WorkerConfig {
    config.poll_interval(Duration::from_millis(5)).backoff(Duration::from_millis(10), Duration::from_millis(40))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_handlers_work_the_queue_concurrently_and_never_more() {
    let queue = filled(40, EnqueueOptions::default()).await;
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, p) = (running.clone(), peak.clone());
    let worker = Worker::spawn(queue.clone(), fast(WorkerConfig::new(queue_name()).concurrency(4)), move |_job| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    wait_until_drained(&*queue).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, WorkerReport { processed: 40, ..WorkerReport::default() });
    assert_eq!(peak.load(Ordering::SeqCst), 4, "4 handlers ran at once, never more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_are_retried_with_backoff_then_dead_lettered_and_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let queue = filled(2, EnqueueOptions::default().max_attempts(3)).await;
    let config = fast(WorkerConfig::new(queue_name()).concurrency(2));
    let worker = metrics::with_local_recorder(&recorder, || {
        Worker::spawn(queue.clone(), config, |job| async move {
            if job.payload.as_ref() == b"job-0" { Err("thumbnailer crashed".into()) } else { Ok(()) }
        })
    });
    wait_until_drained(&*queue).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, WorkerReport { processed: 1, failed: 3, retried: 2, dead: 1, ..WorkerReport::default() });
    let dead = queue.dead_letters(&queue_name(), 10).await.unwrap();
    assert_eq!((dead.len(), dead[0].payload.as_ref(), dead[0].attempts), (1, &b"job-0"[..], 3));

    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|(.., v)| v)
            .unwrap_or_else(|| panic!("{name} not reported"))
    };
    for (name, expected) in [
        ("cpc_jobs_processed_total", 1),
        ("cpc_jobs_failed_total", 3),
        ("cpc_jobs_retried_total", 2),
        ("cpc_jobs_dead_total", 1),
    ] {
        assert_eq!(value(name), &DebugValue::Counter(expected), "{name}");
    }
    match value("cpc_job_handling_seconds") {
        DebugValue::Histogram(samples) => assert_eq!(samples.len(), 4, "one sample per handled delivery"),
        other => panic!("not a histogram: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_jobs_finish_within_the_grace_period() {
    let queue = filled(2, EnqueueOptions::default()).await;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let worker = Worker::spawn(queue.clone(), fast(WorkerConfig::new(queue_name()).concurrency(2)), move |_job| {
        s.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        }
    });
    while started.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, WorkerReport { processed: 2, ..WorkerReport::default() }, "both finished, none released");
    assert_eq!(queue.stats(&queue_name()).await.unwrap(), QueueStats::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_jobs_still_running_after_the_grace_period_and_takes_no_new_ones() {
    let queue = filled(3, EnqueueOptions::default()).await;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let worker = Worker::spawn(queue.clone(), fast(WorkerConfig::new(queue_name())), move |_job| {
        s.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
    });
    while started.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let begun = std::time::Instant::now();
    let report = worker.shutdown(Duration::from_millis(100)).await;
    assert!(begun.elapsed() < Duration::from_secs(2), "shutdown waited {:?}", begun.elapsed());
    assert_eq!(report, WorkerReport { released: 1, ..WorkerReport::default() });
    assert_eq!(started.load(Ordering::SeqCst), 1, "no job was started after the shutdown began");
    let stats = queue.stats(&queue_name()).await.unwrap();
    assert_eq!(stats, QueueStats { pending: 3, ..QueueStats::default() }, "the released job is back in the queue");
    let again = queue.reserve(&queue_name(), Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(again.payload.as_ref(), b"job-1", "the untouched jobs keep their order");
}

#[test]
fn backoff_doubles_per_attempt_up_to_the_cap() {
    let config = WorkerConfig::new(queue_name()).backoff(Duration::from_millis(100), Duration::from_secs(1));
    let got: Vec<_> = (1..=6).map(|a| config.backoff_for(a).as_millis()).collect();
    assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
    assert_eq!(config.backoff_for(u32::MAX), Duration::from_secs(1), "no overflow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_errors_are_counted_and_the_loop_carries_on() {
    use cpc_ports::mocks::MockJobQueue;
    use cpc_ports::{JobId, KvError, ReservedJob};

    let mut mock = MockJobQueue::new();
    let job =
        ReservedJob { id: JobId::new("j1"), queue: queue_name(), payload: "x".into(), attempt: 1, max_attempts: 3 };
    // The worker reserves for its free slots with `reserve_many` and acks successes with `ack_many`.
    let mut reserves = 0;
    mock.expect_reserve_many().returning(move |_, _, max| {
        assert!(max >= 1, "the worker asks for at least one job");
        reserves += 1;
        match reserves {
            1 => Err(KvError::Unavailable { backend: "mock", reason: "down".into() }),
            2 => Ok(vec![job.clone()]),
            _ => Ok(Vec::new()),
        }
    });
    mock.expect_ack_many().times(1).returning(|jobs| {
        assert_eq!(jobs.len(), 1, "the one success");
        jobs.iter().map(|_| Err(KvError::Timeout { operation: "ack", after: Duration::ZERO })).collect()
    });
    let worker = Worker::spawn(Arc::new(mock), fast(WorkerConfig::new(queue_name())), |_job| async { Ok(()) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = worker.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        report,
        WorkerReport { queue_errors: 2, ..WorkerReport::default() },
        "a refused reserve and a failed ack"
    );
}

/// With a prefetch, the worker holds that many jobs reserved beyond its busy handlers, never runs more handlers
/// than its concurrency, and works every job exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetched_jobs_wait_reserved_and_every_job_is_worked_once() {
    let queue = filled(30, EnqueueOptions::default()).await;
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, p, s) = (running.clone(), peak.clone(), seen.clone());
    let config = fast(WorkerConfig::new(queue_name()).concurrency(2).prefetch(4));
    let worker = Worker::spawn(queue.clone(), config, move |job| {
        let (r, p, s) = (r.clone(), p.clone(), s.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            s.lock().unwrap().push(job.payload.clone());
            tokio::time::sleep(Duration::from_millis(20)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let stats = queue.stats(&queue_name()).await.unwrap();
    assert_eq!(stats.in_flight, 6, "2 running and 4 prefetched: {stats:?}");
    wait_until_drained(&*queue).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, WorkerReport { processed: 30, ..WorkerReport::default() });
    assert_eq!(peak.load(Ordering::SeqCst), 2, "never more handlers than the concurrency");
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 30, "each job handled once");
}

/// At shutdown the prefetched jobs have not started: they go back to the queue at once, while the running
/// handler finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_prefetched_jobs_back_without_starting_them() {
    let queue = filled(10, EnqueueOptions::default()).await;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let config = fast(WorkerConfig::new(queue_name()).concurrency(1).prefetch(3));
    let worker = Worker::spawn(queue.clone(), config, move |_job| {
        let s = s.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(queue.stats(&queue_name()).await.unwrap().in_flight, 4, "1 running and 3 prefetched");
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, WorkerReport { processed: 1, released: 3, ..WorkerReport::default() });
    assert_eq!(started.load(Ordering::SeqCst), 1, "no prefetched job started after the stop");
    let stats = queue.stats(&queue_name()).await.unwrap();
    assert_eq!((stats.pending, stats.in_flight), (9, 0), "{stats:?}");
}

/// A prefetched job that waited past its visibility timeout and was redelivered to another consumer meanwhile is
/// dropped when its turn comes, not run a second time beside the other consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetched_job_redelivered_while_it_waited_is_dropped_not_run() {
    let queue = filled(2, EnqueueOptions::default()).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let config =
        fast(WorkerConfig::new(queue_name()).concurrency(1).prefetch(1)).visibility_timeout(Duration::from_millis(200));
    let worker = Worker::spawn(queue.clone(), config, move |job| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push((job.payload.to_vec(), job.attempt));
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        }
    });
    // job-1 waits behind job-0's 500 ms handler; its 200 ms reservation runs out and another consumer takes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = queue.reserve(&queue_name(), Duration::from_secs(10)).await.unwrap().expect("job-1 is redelivered");
    assert_eq!((other.payload.as_ref(), other.attempt), (&b"job-1"[..], 2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(seen.lock().unwrap().clone(), vec![(b"job-0".to_vec(), 1)], "job-1 did not run here");
    assert_eq!(report.processed, 1, "{report:?}");
    assert!(report.queue_errors >= 1, "the lost reservation is counted: {report:?}");
    queue.ack(&other).await.expect("the other consumer still holds job-1");
}

/// Without a prefetch, every job handed to a slot was reserved for that free slot: a shutdown right after the
/// queue has nothing pending handles it rather than giving it back (the pattern of the jobs guide's example).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prefetch_a_job_handed_out_before_shutdown_is_handled() {
    for _ in 0..20 {
        let queue = filled(3, EnqueueOptions::default()).await;
        let worker =
            Worker::spawn(queue.clone(), fast(WorkerConfig::new(queue_name()).concurrency(3)), |_job| async { Ok(()) });
        while queue.stats(&queue_name()).await.unwrap().pending > 0 {
            tokio::task::yield_now().await;
        }
        let report = worker.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report, WorkerReport { processed: 3, ..WorkerReport::default() });
    }
}
