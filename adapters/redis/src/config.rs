//! [`RedisConfig`]: where Redis is and how to talk to it.

use std::fmt;
use std::time::Duration;

use cpc_ports::{ConfigError, KvError};
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
    /// The seed nodes (`host`, `port`) of a Redis Cluster; empty for one server. When set, the adapters run on
    /// the cluster through redis-rs's async cluster client (see [`RedisConfig::is_cluster`]), and `host`/`port`
    /// are the first seed's.
    pub cluster_nodes: Vec<(String, u16)>,
}

/// A `ca_cert` problem (the file, or its contents), naming the field and the path.
fn ca_cert_error(path: Option<&std::path::Path>, e: impl std::fmt::Display) -> ConfigError {
    let path = path.map_or_else(String::new, |p| format!("{}: ", p.display()));
    ConfigError::new("ca_cert", format!("{path}{e}"))
}

impl RedisConfig {
    /// Reads `REDIS_URL` (`redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS; default
    /// `redis://127.0.0.1:6379`), plus `REDIS_NAMESPACE`, `REDIS_CONNECT_TIMEOUT_MS` and
    /// `REDIS_RESPONSE_TIMEOUT_MS`. Errors name the variable.
    ///
    /// A Redis Cluster is chosen by `REDIS_CLUSTER_URLS` (comma-separated seed nodes,
    /// `redis://[user[:password]@]host:port,...`, all with the same scheme and credentials) or by a
    /// `redis+cluster://[user[:password]@]host:port,host:port` (`rediss+cluster://` for TLS) `REDIS_URL`; setting
    /// both variables is an error naming `REDIS_CLUSTER_URLS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`RedisConfig::from_env`] over any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = match (get("REDIS_URL"), get("REDIS_CLUSTER_URLS")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "REDIS_CLUSTER_URLS",
                    "set either REDIS_URL or REDIS_CLUSTER_URLS, not both",
                ));
            }
            (None, Some(urls)) => Self::parse_cluster_urls(&urls, "REDIS_CLUSTER_URLS")?,
            (Some(url), None) if is_cluster_url(&url) => Self::parse_cluster_url(&url, "REDIS_URL")?,
            (Some(url), None) => Self::parse_url(&url, "REDIS_URL")?,
            (None, None) => Self::builder().build()?,
        };
        if let Some(ns) = get("REDIS_NAMESPACE") {
            c.namespace = ns;
        }
        if let Some(path) = get("REDIS_CA_CERT") {
            c.ca_cert = Some(path.into());
        }
        let millis = |name: &'static str| -> Result<Option<Duration>, ConfigError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .map(Duration::from_millis)
                        .ok_or_else(|| ConfigError::new(name, "must be a positive number of milliseconds"))
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
    pub fn parse_url(raw: &str, field: &'static str) -> Result<Self, ConfigError> {
        let bad = |rule: String| ConfigError::new(field, rule);
        let url = url::Url::parse(raw).map_err(|e| bad(format!("not a URL: {e}")).with_source(e))?;
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
        b.build().map_err(|e| bad(e.to_string()))
    }

    /// Parses comma-separated seed-node URLs of a Redis Cluster (`redis://[user[:password]@]host:port,...`);
    /// every URL must have the same scheme and credentials and database 0. Errors name `field`.
    pub fn parse_cluster_urls(raw: &str, field: &'static str) -> Result<Self, ConfigError> {
        let bad = |rule: String| ConfigError::new(field, rule);
        let mut nodes = raw.split(',').map(str::trim).filter(|u| !u.is_empty());
        let first = nodes.next().ok_or_else(|| bad("must name at least one seed node".into()))?;
        let mut config = Self::parse_url(first, field)?;
        let same = |a: &Self, b: &Self| {
            a.tls == b.tls
                && a.username == b.username
                && a.password.as_ref().map(ExposeSecret::expose_secret)
                    == b.password.as_ref().map(ExposeSecret::expose_secret)
        };
        config.cluster_nodes.push((config.host.clone(), config.port));
        for url in nodes {
            let node = Self::parse_url(url, field)?;
            if !same(&config, &node) {
                return Err(bad("every seed node must use the same scheme and credentials".into()));
            }
            if node.database != 0 {
                return Err(bad("a Redis Cluster has only database 0".into()));
            }
            config.cluster_nodes.push((node.host, node.port));
        }
        config.validate().map_err(|e| bad(e.to_string()))?;
        Ok(config)
    }

    /// Parses `redis+cluster://[user[:password]@]host:port,host:port[/0]` (`rediss+cluster://` for TLS): the
    /// seed nodes of a Redis Cluster sharing one set of credentials. Errors name `field`.
    pub fn parse_cluster_url(raw: &str, field: &'static str) -> Result<Self, ConfigError> {
        let bad = |rule: &str| ConfigError::new(field, rule.to_owned());
        let (scheme, rest) = raw
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "redis+cluster" | "rediss+cluster"))
            .ok_or_else(|| bad("a cluster URL starts with redis+cluster:// or rediss+cluster://"))?;
        let scheme = scheme.trim_end_matches("+cluster");
        let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
        let (auth, hosts) = authority.rsplit_once('@').map_or(("", authority), |(a, h)| (a, h));
        let auth = if auth.is_empty() { String::new() } else { format!("{auth}@") };
        let path = path.map(|p| format!("/{p}")).unwrap_or_default();
        let urls: Vec<String> = hosts.split(',').map(|host| format!("{scheme}://{auth}{host}{path}")).collect();
        Self::parse_cluster_urls(&urls.join(","), field)
    }

    /// Whether this configuration names a Redis Cluster (seed nodes set).
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
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
                cluster_nodes: Vec::new(),
            },
        }
    }

    /// The password, for the code that logs in. Never log it.
    pub fn password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// `host:port` (for a cluster, the seed nodes' comma-separated), for messages.
    pub fn address(&self) -> String {
        if self.is_cluster() {
            let nodes: Vec<String> = self.cluster_nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
            return nodes.join(",");
        }
        format!("{}:{}", self.host, self.port)
    }

    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, rule: &'static str| Err(ConfigError::new(field, rule));
        if self.host.is_empty() {
            return bad("host", "must not be empty");
        }
        if self.port == 0 {
            return bad("port", "must be 1 to 65535");
        }
        if self.database < 0 {
            return bad("database", "must not be negative");
        }
        const HOUR: Duration = Duration::from_secs(3600);
        if self.connect_timeout.is_zero() || self.connect_timeout > HOUR {
            return bad("connect_timeout", "must be greater than zero and at most 1 hour");
        }
        if self.response_timeout.is_zero() || self.response_timeout > HOUR {
            return bad("response_timeout", "must be greater than zero and at most 1 hour");
        }
        if self.exclusive_pool_size == 0 {
            return bad("exclusive_pool_size", "must be at least 1");
        }
        if self.is_cluster() {
            if self.cluster_nodes.iter().any(|(host, port)| host.is_empty() || *port == 0) {
                return bad("cluster_nodes", "every seed node needs a host and a port from 1 to 65535");
            }
            if self.database != 0 {
                return bad("database", "a Redis Cluster has only database 0");
            }
            if self.namespace.contains(['{', '}']) {
                return bad(
                    "namespace",
                    "must not contain { or } on a Redis Cluster (they would change the hash slots)",
                );
            }
        }
        Ok(())
    }

    /// A redis-rs client for this configuration: TLS with the configured root certificates when `tls` and
    /// `ca_cert` are set. Every connection this crate opens (shared, exclusive, pub/sub) comes from here.
    pub(crate) fn client(&self) -> Result<redis::Client, KvError> {
        match self.tls_certificates()? {
            Some(certs) => redis::Client::build_with_tls(self.connection_url(), certs)
                .map_err(|e| ca_cert_error(self.ca_cert.as_deref(), e).into()),
            None => redis::Client::open(self.connection_url()).map_err(|e| KvError::backend("redis", e)),
        }
    }

    /// The root certificates to trust, read from `ca_cert`, when `tls` and `ca_cert` are set (for one server and
    /// for a cluster alike).
    pub(crate) fn tls_certificates(&self) -> Result<Option<redis::TlsCertificates>, KvError> {
        match (&self.ca_cert, self.tls) {
            (Some(path), true) => {
                let pem = std::fs::read(path).map_err(|e| ca_cert_error(Some(path), e))?;
                Ok(Some(redis::TlsCertificates { client_tls: None, root_cert: Some(pem) }))
            }
            _ => Ok(None),
        }
    }

    /// The URL redis-rs connects with, credentials included. Never log it.
    pub(crate) fn connection_url(&self) -> String {
        self.node_url(&self.host, self.port)
    }

    /// The URL of one server (a cluster's seed node) with this configuration's scheme and credentials. Never
    /// log it.
    pub(crate) fn node_url(&self, host: &str, port: u16) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p.expose_secret())),
            (None, Some(p)) => format!(":{}@", enc(p.expose_secret())),
            (Some(u), None) => format!("{}@", enc(u)),
            (None, None) => String::new(),
        };
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        format!("{scheme}://{auth}{host}:{port}/{}", self.database)
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
    /// Adds a seed node of a Redis Cluster (call once per node): the configuration then names a cluster.
    pub fn cluster_node(mut self, host: impl Into<String>, port: u16) -> Self {
        let host = host.into();
        if self.config.cluster_nodes.is_empty() {
            self.config.host.clone_from(&host);
            self.config.port = port;
        }
        self.config.cluster_nodes.push((host, port));
        self
    }
    /// Validates and returns the configuration.
    pub fn build(self) -> Result<RedisConfig, ConfigError> {
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
            .field("cluster_nodes", &self.cluster_nodes)
            .finish()
    }
}

/// The URL with the password replaced by `***`.
impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.tls, self.is_cluster()) {
            (false, false) => "redis",
            (true, false) => "rediss",
            (false, true) => "redis+cluster",
            (true, true) => "rediss+cluster",
        };
        let user = self.username.as_deref().unwrap_or("");
        let auth = match (user, self.password.is_some()) {
            ("", false) => String::new(),
            (u, true) => format!("{u}:***@"),
            (u, false) => format!("{u}@"),
        };
        write!(f, "{scheme}://{auth}{}/{}", self.address(), self.database)
    }
}

/// Whether `url` has the `redis+cluster://` or `rediss+cluster://` scheme.
fn is_cluster_url(url: &str) -> bool {
    url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn field(r: Result<RedisConfig, ConfigError>) -> String {
        match r {
            Err(e) => e.key().to_owned(),
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

    #[test]
    fn a_cluster_is_chosen_by_either_variable() {
        let nodes = |c: &RedisConfig| c.cluster_nodes.clone();
        let want = vec![("a".to_owned(), 7000), ("b".to_owned(), 7001)];
        let c =
            RedisConfig::from_lookup(env(&[("REDIS_CLUSTER_URLS", "redis://:pw@a:7000, redis://:pw@b:7001")])).unwrap();
        assert!(c.is_cluster());
        assert_eq!(nodes(&c), want);
        assert_eq!(c.to_string(), "redis+cluster://:***@a:7000,b:7001/0");
        let c = RedisConfig::from_lookup(env(&[("REDIS_URL", "rediss+cluster://u:p%40ss@a:7000,b:7001")])).unwrap();
        assert_eq!((nodes(&c), c.tls), (want, true));
        assert_eq!(c.password().map(|p| p.expose_secret().to_owned()), Some("p@ss".into()));
        assert_eq!(c.node_url("b", 7001), "rediss://u:p%40ss@b:7001/0");
        assert!(!format!("{c:?}{c}").contains("p@ss"));
        assert!(!RedisConfig::from_lookup(env(&[])).unwrap().is_cluster());
    }

    #[test]
    fn cluster_errors_name_the_variable() {
        let field_of = |pairs: &'static [(&'static str, &'static str)]| field(RedisConfig::from_lookup(env(pairs)));
        assert_eq!(field_of(&[("REDIS_CLUSTER_URLS", "redis://a:1,rediss://b:2")]), "REDIS_CLUSTER_URLS");
        assert_eq!(field_of(&[("REDIS_CLUSTER_URLS", "redis://a:1/0,redis://b:2/3")]), "REDIS_CLUSTER_URLS");
        assert_eq!(field_of(&[("REDIS_CLUSTER_URLS", " , ")]), "REDIS_CLUSTER_URLS");
        assert_eq!(field_of(&[("REDIS_URL", "redis+cluster://a:notaport,b:1")]), "REDIS_URL");
        assert_eq!(field_of(&[("REDIS_URL", "redis://a"), ("REDIS_CLUSTER_URLS", "redis://b")]), "REDIS_CLUSTER_URLS");
        assert_eq!(field(RedisConfig::builder().cluster_node("a", 1).namespace("{x}").build()), "namespace");
        assert_eq!(field(RedisConfig::builder().cluster_node("a", 1).cluster_node("", 2).build()), "cluster_nodes");
        // Extremes are refused by name instead of overflowing later (connect_timeout + 500 ms).
        assert_eq!(field(RedisConfig::builder().connect_timeout(Duration::MAX).build()), "connect_timeout");
        assert_eq!(field(RedisConfig::builder().response_timeout(Duration::MAX).build()), "response_timeout");
    }
}
