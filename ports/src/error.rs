//! The two error families: [`RepoError`] for the data ports (repositories, unit of work) and [`KvError`] for the
//! key-value and coordination ports (cache, lock, rate limiter, sessions, pub/sub). Variants are semantic, so a
//! caller can act on them without knowing which backend is behind the port.

use std::borrow::Cow;
use std::time::Duration;

use cpc_domain::{ValidationError, Version};

use crate::codec::CodecError;

/// A boxed error from a backend driver, kept as the `source` of a [`RepoError::Backend`] or [`KvError::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a write conflicted with what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    /// A unique field already holds this value (e.g. the e-mail of another user).
    Duplicate {
        /// The field (or constraint) that must be unique.
        field: String,
    },
    /// The row changed since the caller read it: optimistic locking refused the update.
    StaleVersion {
        /// The version the caller said it had.
        expected: Version,
        /// The version stored now.
        actual: Version,
    },
    /// The database aborted the write because of a concurrent one (serialization failure, deadlock); retrying
    /// the whole unit of work may succeed.
    Concurrent,
}

impl std::fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Duplicate { field } => write!(f, "duplicate value for unique field `{field}`"),
            Self::StaleVersion { expected, actual } => {
                write!(f, "stale version: expected {expected}, stored {actual}")
            }
            Self::Concurrent => f.write_str("aborted by a concurrent transaction"),
        }
    }
}

/// The error of every data port: [`Repository`](crate::Repository) and friends, [`UnitOfWork`](crate::UnitOfWork).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// No row with this id (for operations that need one, such as `update`).
    #[error("{entity} {id} not found")]
    NotFound {
        /// The record type, e.g. `"user"`.
        entity: &'static str,
        /// The id that was looked for.
        id: String,
    },
    /// The write conflicts with stored data.
    #[error("conflict on {entity}: {kind}")]
    Conflict {
        /// The record type.
        entity: &'static str,
        /// What conflicted.
        kind: ConflictKind,
    },
    /// The request itself is invalid: a bad filter value, a page size of 0, a garbled cursor, an invalid model,
    /// or a broken reference (a foreign key naming a row that does not exist, or deleting a row others still
    /// refer to), naming the field (e.g. `user_id`).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The operation did not finish within its time limit.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done, e.g. `"acquire connection"`.
        operation: &'static str,
        /// The limit that ran out.
        after: Duration,
    },
    /// The backend could not be reached or refused to serve (connection refused, server shutting down).
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// Which backend, e.g. `"postgres"`.
        backend: &'static str,
        /// What happened, in words.
        reason: String,
    },
    /// The repository is a restricted view ([`ReadOnly`](crate::ReadOnly), [`Scoped`](crate::Scoped)) and
    /// this operation is outside what it allows: any write through a read-only view, or a write that would put a
    /// row outside a scoped view's scope. Nothing was written. Not retryable: the caller has to use another
    /// repository or change its input.
    #[error("{operation} on {entity} is forbidden: {reason}")]
    Forbidden {
        /// The record type, e.g. `"transaction"`.
        entity: &'static str,
        /// The refused operation: `"create"`, `"create_many"`, `"update"` or `"delete"`.
        operation: &'static str,
        /// Why, in words (naming the scope's field, never its value).
        reason: String,
    },
    /// The unit of work this repository belongs to was already committed or rolled back.
    #[error("the unit of work was already committed or rolled back")]
    TransactionFinished,
    /// A transaction nested in this one ([`Tx::savepoint`](crate::Tx::savepoint)) is still open: only the
    /// innermost open transaction may be used. Finish the nested one (commit, rollback or drop) first.
    #[error("a transaction nested in this one is still open; finish it first")]
    NestedTransactionOpen,
    /// Anything else the backend reported.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl RepoError {
    /// True when trying the same operation again later may succeed: timeouts, an unavailable backend, and
    /// conflicts caused by a concurrent transaction. A stale version or a duplicate is not retryable: the caller
    /// must re-read or change its input.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Unavailable { .. } | Self::Conflict { kind: ConflictKind::Concurrent, .. }
        )
    }

    /// The variant in snake case (`not_found`, `conflict`, `validation`, `timeout`, `unavailable`, `forbidden`,
    /// `transaction_finished`, `nested_transaction_open`, `backend`), for metric labels and log fields: never
    /// data or secrets. A broken reference is a `validation` error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::Validation(_) => "validation",
            Self::Timeout { .. } => "timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Forbidden { .. } => "forbidden",
            Self::TransactionFinished => "transaction_finished",
            Self::NestedTransactionOpen => "nested_transaction_open",
            Self::Backend { .. } => "backend",
        }
    }

    /// A [`RepoError::Backend`] wrapping `source`.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend { backend, source: source.into() }
    }

    /// The rule of [`RepoError::missing_reference`].
    pub const MISSING_REFERENCE: &'static str = "refers to a row that does not exist";

    /// The rule of [`RepoError::still_referenced`].
    pub const STILL_REFERENCED: &'static str =
        "the row is still referred to by other rows; delete or change them first";

    /// A [`RepoError::Validation`] for a write whose `field` (a foreign key, e.g. `user_id`) names a row that
    /// does not exist. Its rule is [`RepoError::MISSING_REFERENCE`].
    pub fn missing_reference(field: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation(ValidationError::new(field, Self::MISSING_REFERENCE))
    }

    /// A [`RepoError::Validation`] for deleting a row that other rows still refer to through `field` (e.g.
    /// `user_id` of transactions, when deleting a user). Its rule is [`RepoError::STILL_REFERENCED`].
    pub fn still_referenced(field: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation(ValidationError::new(field, Self::STILL_REFERENCED))
    }
}

/// The error of every key-value and coordination port: [`Cache`](crate::Cache), [`Lock`](crate::Lock),
/// [`RateLimiter`](crate::RateLimiter), [`SessionStore`](crate::SessionStore), [`PubSub`](crate::PubSub).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The thing the operation needs does not exist (e.g. saving a session that expired).
    #[error("{what} not found")]
    NotFound {
        /// What was missing, e.g. `"session"`.
        what: &'static str,
    },
    /// The request is invalid: a bad key, a zero TTL, a cost above the limit.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The value is larger than the store accepts ([`MAX_PAYLOAD_BYTES`] for sessions, jobs and messages, the
    /// cache's own limit for cache entries); nothing was written or sent.
    #[error("value of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Bytes could not be encoded or decoded (including foreign or garbled bytes found in the store).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The lock lease expired or was taken over; the holder must stop its protected work.
    #[error("lock lease on {key:?} was lost")]
    LeaseLost {
        /// The lock key.
        key: String,
    },
    /// A subscriber fell behind and messages were dropped to bound memory.
    #[error("subscriber lagged behind; {missed} messages were dropped")]
    Lagged {
        /// How many messages were dropped.
        missed: u64,
    },
    /// The operation did not finish within its time limit (including waiting for a lock).
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The limit that ran out.
        after: Duration,
    },
    /// The backend refused the credentials (wrong password, unknown ACL user, missing permission). Not
    /// retryable: someone has to fix the configuration.
    #[error("{backend} refused the credentials: {reason}")]
    Authentication {
        /// Which backend.
        backend: &'static str,
        /// The server's message.
        reason: String,
    },
    /// The backend could not be reached or refused to serve.
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// Which backend, e.g. `"redis"`.
        backend: &'static str,
        /// What happened, in words.
        reason: String,
    },
    /// Anything else the backend reported.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The backend, as configured, cannot do this at all (e.g. pattern subscriptions on a Redis Cluster, whose
    /// sharded pub/sub has no pattern form). Not retryable: the call or the configuration has to change.
    #[error("{backend} does not support {operation}: {reason}")]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// What was asked, e.g. `"pattern subscriptions"`.
        operation: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
    },
}

/// The largest session, job payload or pub/sub message any implementation accepts: 8 MiB, as the cache's default.
/// A larger one is [`KvError::TooLarge`] before anything is written or sent.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;

/// [`KvError::TooLarge`] when `payload` exceeds [`MAX_PAYLOAD_BYTES`].
pub fn check_payload(payload: &[u8]) -> Result<(), KvError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(KvError::TooLarge { size: payload.len(), max: MAX_PAYLOAD_BYTES });
    }
    Ok(())
}

impl KvError {
    /// True when trying the same operation again later may succeed: timeouts and an unavailable backend.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Unavailable { .. })
    }

    /// Every value [`KvError::kind`] returns, in declaration order.
    pub const KINDS: [&'static str; 11] = [
        "not_found",
        "validation",
        "too_large",
        "codec",
        "lease_lost",
        "lagged",
        "timeout",
        "authentication",
        "unavailable",
        "backend",
        "unsupported",
    ];

    /// The variant in snake case (one of [`KvError::KINDS`]), for metric labels and log fields: never data or
    /// secrets.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// The position of [`KvError::kind`] in [`KvError::KINDS`], for counters kept in an array.
    pub fn kind_index(&self) -> usize {
        match self {
            Self::NotFound { .. } => 0,
            Self::Validation(_) => 1,
            Self::TooLarge { .. } => 2,
            Self::Codec(_) => 3,
            Self::LeaseLost { .. } => 4,
            Self::Lagged { .. } => 5,
            Self::Timeout { .. } => 6,
            Self::Authentication { .. } => 7,
            Self::Unavailable { .. } => 8,
            Self::Backend { .. } => 9,
            Self::Unsupported { .. } => 10,
        }
    }

    /// A [`KvError::Backend`] wrapping `source`.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend { backend, source: source.into() }
    }

    /// A [`KvError::Validation`] for `field` breaking `rule`.
    pub fn invalid(field: &'static str, rule: &'static str) -> Self {
        Self::Validation(ValidationError::new(field, rule))
    }

    /// A configuration's validation error as the library-wide [`ConfigError`](crate::ConfigError) (the Redis
    /// configurations report a bad setting as [`KvError::Validation`] naming it); `None` for any other error.
    pub fn to_config_error(&self) -> Option<crate::ConfigError> {
        match self {
            Self::Validation(e) => Some(e.clone().into()),
            _ => None,
        }
    }
}

/// What the two error families of the ports have in common, for code that wraps any port (the decorators of
/// `cpc-observe`: spans, metrics, timeouts, retries): [`KvError`] and [`RepoError`].
pub trait PortError: std::error::Error + Send + Sync + 'static {
    /// The variant in snake case, for labels.
    fn kind(&self) -> &'static str;
    /// Whether trying again later may succeed.
    fn is_retryable(&self) -> bool;
    /// The error of an operation cut off after `after`.
    fn timed_out(operation: &'static str, after: Duration) -> Self;
}

impl PortError for KvError {
    fn kind(&self) -> &'static str {
        KvError::kind(self)
    }
    fn is_retryable(&self) -> bool {
        KvError::is_retryable(self)
    }
    fn timed_out(operation: &'static str, after: Duration) -> Self {
        Self::Timeout { operation, after }
    }
}

impl PortError for RepoError {
    fn kind(&self) -> &'static str {
        RepoError::kind(self)
    }
    fn is_retryable(&self) -> bool {
        RepoError::is_retryable(self)
    }
    fn timed_out(operation: &'static str, after: Duration) -> Self {
        Self::Timeout { operation, after }
    }
}

impl From<crate::ConfigError> for RepoError {
    /// A configuration error met by a call that returns the repositories' error (running migrations on a
    /// configuration, say): [`RepoError::Validation`] naming the same key.
    fn from(e: crate::ConfigError) -> Self {
        Self::Validation(ValidationError::new(e.key().to_owned(), e.reason().to_owned()))
    }
}

impl From<crate::ConfigError> for KvError {
    /// A configuration error met by a call that returns the ports' error (building a manager from a
    /// configuration, say): [`KvError::Validation`] naming the same key.
    fn from(e: crate::ConfigError) -> Self {
        Self::Validation(ValidationError::new(e.key().to_owned(), e.reason().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        let t = RepoError::Timeout { operation: "query", after: Duration::from_secs(1) };
        assert!(t.is_retryable());
        let stale = RepoError::Conflict {
            entity: "user",
            kind: ConflictKind::StaleVersion { expected: Version::FIRST, actual: Version::new(2) },
        };
        assert!(!stale.is_retryable());
        assert!(RepoError::Conflict { entity: "user", kind: ConflictKind::Concurrent }.is_retryable());
        assert!(KvError::Unavailable { backend: "redis", reason: "refused".into() }.is_retryable());
        assert!(!KvError::invalid("key", "must not be empty").is_retryable());
        assert_eq!(stale.to_string(), "conflict on user: stale version: expected v1, stored v2");
        assert_eq!(
            (stale.kind(), t.kind(), RepoError::TransactionFinished.kind()),
            ("conflict", "timeout", "transaction_finished")
        );
        let kv = KvError::Unavailable { backend: "redis", reason: "refused".into() };
        assert_eq!((kv.kind(), KvError::invalid("k", "r").kind()), ("unavailable", "validation"));
        assert_eq!(KvError::LeaseLost { key: "k".into() }.kind(), "lease_lost");
        let missing = RepoError::missing_reference("user_id");
        assert_eq!(missing.to_string(), "invalid user_id: refers to a row that does not exist");
        assert_eq!((missing.kind(), missing.is_retryable()), ("validation", false));
        let busy = RepoError::NestedTransactionOpen;
        assert_eq!((busy.kind(), busy.is_retryable()), ("nested_transaction_open", false));
        let refused = RepoError::Forbidden { entity: "user", operation: "delete", reason: "read-only view".into() };
        assert_eq!((refused.kind(), refused.is_retryable()), ("forbidden", false));
        assert_eq!(refused.to_string(), "delete on user is forbidden: read-only view");
    }
}
