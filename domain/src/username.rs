use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ValidationError;

/// A user's handle: 3 to 32 ASCII letters, digits, `_`, `-` or `.`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Parses a username (no trimming: surrounding spaces are an error, not silently dropped).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let fail = |rule: &'static str| Err(ValidationError::new("username", rule));
        let len = s.chars().count();
        if !(3..=32).contains(&len) {
            return fail("must be 3 to 32 characters");
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return fail("may contain only ASCII letters, digits, '_', '-' and '.'");
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return fail("must start with a letter or digit");
        }
        Ok(Self(s.to_owned()))
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> Self {
        u.0
    }
}

impl std::str::FromStr for Username {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_by_rule() {
        assert!(Username::parse("ada_99").is_ok());
        assert!(Username::parse("ab").unwrap_err().rule.contains("3 to 32"));
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("héllo").unwrap_err().rule.contains("ASCII"));
        assert!(Username::parse("_ada").unwrap_err().rule.contains("start"));
        assert!(Username::parse(" ada").is_err());
        assert_eq!(Username::parse("x").unwrap_err().field, "username");
    }
}
