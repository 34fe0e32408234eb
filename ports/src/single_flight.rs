//! [`SingleFlight`]: at most one computation per key at a time in this process; its outcome, value or error, is
//! handed to every caller that waited for it, and no caller waits beyond its bound.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::KvError;

/// Shards of the map of running computations: calls on different keys rarely share a shard lock.
const SHARDS: usize = 16;

/// What a leader hands to its waiters: nothing yet, then its outcome (an error shared, see [`copy_of`]).
type Outcome<V> = Option<Result<V, Arc<KvError>>>;
type Shard<V> = Mutex<HashMap<String, watch::Receiver<Outcome<V>>>>;

/// One computation per key at a time in this process, its outcome shared by every caller that asked for the
/// key meanwhile: the building block of a cache's `get_or_set`.
///
/// [`SingleFlight::join`] makes the first caller for a key the key's [`Leader`]: it computes, then hands its
/// outcome to [`Leader::finish`]. Callers for the same key that arrive meanwhile wait, and get that outcome
/// ([`Joined::Waited`]): a clone of the value, or the leader's error, so a failing computation runs once, not once
/// per waiter, and every waiter gets the same error (the same variant and fields; a [`KvError::Backend`]'s source
/// is shared, shown and chained as the original). Once the leader has finished, the key is free: the next call
/// leads again (and computes again after a failure).
///
/// * **Bounded waits.** A waiter waits at most the `wait` it passed to `join`, then gets [`KvError::Timeout`]
///   (operation [`SingleFlight::WAIT_OPERATION`]). The leader is not bounded by it: its computation goes on and
///   still serves the waiters that remain.
/// * **Cancellation.** A leader dropped without finishing (its future cancelled, or a panic) hands nothing out:
///   its waiters join again and one of them leads. A cancelled waiter leaves nothing behind.
/// * **No growth.** The map holds one entry per key whose leader is running, removed when the leader finishes
///   or is dropped, so [`SingleFlight::len`] is zero once every call has returned.
///
/// Waiting needs a Tokio runtime with the time driver (for the bound); nothing is spawned. `V` should be cheap
/// to clone (each waiter gets a clone): `Bytes`, an `Arc`, a small value.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cpc_ports::KvError> {
/// use std::time::Duration;
/// use cpc_ports::{Joined, SingleFlight};
///
/// let flights: SingleFlight<u64> = SingleFlight::new();
/// let answer = match flights.join("answer", Duration::from_secs(5)).await {
///     Joined::Lead(leader) => {
///         let computed: Result<u64, cpc_ports::KvError> = Ok(42); // the expensive work
///         leader.finish(computed)?
///     }
///     Joined::Waited(outcome) => outcome?,
/// };
/// assert_eq!(answer, 42);
/// assert_eq!(flights.len(), 0);
/// # Ok(()) }
/// ```
pub struct SingleFlight<V> {
    hasher: RandomState,
    shards: [Shard<V>; SHARDS],
}

/// What [`SingleFlight::join`] makes of a caller.
#[derive(Debug)]
pub enum Joined<'a, V> {
    /// No computation was running for the key: this caller runs it and hands the outcome to
    /// [`Leader::finish`].
    Lead(Leader<'a, V>),
    /// Another caller ran it: its outcome, or [`KvError::Timeout`] if it took longer than the wait.
    Waited(Result<V, KvError>),
}

/// The one caller computing a key ([`Joined::Lead`]). Dropping it without [`Leader::finish`] (cancellation, a
/// panic) frees the key and sends its waiters back to [`SingleFlight::join`], where one of them leads.
pub struct Leader<'a, V> {
    flights: &'a SingleFlight<V>,
    key: String,
    outcome: watch::Sender<Outcome<V>>,
}

impl<V: Clone> SingleFlight<V> {
    /// The operation named by the [`KvError::Timeout`] of a waiter whose wait ran out.
    pub const WAIT_OPERATION: &'static str = "wait for another caller's computation";

    /// An empty map.
    pub fn new() -> Self {
        Self { hasher: RandomState::new(), shards: std::array::from_fn(|_| Mutex::default()) }
    }

    /// Leads the computation of `key` if none is running; otherwise waits, at most `wait` in all, for the
    /// running one's outcome (leading in its place if its leader is dropped without finishing).
    pub async fn join(&self, key: &str, wait: Duration) -> Joined<'_, V> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut running = {
                let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
                match map.get(key) {
                    Some(running) => running.clone(),
                    None => {
                        let (outcome, running) = watch::channel(None);
                        map.insert(key.to_owned(), running);
                        return Joined::Lead(Leader { flights: self, key: key.to_owned(), outcome });
                    }
                }
            };
            match tokio::time::timeout_at(deadline, running.wait_for(Option::is_some)).await {
                Ok(Ok(outcome)) => {
                    if let Some(outcome) = outcome.as_ref() {
                        return Joined::Waited(outcome.clone().map_err(|e| copy_of(&e)));
                    }
                }
                // The leader was dropped without an outcome (and has already freed the key): join again.
                Ok(Err(_)) => {}
                Err(_) => {
                    return Joined::Waited(Err(KvError::Timeout { operation: Self::WAIT_OPERATION, after: wait }));
                }
            }
        }
    }

    /// How many keys have a leader running. Zero once every call has returned.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    /// Whether no key has a leader running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> &Shard<V> {
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        &self.shards[i]
    }
}

impl<V: Clone> Leader<'_, V> {
    /// Hands `outcome` to every caller waiting for this key, frees the key (the next call leads again), and
    /// returns `outcome` for the leader's own caller.
    pub fn finish(self, outcome: Result<V, KvError>) -> Result<V, KvError> {
        match outcome {
            Ok(value) => {
                self.outcome.send_replace(Some(Ok(value.clone())));
                Ok(value)
            }
            Err(error) => Err(self.fail(error)),
        }
    }

    /// [`Leader::finish`] with an error: hands `error` to every waiter, frees the key, and returns the error for
    /// the leader's own caller.
    pub fn fail(self, error: KvError) -> KvError {
        let error = Arc::new(error);
        self.outcome.send_replace(Some(Err(Arc::clone(&error))));
        copy_of(&error)
    }
}

/// An owned copy of a shared error, for each caller that gets it: every variant with its fields (`KvError` is not
/// `Clone`: a backend error owns its source), a [`KvError::Backend`]'s source shared through [`SharedSource`].
fn copy_of(shared: &Arc<KvError>) -> KvError {
    match &**shared {
        KvError::NotFound { what } => KvError::NotFound { what },
        KvError::Validation(e) => KvError::Validation(e.clone()),
        KvError::TooLarge { size, max } => KvError::TooLarge { size: *size, max: *max },
        KvError::Codec(e) => KvError::Codec(e.clone()),
        KvError::LeaseLost { key } => KvError::LeaseLost { key: key.clone() },
        KvError::Lagged { missed } => KvError::Lagged { missed: *missed },
        KvError::Timeout { operation, after } => KvError::Timeout { operation, after: *after },
        KvError::Authentication { backend, reason } => KvError::Authentication { backend, reason: reason.clone() },
        KvError::Unavailable { backend, reason } => KvError::Unavailable { backend, reason: reason.clone() },
        KvError::Backend { backend, .. } => {
            KvError::Backend { backend, source: Box::new(SharedSource(Arc::clone(shared))) }
        }
        KvError::Unsupported { backend, operation, reason } => KvError::Unsupported { backend, operation, reason },
    }
}

/// The source of a shared [`KvError::Backend`]: shows as the original source and chains to what it chains to.
#[derive(Debug)]
struct SharedSource(Arc<KvError>);

impl SharedSource {
    fn original(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &*self.0 {
            KvError::Backend { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl fmt::Display for SharedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.original() {
            Some(source) => fmt::Display::fmt(source, f),
            None => fmt::Display::fmt(&self.0, f),
        }
    }
}

impl std::error::Error for SharedSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.original().and_then(|source| source.source())
    }
}

impl<V> Drop for Leader<'_, V> {
    /// Frees the key (whether or not an outcome was handed out); waiters still waiting then see the outcome, or,
    /// without one, the closed channel that sends them back to join.
    fn drop(&mut self) {
        let i = (self.flights.hasher.hash_one(self.key.as_str()) % SHARDS as u64) as usize;
        let mut map = self.flights.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&self.key).is_some_and(|running| running.same_channel(&self.outcome.subscribe())) {
            map.remove(&self.key);
        }
    }
}

impl<V: Clone> Default for SingleFlight<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for SingleFlight<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let running: usize = self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum();
        f.debug_struct("SingleFlight").field("running", &running).finish()
    }
}

impl<V> fmt::Debug for Leader<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leader").field("key", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiters_get_the_leaders_outcome_or_time_out_and_the_map_empties() {
        let flights: SingleFlight<u32> = SingleFlight::new();
        let Joined::Lead(leader) = flights.join("k", Duration::from_secs(1)).await else { panic!("first leads") };
        assert_eq!(flights.len(), 1);
        let waiter = flights.join("k", Duration::from_secs(1));
        let late = flights.join("k", Duration::from_millis(10));
        let (waited, timed_out) = tokio::join!(waiter, async {
            let timed_out = late.await;
            assert!(matches!(leader.finish(Err(KvError::invalid("source", "down"))), Err(KvError::Validation(_))));
            timed_out
        });
        assert!(matches!(waited, Joined::Waited(Err(KvError::Validation(_)))), "{waited:?}");
        assert!(matches!(timed_out, Joined::Waited(Err(KvError::Timeout { .. }))), "{timed_out:?}");
        assert!(flights.is_empty());
        assert!(matches!(flights.join("k", Duration::from_secs(1)).await, Joined::Lead(_)), "the key is free again");
        assert!(flights.is_empty(), "a dropped leader frees the key");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_leads_when_the_leader_is_dropped_without_an_outcome() {
        let flights: SingleFlight<u32> = SingleFlight::new();
        let Joined::Lead(leader) = flights.join("k", Duration::from_secs(1)).await else { panic!("first leads") };
        let (waited, ()) = tokio::join!(flights.join("k", Duration::from_secs(1)), async { drop(leader) });
        let Joined::Lead(next) = waited else { panic!("the waiter takes over: {waited:?}") };
        assert_eq!(next.finish(Ok(2)).unwrap(), 2);
        assert!(flights.is_empty());
    }

    #[test]
    fn a_shared_error_is_the_same_error_for_every_caller() {
        let io = std::io::Error::other("connection reset");
        let shared = Arc::new(KvError::backend("redis", io));
        let copy = copy_of(&shared);
        assert_eq!(copy.to_string(), shared.to_string());
        assert_eq!(copy.kind(), "backend");
        let source = std::error::Error::source(&copy).unwrap();
        assert_eq!(source.to_string(), "connection reset");
        let shared = Arc::new(KvError::Timeout { operation: "get", after: Duration::from_secs(1) });
        assert!(matches!(copy_of(&shared), KvError::Timeout { operation: "get", .. }));
    }
}
