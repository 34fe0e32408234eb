//! The pub/sub task on a Redis Cluster: sharded channels (`SSUBSCRIBE`/`SUNSUBSCRIBE`, Redis 7) over redis-rs's
//! cluster connection in RESP3, whose pushes (`smessage`) are routed into the subscriptions' queues. The cluster
//! client sends each subscription to the node serving the channel's hash slot. Each disconnection is reported to
//! every subscription as one `Err(KvError::Unavailable)` item (messages published meanwhile are lost), and every
//! channel is subscribed again.
//!
//! A node that stops serving a slot without closing the connection (the old master after a manual
//! `CLUSTER FAILOVER`, or a slot migrated away) drops the slot's sharded subscriptions itself and says so with a
//! `sunsubscribe` push. redis-rs forgets such a channel and, on a connection that only subscribes, has no reason
//! to refresh its slot map, so the subscription would stay silent forever. The pump therefore treats a
//! `sunsubscribe` this task did not ask for as a lost subscription of that channel: its subscribers read one
//! `Err(KvError::Unavailable)` item and the driver subscribes the channel again (redis-rs follows the `MOVED`
//! of the old node to the new one).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpc_ports::KvError;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, sleep_until, timeout};

use super::command::{Command, Kind};
use super::driver::Pump;
use super::queue::{Registry, lock};
use crate::RedisConfig;
use crate::error::classify;

/// The first wait before subscribing again after a failed attempt; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the pump tells the driver.
enum Lost {
    /// A node connection was lost: every channel must be subscribed again.
    Connection,
    /// The server dropped the subscription of this channel (stored name): its slot moved to another node.
    Channel(String),
}

/// The channels (stored names) this task sent `SUNSUBSCRIBE` for and whose confirmation the pump has not seen
/// yet, with how many; shared by the driver and the pump, so the pump can tell a confirmation from a
/// subscription the server dropped.
type Unsubscribing = Arc<Mutex<HashMap<String, usize>>>;

/// The sharded driver's state; [`ShardedDriver::run`] is its task.
pub(super) struct ShardedDriver {
    config: RedisConfig,
    registry: Arc<Mutex<Registry>>,
    commands: UnboundedReceiver<Command>,
    connection: Option<(ClusterConnection, Pump)>,
    /// Told by the pump when a node connection or a channel's subscription was lost.
    lost: (UnboundedSender<Lost>, UnboundedReceiver<Lost>),
    unsubscribing: Unsubscribing,
    /// The channels to subscribe again (after a loss), and when, if due.
    stale: HashSet<String>,
    resubscribe_at: Option<Instant>,
    backoff: Duration,
}

impl ShardedDriver {
    pub(super) fn new(
        config: RedisConfig,
        registry: Arc<Mutex<Registry>>,
        commands: UnboundedReceiver<Command>,
    ) -> Self {
        let lost = unbounded_channel();
        Self {
            config,
            registry,
            commands,
            connection: None,
            lost,
            unsubscribing: Arc::default(),
            stale: HashSet::new(),
            resubscribe_at: None,
            backoff: MIN_BACKOFF,
        }
    }

    /// Serves commands until the bus is dropped.
    pub(super) async fn run(mut self) {
        loop {
            let due = self.resubscribe_at;
            let command = tokio::select! {
                command = self.commands.recv() => command,
                Some(lost) = self.lost.1.recv() => {
                    match lost {
                        Lost::Connection => {
                            self.stale.extend(lock(&self.registry).topics(Kind::Channel).keys().cloned());
                        }
                        Lost::Channel(topic) => {
                            self.stale.insert(topic);
                        }
                    }
                    self.backoff = MIN_BACKOFF;
                    self.resubscribe_at = Some(Instant::now());
                    continue;
                }
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.resubscribe().await;
                    continue;
                }
            };
            let Some(command) = command else { break };
            match command {
                Command::Subscribe { kind: Kind::Channel, topic, done } => {
                    if !done.is_closed() {
                        let _ = done.send(self.subscribe(&topic).await);
                    }
                }
                Command::Subscribe { kind: Kind::Pattern, done, .. } => {
                    let _ = done.send(Err(super::patterns_unsupported()));
                }
                Command::Unsubscribe { kind: Kind::Channel, topic } => self.unsubscribe(&topic).await,
                Command::Unsubscribe { kind: Kind::Pattern, .. } => {}
                Command::Shutdown => break,
            }
        }
        self.connection = None;
        lock(&self.registry).close();
    }

    /// Subscribes every lost channel that still has subscriptions again (on whichever node serves its slot
    /// now); on a failure, tries the rest again after a backoff.
    async fn resubscribe(&mut self) {
        let topics: Vec<String> = self.stale.iter().cloned().collect();
        for topic in topics {
            if !lock(&self.registry).topics(Kind::Channel).contains_key(&topic) {
                self.stale.remove(&topic);
                continue;
            }
            if let Err(error) = self.subscribe(&topic).await {
                tracing::debug!(nodes = %self.config.address(), %error, "sharded resubscribe failed; retrying");
                self.resubscribe_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                return;
            }
            self.stale.remove(&topic);
        }
        self.resubscribe_at = None;
    }

    /// `SSUBSCRIBE topic` on the node serving its slot, connecting first if needed.
    async fn subscribe(&mut self, topic: &str) -> Result<(), KvError> {
        let limit = self.config.response_timeout;
        let conn = self.connect().await?;
        match timeout(limit, conn.ssubscribe(topic)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(e, "subscribe", limit)),
            Err(_) => Err(KvError::Timeout { operation: "subscribe", after: limit }),
        }
    }

    /// `SUNSUBSCRIBE topic` unless a subscription to it was registered again meanwhile.
    async fn unsubscribe(&mut self, topic: &str) {
        if lock(&self.registry).topics(Kind::Channel).contains_key(topic) {
            return;
        }
        let limit = self.config.response_timeout;
        if let Some((conn, _)) = self.connection.as_mut() {
            *lock_unsubscribing(&self.unsubscribing).entry(topic.to_owned()).or_default() += 1;
            if !matches!(timeout(limit, conn.sunsubscribe(topic)).await, Ok(Ok(()))) {
                // Expect no confirmation: a late one then reads as a dropped subscription, which at worst
                // subscribes a channel that has subscribers again, while a stale expectation could hide a real
                // drop.
                forget_one(&self.unsubscribing, topic);
                tracing::debug!(nodes = %self.config.address(), "sharded unsubscribe failed; messages will be ignored");
            }
        }
    }

    /// The cluster connection in RESP3 with its push pump, opened on first use.
    async fn connect(&mut self) -> Result<&mut ClusterConnection, KvError> {
        if self.connection.is_none() {
            let (push, pushes) = unbounded_channel();
            let client = crate::cluster::client(&self.config, Some(push))?;
            let limit = crate::cluster::connect_limit(&self.config);
            let conn = timeout(limit, client.get_async_connection())
                .await
                .map_err(|_| KvError::Timeout { operation: "connect for pub/sub", after: limit })?
                .map_err(|e| classify(e, "connect for pub/sub", self.config.response_timeout))?;
            let shared = Shared {
                registry: Arc::clone(&self.registry),
                namespace: self.config.namespace.clone(),
                lost: self.lost.0.clone(),
                unsubscribing: Arc::clone(&self.unsubscribing),
            };
            let pump = Pump(tokio::spawn(pump(pushes, shared)));
            self.connection = Some((conn, pump));
        }
        match self.connection.as_mut() {
            Some((conn, _)) => Ok(conn),
            None => Err(KvError::backend("redis", "the pub/sub connection vanished")),
        }
    }
}

/// What the pump needs from the driver.
struct Shared {
    registry: Arc<Mutex<Registry>>,
    namespace: String,
    lost: UnboundedSender<Lost>,
    unsubscribing: Unsubscribing,
}

/// Routes every `smessage` push to the queues of the channel's subscriptions (namespace cut off the name).
/// Reports every disconnection to every subscription and to the driver, which subscribes every channel again;
/// and a `sunsubscribe` the driver did not ask for (the server dropped the channel: its slot moved) to that
/// channel's subscriptions and to the driver, which subscribes it again.
async fn pump(mut pushes: UnboundedReceiver<PushInfo>, shared: Shared) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::SMessage => {
                let [channel, payload] = push.data.as_slice() else { continue };
                let (Some(channel), Some(payload)) = (bytes_of(channel), bytes_of(payload)) else { continue };
                lock(&shared.registry).deliver(&shared.namespace, Kind::Channel, channel, channel, payload);
            }
            PushKind::SUnsubscribe => {
                let Some(topic) = push.data.first().and_then(bytes_of) else { continue };
                let topic = String::from_utf8_lossy(topic).into_owned();
                if forget_one(&shared.unsubscribing, &topic) {
                    continue;
                }
                let registry = lock(&shared.registry);
                if registry.topics(Kind::Channel).contains_key(&topic) {
                    tracing::debug!(channel = %topic, "the server dropped a sharded subscription; subscribing again");
                    registry.lost(Kind::Channel, &topic);
                    let _ = shared.lost.send(Lost::Channel(topic));
                }
            }
            PushKind::Disconnection => {
                // Confirmations of unsubscribes sent on the lost connection will not come.
                lock_unsubscribing(&shared.unsubscribing).clear();
                lock(&shared.registry).disconnected();
                let _ = shared.lost.send(Lost::Connection);
            }
            _ => {}
        }
    }
}

fn lock_unsubscribing(unsubscribing: &Unsubscribing) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    unsubscribing.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts one expected `SUNSUBSCRIBE` confirmation of `topic` as seen; whether one was expected.
fn forget_one(unsubscribing: &Unsubscribing, topic: &str) -> bool {
    let mut pending = lock_unsubscribing(unsubscribing);
    match pending.get_mut(topic) {
        Some(1) => {
            pending.remove(topic);
            true
        }
        Some(n) => {
            *n -= 1;
            true
        }
        None => false,
    }
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}
