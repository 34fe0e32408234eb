//! [`PgBackend`]: bb8-postgres's `PostgresConnectionManager` (plain or rustls), as a pool [`Backend`].

use bb8::ManageConnection;
use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{DatabaseConfig, error::classify, tls};
use crate::pool::{Backend, DatabaseError};

enum Connector {
    Plain(PostgresConnectionManager<NoTls>),
    Tls(PostgresConnectionManager<MakeRustlsConnect>),
}

/// Opens PostgreSQL connections for the pool: bb8-postgres's `PostgresConnectionManager` (the seeds'
/// "PostgresConnectionManager") over tokio-postgres, with rustls for TLS, and errors classified precisely.
pub struct PgBackend {
    connector: Connector,
    config: DatabaseConfig,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").field("config", &self.config).finish()
    }
}

impl PgBackend {
    /// A backend for `config` (TLS set up per its `ssl_mode`).
    pub fn new(config: &DatabaseConfig) -> Result<Self, DatabaseError> {
        config.validate()?;
        let pg = config.to_tokio_postgres();
        let connector = match tls::client_config(config)? {
            None => Connector::Plain(PostgresConnectionManager::new(pg, NoTls)),
            Some(tls) => Connector::Tls(PostgresConnectionManager::new(pg, MakeRustlsConnect::new(tls))),
        };
        Ok(Self { connector, config: config.clone() })
    }

    /// The configuration it connects with.
    pub fn config(&self) -> &DatabaseConfig {
        &self.config
    }
}

impl Backend for PgBackend {
    type Conn = Client;
    const NAME: &'static str = "postgres";

    async fn connect(&self) -> Result<Client, DatabaseError> {
        // tokio-postgres applies connect_timeout per address; this bounds the whole handshake (TLS included).
        let attempt = async {
            match &self.connector {
                Connector::Plain(m) => m.connect().await,
                Connector::Tls(m) => m.connect().await,
            }
        };
        match tokio::time::timeout(self.config.connect_timeout, attempt).await {
            Ok(result) => result.map_err(|e| classify(e, &self.config)),
            Err(_) => Err(DatabaseError::ConnectionRefused {
                address: self.config.address(),
                message: format!("no answer within {:?}", self.config.connect_timeout),
            }),
        }
    }

    async fn ping(&self, conn: &mut Client) -> Result<(), DatabaseError> {
        conn.simple_query("").await.map(|_| ()).map_err(|e| classify(e, &self.config))
    }

    fn is_broken(&self, conn: &mut Client) -> bool {
        conn.is_closed()
    }

    async fn server_version(&self, conn: &mut Client) -> Result<String, DatabaseError> {
        let row = conn.query_one("SHOW server_version", &[]).await.map_err(|e| classify(e, &self.config))?;
        Ok(row.get(0))
    }

    fn address(&self) -> String {
        self.config.address()
    }
}
