use serde::{Deserialize, Serialize};
use std::fmt;

/// The optimistic-locking version of a stored row. A new row has [`Version::FIRST`]; every successful update
/// increments it by one. An update that names a version other than the stored one is refused as a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(i64);

impl Version {
    /// The version of a freshly created row.
    pub const FIRST: Version = Version(1);

    /// Wraps a stored version number.
    pub const fn new(v: i64) -> Self {
        Self(v)
    }

    /// The number inside.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// The version after one more update.
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}
