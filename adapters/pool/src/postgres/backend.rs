//! [`PgBackend`]: bb8-postgres's `PostgresConnectionManager` (plain or rustls), as a pool [`Backend`].

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use bb8::ManageConnection;
use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{Client, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{PgConfig, error::classify, tls};
use crate::pool::{Backend, DatabaseError};

/// A pooled PostgreSQL connection: a tokio-postgres [`Client`] (it derefs to one) plus a per-connection cache of
/// prepared statements, so a hot query is parsed once per connection rather than on every call.
pub struct PgConnection {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PgConnection {
    /// The most statements kept per connection; the cache is cleared when it would grow past this.
    pub const STATEMENT_CACHE_CAPACITY: usize = 256;

    /// Prepares `sql` once per connection and returns the cached statement afterwards.
    pub async fn prepare_cached(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        if self.statements.len() >= Self::STATEMENT_CACHE_CAPACITY {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// The tokio-postgres client, for handing to another layer (e.g. `diesel_async::AsyncPgConnection::try_from`).
    pub fn into_client(self) -> Client {
        self.client
    }

    /// How many statements are cached.
    pub fn cached_statements(&self) -> usize {
        self.statements.len()
    }
}

impl Deref for PgConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("closed", &self.client.is_closed())
            .field("cached", &self.statements.len())
            .finish()
    }
}

enum Connector {
    Plain(PostgresConnectionManager<NoTls>),
    Tls(PostgresConnectionManager<MakeRustlsConnect>),
}

/// Opens PostgreSQL connections for the pool: the role of bb8-postgres's `PostgresConnectionManager`, over
/// tokio-postgres, with rustls for TLS, and errors classified precisely.
pub struct PgBackend {
    connector: Connector,
    config: PgConfig,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").field("config", &self.config).finish()
    }
}

/// Whether `host` is this machine: a Unix socket directory, `localhost`, or a loopback address.
fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl PgBackend {
    /// A backend for `config` (TLS set up per its `ssl_mode`). Logs a warning when a server that is not on this
    /// machine is reached with `sslmode` `disable` or `prefer` (libpq's default): `prefer` falls back to plain
    /// text, so an attacker on the path can strip TLS and read or change every query.
    pub fn new(config: &PgConfig) -> Result<Self, DatabaseError> {
        config.validate()?;
        if !config.ssl_mode.verifies_or_requires() && !is_local(&config.host) {
            tracing::warn!(
                address = %config.address(),
                sslmode = config.ssl_mode.as_str(),
                "PostgreSQL on another machine without required TLS: sslmode=prefer can be downgraded to plain text \
                 by anyone on the path; set sslmode=verify-full (or require)"
            );
        }
        let pg = config.to_tokio_postgres();
        let connector = match tls::client_config(config)? {
            None => Connector::Plain(PostgresConnectionManager::new(pg, NoTls)),
            Some(tls) => Connector::Tls(PostgresConnectionManager::new(pg, MakeRustlsConnect::new(tls))),
        };
        Ok(Self { connector, config: config.clone() })
    }

    /// The configuration it connects with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// Classifies a tokio-postgres error from a query on one of this backend's connections: a lost connection
    /// is `Unavailable`, a server that is shutting down too, anything else a `Query` error.
    pub fn classify(&self, e: tokio_postgres::Error) -> DatabaseError {
        classify(e, &self.config)
    }
}

impl Backend for PgBackend {
    type Conn = PgConnection;
    const NAME: &'static str = "postgres";

    async fn connect(&self) -> Result<PgConnection, DatabaseError> {
        // tokio-postgres applies connect_timeout per address; this bounds the whole handshake (TLS included).
        let attempt = async {
            match &self.connector {
                Connector::Plain(m) => m.connect().await,
                Connector::Tls(m) => m.connect().await,
            }
        };
        match tokio::time::timeout(self.config.connect_timeout, attempt).await {
            Ok(result) => result
                .map(|client| PgConnection { client, statements: HashMap::new() })
                .map_err(|e| classify(e, &self.config)),
            Err(_) => Err(DatabaseError::ConnectionRefused {
                address: self.config.address(),
                message: format!("no answer within {:?}", self.config.connect_timeout),
            }),
        }
    }

    async fn ping(&self, conn: &mut PgConnection) -> Result<(), DatabaseError> {
        conn.simple_query("").await.map(|_| ()).map_err(|e| classify(e, &self.config))
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        conn.is_closed()
    }

    async fn server_version(&self, conn: &mut PgConnection) -> Result<String, DatabaseError> {
        let row = conn.query_one("SHOW server_version", &[]).await.map_err(|e| classify(e, &self.config))?;
        Ok(row.get(0))
    }

    fn address(&self) -> String {
        self.config.address()
    }
}
