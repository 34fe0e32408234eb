//! [`ConfigError`]: one error for every configuration path of the library, from the environment or from a builder.

use std::sync::Arc;

/// A setting is missing or malformed. `key` names it as the app wrote it: the environment variable
/// (`DATABASE_URL`, `REDIS_RESPONSE_TIMEOUT_MS`) or the builder's field (`connect_timeout`); `reason` says what is
/// wrong, never the value of a secret. The error that caused it (a URL parser's, say) is kept as the
/// [`source`](std::error::Error::source).
///
/// Every configuration reader of the library returns it (the pools', PostgreSQL's, SQLite's, the replicas',
/// Redis's, Redlock's and the migrations' `from_env`, `from_lookup`, `validate` and `build`); it converts into
/// the pool's `DatabaseError` (as `DatabaseError::Config`), [`RepoError`](crate::RepoError) and
/// [`KvError`](crate::KvError) for the calls that meet a bad setting while doing something else, and the
/// composition root reports every configuration failure as one (`WiringError::Config`).
///
/// ```
/// use cpc_ports::ConfigError;
///
/// let e = ConfigError::new("DB_POOL_MAX", "must be at least 1");
/// assert_eq!(e.key(), "DB_POOL_MAX");
/// assert_eq!(e.to_string(), "DB_POOL_MAX: must be at least 1");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    key: String,
    reason: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ConfigError {
    /// `key` is missing or malformed for `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into(), source: None }
    }

    /// The same error, caused by `source`.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The environment variable or builder field at fault.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Reads a whole number of at least 1 from `value`, the value of the variable or field `key`; a zero, a sign or
/// anything else is a [`ConfigError`] naming `key`.
///
/// ```
/// use cpc_ports::config_error::positive_number;
///
/// assert_eq!(positive_number("MAX", " 42 ").unwrap(), 42);
/// assert_eq!(positive_number("MAX", "0").unwrap_err().reason(), "must be at least 1");
/// assert_eq!(positive_number("MAX", "-1").unwrap_err().key(), "MAX");
/// ```
pub fn positive_number(key: &str, value: &str) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(0) => Err(ConfigError::new(key, "must be at least 1")),
        Ok(n) => Ok(n),
        Err(e) => Err(ConfigError::new(key, "must be a whole number").with_source(e)),
    }
}

/// Reads an on/off switch from `value`, the value of the variable or field `key` (`None` when it is not set):
/// `on`, `true`, `1` or `yes` is on, `off`, `false`, `0` or `no` off (any case, surrounding spaces ignored), and
/// so is a switch that is unset or empty; anything else is a [`ConfigError`] naming `key`. Every switch the
/// library reads from the environment takes these words.
///
/// ```
/// use cpc_ports::config_error::switch;
///
/// assert!(switch("CPC_NEAR_CACHE", Some(" On ")).unwrap());
/// assert!(!switch("CPC_ENCRYPTION_ALLOW_PLAINTEXT", Some("0")).unwrap());
/// assert!(!switch("CPC_NEAR_CACHE", None).unwrap() && !switch("CPC_NEAR_CACHE", Some(" ")).unwrap());
/// assert_eq!(switch("CPC_NEAR_CACHE", Some("maybe")).unwrap_err().key(), "CPC_NEAR_CACHE");
/// ```
pub fn switch(key: &str, value: Option<&str>) -> Result<bool, ConfigError> {
    let Some(value) = value else { return Ok(false) };
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" | "" => Ok(false),
        _ => Err(ConfigError::new(key, format!("must be on or off (true/false, 1/0, yes/no), not {value:?}"))),
    }
}

impl From<cpc_domain::ValidationError> for ConfigError {
    /// A rule a setting broke (the Redis configurations validate their fields this way).
    fn from(e: cpc_domain::ValidationError) -> Self {
        Self::new(e.field.clone(), e.rule.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_kept_and_the_message_names_the_key() {
        let parse = "x".parse::<u32>().unwrap_err();
        let e = ConfigError::new("REDIS_DB", "must be a number").with_source(parse);
        assert_eq!(e.to_string(), "REDIS_DB: must be a number");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("invalid digit found in string"));
        let from: ConfigError = cpc_domain::ValidationError::new("namespace", "must end with ':'").into();
        assert_eq!((from.key(), from.reason()), ("namespace", "must end with ':'"));
    }
}
