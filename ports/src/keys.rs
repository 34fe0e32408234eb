//! Keys, channel names and session ids as newtypes, validated on construction.
//!
//! Keys are any non-empty UTF-8 text up to [`MAX_KEY_BYTES`] bytes: unicode, spaces and newlines are fine (the
//! contract suites check it). Adapters add their own namespace prefix; callers never see it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cpc_domain::ValidationError;

/// The longest key, channel or pattern accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;

fn validate_key(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if s.len() > MAX_KEY_BYTES {
        return Err(ValidationError::new(field, "must be at most 4096 bytes"));
    }
    Ok(())
}

macro_rules! text_key {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `s`: non-empty and at most [`MAX_KEY_BYTES`] bytes.
            pub fn new(s: impl Into<String>) -> Result<Self, ValidationError> {
                let s = s.into();
                validate_key($field, &s)?;
                Ok(Self(s))
            }

            /// The text of the key.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_key!(
    /// A cache key.
    CacheKey,
    "cache_key"
);
text_key!(
    /// The name of a distributed lock.
    LockKey,
    "lock_key"
);
text_key!(
    /// What a rate limit counts against: a user, an IP, an API key.
    RateLimitKey,
    "rate_limit_key"
);
text_key!(
    /// A pub/sub channel name.
    Channel,
    "channel"
);
text_key!(
    /// A pub/sub channel pattern in Redis glob syntax: `*` any run, `?` one byte (a non-ASCII character is several), `[abc]`, `[^a]`, `[a-z]`,
    /// and `\` to escape.
    ChannelPattern,
    "channel_pattern"
);

/// A session id: 256 random bits from the operating system, in URL-safe base64 without padding (43 characters).
/// Unguessable, safe in a cookie; [`SessionId::parse`] accepts nothing else, so a forged or garbled cookie is a
/// validation error before any store is asked.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// The length of the text form.
    pub const LEN: usize = 43;

    /// A fresh random id.
    ///
    /// # Panics
    /// Only if the operating system's random source fails, which `getrandom` reports as unrecoverable.
    #[allow(clippy::expect_used)]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The id made of these 32 bytes, for ids drawn elsewhere (e.g. a framework's own random session id,
    /// padded). The bytes MUST come from a cryptographically secure random source: an id is a bearer credential.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses the text form (from a cookie, say).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = s.len() == Self::LEN && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new("session_id", "must be 43 characters of URL-safe base64 (256 bits)"))
        }
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SessionId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Shows only a prefix: a session id is a bearer credential and must not end up whole in logs.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.0[..6])
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_odd_text_and_reject_empty_or_huge() {
        for odd in ["ünïcödé ключ 🔑", "with spaces", "new\nline", "*?[glob]"] {
            assert_eq!(CacheKey::new(odd).unwrap().as_str(), odd);
        }
        assert!(CacheKey::new("k".repeat(1024)).is_ok());
        assert_eq!(CacheKey::new("").unwrap_err().field, "cache_key");
        assert_eq!(LockKey::new("x".repeat(MAX_KEY_BYTES + 1)).unwrap_err().field, "lock_key");
    }

    #[test]
    fn session_ids_are_random_parseable_and_redacted_in_debug() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_str()), Ok(a.clone()));
        let fixed = SessionId::from_bytes(&[7; 32]);
        assert_eq!(SessionId::parse(fixed.as_str()), Ok(fixed.clone()));
        assert_ne!(fixed, SessionId::from_bytes(&[8; 32]));
        assert!(!format!("{a:?}").contains(a.as_str()));
        for bad in ["", "short", &"!".repeat(43), &format!("{}=", &a.as_str()[..42])] {
            assert_eq!(SessionId::parse(bad).unwrap_err().field, "session_id");
        }
    }

    proptest::proptest! {
        #[test]
        fn session_id_parse_never_panics(s in ".*") {
            let _ = SessionId::parse(&s);
        }
    }
}
