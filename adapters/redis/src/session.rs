//! [`SessionManager`]: the [`SessionStore`] port over Redis hashes, changed atomically by Lua scripts.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{Bytes, Codec, KvError, SessionId, SessionStore};
use redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::classify;
use super::metrics::{Instruments, operations};
use super::ttl::{MAX_TTL_MILLIS, ttl_millis as millis};
use super::{CacheManager, RedisManager};

operations!(SessionOp {
    Create = "create",
    Insert = "insert",
    Load = "load",
    Save = "save",
    Extend = "extend",
    Destroy = "destroy",
    CycleId = "cycle_id",
    Ttl = "ttl",
});

/// How many fresh ids a create or cycle tries before giving up (a collision of 256 random bits does not happen;
/// this bounds the loop all the same).
const ID_ATTEMPTS: usize = 8;
/// How many ids `cycle_id` draws at most to find one in the old id's hash slot (1 in 64 match; 4096 draws all
/// failing has a probability of about 1e-28).
const SLOT_DRAWS: usize = 4096;

/// `KEYS[1]` session; `ARGV` data, ttl ms, absolute ttl ms (0: none). Creates only if absent (NX), stamps
/// `created_at` from the server's clock, expires after `min(ttl, absolute)`. Returns 1, or 0 if the id is taken.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local abs = tonumber(ARGV[3])
if abs > 0 and abs < ttl then ttl = abs end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'c', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
",
    )
});

/// `KEYS[1]` session; `ARGV` data. Replaces the data of a live session, keeping its TTL (`HSET` on an existing
/// hash leaves the expiry alone); never creates one. Returns 1, or 0 if the session is gone.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1])
return 1
",
    )
});

/// `KEYS[1]` session; `ARGV` ttl ms, absolute ttl ms (0: none). Sets the lifetime to `ttl` from now, capped at
/// `created_at + absolute` (server clock); a session past that deadline is deleted. Returns the lifetime set in
/// ms, or -1 if the session is gone.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ttl = tonumber(ARGV[1])
local abs = tonumber(ARGV[2])
if abs > 0 then
  local created = tonumber(redis.call('HGET', KEYS[1], 'c'))
  if created then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local left = created + abs - now
    if left <= 0 then
      redis.call('DEL', KEYS[1])
      return -1
    end
    if left < ttl then ttl = left end
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return ttl
",
    )
});

/// `KEYS[1]` old session, `KEYS[2]` new (same hash slot). Moves data, `created_at` and remaining TTL to the new
/// key unless it exists (`RENAMENX` keeps the TTL). Returns 1, 0 if the new key is taken, -1 if the old is gone.
static CYCLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('RENAMENX', KEYS[1], KEYS[2])
",
    )
});

/// The Redis [`SessionStore`].
///
/// Each session is a Redis hash under the manager's namespace, `session:{c}<id>` where `c` is the id's first
/// character (a hash tag: see [`SessionStore::cycle_id`] below), with the fields `d` (the data, bytes as given)
/// and `c` (created at, milliseconds of the server's clock). Every session key has a TTL:
///
/// * create: a Lua script, `NX` semantics (an existing id is never overwritten), `created_at` from `TIME`;
/// * load: `HGET d`; destroy: `UNLINK`; ttl: `PTTL`;
/// * save: a script that writes `d` only if the session is live, so it keeps the TTL (like `SET XX KEEPTTL`)
///   and never revives an expired or destroyed session;
/// * extend: a script resetting the idle (sliding) expiry to the TTL given, capped by the absolute expiry
///   ([`SessionManager::with_absolute_ttl`]) when one is set;
/// * cycle_id: a script `RENAMENX`-ing the session to a fresh id, moving data, `created_at` and the remaining
///   lifetime in one step. Both keys must share a hash slot (a cluster runs a script on one slot), so the new id
///   is drawn from [`SessionId::generate`] until its first character matches the old one's: about 64 draws,
///   leaving 250 of its 256 random bits unknown to whoever knew the old id.
///
/// Ids come from [`SessionId::generate`]: 256 bits from the OS's CSPRNG, URL-safe. A malformed id string (a forged
/// or garbled cookie) is refused by [`SessionId::parse`] before any round trip: see
/// [`SessionManager::get_session_str`].
///
/// Lifetimes are rounded down to whole milliseconds (at least 1 ms).
///
/// ```no_run
/// # async fn demo() -> Result<(), cpc_ports::KvError> {
/// use std::time::Duration;
/// use cpc_redis::{CacheManager, RedisConfig, RedisManager, SessionManager};
///
/// let redis_manager = RedisManager::new(&RedisConfig::from_env()?).await?;
/// let cache_manager = CacheManager::new(redis_manager, Duration::from_secs(300));
/// let session_manager = SessionManager::new(cache_manager).with_absolute_ttl(Duration::from_secs(12 * 3600));
/// let session_id = session_manager.create_session(&"alice", Duration::from_secs(3600)).await?;
/// let user: Option<String> = session_manager.get_session(&session_id).await?;
/// session_manager.extend_session(&session_id, Duration::from_secs(3600)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    manager: RedisManager,
    codec: Codec,
    absolute_ttl: Option<Duration>,
    metrics: Arc<Instruments<SessionOp>>,
}

impl SessionManager {
    /// A store over `manager` (a [`RedisManager`], or a [`CacheManager`], whose manager is used),
    /// with the JSON codec and no absolute expiry. To keep a cache's codec, use `SessionManager::from(cache)`.
    pub fn new(manager: impl Into<RedisManager>) -> Self {
        Self { manager: manager.into(), codec: Codec::json(), absolute_ttl: None, metrics: Instruments::new("session") }
    }

    /// The same store, with `codec` for the typed methods.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same store, with an absolute expiry: a session never lives past its creation plus `ttl`, however
    /// often it is extended (creates and extends are capped at that deadline; a `cycle_id` keeps the creation
    /// time). The deadline is measured on the server's clock. A zero `ttl` means none.
    #[must_use]
    pub fn with_absolute_ttl(mut self, ttl: Duration) -> Self {
        self.absolute_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// The Redis manager this store runs on.
    pub fn manager(&self) -> &RedisManager {
        &self.manager
    }

    /// The absolute expiry, if set.
    pub fn absolute_ttl(&self) -> Option<Duration> {
        self.absolute_ttl
    }

    /// Creates a session holding `data` (encoded with the codec) for `ttl`; returns its fresh id.
    pub async fn create_session<T: Serialize + Sync + ?Sized>(
        &self,
        data: &T,
        ttl: Duration,
    ) -> Result<SessionId, KvError> {
        let bytes = self.codec.encode(data)?;
        self.create_bytes(bytes, ttl).await
    }

    /// Loads and decodes a session's data; `None` if it is gone. Foreign bytes are a [`KvError::Codec`].
    pub async fn get_session<T: DeserializeOwned>(&self, id: &SessionId) -> Result<Option<T>, KvError> {
        match self.load_bytes(id).await? {
            Some(bytes) => Ok(Some(self.codec.decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// [`SessionManager::get_session`] for an id straight from a cookie: an id that [`SessionId::parse`] refuses
    /// is `Ok(None)` (no such session) without a round trip to Redis.
    pub async fn get_session_str<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, KvError> {
        match SessionId::parse(id) {
            Ok(id) => self.get_session(&id).await,
            Err(_) => Ok(None),
        }
    }

    /// Resets the session's idle lifetime to `ttl` from now (capped by the absolute expiry);
    /// [`KvError::NotFound`] if it is gone.
    pub async fn extend_session(&self, id: &SessionId, ttl: Duration) -> Result<(), KvError> {
        self.extend(id, ttl).await
    }

    /// The Redis key of session `id`, with the hash tag shared by every id starting with the same character.
    fn key(&self, id: &SessionId) -> String {
        let text = id.as_str();
        let tag = text.get(..1).unwrap_or_default();
        self.manager.key(&format!("session:{{{tag}}}{text}"))
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(redis::RedisError) -> KvError + '_ {
        move |e| classify(e, operation, self.manager.config().response_timeout)
    }

    fn absolute_millis(&self) -> u64 {
        self.absolute_ttl.map_or(0, |t| millis(t).unwrap_or(MAX_TTL_MILLIS))
    }

    /// Runs the create script for `id` (NX): whether the session was stored.
    async fn create_at(&self, id: &SessionId, data: &Bytes, ttl_millis: u64) -> Result<bool, KvError> {
        let mut invocation = CREATE.key(self.key(id));
        invocation.arg(data.as_ref()).arg(ttl_millis).arg(self.absolute_millis());
        let created: i64 = self.run(&invocation, "create session").await?;
        Ok(created == 1)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        operation: &'static str,
    ) -> Result<T, KvError> {
        let mut conn = self.manager.connection();
        invocation.invoke_async(&mut conn).await.map_err(self.error(operation))
    }
}

fn not_found() -> KvError {
    KvError::NotFound { what: "session" }
}

impl From<CacheManager> for SessionManager {
    /// A store on the cache's manager, with the cache's codec.
    fn from(cache: CacheManager) -> Self {
        let codec = cpc_ports::Cache::codec(&cache);
        Self::new(cache).with_codec(codec)
    }
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("namespace", &self.manager.config().namespace)
            .field("codec", &self.codec)
            .field("absolute_ttl", &self.absolute_ttl)
            .finish()
    }
}

#[async_trait]
impl SessionStore for SessionManager {
    async fn create_bytes(&self, data: Bytes, ttl: Duration) -> Result<SessionId, KvError> {
        cpc_ports::check_payload(&data)?;
        self.metrics
            .run(SessionOp::Create, async {
                let ttl = millis(ttl)?;
                for _ in 0..ID_ATTEMPTS {
                    let id = SessionId::generate();
                    if self.create_at(&id, &data, ttl).await? {
                        return Ok(id);
                    }
                }
                Err(KvError::backend("redis", "no free session id after several random draws"))
            })
            .await
    }

    async fn insert_bytes(&self, id: &SessionId, data: Bytes, ttl: Duration) -> Result<bool, KvError> {
        cpc_ports::check_payload(&data)?;
        self.metrics.run(SessionOp::Insert, async { self.create_at(id, &data, millis(ttl)?).await }).await
    }

    async fn load_bytes(&self, id: &SessionId) -> Result<Option<Bytes>, KvError> {
        self.metrics
            .run(SessionOp::Load, async {
                let data: Option<Vec<u8>> =
                    self.manager.query(redis::cmd("HGET").arg(self.key(id)).arg("d"), "load session").await?;
                Ok(data.map(Bytes::from))
            })
            .await
    }

    async fn save_bytes(&self, id: &SessionId, data: Bytes) -> Result<(), KvError> {
        cpc_ports::check_payload(&data)?;
        self.metrics
            .run(SessionOp::Save, async {
                let mut invocation = SAVE.key(self.key(id));
                invocation.arg(data.as_ref());
                let saved: i64 = self.run(&invocation, "save session").await?;
                if saved == 1 { Ok(()) } else { Err(not_found()) }
            })
            .await
    }

    async fn extend(&self, id: &SessionId, ttl: Duration) -> Result<(), KvError> {
        self.metrics
            .run(SessionOp::Extend, async {
                let ttl = millis(ttl)?;
                let mut invocation = EXTEND.key(self.key(id));
                invocation.arg(ttl).arg(self.absolute_millis());
                let set: i64 = self.run(&invocation, "extend session").await?;
                if set > 0 { Ok(()) } else { Err(not_found()) }
            })
            .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<bool, KvError> {
        self.metrics
            .run(SessionOp::Destroy, async {
                let n: u64 = self.manager.query(redis::cmd("UNLINK").arg(self.key(id)), "destroy session").await?;
                Ok(n > 0)
            })
            .await
    }

    async fn cycle_id(&self, id: &SessionId) -> Result<SessionId, KvError> {
        self.metrics
            .run(SessionOp::CycleId, async {
                let old_key = self.key(id);
                for _ in 0..ID_ATTEMPTS {
                    let new = same_slot_id(id)?;
                    let mut invocation = CYCLE.key(&old_key);
                    invocation.key(self.key(&new));
                    let moved: i64 = self.run(&invocation, "cycle session id").await?;
                    match moved {
                        1 => return Ok(new),
                        0 => continue,
                        _ => return Err(not_found()),
                    }
                }
                Err(KvError::backend("redis", "no free session id after several random draws"))
            })
            .await
    }

    async fn ttl(&self, id: &SessionId) -> Result<Option<Duration>, KvError> {
        self.metrics
            .run(SessionOp::Ttl, async {
                let left: i64 = self.manager.query(redis::cmd("PTTL").arg(self.key(id)), "session ttl").await?;
                Ok(match left {
                    // A session key without expiry was not written by this store; it lives until deleted.
                    -1 => Some(Duration::MAX),
                    m if m < 0 => None,
                    m => Some(Duration::from_millis(m.unsigned_abs())),
                })
            })
            .await
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }
}

/// A fresh id whose first character, and so whose key's hash slot, is the same as `old`'s.
fn same_slot_id(old: &SessionId) -> Result<SessionId, KvError> {
    let want = old.as_str().as_bytes().first().copied();
    for _ in 0..SLOT_DRAWS {
        let id = SessionId::generate();
        if id.as_str().as_bytes().first().copied() == want && id != *old {
            return Ok(id);
        }
    }
    Err(KvError::backend("redis", "no fresh session id in the same hash slot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycled_id_keeps_the_hash_tag() {
        let old = SessionId::generate();
        let new = same_slot_id(&old).unwrap();
        assert_ne!(old, new);
        assert_eq!(old.as_str()[..1], new.as_str()[..1]);
    }

    #[test]
    fn lifetimes_round_down_to_milliseconds_and_refuse_zero() {
        assert_eq!(millis(Duration::from_micros(1500)).unwrap(), 1);
        assert_eq!(millis(Duration::from_micros(10)).unwrap(), 1);
        assert!(matches!(millis(Duration::ZERO), Err(KvError::Validation(_))));
        assert!(matches!(millis(Duration::MAX), Err(KvError::Validation(_))));
    }
}
