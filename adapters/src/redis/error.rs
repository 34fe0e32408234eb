//! Turning redis-rs errors into [`KvError`]s a caller can act on.

use std::time::Duration;

use cpc_ports::KvError;
use redis::{ErrorKind, RedisError};

/// Maps a redis-rs error: rejected credentials are `Authentication`, an unanswered command `Timeout`, a refused
/// or dropped connection `Unavailable`, the rest `Backend`.
pub(crate) fn classify(e: RedisError, operation: &'static str, response_timeout: Duration) -> KvError {
    let code = e.code().unwrap_or("");
    if e.kind() == ErrorKind::AuthenticationFailed || matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM") {
        return KvError::Authentication { backend: "redis", reason: e.to_string() };
    }
    if e.is_timeout() {
        return KvError::Timeout { operation, after: response_timeout };
    }
    if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() || matches!(code, "LOADING" | "BUSY") {
        return KvError::Unavailable { backend: "redis", reason: e.to_string() };
    }
    KvError::backend("redis", e)
}
