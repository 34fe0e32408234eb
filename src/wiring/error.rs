//! [`WiringError`]: why the composition root could not build the ports.

use std::path::PathBuf;

/// Why [`wire`](super::wire) failed. `Display` is one line that names the server (its address, never a
/// password) and the cause, fit to print before exiting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    /// An environment variable (or setting) is malformed; the message names it.
    #[error("configuration error: {0}")]
    Config(String),
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
    },
}

impl WiringError {
    /// A [`WiringError::Server`] whose cause is `cause` flattened to one line.
    pub(crate) fn server(server: &'static str, address: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Self::Server { server, address: address.into(), cause: one_line(&cause.to_string()) }
    }

    /// A [`WiringError::Config`] from any configuration error, on one line.
    pub(crate) fn config(cause: impl std::fmt::Display) -> Self {
        Self::Config(one_line(&cause.to_string()))
    }
}

/// Joins the lines of `s` with "; " so a multi-line driver message stays on one line.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}
