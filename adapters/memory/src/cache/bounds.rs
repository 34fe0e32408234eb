//! [`CacheBounds`]: how many entries and bytes an [`InMemoryCache`](super::InMemoryCache) keeps at most.

use cpc_ports::ConfigError;

/// The most entries and bytes an [`InMemoryCache`](super::InMemoryCache) holds; past either, it evicts the
/// least recently used entries. [`CacheBounds::from_env`] reads `CPC_MEMORY_CACHE_MAX_ENTRIES` and
/// `CPC_MEMORY_CACHE_MAX_BYTES`.
///
/// How both bounds hold with one weighted capacity (moka has one): the cache's capacity is `max_bytes` and an
/// entry weighs `max(key bytes + value bytes, floor)`, where `floor = ceil(max_bytes / max_entries)` (at most
/// `u32::MAX`; when it is clamped, the capacity becomes `max_entries * u32::MAX` if that is smaller). The stored
/// bytes never exceed the total weight, so at most `max_bytes` are stored; each entry weighs at least `floor`, so at
/// most `max_entries` fit. When small and large entries mix, the cache may hold fewer entries than `max_entries`
/// (a small entry is charged `floor` bytes): both bounds are upper bounds, not targets.
///
/// ```
/// use cpc_memory::CacheBounds;
/// let bounds = CacheBounds::from_lookup(|k| (k == "CPC_MEMORY_CACHE_MAX_ENTRIES").then(|| "500".to_owned()))?;
/// assert_eq!(bounds, CacheBounds { max_entries: 500, ..CacheBounds::default() });
/// assert_eq!(bounds.entry_floor(), 64 * 1024 * 1024 / 500 + 1);
/// # Ok::<(), cpc_ports::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBounds {
    /// The most entries kept. Default 10,000 ([`CacheBounds::DEFAULT_MAX_ENTRIES`]). At least 1.
    pub max_entries: u64,
    /// The most bytes kept, keys and values together. Default 64 MiB ([`CacheBounds::DEFAULT_MAX_BYTES`]).
    /// At least 1. A value whose key and bytes together exceed it is refused with `KvError::TooLarge`.
    pub max_bytes: u64,
}

/// The variable read into [`CacheBounds::max_entries`].
pub const MAX_ENTRIES_ENV: &str = "CPC_MEMORY_CACHE_MAX_ENTRIES";
/// The variable read into [`CacheBounds::max_bytes`].
pub const MAX_BYTES_ENV: &str = "CPC_MEMORY_CACHE_MAX_BYTES";

impl Default for CacheBounds {
    /// 10,000 entries, 64 MiB.
    fn default() -> Self {
        Self { max_entries: Self::DEFAULT_MAX_ENTRIES, max_bytes: Self::DEFAULT_MAX_BYTES }
    }
}

impl CacheBounds {
    /// The default [`CacheBounds::max_entries`]: 10,000.
    pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
    /// The default [`CacheBounds::max_bytes`]: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

    /// The defaults, overridden by `CPC_MEMORY_CACHE_MAX_ENTRIES` and `CPC_MEMORY_CACHE_MAX_BYTES` (whole
    /// numbers, at least 1) when set. A malformed or zero value is a [`ConfigError`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`CacheBounds::from_env`] over any variable lookup (for tests and other configuration sources).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn num(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<u64>, ConfigError> {
            get(name)
                .map(|v| match v.trim().parse::<u64>() {
                    Ok(0) => Err(ConfigError::new(name, "must be at least 1")),
                    Ok(n) => Ok(n),
                    Err(e) => Err(ConfigError::new(name, "must be a whole number").with_source(e)),
                })
                .transpose()
        }
        let defaults = Self::default();
        Ok(Self {
            max_entries: num(&get, "CPC_MEMORY_CACHE_MAX_ENTRIES")?.unwrap_or(defaults.max_entries),
            max_bytes: num(&get, "CPC_MEMORY_CACHE_MAX_BYTES")?.unwrap_or(defaults.max_bytes),
        })
    }

    /// Checks the rules: both bounds at least 1. The error names the field (`max_entries`, `max_bytes`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_entries == 0 {
            return Err(ConfigError::new("max_entries", "must be at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(ConfigError::new("max_bytes", "must be at least 1"));
        }
        Ok(())
    }

    /// The least weight of an entry: `ceil(max_bytes / max_entries)`, at most `u32::MAX` (moka's weights are
    /// `u32`); 1 for invalid bounds.
    pub fn entry_floor(&self) -> u32 {
        let floor = self.max_bytes.div_ceil(self.max_entries.max(1)).max(1);
        u32::try_from(floor).unwrap_or(u32::MAX)
    }

    /// The total weight the cache holds: `max_bytes`, or `max_entries * u32::MAX` when that is smaller (only when
    /// [`CacheBounds::entry_floor`] is clamped), so that both bounds hold.
    pub fn capacity(&self) -> u64 {
        self.max_bytes.min(self.max_entries.saturating_mul(u64::from(self.entry_floor())))
    }
}
