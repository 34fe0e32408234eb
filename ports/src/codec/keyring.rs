//! [`Keyring`]: the keys of encryption at rest, by id, read from the environment or built in code. Keys are held
//! in [`SecretBox`]es (zeroed when dropped) and never printed: `Debug` shows the ids only.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::{ExposeSecret, SecretBox};

use crate::ConfigError;
use crate::config_error::switch;

/// The length of a key in bytes (256 bits).
pub const KEY_LEN: usize = 32;

/// The environment variable that lists the keys: comma-separated `id:base64key` entries, oldest first (the last
/// is the one new values are encrypted with). Each key is 32 bytes in standard base64 (44 characters with
/// padding; `openssl rand -base64 32` makes one).
pub const KEYS_ENV: &str = "CPC_ENCRYPTION_KEYS";

/// The environment variable that says whether values written before encryption was turned on (plaintext) are
/// still readable: on or off (`true`/`false`, `1`/`0`, `yes`/`no`, as every switch:
/// [`switch`](crate::config_error::switch)); off when unset or empty.
pub const ALLOW_PLAINTEXT_ENV: &str = "CPC_ENCRYPTION_ALLOW_PLAINTEXT";

/// The longest key id, in bytes.
const MAX_KEY_ID_LEN: usize = 64;

/// The id of a key, written in clear in every value it encrypts so a reader knows which key opens it: 1 to 64
/// ASCII letters, digits, `-`, `_` or `.` (so it fits the `id:key,...` list of [`KEYS_ENV`] and is safe to log).
///
/// ```
/// use cpc_ports::KeyId;
/// assert_eq!(KeyId::new("2025-06")?.as_str(), "2025-06");
/// assert!(KeyId::new("").is_err());
/// assert!(KeyId::new("a:b").is_err());
/// # Ok::<(), cpc_ports::domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Validates `id`: 1 to 64 bytes of ASCII letters, digits, `-`, `_` or `.`.
    pub fn new(id: impl Into<String>) -> Result<Self, cpc_domain::ValidationError> {
        let id = id.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !id.chars().all(valid_char) {
            return Err(cpc_domain::ValidationError::new(
                "key_id",
                "must be 1 to 64 ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(Self(id))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = cpc_domain::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The keys values are encrypted with ([`Codec::with_encryption`](super::Codec::with_encryption)): values are
/// decrypted with whichever listed key their envelope names, and encrypted with the primary key, the last listed
/// unless [`Keyring::with_primary`] says otherwise. To rotate, append a new key and keep the old ones until the
/// values they encrypted have expired (a cache entry's or a session's TTL).
///
/// Whether values written before encryption was turned on are still readable is
/// [`Keyring::allow_plaintext`]: `false` by default, so a value planted in plaintext by whoever can write to the
/// store is refused ([`CodecError::PlaintextRefused`](super::CodecError::PlaintextRefused)) rather than trusted.
/// Turn it on while values from before encryption may still be read, then off once they have expired.
///
/// `Debug` shows the key ids, the primary and the plaintext setting, never a key.
///
/// ```
/// use cpc_ports::{KeyId, Keyring};
/// let keyring = Keyring::new([(KeyId::new("k1")?, [1u8; 32]), (KeyId::new("k2")?, [2u8; 32])])?;
/// assert_eq!(keyring.primary().as_str(), "k2");
/// assert_eq!(format!("{keyring:?}"), r#"Keyring { key_ids: ["k1", "k2"], primary: "k2", allow_plaintext: false }"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Keyring {
    keys: Vec<(KeyId, SecretBox<[u8; KEY_LEN]>)>,
    primary: usize,
    allow_plaintext: bool,
}

impl Keyring {
    /// A keyring of `keys`, oldest first: the last is the primary. No keys, or an id listed twice, is a
    /// [`ConfigError`] naming `keys`.
    pub fn new(keys: impl IntoIterator<Item = (KeyId, [u8; KEY_LEN])>) -> Result<Self, ConfigError> {
        let keys = keys
            .into_iter()
            .map(|(id, mut key)| {
                let secret = SecretBox::new(Box::new(key));
                key.zeroize();
                (id, secret)
            })
            .collect();
        Self::checked(keys, "keys")
    }

    /// Reads [`KEYS_ENV`] and [`ALLOW_PLAINTEXT_ENV`] from the environment (see [`Keyring::from_lookup`]).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The keyring [`KEYS_ENV`] lists (`id:base64key,...`, oldest first), with [`ALLOW_PLAINTEXT_ENV`] applied;
    /// `None` when [`KEYS_ENV`] is unset or empty (encryption off). A malformed entry (no `:`, a bad id, an empty
    /// key, key text that is not standard base64, a key that is not 32 bytes, an id listed twice, an empty entry
    /// between commas) is a [`ConfigError`] naming the variable and, where there is one, the id, never the key.
    ///
    /// ```
    /// use cpc_ports::Keyring;
    /// let get = |name: &str| match name {
    ///     "CPC_ENCRYPTION_KEYS" => Some(format!("old:{},new:{}", "A".repeat(43) + "=", "B".repeat(42) + "A=")),
    ///     _ => None,
    /// };
    /// let keyring = Keyring::from_lookup(get)?.expect("keys are set");
    /// assert_eq!(keyring.primary().as_str(), "new");
    /// assert!(!keyring.allows_plaintext());
    ///
    /// let bad = |name: &str| (name == "CPC_ENCRYPTION_KEYS").then(|| "k1:c2hvcnQ=".to_owned());
    /// let err = Keyring::from_lookup(bad).unwrap_err();
    /// assert_eq!(err.to_string(), r#"CPC_ENCRYPTION_KEYS: key "k1" must be 32 bytes, not 5"#);
    /// # Ok::<(), cpc_ports::ConfigError>(())
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let Some(list) = get(KEYS_ENV).map(Zeroizing::new).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let keys = list.split(',').enumerate().map(|(n, entry)| parse_entry(n + 1, entry)).collect::<Result<_, _>>()?;
        let keyring = Self::checked(keys, KEYS_ENV)?;
        let allow_plaintext = switch(ALLOW_PLAINTEXT_ENV, get(ALLOW_PLAINTEXT_ENV).as_deref())?;
        Ok(Some(keyring.allow_plaintext(allow_plaintext)))
    }

    /// Checks that `keys` is not empty and lists each id once; `field` names the setting in the error.
    fn checked(keys: Vec<(KeyId, SecretBox<[u8; KEY_LEN]>)>, field: &str) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::new(field, "lists no key"));
        }
        for (i, (id, _)) in keys.iter().enumerate() {
            if keys[..i].iter().any(|(other, _)| other == id) {
                return Err(ConfigError::new(field, format!("key {:?} is listed twice", id.as_str())));
            }
        }
        Ok(Self { primary: keys.len() - 1, keys, allow_plaintext: false })
    }

    /// The same keyring, encrypting with `id` (which it must list, or a [`ConfigError`] naming `primary`).
    pub fn with_primary(mut self, id: &KeyId) -> Result<Self, ConfigError> {
        self.primary = self
            .keys
            .iter()
            .position(|(listed, _)| listed == id)
            .ok_or_else(|| ConfigError::new("primary", format!("key {:?} is not in the keyring", id.as_str())))?;
        Ok(self)
    }

    /// The same keyring, reading plaintext values (written before encryption was turned on) when `allow` is
    /// true, refusing them with [`CodecError::PlaintextRefused`](super::CodecError::PlaintextRefused) when
    /// false (the default).
    #[must_use]
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// Whether plaintext values are read ([`Keyring::allow_plaintext`]).
    pub fn allows_plaintext(&self) -> bool {
        self.allow_plaintext
    }

    /// The id of the key new values are encrypted with.
    pub fn primary(&self) -> &KeyId {
        &self.keys[self.primary].0
    }

    /// The ids of every key, in the order listed.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }

    /// The primary key and its id.
    pub(super) fn primary_key(&self) -> (&KeyId, &[u8; KEY_LEN]) {
        let (id, key) = &self.keys[self.primary];
        (id, key.expose_secret())
    }

    /// The key listed under `id`, if any.
    pub(super) fn key(&self, id: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys.iter().find(|(listed, _)| listed.as_str() == id).map(|(_, key)| key.expose_secret())
    }
}

/// One `id:base64key` entry of [`KEYS_ENV`], the `n`th (1-based, for entries without a usable id).
fn parse_entry(n: usize, entry: &str) -> Result<(KeyId, SecretBox<[u8; KEY_LEN]>), ConfigError> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err(ConfigError::new(KEYS_ENV, format!("entry {n} is empty (a stray comma?)")));
    }
    let Some((id, key)) = entry.split_once(':') else {
        return Err(ConfigError::new(KEYS_ENV, format!("entry {n} must be id:base64key")));
    };
    let id = KeyId::new(id.trim()).map_err(|e| ConfigError::new(KEYS_ENV, format!("entry {n}: key id {}", e.rule)))?;
    let name = id.as_str();
    let key = key.trim();
    if key.is_empty() {
        return Err(ConfigError::new(KEYS_ENV, format!("key {name:?} is empty")));
    }
    // The decoder's own error names the offending character, a piece of the key: it is not passed on.
    let bytes = Zeroizing::new(
        STANDARD
            .decode(key)
            .map_err(|_| ConfigError::new(KEYS_ENV, format!("key {name:?} is not valid standard base64")))?,
    );
    let mut array = [0u8; KEY_LEN];
    if bytes.len() != KEY_LEN {
        return Err(ConfigError::new(KEYS_ENV, format!("key {name:?} must be {KEY_LEN} bytes, not {}", bytes.len())));
    }
    array.copy_from_slice(&bytes);
    let secret = SecretBox::new(Box::new(array));
    array.zeroize();
    Ok((id, secret))
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.key_ids().map(KeyId::as_str).collect();
        f.debug_struct("Keyring")
            .field("key_ids", &ids)
            .field("primary", &self.primary().as_str())
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

impl PartialEq for Keyring {
    /// The same ids with the same keys in the same order, the same primary and the same plaintext setting.
    fn eq(&self, other: &Self) -> bool {
        self.primary == other.primary
            && self.allow_plaintext == other.allow_plaintext
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|((a, ka), (b, kb))| a == b && ka.expose_secret() == kb.expose_secret())
    }
}

impl Eq for Keyring {}
