//! [`InMemorySessionStore`]: the in-memory [`SessionStore`], with lifetimes on tokio's clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cpc_ports::{Codec, KvError, SessionId, SessionStore};
use tokio::time::Instant;

/// How many writes (creates, saves, extends, cycles) pass between two sweeps of every expired session.
const SWEEP_EVERY_WRITES: usize = 64;

/// A [`SessionStore`] in process memory that behaves like the Redis one: every session has a lifetime, a save
/// keeps the remaining lifetime and never revives a session that is gone, and `cycle_id` moves data and lifetime
/// to a fresh [`SessionId::generate`] id.
///
/// Time is tokio's ([`tokio::time::Instant`]), so a test can `tokio::time::pause()` and `advance()` through a
/// lifetime. Expired sessions are removed when touched, and all of them every 64 writes, so memory does not grow
/// under churn; no background task is spawned.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use cpc_ports::{Codec, SessionStoreExt};
/// use cpc_memory::InMemorySessionStore;
///
/// let store = InMemorySessionStore::new().with_codec(Codec::msgpack());
/// let id = store.create(&"alice", Duration::from_secs(60)).await.unwrap();
/// assert_eq!(store.load::<String>(&id).await.unwrap().as_deref(), Some("alice"));
/// # }
/// ```
#[derive(Debug, Default)]
pub struct InMemorySessionStore {
    codec: Codec,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, Entry>,
    writes_since_sweep: usize,
}

#[derive(Debug)]
struct Entry {
    data: Bytes,
    expires_at: Instant,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

impl State {
    /// The live session under `id`, removing it first if it has expired.
    fn live_mut(&mut self, id: &SessionId, now: Instant) -> Option<&mut Entry> {
        if self.sessions.get(id).is_some_and(|e| !e.is_live(now)) {
            self.sessions.remove(id);
        }
        self.sessions.get_mut(id)
    }

    /// Counts a write, and every [`SWEEP_EVERY_WRITES`] writes drops every expired session.
    fn note_write(&mut self, now: Instant) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= SWEEP_EVERY_WRITES {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.sessions.retain(|_, e| e.is_live(now));
        self.writes_since_sweep = 0;
    }

    /// A fresh id no stored session has (a collision of 256 random bits will not happen, but costs nothing to
    /// rule out).
    fn fresh_id(&self) -> SessionId {
        loop {
            let id = SessionId::generate();
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// When a lifetime of `ttl` that starts `now` ends: refuses a zero `ttl`, and one too long for the clock.
fn deadline(now: Instant, ttl: Duration) -> Result<Instant, KvError> {
    if ttl.is_zero() {
        return Err(KvError::invalid("ttl", "must be greater than zero"));
    }
    now.checked_add(ttl).ok_or_else(|| KvError::invalid("ttl", "is too long"))
}

fn not_found() -> KvError {
    KvError::NotFound { what: "session" }
}

impl InMemorySessionStore {
    /// An empty store using the default codec (JSON).
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store, with `codec` for the typed methods of [`cpc_ports::SessionStoreExt`].
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Test aid: how many sessions are held in memory right now, including expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Test aid: whether no session is held in memory (expired ones not yet purged count as held).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired session now, rather than at the next sweep. Returns how many were dropped.
    pub fn purge_expired(&self) -> usize {
        let mut state = self.lock();
        let before = state.sessions.len();
        state.sweep(Instant::now());
        before - state.sessions.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionStore for InMemorySessionStore {
    async fn create_bytes(&self, data: Bytes, ttl: Duration) -> Result<SessionId, KvError> {
        cpc_ports::check_payload(&data)?;
        let now = Instant::now();
        let expires_at = deadline(now, ttl)?;
        let mut state = self.lock();
        state.note_write(now);
        let id = state.fresh_id();
        state.sessions.insert(id.clone(), Entry { data, expires_at });
        Ok(id)
    }

    async fn insert_bytes(&self, id: &SessionId, data: Bytes, ttl: Duration) -> Result<bool, KvError> {
        cpc_ports::check_payload(&data)?;
        let now = Instant::now();
        let expires_at = deadline(now, ttl)?;
        let mut state = self.lock();
        state.note_write(now);
        if state.live_mut(id, now).is_some() {
            return Ok(false);
        }
        state.sessions.insert(id.clone(), Entry { data, expires_at });
        Ok(true)
    }

    async fn load_bytes(&self, id: &SessionId) -> Result<Option<Bytes>, KvError> {
        Ok(self.lock().live_mut(id, Instant::now()).map(|e| e.data.clone()))
    }

    async fn save_bytes(&self, id: &SessionId, data: Bytes) -> Result<(), KvError> {
        cpc_ports::check_payload(&data)?;
        let now = Instant::now();
        let mut state = self.lock();
        state.note_write(now);
        let entry = state.live_mut(id, now).ok_or_else(not_found)?;
        entry.data = data;
        Ok(())
    }

    async fn extend(&self, id: &SessionId, ttl: Duration) -> Result<(), KvError> {
        let now = Instant::now();
        let expires_at = deadline(now, ttl)?;
        let mut state = self.lock();
        state.note_write(now);
        let entry = state.live_mut(id, now).ok_or_else(not_found)?;
        entry.expires_at = expires_at;
        Ok(())
    }

    async fn destroy(&self, id: &SessionId) -> Result<bool, KvError> {
        let now = Instant::now();
        Ok(self.lock().sessions.remove(id).is_some_and(|e| e.is_live(now)))
    }

    async fn cycle_id(&self, id: &SessionId) -> Result<SessionId, KvError> {
        let now = Instant::now();
        let mut state = self.lock();
        state.note_write(now);
        state.live_mut(id, now).ok_or_else(not_found)?;
        let entry = state.sessions.remove(id).ok_or_else(not_found)?;
        let new_id = state.fresh_id();
        state.sessions.insert(new_id.clone(), entry);
        Ok(new_id)
    }

    async fn ttl(&self, id: &SessionId) -> Result<Option<Duration>, KvError> {
        let now = Instant::now();
        Ok(self.lock().live_mut(id, now).map(|e| e.expires_at.saturating_duration_since(now)))
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }
}
