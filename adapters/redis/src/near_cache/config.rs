//! [`NearCacheConfig`]: the local tier's bounds, built by hand or read from the environment.

use std::time::Duration;

use cpc_ports::ConfigError;
use cpc_ports::config_error::{positive_number, switch};

/// The variable that turns the near cache on when the ports are wired from the environment (`on`/`off`,
/// `true`/`false`, `1`/`0`, `yes`/`no`; off when unset).
pub const NEAR_CACHE_ENV: &str = "CPC_NEAR_CACHE";

/// The variables of the local tier's bounds, in the order of the fields (entries, bytes, local TTL, keepalive).
const BOUND_ENV_VARS: [&str; 4] = [
    "CPC_NEAR_CACHE_MAX_ENTRIES",
    "CPC_NEAR_CACHE_MAX_BYTES",
    "CPC_NEAR_CACHE_MAX_LOCAL_TTL_MS",
    "CPC_NEAR_CACHE_KEEPALIVE_MS",
];

/// The bounds of a [`NearCache`](super::NearCache)'s local tier.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheConfig {
    /// The most entries the local tier holds (least recently used evicted first). Default 10 000.
    pub max_entries: u64,
    /// The most bytes (keys, values and a small per-entry overhead) the local tier holds. Default 64 MiB.
    pub max_bytes: u64,
    /// The longest a value stays in the local tier, whatever the invalidations say (never longer than the key's
    /// remaining TTL in Redis either). It bounds the staleness even if an invalidation were lost. Default 5 s.
    pub max_local_ttl: Duration,
    /// How often the invalidation connection is checked with `PING`, so a silently dead connection (a half-open
    /// TCP connection) is noticed within this plus the response timeout. Default 1 s.
    pub keepalive: Duration,
}

impl Default for NearCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_local_ttl: Duration::from_secs(5),
            keepalive: Duration::from_secs(1),
        }
    }
}

impl NearCacheConfig {
    /// The same bounds with at most `max` local entries.
    #[must_use]
    pub fn with_max_entries(mut self, max: u64) -> Self {
        self.max_entries = max;
        self
    }

    /// The same bounds with at most `max` local bytes.
    #[must_use]
    pub fn with_max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// The same bounds with local entries kept at most `ttl`.
    #[must_use]
    pub fn with_max_local_ttl(mut self, ttl: Duration) -> Self {
        self.max_local_ttl = ttl;
        self
    }

    /// The same bounds with the invalidation connection pinged every `every`.
    #[must_use]
    pub fn with_keepalive(mut self, every: Duration) -> Self {
        self.keepalive = every;
        self
    }

    /// Checks every bound is above zero; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |zero: bool, field: &'static str| {
            if zero { Err(ConfigError::new(field, "must be greater than zero")) } else { Ok(()) }
        };
        positive(self.max_entries == 0, "max_entries")?;
        positive(self.max_bytes == 0, "max_bytes")?;
        positive(self.max_local_ttl.is_zero(), "max_local_ttl")?;
        positive(self.keepalive.is_zero(), "keepalive")
    }

    /// [`NearCacheConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Whether the near cache is on ([`NEAR_CACHE_ENV`]), and its bounds if so:
    ///
    /// | variable | field | default |
    /// |---|---|---|
    /// | `CPC_NEAR_CACHE` | on or off | off |
    /// | `CPC_NEAR_CACHE_MAX_ENTRIES` | [`max_entries`](Self::max_entries) | 10,000 |
    /// | `CPC_NEAR_CACHE_MAX_BYTES` | [`max_bytes`](Self::max_bytes) | 64 MiB |
    /// | `CPC_NEAR_CACHE_MAX_LOCAL_TTL_MS` | [`max_local_ttl`](Self::max_local_ttl) | 5,000 |
    /// | `CPC_NEAR_CACHE_KEEPALIVE_MS` | [`keepalive`](Self::keepalive) | 1,000 |
    ///
    /// `Ok(None)` when it is off. A malformed value, a zero bound, or a bound set while `CPC_NEAR_CACHE` is off
    /// (a setting that would silently do nothing) is a [`ConfigError`] naming the variable.
    ///
    /// ```
    /// use cpc_redis::NearCacheConfig;
    ///
    /// let env = |k: &str| match k {
    ///     "CPC_NEAR_CACHE" => Some("on".to_owned()),
    ///     "CPC_NEAR_CACHE_MAX_ENTRIES" => Some("500".to_owned()),
    ///     _ => None,
    /// };
    /// let config = NearCacheConfig::from_lookup(env).unwrap().expect("on");
    /// assert_eq!(config.max_entries, 500);
    /// assert_eq!(NearCacheConfig::from_lookup(|_| None).unwrap(), None);
    /// let err = NearCacheConfig::from_lookup(|k| (k == "CPC_NEAR_CACHE").then(|| "maybe".to_owned())).unwrap_err();
    /// assert_eq!(err.key(), "CPC_NEAR_CACHE");
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let on = switch(NEAR_CACHE_ENV, get(NEAR_CACHE_ENV).as_deref())?;
        let positive = |name: &'static str| get(name).map(|v| positive_number(name, &v)).transpose();
        let [entries, bytes, local_ttl, keepalive] = BOUND_ENV_VARS.map(positive);
        let [entries, bytes, local_ttl, keepalive] = [entries?, bytes?, local_ttl?, keepalive?];
        if !on {
            let set = BOUND_ENV_VARS.iter().zip([entries, bytes, local_ttl, keepalive]).find(|(_, v)| v.is_some());
            if let Some((name, _)) = set {
                let reason = format!("is set but {NEAR_CACHE_ENV} is off; set {NEAR_CACHE_ENV}=on or remove it");
                return Err(ConfigError::new(*name, reason));
            }
            return Ok(None);
        }
        let mut config = Self::default();
        config.max_entries = entries.unwrap_or(config.max_entries);
        config.max_bytes = bytes.unwrap_or(config.max_bytes);
        config.max_local_ttl = local_ttl.map_or(config.max_local_ttl, Duration::from_millis);
        config.keepalive = keepalive.map_or(config.keepalive, Duration::from_millis);
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn off_unless_turned_on() {
        assert_eq!(NearCacheConfig::from_lookup(env(&[])).unwrap(), None);
        assert_eq!(NearCacheConfig::from_lookup(env(&[("CPC_NEAR_CACHE", "off")])).unwrap(), None);
        assert_eq!(NearCacheConfig::from_lookup(env(&[("CPC_NEAR_CACHE", " FALSE ")])).unwrap(), None);
        assert_eq!(
            NearCacheConfig::from_lookup(env(&[("CPC_NEAR_CACHE", "On")])).unwrap(),
            Some(NearCacheConfig::default())
        );
    }

    #[test]
    fn every_bound_is_read() {
        let config = NearCacheConfig::from_lookup(env(&[
            ("CPC_NEAR_CACHE", "1"),
            ("CPC_NEAR_CACHE_MAX_ENTRIES", "20"),
            ("CPC_NEAR_CACHE_MAX_BYTES", "4096"),
            ("CPC_NEAR_CACHE_MAX_LOCAL_TTL_MS", "250"),
            ("CPC_NEAR_CACHE_KEEPALIVE_MS", "100"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.max_entries, 20);
        assert_eq!(config.max_bytes, 4096);
        assert_eq!(config.max_local_ttl, Duration::from_millis(250));
        assert_eq!(config.keepalive, Duration::from_millis(100));
        config.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_variable() {
        let key = |vars| NearCacheConfig::from_lookup(env(vars)).unwrap_err().key().to_owned();
        assert_eq!(key(&[("CPC_NEAR_CACHE", "perhaps")]), "CPC_NEAR_CACHE");
        assert_eq!(key(&[("CPC_NEAR_CACHE", "on"), ("CPC_NEAR_CACHE_MAX_ENTRIES", "0")]), "CPC_NEAR_CACHE_MAX_ENTRIES");
        assert_eq!(key(&[("CPC_NEAR_CACHE", "on"), ("CPC_NEAR_CACHE_MAX_BYTES", "-1")]), "CPC_NEAR_CACHE_MAX_BYTES");
        assert_eq!(
            key(&[("CPC_NEAR_CACHE", "on"), ("CPC_NEAR_CACHE_MAX_LOCAL_TTL_MS", "5s")]),
            "CPC_NEAR_CACHE_MAX_LOCAL_TTL_MS"
        );
        assert_eq!(
            key(&[("CPC_NEAR_CACHE_KEEPALIVE_MS", "100")]),
            "CPC_NEAR_CACHE_KEEPALIVE_MS",
            "bound without the switch"
        );
    }
}
