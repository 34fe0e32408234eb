//! The [`SessionStore`] port: server-side sessions behind an unguessable id.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Codec, KvError, SessionId};

/// Server-side session storage. The byte-level core; [`SessionStoreExt`] adds typed data.
///
/// Implementations: Redis (`SessionManager` in `cpc-adapters`), in-process (`cpc-adapters`, feature `memory`;
/// re-exported by `cpc-testkit`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `data` under a fresh random id that lives for `ttl`.
    ///
    /// MUST return an id no other live session has. MUST refuse a zero `ttl` with [`KvError::Validation`].
    async fn create_bytes(&self, data: Bytes, ttl: Duration) -> Result<SessionId, KvError>;

    /// Stores `data` under an id the caller chose (for frameworks that make their own ids, such as
    /// tower-sessions), for `ttl`; returns whether it stored.
    ///
    /// MUST NOT overwrite a live session: if `id` is taken it returns `Ok(false)` and changes nothing (the
    /// caller draws another id). MUST refuse a zero `ttl` with [`KvError::Validation`]. The caller is
    /// responsible for the id being unguessable.
    async fn insert_bytes(&self, id: &SessionId, data: Bytes, ttl: Duration) -> Result<bool, KvError>;

    /// Returns the session's data, or `None` if it never existed, was destroyed, cycled away, or expired.
    async fn load_bytes(&self, id: &SessionId) -> Result<Option<Bytes>, KvError>;

    /// Replaces the session's data, keeping its remaining lifetime.
    ///
    /// MUST return [`KvError::NotFound`] (and create nothing) if the session is gone: a save MUST NOT revive an
    /// expired or destroyed session.
    async fn save_bytes(&self, id: &SessionId, data: Bytes) -> Result<(), KvError>;

    /// Resets the session's lifetime to `ttl` from now. MUST return [`KvError::NotFound`] if it is gone, and
    /// MUST refuse a zero `ttl` with [`KvError::Validation`] (rather than deleting the session).
    async fn extend(&self, id: &SessionId, ttl: Duration) -> Result<(), KvError>;

    /// Deletes the session; returns whether it existed.
    async fn destroy(&self, id: &SessionId) -> Result<bool, KvError>;

    /// Moves the session to a fresh id (do it at login, against session fixation) and returns the new id.
    ///
    /// MUST keep the data and the remaining lifetime. After it, the old id MUST NOT load.
    /// MUST return [`KvError::NotFound`] if the session is gone.
    async fn cycle_id(&self, id: &SessionId) -> Result<SessionId, KvError>;

    /// How long the session has left, or `None` if it is gone.
    async fn ttl(&self, id: &SessionId) -> Result<Option<Duration>, KvError>;

    /// The codec the typed methods of [`SessionStoreExt`] use.
    fn codec(&self) -> Codec;
}

/// Typed session data over any [`SessionStore`]. Blanket-implemented, `dyn SessionStore` included.
#[async_trait]
pub trait SessionStoreExt: SessionStore {
    /// Creates a session holding `data`.
    async fn create<T: Serialize + Sync + ?Sized>(&self, data: &T, ttl: Duration) -> Result<SessionId, KvError> {
        let bytes = self.codec().encode(data)?;
        self.create_bytes(bytes, ttl).await
    }

    /// Loads and decodes a session's data.
    async fn load<T: DeserializeOwned + Send>(&self, id: &SessionId) -> Result<Option<T>, KvError> {
        match self.load_bytes(id).await? {
            Some(bytes) => Ok(Some(self.codec().decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Encodes and saves a session's data.
    async fn save<T: Serialize + Sync + ?Sized>(&self, id: &SessionId, data: &T) -> Result<(), KvError> {
        let bytes = self.codec().encode(data)?;
        self.save_bytes(id, bytes).await
    }
}

impl<S: SessionStore + ?Sized> SessionStoreExt for S {}
