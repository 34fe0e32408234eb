use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ValidationError;

/// A syntactically valid e-mail address, trimmed. Compared case-insensitively by stores
/// (see [`Email::normalized`]), kept as typed for display.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The longest address accepted (RFC 5321 path limit).
    pub const MAX_LEN: usize = 254;

    /// Parses an address. Rules: at most 254 characters after trimming; exactly one `@`; a local part of
    /// 1 to 64 characters; a domain with at least one dot, no empty labels, and no whitespace or control
    /// characters anywhere.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let s = input.trim();
        let fail = |rule: &'static str| Err(ValidationError::new("email", rule));
        if s.is_empty() {
            return fail("must not be empty");
        }
        if s.len() > Self::MAX_LEN {
            return fail("must be at most 254 characters");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail("must not contain whitespace or control characters");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return fail("must contain exactly one '@'");
        };
        if domain.contains('@') {
            return fail("must contain exactly one '@'");
        }
        if local.is_empty() || local.len() > 64 {
            return fail("local part must be 1 to 64 characters");
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return fail("domain must have a dot and no empty labels");
        }
        Ok(Self(s.to_owned()))
    }

    /// The address as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercase form stores use to enforce case-insensitive uniqueness.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for Email {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

impl std::str::FromStr for Email {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_trims() {
        let e = Email::parse("  Ada.Lovelace@Example.org ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace@Example.org");
        assert_eq!(e.normalized(), "ada.lovelace@example.org");
    }

    #[test]
    fn rejects_each_broken_rule_naming_the_field() {
        for bad in ["", "no-at.example.org", "a@b@c.org", "@example.org", "a@localhost", "a@example..org", "a b@x.org"]
        {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad:?}");
        }
        let long = format!("{}@example.org", "a".repeat(65));
        assert!(Email::parse(&long).unwrap_err().rule.contains("local part"));
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<Email>("\"x@y.io\"").is_ok());
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = Email::parse(&s);
        }
    }
}
