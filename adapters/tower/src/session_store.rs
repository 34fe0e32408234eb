//! [`TowerSessionStore`]: any [`SessionStore`] as a [`tower_sessions_core::SessionStore`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{KvError, SessionId, SessionStore};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, Error};

/// How many ids a create draws before giving up (a collision of 128 random bits does not happen).
const ID_ATTEMPTS: usize = 8;

/// A record's data, as tower-sessions keeps it.
type Data = HashMap<String, serde_json::Value>;

/// Any [`SessionStore`] of ours (Redis' `SessionManager`, the in-memory one, a decorated one) as the store of
/// tower-sessions' `SessionManagerLayer`:
///
/// * ids: tower-sessions draws 128-bit random ids ([`Id`]); the session lives under the [`SessionId`] made of
///   those 16 bytes followed by 16 zero bytes. A create stores with [`SessionStore::insert_bytes`] (never
///   overwriting: on a collision it draws a new id, as tower-sessions asks of stores);
/// * data: the record's map, encoded with the store's [`Codec`](cpc_ports::Codec);
/// * expiry: the store's lifetime is the record's expiry date minus now, so the store drops the session then
///   (a save resets it, which is how `Expiry::OnInactivity` slides); a load reads the lifetime back as the
///   expiry date; a record already expired is deleted rather than saved;
/// * a save of a session that is gone (deleted by a logout in another request, or expired) is dropped, never
///   stored again: a request racing a logout cannot bring the session back;
/// * `cycle_id`: tower-sessions deletes the old id and creates the session under a new one, so the old id no
///   longer loads.
///
/// ```
/// use std::sync::Arc;
/// use cpc_tower::TowerSessionStore;
/// use cpc_memory::InMemorySessionStore;
///
/// let store = TowerSessionStore::new(Arc::new(InMemorySessionStore::new()));
/// // let layer = tower_sessions::SessionManagerLayer::new(store);
/// ```
pub struct TowerSessionStore<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: ?Sized> Clone for TowerSessionStore<S> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<S: ?Sized> std::fmt::Debug for TowerSessionStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TowerSessionStore").finish_non_exhaustive()
    }
}

impl<S: SessionStore + ?Sized> TowerSessionStore<S> {
    /// Serves tower-sessions from `inner`.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }

    /// The store sessions live in.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The [`SessionId`] a tower-sessions [`Id`] is stored under.
    pub fn session_id(id: &Id) -> SessionId {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&id.0.to_le_bytes());
        SessionId::from_bytes(&bytes)
    }

    fn encode(&self, data: &Data) -> session_store::Result<cpc_ports::Bytes> {
        self.inner.codec().encode(data).map_err(|e| Error::Encode(e.to_string()))
    }

    /// Stores under `record.id` if free, drawing new ids on collisions.
    async fn insert(&self, record: &mut Record, ttl: Duration) -> session_store::Result<()> {
        let data = self.encode(&record.data)?;
        for _ in 0..ID_ATTEMPTS {
            if self.inner.insert_bytes(&Self::session_id(&record.id), data.clone(), ttl).await.map_err(backend)? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id after several random draws".into()))
    }
}

/// The time from now until `expiry`, rounded up to a millisecond; `None` if it has passed.
fn lifetime(expiry: OffsetDateTime) -> Option<Duration> {
    let left = Duration::try_from(expiry - OffsetDateTime::now_utc()).ok()?;
    (!left.is_zero()).then(|| left.max(Duration::from_millis(1)))
}

/// Now plus `ttl`, saturating at the latest date `time` represents (a store may keep a session for longer).
fn expiry_after(ttl: Duration) -> OffsetDateTime {
    let latest = time::PrimitiveDateTime::MAX.assume_utc();
    time::Duration::try_from(ttl).ok().and_then(|ttl| OffsetDateTime::now_utc().checked_add(ttl)).unwrap_or(latest)
}

fn backend(e: KvError) -> Error {
    match e {
        KvError::Codec(e) => Error::Decode(e.to_string()),
        e => Error::Backend(e.to_string()),
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> tower_sessions_core::SessionStore for TowerSessionStore<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match lifetime(record.expiry_date) {
            Some(ttl) => self.insert(record, ttl).await,
            None => Ok(()),
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let id = Self::session_id(&record.id);
        let Some(ttl) = lifetime(record.expiry_date) else {
            self.inner.destroy(&id).await.map_err(backend)?;
            return Ok(());
        };
        let data = self.encode(&record.data)?;
        let saved = match self.inner.save_bytes(&id, data).await {
            Ok(()) => self.inner.extend(&id, ttl).await,
            Err(e) => Err(e),
        };
        match saved {
            Ok(()) => Ok(()),
            // Gone meanwhile (a logout in another request, or expiry): it stays gone. Storing it again would undo
            // the logout.
            Err(KvError::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let sid = Self::session_id(id);
        let Some(bytes) = self.inner.load_bytes(&sid).await.map_err(backend)? else {
            return Ok(None);
        };
        let Some(ttl) = self.inner.ttl(&sid).await.map_err(backend)? else {
            return Ok(None);
        };
        let data: Data = self.inner.codec().decode(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date: expiry_after(ttl) }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.inner.destroy(&Self::session_id(id)).await.map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_one_to_one_and_lifetimes_round_up() {
        type Store = TowerSessionStore<dyn SessionStore>;
        let (a, b) = (Id(1), Id(-1));
        assert_ne!(Store::session_id(&a), Store::session_id(&b));
        assert_eq!(Store::session_id(&a), Store::session_id(&Id(1)));
        assert_eq!(lifetime(OffsetDateTime::now_utc() - time::Duration::seconds(1)), None);
        assert_eq!(expiry_after(Duration::MAX), time::PrimitiveDateTime::MAX.assume_utc(), "saturates, no panic");
        let left = lifetime(OffsetDateTime::now_utc() + time::Duration::seconds(60)).unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59), "{left:?}");
    }
}
