//! The [`PubSub`] contract suite. Run it with [`pubsub_contract!`](crate::pubsub_contract).
//!
//! Every receive is bounded by a timeout, so a broken implementation fails instead of hanging. Every case works
//! against a real server unchanged and stays under about 2 s.

use std::time::Duration;

use bytes::Bytes;
use cpc_ports::{Channel, ChannelPattern, KvError, Message, PubSub, PubSubExt, Subscription};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

/// Runs every [`PubSub`] contract case as its own `#[tokio::test]`. `$factory` is an async expression yielding
/// a fresh bus behind anything that derefs to it (`Arc<InMemoryPubSub>`, `Arc<dyn PubSub>`, ...); it is
/// evaluated once per case.
///
/// ```
/// mod memory_pubsub {
///     cpc_testkit::pubsub_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemoryPubSub::new()) });
/// }
/// # fn main() {}
/// ```
///
/// `pubsub_contract!(factory, inline)` expands instead to a block that runs every case in turn, inside a test of
/// the caller's (for a server costly to start, such as a Redis Cluster, that the factory may then borrow).
///
/// One list of cases for every bus: what an implementation lacks it declares in
/// [`PubSub::capabilities`](cpc_ports::PubSub::capabilities), and each case that needs it checks instead that the
/// bus refuses it with `KvError::Unsupported` (a Redis Cluster's sharded pub/sub has no patterns). So a new case
/// runs on every implementation, and a capability cannot be claimed without being there, or lacked without a
/// clear refusal.
#[macro_export]
macro_rules! pubsub_contract {
    ($factory:expr $(, $mode:ident)?) => {
        $crate::__contract_cases!(
            $crate::contract::pubsub,
            $factory,
            [
                subscriber_receives_the_payload_byte_for_byte,
                subscription_is_active_when_subscribe_returns,
                empty_and_one_mib_payloads_arrive_byte_for_byte,
                every_subscriber_receives_and_publish_counts_them,
                publish_without_subscribers_reaches_no_one_and_is_not_replayed,
                messages_from_one_publisher_arrive_in_order,
                concurrent_publishers_each_keep_their_order,
                channels_are_isolated,
                channel_subscription_treats_glob_characters_literally,
                typed_messages_round_trip_through_the_codec,
                undecodable_payload_is_a_codec_error_and_the_stream_goes_on,
                dropping_a_subscription_stops_delivery_to_it,
                odd_channel_names_work,
                an_oversized_message_is_too_large_and_nothing_is_sent,
                declared_capabilities_are_what_the_bus_does,
                pattern_subscription_receives_matching_channels_by_their_concrete_name,
                pattern_subscription_ignores_channels_that_do_not_match,
                patterns_follow_redis_glob_syntax,
                channel_and_matching_pattern_both_receive,
                pattern_subscription_is_active_when_psubscribe_returns,
                typed_messages_round_trip_through_a_pattern,
                dropping_a_pattern_subscription_stops_delivery_to_it,
                a_pattern_reports_odd_channel_names_exactly,
            ] $(, $mode)?
        );
    };
}

/// How long a case waits for one message before it fails.
const WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    kind: String,
    n: u32,
    tags: Vec<String>,
}

fn event(case: &str, n: u32) -> Event {
    Event { kind: format!("{case} ✓"), n, tags: vec!["a b".into(), "c\nd".into()] }
}

fn channel(name: &str) -> Channel {
    Channel::new(name).unwrap()
}

fn pattern(glob: &str) -> ChannelPattern {
    ChannelPattern::new(glob).unwrap()
}

/// The next item of `stream`, failing the case if none comes within [`WAIT`] or the stream ends.
async fn next_item<S: Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("{what}: the subscription ended unexpectedly"),
        Err(_) => panic!("{what}: nothing arrived within {WAIT:?}"),
    }
}

/// The next message of `sub`, failing the case on an error item.
async fn next_message(sub: &mut Subscription, what: &str) -> Message {
    match next_item(sub, what).await {
        Ok(message) => message,
        Err(e) => panic!("{what}: expected a message, got the error {e:?}"),
    }
}

/// Publishes `payload` and checks how many subscriptions it reached.
/// Publishes and checks the receiver count: 0 exactly when no subscription exists, otherwise between 1 and the
/// number of subscriptions (backends count receivers their own way: Redis counts subscribed connections, which
/// may each carry several subscriptions). Delivery itself is checked by reading the subscriptions.
async fn publish_expecting<P: PubSub + ?Sized>(bus: &P, channel: &Channel, payload: &[u8], subscriptions: u64) {
    let got = bus.publish_bytes(channel, Bytes::copy_from_slice(payload)).await.unwrap();
    if subscriptions == 0 {
        assert_eq!(got, 0, "publishing to {channel:?} with no subscription must reach no one");
    } else {
        assert!(
            (1..=subscriptions).contains(&got),
            "publishing to {channel:?} with {subscriptions} subscriptions reported {got} receivers"
        );
    }
}

/// A subscriber receives what was published, byte for byte, with the channel's name.
pub async fn subscriber_receives_the_payload_byte_for_byte<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("subscriber_receives_the_payload_byte_for_byte");
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    let payload: Vec<u8> = (0..=255u8).chain(b"\r\n\0 binary \xff".iter().copied()).collect();
    publish_expecting(bus, &ch, &payload, 1).await;
    let message = next_message(&mut sub, "the subscriber").await;
    assert_eq!(message.channel, ch.as_str());
    assert_eq!(message.payload, Bytes::from(payload), "the payload must arrive byte for byte");
}

/// A subscription MUST be active when `subscribe_bytes` returns: a publish right after it (no sleep) reaches it,
/// every time.
pub async fn subscription_is_active_when_subscribe_returns<P: PubSub + ?Sized>(bus: &P) {
    for round in 0..20u32 {
        let ch = channel(&format!("subscription_is_active_when_subscribe_returns.{round}"));
        let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
        publish_expecting(bus, &ch, b"at once", 1).await;
        assert_eq!(next_message(&mut sub, "the new subscription").await.payload, Bytes::from_static(b"at once"));
    }
}

/// A pattern subscription MUST be active when `psubscribe_bytes` returns: a publish right after it (no sleep)
/// reaches it, every time.
pub async fn pattern_subscription_is_active_when_psubscribe_returns<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    for round in 0..20u32 {
        let glob = pattern(&format!("pattern_subscription_is_active_when_psubscribe_returns.{round}.*"));
        let mut psub = bus.psubscribe_bytes(&glob).await.unwrap();
        let matching = channel(&format!("pattern_subscription_is_active_when_psubscribe_returns.{round}.x"));
        publish_expecting(bus, &matching, b"at once", 1).await;
        assert_eq!(next_message(&mut psub, "the new pattern subscription").await.channel, matching.as_str());
    }
}

/// MUST deliver empty payloads, and large ones (1 MiB) byte for byte.
pub async fn empty_and_one_mib_payloads_arrive_byte_for_byte<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("empty_and_one_mib_payloads_arrive_byte_for_byte");
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    publish_expecting(bus, &ch, b"", 1).await;
    let big: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(31) % 251) as u8).collect();
    publish_expecting(bus, &ch, &big, 1).await;
    publish_expecting(bus, &ch, b"", 1).await;
    assert_eq!(next_message(&mut sub, "the empty payload").await.payload, Bytes::new());
    let got = next_message(&mut sub, "the 1 MiB payload").await.payload;
    assert!(got == big, "the 1 MiB payload must arrive byte for byte ({} bytes arrived)", got.len());
    assert_eq!(next_message(&mut sub, "the second empty payload").await.payload, Bytes::new());
}

/// Every current subscriber of the channel receives each message, and `publish_bytes` returns how many did.
pub async fn every_subscriber_receives_and_publish_counts_them<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("every_subscriber_receives_and_publish_counts_them");
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(bus.subscribe_bytes(&ch).await.unwrap());
    }
    publish_expecting(bus, &ch, b"one", 4).await;
    publish_expecting(bus, &ch, b"two", 4).await;
    for (i, sub) in subs.iter_mut().enumerate() {
        for expected in ["one", "two"] {
            let message = next_message(sub, &format!("subscriber {i}")).await;
            assert_eq!(message.payload, expected.as_bytes(), "subscriber {i} must receive every message in order");
        }
    }
}

/// With no subscriber a publish reaches no one (returns 0), and a later subscriber does not get it:
/// delivery is at most once, to the subscribers present at the time.
pub async fn publish_without_subscribers_reaches_no_one_and_is_not_replayed<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("publish_without_subscribers_reaches_no_one_and_is_not_replayed");
    publish_expecting(bus, &ch, b"into the void", 0).await;
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    publish_expecting(bus, &ch, b"marker", 1).await;
    let first = next_message(&mut sub, "the late subscriber").await;
    assert_eq!(first.payload, Bytes::from_static(b"marker"), "a message published before subscribing must not arrive");
}

/// Messages from one publisher arrive in publish order (500 of them, not read until all are published).
pub async fn messages_from_one_publisher_arrive_in_order<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("messages_from_one_publisher_arrive_in_order");
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    for n in 0..500u32 {
        publish_expecting(bus, &ch, n.to_string().as_bytes(), 1).await;
    }
    for n in 0..500u32 {
        let message = next_message(&mut sub, &format!("message {n}")).await;
        assert_eq!(message.payload, n.to_string().as_bytes(), "messages must arrive in publish order");
    }
}

/// Two publishers running at once: the subscriber gets all of both, each publisher's in its own order.
pub async fn concurrent_publishers_each_keep_their_order<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("concurrent_publishers_each_keep_their_order");
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    let publisher = |name: &'static str| {
        let ch = ch.clone();
        async move {
            for n in 0..200u32 {
                tokio::task::yield_now().await;
                let reached = bus.publish_bytes(&ch, Bytes::from(format!("{name}{n}"))).await.unwrap();
                assert_eq!(reached, 1, "each publish must reach the one subscriber");
            }
        }
    };
    futures::join!(publisher("a"), publisher("b"));
    let (mut next_a, mut next_b) = (0u32, 0u32);
    for _ in 0..400 {
        let message = next_message(&mut sub, "the subscriber of two publishers").await;
        let text = String::from_utf8(message.payload.to_vec()).unwrap();
        let (name, n) = text.split_at(1);
        let n: u32 = n.parse().unwrap();
        let expected = if name == "a" { &mut next_a } else { &mut next_b };
        assert_eq!(n, *expected, "publisher {name}'s messages must arrive in its publish order");
        *expected += 1;
    }
    assert_eq!((next_a, next_b), (200, 200));
}

/// A subscriber of one channel receives nothing published on another.
pub async fn channels_are_isolated<P: PubSub + ?Sized>(bus: &P) {
    let (a, b) = (channel("channels_are_isolated.a"), channel("channels_are_isolated.b"));
    let mut sub_a = bus.subscribe_bytes(&a).await.unwrap();
    let mut sub_b = bus.subscribe_bytes(&b).await.unwrap();
    publish_expecting(bus, &b, b"for b", 1).await;
    publish_expecting(bus, &a, b"for a", 1).await;
    publish_expecting(bus, &channel("channels_are_isolated"), b"for no one", 0).await;
    let got_a = next_message(&mut sub_a, "subscriber of a").await;
    assert_eq!((got_a.channel.as_str(), &got_a.payload[..]), (a.as_str(), &b"for a"[..]), "a must only get a's");
    let got_b = next_message(&mut sub_b, "subscriber of b").await;
    assert_eq!((got_b.channel.as_str(), &got_b.payload[..]), (b.as_str(), &b"for b"[..]), "b must only get b's");
}

/// A pattern subscription receives messages of every matching channel, each tagged with the concrete channel.
pub async fn pattern_subscription_receives_matching_channels_by_their_concrete_name<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let prefix = "pattern_subscription_receives_matching_channels_by_their_concrete_name";
    let mut sub = bus.psubscribe_bytes(&pattern(&format!("{prefix}.*"))).await.unwrap();
    let names = [format!("{prefix}.eu"), format!("{prefix}.us.east"), format!("{prefix}.")];
    for (i, name) in names.iter().enumerate() {
        publish_expecting(bus, &channel(name), i.to_string().as_bytes(), 1).await;
    }
    for (i, name) in names.iter().enumerate() {
        let message = next_message(&mut sub, "the pattern subscriber").await;
        assert_eq!(&message.channel, name, "a pattern message must carry the concrete channel name");
        assert_eq!(message.payload, i.to_string().as_bytes());
    }
}

/// A pattern subscription receives nothing from channels the pattern does not match.
pub async fn pattern_subscription_ignores_channels_that_do_not_match<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let prefix = "pattern_subscription_ignores_channels_that_do_not_match";
    let mut sub = bus.psubscribe_bytes(&pattern(&format!("{prefix}.*.log"))).await.unwrap();
    for miss in [format!("{prefix}.x.logs"), format!("{prefix}.log"), format!("x{prefix}.a.log"), prefix.to_owned()] {
        publish_expecting(bus, &channel(&miss), b"miss", 0).await;
    }
    let hit = channel(&format!("{prefix}.a.b.log"));
    publish_expecting(bus, &hit, b"hit", 1).await;
    let message = next_message(&mut sub, "the pattern subscriber").await;
    assert_eq!((message.channel.as_str(), &message.payload[..]), (hit.as_str(), &b"hit"[..]));
}

/// Patterns use Redis glob syntax: `?` one character, `[ae]` a set, `[^e]` a negated set, `[a-c]` a range,
/// `\*` a literal star, `*` any run.
pub async fn patterns_follow_redis_glob_syntax<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let p = "patterns_follow_redis_glob_syntax";
    let globs = ["h?llo", "h[ae]llo", "h[^e]llo", "h[a-c]llo", "a\\*b", "news.*"];
    let mut subs = Vec::new();
    for glob in globs {
        subs.push(bus.psubscribe_bytes(&pattern(&format!("{p}:{glob}"))).await.unwrap());
    }
    // (channel, how many of the patterns above match it)
    let published = [
        ("hello", 2),
        ("hallo", 4),
        ("hcllo", 3),
        ("hllo", 0),
        ("heello", 0),
        ("a*b", 1),
        ("aXb", 0),
        ("news.sport.eu", 1),
        ("news", 0),
    ];
    for (name, reached) in published {
        publish_expecting(bus, &channel(&format!("{p}:{name}")), name.as_bytes(), reached).await;
    }
    let expected: [&[&str]; 6] = [
        &["hello", "hallo", "hcllo"],
        &["hello", "hallo"],
        &["hallo", "hcllo"],
        &["hallo", "hcllo"],
        &["a*b"],
        &["news.sport.eu"],
    ];
    for ((glob, sub), names) in globs.iter().zip(&mut subs).zip(expected) {
        for name in names {
            let message = next_message(sub, &format!("the subscriber of {glob:?}")).await;
            assert_eq!(message.channel, format!("{p}:{name}"), "pattern {glob:?} must receive exactly its matches");
        }
    }
}

/// A plain (non-pattern) subscription to a channel whose name contains glob characters matches that name only.
pub async fn channel_subscription_treats_glob_characters_literally<P: PubSub + ?Sized>(bus: &P) {
    let literal = channel("channel_subscription_treats_glob_characters_literally.*[a-z]?");
    let mut sub = bus.subscribe_bytes(&literal).await.unwrap();
    let other = channel("channel_subscription_treats_glob_characters_literally.xyz");
    publish_expecting(bus, &other, b"not for the literal channel", 0).await;
    publish_expecting(bus, &literal, b"for the literal channel", 1).await;
    let message = next_message(&mut sub, "the literal subscriber").await;
    assert_eq!(message.payload, Bytes::from_static(b"for the literal channel"));
}

/// A message on a channel reaches both the channel's subscriber and a matching pattern's, and counts both.
pub async fn channel_and_matching_pattern_both_receive<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let ch = channel("channel_and_matching_pattern_both_receive.orders");
    let mut direct = bus.subscribe_bytes(&ch).await.unwrap();
    let mut by_pattern = bus.psubscribe_bytes(&pattern("channel_and_matching_pattern_both_receive.*")).await.unwrap();
    publish_expecting(bus, &ch, b"order 1", 2).await;
    for (name, sub) in [("channel", &mut direct), ("pattern", &mut by_pattern)] {
        let message = next_message(sub, &format!("the {name} subscriber")).await;
        assert_eq!(message.channel, ch.as_str());
        assert_eq!(message.payload, Bytes::from_static(b"order 1"), "the {name} subscriber must get the message");
    }
}

/// The typed [`PubSubExt`] methods round-trip a struct through the bus's codec on a channel.
pub async fn typed_messages_round_trip_through_the_codec<P: PubSub + ?Sized>(bus: &P) {
    let case = "typed_messages_round_trip_through_the_codec";
    let ch = channel(&format!("{case}.events"));
    let mut sub = bus.subscribe::<Event>(&ch).await.unwrap();
    for n in [1, 2] {
        assert_eq!(bus.publish(&ch, &event(case, n)).await.unwrap(), 1, "one subscription, one receiver");
    }
    for n in [1, 2] {
        assert_eq!(next_item(&mut sub, "the typed subscriber").await.unwrap(), event(case, n));
    }
}

/// The typed [`PubSubExt`] methods round-trip a struct through the bus's codec on a pattern subscription too.
pub async fn typed_messages_round_trip_through_a_pattern<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let case = "typed_messages_round_trip_through_a_pattern";
    let ch = channel(&format!("{case}.events"));
    let mut psub = bus.psubscribe::<Event>(&pattern(&format!("{case}.*"))).await.unwrap();
    for n in [1, 2] {
        assert_eq!(bus.publish(&ch, &event(case, n)).await.unwrap(), 1, "one pattern subscription, one receiver");
    }
    for n in [1, 2] {
        assert_eq!(next_item(&mut psub, "the typed pattern subscriber").await.unwrap(), event(case, n));
    }
}

/// A payload that does not decode is one `Err(KvError::Codec)` item on a typed subscription, and the
/// messages after it still arrive.
pub async fn undecodable_payload_is_a_codec_error_and_the_stream_goes_on<P: PubSub + ?Sized>(bus: &P) {
    let case = "undecodable_payload_is_a_codec_error_and_the_stream_goes_on";
    let ch = channel(case);
    let mut sub = bus.subscribe::<Event>(&ch).await.unwrap();
    publish_expecting(bus, &ch, b"{\"kind\":\"plain JSON from another program\"}", 1).await;
    assert_eq!(bus.publish(&ch, &"a string, not an Event").await.unwrap(), 1);
    assert_eq!(bus.publish(&ch, &event(case, 3)).await.unwrap(), 1);
    for what in ["foreign bytes", "a value of another type"] {
        let item = next_item(&mut sub, what).await;
        assert!(matches!(item, Err(KvError::Codec(_))), "{what} must be a Codec error item, got {item:?}");
    }
    let item = next_item(&mut sub, "the message after the bad ones").await;
    assert_eq!(item.unwrap(), event(case, 3), "the stream must go on after an undecodable payload");
}

/// Dropping a subscription unsubscribes it: publishes stop counting (and reaching) it, others keep receiving.
/// (An adapter may unsubscribe in the background, so the count is given up to a second to drop.)
pub async fn dropping_a_subscription_stops_delivery_to_it<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("dropping_a_subscription_stops_delivery_to_it");
    let kept = bus.subscribe_bytes(&ch).await.unwrap();
    let dropped = bus.subscribe_bytes(&ch).await.unwrap();
    dropping_stops_delivery(bus, &ch, kept, dropped, 2).await;
}

/// Dropping a pattern subscription unsubscribes it like a channel subscription.
pub async fn dropping_a_pattern_subscription_stops_delivery_to_it<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let ch = channel("dropping_a_pattern_subscription_stops_delivery_to_it");
    let kept = bus.subscribe_bytes(&ch).await.unwrap();
    let dropped =
        bus.psubscribe_bytes(&pattern("dropping_a_pattern_subscription_stops_delivery_to_it*")).await.unwrap();
    dropping_stops_delivery(bus, &ch, kept, dropped, 2).await;
}

/// Publishes on `ch`, drops `dropped`, and checks that publishes stop reaching it (the count falls to 1 within
/// [`WAIT`]) while `kept` and a fresh subscription receive.
async fn dropping_stops_delivery<P: PubSub + ?Sized>(
    bus: &P,
    ch: &Channel,
    mut kept: Subscription,
    dropped: Subscription,
    subscriptions: u64,
) {
    publish_expecting(bus, ch, b"before", subscriptions).await;
    drop(dropped);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut published_after = 0;
    loop {
        let reached = bus.publish_bytes(ch, Bytes::from_static(b"after")).await.unwrap();
        published_after += 1;
        if reached == 1 {
            break;
        }
        assert!(reached <= subscriptions, "a publish cannot reach more subscriptions than exist: {reached}");
        assert!(tokio::time::Instant::now() < deadline, "dropped subscriptions are still counted after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(next_message(&mut kept, "the kept subscriber").await.payload, Bytes::from_static(b"before"));
    for _ in 0..published_after {
        assert_eq!(next_message(&mut kept, "the kept subscriber").await.payload, Bytes::from_static(b"after"));
    }
    let mut fresh = bus.subscribe_bytes(ch).await.unwrap();
    publish_expecting(bus, ch, b"again", 2).await;
    assert_eq!(next_message(&mut fresh, "a new subscriber").await.payload, Bytes::from_static(b"again"));
}

/// The odd channel names [`odd_channel_names_work`] and [`a_pattern_reports_odd_channel_names_exactly`] use.
fn odd_names(case: &str) -> [String; 5] {
    [
        format!("{case} ünïcödé 频道 🔔"),
        format!("{case} with  spaces "),
        format!("{case}\nnew\r\nlines\t"),
        format!("{case}:{{json}}=\"quoted\"/%20"),
        format!("{case} {}", "k".repeat(1024)),
    ]
}

/// Channel names with unicode, spaces, newlines, glob-free punctuation and 1 KiB of text work like any other.
pub async fn odd_channel_names_work<P: PubSub + ?Sized>(bus: &P) {
    for name in &odd_names("odd_channel_names_work") {
        let ch = channel(name);
        let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
        publish_expecting(bus, &ch, name.as_bytes(), 1).await;
        let message = next_message(&mut sub, &format!("the subscriber of {name:?}")).await;
        assert_eq!((&message.channel, &message.payload[..]), (name, name.as_bytes()), "odd name {name:?}");
    }
}

/// A pattern subscription reports odd channel names exactly as published.
pub async fn a_pattern_reports_odd_channel_names_exactly<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let case = "a_pattern_reports_odd_channel_names_exactly";
    let mut catch_all = bus.psubscribe_bytes(&pattern(&format!("{case}*"))).await.unwrap();
    for name in &odd_names(case) {
        publish_expecting(bus, &channel(name), name.as_bytes(), 1).await;
        let message = next_message(&mut catch_all, &format!("the pattern subscriber, for {name:?}")).await;
        assert_eq!((&message.channel, &message.payload[..]), (name, name.as_bytes()), "odd name {name:?}");
    }
}

/// Whether the bus declares pattern subscriptions; when it does not, checks that it refuses one with
/// [`KvError::Unsupported`] at once (never accepts it and stays silent). Each pattern case starts with it.
async fn patterns<P: PubSub + ?Sized>(bus: &P) -> bool {
    if bus.capabilities().patterns {
        return true;
    }
    match bus.psubscribe_bytes(&pattern("news.*")).await {
        Err(KvError::Unsupported { .. }) => false,
        other => panic!("a bus without patterns must refuse a pattern subscription as Unsupported, got {other:?}"),
    }
}

/// What [`PubSub::capabilities`] declares is what the bus does: a bus with
/// patterns accepts a pattern subscription that receives; one without refuses it as [`KvError::Unsupported`].
pub async fn declared_capabilities_are_what_the_bus_does<P: PubSub + ?Sized>(bus: &P) {
    if !patterns(bus).await {
        return;
    }
    let mut sub = bus.psubscribe_bytes(&pattern("declared_capabilities.*")).await.expect("patterns are declared");
    publish_expecting(bus, &channel("declared_capabilities.x"), b"x", 1).await;
    let message = next_message(&mut sub, "a pattern subscription of a bus declaring patterns").await;
    assert_eq!(&message.payload[..], b"x");
}

/// A message over [`cpc_ports::MAX_PAYLOAD_BYTES`] is [`KvError::TooLarge`] and reaches no subscriber: the next
/// message a subscriber gets is the one published after it.
pub async fn an_oversized_message_is_too_large_and_nothing_is_sent<P: PubSub + ?Sized>(bus: &P) {
    let ch = channel("an_oversized_message_is_too_large_and_nothing_is_sent");
    let mut sub = bus.subscribe_bytes(&ch).await.unwrap();
    let oversized = Bytes::from(vec![7u8; cpc_ports::MAX_PAYLOAD_BYTES + 1]);
    match bus.publish_bytes(&ch, oversized).await {
        Err(KvError::TooLarge { size, max }) => {
            assert_eq!((size, max), (cpc_ports::MAX_PAYLOAD_BYTES + 1, cpc_ports::MAX_PAYLOAD_BYTES));
        }
        other => panic!("an oversized message must be TooLarge, got {other:?}"),
    }
    publish_expecting(bus, &ch, b"after", 1).await;
    let message = next_message(&mut sub, "the subscriber").await;
    assert_eq!(message.payload, Bytes::from_static(b"after"), "the refused message was never sent");
}
