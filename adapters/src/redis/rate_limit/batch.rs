//! Batching of rate-limit checks: the checks callers make at the same moment go to Redis together, as one
//! `EVALSHA` of the checks script (`scripts.rs`), instead of one script call each (on a Redis Cluster, one per
//! hash slot among them).
//!
//! Why: on the server, a script call costs far more than the work of one check (setting up the call, reading the
//! clock, converting the reply); a batch pays that once for all its checks. Under load the server's single thread is
//! what limits decisions per second, so this is what lets them keep up with plain commands.
//!
//! How: callers queue their check and wait for its answer. One driver task per limiter takes whatever is queued
//! (at most [`MAX_BATCH`] checks), sends it, and goes on taking the next batch while earlier ones are in flight
//! (at most [`MAX_IN_FLIGHT`] batches, pipelined on the shared connection). A lone check goes at once, as a batch
//! of one: batching never waits for company, so it adds only a hand-off between tasks to the latency of a check.
//! The script runs a batch's checks in order, atomically, at one server instant: exactly as if each had run
//! alone at that instant. A check that fails on the server (a key holding another type) fails alone.
//!
//! The driver starts with the first check (inside the caller's runtime) and stops when the last clone of the
//! limiter is dropped, after answering what was queued.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cpc_ports::KvError;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis::Value;
use tokio::sync::{mpsc, oneshot};

use super::scripts::CHECKS_SCRIPT;
use crate::redis::RedisConnection;
use crate::redis::cluster::by_slot;
use crate::redis::error::classify;

/// The most checks sent as one script call.
pub(super) const MAX_BATCH: usize = 128;
/// The most batches in flight at once on the shared connection.
pub(super) const MAX_IN_FLIGHT: usize = 4;

/// One check's reply: `[allowed, remaining, retry_after_us, reset_after_us]`.
pub(super) type Reply = [i64; 4];

/// One check as the script takes it: the key and five arguments (see `scripts::BATCH`).
pub(super) struct Check {
    pub(super) key: String,
    pub(super) args: [String; 5],
}

struct Queued {
    check: Check,
    answer: oneshot::Sender<Result<Reply, KvError>>,
}

/// The queue of one limiter (shared by its clones); the driver task is started by the first check.
#[derive(Default)]
pub(super) struct Batcher {
    queue: OnceLock<mpsc::UnboundedSender<Queued>>,
}

impl Batcher {
    /// Runs `check` in the next batch and returns its reply.
    pub(super) async fn run(
        &self,
        check: Check,
        connection: impl FnOnce() -> RedisConnection,
        response_timeout: Duration,
    ) -> Result<Reply, KvError> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(drive(rx, connection(), response_timeout));
            tx
        });
        let (answer, reply) = oneshot::channel();
        queue
            .send(Queued { check, answer })
            .map_err(|_| KvError::backend("redis", "the rate limiter's batching task has stopped"))?;
        reply.await.map_err(|_| KvError::backend("redis", "the rate limiter's batching task dropped a check"))?
    }
}

/// Takes what is queued, a batch at a time, keeping up to [`MAX_IN_FLIGHT`] batches in flight.
async fn drive(mut queue: mpsc::UnboundedReceiver<Queued>, connection: RedisConnection, timeout: Duration) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            first = queue.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                in_flight.push(send(connection.clone(), batch, timeout));
            }
        }
    }
}

/// Sends one batch and answers each of its checks. On a cluster a script runs on one hash slot, so the batch is
/// split into one script call per slot (each key's two states share a slot through their `{rl:<key>}` tag), sent
/// concurrently.
async fn send(connection: RedisConnection, batch: Vec<Queued>, timeout: Duration) {
    let cluster = connection.is_cluster();
    let groups = by_slot(batch, cluster, |q| q.check.key.as_bytes());
    futures::future::join_all(groups.into_iter().map(|group| send_one_slot(connection.clone(), group, timeout))).await;
}

/// Sends checks whose keys share a hash slot as one script call and answers each.
async fn send_one_slot(mut connection: RedisConnection, batch: Vec<Queued>, timeout: Duration) {
    let mut invocation = CHECKS_SCRIPT.prepare_invoke();
    for q in &batch {
        invocation.key(&q.check.key);
        for arg in &q.check.args {
            invocation.arg(arg);
        }
    }
    let replies: Result<Vec<Value>, _> = invocation.invoke_async(&mut connection).await;
    match replies {
        Ok(replies) if replies.len() == batch.len() => {
            for (q, reply) in batch.into_iter().zip(replies) {
                let _ = q.answer.send(parse(reply));
            }
        }
        Ok(replies) => {
            let message = format!("{} answers to a batch of {} rate limit checks", replies.len(), batch.len());
            for q in batch {
                let _ = q.answer.send(Err(KvError::backend("redis", message.clone())));
            }
        }
        Err(e) => {
            for q in batch {
                let _ = q.answer.send(Err(classify(e.clone(), "check rate limit", timeout)));
            }
        }
    }
}

/// One check's answer: four integers, or `-1` and the server's message.
fn parse(reply: Value) -> Result<Reply, KvError> {
    let unexpected = |r: &dyn std::fmt::Debug| {
        KvError::backend("redis", format!("unexpected reply {r:?} from the rate limit script"))
    };
    let Value::Array(items) = reply else { return Err(unexpected(&reply)) };
    if let [Value::Int(-1), message] = items.as_slice() {
        let message = match message {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            other => format!("{other:?}"),
        };
        return Err(KvError::backend("redis", format!("rate limit check failed on the server: {message}")));
    }
    match items.as_slice() {
        [Value::Int(a), Value::Int(b), Value::Int(c), Value::Int(d)] => Ok([*a, *b, *c, *d]),
        _ => Err(unexpected(&items)),
    }
}

/// Shared by a limiter's clones.
pub(super) type SharedBatcher = Arc<Batcher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_into_four_numbers_or_a_typed_error() {
        let ok = Value::Array(vec![Value::Int(1), Value::Int(9), Value::Int(-1), Value::Int(100)]);
        assert_eq!(parse(ok).unwrap(), [1, 9, -1, 100]);
        let failed = Value::Array(vec![Value::Int(-1), Value::BulkString(b"WRONGTYPE Operation".to_vec())]);
        let e = parse(failed).unwrap_err();
        assert!(e.to_string().contains("WRONGTYPE"), "{e}");
        assert!(parse(Value::Int(3)).is_err());
        assert!(parse(Value::Array(vec![Value::Int(1)])).is_err());
    }
}
