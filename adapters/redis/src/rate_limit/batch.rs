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
//! Bounds, so a stuck or slow server never makes a caller wait for ever or memory grow:
//!
//! * **A deadline per check.** A caller waits at most the connection's response timeout
//!   (`RedisConfig::response_timeout`), counted from its call, queueing included; then it gets
//!   [`KvError::Timeout`] (`operation: "check rate limit"`). A check whose caller has given up while it was still
//!   queued is never sent; one already sent may still be counted by the server (as any command that times out).
//! * **A bounded queue.** At most [`DEFAULT_QUEUE_CAPACITY`] checks (or the limiter's own capacity) wait to be
//!   taken, besides the at most `MAX_IN_FLIGHT × MAX_BATCH` being sent. A check that finds the queue full fails at
//!   once with [`KvError::Unavailable`] (retryable: the server is not keeping up), without waiting.
//!
//! The driver and the runtime: the driver is a task spawned on the tokio runtime of the call that finds no
//! driver running, and it stops when the last clone of the limiter is dropped, after answering what was queued.
//! If that runtime ends (a test's runtime, a `Runtime` built for one job), the task is dropped with it and the
//! queue's receiver closes. The next check sees the closed queue (`try_send` answers `Closed` and hands the check
//! back), takes a mutex that only this slow path uses, and, unless another caller has already done it, starts a
//! new driver with a new queue on its own runtime; every later check uses that one. The current queue sits in an
//! [`ArcSwapOption`], so the common path (a driver running) reads it without a lock: a check costs one `try_send`
//! and one `oneshot` channel, as before. Checks that were queued or in flight on the ended runtime get an error;
//! none waits beyond its deadline. (A runtime that is kept but no longer driven, such as a current-thread runtime
//! between two `block_on` calls, does not close the queue: checks then time out until it runs again.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use cpc_ports::KvError;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis::Value;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::scripts::{CHECKS_SCRIPT, Params};
use crate::RedisConnection;
use crate::cluster::by_slot;
use crate::error::classify;

/// The most checks sent as one script call.
pub(super) const MAX_BATCH: usize = 128;
/// The most batches in flight at once on the shared connection.
pub(super) const MAX_IN_FLIGHT: usize = 4;
/// The most checks waiting to be taken by the driver, by default: beyond that a check fails at once with
/// [`KvError::Unavailable`]. 4096 checks are about 30 full batches: far more than a server that keeps up ever
/// leaves queued, few enough that a stalled server holds little memory.
pub(super) const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// What the checks of a call are named in errors.
const OPERATION: &str = "check rate limit";

/// One check's reply: `[allowed, remaining, retry_after_us, reset_after_us]`.
pub(super) type Reply = [i64; 4];

/// One check as the script takes it: the key, and the policy and cost (see `scripts::BATCH`).
pub(super) struct Check {
    pub(super) key: String,
    pub(super) params: Params,
}

struct Queued {
    check: Check,
    answer: oneshot::Sender<Result<Reply, KvError>>,
}

/// The queue of one limiter (shared by its clones) and the driver task behind it, started by the first check
/// and again after its runtime ended (see the module docs).
pub(super) struct Batcher {
    /// The current driver's queue; `None` until the first check.
    queue: ArcSwapOption<mpsc::Sender<Queued>>,
    /// Held only while a driver is being started, so two callers never start two.
    starting: Mutex<()>,
    capacity: usize,
}

impl Batcher {
    /// A batcher whose queue holds at most `capacity` checks (at least 1).
    pub(super) fn new(capacity: usize) -> Self {
        Self { queue: ArcSwapOption::empty(), starting: Mutex::new(()), capacity: capacity.max(1) }
    }

    /// How many checks may wait in the queue.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Runs `check` in the next batch and returns its reply, within `response_timeout` of the call.
    pub(super) async fn run(
        &self,
        check: Check,
        connection: impl FnOnce() -> RedisConnection,
        response_timeout: Duration,
    ) -> Result<Reply, KvError> {
        let (answer, reply) = oneshot::channel();
        self.enqueue(Queued { check, answer }, connection, response_timeout)?;
        match tokio::time::timeout(response_timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                Err(unavailable("the rate limiter's batching task stopped before answering (its runtime ended)"))
            }
            Err(_) => Err(KvError::Timeout { operation: OPERATION, after: response_timeout }),
        }
    }

    /// Hands `queued` to the running driver, or starts one on the current runtime when there is none (first
    /// check) or its runtime has ended (its queue is closed).
    fn enqueue(
        &self,
        queued: Queued,
        connection: impl FnOnce() -> RedisConnection,
        response_timeout: Duration,
    ) -> Result<(), KvError> {
        let queued = match self.queue.load().as_deref() {
            Some(queue) => match queue.try_send(queued) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => return Err(self.full()),
                Err(TrySendError::Closed(queued)) => queued,
            },
            None => queued,
        };
        let _starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.queue.load_full();
        let queue = match current {
            // Another caller started a driver while this one waited for the mutex.
            Some(queue) if !queue.is_closed() => queue,
            _ => {
                let runtime = tokio::runtime::Handle::try_current()
                    .map_err(|_| unavailable("a rate limit check needs a tokio runtime to run its batching task"))?;
                let (queue, receiver) = mpsc::channel(self.capacity);
                runtime.spawn(drive(receiver, connection(), response_timeout));
                let queue = Arc::new(queue);
                self.queue.store(Some(Arc::clone(&queue)));
                queue
            }
        };
        queue.try_send(queued).map_err(|e| match e {
            TrySendError::Full(_) => self.full(),
            TrySendError::Closed(_) => unavailable("the rate limiter's batching task has stopped"),
        })
    }

    fn full(&self) -> KvError {
        unavailable(format!(
            "the rate limiter's queue is full ({} checks waiting): Redis is not keeping up",
            self.capacity
        ))
    }
}

fn unavailable(reason: impl Into<String>) -> KvError {
    KvError::Unavailable { backend: "redis", reason: reason.into() }
}

/// Takes what is queued, a batch at a time, keeping up to [`MAX_IN_FLIGHT`] batches in flight.
/// A check whose caller has already given up (timed out or cancelled) is dropped, not sent.
async fn drive(mut queue: mpsc::Receiver<Queued>, connection: RedisConnection, timeout: Duration) {
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
                let mut batch = Vec::with_capacity(queue.len().min(MAX_BATCH - 1) + 1);
                batch.extend((!first.answer.is_closed()).then_some(first));
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(next) if next.answer.is_closed() => {}
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    in_flight.push(send(connection.clone(), batch, timeout));
                }
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

/// Sends checks whose keys share a hash slot as one script call and answers each. Checks with the same policy
/// and cost go as one group (their parameters sent and parsed once), groups in the order of their first check;
/// all checks of a batch were waiting at once, so running them in this order is as valid as any other.
async fn send_one_slot(mut connection: RedisConnection, batch: Vec<Queued>, timeout: Duration) {
    let mut groups: Vec<(Params, Vec<Queued>)> = Vec::new();
    for q in batch {
        match groups.iter_mut().find(|(params, _)| *params == q.check.params) {
            Some((_, group)) => group.push(q),
            None => groups.push((q.check.params, vec![q])),
        }
    }
    let mut invocation = CHECKS_SCRIPT.prepare_invoke();
    let nonce = groups.iter().any(|(params, _)| params.is_sliding_window()).then(|| uuid::Uuid::new_v4().simple());
    invocation.arg(nonce.as_ref().map(|n| n.to_string()).unwrap_or_default());
    for (params, group) in &groups {
        params.add_group(&mut invocation, group.len());
        for q in group {
            invocation.key(&q.check.key);
        }
    }
    let count: usize = groups.iter().map(|(_, group)| group.len()).sum();
    let checks = groups.into_iter().flat_map(|(_, group)| group);
    let replies: Result<Vec<Value>, _> = invocation.invoke_async(&mut connection).await;
    match replies {
        Ok(replies) if replies.len() == count * 4 => {
            let mut replies = replies.into_iter();
            for q in checks {
                let reply = [(); 4].map(|()| replies.next().unwrap_or(Value::Nil));
                let _ = q.answer.send(parse(reply));
            }
        }
        Ok(replies) => {
            let message = format!("{} values in answer to a batch of {count} rate limit checks", replies.len());
            for q in checks {
                let _ = q.answer.send(Err(KvError::backend("redis", message.clone())));
            }
        }
        Err(e) => {
            for q in checks {
                let _ = q.answer.send(Err(classify(e.clone(), OPERATION, timeout)));
            }
        }
    }
}

/// One check's answer, four values of the script's flat reply: four integers, or `-1` and the server's message.
fn parse(reply: [Value; 4]) -> Result<Reply, KvError> {
    match reply {
        [Value::Int(a), Value::Int(b), Value::Int(c), Value::Int(d)] if a != -1 => Ok([a, b, c, d]),
        [Value::Int(-1), message, ..] => {
            let message = match message {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                Value::SimpleString(s) => s,
                other => format!("{other:?}"),
            };
            Err(KvError::backend("redis", format!("rate limit check failed on the server: {message}")))
        }
        other => Err(KvError::backend("redis", format!("unexpected reply {other:?} from the rate limit script"))),
    }
}

/// Shared by a limiter's clones.
pub(super) type SharedBatcher = Arc<Batcher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_into_four_numbers_or_a_typed_error() {
        let ok = [Value::Int(1), Value::Int(9), Value::Int(-1), Value::Int(100)];
        assert_eq!(parse(ok).unwrap(), [1, 9, -1, 100]);
        let failed = [Value::Int(-1), Value::BulkString(b"WRONGTYPE Operation".to_vec()), Value::Int(0), Value::Int(0)];
        let e = parse(failed).unwrap_err();
        assert!(e.to_string().contains("WRONGTYPE"), "{e}");
        assert!(parse([Value::Int(3), Value::Nil, Value::Int(0), Value::Int(0)]).is_err());
        assert!(parse([Value::Int(-1), Value::Int(-1), Value::Int(-1), Value::Int(-1)]).is_err(), "no message");
    }
}
