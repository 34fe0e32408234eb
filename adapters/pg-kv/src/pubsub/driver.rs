//! The listener task: it owns the dedicated connection, records subscriptions as they come and go, turns each
//! NOTIFY into a message for the subscriptions it is for, notices a lost connection, and reconnects and listens
//! again by itself.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cpc_pool::postgres::PgPool;
use cpc_pool::postgres::kv::kv_error;
use cpc_ports::KvError;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Notification, Row};

use super::command::{Command, Kind};
use super::metrics::Instruments;
use super::queue::{Queue, Registry};
use super::sql;
use super::wire::{self, PG_CHANNEL, Wire};

/// The first wait before reconnecting after a failed attempt; doubled on each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often an idle connection is checked, so a silently dead one (a half-open TCP connection) is replaced.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// The longest a statement on the listener connection may take before the connection is deemed broken.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The live listener connection.
struct Connection {
    client: Client,
    messages: UnboundedReceiver<AsyncMessage>,
    /// Whether `LISTEN` is in effect.
    listening: bool,
    /// The topics recorded in `cpc_pubsub_subscriptions` for this connection.
    active: HashSet<(Kind, String)>,
}

/// The task's state; [`Driver::run`] is the task.
pub(super) struct Driver {
    pool: PgPool,
    registry: Registry,
    commands: UnboundedReceiver<Command<Queue>>,
    connection: Option<Connection>,
    backoff: Duration,
    next_attempt: Instant,
    metrics: Arc<Instruments>,
}

enum Event {
    Command(Option<Command<Queue>>),
    /// A message of the connection (a notification, or `None` for one of no interest), or `None` once it closed.
    Message(Option<Option<Notification>>),
    RetryDue,
    Keepalive,
}

/// The next message of the connection (`None` once it is closed); never, without one.
async fn next_message(connection: &mut Option<Connection>) -> Option<AsyncMessage> {
    match connection {
        Some(c) => c.messages.recv().await,
        None => std::future::pending().await,
    }
}

/// The notification `message` is, if it is one (notices are of no interest).
fn notification(message: AsyncMessage) -> Option<Notification> {
    match message {
        AsyncMessage::Notification(notification) => Some(notification),
        _ => None,
    }
}

/// `sql` on `client`, within [`RESPONSE_TIMEOUT`].
async fn run(
    pool: &PgPool,
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    operation: &'static str,
) -> Result<Vec<Row>, KvError> {
    bounded(operation, async {
        client.query(sql, params).await.map_err(|e| kv_error(pool.backend().classify(e), operation))
    })
    .await
}

async fn bounded<T>(operation: &'static str, work: impl Future<Output = Result<T, KvError>>) -> Result<T, KvError> {
    timeout(RESPONSE_TIMEOUT, work).await.map_err(|_| KvError::Timeout { operation, after: RESPONSE_TIMEOUT })?
}

/// The statement parameters recording `topics`.
fn topic_params(topics: &[(Kind, String)]) -> (Vec<bool>, Vec<&[u8]>) {
    topics.iter().map(|(kind, topic)| (*kind == Kind::Pattern, topic.as_bytes())).unzip()
}

impl Driver {
    pub(super) fn new(pool: PgPool, commands: UnboundedReceiver<Command<Queue>>, metrics: Arc<Instruments>) -> Self {
        Self {
            pool,
            registry: Registry::default(),
            commands,
            connection: None,
            backoff: MIN_BACKOFF,
            next_attempt: Instant::now(),
            metrics,
        }
    }

    /// Serves commands and notifications until the bus is dropped.
    pub(super) async fn run(mut self) {
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reconnect = self.connection.is_none() && !self.registry.is_empty();
            if reconnect && Instant::now() >= self.next_attempt {
                // Failures were reported to the subscribers when the connection was lost; here they only push
                // the next attempt back.
                let _ = self.connect().await;
                continue;
            }
            let connected = self.connection.is_some();
            let event = tokio::select! {
                command = self.commands.recv() => Event::Command(command),
                message = next_message(&mut self.connection) => Event::Message(message.map(notification)),
                () = sleep_until(self.next_attempt), if reconnect => Event::RetryDue,
                _ = keepalive.tick(), if connected => Event::Keepalive,
            };
            match event {
                Event::Command(None | Some(Command::Shutdown)) => break,
                Event::Command(Some(Command::Subscribe { kind, topic, id, queue, done })) => {
                    if done.is_closed() {
                        continue;
                    }
                    let result = self.subscribe(kind, &topic).await;
                    if result.is_ok() {
                        self.registry.add(kind, topic, id, queue);
                    }
                    // A subscriber that gave up meanwhile drops its feed, which unsubscribes it.
                    let _ = done.send(result);
                }
                Event::Command(Some(Command::Unsubscribe { kind, topic, id })) => {
                    self.unsubscribe(kind, &topic, id).await;
                }
                Event::Message(Some(Some(notification))) => self.receive(&notification).await,
                Event::Message(Some(None)) => {}
                Event::Message(None) => self.lose_connection(),
                Event::RetryDue => {}
                Event::Keepalive => self.ping().await,
            }
        }
        if let Some(connection) = self.connection.take() {
            // So publishes stop counting this connection at once (they would ignore it once it is gone anyway).
            let _ = run(&self.pool, &connection.client, sql::REMOVE_ALL, &[], "pub/sub shutdown").await;
        }
        self.registry.close();
    }

    /// Records `topic` for this connection (connecting and listening first if need be), then hands over the
    /// notifications already received, so the new subscription gets only messages published after it.
    async fn subscribe(&mut self, kind: Kind, topic: &str) -> Result<(), KvError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.try_subscribe(kind, topic).await;
            match result {
                Err(e) if attempts < 2 && self.connection.as_ref().is_none_or(|c| c.client.is_closed()) => {
                    // The connection broke: replace it once and try again.
                    tracing::debug!(error = %e, "pub/sub listener connection broken while subscribing");
                    self.lose_connection();
                }
                Err(e) => {
                    if matches!(e, KvError::Timeout { .. }) {
                        self.lose_connection();
                    }
                    return Err(e);
                }
                Ok(()) => {
                    self.drain().await;
                    return Ok(());
                }
            }
        }
    }

    async fn try_subscribe(&mut self, kind: Kind, topic: &str) -> Result<(), KvError> {
        if self.connection.is_none() {
            self.connect().await?;
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(KvError::Unavailable { backend: "postgres", reason: "no listener connection".into() });
        };
        if connection.active.contains(&(kind, topic.to_owned())) {
            return Ok(());
        }
        if !connection.listening {
            run(&self.pool, &connection.client, sql::LISTEN, &[], "listen").await?;
            connection.listening = true;
        }
        let this = [(kind, topic.to_owned())];
        let (is_pattern, topics) = topic_params(&this);
        run(&self.pool, &connection.client, sql::ADD, &[&is_pattern, &topics], "subscribe").await?;
        connection.active.insert((kind, topic.to_owned()));
        Ok(())
    }

    /// Delivers the notifications received so far.
    async fn drain(&mut self) {
        let mut received = Vec::new();
        if let Some(connection) = self.connection.as_mut() {
            while let Ok(message) = connection.messages.try_recv() {
                received.extend(notification(message));
            }
        }
        for notification in &received {
            self.receive(notification).await;
        }
    }

    /// Removes subscription `id`; when it was its topic's last, the connection stops recording the topic, and
    /// stops listening once nothing is left.
    async fn unsubscribe(&mut self, kind: Kind, topic: &str, id: u64) {
        if !self.registry.remove(kind, topic, id) {
            return;
        }
        let Some(connection) = self.connection.as_mut() else { return };
        if connection.active.remove(&(kind, topic.to_owned())) {
            let (is_pattern, topic) = (kind == Kind::Pattern, topic.as_bytes());
            let params: [&(dyn ToSql + Sync); 2] = [&is_pattern, &topic];
            if run(&self.pool, &connection.client, sql::REMOVE, &params, "unsubscribe").await.is_err() {
                // Whether the row is gone is unknown: start over on a fresh connection.
                self.lose_connection();
                return;
            }
        }
        if self.registry.is_empty() && connection.listening {
            if run(&self.pool, &connection.client, sql::UNLISTEN, &[], "unlisten").await.is_err() {
                self.lose_connection();
                return;
            }
            connection.listening = false;
        }
    }

    /// Turns one notification into deliveries.
    async fn receive(&mut self, notification: &Notification) {
        if notification.channel() != PG_CHANNEL {
            return;
        }
        let (channel, payload) = match wire::decode(notification.payload()) {
            Ok(Wire::Inline { channel, payload }) => (channel, payload),
            Ok(Wire::Stored(id)) => match self.fetch(id).await {
                Some(message) => message,
                None => return,
            },
            Err(reason) => {
                self.metrics.skipped_foreign.increment(1);
                tracing::warn!(
                    reason,
                    sender = notification.process_id(),
                    "skipped a NOTIFY on the pub/sub channel that this library did not write"
                );
                return;
            }
        };
        let delivered = self.registry.deliver(&channel, &payload);
        self.metrics.delivered.increment(delivered);
    }

    /// Reads stored message `id`; `None` (counted) when it is gone or unreadable.
    async fn fetch(&mut self, id: i64) -> Option<(String, Bytes)> {
        let connection = self.connection.as_ref()?;
        let rows = match run(&self.pool, &connection.client, sql::FETCH, &[&id], "read a stored message").await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(id, error = %e, "could not read a stored pub/sub message; skipped");
                self.metrics.skipped_expired.increment(1);
                if matches!(e, KvError::Timeout { .. }) || connection.client.is_closed() {
                    self.lose_connection();
                }
                return None;
            }
        };
        let read = rows.first().map(|row| {
            let channel = row.try_get::<_, Vec<u8>>(0).ok().and_then(|c| String::from_utf8(c).ok());
            (channel, row.try_get::<_, Vec<u8>>(1).ok())
        });
        match read {
            Some((Some(channel), Some(payload))) => Some((channel, Bytes::from(payload))),
            _ => {
                tracing::warn!(id, "a stored pub/sub message was already deleted (or unreadable); skipped");
                self.metrics.skipped_expired.increment(1);
                None
            }
        }
    }

    /// Checks the connection with an empty query; replaces it if the answer does not come in time.
    async fn ping(&mut self) {
        let Some(connection) = self.connection.as_ref() else { return };
        let answer = timeout(RESPONSE_TIMEOUT, connection.client.simple_query("")).await;
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
        tracing::warn!(address = %self.pool.backend().config().address(), "pub/sub listener connection lost; reconnecting");
        self.metrics.reconnects.increment(1);
        self.registry.disconnected();
        self.backoff = MIN_BACKOFF;
        self.next_attempt = Instant::now();
    }

    /// Opens a connection and listens to every registered topic. On failure, the next attempt is pushed back
    /// (exponential backoff).
    async fn connect(&mut self) -> Result<(), KvError> {
        match self.try_connect().await {
            Ok(connection) => {
                self.connection = Some(connection);
                self.backoff = MIN_BACKOFF;
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "pub/sub listener connection failed");
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Err(e)
            }
        }
    }

    async fn try_connect(&self) -> Result<Connection, KvError> {
        let pool = &self.pool;
        let listener = pool.backend().connect_listener().await.map_err(|e| kv_error(e, "connect for pub/sub"))?;
        let client = listener.client;
        run(pool, &client, sql::SWEEP, &[], "pub/sub sweep").await?;
        let topics = self.registry.all_topics();
        let listening = !topics.is_empty();
        if listening {
            run(pool, &client, sql::LISTEN, &[], "listen").await?;
            let (is_pattern, names) = topic_params(&topics);
            run(pool, &client, sql::ADD, &[&is_pattern, &names], "subscribe").await?;
        }
        let active = topics.into_iter().collect();
        Ok(Connection { client, messages: listener.messages, listening, active })
    }
}
