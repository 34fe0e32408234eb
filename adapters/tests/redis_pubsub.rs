//! The Redis [`PubSub`] adapter: the contract suite on the shared server (concrete and `dyn`), plus what only a
//! real server shows: namespacing, reconnection after a restart, bounded buffers, `UNSUBSCRIBE` on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::pubsub::{channel, next_message};
use common::redis::{shared_manager, shared_url};

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::redis::{PubSubManager, RedisConfig, RedisManager};
use cpc_ports::{Bytes, Channel, ChannelPattern, KvError, PubSub, Subscription};
use cpc_test_servers::PrivateRedis;
use futures::StreamExt;
use tokio::time::{Instant, timeout};

async fn private_manager(server: &PrivateRedis) -> RedisManager {
    let config = RedisConfig::builder()
        .port(server.port())
        .namespace("private:")
        .response_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisManager::new(&config).await.unwrap()
}

mod concrete {
    cpc_testkit::pubsub_contract!(async {
        std::sync::Arc::new(cpc_adapters::redis::PubSubManager::new(super::shared_manager("pubsub").await))
    });
}

mod as_dyn {
    cpc_testkit::pubsub_contract!(async {
        std::sync::Arc::new(cpc_adapters::redis::PubSubManager::new(super::shared_manager("pubsub-dyn").await))
            as std::sync::Arc<dyn cpc_ports::PubSub>
    });
}

/// How many connections Redis counts as subscribed to `name` (the full, namespaced name).
async fn numsub(manager: &RedisManager, name: &str) -> i64 {
    let (_, n): (String, i64) = manager.query(redis::cmd("PUBSUB").arg("NUMSUB").arg(name), "numsub").await.unwrap();
    n
}

/// Polls `probe` until it returns `want`, for at most `within`.
async fn eventually<F, Fut>(within: Duration, want: i64, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let deadline = Instant::now() + within;
    loop {
        let got = probe().await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got} after {within:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_namespaced_and_messages_carry_the_bare_name() {
    let manager = shared_manager("ns").await;
    let ns = manager.config().namespace.clone();
    let bus = PubSubManager::new(manager.clone());
    let mut sub = bus.subscribe_bytes(&channel("orders")).await.unwrap();
    assert_eq!(numsub(&manager, &format!("{ns}orders")).await, 1, "the server channel carries the namespace");
    assert_eq!(numsub(&manager, "orders").await, 0);
    // A publish from outside the library, on the namespaced name, arrives under the bare name.
    let reached: i64 =
        manager.query(redis::cmd("PUBLISH").arg(format!("{ns}orders")).arg(&b"raw"[..]), "publish").await.unwrap();
    assert_eq!(reached, 1);
    let got = next_message(&mut sub).await;
    assert_eq!((got.channel.as_str(), &got.payload[..]), ("orders", &b"raw"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_do_not_reach_into_a_namespace_their_unescaped_glob_would_match() {
    let id = uuid::Uuid::new_v4();
    let config = |ns: String| {
        let mut c = RedisConfig::parse_url(&shared_url(), "REDIS_URL").unwrap();
        c.namespace = ns;
        c
    };
    // Unescaped, the pattern `*` under the namespace `…:a*[bc]?:` would also match `…:aXbY:…`.
    let globby = RedisManager::new(&config(format!("cpc-test:glob:{id}:a*[bc]?:"))).await.unwrap();
    let plain = RedisManager::new(&config(format!("cpc-test:glob:{id}:aXbY:"))).await.unwrap();
    let (globby, plain) = (PubSubManager::new(globby), PubSubManager::new(plain));
    let mut all = globby.psubscribe_bytes(&ChannelPattern::new("*").unwrap()).await.unwrap();
    assert_eq!(plain.publish_bytes(&channel("x"), Bytes::from_static(b"other namespace")).await.unwrap(), 0);
    assert_eq!(globby.publish_bytes(&channel("y"), Bytes::from_static(b"mine")).await.unwrap(), 1);
    let got = next_message(&mut all).await;
    assert_eq!((got.channel.as_str(), &got.payload[..]), ("y", &b"mine"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_subscription_sends_unsubscribe() {
    let manager = shared_manager("unsub").await;
    let full = manager.key("events");
    let bus = PubSubManager::new(manager.clone());
    let first = bus.subscribe_bytes(&channel("events")).await.unwrap();
    let second = bus.subscribe_bytes(&channel("events")).await.unwrap();
    assert_eq!(numsub(&manager, &full).await, 1, "one connection carries both subscriptions");
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(numsub(&manager, &full).await, 1, "a subscription is left: the channel stays subscribed");
    assert_eq!(bus.subscription_count(), 1);
    drop(second);
    eventually(Duration::from_secs(1), 0, || numsub(&manager, &full)).await;
    assert_eq!(bus.subscription_count(), 0);
    // The connection stays usable after unsubscribing.
    let mut again = bus.subscribe_bytes(&channel("events")).await.unwrap();
    bus.publish_bytes(&channel("events"), Bytes::from_static(b"again")).await.unwrap();
    assert_eq!(next_message(&mut again).await.payload, Bytes::from_static(b"again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_pattern_subscription_sends_punsubscribe() {
    // PUBSUB NUMPAT counts every pattern of the server, so this runs on a private one.
    let server = PrivateRedis::start().await;
    let manager = private_manager(&server).await;
    let m = &manager;
    let numpat = || async move { m.query::<i64>(redis::cmd("PUBSUB").arg("NUMPAT"), "numpat").await.unwrap() };
    let bus = PubSubManager::new(manager.clone());
    let a = bus.psubscribe_bytes(&ChannelPattern::new("a.*").unwrap()).await.unwrap();
    let b = bus.psubscribe_bytes(&ChannelPattern::new("b.*").unwrap()).await.unwrap();
    assert_eq!(numpat().await, 2);
    drop(a);
    eventually(Duration::from_secs(1), 1, numpat).await;
    drop(b);
    eventually(Duration::from_secs(1), 0, numpat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bus_ends_every_stream_and_closes_the_connection() {
    let manager = shared_manager("bus-drop").await;
    let full = manager.key("c");
    let bus = PubSubManager::new(manager.clone());
    let mut sub = bus.subscribe_bytes(&channel("c")).await.unwrap();
    drop(bus);
    let end = timeout(Duration::from_secs(2), sub.next()).await.expect("the stream must end");
    assert!(end.is_none(), "{end:?}");
    eventually(Duration::from_secs(1), 0, || numsub(&manager, &full)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_keeps_a_bounded_buffer_then_reads_lagged_and_newer_messages() {
    const BUFFER: usize = 100;
    const SENT: u32 = 10_000;
    let manager = shared_manager("lag").await;
    let bus = PubSubManager::new(manager).with_buffer(BUFFER);
    let slow_channel = channel("firehose");
    let mut slow = bus.subscribe_bytes(&slow_channel).await.unwrap();
    let mut marker = bus.subscribe_bytes(&channel("marker")).await.unwrap();
    let mut most_buffered = 0;
    for n in 0..SENT {
        assert_eq!(bus.publish_bytes(&slow_channel, Bytes::from(n.to_string())).await.unwrap(), 1);
        if n % 500 == 0 {
            most_buffered = most_buffered.max(bus.buffered_messages());
        }
    }
    // Messages of one connection arrive in order: once the marker is read, every message before it was routed.
    bus.publish_bytes(&channel("marker"), Bytes::from_static(b"done")).await.unwrap();
    assert_eq!(next_message(&mut marker).await.payload, Bytes::from_static(b"done"));
    most_buffered = most_buffered.max(bus.buffered_messages());
    assert!(most_buffered <= BUFFER, "the buffer grew to {most_buffered} messages");
    assert_eq!(bus.buffered_messages(), BUFFER, "the slow subscription holds exactly its buffer");

    let item = timeout(Duration::from_secs(1), slow.next()).await.unwrap().unwrap();
    let missed = u64::from(SENT) - BUFFER as u64;
    assert!(matches!(item, Err(KvError::Lagged { missed: m }) if m == missed), "{item:?}");
    for n in (SENT - BUFFER as u32)..SENT {
        assert_eq!(next_message(&mut slow).await.payload, n.to_string().as_bytes(), "the newest messages are kept");
    }
    bus.publish_bytes(&slow_channel, Bytes::from_static(b"newer")).await.unwrap();
    assert_eq!(next_message(&mut slow).await.payload, Bytes::from_static(b"newer"));
    assert_eq!(bus.buffered_messages(), 0);
}

/// Publishes `payloads` on `ch`, then a marker on a second subscription: messages of one connection arrive in
/// order, so once the marker is read every payload before it was routed to the subscription queues.
async fn publish_and_settle(bus: &PubSubManager, ch: &Channel, payloads: impl IntoIterator<Item = Bytes>) {
    let mut marker = bus.subscribe_bytes(&channel("settled")).await.unwrap();
    for payload in payloads {
        assert_eq!(bus.publish_bytes(ch, payload).await.unwrap(), 1);
    }
    bus.publish_bytes(&channel("settled"), Bytes::from_static(b"done")).await.unwrap();
    assert_eq!(next_message(&mut marker).await.payload, Bytes::from_static(b"done"));
}

/// A stalled subscriber's queue is bounded in bytes as well as in messages: with `with_buffer_bytes(65,536)`,
/// 20 messages of 10,003 bytes (payload and channel name) leave the newest 6; a message larger than the bound is
/// kept alone; by default (16 MiB) three 6 MiB messages leave two. Before the byte bound, a subscription held up
/// to 1,024 messages of any size (8 GiB of 8 MiB messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscribers_buffer_is_bounded_in_bytes() {
    const BOUND: usize = 65_536;
    let manager = shared_manager("lag-bytes").await;
    let bus = PubSubManager::new(manager.clone()).with_buffer_bytes(BOUND);
    let big = channel("big");
    let mut slow = bus.subscribe_bytes(&big).await.unwrap();
    publish_and_settle(&bus, &big, (0..20u8).map(|n| Bytes::from(vec![n; 10_000]))).await;
    assert_eq!(bus.buffered_messages(), 6);
    assert!(bus.buffered_bytes() <= BOUND, "{} bytes held", bus.buffered_bytes());
    let item = timeout(Duration::from_secs(1), slow.next()).await.unwrap().unwrap();
    assert!(matches!(item, Err(KvError::Lagged { missed: 14 })), "{item:?}");
    for n in 14..20u8 {
        assert_eq!(next_message(&mut slow).await.payload, vec![n; 10_000], "the newest messages are kept");
    }

    publish_and_settle(&bus, &big, [Bytes::from_static(b"small"), Bytes::from(vec![7u8; 100_000])]).await;
    assert_eq!((bus.buffered_messages(), bus.buffered_bytes()), (1, 100_003), "the newest is kept, alone");
    let item = timeout(Duration::from_secs(1), slow.next()).await.unwrap().unwrap();
    assert!(matches!(item, Err(KvError::Lagged { missed: 1 })), "{item:?}");
    assert_eq!(next_message(&mut slow).await.payload.len(), 100_000);
    assert_eq!(bus.buffered_bytes(), 0);

    drop(slow);
    let default_bus = PubSubManager::new(manager);
    let huge = channel("huge");
    let mut stalled = default_bus.subscribe_bytes(&huge).await.unwrap();
    let six_mib = 6 * 1024 * 1024;
    publish_and_settle(&default_bus, &huge, (0..3u8).map(|n| Bytes::from(vec![n; six_mib]))).await;
    assert_eq!(default_bus.buffered_messages(), 2, "16 MiB by default: two of the three 6 MiB messages");
    let item = timeout(Duration::from_secs(1), stalled.next()).await.unwrap().unwrap();
    assert!(matches!(item, Err(KvError::Lagged { missed: 1 })), "{item:?}");
    assert_eq!(next_message(&mut stalled).await.payload[0], 1);
}

/// Publishes on `ch` every 100 ms until `sub` yields a message, skipping error items (the connection-lost
/// notice, and publishes that fail while the server is down); returns the errors seen.
async fn publish_until_received(
    bus: &PubSubManager,
    ch: &Channel,
    sub: &mut Subscription,
    within: Duration,
) -> Vec<KvError> {
    let deadline = Instant::now() + within;
    let mut errors = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no message within {within:?} after the restart; errors: {errors:?}");
        let _ = bus.publish_bytes(ch, Bytes::from_static(b"after restart")).await;
        let until = Instant::now() + Duration::from_millis(100);
        while let Ok(Some(item)) = tokio::time::timeout_at(until, sub.next()).await {
            match item {
                Ok(message) => {
                    assert_eq!(message.payload, Bytes::from_static(b"after restart"));
                    return errors;
                }
                Err(e) => errors.push(e),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_server_restart() {
    let server = PrivateRedis::start().await;
    let manager = private_manager(&server).await;
    let bus = PubSubManager::new(manager.clone());
    let ch = channel("alerts");
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    let mut psub = bus.psubscribe_bytes(&ChannelPattern::new("al*").unwrap()).await.unwrap();
    assert_eq!(bus.publish_bytes(&ch, Bytes::from_static(b"before")).await.unwrap(), 2);
    assert_eq!(next_message(&mut sub).await.payload, Bytes::from_static(b"before"));
    assert_eq!(next_message(&mut psub).await.payload, Bytes::from_static(b"before"));

    server.kill();
    // Down long enough for several failed reconnection attempts (the backoff reaches its 1 s cap).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;

    let errors = publish_until_received(&bus, &ch, &mut sub, Duration::from_secs(5)).await;
    assert!(
        errors.iter().any(|e| matches!(e, KvError::Unavailable { .. })),
        "the subscriber must be told the connection was lost: {errors:?}"
    );
    let pattern_message = loop {
        match timeout(Duration::from_secs(2), psub.next()).await.unwrap().unwrap() {
            Ok(m) => break m,
            Err(KvError::Unavailable { .. }) => continue,
            Err(e) => panic!("unexpected error item {e:?}"),
        }
    };
    assert_eq!(pattern_message.channel, "alerts", "the pattern subscription was restored too");
    assert_eq!(numsub(&manager, "private:alerts").await, 1, "resubscribed exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_while_the_server_is_down_fails_fast_and_works_after_it_is_back() {
    let server = PrivateRedis::start().await;
    let manager = private_manager(&server).await;
    let bus = PubSubManager::new(manager);
    server.kill();
    let started = Instant::now();
    let err = timeout(Duration::from_secs(5), bus.subscribe_bytes(&channel("x"))).await.unwrap().unwrap_err();
    assert!(matches!(err, KvError::Unavailable { .. } | KvError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(bus.subscription_count(), 0, "the failed subscription is not kept");
    server.restart().await;
    let mut sub = bus.subscribe_bytes(&channel("x")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if bus.publish_bytes(&channel("x"), Bytes::from_static(b"up")).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "publishing did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(next_message(&mut sub).await.payload, Bytes::from_static(b"up"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_and_dyn_use_share_the_codec() {
    use cpc_ports::{Codec, PubSubExt};
    let bus: Arc<dyn PubSub> = Arc::new(PubSubManager::new(shared_manager("codec").await).with_codec(Codec::default()));
    let mut sub = bus.subscribe::<Vec<u32>>(&channel("numbers")).await.unwrap();
    bus.publish(&channel("numbers"), &vec![1u32, 2, 3]).await.unwrap();
    let got = timeout(Duration::from_secs(2), sub.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, vec![1, 2, 3]);
}
