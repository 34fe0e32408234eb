//! [`TestDatabase`]: a fresh, randomly named database on the shared server, dropped afterwards.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use super::{encode_userinfo, quote_ident};

/// The environment variable naming the shared server: `DATABASE_URL`.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// The shared server used when `DATABASE_URL` is unset: the one `./scripts/test.sh` starts.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Prefix of every database [`TestDatabase`] creates: `cpc_test_<unix seconds>_<16 hex digits>`.
const NAME_PREFIX: &str = "cpc_test_";

/// Databases left behind by a crashed run are dropped once they are this old.
const LEAK_AGE: Duration = Duration::from_secs(3600);

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared server's URL: `$DATABASE_URL`, else [`DEFAULT_DATABASE_URL`].
pub fn database_url() -> String {
    std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// The URL (or `key=value` connection string) without its password, for messages and logs.
///
/// `postgres://app:secret@db:5432/x?sslmode=require` becomes `postgres://app@db:5432/x?sslmode=require`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.split_whitespace().filter(|kv| !kv.starts_with("password=")).collect::<Vec<_>>().join(" ");
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            format!("{}{host}", userinfo.split(':').next().unwrap_or_default())
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query.split('&').filter(|kv| !kv.starts_with("password=")).collect();
            if kept.is_empty() { path.to_owned() } else { format!("{path}?{}", kept.join("&")) }
        }
        None => tail.to_owned(),
    };
    format!("{head}{authority}{tail}")
}

/// Connects to `url` without TLS (a 5 s connect timeout unless the URL sets one) and drives the connection on a
/// spawned tokio task. Needs a tokio runtime.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let config = parse_config(url)?;
    connect_config(&config).await
}

pub(crate) fn parse_config(url: &str) -> Result<Config, tokio_postgres::Error> {
    let mut config = Config::from_str(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

pub(crate) async fn connect_config(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // The error (if any) reaches the client as a closed connection; nothing to do with it here.
        let _ = connection.await;
    });
    Ok(client)
}

/// The whole error chain on one line (`tokio_postgres::Error`'s own text is often just "db error").
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connects to the admin URL or panics with how to get a server.
async fn connect_admin(admin_url: &str) -> Client {
    let config = parse_config(admin_url).unwrap_or_else(|e| {
        panic!("{DATABASE_URL_ENV} is not a valid PostgreSQL URL ({}): {}", redact_url(admin_url), describe(&e))
    });
    connect_config(&config).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL not reachable at {}: {}. Start it (./scripts/test.sh does; \
             ./scripts/test.sh --services-only only starts the servers) or set {DATABASE_URL_ENV}",
            redact_url(admin_url),
            describe(&e)
        )
    })
}

/// A fresh database with a random name on a shared server, for one test.
///
/// [`create`](Self::create) makes `cpc_test_<unix seconds>_<16 hex>` on the `DATABASE_URL` server;
/// dropping the value drops the database (`DROP DATABASE ... WITH (FORCE)`, which also ends connections still open
/// to it), from any context, async or not. Databases that a crashed run left behind are dropped by later
/// [`create`](Self::create) calls once they are an hour old.
///
/// ```no_run
/// # async fn demo() {
/// let db = cpc_test_servers::TestDatabase::create().await;
/// let client = db.connect().await;
/// let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
/// assert_eq!(one, 1);
/// db.drop_now().await; // or just let it go out of scope
/// # }
/// ```
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    config: Config,
    dropped: bool,
}

impl TestDatabase {
    /// Creates a database on the shared server named by `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]).
    ///
    /// # Panics
    ///
    /// If the server is unreachable (the message says how to start one), or the database cannot be created.
    pub async fn create() -> Self {
        Self::create_on(&database_url()).await
    }

    /// Creates a database on the server at `admin_url` (a URL of a user that may create databases), for example
    /// a [`PrivatePostgres`](super::PrivatePostgres)'s [`url`](super::PrivatePostgres::url).
    ///
    /// # Panics
    ///
    /// If the server is unreachable (the message says how to start one), or the database cannot be created.
    pub async fn create_on(admin_url: &str) -> Self {
        let admin = connect_admin(admin_url).await;
        drop_leaked_databases(&admin).await;

        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let random = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{NAME_PREFIX}{now}_{}", &random[..16]);
        admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))).await.unwrap_or_else(|e| {
            panic!("could not create test database {name} on {}: {}", redact_url(admin_url), describe(&e))
        });

        let mut config = parse_config(admin_url).expect("parsed above");
        config.dbname(&name);
        TestDatabase {
            url: url_with_database(admin_url, &config, &name),
            name,
            admin_url: admin_url.to_owned(),
            config,
            dropped: false,
        }
    }

    /// The database's name, `cpc_test_<unix seconds>_<16 hex>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `postgres://` URL for this database: the server URL it was created with, database part replaced
    /// (credentials and query parameters kept).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A tokio-postgres configuration for this database (5 s connect timeout unless the URL set one).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The server's host: a host name or IP, or the socket directory for a Unix-socket URL.
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => self.config.get_hostaddrs().first().map(|ip| ip.to_string()).unwrap_or_else(|| "localhost".into()),
        }
    }

    /// The server's port (5432 unless the URL says otherwise).
    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// The user the database was created by (and is owned by).
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    /// The password from the server URL, if it had one.
    pub fn password(&self) -> Option<String> {
        self.config.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// Connects to the database without TLS.
    ///
    /// # Panics
    ///
    /// If the connection fails.
    pub async fn connect(&self) -> Client {
        connect_config(&self.config)
            .await
            .unwrap_or_else(|e| panic!("could not connect to test database {}: {}", self.name, describe(&e)))
    }

    /// Drops the database now (ending connections still open to it), instead of when the value is dropped.
    ///
    /// # Panics
    ///
    /// If the server is unreachable or the drop fails.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name)
            .await
            .unwrap_or_else(|e| panic!("could not drop test database {}: {e}", self.name));
    }
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase").field("name", &self.name).field("url", &redact_url(&self.url)).finish()
    }
}

impl Drop for TestDatabase {
    /// Drops the database on a helper thread with its own small runtime, so it works inside and outside async
    /// code. A failure is printed, not raised (a panic in `drop` during a failing test would abort); the leak is
    /// cleaned up by a later [`TestDatabase::create`] after an hour.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let worker = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("could not build a runtime: {e}"))?;
            runtime.block_on(drop_database(&admin_url, &name))
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: the thread dropping test database {} panicked", self.name),
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let admin = connect(admin_url)
        .await
        .map_err(|e| format!("PostgreSQL not reachable at {}: {}", redact_url(admin_url), describe(&e)))?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
        .await
        .map_err(|e| describe(&e))
}

/// Best effort: drops `cpc_test_<secs>_...` databases whose timestamp is over an hour old.
async fn drop_leaked_databases(admin: &Client) {
    let Ok(rows) = admin.query(r"SELECT datname FROM pg_database WHERE datname LIKE 'cpc\_test\_%'", &[]).await else {
        return;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    for row in rows {
        let name: String = row.get(0);
        let created =
            name.strip_prefix(NAME_PREFIX).and_then(|rest| rest.split('_').next()).and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|secs| now.saturating_sub(secs) > LEAK_AGE.as_secs()) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await;
        }
    }
}

/// `admin_url` with its database replaced by `name`: textually for a URL (keeping everything else), rebuilt
/// from the parsed configuration for a `key=value` string.
fn url_with_database(admin_url: &str, config: &Config, name: &str) -> String {
    if let Some(scheme_end) = admin_url.find("://") {
        let (head, rest) = admin_url.split_at(scheme_end + 3);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let query = tail.find('?').map(|i| &tail[i..]).unwrap_or_default();
        return format!("{head}{authority}/{name}{query}");
    }
    let user = encode_userinfo(config.get_user().unwrap_or("postgres"));
    let password = config.get_password().map(|p| format!(":{}", encode_userinfo(&String::from_utf8_lossy(p))));
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) if host.contains(':') => format!("[{host}]"),
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => encode_userinfo(&path.display().to_string()),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{user}{}@{host}:{port}/{name}", password.unwrap_or_default())
}
