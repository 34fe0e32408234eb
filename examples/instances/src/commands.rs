//! The commands of `cpc-instances`: each one uses one port of [`Ports`] and reports every event as a JSON line.

use std::io::Write;
use std::time::Duration;

use cpc_data::prelude::*;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::Failure;

/// How long `hold-lock` and `try-lock` take their lease for (the holder releases it long before).
const LEASE: Duration = Duration::from_secs(60);
/// How long `hold-lock` waits for its lock.
const HOLD_WAIT: Duration = Duration::from_secs(10);
/// How long a session made by `create-session` lives.
const SESSION_TTL: Duration = Duration::from_secs(600);
/// How long a job reserved by `work` stays invisible to the other workers.
const VISIBILITY: Duration = Duration::from_secs(60);
/// The refill interval of `spend`'s policies: long enough that nothing refills while the processes run.
const HOUR: Duration = Duration::from_secs(3600);

/// One command line, parsed.
#[derive(Debug)]
pub enum Command {
    /// Wire, then exit.
    Ping,
    /// Hold a lock until stdin says so.
    HoldLock(LockKey),
    /// Try a lock, waiting up to the duration.
    TryLock(LockKey, Duration),
    /// Spend `count` units of one key's allowance concurrently, after stdin says go.
    Spend {
        /// The key.
        key: RateLimitKey,
        /// The policy shared by every process.
        policy: RateLimitPolicy,
        /// How many checks of cost 1.
        count: u64,
    },
    /// Store a session.
    CreateSession(Value),
    /// Read a session.
    ReadSession(String),
    /// Receive `count` messages.
    Subscribe(Channel, usize),
    /// Publish messages.
    Publish(Channel, Vec<String>),
    /// Enqueue `n` jobs.
    Enqueue(QueueName, u64),
    /// Work a queue until it is empty, pausing after each job.
    Work(QueueName, Duration),
    /// Print a queue's counts.
    Stats(QueueName),
}

/// A job's payload.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Job {
    /// Its number, 0 to N - 1 for `enqueue QUEUE N`.
    n: u64,
}

impl Command {
    /// Parses the arguments after the program name; `Ok(None)` for `help` (or nothing).
    pub fn parse(args: &[String]) -> Result<Option<Self>, String> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(Some(match args.as_slice() {
            [] | ["help" | "-h" | "--help"] => return Ok(None),
            ["ping"] => Self::Ping,
            ["hold-lock", key] => Self::HoldLock(valid(LockKey::new(*key))?),
            ["try-lock", key, wait_ms] => Self::TryLock(valid(LockKey::new(*key))?, millis(wait_ms)?),
            ["spend", key, capacity, count, policy] => {
                let capacity = number(capacity)?;
                let policy = match *policy {
                    "bucket" => RateLimitPolicy::TokenBucket { capacity, refill_tokens: 1, refill_interval: HOUR },
                    "window" => RateLimitPolicy::sliding_window(capacity, HOUR),
                    other => return Err(format!("unknown policy {other:?} (bucket or window)")),
                };
                Self::Spend { key: valid(RateLimitKey::new(*key))?, policy, count: number(count)? }
            }
            ["create-session", data] => {
                Self::CreateSession(serde_json::from_str(data).map_err(|e| format!("session data: {e}"))?)
            }
            ["read-session", id] => Self::ReadSession((*id).to_owned()),
            ["subscribe", channel, count] => {
                let count = usize::try_from(number(count)?).map_err(|e| e.to_string())?;
                Self::Subscribe(valid(Channel::new(*channel))?, count)
            }
            ["publish", channel, messages @ ..] if !messages.is_empty() => {
                Self::Publish(valid(Channel::new(*channel))?, messages.iter().map(|m| (*m).to_owned()).collect())
            }
            ["enqueue", queue, n] => Self::Enqueue(valid(QueueName::new(*queue))?, number(n)?),
            ["work", queue, pause_ms] => Self::Work(valid(QueueName::new(*queue))?, millis(pause_ms)?),
            ["stats", queue] => Self::Stats(valid(QueueName::new(*queue))?),
            _ => return Err(format!("cannot understand {args:?}")),
        }))
    }

    /// Runs the command on `ports`.
    pub async fn run(self, ports: &Ports) -> Result<(), Failure> {
        match self {
            Self::Ping => Ok(()),
            Self::HoldLock(key) => hold_lock(ports, &key).await,
            Self::TryLock(key, wait) => try_lock(ports, &key, wait).await,
            Self::Spend { key, policy, count } => spend(ports, &key, &policy, count).await,
            Self::CreateSession(data) => {
                let id = ports.sessions.create(&data, SESSION_TTL).await?;
                emit(&json!({ "event": "session", "id": id.as_str() }));
                Ok(())
            }
            Self::ReadSession(id) => {
                let id = SessionId::parse(&id)?;
                match ports.sessions.load::<Value>(&id).await? {
                    Some(data) => emit(&json!({ "event": "session", "id": id.as_str(), "data": data })),
                    None => emit(&json!({ "event": "missing", "id": id.as_str() })),
                }
                Ok(())
            }
            Self::Subscribe(channel, count) => subscribe(ports, &channel, count).await,
            Self::Publish(channel, messages) => {
                for message in messages {
                    let receivers = ports.pubsub.publish(&channel, &message).await?;
                    emit(&json!({ "event": "published", "message": message, "receivers": receivers }));
                }
                Ok(())
            }
            Self::Enqueue(queue, n) => {
                for n in 0..n {
                    let id = ports.jobs.enqueue(&queue, &Job { n }, EnqueueOptions::default()).await?;
                    emit(&json!({ "event": "enqueued", "id": id.as_str(), "n": n }));
                }
                Ok(())
            }
            Self::Work(queue, pause) => work(ports, &queue, pause).await,
            Self::Stats(queue) => {
                let stats = ports.jobs.stats(&queue).await?;
                emit(&json!({
                    "event": "stats",
                    "pending": stats.pending,
                    "in_flight": stats.in_flight,
                    "delayed": stats.delayed,
                    "dead": stats.dead,
                }));
                Ok(())
            }
        }
    }
}

/// Takes `key`, says so with its fencing token, holds it until a line (or the end) on stdin, and releases it.
async fn hold_lock(ports: &Ports, key: &LockKey) -> Result<(), Failure> {
    let lease = ports.lock.acquire(key, LEASE, HOLD_WAIT).await?;
    emit(&json!({ "event": "acquired", "key": key.as_str(), "token": lease.token.0 }));
    wait_for_stdin().await?;
    let token = lease.token.0;
    ports.lock.release(lease).await?;
    emit(&json!({ "event": "released", "key": key.as_str(), "token": token }));
    Ok(())
}

/// Tries `key` for up to `wait`: `acquired` with the token (and releases it at once), or `busy`.
async fn try_lock(ports: &Ports, key: &LockKey, wait: Duration) -> Result<(), Failure> {
    let lease = if wait.is_zero() {
        ports.lock.try_acquire(key, LEASE).await?
    } else {
        match ports.lock.acquire(key, LEASE, wait).await {
            Ok(lease) => Some(lease),
            Err(KvError::Timeout { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    };
    match lease {
        Some(lease) => {
            emit(&json!({ "event": "acquired", "key": key.as_str(), "token": lease.token.0 }));
            ports.lock.release(lease).await?;
        }
        None => emit(&json!({ "event": "busy", "key": key.as_str() })),
    }
    Ok(())
}

/// Says `ready`, waits for stdin, then runs `count` checks of cost 1 at once and reports how many were allowed.
async fn spend(ports: &Ports, key: &RateLimitKey, policy: &RateLimitPolicy, count: u64) -> Result<(), Failure> {
    emit(&json!({ "event": "ready" }));
    wait_for_stdin().await?;
    let checks = (0..count).map(|_| ports.rate_limiter.check(key, policy, 1));
    let (mut allowed, mut refused) = (0_u64, 0_u64);
    for decision in futures::future::join_all(checks).await {
        if decision?.allowed {
            allowed += 1;
        } else {
            refused += 1;
        }
    }
    emit(&json!({ "event": "spent", "allowed": allowed, "refused": refused }));
    Ok(())
}

/// Subscribes, says `ready`, and prints `count` messages as they arrive.
async fn subscribe(ports: &Ports, channel: &Channel, count: usize) -> Result<(), Failure> {
    let mut messages = ports.pubsub.subscribe::<String>(channel).await?;
    emit(&json!({ "event": "ready" }));
    for _ in 0..count {
        let Some(message) = messages.next().await else {
            return Err("the subscription ended".into());
        };
        emit(&json!({ "event": "message", "channel": channel.as_str(), "message": message? }));
    }
    Ok(())
}

/// Says `ready`, waits for stdin, then reserves and acks jobs until the queue has none ready.
async fn work(ports: &Ports, queue: &QueueName, pause: Duration) -> Result<(), Failure> {
    emit(&json!({ "event": "ready" }));
    wait_for_stdin().await?;
    let mut worked = 0_u64;
    while let Some(job) = ports.jobs.reserve_as::<Job>(queue, VISIBILITY).await? {
        ports.jobs.ack(&job.job).await?;
        worked += 1;
        emit(&json!({ "event": "worked", "id": job.job.id.as_str(), "n": job.data.n, "attempt": job.job.attempt }));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    emit(&json!({ "event": "empty", "worked": worked }));
    Ok(())
}

/// Prints `event` as one JSON line on stdout, at once.
pub fn emit(event: &Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the reader went away) leaves nobody to tell; the run goes on.
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}

/// Waits for one line on stdin, or its end.
async fn wait_for_stdin() -> Result<(), Failure> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| ())
    })
    .await??;
    Ok(())
}

/// A key, or the reason it is not one.
fn valid<T>(key: Result<T, ValidationError>) -> Result<T, String> {
    key.map_err(|e| e.to_string())
}

/// A whole number argument.
fn number(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("{s:?} is not a whole number"))
}

/// A number of milliseconds.
fn millis(s: &str) -> Result<Duration, String> {
    number(s).map(Duration::from_millis)
}
