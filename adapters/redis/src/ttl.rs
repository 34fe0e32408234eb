//! TTLs as Redis takes them (`PX` milliseconds), shared by the cache and the sessions.

use std::time::Duration;

use cpc_ports::KvError;

/// The longest TTL accepted, in milliseconds (about 31 700 years): Redis refuses expiry times that overflow its
/// millisecond clock; this keeps well clear of that and reports it as a validation error instead.
pub(crate) const MAX_TTL_MILLIS: u64 = 1_000_000_000_000_000;

/// `ttl` in whole milliseconds (rounded down, at least 1); zero and absurdly long TTLs are validation errors.
pub(crate) fn ttl_millis(ttl: Duration) -> Result<u64, KvError> {
    if ttl.is_zero() {
        return Err(KvError::invalid("ttl", "must be greater than zero"));
    }
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if millis > MAX_TTL_MILLIS {
        return Err(KvError::invalid("ttl", "must be at most 10^15 milliseconds"));
    }
    Ok(millis.max(1))
}
