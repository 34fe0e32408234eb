//! Encryption at rest through the real adapters: the cache and the sessions on Redis, the cache and the sessions
//! on PostgreSQL (`cpc-pg-kv`) and the sessions on SQLite (`cpc-sqlite-kv`), each given an encrypting codec. The
//! bytes are read back raw from the server (`GET`/`HGET`, `SELECT`) and must be sealed envelopes naming the key,
//! without the plaintext; then the keys rotate: a store with the old and a new key reads what the old key sealed
//! and writes with the new one, and a store that dropped the old key names it in the error.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "redis", feature = "pg-kv", feature = "sqlite-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::pg_kv::{PgCache, PgSessionStore};
use cpc_adapters::redis::{CacheManager, RedisManager, SessionManager};
use cpc_adapters::sqlite_kv::SqliteSessionStore;
use cpc_ports::codec::{ENCRYPTED_HEADER_VERSION, MAGIC};
use cpc_ports::{
    Cache, CacheExt, CacheKey, Codec, CodecError, KeyId, Keyring, KvError, SessionId, SessionStore, SessionStoreExt,
};
use serde::{Deserialize, Serialize};

/// Text that must never reach a server in clear.
const MARKER: &str = "card-4111-1111-1111-1111";
const TTL: Duration = Duration::from_secs(120);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Visit {
    user: String,
    card: String,
}

fn visit() -> Visit {
    Visit { user: "ada".into(), card: MARKER.into() }
}

/// A JSON codec encrypting with `keys` (id, key byte), the last one primary.
fn codec(keys: &[(&str, u8)]) -> Codec {
    let keyring = Keyring::new(keys.iter().map(|(id, byte)| (KeyId::new(*id).unwrap(), [*byte; 32]))).unwrap();
    Codec::json().with_encryption(keyring)
}

const OLD: (&str, u8) = ("old", 1);
const NEW: (&str, u8) = ("new", 2);

/// `raw` is an envelope sealed with `key_id` that does not hold the plaintext.
fn assert_sealed(raw: &[u8], key_id: &str, what: &str) {
    assert_eq!(&raw[..2], &[MAGIC, ENCRYPTED_HEADER_VERSION], "{what}: not an encrypted envelope");
    let id_len = usize::from(raw[4]);
    assert_eq!(std::str::from_utf8(&raw[5..5 + id_len]).unwrap(), key_id, "{what}: sealed with another key");
    assert!(!raw.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "{what}: the plaintext is stored in clear");
}

/// One backend: its stores under a given codec (a cache when it has one), and the bytes it stored, read raw.
#[async_trait::async_trait]
trait Backend: Sync {
    fn cache(&self, codec: Codec) -> Option<Arc<dyn Cache>>;
    fn sessions(&self, codec: Codec) -> Arc<dyn SessionStore>;
    async fn raw_cache(&self, key: &CacheKey) -> Vec<u8>;
    async fn raw_session(&self, id: &SessionId) -> Vec<u8>;
}

/// Writes with the old key, reads raw, rotates, reads raw again, and drops the old key.
async fn exercise(backend: &dyn Backend, name: &str) {
    let key = CacheKey::new("visit").unwrap();
    let sessions = backend.sessions(codec(&[OLD]));
    let id = sessions.create(&visit(), TTL).await.unwrap();
    assert_sealed(&backend.raw_session(&id).await, "old", &format!("{name} session"));
    if let Some(cache) = backend.cache(codec(&[OLD])) {
        cache.set(&key, &visit(), None).await.unwrap();
        assert_sealed(&backend.raw_cache(&key).await, "old", &format!("{name} cache"));
    }

    let rotated = backend.sessions(codec(&[OLD, NEW]));
    assert_eq!(rotated.load::<Visit>(&id).await.unwrap(), Some(visit()), "{name}: the old key still reads");
    rotated.save(&id, &visit()).await.unwrap();
    assert_sealed(&backend.raw_session(&id).await, "new", &format!("{name} session, rotated"));
    if let Some(cache) = backend.cache(codec(&[OLD, NEW])) {
        assert_eq!(cache.get::<Visit>(&key).await.unwrap(), Some(visit()), "{name}: the old key still reads");
        cache.set(&key, &visit(), None).await.unwrap();
        assert_sealed(&backend.raw_cache(&key).await, "new", &format!("{name} cache, rotated"));
    }

    let retired = backend.sessions(codec(&[OLD])).create(&visit(), TTL).await.unwrap();
    let only_new = backend.sessions(codec(&[NEW]));
    assert_eq!(only_new.load::<Visit>(&id).await.unwrap(), Some(visit()), "{name}");
    match only_new.load::<Visit>(&retired).await {
        Err(KvError::Codec(CodecError::UnknownKey { key_id })) => assert_eq!(key_id, "old", "{name}"),
        other => panic!("{name}: a value sealed with a dropped key must name it, got {other:?}"),
    }
    match backend.sessions(Codec::json()).load::<Visit>(&id).await {
        Err(KvError::Codec(CodecError::NoKeyring)) => {}
        other => panic!("{name}: a codec without keys must refuse an envelope, got {other:?}"),
    }
    if let Some(cache) = backend.cache(codec(&[NEW])) {
        assert_eq!(cache.get::<Visit>(&key).await.unwrap(), Some(visit()), "{name}");
    }
}

struct Redis {
    manager: RedisManager,
}

#[async_trait::async_trait]
impl Backend for Redis {
    fn cache(&self, codec: Codec) -> Option<Arc<dyn Cache>> {
        Some(Arc::new(CacheManager::new(self.manager.clone(), TTL).with_codec(codec)))
    }
    fn sessions(&self, codec: Codec) -> Arc<dyn SessionStore> {
        Arc::new(SessionManager::new(self.manager.clone()).with_codec(codec))
    }
    async fn raw_cache(&self, key: &CacheKey) -> Vec<u8> {
        let stored = CacheManager::new(self.manager.clone(), TTL).stored_key(key.as_str());
        redis::cmd("GET").arg(stored).query_async(&mut self.manager.connection()).await.unwrap()
    }
    async fn raw_session(&self, id: &SessionId) -> Vec<u8> {
        let keys = common::redis::namespace_keys(&self.manager).await;
        let key = keys.iter().find(|k| k.contains("session:") && k.ends_with(id.as_str())).expect("the session's hash");
        redis::cmd("HGET").arg(key).arg("d").query_async(&mut self.manager.connection()).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stores_cache_values_and_sessions_encrypted_and_rotates() {
    let manager = common::redis::shared_manager("encryption").await;
    exercise(&Redis { manager }, "Redis").await;
}

struct Postgres {
    pool: cpc_adapters::postgres::PgPool,
    client: tokio_postgres::Client,
}

#[async_trait::async_trait]
impl Backend for Postgres {
    fn cache(&self, codec: Codec) -> Option<Arc<dyn Cache>> {
        Some(Arc::new(PgCache::new(self.pool.clone()).with_default_ttl(TTL).with_codec(codec)))
    }
    fn sessions(&self, codec: Codec) -> Arc<dyn SessionStore> {
        Arc::new(PgSessionStore::new(self.pool.clone()).with_codec(codec))
    }
    async fn raw_cache(&self, key: &CacheKey) -> Vec<u8> {
        let key = key.as_str().as_bytes();
        self.client.query_one("SELECT value FROM cpc_cache WHERE key = $1", &[&key]).await.unwrap().get(0)
    }
    async fn raw_session(&self, id: &SessionId) -> Vec<u8> {
        let id = id.as_str();
        self.client.query_one("SELECT data FROM cpc_sessions WHERE id = $1", &[&id]).await.unwrap().get(0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stores_cache_values_and_sessions_encrypted_and_rotates() {
    let db = common::pg_kv::migrated_database().await;
    let backend = Postgres { pool: common::pg_kv::pool_of(&db, 4).await, client: db.connect().await };
    exercise(&backend, "PostgreSQL").await;
}

struct Sqlite {
    pool: cpc_adapters::sqlite::SqlitePool,
    path: PathBuf,
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    /// The SQLite backend keeps the cache in process (`cpc_data::wiring`); its sessions are in the file.
    fn cache(&self, _: Codec) -> Option<Arc<dyn Cache>> {
        None
    }
    fn sessions(&self, codec: Codec) -> Arc<dyn SessionStore> {
        Arc::new(SqliteSessionStore::new(self.pool.clone()).with_codec(codec))
    }
    async fn raw_cache(&self, _: &CacheKey) -> Vec<u8> {
        unreachable!("no cache on SQLite")
    }
    async fn raw_session(&self, id: &SessionId) -> Vec<u8> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.query_row("SELECT data FROM cpc_sessions WHERE id = ?1", [id.as_str()], |row| row.get(0)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_stores_sessions_encrypted_and_rotates() {
    let h = common::sqlite_kv::harness("encryption.db", |pool| pool).await;
    let backend = Sqlite { pool: h.port.clone(), path: h.path.clone() };
    exercise(&backend, "SQLite").await;
}
