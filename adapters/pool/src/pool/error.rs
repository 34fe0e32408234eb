//! [`DatabaseError`]: what went wrong reaching a database, precise enough to act on.

use std::time::Duration;

use std::sync::Arc;

use cpc_ports::{ConfigError, RepoError};

/// Why a pool could not give out a connection, or a query failed. Each failure that has a different fix has its
/// own variant: a wrong password is [`Authentication`](DatabaseError::Authentication), not a timeout 30 s later.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseError {
    /// The configuration is invalid; the [`ConfigError`] names the setting or environment variable and keeps
    /// what caused it.
    #[error("invalid database configuration: {0}")]
    Config(#[source] ConfigError),
    /// The server refused the credentials (wrong password, unknown role, no `pg_hba.conf` entry).
    #[error("authentication failed for user {user:?}: {message}")]
    Authentication {
        /// The user that tried to log in.
        user: String,
        /// The server's message.
        message: String,
    },
    /// The database named in the configuration does not exist.
    #[error("database {database:?} does not exist")]
    DatabaseNotFound {
        /// The missing database.
        database: String,
    },
    /// Nothing listens at the address, or it cannot be reached (refused, unreachable, DNS failure).
    #[error("cannot connect to {address}: {message}")]
    ConnectionRefused {
        /// `host:port` (or the socket or file path).
        address: String,
        /// The operating system's message.
        message: String,
    },
    /// The TLS handshake failed: the server does not offer TLS, or its certificate is not trusted or not valid
    /// for the host name.
    #[error("TLS with {address} failed: {message}")]
    Tls {
        /// `host:port`.
        address: String,
        /// Why.
        message: String,
    },
    /// No connection became free within the pool's `connection_timeout`.
    #[error("no connection available within {0:?} (pool exhausted)")]
    PoolTimeout(Duration),
    /// The server is there but cannot serve now (shutting down, starting up, too many connections), or the
    /// connection broke mid-query.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server cut a statement off at one of its limits (the PostgreSQL pool's `QueryTimeouts`):
    /// `setting` is `statement_timeout` or `lock_timeout`, `after` the configured limit.
    #[error("the statement was cancelled by the server's {setting} ({after:?})")]
    QueryTimeout {
        /// The PostgreSQL setting that ran out.
        setting: &'static str,
        /// Its value.
        after: Duration,
    },
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl DatabaseError {
    /// A configuration error for `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config(ConfigError::new(field, message))
    }

    /// This error as the library-wide [`ConfigError`] when it is a configuration error (`None` otherwise).
    pub fn to_config_error(&self) -> Option<ConfigError> {
        match self {
            Self::Config(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// True for failures that may pass by themselves: timeouts, refused connections, an unavailable server.
    /// Wrong credentials, a missing database, TLS and configuration errors need someone to fix something.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::PoolTimeout(_) | Self::QueryTimeout { .. } | Self::ConnectionRefused { .. } | Self::Unavailable(_)
        )
    }

    /// True for failures that no amount of waiting fixes (used by the pool to fail waiting checkouts at once).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Config(_) | Self::Authentication { .. } | Self::DatabaseNotFound { .. } | Self::Tls { .. })
    }
}

impl From<ConfigError> for DatabaseError {
    /// [`DatabaseError::Config`] holding it.
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<DatabaseError> for RepoError {
    fn from(e: DatabaseError) -> Self {
        let backend = "database";
        match e {
            DatabaseError::PoolTimeout(after) => RepoError::Timeout { operation: "acquire connection", after },
            DatabaseError::QueryTimeout { setting, after } => RepoError::Timeout { operation: setting, after },
            DatabaseError::ConnectionRefused { .. } | DatabaseError::Unavailable(_) => {
                RepoError::Unavailable { backend, reason: e.to_string() }
            }
            other => RepoError::backend(backend, other),
        }
    }
}
