//! Turning redis-rs errors into [`KvError`]s a caller can act on.

use std::time::Duration;

use cpc_domain::ValidationError;
use cpc_ports::KvError;
use redis::{ErrorKind, RedisError};

/// Maps a redis-rs error: rejected credentials and a key, channel or command the ACL user may not use (`NOPERM`)
/// are `Authentication` (also when a cluster node refused them), a server certificate the client refuses
/// `Validation` (naming `ca_cert`, or `host` for a name the certificate does not cover), an unanswered command
/// `Timeout`, a refused or dropped connection `Unavailable`, the rest `Backend`.
pub(crate) fn classify(e: RedisError, operation: &'static str, response_timeout: Duration) -> KvError {
    let code = e.code().unwrap_or("");
    // The cluster client keeps only the text of a node's refusal ("Failed to create initial connections - Io:
    // Password authentication failed - AuthenticationFailed"), so the text is matched too.
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM")
        || e.to_string().contains("- AuthenticationFailed")
    {
        return KvError::Authentication { backend: "redis", reason: e.to_string() };
    }
    if let Some(error) = certificate_error(&e) {
        return error;
    }
    if e.is_timeout() {
        return KvError::Timeout { operation, after: response_timeout };
    }
    if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() || matches!(code, "LOADING" | "BUSY") {
        return KvError::Unavailable { backend: "redis", reason: e.to_string() };
    }
    KvError::backend("redis", e)
}

/// A TLS handshake that failed because the client refused the server's certificate (rustls's "invalid peer
/// certificate: UnknownIssuer", "...NotValidForName"...), as a `Validation` error: retrying cannot help, the
/// configuration must change. redis-rs keeps only the text of the I/O error (the cluster client wraps it in
/// "Failed to create initial connections - ..."), so the text is what is matched.
fn certificate_error(e: &RedisError) -> Option<KvError> {
    let text = e.to_string();
    if !text.contains("invalid peer certificate") {
        return None;
    }
    let field = if text.contains("NotValidForName") { "host" } else { "ca_cert" };
    Some(KvError::Validation(ValidationError::new(field, format!("the server's TLS certificate was refused: {text}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_server_certificate_is_a_validation_error_naming_the_field_to_fix() {
        let io = |m: &str| RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned()));
        let field = |e: KvError| match e {
            KvError::Validation(v) => v.field.into_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        };
        let wrong_ca = classify(io("invalid peer certificate: UnknownIssuer"), "connect", Duration::ZERO);
        assert!(!wrong_ca.is_retryable() && wrong_ca.to_string().contains("UnknownIssuer"), "{wrong_ca}");
        assert_eq!(field(wrong_ca), "ca_cert");
        let name = classify(io("invalid peer certificate: NotValidForName"), "connect", Duration::ZERO);
        assert_eq!(field(name), "host");
        let reset = classify(io("Connection reset by peer"), "connect", Duration::ZERO);
        assert!(matches!(reset, KvError::Unavailable { .. }), "{reset:?}");
    }
}
