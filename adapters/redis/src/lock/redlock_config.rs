//! [`RedlockConfig`]: the independent Redis servers of a [`Redlock`](super::Redlock) and its timing.

use std::collections::HashSet;
use std::time::Duration;

use cpc_ports::ConfigError;

use crate::RedisConfig;

/// The default per-node limit of one Redlock round trip: small against any useful lease, so a dead node costs
/// little of the lease's validity (the Redlock description suggests 5 to 50 ms for a 10 s lease; this leaves room
/// for a loaded machine).
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_millis(100);
/// The default clock drift allowed per lease, as a fraction of the lease (Redlock's 1 %).
pub const DEFAULT_CLOCK_DRIFT_FACTOR: f64 = 0.01;
/// The default clock drift allowed on top of [`DEFAULT_CLOCK_DRIFT_FACTOR`] (Redlock's 2 ms).
pub const DEFAULT_CLOCK_DRIFT_FLOOR: Duration = Duration::from_millis(2);

/// The servers of a [`Redlock`](super::Redlock): N **independent** Redis masters (no replication between them),
/// plus the per-node timeout and the clock-drift allowance. Built from `REDLOCK_URLS`
/// ([`RedlockConfig::from_env`]) or with [`RedlockConfig::builder`].
///
/// `Debug` shows each node as [`RedisConfig`] does: passwords are redacted.
#[derive(Debug, Clone)]
pub struct RedlockConfig {
    /// One configuration per server; at least one, all different (`host:port/db`). Use an odd number (3 or 5):
    /// a quorum of `N/2 + 1` tolerates `(N - 1) / 2` servers down.
    pub nodes: Vec<RedisConfig>,
    /// How long one node may take to answer one command before it counts as not answering
    /// (default [`DEFAULT_NODE_TIMEOUT`]).
    pub node_timeout: Duration,
    /// Clock drift allowed per lease, as a fraction of it (default [`DEFAULT_CLOCK_DRIFT_FACTOR`], 1 %).
    pub clock_drift_factor: f64,
    /// Clock drift allowed on top of the fraction (default [`DEFAULT_CLOCK_DRIFT_FLOOR`], 2 ms).
    pub clock_drift_floor: Duration,
}

impl RedlockConfig {
    /// Reads `REDLOCK_URLS` (required: comma-separated `redis://` or `rediss://` URLs, one per server),
    /// `REDLOCK_NAMESPACE` (key prefix on every server) and `REDLOCK_NODE_TIMEOUT_MS`. Errors name the variable
    /// (and which URL, e.g. `REDLOCK_URLS[2]`); they never contain a password.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`RedlockConfig::from_env`] over any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let urls = get("REDLOCK_URLS")
            .ok_or_else(|| ConfigError::new("REDLOCK_URLS", "must list the Redis servers, comma separated"))?;
        let mut builder = Self::builder();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            builder = builder.url(url);
        }
        if let Some(ns) = get("REDLOCK_NAMESPACE") {
            builder = builder.namespace(ns);
        }
        if let Some(ms) = get("REDLOCK_NODE_TIMEOUT_MS") {
            let ms = ms.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError::new("REDLOCK_NODE_TIMEOUT_MS", "must be a positive number of milliseconds")
            })?;
            builder = builder.node_timeout(Duration::from_millis(ms));
        }
        builder.url_field("REDLOCK_URLS").build()
    }

    /// A builder with no node yet and the default timings.
    pub fn builder() -> RedlockConfigBuilder {
        RedlockConfigBuilder {
            nodes: Vec::new(),
            namespace: None,
            url_field: "urls",
            config: RedlockConfig {
                nodes: Vec::new(),
                node_timeout: DEFAULT_NODE_TIMEOUT,
                clock_drift_factor: DEFAULT_CLOCK_DRIFT_FACTOR,
                clock_drift_floor: DEFAULT_CLOCK_DRIFT_FLOOR,
            },
        }
    }

    /// How many nodes must agree: `N/2 + 1`.
    pub fn quorum(&self) -> usize {
        quorum(self.nodes.len())
    }

    /// Checks the settings; errors name the field (`nodes`, `nodes[1].port`, `node_timeout`...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::new("nodes", "must list at least one Redis server"));
        }
        let mut seen = HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            node.validate().map_err(|e| ConfigError::new(format!("nodes[{i}].{}", e.key()), e.reason()))?;
            let server = format!("{}/{}", node.address(), node.database);
            if !seen.insert(server.clone()) {
                return Err(ConfigError::new(
                    format!("nodes[{i}]"),
                    format!("{server} is listed twice; Redlock needs independent servers"),
                ));
            }
        }
        if self.node_timeout.is_zero() || self.node_timeout > Duration::from_secs(3600) {
            return Err(ConfigError::new("node_timeout", "must be greater than zero and at most 1 hour"));
        }
        if self.clock_drift_floor > Duration::from_secs(3600) {
            return Err(ConfigError::new("clock_drift_floor", "must be at most 1 hour"));
        }
        if !(0.0..1.0).contains(&self.clock_drift_factor) {
            return Err(ConfigError::new("clock_drift_factor", "must be at least 0 and less than 1"));
        }
        Ok(())
    }
}

/// `N/2 + 1`: the smallest majority of `n` nodes.
pub(super) fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// Builds a [`RedlockConfig`]; URLs are parsed by [`RedlockConfigBuilder::build`].
#[derive(Debug, Clone)]
pub struct RedlockConfigBuilder {
    nodes: Vec<Node>,
    namespace: Option<String>,
    url_field: &'static str,
    config: RedlockConfig,
}

/// A node as given to the builder.
#[derive(Debug, Clone)]
enum Node {
    Config(Box<RedisConfig>),
    /// Not printed: it may hold a password.
    Url(Url),
}

/// A URL whose `Debug` hides everything (it may carry a password).
#[derive(Clone)]
struct Url(String);

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[URL REDACTED]")
    }
}

impl RedlockConfigBuilder {
    /// Adds a server.
    pub fn node(mut self, config: RedisConfig) -> Self {
        self.nodes.push(Node::Config(Box::new(config)));
        self
    }

    /// Adds a server by URL (`redis://[user[:password]@]host[:port][/db]` or `rediss://`); parsed by `build`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.nodes.push(Node::Url(Url(url.into())));
        self
    }

    /// Sets the key namespace (prefix) on every server, replacing each node's own.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the per-node timeout of one round trip.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.config.node_timeout = timeout;
        self
    }

    /// Sets the clock drift allowed per lease: `factor` of the lease plus `floor`.
    pub fn clock_drift(mut self, factor: f64, floor: Duration) -> Self {
        self.config.clock_drift_factor = factor;
        self.config.clock_drift_floor = floor;
        self
    }

    /// The field URL errors are reported under (`REDLOCK_URLS` when read from the environment).
    fn url_field(mut self, field: &'static str) -> Self {
        self.url_field = field;
        self
    }

    /// Parses the URLs, validates and returns the configuration. A bad URL is reported as `urls[i]`
    /// (`REDLOCK_URLS[i]` from the environment), with the rule it broke and never its text.
    pub fn build(self) -> Result<RedlockConfig, ConfigError> {
        let mut config = self.config;
        for (i, node) in self.nodes.into_iter().enumerate() {
            let mut node = match node {
                Node::Config(c) => *c,
                Node::Url(Url(url)) => RedisConfig::parse_url(&url, "url")
                    .map_err(|e| ConfigError::new(format!("{}[{i}]", self.url_field), e.reason()))?,
            };
            if let Some(ns) = &self.namespace {
                node.namespace.clone_from(ns);
            }
            config.nodes.push(node);
        }
        if config.nodes.is_empty() {
            return Err(ConfigError::new(
                if self.url_field == "urls" { "nodes" } else { self.url_field },
                "must list at least one Redis server",
            ));
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn field(r: Result<RedlockConfig, ConfigError>) -> String {
        match r {
            Err(e) => e.key().to_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn urls_namespace_and_timeout_are_read() {
        let c = RedlockConfig::from_lookup(env(&[
            ("REDLOCK_URLS", "redis://a:6379, redis://:s3cret@b:6380/2 ,rediss://c"),
            ("REDLOCK_NAMESPACE", "billing:"),
            ("REDLOCK_NODE_TIMEOUT_MS", "30"),
        ]))
        .unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.quorum(), 2);
        assert_eq!((c.nodes[1].host.as_str(), c.nodes[1].port, c.nodes[1].database), ("b", 6380, 2));
        assert!(c.nodes[2].tls);
        assert!(c.nodes.iter().all(|n| n.namespace == "billing:"));
        assert_eq!(c.node_timeout, Duration::from_millis(30));
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
    }

    #[test]
    fn extreme_durations_are_refused_naming_the_field() {
        let node = || RedisConfig::builder().host("a").build().unwrap();
        let built = |b: RedlockConfigBuilder| field(b.node(node()).build());
        assert_eq!(built(RedlockConfig::builder().node_timeout(Duration::MAX)), "node_timeout");
        assert_eq!(built(RedlockConfig::builder().clock_drift(0.01, Duration::MAX)), "clock_drift_floor");
    }

    #[test]
    fn quorum_is_a_majority() {
        assert_eq!([1, 2, 3, 4, 5, 6, 7].map(quorum), [1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn errors_name_the_field_and_never_the_password() {
        assert_eq!(field(RedlockConfig::from_lookup(env(&[]))), "REDLOCK_URLS");
        assert_eq!(field(RedlockConfig::from_lookup(env(&[("REDLOCK_URLS", " , ")]))), "REDLOCK_URLS");
        let bad = RedlockConfig::from_lookup(env(&[("REDLOCK_URLS", "redis://a,http://:hunter2@b")]));
        assert!(!format!("{bad:?}").contains("hunter2"), "{bad:?}");
        assert_eq!(field(bad), "REDLOCK_URLS[1]");
        let twice = RedlockConfig::from_lookup(env(&[("REDLOCK_URLS", "redis://a:1,redis://a:1/0")]));
        assert_eq!(field(twice), "nodes[1]");
        let timeout = env(&[("REDLOCK_URLS", "redis://a"), ("REDLOCK_NODE_TIMEOUT_MS", "0")]);
        assert_eq!(field(RedlockConfig::from_lookup(timeout)), "REDLOCK_NODE_TIMEOUT_MS");
        assert_eq!(field(RedlockConfig::builder().build()), "nodes");
        assert_eq!(
            field(RedlockConfig::builder().url("redis://a").clock_drift(1.5, Duration::ZERO).build()),
            "clock_drift_factor"
        );
        let builder = RedlockConfig::builder().url("redis://:hunter2@a");
        assert!(!format!("{builder:?}").contains("hunter2"), "{builder:?}");
    }
}
