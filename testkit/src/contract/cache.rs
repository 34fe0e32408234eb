//! The [`Cache`] contract: every implementation (Redis, PostgreSQL, in-memory, decorated, `dyn Cache` of any)
//! must pass these cases, the counter and expiry cases of [`cache_counters`](super::cache_counters) and the
//! `get_or_set` cases of [`cache_get_or_set`](super::cache_get_or_set) included (re-exported here).
//!
//! Run them all with [`cache_contract!`](crate::cache_contract):
//!
//! ```
//! mod memory_cache {
//!     use cpc_testkit::contract::cache::COMPUTE_WAIT;
//!     cpc_testkit::cache_contract!(async {
//!         std::sync::Arc::new(cpc_testkit::memory::InMemoryCache::default().with_compute_wait(COMPUTE_WAIT))
//!     });
//! }
//! # fn main() {}
//! ```
//!
//! Each case uses keys under its own random namespace and real (short) sleeps for expiry, so it runs unchanged
//! against a shared real server. A cache built with a short compute wait ([`COMPUTE_WAIT`], 1 s) keeps the
//! `get_or_set` timeout case short; one left at the default 10 s passes it too, 10 s later.

pub use super::cache_counters::*;
pub use super::cache_get_or_set::*;
use super::concurrently;
use std::time::Duration;

use bytes::Bytes;
use cpc_ports::{Cache, CacheExt, CacheKey, KeyTtl, KvError};
use serde::{Deserialize, Serialize};
use tokio::time::sleep;

/// Runs every case of the [`Cache`] contract as a `#[tokio::test]`. `$factory` is an async expression yielding
/// a fresh cache behind anything that derefs to it (`Arc<InMemoryCache>`, `Arc<dyn Cache>`).
/// `cache_contract!(factory, inline)` expands instead to a block that runs every case in turn, inside a test of
/// the caller's (for a server costly to start, such as a Redis Cluster, that the factory may then borrow).
/// Build the cache with a compute wait of [`COMPUTE_WAIT`] (`with_compute_wait`) to keep the `get_or_set`
/// timeout case short.
#[macro_export]
macro_rules! cache_contract {
    ($factory:expr $(, $mode:ident)?) => {
        $crate::__contract_cases!(
            $crate::contract::cache,
            $factory,
            [
                missing_key_reads_as_none,
                set_then_get_returns_the_exact_bytes_for_odd_keys,
                empty_value_is_stored_as_empty_not_missing,
                one_mebibyte_value_round_trips,
                set_replaces_value_and_ttl,
                default_ttl_applies_when_none_is_given,
                explicit_ttl_expires_the_key,
                ttl_never_exceeds_the_ttl_set_and_is_missing_for_absent_keys,
                zero_ttl_is_refused_and_nothing_is_written,
                oversized_value_is_refused_and_previous_value_kept,
                set_if_absent_is_atomic_under_contention,
                set_if_absent_takes_an_expired_key_but_not_a_live_one,
                get_many_keeps_order_and_marks_missing_keys,
                set_many_writes_every_entry_with_the_ttl,
                set_many_checks_every_size_before_writing_any,
                delete_and_exists_agree_with_get,
                delete_prefix_takes_the_prefix_literally,
                delete_prefix_refuses_an_empty_prefix,
                typed_values_round_trip_through_the_codec,
                foreign_bytes_are_a_codec_error_not_a_value,
                get_or_set_returns_a_stored_value_without_computing,
                get_or_set_computes_once_for_concurrent_callers,
                a_failing_computation_runs_once_and_every_waiter_gets_its_error,
                a_waiter_gives_up_after_the_compute_wait_with_a_timeout,
                increments_from_many_tasks_sum_exactly,
                increment_by_sets_the_ttl_only_when_it_creates_the_key,
                increment_by_refuses_a_zero_ttl,
                incrementing_a_non_integer_is_a_codec_error_and_changes_nothing,
                counters_are_exact_and_overflow_is_an_error,
                expire_resets_the_ttl_of_live_keys_only,
                get_and_delete_hands_the_value_to_exactly_one_caller,
            ] $(, $mode)?
        );
    };
}

const MIB: usize = 1024 * 1024;
/// A TTL short enough to wait out in a test, and the sleep that surely outlasts it.
pub(super) const SHORT_TTL: Duration = Duration::from_millis(150);
pub(super) const PAST_SHORT_TTL: Duration = Duration::from_millis(400);

/// A namespace no other case or run shares: `cpc-contract:<case>:<random>:`.
pub(super) fn namespace(case: &str) -> String {
    format!("cpc-contract:{case}:{}:", uuid::Uuid::new_v4().simple())
}

pub(super) fn key(text: impl Into<String>) -> CacheKey {
    let text = text.into();
    CacheKey::new(text.clone()).unwrap_or_else(|e| panic!("test key {text:?} should be valid: {e}"))
}

/// Bytes that are not UTF-8 and include NUL, so a backend that treats values as text fails.
fn binary(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8 ^ 0xA5).collect::<Vec<u8>>().into()
}

/// A key never set reads as absent everywhere: `None`, not existing, `Missing` TTL, nothing to delete.
pub async fn missing_key_reads_as_none<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}never-set", namespace("missing_key_reads_as_none")));
    assert_eq!(port.get_bytes(&k).await.unwrap(), None, "a never-set key must read as None");
    assert!(!port.exists(&k).await.unwrap(), "a never-set key must not exist");
    assert_eq!(port.ttl(&k).await.unwrap(), KeyTtl::Missing, "a never-set key has a Missing TTL");
    assert!(!port.delete(&k).await.unwrap(), "deleting a never-set key must report it did not exist");
}

/// Whatever the key (unicode, spaces, newlines, glob characters, 1 KiB, 4 KiB), the exact bytes come back.
pub async fn set_then_get_returns_the_exact_bytes_for_odd_keys<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("set_then_get_returns_the_exact_bytes_for_odd_keys");
    let mut keys: Vec<String> = [
        "plain",
        "ünïcödé ключ 🔑 鍵",
        "with spaces  and\ttabs",
        "new\nline\r\nand cr",
        "glob*chars?[ab]\\",
        "trailing space ",
        "nul\0inside",
    ]
    .iter()
    .map(|s| format!("{ns}{s}"))
    .collect();
    keys.push(format!("{ns}{}", "k".repeat(1024)));
    keys.push(format!("{ns}{}", "é".repeat((4096 - ns.len()) / 2)));
    for (i, text) in keys.iter().enumerate() {
        let k = key(text.clone());
        let value = binary(100 + i);
        port.set_bytes(&k, value.clone(), None).await.unwrap();
        assert_eq!(port.get_bytes(&k).await.unwrap(), Some(value), "bytes under key {text:?} must round trip");
    }
    // Keys that differ only in their odd part are different keys.
    for (i, text) in keys.iter().enumerate() {
        assert_eq!(port.get_bytes(&key(text.clone())).await.unwrap(), Some(binary(100 + i)), "key {text:?}");
    }
}

/// An empty value is a value: it reads back as `Some(empty)` and exists.
pub async fn empty_value_is_stored_as_empty_not_missing<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}empty", namespace("empty_value_is_stored_as_empty_not_missing")));
    port.set_bytes(&k, Bytes::new(), None).await.unwrap();
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::new()), "an empty value must read back as empty");
    assert!(port.exists(&k).await.unwrap(), "a key holding an empty value exists");
    assert_eq!(port.get_many_bytes(std::slice::from_ref(&k)).await.unwrap(), vec![Some(Bytes::new())]);
}

/// A 1 MiB binary value round trips intact.
pub async fn one_mebibyte_value_round_trips<P: Cache + ?Sized>(port: &P) {
    assert!(port.max_value_bytes() >= MIB, "a cache must accept values of at least 1 MiB");
    let k = key(format!("{}big", namespace("one_mebibyte_value_round_trips")));
    let value = binary(MIB);
    port.set_bytes(&k, value.clone(), None).await.unwrap();
    let back = port.get_bytes(&k).await.unwrap().expect("the 1 MiB value must be stored");
    assert_eq!(back.len(), MIB, "length of the 1 MiB value");
    assert!(back == value, "the 1 MiB value must come back byte for byte");
}

/// Setting an existing key replaces both its value and its TTL (Redis `SET` semantics).
pub async fn set_replaces_value_and_ttl<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}k", namespace("set_replaces_value_and_ttl")));
    port.set_bytes(&k, Bytes::from_static(b"first"), Some(Duration::from_secs(60))).await.unwrap();
    port.set_bytes(&k, Bytes::from_static(b"second"), Some(Duration::from_secs(2))).await.unwrap();
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::from_static(b"second")), "the last write wins");
    match port.ttl(&k).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_secs(2), "the new TTL replaces the old: {left:?}"),
        other => panic!("a key set with a TTL must report ExpiresIn, got {other:?}"),
    }
    port.set_bytes(&k, Bytes::from_static(b"short"), Some(SHORT_TTL)).await.unwrap();
    sleep(PAST_SHORT_TTL).await;
    assert_eq!(port.get_bytes(&k).await.unwrap(), None, "the replacing short TTL must apply");
}

/// Without a TTL, the cache's default TTL applies: the key expires some time, it is not persistent.
pub async fn default_ttl_applies_when_none_is_given<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("default_ttl_applies_when_none_is_given");
    let k = key(format!("{ns}k"));
    port.set_bytes(&k, Bytes::from_static(b"v"), None).await.unwrap();
    match port.ttl(&k).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left > Duration::ZERO, "the default TTL must leave time: {left:?}"),
        other => panic!("set without a TTL must use the default TTL, got {other:?}"),
    }
    let many = key(format!("{ns}many"));
    port.set_many_bytes(vec![(many.clone(), Bytes::from_static(b"v"))], None).await.unwrap();
    assert!(matches!(port.ttl(&many).await.unwrap(), KeyTtl::ExpiresIn(_)), "set_many uses the default TTL too");
    let nx = key(format!("{ns}nx"));
    assert!(port.set_if_absent_bytes(&nx, Bytes::from_static(b"v"), None).await.unwrap());
    assert!(matches!(port.ttl(&nx).await.unwrap(), KeyTtl::ExpiresIn(_)), "set_if_absent uses the default TTL too");
}

/// A key set with a short TTL is there before it runs out and gone everywhere after.
pub async fn explicit_ttl_expires_the_key<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("explicit_ttl_expires_the_key");
    let k = key(format!("{ns}short"));
    let long = key(format!("{ns}long"));
    port.set_bytes(&k, Bytes::from_static(b"v"), Some(SHORT_TTL)).await.unwrap();
    port.set_bytes(&long, Bytes::from_static(b"v"), Some(Duration::from_secs(30))).await.unwrap();
    assert!(port.get_bytes(&k).await.unwrap().is_some(), "the key must be readable before its TTL passes");
    sleep(PAST_SHORT_TTL).await;
    assert_eq!(port.get_bytes(&k).await.unwrap(), None, "an expired key must read as None");
    assert!(!port.exists(&k).await.unwrap(), "an expired key must not exist");
    assert_eq!(port.ttl(&k).await.unwrap(), KeyTtl::Missing, "an expired key has a Missing TTL");
    assert_eq!(port.get_many_bytes(&[k.clone(), long.clone()]).await.unwrap()[0], None, "get_many skips expired");
    assert!(!port.delete(&k).await.unwrap(), "deleting an expired key reports it did not exist");
    assert!(port.exists(&long).await.unwrap(), "a key with a longer TTL must outlive the short one");
}

/// `ttl` reports a positive time no larger than the TTL set, and `Missing` for absent or deleted keys.
pub async fn ttl_never_exceeds_the_ttl_set_and_is_missing_for_absent_keys<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("ttl_never_exceeds_the_ttl_set_and_is_missing_for_absent_keys");
    let k = key(format!("{ns}k"));
    let set = Duration::from_secs(10);
    port.set_bytes(&k, Bytes::from_static(b"v"), Some(set)).await.unwrap();
    match port.ttl(&k).await.unwrap() {
        KeyTtl::ExpiresIn(left) => {
            assert!(left <= set, "ttl must never exceed the TTL set: {left:?} > {set:?}");
            assert!(left > Duration::from_secs(8), "ttl must reflect the TTL just set: {left:?}");
        }
        other => panic!("a key set with a TTL must report ExpiresIn, got {other:?}"),
    }
    sleep(Duration::from_millis(200)).await;
    match port.ttl(&k).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left < set, "ttl must count down: {left:?}"),
        other => panic!("the key must still be there, got {other:?}"),
    }
    assert_eq!(port.ttl(&key(format!("{ns}absent"))).await.unwrap(), KeyTtl::Missing);
    port.delete(&k).await.unwrap();
    assert_eq!(port.ttl(&k).await.unwrap(), KeyTtl::Missing, "a deleted key has a Missing TTL");
}

/// A zero TTL is a validation error for every write, and writes nothing.
pub async fn zero_ttl_is_refused_and_nothing_is_written<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("zero_ttl_is_refused_and_nothing_is_written");
    let k = key(format!("{ns}k"));
    let zero = Some(Duration::ZERO);
    let err = port.set_bytes(&k, Bytes::from_static(b"v"), zero).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "set with a zero TTL must be a Validation error, got {err:?}");
    let err = port.set_if_absent_bytes(&k, Bytes::from_static(b"v"), zero).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "set_if_absent with a zero TTL: Validation, got {err:?}");
    let err = port.set_many_bytes(vec![(k.clone(), Bytes::from_static(b"v"))], zero).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "set_many with a zero TTL: Validation, got {err:?}");
    assert_eq!(port.get_bytes(&k).await.unwrap(), None, "a refused write must store nothing");
    port.set_bytes(&k, Bytes::from_static(b"kept"), None).await.unwrap();
    assert!(port.set_bytes(&k, Bytes::from_static(b"new"), zero).await.is_err());
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::from_static(b"kept")), "a refused write changes nothing");
}

/// A value over `max_value_bytes` is `TooLarge` and leaves the stored value (and absence) unchanged.
pub async fn oversized_value_is_refused_and_previous_value_kept<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("oversized_value_is_refused_and_previous_value_kept");
    let max = port.max_value_bytes();
    let k = key(format!("{ns}k"));
    port.set_bytes(&k, Bytes::from_static(b"previous"), None).await.unwrap();
    let too_big = Bytes::from(vec![7u8; max + 1]);
    match port.set_bytes(&k, too_big.clone(), None).await {
        Err(KvError::TooLarge { size, max: reported }) => {
            assert_eq!((size, reported), (max + 1, max), "TooLarge must report the size and the limit");
        }
        other => panic!("a value of max_value_bytes + 1 must be TooLarge, got {other:?}"),
    }
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::from_static(b"previous")), "previous value kept");
    let absent = key(format!("{ns}absent"));
    let err = port.set_if_absent_bytes(&absent, too_big, None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "set_if_absent with an oversized value: TooLarge, got {err:?}");
    assert!(!port.exists(&absent).await.unwrap(), "a refused set_if_absent must not create the key");
}

/// Of 32 callers racing to `set_if_absent` one missing key, exactly one stores, and its value is the one kept.
pub async fn set_if_absent_is_atomic_under_contention<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}contended", namespace("set_if_absent_is_atomic_under_contention")));
    let results = concurrently(32, |i| {
        let k = k.clone();
        async move { port.set_if_absent_bytes(&k, Bytes::from(format!("caller {i}")), None).await.unwrap() }
    })
    .await;
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, won)| **won).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one of 32 concurrent set_if_absent calls must win, winners: {winners:?}");
    let stored = port.get_bytes(&k).await.unwrap();
    assert_eq!(stored, Some(Bytes::from(format!("caller {}", winners[0]))), "the winner's value must be stored");
}

/// `set_if_absent` refuses a live key (leaving it unchanged) and takes a key whose TTL has passed.
pub async fn set_if_absent_takes_an_expired_key_but_not_a_live_one<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}k", namespace("set_if_absent_takes_an_expired_key_but_not_a_live_one")));
    assert!(port.set_if_absent_bytes(&k, Bytes::from_static(b"first"), Some(SHORT_TTL)).await.unwrap());
    assert!(!port.set_if_absent_bytes(&k, Bytes::from_static(b"second"), None).await.unwrap(), "key is live");
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::from_static(b"first")), "a losing call changes nothing");
    sleep(PAST_SHORT_TTL).await;
    assert!(port.set_if_absent_bytes(&k, Bytes::from_static(b"third"), None).await.unwrap(), "expired key is free");
    assert_eq!(port.get_bytes(&k).await.unwrap(), Some(Bytes::from_static(b"third")));
}

/// `get_many` answers one entry per key in the order asked, `None` for missing ones, and `[]` for no keys.
pub async fn get_many_keeps_order_and_marks_missing_keys<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("get_many_keeps_order_and_marks_missing_keys");
    let (a, b, missing) = (key(format!("{ns}a")), key(format!("{ns}b")), key(format!("{ns}missing")));
    port.set_bytes(&a, Bytes::from_static(b"A"), None).await.unwrap();
    port.set_bytes(&b, Bytes::new(), None).await.unwrap();
    let got = port.get_many_bytes(&[b.clone(), missing.clone(), a.clone(), a.clone()]).await.unwrap();
    let want = vec![Some(Bytes::new()), None, Some(Bytes::from_static(b"A")), Some(Bytes::from_static(b"A"))];
    assert_eq!(got, want, "get_many must keep order, repeat duplicates and mark missing keys None");
    assert_eq!(port.get_many_bytes(&[]).await.unwrap(), Vec::<Option<Bytes>>::new(), "no keys, no values");
    assert_eq!(port.get_many_bytes(std::slice::from_ref(&missing)).await.unwrap(), vec![None]);
}

/// `set_many` stores every entry, replacing old values, all with the TTL given; an empty batch is fine.
pub async fn set_many_writes_every_entry_with_the_ttl<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("set_many_writes_every_entry_with_the_ttl");
    let keys: Vec<CacheKey> = (0..5).map(|i| key(format!("{ns}{i} ü"))).collect();
    port.set_bytes(&keys[0], Bytes::from_static(b"old"), None).await.unwrap();
    let entries: Vec<_> = keys.iter().enumerate().map(|(i, k)| (k.clone(), binary(i))).collect();
    port.set_many_bytes(entries, Some(SHORT_TTL)).await.unwrap();
    let got = port.get_many_bytes(&keys).await.unwrap();
    assert_eq!(got, (0..5).map(|i| Some(binary(i))).collect::<Vec<_>>(), "every entry stored, the old replaced");
    for k in &keys {
        match port.ttl(k).await.unwrap() {
            KeyTtl::ExpiresIn(left) => assert!(left <= SHORT_TTL, "set_many's TTL must apply to {k}: {left:?}"),
            other => panic!("{k} must expire, got {other:?}"),
        }
    }
    port.set_many_bytes(Vec::new(), None).await.unwrap();
    sleep(PAST_SHORT_TTL).await;
    assert_eq!(port.get_many_bytes(&keys).await.unwrap(), vec![None; 5], "every entry expires with the TTL given");
}

/// One oversized value in `set_many` means nothing is written, not even the entries before it.
pub async fn set_many_checks_every_size_before_writing_any<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("set_many_checks_every_size_before_writing_any");
    let (a, big, c) = (key(format!("{ns}a")), key(format!("{ns}big")), key(format!("{ns}c")));
    port.set_bytes(&a, Bytes::from_static(b"before"), None).await.unwrap();
    let entries = vec![
        (a.clone(), Bytes::from_static(b"after")),
        (big.clone(), Bytes::from(vec![0u8; port.max_value_bytes() + 1])),
        (c.clone(), Bytes::from_static(b"after")),
    ];
    let err = port.set_many_bytes(entries, None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "an oversized entry makes set_many TooLarge, got {err:?}");
    let got = port.get_many_bytes(&[a, big, c]).await.unwrap();
    assert_eq!(got, vec![Some(Bytes::from_static(b"before")), None, None], "nothing may be written");
}

/// `exists` agrees with `get_bytes`, and `delete` reports whether the key was there.
pub async fn delete_and_exists_agree_with_get<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("delete_and_exists_agree_with_get");
    let (k, other) = (key(format!("{ns}k")), key(format!("{ns}other")));
    port.set_bytes(&k, Bytes::from_static(b"v"), None).await.unwrap();
    port.set_bytes(&other, Bytes::from_static(b"w"), None).await.unwrap();
    assert!(port.exists(&k).await.unwrap(), "a set key exists");
    assert!(port.delete(&k).await.unwrap(), "deleting a live key reports it existed");
    assert_eq!(port.get_bytes(&k).await.unwrap(), None, "a deleted key reads as None");
    assert!(!port.exists(&k).await.unwrap(), "a deleted key does not exist");
    assert!(!port.delete(&k).await.unwrap(), "deleting twice reports the key was gone");
    assert_eq!(port.get_bytes(&other).await.unwrap(), Some(Bytes::from_static(b"w")), "delete touches one key");
    port.set_bytes(&k, Bytes::from_static(b"again"), None).await.unwrap();
    assert!(port.exists(&k).await.unwrap(), "a deleted key can be set again");
}

/// `delete_prefix` deletes exactly the keys starting with the prefix, taking `*`, `?`, `[`, `\` literally,
/// and leaves keys that contain the prefix elsewhere.
pub async fn delete_prefix_takes_the_prefix_literally<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("delete_prefix_takes_the_prefix_literally");
    let names = [
        "user:1",
        "user:2",
        "user:",
        "userX",
        "user*",
        "user*tail",
        "u?er:1",
        "[ab]:1",
        "a:1",
        "b:1",
        "back\\slash",
        "backslash",
        "ü:1",
    ];
    let all: Vec<CacheKey> = names.iter().map(|n| key(format!("{ns}{n}"))).collect();
    let elsewhere = key(format!("elsewhere:{ns}user:1"));
    for k in all.iter().chain([&elsewhere]) {
        port.set_bytes(k, Bytes::from_static(b"v"), None).await.unwrap();
    }
    let cases: [(&str, &[&str]); 6] = [
        ("user*", &["user*", "user*tail"]),
        ("u?er", &["u?er:1"]),
        ("[ab]", &["[ab]:1"]),
        ("back\\", &["back\\slash"]),
        ("user:", &["user:1", "user:2", "user:"]),
        ("ü", &["ü:1"]),
    ];
    let mut deleted: Vec<&str> = Vec::new();
    for (prefix, expected) in cases {
        let n = port.delete_prefix(&format!("{ns}{prefix}")).await.unwrap();
        assert_eq!(n, expected.len() as u64, "delete_prefix({prefix:?}) must delete exactly {expected:?}");
        deleted.extend(expected);
        for (name, k) in names.iter().zip(&all) {
            let should_exist = !deleted.contains(name);
            assert_eq!(port.exists(k).await.unwrap(), should_exist, "after prefix {prefix:?}, key {name:?}");
        }
    }
    assert!(port.exists(&elsewhere).await.unwrap(), "a key merely containing the prefix must not be deleted");
    assert_eq!(port.delete_prefix(&format!("{ns}user:")).await.unwrap(), 0, "nothing left under the prefix");
}

/// An empty prefix (a flush in disguise) is a validation error and deletes nothing.
pub async fn delete_prefix_refuses_an_empty_prefix<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}k", namespace("delete_prefix_refuses_an_empty_prefix")));
    port.set_bytes(&k, Bytes::from_static(b"v"), None).await.unwrap();
    let err = port.delete_prefix("").await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "an empty prefix must be a Validation error, got {err:?}");
    assert!(port.exists(&k).await.unwrap(), "a refused delete_prefix must delete nothing");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    balance_cents: i64,
    tags: Vec<String>,
    nickname: Option<String>,
}

/// Typed values written with [`CacheExt`] come back equal through the cache's codec.
pub async fn typed_values_round_trip_through_the_codec<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("typed_values_round_trip_through_the_codec");
    let (k, k2, nx) = (key(format!("{ns}profile")), key(format!("{ns}profile2")), key(format!("{ns}nx")));
    let profile = Profile {
        name: "Zoë \"quoted\" 名前".into(),
        balance_cents: -1250,
        tags: vec!["a".into(), String::new(), "🔑".into()],
        nickname: None,
    };
    port.set(&k, &profile, None).await.unwrap();
    assert_eq!(port.get::<Profile>(&k).await.unwrap(), Some(profile.clone()), "typed round trip");
    let other = Profile { name: "Bob".into(), nickname: Some("b".into()), ..profile.clone() };
    port.set_many(&[(k2.clone(), other.clone())], None).await.unwrap();
    let got = port.get_many::<Profile>(&[k.clone(), nx.clone(), k2.clone()]).await.unwrap();
    assert_eq!(got, vec![Some(profile.clone()), None, Some(other.clone())], "typed get_many");
    assert!(port.set_if_absent(&nx, &42_u32, None).await.unwrap());
    assert!(!port.set_if_absent(&nx, &43_u32, None).await.unwrap());
    assert_eq!(port.get::<u32>(&nx).await.unwrap(), Some(42));
    let map = port.get_map::<Profile>(&[k.clone(), k2.clone(), key(format!("{ns}absent"))]).await.unwrap();
    assert_eq!((map.len(), map.get(&k2)), (2, Some(&other)), "get_map holds the found keys only");
}

/// Bytes written without the codec (by another program) are a `Codec` error when read typed, never a value.
pub async fn foreign_bytes_are_a_codec_error_not_a_value<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("foreign_bytes_are_a_codec_error_not_a_value");
    let (json, text, typed) = (key(format!("{ns}json")), key(format!("{ns}text")), key(format!("{ns}typed")));
    port.set_bytes(&json, Bytes::from_static(br#"{"name":"x","balance_cents":1,"tags":[]}"#), None).await.unwrap();
    port.set_bytes(&text, Bytes::from_static(b"42"), None).await.unwrap();
    port.set(&typed, &7_u8, None).await.unwrap();
    let err = port.get::<Profile>(&json).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "raw JSON without the codec header must be a Codec error, got {err:?}");
    let err = port.get::<u64>(&text).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "plain text must be a Codec error, got {err:?}");
    let err = port.get::<Profile>(&typed).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "a value of another type must be a Codec error, got {err:?}");
    let err = port.get_many::<u64>(&[typed.clone(), text]).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "get_many with foreign bytes must be a Codec error, got {err:?}");
    assert_eq!(port.get::<u8>(&typed).await.unwrap(), Some(7), "a well-formed value still reads");
}
