//! [`InMemoryLock`]: the [`Lock`] port in process memory, with leases and fencing tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{FencingToken, KvError, Lock, LockKey, LockLease};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The fewest acquisitions between two sweeps of expired leases.
const SWEEP_MIN_ACQUISITIONS: usize = 128;
/// A sweep forgets the fencing counter of a key nobody holds once the clock is this far past its last token
/// (microseconds): the next token, taken from the clock, is then still greater. The margin covers small steps
/// back of the system clock.
const FORGET_AFTER_MICROS: u64 = 60_000_000;

/// A [`Lock`] in process memory that behaves like a Redis lock (`SET key owner NX PX ttl` plus compare-and-delete
/// scripts): leases expire on tokio's clock (so tests can `tokio::time::pause()` and `advance()`), each holder has
/// a random owner id, and every acquisition of a key gets a fencing token greater than all earlier ones for that
/// key, across releases and expiries: one more than the last, and never less than the system clock in
/// microseconds since the Unix epoch, as the Redis locks do.
///
/// [`Lock::acquire`] sleeps until the lock is released (woken by a [`Notify`]) or the current lease runs out,
/// whichever comes first, and gives up with [`KvError::Timeout`] when its wait is over.
///
/// Expired leases are removed lazily when touched and by a sweep after every `max(128, held locks)`
/// acquisitions. The sweep also forgets the fencing counter of a key nobody holds once the clock is a minute
/// past its last token (the next token, from the clock, is greater anyway), so memory stays bounded by the
/// keys locked in the last minute.
///
/// Cheap to clone; clones share the locks (as clones of the Redis and SQL locks share their server), so a
/// [`LeaseGuard`](cpc_ports::LeaseGuard) from [`LockExt::acquire_guard`](cpc_ports::LockExt::acquire_guard) holds a
/// clone.
#[derive(Clone)]
pub struct InMemoryLock {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    released: Notify,
}

#[derive(Default)]
struct State {
    holders: HashMap<String, Holder>,
    last_tokens: HashMap<String, u64>,
    acquisitions_since_sweep: usize,
    held_after_sweep: usize,
}

struct Holder {
    owner: String,
    expires_at: Instant,
}

impl Holder {
    fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

impl State {
    /// The live holder of `key`, purging an expired one.
    fn live_holder(&mut self, key: &str, now: Instant) -> Option<&mut Holder> {
        if self.holders.get(key).is_some_and(|h| !h.is_live(now)) {
            self.holders.remove(key);
        }
        self.holders.get_mut(key)
    }

    /// The live holder of `key` if it is `owner`.
    fn owned_by(&mut self, key: &str, owner: &str, now: Instant) -> Option<&mut Holder> {
        self.live_holder(key, now).filter(|h| h.owner == owner)
    }

    fn sweep_if_due(&mut self, now: Instant) {
        self.acquisitions_since_sweep += 1;
        if self.acquisitions_since_sweep >= self.held_after_sweep.max(SWEEP_MIN_ACQUISITIONS) {
            self.holders.retain(|_, h| h.is_live(now));
            let forget_before = clock_micros().saturating_sub(FORGET_AFTER_MICROS);
            let holders = &self.holders;
            self.last_tokens.retain(|key, token| *token >= forget_before || holders.contains_key(key));
            self.acquisitions_since_sweep = 0;
            self.held_after_sweep = self.holders.len();
        }
    }
}

/// What one attempt to take a lock found.
enum Attempt {
    Taken(LockLease),
    /// Someone holds it until this instant.
    Busy(Instant),
}

impl InMemoryLock {
    /// No lock held.
    pub fn new() -> Self {
        Self { shared: Arc::new(Shared { state: Mutex::new(State::default()), released: Notify::new() }) }
    }

    /// Test aid: how many leases are stored, counting expired ones not yet purged. Lets a test show that
    /// abandoned leases do not pile up.
    pub fn stored_leases(&self) -> usize {
        self.lock().holders.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attempt(&self, key: &LockKey, ttl: Duration) -> Result<Attempt, KvError> {
        let now = Instant::now();
        let expires_at = lease_end(ttl, now)?;
        let mut state = self.lock();
        if let Some(holder) = state.live_holder(key.as_str(), now) {
            return Ok(Attempt::Busy(holder.expires_at));
        }
        let last = state.last_tokens.entry(key.as_str().to_owned()).or_insert(0);
        let token = last.checked_add(1).ok_or_else(|| KvError::backend("memory", "fencing tokens exhausted"))?;
        let token = token.max(clock_micros());
        *last = token;
        let owner = uuid::Uuid::new_v4().to_string();
        state.holders.insert(key.as_str().to_owned(), Holder { owner: owner.clone(), expires_at });
        state.sweep_if_due(now);
        Ok(Attempt::Taken(LockLease { key: key.clone(), owner, token: FencingToken(token), ttl }))
    }
}

/// The system clock in microseconds since the Unix epoch (0 before it): the floor of fencing tokens.
fn clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// When a lease of `ttl` taken at `now` ends; a zero or unrepresentable `ttl` is a validation error.
fn lease_end(ttl: Duration, now: Instant) -> Result<Instant, KvError> {
    if ttl.is_zero() {
        return Err(KvError::invalid("ttl", "must be greater than zero"));
    }
    now.checked_add(ttl).ok_or_else(|| KvError::invalid("ttl", "is too large to represent"))
}

fn lease_lost(lease: &LockLease) -> KvError {
    KvError::LeaseLost { key: lease.key.as_str().to_owned() }
}

impl Default for InMemoryLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLock").field("stored_leases", &self.stored_leases()).finish()
    }
}

#[async_trait]
impl Lock for InMemoryLock {
    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<LockLease>, KvError> {
        Ok(match self.attempt(key, ttl)? {
            Attempt::Taken(lease) => Some(lease),
            Attempt::Busy(_) => None,
        })
    }

    async fn acquire(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError> {
        let deadline = Instant::now().checked_add(wait);
        loop {
            // Registered before looking, so a release between the look and the sleep still wakes us.
            let released = self.shared.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let busy_until = match self.attempt(key, ttl)? {
                Attempt::Taken(lease) => return Ok(lease),
                Attempt::Busy(until) => until,
            };
            let wake_at = match deadline {
                Some(deadline) if Instant::now() >= deadline => {
                    return Err(KvError::Timeout { operation: "acquire lock", after: wait });
                }
                Some(deadline) => deadline.min(busy_until),
                None => busy_until,
            };
            tokio::select! {
                () = &mut released => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    async fn extend(&self, lease: &LockLease, ttl: Duration) -> Result<LockLease, KvError> {
        let now = Instant::now();
        let expires_at = lease_end(ttl, now)?;
        let mut state = self.lock();
        let holder = state.owned_by(lease.key.as_str(), &lease.owner, now).ok_or_else(|| lease_lost(lease))?;
        holder.expires_at = expires_at;
        Ok(LockLease { ttl, ..lease.clone() })
    }

    async fn release(&self, lease: LockLease) -> Result<(), KvError> {
        let now = Instant::now();
        {
            let mut state = self.lock();
            if state.owned_by(lease.key.as_str(), &lease.owner, now).is_none() {
                return Err(lease_lost(&lease));
            }
            state.holders.remove(lease.key.as_str());
        }
        self.shared.released.notify_waiters();
        Ok(())
    }

    async fn is_held(&self, lease: &LockLease) -> Result<bool, KvError> {
        let now = Instant::now();
        Ok(self.lock().owned_by(lease.key.as_str(), &lease.owner, now).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_forgets_only_counters_the_clock_has_passed_and_keys_nobody_holds() {
        let now = Instant::now();
        let mut state = State::default();
        let far_future = now + Duration::from_secs(3600);
        state.last_tokens.insert("old".into(), 5);
        state.last_tokens.insert("old-but-held".into(), 6);
        state.holders.insert("old-but-held".into(), Holder { owner: "o".into(), expires_at: far_future });
        state.last_tokens.insert("recent".into(), clock_micros());
        state.acquisitions_since_sweep = SWEEP_MIN_ACQUISITIONS;
        state.sweep_if_due(now);
        let mut kept: Vec<&str> = state.last_tokens.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["old-but-held", "recent"]);
    }
}
