//! Bad input and secrets (docs/RELIABILITY.md): keys with NUL bytes, newlines and 10,000 characters, binary
//! values, on Redis and in memory; a million session ids; and no password in any `Debug`, `Display`, error or
//! `tracing` line while connections fail for a wrong password.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "postgres", feature = "redis", feature = "memory", feature = "sqlite"))]

#[allow(dead_code)]
mod common;
#[path = "common/logs.rs"]
mod logs;

use std::collections::HashSet;
use std::time::Duration;

use common::redis::shared_manager;
use cpc_adapters::memory::InMemoryCache;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::redis::{CacheManager, RedisConfig, RedisManager};
use cpc_adapters::sqlite::SqliteConfig;
use cpc_ports::{Bytes, Cache, CacheKey, Channel, KvError, LockKey, RateLimitKey, SessionId};
use cpc_test_servers::{PrivatePostgres, PrivateRedis};

/// Keys at the edges: NUL bytes, newlines, CR LF, Redis protocol characters, non-ASCII, glob characters, the
/// longest accepted (4,096 bytes). Each is stored and read back verbatim under a binary value holding every byte.
fn odd_keys() -> Vec<String> {
    vec![
        "nul\0inside".into(),
        "\0".into(),
        "new\nline".into(),
        "crlf\r\n*3\r\n$3\r\nDEL".into(),
        "glob*?[x]".into(),
        "ünïcødé ✓".into(),
        "'; DROP TABLE users; --".into(),
        "k".repeat(4096),
    ]
}

async fn round_trips(cache: &dyn Cache, backend: &str) {
    let every_byte = Bytes::from((0..=255u8).collect::<Vec<u8>>());
    for text in odd_keys() {
        let key = CacheKey::new(text.clone()).unwrap();
        cache.set_bytes(&key, every_byte.clone(), Some(Duration::from_secs(60))).await.unwrap();
        let got = cache.get_bytes(&key).await.unwrap();
        assert_eq!(got.as_ref(), Some(&every_byte), "{backend}: key {:?}", &text[..text.len().min(20)]);
    }
    // Distinct keys stay distinct: "nul\0inside" is not "nul".
    assert_eq!(cache.get_bytes(&CacheKey::new("nul").unwrap()).await.unwrap(), None, "{backend}");
}

#[tokio::test]
async fn odd_keys_and_binary_values_are_stored_verbatim_on_redis_and_in_memory() {
    let manager = shared_manager("rel-input-keys").await;
    round_trips(&CacheManager::new(manager, Duration::from_secs(60)), "redis").await;
    round_trips(&InMemoryCache::new(Duration::from_secs(60)), "memory").await;
}

#[test]
fn ten_thousand_character_and_empty_keys_are_refused_with_a_typed_error() {
    let long = "x".repeat(10_000);
    for (name, result) in [
        ("cache key", CacheKey::new(long.clone()).map(drop)),
        ("lock key", LockKey::new(long.clone()).map(drop)),
        ("rate limit key", RateLimitKey::new(long.clone()).map(drop)),
        ("channel", Channel::new(long.clone()).map(drop)),
        ("empty cache key", CacheKey::new("").map(drop)),
        ("empty lock key", LockKey::new("").map(drop)),
    ] {
        let e = result.expect_err(name);
        assert!(!e.to_string().is_empty() && !e.to_string().contains(&long), "{name}: {e}");
    }
    // The same through the port's error type.
    let e: KvError = CacheKey::new(long).unwrap_err().into();
    assert!(matches!(e, KvError::Validation(_)), "{e:?}");
}

#[test]
fn a_million_session_ids_are_distinct_and_carry_256_random_bits() {
    let mut seen = HashSet::with_capacity(1_000_000);
    for _ in 0..1_000_000 {
        let id = SessionId::generate();
        assert_eq!(id.as_str().len(), SessionId::LEN);
        assert!(seen.insert(id.as_str().to_owned()), "a collision among a million ids");
    }
    // 43 characters of URL-safe base64 carry 256 bits; over a million ids every character position takes
    // (nearly) all 64 symbols, as uniform randomness would.
    for position in [0, 21, 41] {
        let symbols: HashSet<u8> = seen.iter().map(|s| s.as_bytes()[position]).collect();
        assert!(symbols.len() >= 60, "position {position}: only {} symbols", symbols.len());
    }
}

/// Every config type formatted every way, and every log line (all levels) written while PostgreSQL and Redis
/// refuse a wrong password and while servers are unreachable: the password shows nowhere.
#[tokio::test(flavor = "current_thread")]
async fn passwords_never_show_in_debug_display_errors_or_logs() {
    const PG_SECRET: &str = "pg-Secret-4kQ9";
    const REDIS_SECRET: &str = "redis-Secret-7xW2";
    let (captured, _guard) = logs::capture();
    let mut shown = String::new();

    let pg = PrivatePostgres::builder().password_auth("the-right-one").start().await;
    let pg_config = PgConfig::from_url(&pg.url_for_user("postgres", Some(PG_SECRET))).unwrap();
    shown += &format!("{pg_config:?} {pg_config} {:?} {:?}", PoolConfig::default(), SqliteConfig::shared_memory("x"));
    let err = PoolFactory::create_postgres_pool(&pg_config, &PoolConfig::default()).await.unwrap_err();
    shown += &format!("{err} {err:?}");
    let unreachable = PgConfig::from_url(&format!("postgres://app:{PG_SECRET}@127.0.0.1:1/db")).unwrap();
    let err = PoolFactory::create_postgres_pool(&unreachable, &PoolConfig::default()).await.unwrap_err();
    shown += &format!("{unreachable:?} {unreachable} {err} {err:?}");

    let redis = PrivateRedis::with_password("the-right-one").await;
    let redis_config = RedisConfig::builder().port(redis.port()).password(REDIS_SECRET).build().unwrap();
    shown += &format!("{redis_config:?} {redis_config}");
    let err = RedisManager::new(&redis_config).await.unwrap_err();
    assert!(matches!(err, KvError::Authentication { .. }), "{err:?}");
    shown += &format!("{err} {err:?}");
    let url = RedisConfig::parse_url(&format!("redis://:{REDIS_SECRET}@127.0.0.1:1/0"), "REDIS_URL").unwrap();
    let err = RedisManager::new(&url).await.unwrap_err();
    shown += &format!("{url:?} {url} {err} {err:?}");

    let logs = captured.text();
    for secret in [PG_SECRET, REDIS_SECRET] {
        assert!(!shown.contains(secret), "{secret} shows in a Debug, Display or error: {shown}");
        assert!(!logs.contains(secret), "{secret} shows in the logs:\n{logs}");
    }
    assert!(shown.contains("127.0.0.1"), "the formatted values say where: {shown}");
    assert!(!logs.is_empty(), "nothing was logged: the capture would prove nothing");
    eprintln!("{} bytes of logs captured, {} lines", logs.len(), logs.lines().count());
}
