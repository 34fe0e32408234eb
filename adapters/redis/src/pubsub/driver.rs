//! The task that owns the dedicated pub/sub connection: it subscribes and unsubscribes in the order asked,
//! pumps incoming messages into the subscriptions' queues, notices a lost connection, and reconnects and
//! resubscribes by itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpc_ports::KvError;
use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

use super::command::{Command, Kind};
use super::queue::{Registry, lock};
use crate::RedisConfig;
use crate::error::classify;

/// The first wait before reconnecting after a failed attempt; doubled on each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often an idle connection is checked with `PING`, so a silently dead one (a half-open TCP connection)
/// is noticed and replaced.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// Aborts the message pump when dropped (the pump owns the connection's read half, so this closes it).
pub(super) struct Pump(pub(super) JoinHandle<()>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A live connection.
struct Connection {
    sink: PubSubSink,
    pump: Pump,
    /// What the server confirmed for this connection.
    active: HashSet<(Kind, String)>,
}

/// The driver's state; [`Driver::run`] is its task.
pub(super) struct Driver {
    client: redis::Client,
    config: RedisConfig,
    registry: Arc<Mutex<Registry>>,
    commands: UnboundedReceiver<Command>,
    connection: Option<Connection>,
    backoff: Duration,
    next_attempt: Instant,
}

enum Event {
    Command(Option<Command>),
    ConnectionLost,
    RetryDue,
    Keepalive,
}

/// Waits until the pump of `connection` ends (the server closed the connection); never, without one.
async fn pump_ended(connection: &mut Option<Connection>) {
    match connection {
        Some(c) => {
            let _ = (&mut c.pump.0).await;
        }
        None => std::future::pending().await,
    }
}

impl Driver {
    pub(super) fn new(
        client: redis::Client,
        config: RedisConfig,
        registry: Arc<Mutex<Registry>>,
        commands: UnboundedReceiver<Command>,
    ) -> Self {
        Self {
            client,
            config,
            registry,
            commands,
            connection: None,
            backoff: MIN_BACKOFF,
            next_attempt: Instant::now(),
        }
    }

    /// Serves commands until the bus is dropped.
    pub(super) async fn run(mut self) {
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reconnect = self.connection.is_none() && !lock(&self.registry).is_empty();
            if reconnect && Instant::now() >= self.next_attempt {
                // Failures are reported to the subscribers once, when the connection is lost; here they only
                // push the next attempt back.
                let _ = self.connect().await;
                continue;
            }
            let connected = self.connection.is_some();
            let event = tokio::select! {
                command = self.commands.recv() => Event::Command(command),
                () = pump_ended(&mut self.connection) => Event::ConnectionLost,
                () = sleep_until(self.next_attempt), if reconnect => Event::RetryDue,
                _ = keepalive.tick(), if connected => Event::Keepalive,
            };
            match event {
                Event::Command(None | Some(Command::Shutdown)) => break,
                Event::Command(Some(Command::Subscribe { kind, topic, done })) => {
                    if !done.is_closed() {
                        let result = self.subscribe(kind, topic).await;
                        let _ = done.send(result);
                    }
                }
                Event::Command(Some(Command::Unsubscribe { kind, topic })) => self.unsubscribe(kind, topic).await,
                Event::ConnectionLost => self.lose_connection(),
                Event::RetryDue => {}
                Event::Keepalive => self.ping().await,
            }
        }
        self.connection = None;
        lock(&self.registry).close();
    }

    /// Makes the server subscription for `topic` active.
    async fn subscribe(&mut self, kind: Kind, topic: String) -> Result<(), KvError> {
        let Some(connection) = self.connection.as_mut() else {
            // Connecting subscribes to everything registered, this topic included.
            return self.connect().await;
        };
        if connection.active.contains(&(kind, topic.clone())) {
            return Ok(());
        }
        let limit = self.config.response_timeout;
        let result = match kind {
            Kind::Channel => timeout(limit, connection.sink.subscribe(&topic)).await,
            Kind::Pattern => timeout(limit, connection.sink.psubscribe(&topic)).await,
        };
        match result {
            Ok(Ok(())) => {
                connection.active.insert((kind, topic));
                Ok(())
            }
            Ok(Err(e)) if !(e.is_unrecoverable_error() || e.is_io_error()) => Err(classify(e, "subscribe", limit)),
            // The connection is broken (or too slow to trust): replace it, which subscribes this topic too.
            Ok(Err(_)) | Err(_) => {
                self.lose_connection();
                self.connect().await
            }
        }
    }

    /// Unsubscribes `topic` unless a subscription to it was registered again meanwhile.
    async fn unsubscribe(&mut self, kind: Kind, topic: String) {
        if lock(&self.registry).topics(kind).contains_key(&topic) {
            return;
        }
        let Some(connection) = self.connection.as_mut() else { return };
        if !connection.active.remove(&(kind, topic.clone())) {
            return;
        }
        let limit = self.config.response_timeout;
        let result = match kind {
            Kind::Channel => timeout(limit, connection.sink.unsubscribe(&topic)).await,
            Kind::Pattern => timeout(limit, connection.sink.punsubscribe(&topic)).await,
        };
        if !matches!(result, Ok(Ok(()))) {
            // Whether the server still sends this topic is unknown: start over on a fresh connection.
            self.lose_connection();
        }
    }

    /// Checks the connection with `PING`; replaces it if the answer does not come in time.
    async fn ping(&mut self) {
        let Some(connection) = self.connection.as_mut() else { return };
        let answer = timeout(self.config.response_timeout, connection.sink.ping::<redis::Value>()).await;
        if !matches!(answer, Ok(Ok(_))) {
            self.lose_connection();
        }
    }

    /// Drops the connection, tells every subscriber that messages may have been lost, and schedules a
    /// reconnection at once.
    fn lose_connection(&mut self) {
        if self.connection.take().is_none() {
            return;
        }
        tracing::warn!(server = %self.config.address(), "redis pub/sub connection lost; reconnecting");
        lock(&self.registry).disconnected();
        self.backoff = MIN_BACKOFF;
        self.next_attempt = Instant::now();
    }

    /// Opens a connection and subscribes to every registered channel and pattern. On failure, the next
    /// attempt is pushed back (exponential backoff).
    async fn connect(&mut self) -> Result<(), KvError> {
        match self.try_connect().await {
            Ok(connection) => {
                self.connection = Some(connection);
                self.backoff = MIN_BACKOFF;
                Ok(())
            }
            Err(e) => {
                tracing::debug!(server = %self.config.address(), error = %e, "redis pub/sub connection failed");
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Err(e)
            }
        }
    }

    async fn try_connect(&self) -> Result<Connection, KvError> {
        let (connect, respond) = (self.config.connect_timeout, self.config.response_timeout);
        let pubsub = timeout(connect, self.client.get_async_pubsub())
            .await
            .map_err(|_| KvError::Timeout { operation: "connect for pub/sub", after: connect })?
            .map_err(|e| classify(e, "connect for pub/sub", respond))?;
        let (mut sink, stream) = pubsub.split();
        // The pump starts before the subscriptions so nothing piles up unread.
        let pump = Pump(tokio::spawn(pump(stream, Arc::clone(&self.registry), self.config.namespace.clone())));
        let (channels, patterns): (Vec<String>, Vec<String>) = {
            let reg = lock(&self.registry);
            (reg.channels.keys().cloned().collect(), reg.patterns.keys().cloned().collect())
        };
        let mut active = HashSet::new();
        for (kind, topics) in [(Kind::Channel, channels), (Kind::Pattern, patterns)] {
            if topics.is_empty() {
                continue;
            }
            let confirmed = match kind {
                Kind::Channel => timeout(respond, sink.subscribe(&topics)).await,
                Kind::Pattern => timeout(respond, sink.psubscribe(&topics)).await,
            };
            confirmed
                .map_err(|_| KvError::Timeout { operation: "subscribe", after: respond })?
                .map_err(|e| classify(e, "subscribe", respond))?;
            active.extend(topics.into_iter().map(|t| (kind, t)));
        }
        Ok(Connection { sink, pump, active })
    }
}

/// Routes every message of `stream` to the queues of the subscriptions it is for, with the namespace cut off
/// the channel name; ends when the connection closes.
async fn pump(mut stream: PubSubStream, registry: Arc<Mutex<Registry>>, namespace: String) {
    while let Some(msg) = stream.next().await {
        let channel: Vec<u8> = msg.get_channel().unwrap_or_default();
        let pattern = msg.get_pattern::<Option<Vec<u8>>>().ok().flatten();
        let (kind, topic) = match &pattern {
            Some(pattern) => (Kind::Pattern, pattern.as_slice()),
            None => (Kind::Channel, channel.as_slice()),
        };
        lock(&registry).deliver(&namespace, kind, topic, &channel, msg.get_payload_bytes());
    }
}
