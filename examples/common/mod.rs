//! Shared by the example composition roots (`#[path = "../common/mod.rs"] mod common;`): the `main` half every
//! example has (wire the ports from the environment, run, exit non-zero with a one-line message), and for tests
//! the two ways to wire: the embedded default in a temporary directory, and PostgreSQL + Redis, isolated.

use std::process::ExitCode;

use cpc_data::wiring::{AppData, Ports};

/// Any failure of an example's flow; `main` prints it on one line.
pub type FlowError = Box<dyn std::error::Error + Send + Sync>;

/// The whole `main` of an example: wires `app`'s ports from the environment (`DATABASE_URL`, `REDIS_URL`,
/// `CPC_DATA_DIR`...), runs `flow` on them printing to stdout, and exits 1 with a one-line message on stderr if
/// either fails.
pub async fn main<T>(
    app: &str,
    flow: impl AsyncFnOnce(&Ports, &mut std::io::Stdout) -> Result<T, FlowError>,
) -> ExitCode {
    main_with(app, &AppData::new(), flow).await
}

/// [`main`] for an app with records and migrations of its own ([`AppData`]).
pub async fn main_with<T>(
    app: &str,
    data: &AppData,
    flow: impl AsyncFnOnce(&Ports, &mut std::io::Stdout) -> Result<T, FlowError>,
) -> ExitCode {
    let result = match Ports::from_env_with(app, data).await {
        Ok(ports) => flow(&ports, &mut std::io::stdout()).await.map(drop),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A short random tag (8 hex digits) that makes one run's names unique, so a demo can run again on the same
/// database without tripping over the rows of an earlier run.
#[allow(dead_code, reason = "the quickstart does not need one")]
pub fn run_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Test support: wired ports that clean up after themselves.
#[cfg(test)]
pub mod testing {
    use cpc_data::adapters::postgres::PgConfig;
    use cpc_data::adapters::redis::RedisConfig;
    use cpc_data::wiring::{AppData, DatabaseSettings, KvSettings, Ports, Settings};
    use cpc_test_servers::TestDatabase;

    use super::FlowError;

    /// Ports and what must live as long as they do (a temporary directory, a test database).
    pub struct Wired {
        /// The ports.
        pub ports: Ports,
        _dir: Option<tempfile::TempDir>,
        _db: Option<TestDatabase>,
    }

    /// The embedded default: SQLite in a fresh temporary directory, with the durable key-value ports in it.
    pub async fn embedded(app: &str) -> Wired {
        embedded_with(app, &AppData::new()).await
    }

    /// [`embedded`] for an app with records and migrations of its own.
    pub async fn embedded_with(app: &str, data: &AppData) -> Wired {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ports =
            Ports::wire_with(&Settings::embedded(app, dir.path()), data).await.unwrap_or_else(|e| panic!("{e}"));
        Wired { ports, _dir: Some(dir), _db: None }
    }

    /// PostgreSQL (a database of its own on the server of `DATABASE_URL`) and Redis (`REDIS_URL`, default
    /// `redis://127.0.0.1:6379`, under a random namespace). Panics, saying how to get the servers, when they
    /// cannot be reached.
    pub async fn on_servers(app: &str) -> Wired {
        on_servers_with(app, &AppData::new()).await
    }

    /// [`on_servers`] for an app with records and migrations of its own.
    pub async fn on_servers_with(app: &str, data: &AppData) -> Wired {
        let db = TestDatabase::create().await;
        let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut redis = RedisConfig::parse_url(&redis_url, "REDIS_URL").unwrap_or_else(|e| panic!("{e}"));
        redis.namespace = format!("cpc-test:{app}:{}:", uuid::Uuid::new_v4());
        let settings = Settings {
            database: DatabaseSettings::Postgres(PgConfig::from_url(db.url()).expect("the test database URL")),
            pool: Default::default(),
            kv: KvSettings::Redis(redis),
            memory_cache: Default::default(),
            near_cache: None,
            encryption: None,
        };
        let ports = Ports::wire_with(&settings, data).await.unwrap_or_else(|e| {
            panic!("{e}. Start PostgreSQL and Redis (./scripts/test.sh does) or set DATABASE_URL and REDIS_URL")
        });
        Wired { ports, _dir: None, _db: Some(db) }
    }

    /// Runs `flow` on the wired ports, capturing what it prints; panics with the error if it fails.
    pub async fn printed<T>(
        wired: &Wired,
        flow: impl AsyncFnOnce(&Ports, &mut Vec<u8>) -> Result<T, FlowError>,
    ) -> (T, String) {
        let mut out = Vec::new();
        let value = flow(&wired.ports, &mut out).await.unwrap_or_else(|e| panic!("the flow failed: {e}"));
        (value, String::from_utf8(out).expect("the flow prints UTF-8"))
    }

    /// Checks that every `expected` fragment is in `log`, showing the whole log when one is not.
    pub fn assert_printed(log: &str, expected: &[&str]) {
        for fragment in expected {
            assert!(log.contains(fragment), "expected {fragment:?} in the output:\n{log}");
        }
    }
}
