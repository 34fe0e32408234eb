//! [`SqliteConfig`]: which SQLite database, and the pragmas every connection gets.

use std::path::PathBuf;
use std::time::Duration;

use cpc_ports::ConfigError;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// A database file (created if missing).
    File(PathBuf),
    /// A named in-memory database shared by every connection of the pool (SQLite's `memdb` VFS). It lives as long
    /// as the pool.
    SharedMemory(String),
}

/// How to open SQLite connections. Defaults: WAL journal, `busy_timeout` 5 s, foreign keys on,
/// `synchronous = NORMAL` (durable with WAL except on power loss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database.
    pub target: SqliteTarget,
    /// How long a statement waits for a lock held by another connection before failing.
    pub busy_timeout: Duration,
    /// Enforce foreign keys (`PRAGMA foreign_keys`).
    pub foreign_keys: bool,
    /// Use write-ahead logging for files (`PRAGMA journal_mode = WAL`): readers do not block the writer.
    pub wal: bool,
}

/// Whether `url` names a SQLite database (`sqlite:` in any of its forms).
fn is_sqlite_url(url: &str) -> bool {
    url.starts_with("sqlite:")
}

impl SqliteConfig {
    /// A database file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::with_target(SqliteTarget::File(path.into()))
    }

    /// A named in-memory database shared by the pool's connections.
    pub fn shared_memory(name: impl Into<String>) -> Self {
        Self::with_target(SqliteTarget::SharedMemory(name.into()))
    }

    fn with_target(target: SqliteTarget) -> Self {
        Self { target, busy_timeout: Duration::from_secs(5), foreign_keys: true, wal: true }
    }

    /// Parses a location: a path, `sqlite://path`, `sqlite:path`, or `sqlite::memory:<name>` for a named shared
    /// in-memory database. A plain `:memory:` is refused: it would give every pooled connection its own, empty,
    /// private database.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let rest = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")).unwrap_or(s);
        if rest.is_empty() {
            return Err(ConfigError::new("path", "must not be empty"));
        }
        if rest == ":memory:" || rest.starts_with("file::memory:") {
            return Err(ConfigError::new(
                "path",
                "':memory:' gives every pooled connection its own empty database; \
                 use SqliteConfig::shared_memory(name) or 'sqlite::memory:<name>'",
            ));
        }
        if let Some(name) = rest.strip_prefix(":memory:") {
            return Ok(Self::shared_memory(name));
        }
        Ok(Self::file(rest))
    }

    /// Whether a variable lookup chooses SQLite: `SQLITE_PATH` is set, or `DATABASE_URL` is a `sqlite:` URL.
    /// The one rule every configuration path (the composition root, migrations, [`SqliteConfig::from_env`])
    /// uses to tell SQLite from PostgreSQL.
    pub fn is_chosen_by(get: impl Fn(&str) -> Option<String>) -> bool {
        get("SQLITE_PATH").is_some() || get("DATABASE_URL").is_some_and(|u| is_sqlite_url(&u))
    }

    /// `SQLITE_PATH`, else a `sqlite:` `DATABASE_URL`; errors name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`SqliteConfig::from_env`] over any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (var, value) = match (get("SQLITE_PATH"), get("DATABASE_URL")) {
            (Some(p), _) => ("SQLITE_PATH", p),
            (None, Some(u)) if is_sqlite_url(&u) => ("DATABASE_URL", u),
            _ => return Err(ConfigError::new("SQLITE_PATH", "not set (nor a sqlite: DATABASE_URL)")),
        };
        Self::parse(&value).map_err(|e| ConfigError::new(var, e.reason()))
    }

    /// Sets `busy_timeout`.
    pub fn busy_timeout(mut self, t: Duration) -> Self {
        self.busy_timeout = t;
        self
    }

    /// Turns WAL on or off (files only).
    pub fn wal(mut self, on: bool) -> Self {
        self.wal = on;
        self
    }

    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.target {
            SqliteTarget::File(p) if p.as_os_str().is_empty() => Err(ConfigError::new("path", "must not be empty")),
            SqliteTarget::SharedMemory(n) if n.is_empty() || n.contains(['/', '?', '#']) => {
                Err(ConfigError::new("name", "must be non-empty without '/', '?' or '#'"))
            }
            _ => Ok(()),
        }
    }

    /// The path or in-memory name, for messages.
    pub fn describe(&self) -> String {
        match &self.target {
            SqliteTarget::File(p) => p.display().to_string(),
            SqliteTarget::SharedMemory(n) => format!(":memory:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_urls_and_named_memory() {
        assert_eq!(SqliteConfig::parse("data/app.db").unwrap().target, SqliteTarget::File("data/app.db".into()));
        assert_eq!(
            SqliteConfig::parse("sqlite://data/app.db").unwrap().target,
            SqliteTarget::File("data/app.db".into())
        );
        assert_eq!(
            SqliteConfig::parse("sqlite::memory:tests").unwrap().target,
            SqliteTarget::SharedMemory("tests".into())
        );
    }

    #[test]
    fn a_plain_memory_database_is_refused_with_the_reason() {
        for s in [":memory:", "sqlite::memory:", "sqlite://:memory:"] {
            match SqliteConfig::parse(s) {
                Err(e) => {
                    assert_eq!(e.key(), "path");
                    assert!(e.reason().contains("shared_memory"), "{e}");
                }
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn env_errors_name_the_variable() {
        match SqliteConfig::from_lookup(|k| (k == "SQLITE_PATH").then(|| ":memory:".to_owned())) {
            Err(e) => assert_eq!(e.key(), "SQLITE_PATH"),
            other => panic!("{other:?}"),
        }
        assert!(SqliteConfig::from_lookup(|_| None).is_err());
    }
}
