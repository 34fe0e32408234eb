//! The app code of `consent_manager`: a subject grants and revokes consent per purpose, the history is kept (a
//! revocation sets `revoked_at` on the grant, never deletes it), the current state is one query, and the history
//! is paged newest first. It knows only ports and its own record: no adapter type.
//!
//! Decisions:
//! * A second active grant of one subject and purpose is refused with [`ConsentError::AlreadyGranted`] (not made
//!   idempotent): the caller learns the grant it holds is the earlier one, with its source and time. The partial
//!   unique index `consents_purpose_key` is what guarantees it, also between two concurrent grants: the service
//!   reads nothing before it inserts, it maps the database's duplicate conflict.
//! * Revoking what is not active (never granted, or revoked already) is `Ok(None)` and writes nothing.

use std::sync::Arc;

use cpc_data::domain::ValidationError;
use cpc_data::ports::repository::stored_now;
use cpc_data::ports::{ConflictKind, Cursor, Page, Query, Record, RecordStore, RecordStoreExt, RepoError, Repository};

use crate::records::{ACTIVE_GRANT_FIELD, Consent, ConsentChanges, ConsentField, NewConsent};

/// Why a consent operation failed, in terms a caller (or an HTTP layer) can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The input is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The subject holds an active grant for this purpose already (409; nothing to do).
    #[error("{subject} already consents to {purpose}")]
    AlreadyGranted {
        /// The subject.
        subject: String,
        /// The purpose.
        purpose: String,
    },
    /// A write collided with a concurrent one (409; retry).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database is down (503; retry later).
    #[error("consent unavailable: {0}")]
    Unavailable(String),
}

impl From<RepoError> for ConsentError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Validation(v) => Self::Invalid(v),
            e @ RepoError::Conflict { .. } => Self::Conflict(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// The ports the service runs on.
pub struct ConsentPorts {
    /// Grants and their revocations.
    pub consents: Arc<dyn Repository<Consent>>,
}

impl ConsentPorts {
    /// The app's repository from a database that knows its record.
    pub fn from_store(store: &dyn RecordStore) -> Result<Self, RepoError> {
        Ok(Self { consents: store.repo()? })
    }
}

/// The most active purposes a subject's current state lists (one page of the one query).
pub const MAX_PURPOSES: u32 = 1000;

/// The consent service.
pub struct Consents {
    ports: ConsentPorts,
}

/// A trimmed, non-empty, bounded text field.
fn text(field: &'static str, value: &str, max: usize) -> Result<String, ValidationError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} characters")));
    }
    Ok(value.to_owned())
}

impl Consents {
    /// A service on `ports`.
    pub fn new(ports: ConsentPorts) -> Self {
        Self { ports }
    }

    /// Records that `subject` consents to `purpose` (from `source`, e.g. `signup-form`).
    ///
    /// One insert, no read first: a second active grant, also one racing this one, is refused by the unique
    /// index and comes back as [`ConsentError::AlreadyGranted`].
    pub async fn grant(&self, subject: &str, purpose: &str, source: &str) -> Result<Consent, ConsentError> {
        let subject = text("subject", subject, 200)?;
        let purpose = text("purpose", purpose, 100)?;
        if source.chars().count() > 200 {
            return Err(ValidationError::new("source", "must be at most 200 characters").into());
        }
        let new = NewConsent { subject: subject.clone(), purpose: purpose.clone(), source: source.trim().to_owned() };
        match self.ports.consents.create(new).await {
            Ok(consent) => Ok(consent),
            Err(RepoError::Conflict { kind: ConflictKind::Duplicate { field }, .. }) if field == ACTIVE_GRANT_FIELD => {
                Err(ConsentError::AlreadyGranted { subject, purpose })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes `subject`'s active grant for `purpose`: `Some(the revoked grant)`, or `None` when there is none
    /// (never granted, or revoked already), in which case nothing is written.
    ///
    /// The revocation is an optimistic update of the version read; if a concurrent revocation wins, this one
    /// writes nothing and answers `None` as well.
    pub async fn revoke(&self, subject: &str, purpose: &str) -> Result<Option<Consent>, ConsentError> {
        let subject = text("subject", subject, 200)?;
        let purpose = text("purpose", purpose, 100)?;
        let query = Query::new()
            .eq(ConsentField::subject, subject.as_str())
            .eq(ConsentField::purpose, purpose.as_str())
            .is_null(ConsentField::revoked_at)
            // Keyset from the start: one SELECT (offset paging would also count the matches).
            .after(None, 1);
        let Some(active) = self.ports.consents.find_page(&query).await?.items.into_iter().next() else {
            return Ok(None);
        };
        // At the precision the stores keep, so the revocation returned equals the one read back later.
        let changes = ConsentChanges { revoked_at: Some(Some(stored_now())) };
        match self.ports.consents.update(&active.id, active.version(), changes).await {
            Ok(revoked) => Ok(Some(revoked)),
            // Revoked (or gone) meanwhile: the other revocation did the work.
            Err(RepoError::Conflict { kind: ConflictKind::StaleVersion { .. }, .. } | RepoError::NotFound { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `subject`'s active grants, by purpose: one repository query (one SELECT). More than [`MAX_PURPOSES`] active
    /// grants is an error rather than a silently shortened answer.
    pub async fn current(&self, subject: &str) -> Result<Vec<Consent>, ConsentError> {
        let subject = text("subject", subject, 200)?;
        let query = Query::new()
            .eq(ConsentField::subject, subject.as_str())
            .is_null(ConsentField::revoked_at)
            .asc(ConsentField::purpose)
            .after(None, MAX_PURPOSES);
        let page = self.ports.consents.find_page(&query).await?;
        if page.next_cursor.is_some() {
            return Err(ValidationError::new("subject", "holds more active grants than MAX_PURPOSES (1000)").into());
        }
        Ok(page.items)
    }

    /// One page of `subject`'s grants, active and revoked, newest grant first; pass the page's `next_cursor` back
    /// for the next one. Keyset paging: grants made meanwhile never shift a page.
    pub async fn history(
        &self,
        subject: &str,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Consent>, ConsentError> {
        let subject = text("subject", subject, 200)?;
        let query = Query::new()
            .eq(ConsentField::subject, subject.as_str())
            .desc(ConsentField::granted_at)
            .desc(ConsentField::id)
            .after(after, limit);
        Ok(self.ports.consents.find_page(&query).await?)
    }
}
