//! [`ReplicaConfig`] (where the primary and the replicas are, from code or the environment) and [`ReplicaPolicy`]
//! (how replica health is judged).

use std::time::Duration;

use cpc_pool::pool::PoolConfig;
use cpc_pool::postgres::PgConfig;
use cpc_ports::ConfigError;

/// How a [`ReplicaSet`](super::ReplicaSet) judges its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaPolicy {
    /// How often every replica is asked how far it has replayed; one that fails is out of rotation until a
    /// recheck finds it answering again. Default 5 s (`DB_REPLICA_RECHECK_MS`).
    pub recheck_interval: Duration,
    /// How long one replica may take to give a connection (for a read or a recheck), and to answer a recheck's
    /// query. A replica that does not is taken out of rotation, unless every connection of its pool was busy
    /// serving reads (the read then goes elsewhere, the recheck gives no verdict). Default 2 s
    /// (`DB_REPLICA_CHECK_TIMEOUT_MS`).
    pub check_timeout: Duration,
    /// A replica lagging more than this (at a recheck) is taken out of rotation. Default `None`: no bound, only
    /// read-your-writes decides (`DB_REPLICA_MAX_LAG_MS`, 0 for none).
    pub max_lag: Option<Duration>,
    /// How long one read may take on a replica. A replica that has not answered by then (a hung server, a
    /// half-open connection) is taken out of rotation, its connection is closed, and the read is run again on
    /// the primary. Default 10 s (`DB_REPLICA_READ_TIMEOUT_MS`, 0 for none); raise it for long analytic reads,
    /// which would otherwise be run a second time on the primary. Waiting for a replica's connection is bounded
    /// by [`check_timeout`](Self::check_timeout): past it, the read goes to the primary.
    pub read_timeout: Option<Duration>,
}

impl Default for ReplicaPolicy {
    fn default() -> Self {
        Self {
            recheck_interval: Duration::from_secs(5),
            check_timeout: Duration::from_secs(2),
            max_lag: None,
            read_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl ReplicaPolicy {
    /// Sets `recheck_interval`.
    pub fn recheck_interval(mut self, interval: Duration) -> Self {
        self.recheck_interval = interval;
        self
    }

    /// Sets `check_timeout`.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Sets `max_lag`.
    pub fn max_lag(mut self, lag: Option<Duration>) -> Self {
        self.max_lag = lag;
        self
    }

    /// Sets `read_timeout`.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Checks that the intervals are not zero; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.recheck_interval.is_zero() {
            return Err(ConfigError::new("recheck_interval", "must be greater than zero"));
        }
        if self.check_timeout.is_zero() {
            return Err(ConfigError::new("check_timeout", "must be greater than zero"));
        }
        if self.max_lag.is_some_and(|l| l.is_zero()) {
            return Err(ConfigError::new("max_lag", "must be greater than zero (use None for no bound)"));
        }
        if self.read_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("read_timeout", "must be greater than zero (use None for no bound)"));
        }
        Ok(())
    }
}

/// Where the primary and its read replicas are, with the pools' sizing and the replica policy. Passwords are
/// [`PgConfig`]s' secrets: `Debug` never shows them.
///
/// ```
/// use cpc_diesel::ReplicaConfig;
/// use cpc_pool::postgres::PgConfig;
///
/// let config = ReplicaConfig::builder(PgConfig::from_url("postgres://app:secret@db-primary/app")?)
///     .replica(PgConfig::from_url("postgres://app:secret@db-replica-1/app")?)
///     .build()?;
/// assert_eq!(config.replicas.len(), 1);
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<_, cpc_ports::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The primary: writes, units of work, strong reads.
    pub primary: PgConfig,
    /// The replicas, in rotation order. May be empty (every read goes to the primary).
    pub replicas: Vec<PgConfig>,
    /// Sizing of each pool (the primary's and each replica's).
    pub pool: PoolConfig,
    /// How replica health is judged.
    pub policy: ReplicaPolicy,
}

/// Builds a [`ReplicaConfig`].
#[derive(Debug, Clone)]
pub struct ReplicaConfigBuilder {
    config: ReplicaConfig,
}

impl ReplicaConfigBuilder {
    /// Adds a replica.
    pub fn replica(mut self, replica: PgConfig) -> Self {
        self.config.replicas.push(replica);
        self
    }

    /// Sets the pools' sizing.
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.config.pool = pool;
        self
    }

    /// Sets the replica policy.
    pub fn policy(mut self, policy: ReplicaPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<ReplicaConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The variable listing the replicas.
pub const REPLICA_URLS_ENV: &str = "DATABASE_REPLICA_URLS";

impl ReplicaConfig {
    /// A builder: the primary, no replicas, default pools and policy.
    pub fn builder(primary: PgConfig) -> ReplicaConfigBuilder {
        ReplicaConfigBuilder {
            config: ReplicaConfig {
                primary,
                replicas: Vec::new(),
                pool: PoolConfig::default(),
                policy: ReplicaPolicy::default(),
            },
        }
    }

    /// The primary as [`PgConfig::from_env`] reads it (`DATABASE_URL`, `PG*`); the replicas from
    /// `DATABASE_REPLICA_URLS` (comma-separated `postgres://` URLs, each complete: user, password and database
    /// are not taken from the primary; unset or empty: no replica); the pools from `DB_POOL_*`
    /// ([`PoolConfig::from_env`]); the policy from `DB_REPLICA_RECHECK_MS`, `DB_REPLICA_CHECK_TIMEOUT_MS`,
    /// `DB_REPLICA_MAX_LAG_MS` and `DB_REPLICA_READ_TIMEOUT_MS`. Errors name the variable (for a replica URL, with its position; never its
    /// password).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`ReplicaConfig::from_env`] over any variable lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut builder = Self::builder(PgConfig::from_lookup(&get)?).pool(PoolConfig::from_lookup(&get)?);
        let urls = get(REPLICA_URLS_ENV).unwrap_or_default();
        for (i, url) in urls.split(',').map(str::trim).filter(|u| !u.is_empty()).enumerate() {
            let replica = PgConfig::from_url(url)
                .map_err(|e| ConfigError::new(REPLICA_URLS_ENV, format!("replica {}: {}", i + 1, e.reason())))?;
            builder = builder.replica(replica);
        }
        let mut policy = ReplicaPolicy::default();
        if let Some(ms) = millis(&get, "DB_REPLICA_RECHECK_MS")? {
            policy.recheck_interval = ms;
        }
        if let Some(ms) = millis(&get, "DB_REPLICA_CHECK_TIMEOUT_MS")? {
            policy.check_timeout = ms;
        }
        if let Some(ms) = millis(&get, "DB_REPLICA_MAX_LAG_MS")? {
            policy.max_lag = (!ms.is_zero()).then_some(ms);
        }
        if let Some(ms) = millis(&get, "DB_REPLICA_READ_TIMEOUT_MS")? {
            policy.read_timeout = (!ms.is_zero()).then_some(ms);
        }
        builder.policy(policy).build()
    }

    /// Validates the primary, every replica (errors name `replicas[i].<field>`), the pools and the policy.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.primary.validate()?;
        for (i, replica) in self.replicas.iter().enumerate() {
            replica.validate().map_err(|e| ConfigError::new(format!("replicas[{i}].{}", e.key()), e.reason()))?;
        }
        self.pool.validate()?;
        self.policy.validate()
    }
}

fn millis(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<Duration>, ConfigError> {
    get(name)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::new(name, "must be a whole number of milliseconds"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn field(r: Result<ReplicaConfig, ConfigError>) -> (String, String) {
        match r {
            Err(e) => (e.key().to_owned(), e.reason().to_owned()),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn replicas_come_from_a_comma_separated_list() {
        let c = ReplicaConfig::from_lookup(env(&[
            ("DATABASE_URL", "postgres://app:pw@primary:5432/app"),
            (REPLICA_URLS_ENV, " postgres://app:pw@r1/app , ,postgres://app:pw@r2:6543/app"),
            ("DB_REPLICA_RECHECK_MS", "250"),
            ("DB_REPLICA_MAX_LAG_MS", "1500"),
            ("DB_REPLICA_READ_TIMEOUT_MS", "0"),
        ]))
        .unwrap();
        assert_eq!(c.primary.address(), "primary:5432");
        let replicas: Vec<String> = c.replicas.iter().map(PgConfig::address).collect();
        assert_eq!(replicas, ["r1:5432", "r2:6543"]);
        assert_eq!(c.policy.recheck_interval, Duration::from_millis(250));
        assert_eq!(c.policy.max_lag, Some(Duration::from_millis(1500)));
        assert_eq!(c.policy.read_timeout, None);
    }

    #[test]
    fn no_replica_variable_means_no_replicas_and_defaults() {
        let c = ReplicaConfig::from_lookup(env(&[("DATABASE_URL", "postgres://app@primary/app")])).unwrap();
        assert!(c.replicas.is_empty());
        assert_eq!(c.policy, ReplicaPolicy::default());
    }

    #[test]
    fn errors_name_the_variable_and_the_replica_without_its_password() {
        let (f, m) = field(ReplicaConfig::from_lookup(env(&[(
            REPLICA_URLS_ENV,
            "postgres://app:hunter2@r1/app,mysql://app:hunter2@r2/app",
        )])));
        assert_eq!(f, REPLICA_URLS_ENV);
        assert!(m.starts_with("replica 2:"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
        assert_eq!(
            field(ReplicaConfig::from_lookup(env(&[("DB_REPLICA_RECHECK_MS", "soon")]))).0,
            "DB_REPLICA_RECHECK_MS"
        );
        assert_eq!(field(ReplicaConfig::from_lookup(env(&[("DB_REPLICA_RECHECK_MS", "0")]))).0, "recheck_interval");
        assert_eq!(
            field(ReplicaConfig::from_lookup(env(&[("DB_REPLICA_READ_TIMEOUT_MS", "-1")]))).0,
            "DB_REPLICA_READ_TIMEOUT_MS"
        );
        let zero = ReplicaPolicy::default().read_timeout(Some(Duration::ZERO));
        assert_eq!(zero.validate().map_err(|e| e.key().to_owned()), Err("read_timeout".to_owned()));
        let primary = PgConfig::builder().build().unwrap();
        let mut bad = PgConfig::builder().build().unwrap();
        bad.user = String::new();
        let built = ReplicaConfig::builder(primary).replica(bad).build();
        assert_eq!(field(built).0, "replicas[0].user");
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let c = ReplicaConfig::from_lookup(env(&[
            ("DATABASE_URL", "postgres://app:primary-secret@primary/app"),
            (REPLICA_URLS_ENV, "postgres://app:replica-secret@r1/app"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("primary-secret") && !shown.contains("replica-secret"), "{shown}");
    }
}
