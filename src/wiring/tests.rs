//! The environment rules and the one-line, password-free errors of an unreachable server. None of these needs a
//! server: the refused port 1 answers at once.

use std::time::{Duration, Instant};

use cpc_adapters::memory::CacheBounds;
use cpc_ports::RepoError;

use super::{AppData, DatabaseSettings, KvSettings, Ports, Settings, WiringError};

fn lookup(pairs: &[(&'static str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let pairs = pairs.to_vec();
    move |k| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone())
}

/// Wires from `pairs`, expecting a failure within 5 s; returns its message.
async fn failure(pairs: &[(&'static str, String)]) -> String {
    let settings = Settings::from_lookup("app", lookup(pairs)).expect("valid settings");
    let started = Instant::now();
    let err = Ports::wire(&settings).await.expect_err("the server is unreachable");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message:?}");
    let source = std::error::Error::source(&err).map(ToString::to_string).expect("the client's error is the source");
    assert!(message.ends_with(&source.replace('\n', "; ")) || message.contains(&source), "{message} / {source}");
    assert!(!format!("{err:?}").contains("hunter2"), "no password in Debug either: {err:?}");
    message
}

#[test]
fn nothing_set_is_the_embedded_default_under_the_data_dir() {
    let s = Settings::from_lookup("app", lookup(&[])).unwrap();
    assert!(matches!(s.database, DatabaseSettings::Sqlite(_)));
    assert_eq!(s.database.describe(), format!("{}/app.db", super::DEFAULT_DATA_DIR));
    assert!(matches!(s.kv, KvSettings::Sqlite), "the durable ports on the embedded SQLite: {:?}", s.kv);
    let s = Settings::from_lookup("app", lookup(&[("CPC_DATA_DIR", "/tmp/x".into())])).unwrap();
    assert_eq!(s.database.describe(), "/tmp/x/app.db");
}

#[test]
fn database_url_picks_postgres_or_sqlite_and_redis_url_picks_redis() {
    let pg = Settings::from_lookup("app", lookup(&[("DATABASE_URL", "postgres://u@db.example:5433/shop".into())]));
    assert_eq!(pg.unwrap().database.describe(), "db.example:5433/shop");
    let lite = Settings::from_lookup("app", lookup(&[("DATABASE_URL", "sqlite:///tmp/shop.db".into())])).unwrap();
    assert!(matches!(lite.database, DatabaseSettings::Sqlite(_)));
    let redis = Settings::from_lookup("app", lookup(&[("REDIS_URL", "redis://cache.example:6380".into())])).unwrap();
    let redis = redis.kv.redis().cloned().expect("REDIS_URL wires Redis");
    assert_eq!((redis.address(), redis.namespace.as_str()), ("cache.example:6380".into(), "cpc:app:"));
    let named =
        Settings::from_lookup("app", lookup(&[("REDIS_URL", "redis://r".into()), ("REDIS_NAMESPACE", "x:".into())]));
    assert_eq!(named.unwrap().kv.redis().unwrap().namespace, "x:");
    let cluster =
        Settings::from_lookup("app", lookup(&[("REDIS_CLUSTER_URLS", "redis://a:7000,redis://b:7001".into())]));
    let cluster = cluster.unwrap().kv.redis().cloned().expect("REDIS_CLUSTER_URLS wires Redis");
    assert_eq!((cluster.is_cluster(), cluster.address()), (true, "a:7000,b:7001".into()));
}

#[test]
fn a_malformed_variable_is_a_configuration_error_naming_it() {
    for (name, value) in [("DB_POOL_MAX", "lots"), ("REDIS_URL", "http://x"), ("DATABASE_URL", "postgres://h:port/")] {
        match Settings::from_lookup("app", lookup(&[(name, value.into())])) {
            Err(WiringError::Config(e)) => {
                assert_eq!(e.key(), name, "{e}");
                assert!(e.to_string().contains(name), "{e}");
            }
            other => panic!("{name}={value}: expected a configuration error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_postgres_is_one_line_naming_the_server_without_the_password() {
    let message = failure(&[("DATABASE_URL", "postgres://postgres:hunter2@127.0.0.1:1/shop".into())]).await;
    assert!(message.starts_with("PostgreSQL at 127.0.0.1:1/shop: "), "{message}");
    assert!(message.contains("refused"), "the cause: {message}");
    assert!(!message.contains("hunter2"), "no password: {message}");
}

#[tokio::test]
async fn an_unreachable_redis_is_one_line_naming_the_server_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let message = failure(&[
        ("CPC_DATA_DIR", dir.path().display().to_string()),
        ("REDIS_URL", "redis://:hunter2@127.0.0.1:1".into()),
    ])
    .await;
    assert!(message.starts_with("Redis at 127.0.0.1:1: "), "{message}");
    assert!(message.contains("refused"), "the cause: {message}");
    assert!(!message.contains("hunter2"), "no password: {message}");
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let message = failure(&[("CPC_DATA_DIR", file.join("sub").display().to_string())]).await;
    assert!(message.starts_with("cannot create the data directory "), "{message}");
}

#[tokio::test]
async fn the_embedded_default_creates_its_directory_migrates_and_is_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested/data");
    let ports = Ports::wire(&Settings::embedded("app", &data_dir)).await.unwrap();
    assert!(data_dir.join("app.db").is_file());
    assert_eq!(ports.users.count(&[]).await.unwrap(), 0, "the schema is there");
    let (status, reports) = ports.health().await;
    assert_eq!(status, cpc_ports::HealthStatus::Healthy);
    let components: Vec<_> = reports.iter().map(|r| r.component.as_str()).collect();
    assert_eq!(components, ["sqlite", "ports", "in-process"]);
    let ports_report = &reports[1];
    let backend = |port: &str| ports_report.details.get(port).map(String::as_str);
    assert_eq!(
        (backend("jobs"), backend("sessions"), backend("lock")),
        (Some("sqlite"), Some("sqlite"), Some("sqlite"))
    );
    assert_eq!((backend("cache"), backend("pubsub")), (Some("in-process"), Some("in-process")));
}

#[tokio::test]
async fn the_in_process_cache_keeps_the_bounds_of_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = [
        ("CPC_DATA_DIR", dir.path().display().to_string()),
        ("CPC_MEMORY_CACHE_MAX_ENTRIES", "5".to_owned()),
        ("CPC_MEMORY_CACHE_MAX_BYTES", "8192".to_owned()),
    ];
    let settings = Settings::from_lookup("app", lookup(&pairs)).unwrap();
    assert_eq!((settings.memory_cache.max_entries, settings.memory_cache.max_bytes), (5, 8_192));
    let ports = Ports::wire(&settings).await.unwrap();
    let keys: Vec<_> = (0..20).map(|i| cpc_ports::CacheKey::new(format!("k{i}")).unwrap()).collect();
    for k in &keys {
        ports.cache.set_bytes(k, cpc_ports::Bytes::from_static(b"v"), None).await.unwrap();
    }
    let kept = ports.cache.get_many_bytes(&keys).await.unwrap().iter().filter(|v| v.is_some()).count();
    assert_eq!(kept, 5, "at most CPC_MEMORY_CACHE_MAX_ENTRIES entries");
    assert_eq!(ports.cache.max_value_bytes(), 8_192 - 4_096, "CPC_MEMORY_CACHE_MAX_BYTES less the longest key");

    for (var, value) in [("CPC_MEMORY_CACHE_MAX_ENTRIES", "0"), ("CPC_MEMORY_CACHE_MAX_BYTES", "lots")] {
        match Settings::from_lookup("app", lookup(&[(var, value.to_owned())])) {
            Err(WiringError::Config(e)) => assert_eq!(e.key(), var, "{e}"),
            other => panic!("{var}={value}: expected a configuration error, got {other:?}"),
        }
    }
    let zero = Settings { memory_cache: CacheBounds { max_entries: 0, ..CacheBounds::default() }, ..settings };
    match Ports::wire(&zero).await {
        Err(WiringError::Config(e)) => assert_eq!(e.key(), "max_entries", "{e}"),
        other => panic!("bounds built by hand are checked too, got {:?}", other.map(|p| p.description)),
    }
}

#[test]
fn the_key_value_backend_follows_cpc_kv_backend_then_redis_then_the_database() {
    let kv = |pairs: &[(&'static str, String)]| Settings::from_lookup("app", lookup(pairs)).map(|s| s.kv.name());
    let pg = || ("DATABASE_URL", "postgres://u@db.example/shop".to_owned());
    assert_eq!(kv(&[pg()]).unwrap(), "postgres", "PostgreSQL and no Redis: every port on PostgreSQL");
    assert_eq!(kv(&[]).unwrap(), "sqlite", "the embedded default keeps its durable ports in SQLite");
    assert_eq!(kv(&[pg(), ("REDIS_URL", "redis://r".into())]).unwrap(), "redis");
    assert_eq!(
        kv(&[pg(), ("REDIS_URL", "redis://r".into()), ("CPC_KV_BACKEND", "postgres".into())]).unwrap(),
        "postgres"
    );
    assert_eq!(kv(&[pg(), ("CPC_KV_BACKEND", "Memory".into())]).unwrap(), "memory");
    assert_eq!(kv(&[("CPC_KV_BACKEND", "redis".into())]).unwrap(), "redis", "the default Redis address");
    for (pairs, needle) in [
        (vec![("CPC_KV_BACKEND", "postgres".to_owned())], "SQLite"),
        (vec![pg(), ("CPC_KV_BACKEND", "sqlite".to_owned())], "PostgreSQL"),
        (vec![("CPC_KV_BACKEND", "etcd".to_owned())], "redis, postgres, sqlite, memory"),
    ] {
        match kv(&pairs) {
            Err(WiringError::Config(e)) => {
                assert_eq!(e.key(), "CPC_KV_BACKEND", "{e}");
                assert!(e.reason().contains(needle), "{e}");
            }
            other => panic!("{pairs:?}: expected a configuration error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_embedded_defaults_jobs_and_sessions_survive_a_restart() {
    use cpc_ports::{EnqueueOptions, JobQueueExt, QueueName, SessionStoreExt};

    let dir = tempfile::tempdir().unwrap();
    let queue = QueueName::new("mail").unwrap();
    let session = {
        let ports = Ports::wire(&Settings::embedded("app", dir.path())).await.unwrap();
        ports.jobs.enqueue(&queue, &"welcome ada", EnqueueOptions::default()).await.unwrap();
        ports.sessions.create(&"ada", Duration::from_secs(600)).await.unwrap()
    };
    let again = Ports::wire(&Settings::embedded("app", dir.path())).await.unwrap();
    let job = again.jobs.reserve_as::<String>(&queue, Duration::from_secs(30)).await.unwrap();
    assert_eq!(job.expect("the job outlived the process").data, "welcome ada");
    assert_eq!(again.sessions.load::<String>(&session).await.unwrap().as_deref(), Some("ada"));
}

/// A test app's own table (`adapters/tests/fixtures/app_migrations`), declared as an app declares it.
mod widgets {
    #![allow(missing_docs)]
    use cpc_adapters::diesel::migrations::{EmbeddedMigrations, MigrationSet, embed_migrations};

    pub static POSTGRES: EmbeddedMigrations = embed_migrations!("adapters/tests/fixtures/app_migrations/postgres");
    pub static SQLITE: EmbeddedMigrations = embed_migrations!("adapters/tests/fixtures/app_migrations/sqlite");
    pub const MIGRATIONS: MigrationSet = MigrationSet::new("widgets", &POSTGRES, &SQLITE);

    diesel::table! {
        use cpc_adapters::diesel::sql_types::*;
        widgets (id) {
            id -> BigInt,
            owner_id -> Uuid,
            name -> Text,
        }
    }

    #[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
    #[diesel(table_name = widgets)]
    pub struct Widget {
        pub id: i64,
        pub owner_id: uuid::Uuid,
        pub name: String,
    }

    #[derive(Debug, Clone)]
    pub struct NewWidget {
        pub owner_id: uuid::Uuid,
        pub name: String,
    }

    cpc_adapters::record! {
        Widget in widgets as "widget" {
            key: id: i64,
            new: NewWidget,
            update: NewWidget {},
            fields: WidgetField { owner_id, name },
            references: { owner_id => cpc_domain::User },
        }
    }

    /// The same table, declared with a column it does not have.
    pub mod drifted {
        diesel::table! {
            use cpc_adapters::diesel::sql_types::*;
            widgets (id) {
                id -> BigInt,
                name -> Text,
                colour -> Text,
            }
        }

        #[derive(Debug, Clone, diesel::Queryable, diesel::Selectable)]
        #[diesel(table_name = widgets)]
        pub struct Drifted {
            pub id: i64,
            pub name: String,
            pub colour: String,
        }

        cpc_adapters::record! {
            Drifted in widgets as "drifted widget" {
                key: id: i64,
                new: Drifted,
                update: Drifted {},
                fields: DriftedField { name, colour },
            }
        }
    }
}

#[tokio::test]
async fn an_apps_records_and_migrations_are_wired_beside_the_library() {
    use cpc_ports::{RecordStoreExt, TxExt, UnitOfWorkExt};
    use widgets::{NewWidget, Widget};

    let dir = tempfile::tempdir().unwrap();
    let data = AppData::new().record::<Widget>().migrations(widgets::MIGRATIONS);
    let ports = Ports::wire_with(&Settings::embedded("app", dir.path()), &data).await.unwrap();
    let ada = ports.users.create(cpc_domain::NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    let owner_id = *ada.id.as_uuid();
    let first = ports.repo::<Widget>().unwrap().create(NewWidget { owner_id, name: "a".into() }).await.unwrap();
    // A unit of work spans the app's record and the built-in ones.
    let second = ports
        .unit_of_work
        .run(|tx| {
            Box::pin(async move {
                let widget = tx.repo::<Widget>()?.create(NewWidget { owner_id, name: "b".into() }).await?;
                tx.users().count(&[]).await?;
                Ok::<_, RepoError>(widget)
            })
        })
        .await
        .unwrap();
    assert!(second.id > first.id);
    assert_eq!(ports.repo::<Widget>().unwrap().count(&[]).await.unwrap(), 2);
    // The reference is the database's: a widget of an unknown owner is refused, naming the field.
    let widgets = ports.repo::<Widget>().unwrap();
    let missing = widgets.create(NewWidget { owner_id: uuid::Uuid::now_v7(), name: "c".into() }).await.unwrap_err();
    assert!(matches!(&missing, RepoError::Validation(v) if v.field == "owner_id"), "{missing:?}");
    // Wiring again finds everything migrated; the stale-reads view hands the app's record out too.
    let again = Ports::wire_with(&Settings::embedded("app", dir.path()), &data).await.unwrap();
    let view = again.stale_reads();
    assert_eq!(view.records.repo::<Widget>().unwrap().count(&[]).await.unwrap(), 2);
}

#[tokio::test]
async fn a_record_that_does_not_match_its_table_stops_the_start_naming_table_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = AppData::new().record::<widgets::drifted::Drifted>().migrations(widgets::MIGRATIONS);
    let err = Ports::wire_with(&Settings::embedded("app", dir.path()), &data).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("a record does not match its table"), "{message}");
    assert!(message.contains("widgets") && message.contains("colour"), "{message}");
}

#[test]
fn the_near_cache_is_off_by_default_and_only_fronts_one_redis_server() {
    let redis = || ("REDIS_URL", "redis://cache.example:6380".to_owned());
    let on = || ("CPC_NEAR_CACHE", "on".to_owned());
    assert_eq!(Settings::from_lookup("app", lookup(&[redis()])).unwrap().near_cache, None);
    let near = Settings::from_lookup("app", lookup(&[redis(), on(), ("CPC_NEAR_CACHE_MAX_ENTRIES", "64".into())]));
    assert_eq!(near.unwrap().near_cache.map(|c| c.max_entries), Some(64));
    for (pairs, needle) in [
        (vec![on()], "sqlite"),
        (vec![on(), ("DATABASE_URL", "postgres://u@db.example/shop".into())], "postgres"),
        (vec![on(), ("CPC_KV_BACKEND", "memory".into())], "memory"),
        (vec![on(), ("REDIS_CLUSTER_URLS", "redis://a:7000,redis://b:7001".into())], "Cluster"),
        (vec![redis(), ("CPC_NEAR_CACHE", "sometimes".into())], "on or off"),
    ] {
        match Settings::from_lookup("app", lookup(&pairs)) {
            Err(WiringError::Config(e)) => {
                assert_eq!(e.key(), "CPC_NEAR_CACHE", "{e}");
                assert!(e.reason().contains(needle), "{pairs:?}: {e}");
            }
            other => panic!("{pairs:?}: expected a configuration error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_near_cache_built_by_hand_is_checked_when_wired() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::from_lookup("app", lookup(&[("CPC_DATA_DIR", dir.path().display().to_string())]));
    let memory = Settings { near_cache: Some(Default::default()), ..settings.unwrap() };
    match Ports::wire(&memory).await {
        Err(WiringError::Config(e)) => assert_eq!(e.key(), "near_cache", "{e}"),
        other => panic!("a near cache needs Redis, got {:?}", other.map(|p| p.description)),
    }
}
