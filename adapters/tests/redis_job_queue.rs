//! `RedisJobQueue` against the shared Redis (`REDIS_URL`): the `JobQueue` contract (concrete and as
//! `dyn JobQueue`), and what the adapter adds: the stream and consumer group underneath, idempotency keys that
//! expire, and two queue values (two consumers) sharing jobs. Each test runs in its own key namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use std::time::Duration;

use common::redis::{namespace_keys, shared_manager};

use cpc_adapters::redis::RedisJobQueue;
use cpc_ports::{EnqueueOptions, JobQueue, JobQueueSettings, KvError, NewJob, QueueName};

async fn jobs(namespace: &str) -> RedisJobQueue {
    RedisJobQueue::new(shared_manager(namespace).await)
}

mod contract_concrete {
    cpc_testkit::job_queue_contract!(async { std::sync::Arc::new(super::jobs("job-queue-contract").await) });
}

mod contract_dyn {
    use std::sync::Arc;

    use cpc_ports::JobQueue;

    cpc_testkit::job_queue_contract!(async {
        Arc::new(super::jobs("job-queue-contract-dyn").await) as Arc<dyn JobQueue>
    });
}

mod retention {
    cpc_testkit::job_queue_retention_contract!(|settings| async move {
        std::sync::Arc::new(super::jobs("job-queue-retention").await.with_settings(settings))
    });
}

fn queue() -> QueueName {
    QueueName::new("thumbnails").unwrap()
}

#[tokio::test]
async fn jobs_live_in_a_stream_with_a_consumer_group_and_acked_jobs_leave_no_keys() {
    let jobs = jobs("layout").await;
    let q = queue();
    jobs.enqueue_bytes(&q, "a".into(), EnqueueOptions::default()).await.unwrap();
    let stream = jobs.manager().key("jq:{thumbnails}:s");
    let mut conn = jobs.manager().connection();
    let kind: String = redis::cmd("TYPE").arg(&stream).query_async(&mut conn).await.unwrap();
    assert_eq!(kind, "stream");
    let groups: Vec<redis::Value> =
        redis::cmd("XINFO").arg("GROUPS").arg(&stream).query_async(&mut conn).await.unwrap();
    assert_eq!(groups.len(), 1, "one consumer group");
    let job = jobs.reserve(&q, Duration::from_secs(30)).await.unwrap().unwrap();
    let pending: (u64, redis::Value, redis::Value, redis::Value) =
        redis::cmd("XPENDING").arg(&stream).arg("w").query_async(&mut conn).await.unwrap();
    assert_eq!(pending.0, 1, "the reserved job is in the group's pending entries list");
    jobs.ack(&job).await.unwrap();
    let pending: (u64, redis::Value, redis::Value, redis::Value) =
        redis::cmd("XPENDING").arg(&stream).arg("w").query_async(&mut conn).await.unwrap();
    assert_eq!(pending.0, 0, "XACK emptied the pending entries list");
    let left: Vec<String> = namespace_keys(jobs.manager()).await;
    assert_eq!(left, vec![stream.clone()], "only the (empty) stream remains after the ack: {left:?}");
    let pttl: i64 = redis::cmd("PTTL").arg(&stream).query_async(&mut conn).await.unwrap();
    assert!(pttl > 0 && pttl <= 86_400_000, "the empty stream expires within a day: {pttl}");
    jobs.enqueue_bytes(&q, "b".into(), EnqueueOptions::default()).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg(&stream).query_async(&mut conn).await.unwrap();
    assert_eq!(pttl, -1, "a stream holding a job does not expire");
    let kind: String =
        redis::cmd("TYPE").arg(jobs.manager().key("jq:{thumbnails}:j")).query_async(&mut conn).await.unwrap();
    assert_eq!(kind, "hash", "the queue's jobs live in one hash, a key the scripts declare");
}

/// Dead letters live in a list and a hash whose TTL is the retention from the latest death: a queue no one touches
/// again leaves nothing but its empty stream (which expires too).
#[tokio::test]
async fn dead_letter_keys_expire_with_the_retention() {
    let retention = Duration::from_millis(500);
    let jobs =
        jobs("dead-retention").await.with_settings(JobQueueSettings::default().with_dead_letter_retention(retention));
    let q = queue();
    jobs.enqueue_bytes(&q, "a".into(), EnqueueOptions::default().max_attempts(1)).await.unwrap();
    let job = jobs.reserve(&q, Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!(jobs.nack(&job, Duration::ZERO).await.unwrap(), cpc_ports::NackOutcome::Dead);
    let mut conn = jobs.manager().connection();
    for suffix in ["x", "xj"] {
        let key = jobs.manager().key(&format!("jq:{{thumbnails}}:{suffix}"));
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        assert!(pttl > 0 && pttl <= 500, "{key} expires with the retention: {pttl}");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let left: Vec<String> = namespace_keys(jobs.manager()).await;
    assert_eq!(left, vec![jobs.manager().key("jq:{thumbnails}:s")], "only the empty stream is left: {left:?}");
}

#[tokio::test]
async fn idempotency_keys_expire_after_the_window() {
    let jobs = jobs("idempotency-window")
        .await
        .with_settings(JobQueueSettings { idempotency_window: Duration::from_millis(300), ..Default::default() });
    let q = queue();
    let keyed = || EnqueueOptions::default().idempotency_key("photo-1");
    let first = jobs.enqueue_bytes(&q, "a".into(), keyed()).await.unwrap();
    assert_eq!(jobs.enqueue_bytes(&q, "b".into(), keyed()).await.unwrap(), first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(jobs.enqueue_bytes(&q, "c".into(), keyed()).await.unwrap(), first, "the window is over");
    assert_eq!(jobs.stats(&q).await.unwrap().pending, 2);
}

#[tokio::test]
async fn a_job_abandoned_by_one_consumer_is_claimed_by_another() {
    let manager = shared_manager("two-consumers").await;
    let (dies, survives) = (RedisJobQueue::new(manager.clone()), RedisJobQueue::new(manager));
    let q = queue();
    let id = dies.enqueue_bytes(&q, "a".into(), EnqueueOptions::default()).await.unwrap();
    let abandoned = dies.reserve(&q, Duration::from_millis(200)).await.unwrap().unwrap();
    assert!(survives.reserve(&q, Duration::from_secs(30)).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let claimed = survives.reserve(&q, Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!((&claimed.id, claimed.attempt), (&id, 2));
    assert!(dies.ack(&abandoned).await.is_err(), "the first consumer's receipt is stale");
    survives.ack(&claimed).await.unwrap();
    assert_eq!(survives.stats(&q).await.unwrap(), cpc_ports::QueueStats::default());
}

/// `ack_many` runs one script per queue: a batch mixing two queues, a stale receipt and the same job twice gets
/// one result per job in order, and the acked jobs leave nothing behind in either stream.
#[tokio::test]
async fn ack_many_of_two_queues_acks_each_current_reservation_once() {
    let jobs = jobs("ack-many-two-queues").await;
    let (a, b) = (queue(), QueueName::new("avatars").unwrap());
    for q in [&a, &a, &b] {
        jobs.enqueue_bytes(q, "x".into(), EnqueueOptions::default()).await.unwrap();
    }
    let from_a = jobs.reserve_many(&a, Duration::from_secs(30), 10).await.unwrap();
    let from_b = jobs.reserve_many(&b, Duration::from_secs(30), 10).await.unwrap();
    assert_eq!((from_a.len(), from_b.len()), (2, 1));
    let mut stale = from_a[1].clone();
    stale.attempt += 1;
    let batch = [from_a[0].clone(), from_b[0].clone(), stale, from_a[0].clone(), from_a[1].clone()];
    let results = jobs.ack_many(&batch).await;
    let acked: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(acked, [true, true, false, false, true], "{results:?}");
    assert!(results.iter().flat_map(|r| r.as_ref().err()).all(|e| matches!(e, cpc_ports::KvError::NotFound { .. })));
    let mut conn = jobs.manager().connection();
    for q in [&a, &b] {
        assert_eq!(jobs.stats(q).await.unwrap(), cpc_ports::QueueStats::default());
        let stream = jobs.manager().key(&format!("jq:{{{q}}}:s"));
        let entries: u64 = redis::cmd("XLEN").arg(&stream).query_async(&mut conn).await.unwrap();
        assert_eq!(entries, 0, "acked entries are deleted from {q}'s stream");
    }
}

/// `reserve_many` with a `max` far past what one `XREADGROUP` reads reserves every ready job, once.
#[tokio::test]
async fn reserve_many_with_a_huge_max_takes_every_ready_job() {
    let jobs = jobs("reserve-many-huge-max").await;
    let q = queue();
    for i in 0..1_200u32 {
        jobs.enqueue_bytes(&q, i.to_string().into(), EnqueueOptions::default()).await.unwrap();
    }
    let taken = jobs.reserve_many(&q, Duration::from_secs(30), usize::MAX).await.unwrap();
    let payloads: Vec<String> = taken.iter().map(|j| String::from_utf8(j.payload.to_vec()).unwrap()).collect();
    assert_eq!(payloads, (0..1_200u32).map(|i| i.to_string()).collect::<Vec<_>>(), "all, in order");
    assert!(taken.iter().all(|j| j.attempt == 1));
    assert_eq!(jobs.stats(&q).await.unwrap().in_flight, 1_200);
    assert!(jobs.ack_many(&taken).await.iter().all(Result::is_ok));
    assert_eq!(jobs.stats(&q).await.unwrap(), cpc_ports::QueueStats::default());
}

/// A batch with one invalid job (bad options, a delay too long, an oversized payload) writes no key at all: no
/// stream, no jobs hash, no delayed set, no idempotency key of its keyed jobs. The checks run before the script.
#[tokio::test]
async fn a_batch_with_one_invalid_job_writes_no_key() {
    let jobs = jobs("batch-invalid").await;
    let q = queue();
    let good = || {
        vec![
            NewJob::new("a"),
            NewJob::new("b").with_options(EnqueueOptions::default().idempotency_key("photo-1")),
            NewJob::new("c").with_options(EnqueueOptions::default().delayed(Duration::from_secs(60))),
        ]
    };
    let bad = [
        (NewJob::new("d").with_options(EnqueueOptions::default().max_attempts(0)), "jobs[3].max_attempts"),
        (NewJob::new("d").with_options(EnqueueOptions::default().delayed(Duration::MAX)), "jobs[3].delay"),
    ];
    for (job, field) in bad {
        let mut batch = good();
        batch.push(job);
        match jobs.enqueue_many_bytes(&q, batch).await {
            Err(KvError::Validation(e)) => assert_eq!(e.field, field),
            other => panic!("want a validation error naming {field}, got {other:?}"),
        }
    }
    let mut batch = good();
    batch.push(NewJob::new(vec![0u8; cpc_ports::MAX_PAYLOAD_BYTES + 1]));
    assert!(matches!(jobs.enqueue_many_bytes(&q, batch).await, Err(KvError::TooLarge { .. })));
    let left = namespace_keys(jobs.manager()).await;
    assert!(left.is_empty(), "a refused batch writes nothing: {left:?}");
    let ids = jobs.enqueue_many_bytes(&q, good()).await.unwrap();
    assert_eq!(ids.len(), 3);
    let mut left = namespace_keys(jobs.manager()).await;
    left.sort();
    let mut want: Vec<String> =
        ["jq:{thumbnails}:d", "jq:{thumbnails}:i:photo-1", "jq:{thumbnails}:j", "jq:{thumbnails}:s"]
            .iter()
            .map(|k| jobs.manager().key(k))
            .collect();
    want.sort();
    assert_eq!(left, want, "the good batch wrote the queue's keys");
}

/// A batch of 2,500 jobs (past the script's 1,000-job `HSET` chunk) is one script call: every job is stored, in
/// order, with its payload, and the stream holds one entry per job.
#[tokio::test]
async fn a_large_batch_is_stored_whole_and_in_order() {
    let jobs = jobs("batch-large").await;
    let q = queue();
    let batch: Vec<NewJob> = (0..2500).map(|n| NewJob::new(format!("job-{n}"))).collect();
    let ids = jobs.enqueue_many_bytes(&q, batch).await.unwrap();
    assert_eq!(ids.len(), 2500);
    let mut conn = jobs.manager().connection();
    let entries: u64 =
        redis::cmd("XLEN").arg(jobs.manager().key("jq:{thumbnails}:s")).query_async(&mut conn).await.unwrap();
    assert_eq!(entries, 2500, "one stream entry per job");
    let fields: u64 =
        redis::cmd("HLEN").arg(jobs.manager().key("jq:{thumbnails}:j")).query_async(&mut conn).await.unwrap();
    assert_eq!(fields, 4 * 2500, "four fields per ready job in the jobs hash: payload, attempts, max attempts, entry");
    let got = jobs.reserve_many(&q, Duration::from_secs(30), 3000).await.unwrap();
    let want: Vec<_> = ids.iter().enumerate().map(|(n, id)| (id.clone(), format!("job-{n}"))).collect();
    let got: Vec<_> = got.iter().map(|j| (j.id.clone(), String::from_utf8_lossy(&j.payload).into_owned())).collect();
    assert_eq!(got, want, "every job, in batch order");
}
