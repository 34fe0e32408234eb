//! Turning tokio-postgres errors into precise [`DatabaseError`] variants.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

use super::PgConfig;
use crate::pool::DatabaseError;

/// Classifies a connect or query error by the server's SQLSTATE, else by the I/O or TLS error underneath.
pub(crate) fn classify(e: tokio_postgres::Error, config: &PgConfig) -> DatabaseError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            return DatabaseError::Authentication { user: config.user.clone(), message: db.message().to_owned() };
        }
        if *code == SqlState::QUERY_CANCELED && db.message().contains("statement timeout") {
            return DatabaseError::QueryTimeout { setting: "statement_timeout", after: config.timeouts.statement };
        }
        if *code == SqlState::LOCK_NOT_AVAILABLE {
            return DatabaseError::QueryTimeout { setting: "lock_timeout", after: config.timeouts.lock };
        }
        if *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT {
            return DatabaseError::Unavailable(format!(
                "{} (idle_in_transaction_session_timeout {:?}: the transaction was rolled back)",
                db.message(),
                config.timeouts.idle_in_transaction
            ));
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return DatabaseError::DatabaseNotFound { database: config.database.clone() };
        }
        if [
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
        {
            return DatabaseError::Unavailable(db.message().to_owned());
        }
        return DatabaseError::Query(std::sync::Arc::new(e));
    }
    // The top-level message is often generic ("invalid configuration"); the chain says what happened.
    let mut message = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        message = format!("{message}: {s}");
        next = s.source();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return DatabaseError::Tls { address: config.address(), message: format!("{message}: {s}") };
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) {
                return DatabaseError::Tls { address: config.address(), message: format!("{message}: {io}") };
            }
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused | NotFound | AddrNotAvailable | HostUnreachable | NetworkUnreachable | TimedOut => {
                    return DatabaseError::ConnectionRefused { address: config.address(), message: io.to_string() };
                }
                _ => {}
            }
        }
        source = s.source();
    }
    if message.contains("TLS") || message.contains("tls") {
        return DatabaseError::Tls { address: config.address(), message };
    }
    if message.contains("password missing") {
        return DatabaseError::Authentication { user: config.user.clone(), message };
    }
    if message.contains("timeout") || message.contains("timed out") {
        return DatabaseError::ConnectionRefused { address: config.address(), message };
    }
    // A closed connection, an I/O error mid-query, an unexpected message: the server is not serving us now.
    DatabaseError::Unavailable(message)
}
