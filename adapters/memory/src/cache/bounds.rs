//! [`CacheBounds`]: how many entries and bytes an [`InMemoryCache`](super::InMemoryCache) keeps at most.

use cpc_ports::ConfigError;
use cpc_ports::config_error::positive_number;

/// The most entries and bytes an [`InMemoryCache`](super::InMemoryCache) holds; past either, it evicts the
/// least recently used entries. [`CacheBounds::from_env`] reads `CPC_MEMORY_CACHE_MAX_ENTRIES` and
/// `CPC_MEMORY_CACHE_MAX_BYTES`.
///
/// How both bounds hold with one weighted capacity (moka has one): with `floor = ceil(max_bytes / max_entries)`
/// (at most `u32::MAX`; `max_entries` counts as at most `max_bytes`), the cache's capacity is
/// `C = max_entries * floor` and an entry of `n` bytes (key and
/// value) weighs `max(floor, ceil(n * C / max_bytes))`. Each entry weighs at least `floor`, so at most
/// `max_entries` fit, and exactly that many when they are small; each weighs at least `n * C / max_bytes`, so the
/// entries together hold at most `max_bytes` bytes (one entry of `max_bytes` bytes weighs `C` and fits alone).
/// When small and large entries mix, the cache may hold fewer entries than `max_entries` (a small entry is
/// charged `floor`): both bounds are upper bounds, not targets.
///
/// ```
/// use cpc_memory::CacheBounds;
/// let bounds = CacheBounds::from_lookup(|k| (k == "CPC_MEMORY_CACHE_MAX_ENTRIES").then(|| "500".to_owned()))?;
/// assert_eq!(bounds, CacheBounds { max_entries: 500, ..CacheBounds::default() });
/// assert_eq!(bounds.entry_floor(), 64 * 1024 * 1024 / 500 + 1);
/// assert_eq!(bounds.capacity(), 500 * bounds.entry_floor() as u64);
/// assert_eq!(bounds.weight(10), bounds.entry_floor(), "a small entry is charged the floor");
/// assert_eq!(u64::from(bounds.weight(64 * 1024 * 1024)), bounds.capacity(), "the largest entry fills the cache");
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
            get(name).map(|v| positive_number(name, &v)).transpose()
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

    /// The least weight of an entry: `ceil(max_bytes / min(max_entries, max_bytes))`, at most `u32::MAX` (moka's
    /// weights are `u32`); 1 for invalid bounds. (An entry has at least one byte, its key, so a `max_entries`
    /// above `max_bytes` counts as `max_bytes`.)
    pub fn entry_floor(&self) -> u32 {
        let floor = self.max_bytes.div_ceil(self.entries().max(1)).max(1);
        u32::try_from(floor).unwrap_or(u32::MAX)
    }

    /// `max_entries`, at most `max_bytes`.
    fn entries(&self) -> u64 {
        self.max_entries.min(self.max_bytes)
    }

    /// The total weight the cache holds: `min(max_entries, max_bytes) * entry_floor()`, less than `2 * max_bytes`
    /// (0 for invalid bounds).
    pub fn capacity(&self) -> u64 {
        self.entries().saturating_mul(u64::from(self.entry_floor()))
    }

    /// The weight of an entry of `bytes` bytes, key and value: `max(floor, ceil(bytes * capacity / max_bytes))`,
    /// at most `u32::MAX` (see [`CacheBounds::max_entry_bytes`] for the entries that stay below it).
    pub fn weight(&self, bytes: u64) -> u32 {
        let scaled = (u128::from(bytes) * u128::from(self.capacity())).div_ceil(u128::from(self.max_bytes.max(1)));
        u32::try_from(scaled).unwrap_or(u32::MAX).max(self.entry_floor())
    }

    /// The most bytes (key and value) one entry may have: `max_bytes`, or fewer when its weight would exceed
    /// `u32::MAX` (only with a `max_bytes` above 2 GiB; never fewer than 2 GiB).
    pub fn max_entry_bytes(&self) -> u64 {
        let capacity = self.capacity();
        if capacity <= u64::from(u32::MAX) {
            return self.max_bytes;
        }
        let fits = u128::from(u32::MAX) * u128::from(self.max_bytes) / u128::from(capacity);
        u64::try_from(fits).unwrap_or(u64::MAX).min(self.max_bytes)
    }
}
