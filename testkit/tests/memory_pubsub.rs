//! The pub/sub contract suite against [`InMemoryPubSub`], directly and as `Arc<dyn PubSub>`, plus what only the
//! fake can show: bounded buffers for lagging subscribers, clean-up after drops, and the glob matcher's edges.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cpc_ports::{Channel, ChannelPattern, Codec, KvError, PubSub, PubSubExt, Subscription};
use cpc_testkit::memory::{DEFAULT_SUBSCRIPTION_BUFFER, InMemoryPubSub};
use futures::StreamExt;

mod concrete {
    cpc_testkit::pubsub_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemoryPubSub::new()) });
}

mod as_dyn {
    use std::sync::Arc;

    use cpc_ports::PubSub;
    use cpc_testkit::memory::InMemoryPubSub;

    cpc_testkit::pubsub_contract!(async { Arc::new(InMemoryPubSub::new()) as Arc<dyn PubSub> });
}

mod msgpack {
    use std::sync::Arc;

    use cpc_ports::{Codec, PubSub};
    use cpc_testkit::memory::InMemoryPubSub;

    cpc_testkit::pubsub_contract!(async {
        Arc::new(InMemoryPubSub::new().with_codec(Codec::msgpack())) as Arc<dyn PubSub>
    });
}

const WAIT: Duration = Duration::from_secs(1);

fn ch(name: &str) -> Channel {
    Channel::new(name).expect("a valid channel name")
}

fn pat(glob: &str) -> ChannelPattern {
    ChannelPattern::new(glob).expect("a valid pattern")
}

async fn next(sub: &mut Subscription) -> Result<cpc_ports::Message, KvError> {
    tokio::time::timeout(WAIT, sub.next()).await.expect("nothing arrived in time").expect("the stream ended")
}

async fn publish_numbers(bus: &InMemoryPubSub, channel: &Channel, numbers: std::ops::Range<u32>, reached: u64) {
    for n in numbers {
        assert_eq!(bus.publish_bytes(channel, Bytes::from(n.to_string())).await.expect("publish"), reached);
    }
}

#[tokio::test]
async fn a_lagging_subscriber_loses_the_oldest_messages_gets_lagged_and_goes_on() {
    let bus = InMemoryPubSub::new().with_buffer(8);
    let news = ch("news");
    let mut slow = bus.subscribe_bytes(&news).await.unwrap();
    publish_numbers(&bus, &news, 0..1000, 1).await;
    assert_eq!(bus.buffered_messages(), 8, "a stalled subscriber must hold at most its buffer");
    let lagged = next(&mut slow).await;
    assert!(matches!(lagged, Err(KvError::Lagged { missed: 992 })), "got {lagged:?}");
    for n in 992..1000u32 {
        assert_eq!(next(&mut slow).await.unwrap().payload, n.to_string().as_bytes(), "the newest 8 are kept in order");
    }
    assert_eq!(bus.buffered_messages(), 0);
    publish_numbers(&bus, &news, 1000..1001, 1).await;
    assert_eq!(next(&mut slow).await.unwrap().payload, "1000".as_bytes(), "after catching up it continues normally");
}

/// Bounded in bytes too: 20 messages of 10,003 bytes (payload and channel name) under a 65,536-byte bound leave
/// the newest 6; a message larger than the bound is kept alone; by default (16 MiB) three 6 MiB messages leave
/// two.
#[tokio::test]
async fn a_lagging_subscribers_buffer_is_bounded_in_bytes() {
    let bus = InMemoryPubSub::new().with_buffer_bytes(65_536);
    let big = Channel::new("big").unwrap();
    let mut slow = bus.subscribe_bytes(&big).await.unwrap();
    for n in 0..20u8 {
        bus.publish_bytes(&big, Bytes::from(vec![n; 10_000])).await.unwrap();
    }
    assert_eq!((bus.buffered_messages(), bus.buffered_bytes()), (6, 60_018));
    assert!(matches!(next(&mut slow).await, Err(KvError::Lagged { missed: 14 })));
    for n in 14..20u8 {
        assert_eq!(next(&mut slow).await.unwrap().payload, vec![n; 10_000]);
    }
    bus.publish_bytes(&big, Bytes::from_static(b"small")).await.unwrap();
    bus.publish_bytes(&big, Bytes::from(vec![7u8; 100_000])).await.unwrap();
    assert_eq!((bus.buffered_messages(), bus.buffered_bytes()), (1, 100_003), "the newest is kept, alone");
    assert!(matches!(next(&mut slow).await, Err(KvError::Lagged { missed: 1 })));
    assert_eq!(next(&mut slow).await.unwrap().payload.len(), 100_000);

    let default_bus = InMemoryPubSub::new();
    let mut stalled = default_bus.subscribe_bytes(&big).await.unwrap();
    for n in 0..3u8 {
        default_bus.publish_bytes(&big, Bytes::from(vec![n; 6 * 1024 * 1024])).await.unwrap();
    }
    assert_eq!(default_bus.buffered_messages(), 2, "16 MiB by default: two of the three 6 MiB messages");
    assert!(matches!(next(&mut stalled).await, Err(KvError::Lagged { missed: 1 })));
    assert_eq!(next(&mut stalled).await.unwrap().payload[0], 1);
}

#[tokio::test]
async fn a_lagging_subscriber_reports_each_new_gap_once() {
    let bus = InMemoryPubSub::new().with_buffer(4);
    let news = ch("news");
    let mut slow = bus.subscribe_bytes(&news).await.unwrap();
    publish_numbers(&bus, &news, 0..6, 1).await;
    assert!(matches!(next(&mut slow).await, Err(KvError::Lagged { missed: 2 })));
    assert_eq!(next(&mut slow).await.unwrap().payload, "2".as_bytes());
    publish_numbers(&bus, &news, 6..10, 1).await; // queue: 3 4 5 6 | 7 8 9 push out 3 4 5
    assert!(matches!(next(&mut slow).await, Err(KvError::Lagged { missed: 3 })));
    for n in 6..10u32 {
        assert_eq!(next(&mut slow).await.unwrap().payload, n.to_string().as_bytes());
    }
}

#[tokio::test]
async fn a_lagging_subscriber_does_not_hold_back_the_others() {
    let bus = InMemoryPubSub::new().with_buffer(16);
    let news = ch("news");
    let _stalled = bus.subscribe_bytes(&news).await.unwrap();
    let mut stalled_pattern = bus.psubscribe_bytes(&pat("n*")).await.unwrap();
    let mut reader = bus.subscribe_bytes(&news).await.unwrap();
    for n in 0..500u32 {
        assert_eq!(bus.publish_bytes(&news, Bytes::from(n.to_string())).await.unwrap(), 3);
        assert_eq!(next(&mut reader).await.unwrap().payload, n.to_string().as_bytes());
    }
    assert_eq!(bus.buffered_messages(), 32, "two stalled subscriptions hold 16 each, the reader none");
    assert!(matches!(next(&mut stalled_pattern).await, Err(KvError::Lagged { missed: 484 })));
}

#[tokio::test]
async fn the_default_buffer_holds_1024_messages() {
    let bus = InMemoryPubSub::default();
    let news = ch("news");
    let mut sub = bus.subscribe_bytes(&news).await.unwrap();
    publish_numbers(&bus, &news, 0..DEFAULT_SUBSCRIPTION_BUFFER as u32, 1).await;
    assert_eq!(bus.buffered_messages(), DEFAULT_SUBSCRIPTION_BUFFER);
    assert_eq!(next(&mut sub).await.unwrap().payload, "0".as_bytes(), "a full buffer has lost nothing yet");
    publish_numbers(&bus, &news, 0..2, 1).await;
    assert!(matches!(next(&mut sub).await, Err(KvError::Lagged { missed: 1 })));
}

#[tokio::test]
async fn a_zero_buffer_is_raised_to_one() {
    let bus = InMemoryPubSub::new().with_buffer(0);
    let news = ch("news");
    let mut sub = bus.subscribe_bytes(&news).await.unwrap();
    publish_numbers(&bus, &news, 0..3, 1).await;
    assert!(matches!(next(&mut sub).await, Err(KvError::Lagged { missed: 2 })));
    assert_eq!(next(&mut sub).await.unwrap().payload, "2".as_bytes());
}

#[tokio::test]
async fn dropping_the_last_subscription_removes_the_channel_and_pattern() {
    let bus = InMemoryPubSub::new();
    let a = bus.subscribe_bytes(&ch("a")).await.unwrap();
    let a2 = bus.subscribe_bytes(&ch("a")).await.unwrap();
    let b = bus.subscribe_bytes(&ch("b")).await.unwrap();
    let p = bus.psubscribe_bytes(&pat("a*")).await.unwrap();
    assert_eq!((bus.channel_count(), bus.pattern_count(), bus.subscription_count()), (2, 1, 4));
    drop(a);
    assert_eq!((bus.channel_count(), bus.subscription_count()), (2, 3), "a still has a subscriber");
    assert_eq!(bus.publish_bytes(&ch("a"), Bytes::new()).await.unwrap(), 2);
    drop(a2);
    assert_eq!(bus.channel_count(), 1, "a's last subscriber is gone");
    drop(p);
    assert_eq!(bus.pattern_count(), 0);
    drop(b);
    assert_eq!((bus.channel_count(), bus.pattern_count(), bus.subscription_count()), (0, 0, 0));
    assert_eq!(bus.buffered_messages(), 0, "dropped subscriptions take their queued messages with them");
    assert_eq!(bus.publish_bytes(&ch("a"), Bytes::new()).await.unwrap(), 0);
}

#[tokio::test]
async fn subscription_churn_leaves_nothing_behind() {
    let bus = InMemoryPubSub::new();
    for n in 0..5_000u32 {
        let sub = bus.subscribe_bytes(&ch(&format!("channel {n}"))).await.unwrap();
        let psub = bus.psubscribe_bytes(&pat(&format!("channel {n}*"))).await.unwrap();
        assert_eq!(bus.publish_bytes(&ch(&format!("channel {n}")), Bytes::from_static(b"x")).await.unwrap(), 2);
        drop((sub, psub));
    }
    assert_eq!((bus.channel_count(), bus.pattern_count(), bus.buffered_messages()), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_dropped_in_another_task_while_waiting_is_cleaned_up() {
    let bus = Arc::new(InMemoryPubSub::new());
    let mut sub = bus.subscribe_bytes(&ch("news")).await.unwrap();
    let waiting = tokio::spawn(async move { sub.next().await.is_some() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    assert_eq!(bus.channel_count(), 0);
    assert_eq!(bus.publish_bytes(&ch("news"), Bytes::new()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_subscriber_is_woken_by_a_publish_from_another_task() {
    let bus = Arc::new(InMemoryPubSub::new());
    let mut sub = bus.subscribe_bytes(&ch("news")).await.unwrap();
    let reader = tokio::spawn(async move { next(&mut sub).await.unwrap().payload });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(bus.publish_bytes(&ch("news"), Bytes::from_static(b"wake")).await.unwrap(), 1);
    assert_eq!(reader.await.unwrap(), Bytes::from_static(b"wake"));
}

#[tokio::test]
async fn dropping_the_bus_ends_every_subscription_after_its_queued_messages() {
    let bus = InMemoryPubSub::new();
    let mut sub = bus.subscribe_bytes(&ch("news")).await.unwrap();
    let mut psub = bus.psubscribe_bytes(&pat("*")).await.unwrap();
    bus.publish_bytes(&ch("news"), Bytes::from_static(b"last")).await.unwrap();
    drop(bus);
    assert_eq!(next(&mut sub).await.unwrap().payload, Bytes::from_static(b"last"));
    assert!(tokio::time::timeout(WAIT, sub.next()).await.unwrap().is_none(), "the stream must end");
    assert_eq!(next(&mut psub).await.unwrap().payload, Bytes::from_static(b"last"));
    assert!(tokio::time::timeout(WAIT, psub.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn the_configured_codec_is_used_and_reported() {
    let bus = InMemoryPubSub::new().with_codec(Codec::msgpack());
    assert_eq!(bus.codec(), Codec::msgpack());
    assert_eq!(InMemoryPubSub::new().codec(), Codec::json());
    let mut raw = bus.subscribe_bytes(&ch("n")).await.unwrap();
    bus.publish(&ch("n"), &[1u8, 2]).await.unwrap();
    assert_eq!(next(&mut raw).await.unwrap().payload[2], b'm', "typed messages must be written as MessagePack");
}

/// Pattern edge cases, as Redis's `stringmatchlen` decides them (matching is on bytes).
#[tokio::test]
async fn patterns_match_exactly_like_redis() {
    let cases: &[(&str, &str, bool)] = &[
        ("*", "anything", true),
        ("a*", "a", true),
        ("a**b", "ab", true),
        ("*.log", "x.log.old", false),
        ("h?llo", "hello", true),
        ("h?llo", "hllo", false),
        ("caf?", "café", false), // `?` is one byte; `é` is two
        ("caf??", "café", true),
        ("h[ae]llo", "hillo", false),
        ("h[^e]llo", "hallo", true),
        ("h[^e]llo", "hello", false),
        ("h[b-a]llo", "hallo", true), // reversed range
        ("[-a]", "-", true),
        ("[]", "]", false),
        ("[^]", "x", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "aXb", false),
        ("[\\]]", "]", true),
        ("[x\\-z]", "y", false),
        ("a[bc", "ab", true), // unclosed class
        ("a[bc", "abc", false),
        ("ab\\", "ab\\", true),
        ("ünï*", "ünïcode", true),
    ];
    let bus = InMemoryPubSub::new();
    for &(glob, channel, expected) in cases {
        let mut sub = bus.psubscribe_bytes(&pat(glob)).await.unwrap();
        let reached = bus.publish_bytes(&ch(channel), Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(reached == 1, expected, "pattern {glob:?} against channel {channel:?}");
        if expected {
            assert_eq!(next(&mut sub).await.unwrap().channel, channel);
        }
    }
    assert_eq!(bus.pattern_count(), 0);
}

#[tokio::test]
async fn a_pathological_pattern_does_not_stall_publishing() {
    let bus = InMemoryPubSub::new();
    let _sub = bus.psubscribe_bytes(&pat(&("a*".repeat(50) + "b"))).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(bus.publish_bytes(&ch(&"a".repeat(4000)), Bytes::new()).await.unwrap(), 0);
    assert!(started.elapsed() < Duration::from_secs(2), "matching took {:?}", started.elapsed());
}
