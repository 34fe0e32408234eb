//! The [`SessionStore`] contract suite. Run it with [`session_contract!`](crate::session_contract).
//!
//! Every case works against a real server unchanged: it uses only the port, real short sleeps for lifetimes,
//! and stays under about 2 s.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use cpc_ports::{KvError, SessionId, SessionStore, SessionStoreExt};
use serde::{Deserialize, Serialize};

/// Runs every [`SessionStore`] contract case as its own `#[tokio::test]`. `$factory` is an async expression
/// yielding a fresh store behind anything that derefs to it (`Arc<InMemorySessionStore>`,
/// `Arc<dyn SessionStore>`, ...); it is evaluated once per case.
///
/// ```
/// mod memory_session {
///     cpc_testkit::session_contract!(async {
///         std::sync::Arc::new(cpc_testkit::memory::InMemorySessionStore::new())
///     });
/// }
/// # fn main() {}
/// ```
/// `session_contract!(factory, inline)` expands instead to a block that runs every case in turn, inside a test of
/// the caller's (for a server costly to start, such as a Redis Cluster, that the factory may then borrow).
#[macro_export]
macro_rules! session_contract {
    ($factory:expr $(, $mode:ident)?) => {
        $crate::__contract_cases!(
            $crate::contract::session,
            $factory,
            [
                create_returns_distinct_ids,
                load_returns_the_created_data,
                load_of_an_unknown_id_is_none,
                typed_data_round_trips_through_the_codec,
                save_replaces_the_data_and_keeps_the_remaining_lifetime,
                save_does_not_revive_a_destroyed_session,
                save_does_not_revive_an_expired_session,
                extend_resets_the_lifetime_past_the_original_ttl,
                extend_of_a_gone_session_is_not_found,
                session_expires_after_its_ttl,
                destroy_returns_whether_the_session_existed,
                cycle_id_keeps_data_and_lifetime_and_retires_the_old_id,
                cycled_session_works_under_its_new_id,
                cycle_id_of_a_gone_session_is_not_found,
                zero_ttl_is_refused,
                ttl_reports_the_remaining_lifetime_and_none_when_gone,
                empty_and_one_mib_data_round_trip,
                concurrent_creates_get_distinct_ids,
                sessions_are_isolated_from_each_other,
                foreign_bytes_are_a_codec_error_on_typed_load,
                insert_stores_under_the_given_id_and_never_overwrites,
                oversized_data_is_too_large_and_nothing_is_stored,
            ] $(, $mode)?
        );
    };
}

/// A lifetime long enough never to run out during a case.
const LONG: Duration = Duration::from_secs(600);

/// Typed session data, as an app would keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Login {
    user: String,
    roles: Vec<String>,
    visits: u32,
}

fn login(case: &str) -> Login {
    Login { user: format!("user of {case} ✓"), roles: vec!["admin".into(), "a b\nc".into()], visits: 7 }
}

/// Data unique to the case, so a store shared by mistake shows up as wrong data.
fn data(case: &str, n: u32) -> Bytes {
    Bytes::from(format!("{case}#{n}"))
}

fn is_not_found(result: &Result<impl std::fmt::Debug, KvError>) -> bool {
    matches!(result, Err(KvError::NotFound { .. }))
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// `create_bytes` MUST return an id no other live session has.
pub async fn create_returns_distinct_ids<S: SessionStore + ?Sized>(store: &S) {
    let mut ids = HashSet::new();
    for n in 0..50 {
        let id = store.create_bytes(data("create_returns_distinct_ids", n), LONG).await.unwrap();
        assert!(ids.insert(id.as_str().to_owned()), "create returned an id twice: {id:?}");
        assert!(SessionId::parse(id.as_str()).is_ok(), "the id must be a well-formed session id: {id:?}");
    }
}

/// `load_bytes` returns exactly what was created.
pub async fn load_returns_the_created_data<S: SessionStore + ?Sized>(store: &S) {
    let case = "load_returns_the_created_data";
    let id = store.create_bytes(data(case, 1), LONG).await.unwrap();
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(data(case, 1)));
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(data(case, 1)), "loading must not consume the session");
}

/// An id that was never created loads as `None`, and has no `ttl`.
pub async fn load_of_an_unknown_id_is_none<S: SessionStore + ?Sized>(store: &S) {
    let unknown = SessionId::generate();
    assert_eq!(store.load_bytes(&unknown).await.unwrap(), None);
    assert_eq!(store.ttl(&unknown).await.unwrap(), None);
    assert!(!store.destroy(&unknown).await.unwrap(), "destroying an unknown session must report false");
}

/// The typed [`SessionStoreExt`] methods round-trip a struct through the store's codec.
pub async fn typed_data_round_trips_through_the_codec<S: SessionStore + ?Sized>(store: &S) {
    let case = "typed_data_round_trips_through_the_codec";
    let id = store.create(&login(case), LONG).await.unwrap();
    assert_eq!(store.load::<Login>(&id).await.unwrap(), Some(login(case)));
    let mut changed = login(case);
    changed.visits += 1;
    store.save(&id, &changed).await.unwrap();
    assert_eq!(store.load::<Login>(&id).await.unwrap(), Some(changed));
    assert_eq!(store.load::<Login>(&SessionId::generate()).await.unwrap(), None);
}

/// `save_bytes` replaces the data and keeps the remaining lifetime: the session still ends when it would have.
pub async fn save_replaces_the_data_and_keeps_the_remaining_lifetime<S: SessionStore + ?Sized>(store: &S) {
    let case = "save_replaces_the_data_and_keeps_the_remaining_lifetime";
    let id = store.create_bytes(data(case, 1), Duration::from_millis(300)).await.unwrap();
    sleep_ms(150).await;
    store.save_bytes(&id, data(case, 2)).await.unwrap();
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(data(case, 2)));
    let left = store.ttl(&id).await.unwrap().expect("the saved session must still be alive");
    assert!(left <= Duration::from_millis(200), "save must keep the remaining lifetime, not reset it: {left:?} left");
    sleep_ms(300).await;
    assert_eq!(store.load_bytes(&id).await.unwrap(), None, "a saved session must still expire at its original time");
}

/// `save_bytes` on a destroyed session MUST fail with `NotFound` and create nothing.
pub async fn save_does_not_revive_a_destroyed_session<S: SessionStore + ?Sized>(store: &S) {
    let case = "save_does_not_revive_a_destroyed_session";
    let id = store.create_bytes(data(case, 1), LONG).await.unwrap();
    assert!(store.destroy(&id).await.unwrap());
    let saved = store.save_bytes(&id, data(case, 2)).await;
    assert!(is_not_found(&saved), "save on a destroyed session must be NotFound, got {saved:?}");
    assert_eq!(store.load_bytes(&id).await.unwrap(), None, "save must not revive a destroyed session");
    assert_eq!(store.ttl(&id).await.unwrap(), None);
}

/// `save_bytes` on an expired session MUST fail with `NotFound` and create nothing.
pub async fn save_does_not_revive_an_expired_session<S: SessionStore + ?Sized>(store: &S) {
    let case = "save_does_not_revive_an_expired_session";
    let id = store.create_bytes(data(case, 1), Duration::from_millis(150)).await.unwrap();
    sleep_ms(400).await;
    let saved = store.save_bytes(&id, data(case, 2)).await;
    assert!(is_not_found(&saved), "save on an expired session must be NotFound, got {saved:?}");
    assert_eq!(store.load_bytes(&id).await.unwrap(), None, "save must not revive an expired session");
    let saved = store.save(&id, &login(case)).await;
    assert!(is_not_found(&saved), "the typed save must be NotFound too, got {saved:?}");
    assert_eq!(store.load_bytes(&id).await.unwrap(), None);
}

/// `extend` resets the lifetime from now: the session outlives its original TTL, then ends at the new one.
pub async fn extend_resets_the_lifetime_past_the_original_ttl<S: SessionStore + ?Sized>(store: &S) {
    let case = "extend_resets_the_lifetime_past_the_original_ttl";
    let id = store.create_bytes(data(case, 1), Duration::from_millis(300)).await.unwrap();
    sleep_ms(200).await;
    store.extend(&id, Duration::from_millis(600)).await.unwrap();
    sleep_ms(200).await;
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(data(case, 1)), "extended session must outlive its ttl");
    let left = store.ttl(&id).await.unwrap().expect("the extended session must be alive");
    assert!(left > Duration::from_millis(250), "extend must reset the lifetime to 600 ms: {left:?} left");
    sleep_ms(500).await;
    assert_eq!(store.load_bytes(&id).await.unwrap(), None, "the session must end at the extended lifetime");
}

/// `extend` MUST return `NotFound` for a session that is gone, and not revive it.
pub async fn extend_of_a_gone_session_is_not_found<S: SessionStore + ?Sized>(store: &S) {
    let case = "extend_of_a_gone_session_is_not_found";
    let unknown = store.extend(&SessionId::generate(), LONG).await;
    assert!(is_not_found(&unknown), "extend of an unknown session must be NotFound, got {unknown:?}");
    let destroyed = store.create_bytes(data(case, 1), LONG).await.unwrap();
    store.destroy(&destroyed).await.unwrap();
    let expired = store.create_bytes(data(case, 2), Duration::from_millis(150)).await.unwrap();
    sleep_ms(400).await;
    for id in [&destroyed, &expired] {
        let extended = store.extend(id, LONG).await;
        assert!(is_not_found(&extended), "extend of a gone session must be NotFound, got {extended:?}");
        assert_eq!(store.load_bytes(id).await.unwrap(), None, "extend must not revive a session");
    }
}

/// A session is gone once its TTL has passed: no data, no ttl, nothing to destroy.
pub async fn session_expires_after_its_ttl<S: SessionStore + ?Sized>(store: &S) {
    let case = "session_expires_after_its_ttl";
    let short = store.create_bytes(data(case, 1), Duration::from_millis(150)).await.unwrap();
    let long = store.create_bytes(data(case, 2), LONG).await.unwrap();
    assert_eq!(store.load_bytes(&short).await.unwrap(), Some(data(case, 1)), "alive before its ttl");
    sleep_ms(400).await;
    assert_eq!(store.load_bytes(&short).await.unwrap(), None, "a session must be gone after its ttl");
    assert_eq!(store.ttl(&short).await.unwrap(), None);
    assert!(!store.destroy(&short).await.unwrap(), "an expired session must not count as existing");
    assert_eq!(store.load_bytes(&long).await.unwrap(), Some(data(case, 2)), "other sessions live on");
}

/// `destroy` deletes the session and returns whether it existed.
pub async fn destroy_returns_whether_the_session_existed<S: SessionStore + ?Sized>(store: &S) {
    let case = "destroy_returns_whether_the_session_existed";
    let id = store.create_bytes(data(case, 1), LONG).await.unwrap();
    assert!(store.destroy(&id).await.unwrap(), "the first destroy must report that the session existed");
    assert_eq!(store.load_bytes(&id).await.unwrap(), None);
    assert!(!store.destroy(&id).await.unwrap(), "the second destroy must report false");
}

/// `cycle_id` MUST keep the data and the remaining lifetime, and the old id MUST NOT load afterwards.
pub async fn cycle_id_keeps_data_and_lifetime_and_retires_the_old_id<S: SessionStore + ?Sized>(store: &S) {
    let case = "cycle_id_keeps_data_and_lifetime_and_retires_the_old_id";
    let old = store.create_bytes(data(case, 1), Duration::from_millis(400)).await.unwrap();
    sleep_ms(100).await;
    let new = store.cycle_id(&old).await.unwrap();
    assert_ne!(new, old, "cycle_id must return a fresh id");
    assert_eq!(store.load_bytes(&new).await.unwrap(), Some(data(case, 1)), "cycle_id must keep the data");
    assert_eq!(store.load_bytes(&old).await.unwrap(), None, "the old id must not load after cycle_id");
    assert_eq!(store.ttl(&old).await.unwrap(), None);
    let left = store.ttl(&new).await.unwrap().expect("the cycled session must be alive");
    assert!(left <= Duration::from_millis(300), "cycle_id must keep the remaining lifetime: {left:?} left");
    assert!(left > Duration::from_millis(50), "cycle_id must keep the remaining lifetime: {left:?} left");
    sleep_ms(450).await;
    assert_eq!(store.load_bytes(&new).await.unwrap(), None, "the cycled session must end at the original time");
}

/// After `cycle_id` the session is fully usable under its new id, and the old id is gone for every method.
pub async fn cycled_session_works_under_its_new_id<S: SessionStore + ?Sized>(store: &S) {
    let case = "cycled_session_works_under_its_new_id";
    let old = store.create_bytes(data(case, 1), LONG).await.unwrap();
    let new = store.cycle_id(&old).await.unwrap();
    store.save_bytes(&new, data(case, 2)).await.unwrap();
    store.extend(&new, LONG).await.unwrap();
    assert_eq!(store.load_bytes(&new).await.unwrap(), Some(data(case, 2)));
    let saved = store.save_bytes(&old, data(case, 3)).await;
    assert!(is_not_found(&saved), "save under the old id must be NotFound, got {saved:?}");
    assert!(!store.destroy(&old).await.unwrap(), "the old id must not exist any more");
    assert_eq!(store.load_bytes(&new).await.unwrap(), Some(data(case, 2)), "the old id must not reach the session");
    let newer = store.cycle_id(&new).await.unwrap();
    assert_eq!(store.load_bytes(&newer).await.unwrap(), Some(data(case, 2)), "a session can be cycled again");
    assert!(store.destroy(&newer).await.unwrap());
}

/// `cycle_id` MUST return `NotFound` for a session that is gone.
pub async fn cycle_id_of_a_gone_session_is_not_found<S: SessionStore + ?Sized>(store: &S) {
    let case = "cycle_id_of_a_gone_session_is_not_found";
    let unknown = store.cycle_id(&SessionId::generate()).await;
    assert!(is_not_found(&unknown), "cycle_id of an unknown session must be NotFound, got {unknown:?}");
    let destroyed = store.create_bytes(data(case, 1), LONG).await.unwrap();
    store.destroy(&destroyed).await.unwrap();
    let cycled = store.cycle_id(&destroyed).await;
    assert!(is_not_found(&cycled), "cycle_id of a destroyed session must be NotFound, got {cycled:?}");
    let expired = store.create_bytes(data(case, 2), Duration::from_millis(150)).await.unwrap();
    sleep_ms(400).await;
    let cycled = store.cycle_id(&expired).await;
    assert!(is_not_found(&cycled), "cycle_id of an expired session must be NotFound, got {cycled:?}");
}

/// `create_bytes` and `extend` MUST refuse a zero TTL with `Validation`; a refused extend leaves the session alone.
pub async fn zero_ttl_is_refused<S: SessionStore + ?Sized>(store: &S) {
    let case = "zero_ttl_is_refused";
    let created = store.create_bytes(data(case, 1), Duration::ZERO).await;
    assert!(matches!(created, Err(KvError::Validation(_))), "a zero ttl must be a Validation error, got {created:?}");
    let typed = store.create(&login(case), Duration::ZERO).await;
    assert!(matches!(typed, Err(KvError::Validation(_))), "the typed create too, got {typed:?}");
    let id = store.create_bytes(data(case, 2), LONG).await.unwrap();
    let extended = store.extend(&id, Duration::ZERO).await;
    assert!(
        matches!(extended, Err(KvError::Validation(_))),
        "extend with a zero ttl must be refused, got {extended:?}"
    );
    assert!(store.load_bytes(&id).await.unwrap().is_some(), "a refused extend must not delete the session");
}

/// `ttl` reports how long the session has left (at most what it was given), and `None` once it is gone.
pub async fn ttl_reports_the_remaining_lifetime_and_none_when_gone<S: SessionStore + ?Sized>(store: &S) {
    let case = "ttl_reports_the_remaining_lifetime_and_none_when_gone";
    let id = store.create_bytes(data(case, 1), Duration::from_secs(60)).await.unwrap();
    let left = store.ttl(&id).await.unwrap().expect("a fresh session must have a ttl");
    assert!(left <= Duration::from_secs(60), "ttl must not exceed what was given: {left:?}");
    assert!(left > Duration::from_secs(55), "ttl must be close to what was given: {left:?}");
    store.extend(&id, Duration::from_secs(5)).await.unwrap();
    let left = store.ttl(&id).await.unwrap().expect("an extended session must have a ttl");
    assert!(left <= Duration::from_secs(5), "extend may also shorten the lifetime: {left:?}");
    assert!(left > Duration::from_secs(3), "ttl after extend: {left:?}");
    store.destroy(&id).await.unwrap();
    assert_eq!(store.ttl(&id).await.unwrap(), None, "a destroyed session has no ttl");
}

/// Empty data and 1 MiB of data are stored byte for byte.
pub async fn empty_and_one_mib_data_round_trip<S: SessionStore + ?Sized>(store: &S) {
    let empty = store.create_bytes(Bytes::new(), LONG).await.unwrap();
    assert_eq!(store.load_bytes(&empty).await.unwrap(), Some(Bytes::new()), "empty data must load as empty, not None");
    let big: Bytes = (0..1024 * 1024).map(|i: u32| (i.wrapping_mul(31) % 251) as u8).collect::<Vec<u8>>().into();
    let id = store.create_bytes(big.clone(), LONG).await.unwrap();
    let loaded = store.load_bytes(&id).await.unwrap().expect("1 MiB session must load");
    assert!(loaded == big, "1 MiB data must come back byte for byte ({} bytes loaded)", loaded.len());
    store.save_bytes(&empty, big.clone()).await.unwrap();
    store.save_bytes(&id, Bytes::new()).await.unwrap();
    assert!(store.load_bytes(&empty).await.unwrap() == Some(big), "saving 1 MiB must round-trip");
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(Bytes::new()), "saving empty data must round-trip");
}

/// Sixteen concurrent creates give sixteen distinct sessions, each holding its own data.
pub async fn concurrent_creates_get_distinct_ids<S: SessionStore + ?Sized>(store: &S) {
    let case = "concurrent_creates_get_distinct_ids";
    let created = futures::future::join_all((0..16).map(|n| store.create_bytes(data(case, n), LONG))).await;
    let ids: Vec<SessionId> = created.into_iter().map(|r| r.unwrap()).collect();
    let distinct: HashSet<&str> = ids.iter().map(SessionId::as_str).collect();
    assert_eq!(distinct.len(), 16, "16 concurrent creates must give 16 distinct ids");
    for (n, id) in (0..).zip(&ids) {
        assert_eq!(store.load_bytes(id).await.unwrap(), Some(data(case, n)), "session {n} must hold its own data");
    }
}

/// Saving, extending or destroying one session leaves the others as they were.
pub async fn sessions_are_isolated_from_each_other<S: SessionStore + ?Sized>(store: &S) {
    let case = "sessions_are_isolated_from_each_other";
    let a = store.create_bytes(data(case, 1), LONG).await.unwrap();
    let b = store.create_bytes(data(case, 2), Duration::from_secs(30)).await.unwrap();
    store.save_bytes(&a, data(case, 3)).await.unwrap();
    store.extend(&a, Duration::from_secs(5)).await.unwrap();
    assert_eq!(store.load_bytes(&b).await.unwrap(), Some(data(case, 2)));
    let left = store.ttl(&b).await.unwrap().expect("b must be alive");
    assert!(left > Duration::from_secs(25), "extending a must not change b's lifetime: {left:?}");
    assert!(store.destroy(&a).await.unwrap());
    assert_eq!(store.load_bytes(&b).await.unwrap(), Some(data(case, 2)), "destroying a must not touch b");
}

/// Bytes that the codec did not write (another program's session) make a typed load fail with
/// `KvError::Codec`, never panic or return a wrong value; the raw bytes stay readable.
pub async fn foreign_bytes_are_a_codec_error_on_typed_load<S: SessionStore + ?Sized>(store: &S) {
    let foreign = Bytes::from_static(b"{\"user\":\"written by another program\"}");
    let id = store.create_bytes(foreign.clone(), LONG).await.unwrap();
    let typed = store.load::<Login>(&id).await;
    assert!(matches!(typed, Err(KvError::Codec(_))), "foreign bytes must be a Codec error, got {typed:?}");
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(foreign), "the raw bytes must be left as they were");
    let wrong_type = store.create(&42u32, LONG).await.unwrap();
    let typed = store.load::<Login>(&wrong_type).await;
    assert!(matches!(typed, Err(KvError::Codec(_))), "a value of another type must be a Codec error, got {typed:?}");
}

/// `insert_bytes` stores under the caller's id, refuses a zero TTL, and never overwrites a live session; once the
/// session is destroyed the id can be used again.
pub async fn insert_stores_under_the_given_id_and_never_overwrites<S: SessionStore + ?Sized>(store: &S) {
    let id = SessionId::generate();
    assert!(store.insert_bytes(&id, data("insert", 1), LONG).await.unwrap(), "a free id is stored");
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(data("insert", 1)));
    assert!(!store.insert_bytes(&id, data("insert", 2), LONG).await.unwrap(), "a live id is never overwritten");
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(data("insert", 1)));
    let ttl = store.ttl(&id).await.unwrap().unwrap();
    assert!(ttl <= LONG && ttl > LONG - Duration::from_secs(60), "{ttl:?}");
    let other = SessionId::generate();
    assert!(matches!(store.insert_bytes(&other, data("insert", 3), Duration::ZERO).await, Err(KvError::Validation(_))));
    assert_eq!(store.load_bytes(&other).await.unwrap(), None);
    assert!(store.destroy(&id).await.unwrap());
    assert!(store.insert_bytes(&id, data("insert", 4), LONG).await.unwrap(), "a destroyed id is free again");
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(data("insert", 4)));
}

/// Data over [`cpc_ports::MAX_PAYLOAD_BYTES`] is [`KvError::TooLarge`] for create, insert and save, and nothing
/// is stored: no new session, and a saved one keeps its data.
pub async fn oversized_data_is_too_large_and_nothing_is_stored<S: SessionStore + ?Sized>(store: &S) {
    let oversized = Bytes::from(vec![7u8; cpc_ports::MAX_PAYLOAD_BYTES + 1]);
    let too_large = |r: Result<(), KvError>, what: &str| match r {
        Err(KvError::TooLarge { size, max }) => {
            assert_eq!((size, max), (cpc_ports::MAX_PAYLOAD_BYTES + 1, cpc_ports::MAX_PAYLOAD_BYTES), "{what}");
        }
        other => panic!("{what} with oversized data must be TooLarge, got {other:?}"),
    };
    too_large(store.create_bytes(oversized.clone(), LONG).await.map(|_| ()), "create");
    let id = SessionId::generate();
    too_large(store.insert_bytes(&id, oversized.clone(), LONG).await.map(|_| ()), "insert");
    assert_eq!(store.load_bytes(&id).await.unwrap(), None, "a refused insert stores nothing");
    let kept = data("oversized_data_is_too_large_and_nothing_is_stored", 1);
    let existing = store.create_bytes(kept.clone(), LONG).await.unwrap();
    too_large(store.save_bytes(&existing, oversized).await, "save");
    assert_eq!(store.load_bytes(&existing).await.unwrap(), Some(kept), "a refused save keeps the old data");
}
