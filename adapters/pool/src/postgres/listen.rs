//! [`PgBackend::connect_listener`]: a connection of its own (not from the pool) whose asynchronous messages
//! (`NOTIFY` notifications, notices) are handed to the caller, for `LISTEN`.

use futures::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{PgBackend, error::classify, tls};
use crate::pool::DatabaseError;

/// A connection opened by [`PgBackend::connect_listener`]: the client for its statements (`LISTEN`, queries) and
/// the messages the server sends on its own, in the order they arrived.
pub struct PgListener {
    /// Runs statements on the connection.
    pub client: Client,
    /// Every asynchronous message ([`AsyncMessage::Notification`], [`AsyncMessage::Notice`]), in order. Ends
    /// (`recv` answers `None`) when the connection closes, for whatever reason (the server terminated it, the
    /// network failed, the client was dropped).
    pub messages: UnboundedReceiver<AsyncMessage>,
}

impl std::fmt::Debug for PgListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgListener").field("closed", &self.client.is_closed()).finish()
    }
}

impl PgBackend {
    /// Opens one connection with this backend's configuration and TLS (as the pool's are opened), outside the
    /// pool, and spawns a task on the current Tokio runtime that drives it and forwards its asynchronous
    /// messages to [`PgListener::messages`]. The channel is unbounded so that a slow reader never stops the
    /// connection from being read (a listener that stops reading holds back PostgreSQL's whole notification
    /// queue); the reader is expected to drain it promptly.
    ///
    /// # Errors
    /// As the pool's connections: refused, authentication, TLS, or no answer within the connect timeout.
    pub async fn connect_listener(&self) -> Result<PgListener, DatabaseError> {
        let config = self.config();
        let pg = config.to_tokio_postgres();
        let attempt = async {
            match tls::client_config(config)? {
                None => {
                    let (client, connection) = pg.connect(NoTls).await.map_err(|e| classify(e, config))?;
                    Ok(spawn(client, connection))
                }
                Some(tls) => {
                    let (client, connection) =
                        pg.connect(MakeRustlsConnect::new(tls)).await.map_err(|e| classify(e, config))?;
                    Ok(spawn(client, connection))
                }
            }
        };
        match tokio::time::timeout(config.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(DatabaseError::ConnectionRefused {
                address: config.address(),
                message: format!("no answer within {:?}", config.connect_timeout),
            }),
        }
    }
}

/// Spawns the task that drives `connection`, forwarding its messages.
fn spawn<S, T>(client: Client, connection: Connection<S, T>) -> PgListener
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, messages) = unbounded_channel();
    tokio::spawn(forward(connection, tx));
    PgListener { client, messages }
}

/// Polls `connection` until it closes, sending each asynchronous message to `tx`.
async fn forward<S, T>(mut connection: Connection<S, T>, tx: UnboundedSender<AsyncMessage>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(message)) => {
                // The reader is gone: nobody wants the messages, but the client may still run statements.
                let _ = tx.send(message);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "PostgreSQL listener connection closed");
                break;
            }
            None => break,
        }
    }
}
