//! [`PgConfig`]: where a PostgreSQL database is and how to reach it, following libpq's conventions.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::timeouts::{ENV_VARS as TIMEOUT_VARS, QueryTimeouts};
use cpc_ports::ConfigError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, without verifying the certificate; plain otherwise (libpq's default).
    #[default]
    Prefer,
    /// TLS required, certificate not verified (encryption against passive eavesdropping only).
    Require,
    /// TLS required, certificate chain verified against the root certificates; host name not checked.
    VerifyCa,
    /// TLS required, chain verified and the certificate must be valid for the host name.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`; `allow` is taken as
    /// `prefer`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// Whether the connection fails rather than run without TLS (`require`, `verify-ca`, `verify-full`).
    pub const fn verifies_or_requires(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }

    /// libpq's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where a PostgreSQL database is and how to reach it. The password is a [`SecretString`]: it never appears in
/// `Debug`, `Display` or logs.
#[derive(Clone)]
pub struct PgConfig {
    /// Host name, IP address, or a Unix socket directory (starting with `/`).
    pub host: String,
    /// TCP port (default 5432).
    pub port: u16,
    /// Database name (default: the user name).
    pub database: String,
    /// Role to log in as.
    pub user: String,
    password: Option<SecretString>,
    /// TLS mode (default `prefer`).
    pub ssl_mode: SslMode,
    /// PEM file of root certificates for `verify-ca` / `verify-full` (default: the system's roots).
    pub ssl_root_cert: Option<PathBuf>,
    /// Reported to the server as `application_name`.
    pub application_name: Option<String>,
    /// Limit for opening one connection, TCP and TLS included (default 5 s).
    pub connect_timeout: Duration,
    /// Server-side limits on every statement, lock wait and idle transaction (default 30 s, 10 s, 60 s).
    pub timeouts: QueryTimeouts,
}

impl PgConfig {
    /// The default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Reads the environment as libpq does: `DATABASE_URL` when set (a `postgres://` URL whose query may carry
    /// `sslmode`, `sslrootcert`, `application_name`, `connect_timeout`, `host`), on top of `PGHOST`, `PGPORT`,
    /// `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGAPPNAME` and `PGCONNECT_TIMEOUT`,
    /// on top of libpq's defaults, plus the server-side limits of [`QueryTimeouts`]
    /// (`DATABASE_STATEMENT_TIMEOUT`, `DATABASE_LOCK_TIMEOUT`, `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT`). Errors
    /// name the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`PgConfig::from_env`] over any variable lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let user = get("PGUSER").or_else(|| get("USER")).unwrap_or_else(|| "postgres".into());
        let mut b = PgConfig::builder()
            .host(get("PGHOST").unwrap_or_else(|| "localhost".into()))
            .database(get("PGDATABASE").unwrap_or_else(|| user.clone()))
            .user(user);
        if let Some(port) = get("PGPORT") {
            b = b.port(parse_port(&port, "PGPORT")?);
        }
        if let Some(password) = get("PGPASSWORD") {
            b = b.password(password);
        }
        if let Some(mode) = get("PGSSLMODE") {
            b = b.ssl_mode(parse_ssl_mode(&mode, "PGSSLMODE")?);
        }
        if let Some(path) = get("PGSSLROOTCERT") {
            b = b.ssl_root_cert(path);
        }
        if let Some(name) = get("PGAPPNAME") {
            b = b.application_name(name);
        }
        if let Some(t) = get("PGCONNECT_TIMEOUT") {
            b = b.connect_timeout(parse_timeout(&t, "PGCONNECT_TIMEOUT")?);
        }
        let mut config = b.build()?;
        for name in TIMEOUT_VARS {
            if let Some(value) = get(name) {
                config.timeouts.set(name, &value, name)?;
            }
        }
        if let Some(url) = get("DATABASE_URL") {
            config.apply_url(&url, "DATABASE_URL")?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a `postgres://` (or `postgresql://`) URL over libpq's defaults.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let mut config = PgConfig::builder().build()?;
        config.apply_url(url, "url")?;
        config.validate()?;
        Ok(config)
    }

    /// A builder starting from libpq's defaults (`localhost:5432`, user and database `postgres`, `prefer`).
    pub fn builder() -> PgConfigBuilder {
        PgConfigBuilder {
            config: PgConfig {
                host: "localhost".into(),
                port: 5432,
                database: "postgres".into(),
                user: "postgres".into(),
                password: None,
                ssl_mode: SslMode::default(),
                ssl_root_cert: None,
                application_name: None,
                connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
                timeouts: QueryTimeouts::default(),
            },
        }
    }

    /// The password, for the code that logs in. Never log it.
    pub fn password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn apply_url(&mut self, raw: &str, field: &'static str) -> Result<(), ConfigError> {
        let bad = |m: &str| ConfigError::new(field, m.to_owned());
        let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad("scheme must be postgres:// or postgresql://"));
        }
        // An unencoded `@` after the host means the user or password held a `/`, `?` or `#` that cut the URL
        // early, leaving the password in the path or the query: refuse it without echoing anything.
        if url.path().contains('@') || url.query().is_some_and(|q| q.contains('@')) {
            return Err(bad("`@` after the host: percent-encode `/`, `?`, `#`, `@` and `:` in the user and password \
                 (and a real `@` elsewhere as %40)"));
        }
        let decode = |s: &str| percent_decode(s).ok_or_else(|| ConfigError::new(field, "invalid percent-encoding"));
        if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
            self.host = decode(host.trim_start_matches('[').trim_end_matches(']'))?;
        }
        if let Some(port) = url.port() {
            self.port = port;
        }
        if !url.username().is_empty() {
            self.user = decode(url.username())?;
        }
        if let Some(p) = url.password() {
            self.password = Some(SecretString::from(decode(p)?));
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() {
            self.database = decode(db)?;
        }
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => self.ssl_mode = parse_ssl_mode(&v, field)?,
                "sslrootcert" => self.ssl_root_cert = Some(PathBuf::from(v.as_ref())),
                "application_name" => self.application_name = Some(v.into_owned()),
                "connect_timeout" => self.connect_timeout = parse_timeout(&v, field)?,
                "host" => self.host = v.into_owned(),
                "port" => self.port = parse_port(&v, field)?,
                "user" => self.user = v.into_owned(),
                "password" => self.password = Some(SecretString::from(v.into_owned())),
                "dbname" => self.database = v.into_owned(),
                name if self.timeouts.set(name, &v, field)? => {}
                // The name is not echoed: in a URL whose user or password holds an unencoded `?`, what looks
                // like a parameter is part of the password.
                _ => {
                    return Err(bad("unsupported parameter (supported: sslmode, sslrootcert, application_name, \
                         connect_timeout, host, port, user, password, dbname, statement_timeout, lock_timeout, \
                         idle_in_transaction_session_timeout; percent-encode `?`, `@`, `/` and `:` \
                         in the user and password)"));
                }
            }
        }
        Ok(())
    }

    /// Checks that host, user and database are set and the TLS settings are coherent; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.host.is_empty() {
            return Err(ConfigError::new("host", "must not be empty"));
        }
        if self.user.is_empty() {
            return Err(ConfigError::new("user", "must not be empty"));
        }
        if self.database.is_empty() {
            return Err(ConfigError::new("database", "must not be empty"));
        }
        if self.port == 0 {
            return Err(ConfigError::new("port", "must be 1 to 65535"));
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > Duration::from_secs(3600) {
            return Err(ConfigError::new("connect_timeout", "must be greater than zero and at most 1 hour"));
        }
        self.timeouts.validate()?;
        if self.host.starts_with('/') && self.ssl_mode != SslMode::Disable && self.ssl_mode != SslMode::Prefer {
            return Err(ConfigError::new("ssl_mode", "TLS is not available over a Unix socket"));
        }
        Ok(())
    }

    /// The tokio-postgres configuration (TLS is set up separately).
    pub(crate) fn to_tokio_postgres(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).dbname(&self.database).user(&self.user);
        c.connect_timeout(self.connect_timeout);
        c.keepalives(true).keepalives_idle(Duration::from_secs(30));
        c.options(self.timeouts.startup_options());
        if let Some(p) = &self.password {
            c.password(p.expose_secret());
        }
        if let Some(name) = &self.application_name {
            c.application_name(name);
        }
        c.ssl_mode(match self.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        c
    }
}

/// Builds a [`PgConfig`] field by field.
#[derive(Debug, Clone)]
pub struct PgConfigBuilder {
    config: PgConfig,
}

impl PgConfigBuilder {
    /// Sets the host.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.config.host = host.into();
        self
    }
    /// Sets the port.
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }
    /// Sets the database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.config.database = database.into();
        self
    }
    /// Sets the user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.config.user = user.into();
        self
    }
    /// Sets the password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.password = Some(SecretString::from(password.into()));
        self
    }
    /// Sets the TLS mode.
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.config.ssl_mode = mode;
        self
    }
    /// Sets the root certificate file.
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ssl_root_cert = Some(path.into());
        self
    }
    /// Sets the application name.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.config.application_name = Some(name.into());
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }
    /// Sets the server-side statement, lock-wait and idle-transaction limits.
    pub fn timeouts(mut self, timeouts: QueryTimeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }
    /// Validates and returns the configuration.
    pub fn build(self) -> Result<PgConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// Shows everything but the password.
impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// A URL with the password redacted: `postgres://app:***@db:5432/app?sslmode=verify-full`.
impl fmt::Display for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.password.is_some() { ":***" } else { "" };
        write!(
            f,
            "postgres://{}{secret}@{}/{}?sslmode={}",
            self.user,
            self.address(),
            self.database,
            self.ssl_mode.as_str()
        )
    }
}

fn parse_ssl_mode(s: &str, field: &'static str) -> Result<SslMode, ConfigError> {
    SslMode::parse(s).ok_or_else(|| {
        ConfigError::new(field, "sslmode must be disable, allow, prefer, require, verify-ca or verify-full")
    })
}

fn parse_port(s: &str, field: &'static str) -> Result<u16, ConfigError> {
    s.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| ConfigError::new(field, "port must be 1 to 65535"))
}

fn parse_timeout(s: &str, field: &'static str) -> Result<Duration, ConfigError> {
    // libpq: seconds; 0 or negative means wait forever, which we cap at the default rather than hang.
    let secs: i64 = s.trim().parse().map_err(|_| ConfigError::new(field, "connect_timeout must be whole seconds"))?;
    Ok(if secs <= 0 { PgConfig::DEFAULT_CONNECT_TIMEOUT } else { Duration::from_secs(secs.unsigned_abs()) })
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn field(r: Result<PgConfig, ConfigError>) -> String {
        match r {
            Err(e) => e.key().to_owned(),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn an_endless_connect_timeout_is_refused_naming_it() {
        let err = PgConfig::builder().connect_timeout(Duration::MAX).build().unwrap_err();
        assert_eq!(err.key(), "connect_timeout", "{err}");
    }

    #[test]
    fn url_wins_over_pg_variables_which_win_over_defaults() {
        let c = PgConfig::from_lookup(env(&[
            ("PGHOST", "pg.internal"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "billing"),
            ("DATABASE_URL", "postgres://app:p%40ss@db.example:6543/ledger?sslmode=verify-full&connect_timeout=3"),
        ]))
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.database.as_str(), c.user.as_str()),
            ("db.example", 6543, "ledger", "app")
        );
        assert_eq!(c.password().map(|p| p.expose_secret().to_owned()), Some("p@ss".to_owned()));
        assert_eq!(c.ssl_mode, SslMode::VerifyFull);
        assert_eq!(c.application_name.as_deref(), Some("billing"));
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn pg_variables_alone_follow_libpq() {
        let c = PgConfig::from_lookup(env(&[
            ("PGHOST", "10.0.0.5"),
            ("PGPORT", "5433"),
            ("PGUSER", "ada"),
            ("PGPASSWORD", "s3cret"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
            ("PGCONNECT_TIMEOUT", "0"),
        ]))
        .unwrap();
        assert_eq!((c.host.as_str(), c.port, c.user.as_str(), c.database.as_str()), ("10.0.0.5", 5433, "ada", "ada"));
        assert_eq!(c.ssl_root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.connect_timeout, PgConfig::DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(field(PgConfig::from_lookup(env(&[("PGPORT", "http")]))), "PGPORT");
        assert_eq!(field(PgConfig::from_lookup(env(&[("PGSSLMODE", "sometimes")]))), "PGSSLMODE");
        assert_eq!(field(PgConfig::from_lookup(env(&[("DATABASE_URL", "mysql://x@y/z")]))), "DATABASE_URL");
        assert_eq!(
            field(PgConfig::from_lookup(env(&[("DATABASE_URL", "postgres://h/db?sslmode=on")]))),
            "DATABASE_URL"
        );
        assert_eq!(field(PgConfig::builder().user("").build()), "user");
    }

    #[test]
    fn the_password_never_shows() {
        let c = PgConfig::from_url("postgres://app:hunter2@db/app").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.to_string().contains("hunter2"));
        assert_eq!(c.to_string(), "postgres://app:***@db:5432/app?sslmode=prefer");
        let err = PgConfig::from_url("postgres://app:hunter2@db/app?bogus=1").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
