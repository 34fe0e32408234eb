//! [`ReadConsistency`]: whether a repository's reads may come from a replica, and the [`Session`] that keeps a
//! caller's reads after its own writes on data that shows them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Whether reads may see data a little behind the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadConsistency {
    /// Every read goes to the primary (the default): it sees every committed write.
    #[default]
    Strong,
    /// Reads may go to a replica, which may not have replayed other callers' latest writes yet. The caller's own
    /// writes are always visible to its next reads (read-your-writes): until a replica has replayed past its last
    /// write, its reads go to the primary.
    AllowStale,
}

/// What one caller (a repository handle, a manager view and its repositories and units of work) last wrote: the
/// primary's WAL position after its latest write. Reads may use a replica only once it replayed that far.
#[derive(Debug, Default)]
pub(crate) struct Session {
    last_write: AtomicU64,
}

impl Session {
    /// The position a replica must have replayed for this caller's reads (0: it wrote nothing).
    pub(crate) fn min_position(&self) -> u64 {
        self.last_write.load(Ordering::Acquire)
    }

    /// Records a write that ended at `position`; `None` (the position could not be read after a write that
    /// succeeded) pins this caller's reads to the primary, the only safe choice.
    pub(crate) fn wrote(&self, position: Option<u64>) {
        self.last_write.fetch_max(position.unwrap_or(u64::MAX), Ordering::AcqRel);
    }
}
