//! The job queue an app could write instead of `RedisJobQueue` + `Worker`: a bare redis-rs loop over one Redis
//! Stream and consumer group on one `MultiplexedConnection`, no library (`#[path = "common/bare_streams.rs"] mod
//! bare_streams;`). Producers `XADD` the payload (one per call, or several pipelined); each consumer `XREADGROUP`s
//! up to `count` new entries (polling every millisecond when none is ready, as the worker does), decodes each
//! payload, then acks its entries with `XACK` + `XDEL` in one pipeline (one round trip), as the library deletes a
//! worked job's entry.
//!
//! What it leaves out, and the library does not: delays, retries with backoff, attempt counts, dead letters,
//! idempotency keys, redelivery of entries whose consumer died, visibility timeouts and their extension.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};

/// The consumer group's name.
const GROUP: &str = "w";

/// One run's figures: (enqueued per second, worked per second, end to end per second).
pub type Rates = (f64, f64, f64);

/// Runs `jobs` jobs (the JSON numbers `0..jobs`) through a fresh stream under `prefix`: `producers` tasks `XADD`
/// them (`pipelined` `XADD`s per round trip, in one redis-rs pipeline; 1: one `XADD` per call), then `consumers`
/// tasks each read up to `count` entries per `XREADGROUP` and ack them. Deletes the stream at the end.
pub async fn run(
    url: &str,
    prefix: &str,
    jobs: u64,
    producers: u64,
    consumers: usize,
    count: usize,
    pipelined: usize,
) -> Rates {
    let conn = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{prefix}{}:s", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let (mut conn, stream) = (conn.clone(), stream.clone());
            tokio::spawn(async move {
                let mine: Vec<u64> = (p..jobs).step_by(producers as usize).collect();
                for chunk in mine.chunks(pipelined.max(1)) {
                    if let [i] = chunk {
                        let payload = serde_json::to_vec(i).unwrap();
                        let _: String = conn.xadd(&stream, "*", &[("j", payload)]).await.unwrap();
                        continue;
                    }
                    let mut pipe = redis::pipe();
                    for i in chunk {
                        pipe.xadd(&stream, "*", &[("j", serde_json::to_vec(i).unwrap())]);
                    }
                    let _: Vec<String> = pipe.query_async(&mut conn).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let enqueued_in = started.elapsed();
    let working = Instant::now();
    let mut setup = conn.clone();
    let _: () = setup.xgroup_create(&stream, GROUP, "0").await.unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..consumers)
        .map(|c| tokio::spawn(consume(conn.clone(), stream.clone(), format!("c{c}"), count, jobs, done.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let worked_in = working.elapsed();
    let total = started.elapsed();
    assert_eq!(done.load(Ordering::Relaxed), jobs);
    let left: u64 = setup.xlen(&stream).await.unwrap();
    assert_eq!(left, 0, "every entry acked and deleted");
    let _: () = setup.del(&stream).await.unwrap();
    let n = jobs as f64;
    (n / enqueued_in.as_secs_f64(), n / worked_in.as_secs_f64(), n / total.as_secs_f64())
}

/// One consumer: reads, decodes and acks until `done` reaches `jobs`.
async fn consume(
    mut conn: MultiplexedConnection,
    stream: String,
    consumer: String,
    count: usize,
    jobs: u64,
    done: Arc<AtomicU64>,
) {
    let options = StreamReadOptions::default().group(GROUP, &consumer).count(count);
    while done.load(Ordering::Relaxed) < jobs {
        let reply: Option<StreamReadReply> = conn.xread_options(&[&stream], &[">"], &options).await.unwrap();
        let entries: Vec<_> = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).collect();
        if entries.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            let payload: Vec<u8> = entry.get("j").unwrap();
            let _: u64 = serde_json::from_slice(&payload).unwrap();
            ids.push(entry.id);
        }
        let _: () = redis::pipe()
            .xack(&stream, GROUP, &ids)
            .ignore()
            .xdel(&stream, &ids)
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
        done.fetch_add(ids.len() as u64, Ordering::Relaxed);
    }
}
