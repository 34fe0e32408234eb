//! The pub/sub task on a Redis Cluster: sharded channels (`SSUBSCRIBE`/`SUNSUBSCRIBE`, Redis 7) over redis-rs's
//! cluster connection in RESP3, whose pushes (`smessage`) are routed into the subscriptions' queues. The cluster
//! client sends each subscription to the node serving the channel's hash slot and subscribes again by itself
//! after a reconnection or a failover; each disconnection is reported to every subscription as one
//! `Err(KvError::Unavailable)` item (messages published meanwhile are lost).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpc_ports::KvError;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, sleep_until, timeout};

use super::driver::{Command, Pump};
use super::queue::{Kind, Registry, lock};
use crate::redis::RedisConfig;
use crate::redis::error::classify;

/// The first wait before subscribing again after a failed attempt; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The sharded driver's state; [`ShardedDriver::run`] is its task.
pub(super) struct ShardedDriver {
    config: RedisConfig,
    registry: Arc<Mutex<Registry>>,
    commands: UnboundedReceiver<Command>,
    connection: Option<(ClusterConnection, Pump)>,
    /// Told by the pump when a node connection was lost.
    lost: (UnboundedSender<()>, UnboundedReceiver<()>),
    /// When to subscribe every channel again (after a lost connection), if due.
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
        Self { config, registry, commands, connection: None, lost, resubscribe_at: None, backoff: MIN_BACKOFF }
    }

    /// Serves commands until the bus is dropped.
    pub(super) async fn run(mut self) {
        loop {
            let due = self.resubscribe_at;
            let command = tokio::select! {
                command = self.commands.recv() => command,
                Some(()) = self.lost.1.recv() => {
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

    /// Subscribes every registered channel again (on whichever node serves its slot now); on a failure, tries
    /// again after a backoff.
    async fn resubscribe(&mut self) {
        let topics: Vec<String> = lock(&self.registry).topics(Kind::Channel).keys().cloned().collect();
        for topic in &topics {
            if let Err(error) = self.subscribe(topic).await {
                tracing::debug!(nodes = %self.config.address(), %error, "sharded resubscribe failed; retrying");
                self.resubscribe_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                return;
            }
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
        if let Some((conn, _)) = self.connection.as_mut()
            && !matches!(timeout(limit, conn.sunsubscribe(topic)).await, Ok(Ok(())))
        {
            tracing::debug!(nodes = %self.config.address(), "sharded unsubscribe failed; messages will be ignored");
        }
    }

    /// The cluster connection in RESP3 with its push pump, opened on first use.
    async fn connect(&mut self) -> Result<&mut ClusterConnection, KvError> {
        if self.connection.is_none() {
            let (push, pushes) = unbounded_channel();
            let client = crate::redis::cluster::client(&self.config, Some(push))?;
            let limit = crate::redis::cluster::connect_limit(&self.config);
            let conn = timeout(limit, client.get_async_connection())
                .await
                .map_err(|_| KvError::Timeout { operation: "connect for pub/sub", after: limit })?
                .map_err(|e| classify(e, "connect for pub/sub", self.config.response_timeout))?;
            let (registry, namespace, lost) =
                (Arc::clone(&self.registry), self.config.namespace.clone(), self.lost.0.clone());
            let pump = Pump(tokio::spawn(pump(pushes, registry, namespace, lost)));
            self.connection = Some((conn, pump));
        }
        match self.connection.as_mut() {
            Some((conn, _)) => Ok(conn),
            None => Err(KvError::backend("redis", "the pub/sub connection vanished")),
        }
    }
}

/// Routes every `smessage` push to the queues of the channel's subscriptions (namespace cut off the name), and
/// reports every disconnection to every subscription and to the driver (`lost`), which subscribes again.
async fn pump(
    mut pushes: UnboundedReceiver<PushInfo>,
    registry: Arc<Mutex<Registry>>,
    namespace: String,
    lost: UnboundedSender<()>,
) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::SMessage => {
                let [channel, payload] = push.data.as_slice() else { continue };
                let (Some(channel), Some(payload)) = (bytes_of(channel), bytes_of(payload)) else { continue };
                lock(&registry).deliver(&namespace, Kind::Channel, channel, channel, payload);
            }
            PushKind::Disconnection => {
                lock(&registry).disconnected();
                let _ = lost.send(());
            }
            _ => {}
        }
    }
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}
