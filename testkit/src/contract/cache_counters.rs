//! The [`Cache`] contract, counters and expiry part: `increment_by`, `expire`/`touch`, `get_and_delete`. Run by
//! [`cache_contract!`](crate::cache_contract) with the other cases.

use std::time::Duration;

use bytes::Bytes;
use cpc_ports::{Cache, CacheExt, CodecError, KeyTtl, KvError};
use tokio::time::sleep;

use super::cache::{PAST_SHORT_TTL, SHORT_TTL, key, namespace};
use super::concurrently;

/// 32 tasks incrementing one key 10 times each: every increment counts, and each sees a different value.
pub async fn increments_from_many_tasks_sum_exactly<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}k", namespace("increments_from_many_tasks_sum_exactly")));
    let seen = concurrently(32, |_| {
        let k = k.clone();
        async move {
            let mut seen = Vec::with_capacity(10);
            for _ in 0..10 {
                seen.push(port.increment(&k, None).await.unwrap());
            }
            seen
        }
    })
    .await;
    let mut seen: Vec<i64> = seen.into_iter().flatten().collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=320).collect::<Vec<_>>(), "320 atomic increments answer 1..=320, each once");
    assert_eq!(port.get_counter(&k).await.unwrap(), Some(320), "the counter holds the sum");
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::from_static(b"320")), "stored as decimal text");
    assert_eq!(port.increment_by(&k, -400, None).await.unwrap(), -80, "a negative delta decrements");
}

/// `increment_by` creates a missing key with the TTL given (or the default), and leaves an existing key's TTL
/// alone; a key whose TTL passed starts again from 0.
pub async fn increment_by_sets_the_ttl_only_when_it_creates_the_key<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("increment_by_sets_the_ttl_only_when_it_creates_the_key");
    let (short, set, default) = (key(format!("{ns}short")), key(format!("{ns}set")), key(format!("{ns}default")));
    assert_eq!(port.increment_by(&short, 5, Some(SHORT_TTL)).await.unwrap(), 5, "a missing key counts as 0");
    assert_eq!(port.increment_by(&short, 2, Some(Duration::from_secs(60))).await.unwrap(), 7);
    match port.ttl(&short).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= SHORT_TTL, "an increment keeps the TTL of creation: {left:?}"),
        other => panic!("a counter created with a TTL must expire, got {other:?}"),
    }
    sleep(PAST_SHORT_TTL).await;
    assert_eq!(port.get_counter(&short).await.unwrap(), None, "the TTL of creation applies");
    assert_eq!(port.increment_by(&short, 3, Some(Duration::from_secs(60))).await.unwrap(), 3, "expired: from 0");
    match port.ttl(&short).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left > SHORT_TTL, "re-created with the new TTL: {left:?}"),
        other => panic!("a re-created counter must expire, got {other:?}"),
    }

    port.set_bytes(&set, Bytes::from_static(b"40"), Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(port.increment_by(&set, 2, Some(SHORT_TTL)).await.unwrap(), 42, "a value set as text counts");
    assert_eq!(port.get_bytes(&set).await.unwrap(), Some(Bytes::from_static(b"42")));
    match port.ttl(&set).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left > Duration::from_secs(20), "an existing key keeps its TTL: {left:?}"),
        other => panic!("the key must keep its TTL, got {other:?}"),
    }

    assert_eq!(port.increment(&default, None).await.unwrap(), 1);
    assert!(matches!(port.ttl(&default).await.unwrap(), KeyTtl::ExpiresIn(_)), "None: the default TTL applies");
}

/// A zero TTL is a validation error for `increment_by`, and nothing is created or changed.
pub async fn increment_by_refuses_a_zero_ttl<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("increment_by_refuses_a_zero_ttl");
    let (missing, present) = (key(format!("{ns}missing")), key(format!("{ns}present")));
    let err = port.increment_by(&missing, 1, Some(Duration::ZERO)).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "a zero TTL must be a Validation error, got {err:?}");
    assert!(!port.exists(&missing).await.unwrap(), "a refused increment creates nothing");
    port.increment_by(&present, 4, None).await.unwrap();
    assert!(port.increment_by(&present, 1, Some(Duration::ZERO)).await.is_err());
    assert_eq!(port.get_counter(&present).await.unwrap(), Some(4), "a refused increment changes nothing");
}

/// A value that is not a decimal `i64` (codec bytes, `+5`, `007`, `-0`, spaces, empty, beyond `i64`) is a
/// `Codec(NotAnInteger)` error, for `increment_by` and `get_counter`, and stays as it was.
pub async fn incrementing_a_non_integer_is_a_codec_error_and_changes_nothing<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("incrementing_a_non_integer_is_a_codec_error_and_changes_nothing");
    let typed = key(format!("{ns}typed"));
    port.set(&typed, &5_i64, None).await.unwrap();
    let stored = port.get_bytes(&typed).await.unwrap().unwrap();
    let mut cases = vec![(typed, stored)];
    let odd: [&[u8]; 11] =
        [b"abc", b"+5", b"007", b"-0", b" 5", b"5 ", b"", b"1.5", b"9223372036854775808", b"\xff1", b"1\n"];
    for (i, bytes) in odd.into_iter().enumerate() {
        let k = key(format!("{ns}{i}"));
        port.set_bytes(&k, Bytes::from_static(bytes), None).await.unwrap();
        cases.push((k, Bytes::from_static(bytes)));
    }
    for (k, before) in cases {
        match port.increment_by(&k, 1, None).await {
            Err(KvError::Codec(CodecError::NotAnInteger)) => {}
            other => panic!("incrementing {before:?} must be Codec(NotAnInteger), got {other:?}"),
        }
        assert_eq!(port.get_bytes(&k).await.unwrap(), Some(before.clone()), "a refused increment changes nothing");
        let err = port.get_counter(&k).await.unwrap_err();
        assert!(matches!(err, KvError::Codec(CodecError::NotAnInteger)), "get_counter of {before:?}: {err:?}");
    }
}

/// Counters are exact over the whole `i64` range (no trip through a floating-point number), and a sum beyond
/// it is a `Codec(CounterOverflow)` error that leaves the value as it was.
pub async fn counters_are_exact_and_overflow_is_an_error<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("counters_are_exact_and_overflow_is_an_error");
    let (big, top, bottom) = (key(format!("{ns}big")), key(format!("{ns}top")), key(format!("{ns}bottom")));
    port.set_bytes(&big, Bytes::from_static(b"9007199254740991"), None).await.unwrap();
    assert_eq!(port.increment_by(&big, 2, None).await.unwrap(), 9_007_199_254_740_993, "exact beyond 2^53");
    assert_eq!(port.increment_by(&top, i64::MAX - 1, None).await.unwrap(), i64::MAX - 1);
    assert_eq!(port.increment(&top, None).await.unwrap(), i64::MAX, "up to i64::MAX exactly");
    match port.increment(&top, None).await {
        Err(KvError::Codec(CodecError::CounterOverflow)) => {}
        other => panic!("incrementing i64::MAX must be Codec(CounterOverflow), got {other:?}"),
    }
    assert_eq!(port.get_counter(&top).await.unwrap(), Some(i64::MAX), "an overflowing increment changes nothing");
    port.set_bytes(&bottom, Bytes::from_static(b"-9223372036854775808"), None).await.unwrap();
    assert_eq!(port.get_counter(&bottom).await.unwrap(), Some(i64::MIN), "i64::MIN reads as a counter");
    let err = port.increment_by(&bottom, -1, None).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(CodecError::CounterOverflow)), "below i64::MIN: {err:?}");
    assert_eq!(port.increment_by(&bottom, i64::MAX, None).await.unwrap(), -1, "a large delta back into range");
}

/// `expire` sets a live key's TTL (longer or shorter), reports `false` for a missing or expired key without
/// creating it, and refuses a zero TTL; `touch` resets the TTL to the default.
pub async fn expire_resets_the_ttl_of_live_keys_only<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("expire_resets_the_ttl_of_live_keys_only");
    let (k, gone, missing) = (key(format!("{ns}k")), key(format!("{ns}gone")), key(format!("{ns}missing")));
    port.set_bytes(&k, Bytes::from_static(b"v"), Some(SHORT_TTL)).await.unwrap();
    port.set_bytes(&gone, Bytes::from_static(b"v"), Some(SHORT_TTL)).await.unwrap();
    assert!(port.expire(&k, Some(Duration::from_secs(30))).await.unwrap(), "expire on a live key reports true");
    sleep(PAST_SHORT_TTL).await;
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::from_static(b"v")), "extended, value unchanged");
    match port.ttl(&k).await.unwrap() {
        KeyTtl::ExpiresIn(left) => {
            assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(25), "the new TTL: {left:?}");
        }
        other => panic!("an extended key must expire, got {other:?}"),
    }
    assert!(!port.expire(&gone, Some(Duration::from_secs(30))).await.unwrap(), "an expired key cannot be extended");
    assert!(!port.expire(&missing, None).await.unwrap(), "expire on a missing key reports false");
    assert!(!port.exists(&missing).await.unwrap(), "expire creates nothing");
    let err = port.expire(&k, Some(Duration::ZERO)).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "a zero TTL must be a Validation error, got {err:?}");
    assert!(port.exists(&k).await.unwrap(), "a refused expire leaves the key");
    assert!(port.touch(&k).await.unwrap(), "touch on a live key reports true");
    assert!(matches!(port.ttl(&k).await.unwrap(), KeyTtl::ExpiresIn(_)), "touch applies the default TTL");
    assert!(!port.touch(&missing).await.unwrap(), "touch on a missing key reports false");
    assert!(port.expire(&k, Some(SHORT_TTL)).await.unwrap(), "expire may shorten the TTL");
    sleep(PAST_SHORT_TTL).await;
    assert_eq!(port.get_bytes(&k).await.unwrap(), None, "the shortened TTL applies");
}

/// Of 32 concurrent `get_and_delete` callers on one key, exactly one gets the value; the key is gone after.
/// Missing and expired keys answer `None`; the typed form decodes.
pub async fn get_and_delete_hands_the_value_to_exactly_one_caller<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("get_and_delete_hands_the_value_to_exactly_one_caller");
    let (k, typed, expired) = (key(format!("{ns}k")), key(format!("{ns}typed")), key(format!("{ns}expired")));
    port.set_bytes(&k, Bytes::from_static(b"only once"), None).await.unwrap();
    let got = concurrently(32, |_| {
        let k = k.clone();
        async move { port.get_and_delete_bytes(&k).await.unwrap() }
    })
    .await;
    let winners: Vec<_> = got.into_iter().flatten().collect();
    assert_eq!(winners, vec![Bytes::from_static(b"only once")], "exactly one of 32 callers gets the value");
    assert!(!port.exists(&k).await.unwrap(), "the key is gone");
    assert_eq!(port.get_and_delete_bytes(&k).await.unwrap(), None, "a missing key answers None");
    port.set(&typed, &vec!["a".to_owned(), "ü".to_owned()], None).await.unwrap();
    assert_eq!(port.get_and_delete::<Vec<String>>(&typed).await.unwrap(), Some(vec!["a".into(), "ü".into()]));
    assert_eq!(port.get_and_delete::<Vec<String>>(&typed).await.unwrap(), None, "typed, then gone");
    port.set_bytes(&expired, Bytes::from_static(b"v"), Some(SHORT_TTL)).await.unwrap();
    sleep(PAST_SHORT_TTL).await;
    assert_eq!(port.get_and_delete_bytes(&expired).await.unwrap(), None, "an expired key answers None");
}
