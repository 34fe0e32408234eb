//! The job queue contract against [`InMemoryJobQueue`], directly and as `Arc<dyn JobQueue>`, plus what only the
//! fake can show: delays, visibility timeouts and backoffs on tokio's (paused) clock.

use std::time::Duration;

use cpc_ports::{EnqueueOptions, JobQueue, JobQueueSettings, NackOutcome, QueueName, QueueStats};
use cpc_testkit::memory::InMemoryJobQueue;

mod concrete {
    cpc_testkit::job_queue_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemoryJobQueue::new()) });
}

mod as_dyn_port {
    use std::sync::Arc;

    use cpc_ports::JobQueue;
    use cpc_testkit::memory::InMemoryJobQueue;

    cpc_testkit::job_queue_contract!(async { Arc::new(InMemoryJobQueue::new()) as Arc<dyn JobQueue> });
}

mod retention {
    cpc_testkit::job_queue_retention_contract!(|settings| async move {
        std::sync::Arc::new(cpc_testkit::memory::InMemoryJobQueue::new().with_settings(settings))
    });
}

fn queue() -> QueueName {
    QueueName::new("q").expect("valid queue name")
}

#[tokio::test(start_paused = true)]
async fn delays_timeouts_and_backoffs_follow_tokios_clock() {
    let jobs = InMemoryJobQueue::new();
    let q = queue();
    jobs.enqueue_bytes(&q, "a".into(), EnqueueOptions::default().delayed(Duration::from_secs(10))).await.unwrap();
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(jobs.reserve(&q, Duration::from_secs(5)).await.unwrap().is_none(), "1 ms before its delay");
    tokio::time::advance(Duration::from_millis(1)).await;
    let job = jobs.reserve(&q, Duration::from_secs(5)).await.unwrap().expect("due at its delay");
    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert_eq!(jobs.stats(&q).await.unwrap(), QueueStats { in_flight: 1, ..QueueStats::default() });
    tokio::time::advance(Duration::from_millis(1)).await;
    let again = jobs.reserve(&q, Duration::from_secs(5)).await.unwrap().expect("redelivered at its timeout");
    assert_eq!((again.id.clone(), again.attempt), (job.id, 2));
    assert_eq!(jobs.nack(&again, Duration::from_secs(60)).await.unwrap(), NackOutcome::Retrying);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(jobs.reserve(&q, Duration::from_secs(5)).await.unwrap().is_none(), "within the backoff");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(jobs.reserve(&q, Duration::from_secs(5)).await.unwrap().expect("after the backoff").attempt, 3);
}

#[tokio::test(start_paused = true)]
async fn idempotency_keys_are_forgotten_after_the_window() {
    let jobs = InMemoryJobQueue::new()
        .with_settings(JobQueueSettings { idempotency_window: Duration::from_secs(60), ..Default::default() });
    let q = queue();
    let keyed = || EnqueueOptions::default().idempotency_key("k");
    let first = jobs.enqueue_bytes(&q, "a".into(), keyed()).await.unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(jobs.enqueue_bytes(&q, "b".into(), keyed()).await.unwrap(), first);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_ne!(jobs.enqueue_bytes(&q, "c".into(), keyed()).await.unwrap(), first, "the window is over");
    assert_eq!(jobs.stats(&q).await.unwrap().pending, 2);
}

#[tokio::test]
async fn unrepresentable_durations_are_validation_errors_not_panics() {
    let jobs = InMemoryJobQueue::new();
    let q = queue();
    let err = jobs.enqueue_bytes(&q, "a".into(), EnqueueOptions::default().delayed(Duration::MAX)).await.unwrap_err();
    assert!(matches!(err, cpc_ports::KvError::Validation(_)), "{err:?}");
    jobs.enqueue_bytes(&q, "a".into(), EnqueueOptions::default()).await.unwrap();
    let err = jobs.reserve(&q, Duration::MAX).await.unwrap_err();
    assert!(matches!(err, cpc_ports::KvError::Validation(_)), "{err:?}");
}
