//! [`QueryTimeouts`]: how long the server lets one statement run, wait for a lock, or a transaction sit idle,
//! set on every connection the library opens (PostgreSQL's `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_session_timeout`).

use std::time::Duration;

use cpc_ports::ConfigError;

/// Server-side limits set on every PostgreSQL connection at start-up, so no repository call, unit-of-work
/// statement or job-queue query waits forever on a row lock or a runaway query. A zero duration turns a limit off.
///
/// | limit | default | environment | URL parameter | a call that hits it gets |
/// |---|---|---|---|---|
/// | `statement` | 30 s | `DATABASE_STATEMENT_TIMEOUT` | `statement_timeout` | `Timeout` (`RepoError`, `KvError`, `DatabaseError::QueryTimeout`) |
/// | `lock` | 10 s | `DATABASE_LOCK_TIMEOUT` | `lock_timeout` | the same |
/// | `idle_in_transaction` | 60 s | `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT` | `idle_in_transaction_session_timeout` | the server closes the connection: the transaction is rolled back and its next statement fails as `Unavailable` |
///
/// Values are PostgreSQL's: a whole number with an optional unit `ms`, `s`, `min` or `h` (no unit: milliseconds),
/// at most 2,147,483,647 ms. Migrations run without the statement and lock limits (they may build large indexes
/// and wait for another migrator's lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryTimeouts {
    /// The longest one statement may run (`statement_timeout`).
    pub statement: Duration,
    /// The longest one statement may wait for a lock (`lock_timeout`).
    pub lock: Duration,
    /// The longest a transaction may sit idle between statements (`idle_in_transaction_session_timeout`).
    pub idle_in_transaction: Duration,
}

impl Default for QueryTimeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(30),
            lock: Duration::from_secs(10),
            idle_in_transaction: Duration::from_secs(60),
        }
    }
}

/// PostgreSQL's largest value for these settings, in milliseconds.
const MAX_MS: u128 = i32::MAX as u128;

impl QueryTimeouts {
    /// No limits at all (PostgreSQL's own defaults).
    pub const NONE: Self =
        Self { statement: Duration::ZERO, lock: Duration::ZERO, idle_in_transaction: Duration::ZERO };

    /// The connection start-up `options` that set them (`-c statement_timeout=30000 ...`, in milliseconds).
    pub(crate) fn startup_options(&self) -> String {
        format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            self.statement.as_millis(),
            self.lock.as_millis(),
            self.idle_in_transaction.as_millis()
        )
    }

    /// Sets the limit the environment variable or URL parameter `name` stands for from `value`; `Ok(false)` when
    /// `name` is not one of them. Errors name `field`.
    pub(crate) fn set(&mut self, name: &str, value: &str, field: &str) -> Result<bool, ConfigError> {
        let slot = match name {
            "DATABASE_STATEMENT_TIMEOUT" | "statement_timeout" => &mut self.statement,
            "DATABASE_LOCK_TIMEOUT" | "lock_timeout" => &mut self.lock,
            "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT" | "idle_in_transaction_session_timeout" => {
                &mut self.idle_in_transaction
            }
            _ => return Ok(false),
        };
        *slot = parse(value).ok_or_else(|| {
            ConfigError::new(
                field,
                format!("{name} must be a whole number with an optional unit ms, s, min or h, at most 2147483647 ms"),
            )
        })?;
        Ok(true)
    }

    /// Checks every limit is within PostgreSQL's range; errors name the limit.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (name, d) in [
            ("statement_timeout", self.statement),
            ("lock_timeout", self.lock),
            ("idle_in_transaction_session_timeout", self.idle_in_transaction),
        ] {
            if d.as_millis() > MAX_MS || (d.as_millis() == 0 && !d.is_zero()) {
                return Err(ConfigError::new(name, "must be 0 (off) or 1 ms to 2147483647 ms"));
            }
        }
        Ok(())
    }
}

/// The environment variables [`QueryTimeouts`] reads.
pub(crate) const ENV_VARS: [&str; 3] =
    ["DATABASE_STATEMENT_TIMEOUT", "DATABASE_LOCK_TIMEOUT", "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT"];

/// PostgreSQL's duration syntax: digits, then optionally `ms`, `s`, `min` or `h`.
fn parse(value: &str) -> Option<Duration> {
    let value = value.trim();
    let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    (u128::from(ms) <= MAX_MS).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_duration_syntax_is_read_and_anything_else_refused_naming_the_field() {
        assert_eq!(parse("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5s", "10 days", "s", "2147483648", "999999h"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let mut t = QueryTimeouts::default();
        let err = t.set("DATABASE_LOCK_TIMEOUT", "soon", "DATABASE_LOCK_TIMEOUT").unwrap_err();
        assert!(err.to_string().contains("DATABASE_LOCK_TIMEOUT"), "{err}");
        assert!(!t.set("PGHOST", "x", "PGHOST").unwrap());
        assert!(t.set("lock_timeout", "250ms", "url").unwrap());
        assert_eq!(t.lock, Duration::from_millis(250));
    }

    #[test]
    fn sub_millisecond_and_overlong_limits_are_refused() {
        let t = QueryTimeouts { lock: Duration::from_micros(10), ..QueryTimeouts::default() };
        assert!(t.validate().unwrap_err().to_string().contains("lock_timeout"));
        let t = QueryTimeouts { statement: Duration::from_secs(3_000_000), ..QueryTimeouts::default() };
        assert!(t.validate().unwrap_err().to_string().contains("statement_timeout"));
        assert!(QueryTimeouts::default().validate().is_ok() && QueryTimeouts::NONE.validate().is_ok());
        assert_eq!(
            QueryTimeouts::default().startup_options(),
            "-c statement_timeout=30000 -c lock_timeout=10000 -c idle_in_transaction_session_timeout=60000"
        );
    }
}
