//! Memory under pressure, measured (docs/RELIABILITY.md): a Redis subscriber that stops reading while 1,000,000
//! messages are published, and the in-memory cache under constant churn of expiring entries. Each test reads its
//! own process's resident memory (`VmRSS`; nextest runs every test in a process of its own).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "redis", feature = "memory", target_os = "linux"))]

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::redis::shared_manager;
use cpc_adapters::memory::InMemoryCache;
use cpc_adapters::redis::PubSubManager;
use cpc_ports::{Bytes, Cache, CacheKey, Channel, KvError, PubSub};
use futures::StreamExt;

const MIB: u64 = 1024 * 1024;

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// A subscriber that reads nothing while 1,000,000 messages of 200 bytes (200 MB) are published keeps its memory
/// bounded (its queue holds the newest `DEFAULT_SUBSCRIPTION_BUFFER` messages), then learns how many it missed and
/// goes on receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_keeps_bounded_memory_under_a_million_messages() {
    const MESSAGES: usize = 1_000_000;
    const BATCH: usize = 1_000;
    let manager = shared_manager("rel-mem-pubsub").await;
    let bus = PubSubManager::new(manager.clone());
    let channel = Channel::new("flood").unwrap();
    let mut sub = bus.subscribe_bytes(&channel).await.unwrap();
    let before = rss();
    let mut peak = before;
    let payload = vec![b'x'; 200];
    let mut conn = manager.connection();
    let started = Instant::now();
    for _ in 0..MESSAGES / BATCH {
        let mut pipe = redis::pipe();
        for _ in 0..BATCH {
            pipe.cmd("PUBLISH").arg(manager.key("flood")).arg(&payload).ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
        peak = peak.max(rss());
    }
    let published_in = started.elapsed();
    // Let the subscription's reader drain what the server still had to send.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss());
    }
    let growth = peak.saturating_sub(before);
    assert!(growth < 64 * MIB, "resident memory grew by {} MiB for a stalled subscriber", growth / MIB);

    // Reading again: how many were dropped (reported before the messages kept, possibly in several reports
    // while the reader was still behind), the kept messages, then new ones.
    let first = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert!(matches!(first, Err(KvError::Lagged { .. })), "a lag is reported first, got {first:?}");
    let marker = Bytes::from_static(b"after the flood");
    bus.publish_bytes(&channel, marker.clone()).await.unwrap();
    let (mut missed, mut kept, mut reports, mut cut) = (0u64, 0usize, 0usize, 0usize);
    // Bounded as a whole; a busy machine (a debug build beside other tests) may take a while to read the backlog.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut item = Some(first);
    loop {
        match item {
            Some(Err(KvError::Lagged { missed: m })) => {
                missed += m;
                reports += 1;
            }
            Some(Ok(message)) if message.payload == marker => break,
            Some(Ok(_)) => kept += 1,
            // Published faster than this process parses (a debug build against pipelined PUBLISH), the server's
            // `client-output-buffer-limit pubsub` may cut the connection: the subscription says so, reconnects
            // and resubscribes; what was sent meanwhile is lost, and counted by neither figure. The marker may
            // be among the lost, so it is published again.
            Some(Err(KvError::Unavailable { .. })) => {
                cut += 1;
                bus.publish_bytes(&channel, marker.clone()).await.unwrap();
            }
            Some(Err(e)) => panic!("unexpected error on the subscription: {e}"),
            // Nothing for 2 s: the marker may have been lost in a cut still being repaired; publish it again.
            None => {
                assert!(Instant::now() < deadline, "no marker within 90 s: missed {missed}, kept {kept}, cut {cut}");
                bus.publish_bytes(&channel, marker.clone()).await.unwrap();
            }
        }
        item = match tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
            Ok(next) => Some(next.expect("the subscription does not end")),
            Err(_) => None,
        };
    }
    assert!(missed as usize + kept <= MESSAGES, "missed {missed} + kept {kept}");
    if cut == 0 {
        assert_eq!(missed as usize + kept, MESSAGES, "every message is either delivered or counted as missed");
    }
    eprintln!(
        "stalled subscriber: {MESSAGES} messages of 200 B published in {published_in:?}; resident memory grew by \
         {:.1} MiB at most; {missed} counted as missed ({reports} lag reports), {kept} kept and delivered, {cut} \
         connection cuts by the server; then new messages flowed",
        growth as f64 / MIB as f64
    );
}

/// The in-memory cache written without pause with entries that expire after 200 ms, for 60 s (`CPC_CHURN_SECS`
/// to change): the number of stored entries and the resident memory stay flat; expired entries do not pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_cache_keeps_bounded_memory_under_60_s_of_churn() {
    let secs: u64 = std::env::var("CPC_CHURN_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let cache = InMemoryCache::new(Duration::from_secs(300));
    let ttl = Some(Duration::from_millis(200));
    let value = Bytes::from(vec![b'v'; 100]);
    let started = Instant::now();
    let (mut written, mut samples) = (0u64, Vec::new());
    let mut next_sample = Duration::from_secs(5);
    while started.elapsed() < Duration::from_secs(secs) {
        for _ in 0..500 {
            let key = CacheKey::new(format!("churn:{written}")).unwrap();
            cache.set_bytes(&key, value.clone(), ttl).await.unwrap();
            written += 1;
        }
        if started.elapsed() >= next_sample {
            samples.push((started.elapsed().as_secs(), cache.len(), rss()));
            next_sample += Duration::from_secs(5);
        }
        // Paced (at most 500 writes per 2 ms) so that a CI run shares the machine; unbounded storage would
        // still hold millions of entries, gigabytes, by the end.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(samples.len() >= 2, "{samples:?}");
    let (_, _, first_rss) = samples[0];
    let max_len = samples.iter().map(|s| s.1).max().unwrap();
    let last_rss = samples.last().unwrap().2;
    let peak_rss = samples.iter().map(|s| s.2).max().unwrap();
    // Entries alive at once: what 200 ms (plus purging lag) of writing adds, far below what was written.
    assert!((max_len as u64) < written / 10, "{max_len} entries stored of {written} written: {samples:?}");
    assert!(peak_rss < first_rss + 64 * MIB, "resident memory grew from {first_rss} to {peak_rss}: {samples:?}");
    eprintln!(
        "in-memory churn: {written} entries written in {secs} s; at most {max_len} stored at a sample; resident \
         memory {:.1} MiB at 5 s, {:.1} MiB at the end, {:.1} MiB at most",
        first_rss as f64 / MIB as f64,
        last_rss as f64 / MIB as f64,
        peak_rss as f64 / MIB as f64
    );
}
