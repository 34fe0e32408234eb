//! [`RedisConfig`]: where Redis is and how to talk to it.

use std::fmt;
use std::time::Duration;

use cpc_domain::ValidationError;
use cpc_ports::KvError;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};

/// How to reach Redis. Built from `REDIS_URL` ([`RedisConfig::from_env`]) or field by field
/// ([`RedisConfig::builder`]). The password is a [`SecretString`]: it never appears in `Debug`, `Display` or logs.
#[derive(Clone)]
pub struct RedisConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 6379).
    pub port: u16,
    /// TLS (`rediss://`), verified against the web PKI roots.
    pub tls: bool,
    /// ACL user name (Redis 6+); `None` for the default user.
    pub username: Option<String>,
    password: Option<SecretString>,
    /// Logical database index (default 0).
    pub database: i64,
    /// Prefix of every key this library writes, e.g. `"billing:"`; lets apps share a server.
    pub namespace: String,
    /// Limit for opening a connection (default 2 s).
    pub connect_timeout: Duration,
    /// Limit for one command's reply (default 1 s).
    pub response_timeout: Duration,
    /// Size of the pool of exclusive connections (blocking commands, WATCH/MULTI; default 8).
    pub exclusive_pool_size: u32,
    /// PEM file of root certificates to trust for `rediss://` instead of the web PKI roots (`REDIS_CA_CERT`).
    pub ca_cert: Option<std::path::PathBuf>,
}

impl RedisConfig {
    /// Reads `REDIS_URL` (`redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS; default
    /// `redis://127.0.0.1:6379`), plus `REDIS_NAMESPACE`, `REDIS_CONNECT_TIMEOUT_MS` and
    /// `REDIS_RESPONSE_TIMEOUT_MS`. Errors name the variable.
    pub fn from_env() -> Result<Self, KvError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`RedisConfig::from_env`] over any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, KvError> {
        let mut c = match get("REDIS_URL") {
            Some(url) => Self::parse_url(&url, "REDIS_URL")?,
            None => Self::builder().build()?,
        };
        if let Some(ns) = get("REDIS_NAMESPACE") {
            c.namespace = ns;
        }
        if let Some(path) = get("REDIS_CA_CERT") {
            c.ca_cert = Some(path.into());
        }
        let millis = |name: &'static str| -> Result<Option<Duration>, KvError> {
            get(name)
                .map(|v| {
                    v.trim().parse::<u64>().ok().filter(|n| *n > 0).map(Duration::from_millis).ok_or_else(|| {
                        KvError::Validation(ValidationError::new(name, "must be a positive number of milliseconds"))
                    })
                })
                .transpose()
        };
        if let Some(t) = millis("REDIS_CONNECT_TIMEOUT_MS")? {
            c.connect_timeout = t;
        }
        if let Some(t) = millis("REDIS_RESPONSE_TIMEOUT_MS")? {
            c.response_timeout = t;
        }
        c.validate()?;
        Ok(c)
    }

    /// Parses a `redis://` or `rediss://` URL; errors name `field`.
    pub fn parse_url(raw: &str, field: &'static str) -> Result<Self, KvError> {
        let bad = |rule: String| KvError::Validation(ValidationError::new(field, rule));
        let url = url::Url::parse(raw).map_err(|e| bad(format!("not a URL: {e}")))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(bad(format!("scheme must be redis:// or rediss://, not {other}://"))),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("invalid percent-encoding".into()))
        };
        let mut b = Self::builder().tls(tls);
        if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
            b = b.host(host.trim_start_matches('[').trim_end_matches(']'));
        }
        if let Some(port) = url.port() {
            b = b.port(port);
        }
        if !url.username().is_empty() {
            b = b.username(decode(url.username())?);
        }
        if let Some(p) = url.password() {
            b = b.password(decode(p)?);
        }
        let path = url.path().trim_start_matches('/');
        if !path.is_empty() {
            b = b.database(path.parse().map_err(|_| bad("the path must be a database number, e.g. /0".into()))?);
        }
        b.build().map_err(|e| match e {
            KvError::Validation(v) => bad(format!("{}: {}", v.field, v.rule)),
            other => other,
        })
    }

    /// A builder starting from `redis://127.0.0.1:6379/0`, no namespace, 2 s connect and 1 s response timeouts.
    pub fn builder() -> RedisConfigBuilder {
        RedisConfigBuilder {
            config: RedisConfig {
                host: "127.0.0.1".into(),
                port: 6379,
                tls: false,
                username: None,
                password: None,
                database: 0,
                namespace: String::new(),
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(1),
                exclusive_pool_size: 8,
                ca_cert: None,
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

    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<(), KvError> {
        let bad = |field: &'static str, rule: &'static str| Err(KvError::invalid(field, rule));
        if self.host.is_empty() {
            return bad("host", "must not be empty");
        }
        if self.port == 0 {
            return bad("port", "must be 1 to 65535");
        }
        if self.database < 0 {
            return bad("database", "must not be negative");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be greater than zero");
        }
        if self.response_timeout.is_zero() {
            return bad("response_timeout", "must be greater than zero");
        }
        if self.exclusive_pool_size == 0 {
            return bad("exclusive_pool_size", "must be at least 1");
        }
        Ok(())
    }

    /// A redis-rs client for this configuration: TLS with the configured root certificates when `tls` and
    /// `ca_cert` are set. Every connection this crate opens (shared, exclusive, pub/sub) comes from here.
    pub(crate) fn client(&self) -> Result<redis::Client, KvError> {
        let invalid = |rule: String| KvError::Validation(ValidationError::new("ca_cert", rule));
        match (&self.ca_cert, self.tls) {
            (Some(path), true) => {
                let pem = std::fs::read(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(self.connection_url(), certs)
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))
            }
            _ => redis::Client::open(self.connection_url()).map_err(|e| KvError::backend("redis", e)),
        }
    }

    /// The URL redis-rs connects with, credentials included. Never log it.
    pub(crate) fn connection_url(&self) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p.expose_secret())),
            (None, Some(p)) => format!(":{}@", enc(p.expose_secret())),
            (Some(u), None) => format!("{}@", enc(u)),
            (None, None) => String::new(),
        };
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{auth}{host}:{}/{}", self.port, self.database)
    }
}

/// Builds a [`RedisConfig`] field by field.
#[derive(Debug, Clone)]
pub struct RedisConfigBuilder {
    config: RedisConfig,
}

impl RedisConfigBuilder {
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
    /// Turns TLS on or off.
    pub fn tls(mut self, tls: bool) -> Self {
        self.config.tls = tls;
        self
    }
    /// Sets the ACL user.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.config.username = Some(username.into());
        self
    }
    /// Sets the password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.password = Some(SecretString::from(password.into()));
        self
    }
    /// Sets the database index.
    pub fn database(mut self, database: i64) -> Self {
        self.config.database = database;
        self
    }
    /// Sets the key namespace (prefix).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = namespace.into();
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.config.connect_timeout = t;
        self
    }
    /// Sets the response timeout.
    pub fn response_timeout(mut self, t: Duration) -> Self {
        self.config.response_timeout = t;
        self
    }
    /// Sets the exclusive pool size.
    pub fn exclusive_pool_size(mut self, n: u32) -> Self {
        self.config.exclusive_pool_size = n;
        self
    }
    /// Trusts the root certificates in this PEM file for `rediss://`.
    pub fn ca_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.ca_cert = Some(path.into());
        self
    }
    /// Validates and returns the configuration.
    pub fn build(self) -> Result<RedisConfig, KvError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// Shows everything but the password.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("database", &self.database)
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("exclusive_pool_size", &self.exclusive_pool_size)
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

/// The URL with the password replaced by `***`.
impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let user = self.username.as_deref().unwrap_or("");
        let auth = match (user, self.password.is_some()) {
            ("", false) => String::new(),
            (u, true) => format!("{u}:***@"),
            (u, false) => format!("{u}@"),
        };
        write!(f, "{scheme}://{auth}{}/{}", self.address(), self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn field(r: Result<RedisConfig, KvError>) -> String {
        match r {
            Err(KvError::Validation(v)) => v.field.into_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn url_and_variables_are_read() {
        let c = RedisConfig::from_lookup(env(&[
            ("REDIS_URL", "rediss://app:p%40ss@cache.internal:6380/3"),
            ("REDIS_NAMESPACE", "billing:"),
            ("REDIS_RESPONSE_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert!(c.tls);
        assert_eq!((c.host.as_str(), c.port, c.database), ("cache.internal", 6380, 3));
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(c.password().map(|p| p.expose_secret().to_owned()), Some("p@ss".into()));
        assert_eq!(c.namespace, "billing:");
        assert_eq!(c.response_timeout, Duration::from_millis(250));
        assert_eq!(c.connection_url(), "rediss://app:p%40ss@cache.internal:6380/3");
    }

    #[test]
    fn defaults_without_a_url() {
        let c = RedisConfig::from_lookup(env(&[])).unwrap();
        assert_eq!(c.connection_url(), "redis://127.0.0.1:6379/0");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(field(RedisConfig::from_lookup(env(&[("REDIS_URL", "http://x")]))), "REDIS_URL");
        assert_eq!(field(RedisConfig::from_lookup(env(&[("REDIS_URL", "redis://h/notanumber")]))), "REDIS_URL");
        assert_eq!(
            field(RedisConfig::from_lookup(env(&[("REDIS_RESPONSE_TIMEOUT_MS", "0")]))),
            "REDIS_RESPONSE_TIMEOUT_MS"
        );
        assert_eq!(field(RedisConfig::builder().exclusive_pool_size(0).build()), "exclusive_pool_size");
    }

    #[test]
    fn the_password_never_shows() {
        let c = RedisConfig::parse_url("redis://:hunter2@h:6379/0", "url").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.to_string(), "redis://:***@h:6379/0");
    }
}
