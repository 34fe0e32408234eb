//! Encryption at rest through the composition root: `CPC_ENCRYPTION_KEYS` encrypts cache values and session
//! data on every backend wired here without a server (in process, the embedded SQLite), rotation across a
//! restart, plaintext from before, and the configuration errors.

use std::time::Duration;

use cpc_ports::{CacheExt, CacheKey, CodecError, KvError, SessionStoreExt};

use super::{Ports, Settings, WiringError};

const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
/// Text that must never reach the store in clear when encryption is on.
const MARKER: &str = "card-4111-1111-1111-1111";

/// A user and a card number.
type Visit = (String, String);

fn visit() -> Visit {
    ("ada".to_owned(), MARKER.to_owned())
}

/// Settings for `app` in `dir` on the backend `kv` (`sqlite` or `memory`), with `extra` variables.
fn settings(dir: &std::path::Path, kv: &str, extra: &[(&str, String)]) -> Result<Settings, WiringError> {
    let mut vars = vec![("CPC_DATA_DIR", dir.display().to_string()), ("CPC_KV_BACKEND", kv.to_owned())];
    vars.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    Settings::from_lookup("app", move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
}

fn keys(list: &str) -> (&'static str, String) {
    ("CPC_ENCRYPTION_KEYS", list.to_owned())
}

/// Every file under `dir` (the SQLite database, its WAL), concatenated.
fn files_under(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read_dir(dir).unwrap().flat_map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default()).collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn the_keys_come_from_the_environment_and_debug_shows_their_ids_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "memory", &[keys(&format!("old:{KEY_1}, new:{KEY_2}"))]).unwrap();
    let keyring = s.encryption.as_deref().expect("CPC_ENCRYPTION_KEYS turns encryption on");
    assert_eq!(keyring.primary().as_str(), "new");
    assert!(!keyring.allows_plaintext(), "plaintext is refused unless allowed");
    assert_eq!(s.codec().keyring(), Some(keyring));
    let debug = format!("{s:?}");
    assert!(debug.contains(r#"key_ids: ["old", "new"]"#), "{debug}");
    assert!(!debug.contains(&KEY_1[..12]) && !debug.contains(&KEY_2[..12]), "a key in Debug: {debug}");

    let off = settings(dir.path(), "memory", &[]).unwrap();
    assert!(off.encryption.is_none() && off.codec().keyring().is_none());
    let allow = [keys(&format!("k:{KEY_1}")), ("CPC_ENCRYPTION_ALLOW_PLAINTEXT", "true".to_owned())];
    assert!(settings(dir.path(), "memory", &allow).unwrap().encryption.unwrap().allows_plaintext());
}

#[test]
fn bad_keys_are_configuration_errors_naming_the_variable_and_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (format!("k1:{}", &KEY_1[1..]), "k1"),
        (format!("k1:{}", &KEY_1[..40]), "k1"),
        (format!("k1:{KEY_1},k1:{KEY_2}"), "k1"),
        ("k1:".to_owned(), "k1"),
        (format!("k1:{KEY_1},,k2:{KEY_2}"), "entry 2"),
    ];
    for (value, named) in cases {
        match settings(dir.path(), "memory", &[keys(&value)]) {
            Err(WiringError::Config(e)) => {
                assert_eq!(e.key(), "CPC_ENCRYPTION_KEYS", "{value}: {e}");
                assert!(e.reason().contains(named), "{value}: {e}");
                assert!(!e.to_string().contains(&KEY_1[4..16]), "a key in the message: {e}");
            }
            other => panic!("{value}: expected a configuration error, got {:?}", other.map(|s| s.kv)),
        }
    }
    let bad_flag = [keys(&format!("k:{KEY_1}")), ("CPC_ENCRYPTION_ALLOW_PLAINTEXT", "yes please".to_owned())];
    match settings(dir.path(), "memory", &bad_flag) {
        Err(WiringError::Config(e)) => assert_eq!(e.key(), "CPC_ENCRYPTION_ALLOW_PLAINTEXT", "{e}"),
        other => panic!("expected a configuration error, got {:?}", other.map(|s| s.kv)),
    }
}

#[tokio::test]
async fn sessions_and_cache_values_are_encrypted_on_every_backend_wired_in_process() {
    for kv in ["memory", "sqlite"] {
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports::wire(&settings(dir.path(), kv, &[keys(&format!("k1:{KEY_1}"))]).unwrap()).await.unwrap();
        assert!(ports.description.ends_with("values encrypted with key k1"), "{}", ports.description);
        let key = CacheKey::new("visit").unwrap();
        ports.cache.set(&key, &visit(), None).await.unwrap();
        let session = ports.sessions.create(&visit(), Duration::from_secs(60)).await.unwrap();

        assert_eq!(ports.cache.get::<Visit>(&key).await.unwrap(), Some(visit()), "{kv}");
        assert_eq!(ports.sessions.load::<Visit>(&session).await.unwrap(), Some(visit()), "{kv}");
        let raw_cache = ports.cache.get_bytes(&key).await.unwrap().unwrap();
        let raw_session = ports.sessions.load_bytes(&session).await.unwrap().unwrap();
        for (what, raw) in [("cache", &raw_cache), ("session", &raw_session)] {
            assert_eq!(
                &raw[..2],
                &[cpc_ports::codec::MAGIC, cpc_ports::codec::ENCRYPTED_HEADER_VERSION],
                "{kv} {what}"
            );
            assert!(!contains(raw, MARKER), "{kv} {what} stored in clear");
        }
        // Counters stay decimal text: the backends' atomic increments need it.
        let hits = CacheKey::new("hits").unwrap();
        assert_eq!(ports.cache.increment_by(&hits, 2, None).await.unwrap(), 2);
        assert_eq!(ports.cache.get_bytes(&hits).await.unwrap().unwrap().as_ref(), b"2");
        drop(ports);
        assert!(!contains(&files_under(dir.path()), MARKER), "{kv}: the database files hold the value in clear");
    }
}

#[tokio::test]
async fn without_keys_the_same_values_are_stored_in_clear() {
    // The control for the test above: the raw checks do see plaintext when there is some.
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::wire(&settings(dir.path(), "sqlite", &[]).unwrap()).await.unwrap();
    let session = ports.sessions.create(&visit(), Duration::from_secs(60)).await.unwrap();
    assert!(contains(&ports.sessions.load_bytes(&session).await.unwrap().unwrap(), MARKER));
    drop(ports);
    assert!(contains(&files_under(dir.path()), MARKER));
}

#[tokio::test]
async fn keys_rotate_across_a_restart_and_plaintext_from_before_is_read_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let wire = |extra: Vec<(&'static str, String)>| {
        let s = settings(dir.path(), "sqlite", &extra).unwrap();
        async move { Ports::wire(&s).await.unwrap() }
    };
    let plain = wire(vec![]).await;
    let before = plain.sessions.create(&visit(), Duration::from_secs(60)).await.unwrap();
    drop(plain);

    let old = wire(vec![keys(&format!("old:{KEY_1}"))]).await;
    match old.sessions.load::<Visit>(&before).await {
        Err(KvError::Codec(CodecError::PlaintextRefused)) => {}
        other => panic!("plaintext must be refused by default, got {other:?}"),
    }
    let sealed_old = old.sessions.create(&visit(), Duration::from_secs(60)).await.unwrap();
    drop(old);

    let rotated =
        wire(vec![keys(&format!("old:{KEY_1},new:{KEY_2}")), ("CPC_ENCRYPTION_ALLOW_PLAINTEXT", "true".into())]).await;
    assert_eq!(rotated.sessions.load::<Visit>(&before).await.unwrap(), Some(visit()), "plaintext, allowed");
    assert_eq!(rotated.sessions.load::<Visit>(&sealed_old).await.unwrap(), Some(visit()), "the old key still reads");
    rotated.sessions.save(&sealed_old, &visit()).await.unwrap();
    let raw = rotated.sessions.load_bytes(&sealed_old).await.unwrap().unwrap();
    assert_eq!(&raw[4..8], b"\x03new", "rewritten with the newest key");
    drop(rotated);

    let only_new = wire(vec![keys(&format!("new:{KEY_2}"))]).await;
    assert_eq!(only_new.sessions.load::<Visit>(&sealed_old).await.unwrap(), Some(visit()));
    let third = {
        let old = wire(vec![keys(&format!("old:{KEY_1}"))]).await;
        old.sessions.create(&visit(), Duration::from_secs(60)).await.unwrap()
    };
    match only_new.sessions.load::<Visit>(&third).await {
        Err(KvError::Codec(CodecError::UnknownKey { key_id })) => assert_eq!(key_id, "old"),
        other => panic!("a retired key must be named, got {other:?}"),
    }
}
