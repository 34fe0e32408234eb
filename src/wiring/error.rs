//! [`WiringError`]: why the composition root could not build the ports.

use std::path::PathBuf;
use std::sync::Arc;

use cpc_ports::ConfigError;

/// Why [`wire`](super::wire) failed. `Display` is one line that names the server (its address, never a
/// password) and the cause, fit to print before exiting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    /// An environment variable (or setting) is missing or malformed: [`ConfigError::key`] names it, and the
    /// error that caused it, if any, is its source.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The data directory of the embedded database could not be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A server (or the embedded database) could not be reached or prepared.
    #[error("{server} at {address}: {cause}")]
    Server {
        /// `"PostgreSQL"`, `"SQLite"` or `"Redis"`.
        server: &'static str,
        /// Where it is (`host:port/database`, `host:port` or a file path); never a password.
        address: String,
        /// What went wrong, on one line.
        cause: String,
        /// The error the server's client reported, for callers that walk [`std::error::Error::source`].
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl WiringError {
    /// A [`WiringError::Server`] caused by `error`: its message flattened to one line, and itself as the source.
    pub(crate) fn server(
        server: &'static str,
        address: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::server_in(server, address, None, error)
    }

    /// [`WiringError::server`] with what was being done (`"migrations failed"`) before the cause.
    pub(crate) fn server_in(
        server: &'static str,
        address: impl Into<String>,
        doing: Option<&str>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let cause = one_line(&error.to_string());
        let cause = match doing {
            Some(doing) => format!("{doing}: {cause}"),
            None => cause,
        };
        Self::Server { server, address: address.into(), cause, source: Some(Arc::new(error)) }
    }
}

/// Joins the lines of `s` with "; " so a multi-line driver message stays on one line.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}
