//! Concurrent [`PgCache`](crate::PgCache) gets answered together: callers queue their keys, and at most
//! `max_in_flight` statements run at once, each answering up to [`MAX_KEYS`] queued keys in one round trip.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cpc_pool::postgres::PgPool;
use cpc_pool::postgres::kv::{self, column};
use cpc_ports::KvError;
use tokio::sync::oneshot;

/// The most keys one batch statement asks for.
pub(crate) const MAX_KEYS: usize = 128;

/// One key's lookup: `$1` the namespace, `$2` the key.
const GET_ONE: &str = "SELECT value FROM cpc_cache WHERE namespace = $1 AND key = $2 AND expires_at > now()";

/// Several keys' lookup: `$1` the namespace, `$2` the keys.
const GET_SOME: &str =
    "SELECT key, value FROM cpc_cache WHERE namespace = $1 AND key = ANY($2::bytea[]) AND expires_at > now()";

type Reply = Result<Option<Bytes>, KvError>;

/// A queued get.
struct Waiter {
    key: Vec<u8>,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Waiter>,
    /// Drain tasks running (each runs one statement at a time).
    in_flight: usize,
}

/// The queue of one cache's gets (shared by its clones).
pub(crate) struct GetBatcher {
    state: Mutex<State>,
    max_in_flight: usize,
}

impl GetBatcher {
    /// A batcher running at most `max_in_flight` statements at once (at least 1).
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Self { state: Mutex::new(State::default()), max_in_flight: max_in_flight.max(1) }
    }

    /// The value of `key` in `namespace`: queued, and answered by the next statement a drain task runs. The
    /// statement runs on its own task, so a caller that stops waiting cancels nothing the others wait for.
    pub(crate) async fn get(self: &Arc<Self>, pool: &PgPool, namespace: &str, key: &[u8]) -> Reply {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.queue.push_back(Waiter { key: key.to_vec(), reply });
            let lead = state.in_flight < self.max_in_flight;
            if lead {
                state.in_flight += 1;
            }
            lead
        };
        if lead {
            let drain = Arc::clone(self).drain(pool.clone(), namespace.to_owned());
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(drain);
                }
                // Outside a tokio runtime (another executor): drain on the caller's task.
                Err(_) => drain.await,
            }
        }
        answer.await.unwrap_or_else(|_| Err(KvError::backend("postgres", "a batched get was dropped unanswered")))
    }

    /// Runs statements for queued gets until the queue is empty, then gives up its slot (both under the lock,
    /// so a get queued meanwhile either is taken by this loop or starts a drain of its own).
    async fn drain(self: Arc<Self>, pool: PgPool, namespace: String) {
        loop {
            let batch: Vec<Waiter> = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.queue.is_empty() {
                    state.in_flight -= 1;
                    return;
                }
                let n = state.queue.len().min(MAX_KEYS);
                state.queue.drain(..n).collect()
            };
            answer(&pool, &namespace, batch).await;
        }
    }
}

/// Runs one statement for `batch` and answers each waiter (a failure answers each with the same error).
async fn answer(pool: &PgPool, ns: &str, batch: Vec<Waiter>) {
    if let [_] = batch.as_slice() {
        let Some(waiter) = batch.into_iter().next() else { return };
        let found = match kv::query(pool, GET_ONE, &[&ns, &waiter.key.as_slice()], "get").await {
            Ok(rows) => rows.first().map(|row| column::<Vec<u8>>(row, 0).map(Bytes::from)).transpose(),
            Err(e) => Err(e),
        };
        let _ = waiter.reply.send(found);
        return;
    }
    let keys: Vec<&[u8]> = batch.iter().map(|w| w.key.as_slice()).collect();
    let found = match kv::query(pool, GET_SOME, &[&ns, &keys], "get").await {
        Ok(rows) => rows
            .iter()
            .map(|row| Ok((column::<Vec<u8>>(row, 0)?, Bytes::from(column::<Vec<u8>>(row, 1)?))))
            .collect::<Result<HashMap<Vec<u8>, Bytes>, KvError>>(),
        Err(e) => Err(e),
    };
    match found {
        Ok(found) => {
            for waiter in batch {
                let value = found.get(&waiter.key).cloned();
                let _ = waiter.reply.send(Ok(value));
            }
        }
        Err(e) => {
            for waiter in batch {
                let _ = waiter.reply.send(Err(copy(&e)));
            }
        }
    }
}

/// The same failure for another waiter of the batch: timeouts, refused credentials and unavailability keep
/// their kind (so retries and classification work), anything else becomes a backend error with its message.
fn copy(e: &KvError) -> KvError {
    match e {
        KvError::Timeout { operation, after } => KvError::Timeout { operation, after: *after },
        KvError::Authentication { backend, reason } => KvError::Authentication { backend, reason: reason.clone() },
        KvError::Unavailable { backend, reason } => KvError::Unavailable { backend, reason: reason.clone() },
        other => KvError::backend("postgres", other.to_string()),
    }
}
