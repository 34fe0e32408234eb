//! [`PoolConfig`]: sizing and timeouts shared by the PostgreSQL and SQLite pools.

use std::time::Duration;

use cpc_ports::ConfigError;

/// How a pool sizes itself and how long it waits. Defaults (documented on each field) suit a web service;
/// [`PoolConfig::from_env`] reads `DB_POOL_*` overrides. [`PoolConfig::validate`] names the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Idle connections kept ready (bb8 `min_idle`). Default 0: connections are opened on demand.
    pub min_connections: u32,
    /// The most connections open at once. Default 10.
    pub max_connections: u32,
    /// How long a checkout may wait for a connection before failing with a pool timeout. Default 5 s.
    pub connection_timeout: Duration,
    /// Idle connections are closed after this long unused (`None`: never). Default 10 min.
    pub idle_timeout: Option<Duration>,
    /// Connections are closed after this long, idle or not, once returned (`None`: never). Default 30 min.
    pub max_lifetime: Option<Duration>,
    /// A connection used within this long is handed out without a validation round trip. Default 500 ms
    /// (as HikariCP). `Duration::ZERO` validates every checkout.
    pub validation_skip_window: Duration,
    /// A checkout held longer than this is logged as a possible leak, naming where it was taken. Default
    /// `None` (off, as in HikariCP): it costs a registry update per checkout. Turn it on in development or when
    /// chasing a leak (`DB_POOL_LEAK_THRESHOLD_S`).
    pub leak_detection_threshold: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            min_connections: 0,
            max_connections: 10,
            connection_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            validation_skip_window: Duration::from_millis(500),
            leak_detection_threshold: None,
        }
    }
}

impl PoolConfig {
    /// The defaults, overridden by `DB_POOL_MIN`, `DB_POOL_MAX`, `DB_POOL_TIMEOUT_MS`, `DB_POOL_IDLE_TIMEOUT_S`,
    /// `DB_POOL_MAX_LIFETIME_S` and `DB_POOL_LEAK_THRESHOLD_S` when set (0 turns the optional ones off), then
    /// validated. A malformed value is an error naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`PoolConfig::from_env`] over any variable lookup (for tests and other configuration sources).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn num(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<u64>, ConfigError> {
            get(name)
                .map(|v| v.trim().parse::<u64>().map_err(|_| ConfigError::new(name, "must be a whole number")))
                .transpose()
        }
        let optional = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        let mut c = Self::default();
        if let Some(v) = num(&get, "DB_POOL_MIN")? {
            c.min_connections = u32::try_from(v).map_err(|_| ConfigError::new("DB_POOL_MIN", "too large"))?;
        }
        if let Some(v) = num(&get, "DB_POOL_MAX")? {
            c.max_connections = u32::try_from(v).map_err(|_| ConfigError::new("DB_POOL_MAX", "too large"))?;
        }
        if let Some(v) = num(&get, "DB_POOL_TIMEOUT_MS")? {
            c.connection_timeout = Duration::from_millis(v);
        }
        if let Some(v) = num(&get, "DB_POOL_IDLE_TIMEOUT_S")? {
            c.idle_timeout = optional(v);
        }
        if let Some(v) = num(&get, "DB_POOL_MAX_LIFETIME_S")? {
            c.max_lifetime = optional(v);
        }
        if let Some(v) = num(&get, "DB_POOL_LEAK_THRESHOLD_S")? {
            c.leak_detection_threshold = optional(v);
        }
        c.validate()?;
        Ok(c)
    }

    /// Sets `max_connections`.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets `min_connections`.
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// Sets `connection_timeout`.
    pub fn connection_timeout(mut self, t: Duration) -> Self {
        self.connection_timeout = t;
        self
    }

    /// Sets `idle_timeout`.
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Sets `max_lifetime`.
    pub fn max_lifetime(mut self, t: Option<Duration>) -> Self {
        self.max_lifetime = t;
        self
    }

    /// Sets `validation_skip_window`.
    pub fn validation_skip_window(mut self, t: Duration) -> Self {
        self.validation_skip_window = t;
        self
    }

    /// Sets `leak_detection_threshold`.
    pub fn leak_detection_threshold(mut self, t: Option<Duration>) -> Self {
        self.leak_detection_threshold = t;
        self
    }

    /// Checks the rules: `max_connections` at least 1, `min_connections` not above it, and no zero timeouts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::new("max_connections", "must be at least 1"));
        }
        if self.min_connections > self.max_connections {
            return Err(ConfigError::new("min_connections", "must not exceed max_connections"));
        }
        if self.connection_timeout.is_zero() {
            return Err(ConfigError::new("connection_timeout", "must be greater than zero"));
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("idle_timeout", "must be greater than zero (use None to disable)"));
        }
        if self.max_lifetime.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("max_lifetime", "must be greater than zero (use None to disable)"));
        }
        if self.leak_detection_threshold.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "leak_detection_threshold",
                "must be greater than zero (use None to disable)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(c: PoolConfig) -> String {
        match c.validate() {
            Err(e) => e.key().to_owned(),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = PoolConfig::default();
        c.validate().unwrap();
        assert_eq!((c.min_connections, c.max_connections), (0, 10));
        assert_eq!(c.connection_timeout, Duration::from_secs(5));
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(field(PoolConfig::default().max_connections(0)), "max_connections");
        assert_eq!(field(PoolConfig::default().max_connections(2).min_connections(3)), "min_connections");
        assert_eq!(field(PoolConfig::default().connection_timeout(Duration::ZERO)), "connection_timeout");
        assert_eq!(field(PoolConfig::default().idle_timeout(Some(Duration::ZERO))), "idle_timeout");
        assert_eq!(field(PoolConfig::default().max_lifetime(Some(Duration::ZERO))), "max_lifetime");
    }

    #[test]
    fn env_overrides_and_names_bad_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let c = PoolConfig::from_lookup(env(&[("DB_POOL_MAX", "32"), ("DB_POOL_IDLE_TIMEOUT_S", "0")])).unwrap();
        assert_eq!(c.max_connections, 32);
        assert_eq!(c.idle_timeout, None);
        match PoolConfig::from_lookup(env(&[("DB_POOL_MAX", "lots")])) {
            Err(e) => assert_eq!(e.key(), "DB_POOL_MAX"),
            other => panic!("{other:?}"),
        }
        match PoolConfig::from_lookup(env(&[("DB_POOL_MAX", "0")])) {
            Err(e) => assert_eq!(e.key(), "max_connections"),
            other => panic!("{other:?}"),
        }
    }
}
