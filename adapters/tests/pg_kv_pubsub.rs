//! `PgPubSub` on PostgreSQL `LISTEN`/`NOTIFY`: the pub/sub contract (concrete and as `dyn PubSub`, a fresh migrated
//! database per case), plus what only a real server shows: a killed listener connection comes back by itself,
//! messages over NOTIFY's 8000-byte limit travel through the table, a foreign NOTIFY on the bus's channel is
//! skipped, slow subscribers lag, receivers are counted across buses.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "pg-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::harness::DynHarness;
use common::pubsub::{channel, next_message};
use cpc_adapters::pg_kv::PgPubSub;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgPool};
use cpc_ports::{Bytes, ChannelPattern, KvError, PubSub};
use cpc_test_servers::TestDatabase;
use futures::StreamExt;
use tokio::time::{Instant, timeout};

type Harness = common::pg_kv::Harness<PgPubSub>;

async fn harness() -> Harness {
    common::pg_kv::harness_on(8, PgPubSub::new).await
}

async fn dyn_harness() -> DynHarness<dyn PubSub, TestDatabase> {
    harness().await.into_dyn(|p| Arc::new(p) as Arc<dyn PubSub>)
}

mod contract_concrete {
    cpc_testkit::pubsub_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::pubsub_contract!(super::dyn_harness());
}

/// Runs `sql` on a pooled connection.
async fn execute(pool: &PgPool, sql: &str) {
    pool.get().await.unwrap().batch_execute(sql).await.unwrap();
}

/// The process ids of the live listener connections.
async fn listener_pids(pool: &PgPool) -> Vec<i32> {
    let conn = pool.get().await.unwrap();
    let rows = conn
        .query(
            "SELECT DISTINCT s.listener_pid FROM cpc_pubsub_subscriptions s \
             JOIN pg_stat_activity a ON a.pid = s.listener_pid AND a.backend_start = s.listener_start",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_connection_reconnects_and_subscriptions_go_on() {
    let h = harness().await;
    let ch = channel("orders");
    let mut sub = h.subscribe_bytes(&ch).await.unwrap();
    let mut psub = h.psubscribe_bytes(&ChannelPattern::new("ord*").unwrap()).await.unwrap();
    assert_eq!(h.publish_bytes(&ch, Bytes::from_static(b"before")).await.unwrap(), 2);
    assert_eq!(next_message(&mut sub).await.payload, Bytes::from_static(b"before"));
    assert_eq!(next_message(&mut psub).await.payload, Bytes::from_static(b"before"));

    let pids = listener_pids(&h.pool).await;
    assert_eq!(pids.len(), 1, "one listener connection per bus");
    let conn = h.pool.get().await.unwrap();
    let killed: bool = conn.query_one("SELECT pg_terminate_backend($1)", &[&pids[0]]).await.unwrap().get(0);
    assert!(killed);
    // pg_terminate_backend only signals: wait until the backend is gone, so a publish from now on cannot be
    // counted (and received) by the old connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&pids[0]])
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(Instant::now() < deadline, "the listener backend did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(conn);

    // Publish until the new connection counts both subscriptions again; that message must arrive.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0u32;
    loop {
        n += 1;
        let reached = h.publish_bytes(&ch, Bytes::from(format!("after-{n}"))).await.unwrap();
        if reached == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the listener did not come back within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (name, sub) in [("channel", &mut sub), ("pattern", &mut psub)] {
        let item = timeout(Duration::from_secs(2), sub.next()).await.unwrap().unwrap();
        assert!(matches!(item, Err(KvError::Unavailable { .. })), "{name}: the loss is reported first: {item:?}");
        // Messages published while the listener was away may be lost; the one counted must arrive, in order.
        let mut last = 0;
        while last < n {
            let message = next_message(sub).await;
            let text = String::from_utf8(message.payload.to_vec()).unwrap();
            let k: u32 = text.strip_prefix("after-").unwrap().parse().unwrap();
            assert!(k > last, "{name}: in publish order");
            last = k;
        }
    }
    let new_pids = listener_pids(&h.pool).await;
    assert_eq!(new_pids.len(), 1);
    assert_ne!(new_pids, pids, "a new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_notify_limit_travels_through_the_table_and_old_rows_are_swept() {
    let h = harness().await;
    let ch = channel("big");
    let mut sub = h.subscribe_bytes(&ch).await.unwrap();
    let big: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 253) as u8).collect();
    let just_inline = vec![b'x'; 5000];
    let just_stored = vec![b'y'; 6000];
    for payload in [&big, &just_inline, &just_stored] {
        assert_eq!(h.publish_bytes(&ch, Bytes::from(payload.clone())).await.unwrap(), 1);
    }
    assert!(next_message(&mut sub).await.payload == big, "100 KB arrive byte for byte");
    assert_eq!(next_message(&mut sub).await.payload, just_inline);
    assert_eq!(next_message(&mut sub).await.payload, just_stored);

    let conn = h.pool.get().await.unwrap();
    let stored: i64 = conn.query_one("SELECT count(*) FROM cpc_pubsub_messages", &[]).await.unwrap().get(0);
    assert_eq!(stored, 2, "only the messages over the limit are stored");
    conn.batch_execute("UPDATE cpc_pubsub_messages SET created_at = now() - interval '2 minutes'").await.unwrap();
    h.publish_bytes(&ch, Bytes::from(just_stored.clone())).await.unwrap();
    let stored: i64 = conn.query_one("SELECT count(*) FROM cpc_pubsub_messages", &[]).await.unwrap().get(0);
    assert_eq!(stored, 1, "rows older than a minute are deleted by the next large publish");
    assert_eq!(next_message(&mut sub).await.payload, just_stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_notify_on_the_bus_channel_is_skipped_and_counted() {
    use common::recorded::{find, series};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let db = common::pg_kv::migrated_database().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default()).await.unwrap();
    let bus = metrics::with_local_recorder(&recorder, || PgPubSub::new(pool.clone()));

    let ch = channel("events");
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    execute(
        &pool,
        "SELECT pg_notify('cpc_pubsub', 'hello from another program'); \
         SELECT pg_notify('cpc_pubsub', 'cpc1 i !!! ???'); \
         SELECT pg_notify('cpc_pubsub', 'cpc1 i ZXZlbnRz'); \
         SELECT pg_notify('cpc_pubsub', 'cpc1 r 123456789'); \
         SELECT pg_notify('cpc_pubsub', 'cpc1 r not-a-number'); \
         SELECT pg_notify('cpc_pubsub', '');",
    )
    .await;
    assert_eq!(bus.publish_bytes(&ch, Bytes::from_static(b"good")).await.unwrap(), 1);
    let message = next_message(&mut sub).await;
    assert_eq!(message.payload, Bytes::from_static(b"good"), "the good message arrives, nothing before it");

    let all = series(&snapshotter);
    let skipped = |reason: &str| find(&all, "cpc_pg_pubsub_skipped_total", &[("reason", reason)]);
    assert_eq!(skipped("foreign"), &DebugValue::Counter(5));
    assert_eq!(skipped("expired"), &DebugValue::Counter(1), "a reference to a row that is not there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_keeps_a_bounded_buffer_then_reads_lagged_and_newer_messages() {
    let h = harness().await;
    let bus = h.port.clone().with_buffer(3);
    let slow_channel = channel("firehose");
    let mut slow = bus.subscribe_bytes(&slow_channel).await.unwrap();
    let mut marker = bus.subscribe_bytes(&channel("marker")).await.unwrap();
    for n in 0..10u32 {
        assert_eq!(bus.publish_bytes(&slow_channel, Bytes::from(n.to_string())).await.unwrap(), 1);
    }
    // One connection receives in commit order: once the marker is read, every message before it was routed.
    bus.publish_bytes(&channel("marker"), Bytes::from_static(b"done")).await.unwrap();
    assert_eq!(next_message(&mut marker).await.payload, Bytes::from_static(b"done"));
    let item = timeout(Duration::from_secs(1), slow.next()).await.unwrap().unwrap();
    assert!(matches!(item, Err(KvError::Lagged { missed: 7 })), "{item:?}");
    for n in 7..10u32 {
        assert_eq!(next_message(&mut slow).await.payload, n.to_string().as_bytes(), "the newest are kept");
    }
    bus.publish_bytes(&slow_channel, Bytes::from_static(b"newer")).await.unwrap();
    assert_eq!(next_message(&mut slow).await.payload, Bytes::from_static(b"newer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buses_in_other_processes_receive_and_are_counted_per_connection() {
    let h = harness().await;
    let other = PgPubSub::new(h.pool.clone());
    let ch = channel("shared");
    let mut here = h.subscribe_bytes(&ch).await.unwrap();
    let mut there = other.subscribe_bytes(&ch).await.unwrap();
    let mut there_too = other.subscribe_bytes(&ch).await.unwrap();
    let mut pattern = other.psubscribe_bytes(&ChannelPattern::new("sh?red").unwrap()).await.unwrap();
    assert_eq!(h.publish_bytes(&ch, Bytes::from_static(b"m")).await.unwrap(), 3, "two connections and a pattern");
    for sub in [&mut here, &mut there, &mut there_too, &mut pattern] {
        assert_eq!(next_message(sub).await.payload, Bytes::from_static(b"m"));
    }
    drop(other);
    drop((there, there_too, pattern));
    // The bus's drop removes its rows (and its connection's would be ignored once it is gone anyway).
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.publish_bytes(&ch, Bytes::from_static(b"n")).await.unwrap() != 1 {
        assert!(Instant::now() < deadline, "the dropped bus is still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bus_ends_every_stream() {
    let h = harness().await;
    let bus = PgPubSub::new(h.pool.clone());
    let mut sub = bus.subscribe_bytes(&channel("c")).await.unwrap();
    drop(bus);
    let end = timeout(Duration::from_secs(2), sub.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
}
