//! The SQLite pool against real SQLite databases (files in a temp dir, and named in-memory databases).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sqlite")]

#[path = "common/logs.rs"]
mod logs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cpc_adapters::pool::{DatabaseError, HealthChecker, PoolConfig, PoolFactory};
use cpc_adapters::sqlite::{SqliteConfig, SqlitePool};
use cpc_ports::{HealthCheck, HealthStatus};

async fn file_pool(dir: &tempfile::TempDir, config: PoolConfig) -> SqlitePool {
    let path = dir.path().join("nested/dir/app.db");
    PoolFactory::create_sqlite_pool(&SqliteConfig::file(path), &config).await.unwrap()
}

#[tokio::test]
async fn every_connection_gets_wal_busy_timeout_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(&dir, PoolConfig::default()).await;
    let (mode, busy, fk): (String, i64, i64) = pool
        .interact(|c| {
            Ok((
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((mode.as_str(), busy, fk), ("wal", 5000, 1));
    assert!(dir.path().join("nested/dir/app.db").exists(), "missing parent directories are created");
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(&dir, PoolConfig::default()).await;
    pool.write(|tx| {
        tx.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY);
             CREATE TABLE tx (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id));",
        )
    })
    .await
    .unwrap();
    let err = pool.write(|tx| tx.execute("INSERT INTO tx (user_id) VALUES (42)", [])).await.unwrap_err();
    assert!(matches!(err, DatabaseError::Query(_)), "{err:?}");
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(&dir, PoolConfig::default().max_connections(8)).await;
    pool.write(|tx| tx.execute_batch("CREATE TABLE t (writer INTEGER, n INTEGER)")).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    // Read-then-write in one transaction: the pattern that fails with SQLITE_BUSY on upgrade
                    // when transactions start deferred.
                    pool.write(move |tx| {
                        let count: i64 = tx.query_row("SELECT count(*) FROM t WHERE writer = ?1", [w], |r| r.get(0))?;
                        tx.execute("INSERT INTO t VALUES (?1, ?2)", [w, count])?;
                        Ok(())
                    })
                    .await
                    .unwrap_or_else(|e| panic!("writer {w} insert {n}: {e}"));
                }
            })
        })
        .collect();
    // Plain autocommit writes from other connections at the same time rely on busy_timeout.
    let side: Vec<_> = (0..4)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    pool.interact(move |c| c.execute("INSERT INTO t VALUES (?1, ?2)", [100 + w, n]))
                        .await
                        .unwrap_or_else(|e| panic!("side writer {w}: {e}"));
                }
            })
        })
        .collect();
    for t in tasks.into_iter().chain(side) {
        t.await.unwrap();
    }
    let total: i64 = pool.interact(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).await.unwrap();
    assert_eq!(total, 16 * 50 + 4 * 25);
    let max: i64 =
        pool.interact(|c| c.query_row("SELECT max(n) FROM t WHERE writer < 100", [], |r| r.get(0))).await.unwrap();
    assert_eq!(max, 49, "each writer saw its own earlier rows: transactions were serialized");
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_work_stays_off_the_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(&dir, PoolConfig::default()).await;
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    pool.interact(|_| {
        std::thread::sleep(Duration::from_millis(300)); // a slow query
        Ok(())
    })
    .await
    .unwrap();
    ticker.abort();
    let n = ticks.load(Ordering::SeqCst);
    assert!(n >= 10, "the single-threaded runtime kept running other tasks during the query ({n} ticks)");
}

#[tokio::test]
async fn a_named_in_memory_database_is_shared_and_outlives_checkouts() {
    let config = SqliteConfig::shared_memory(format!("shared_{}", std::process::id()));
    let pool = PoolFactory::create_sqlite_pool(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x')")).await.unwrap();
    // Hold several connections so reads come from different ones.
    let conns = futures::future::join_all((0..4).map(|_| pool.get())).await;
    for conn in conns {
        let conn = conn.unwrap();
        let v: String = conn.interact(|c| c.query_row("SELECT v FROM t", [], |r| r.get(0))).await.unwrap();
        assert_eq!(v, "x");
    }
    let other = PoolFactory::create_sqlite_pool(&SqliteConfig::shared_memory("another_db"), &PoolConfig::default())
        .await
        .unwrap();
    let missing = other.interact(|c| c.query_row("SELECT v FROM t", [], |r| r.get::<_, String>(0))).await;
    assert!(missing.is_err(), "a differently named in-memory database is a different database");
}

#[tokio::test]
async fn a_plain_memory_path_is_refused_with_a_clear_error() {
    match SqliteConfig::parse(":memory:") {
        Err(e) => {
            assert_eq!(e.key(), "path");
            assert!(e.reason().contains("own empty database"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unopenable_path_fails_at_build_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_db = dir.path().join("dir-not-file");
    std::fs::create_dir(&not_a_db).unwrap();
    let started = Instant::now();
    let err =
        PoolFactory::create_sqlite_pool(&SqliteConfig::file(&not_a_db), &PoolConfig::default()).await.unwrap_err();
    assert!(
        matches!(err, DatabaseError::ConnectionRefused { ref address, .. } if address.contains("dir-not-file")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let err = PoolFactory::create_sqlite_pool(&SqliteConfig::file(&garbage), &PoolConfig::default()).await.unwrap_err();
    assert!(matches!(err, DatabaseError::ConnectionRefused { .. }), "a file that is not a database: {err:?}");
}

#[tokio::test]
async fn a_failed_write_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(&dir, PoolConfig::default()).await;
    pool.write(|tx| tx.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")).await.unwrap();
    let err = pool
        .write(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            tx.execute("INSERT INTO t VALUES (1)", [])?; // unique violation
            Ok(())
        })
        .await;
    assert!(err.is_err());
    let n: i64 = pool.interact(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).await.unwrap();
    assert_eq!(n, 0, "the first insert must have been rolled back with the second");
}

#[tokio::test]
async fn health_reports_version_and_pool_state() {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(&dir, PoolConfig::default()).await;
    let report = HealthChecker::new(pool.inner().clone()).check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.component, "sqlite");
    assert!(report.details["server_version"].starts_with('3'), "{report:?}");
    assert_eq!(report.details["max_connections"], "10");
    assert!(report.details["address"].ends_with("app.db"));
}

mod health_contract {
    use std::sync::Arc;

    use cpc_adapters::pool::{HealthChecker, PoolConfig, PoolFactory};
    use cpc_adapters::sqlite::SqliteConfig;

    async fn checker(path: std::path::PathBuf) -> Arc<HealthChecker<cpc_adapters::sqlite::SqliteBackend>> {
        let pool = PoolFactory::create_sqlite_pool(&SqliteConfig::file(path), &PoolConfig::default()).await.unwrap();
        Arc::new(HealthChecker::new(pool.inner().clone()))
    }

    cpc_testkit::health_contract!(
        healthy = async { checker(tempfile::tempdir().unwrap().keep().join("h.db")).await },
        unreachable = async {
            // A working pool whose database file is then made unreadable garbage: new connections fail.
            let dir = tempfile::tempdir().unwrap().keep();
            let path = dir.join("u.db");
            let pool = PoolFactory::create_sqlite_pool(
                &SqliteConfig::file(&path).wal(false),
                &PoolConfig::default().validation_skip_window(std::time::Duration::ZERO),
            )
            .await
            .unwrap();
            std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
            Arc::new(HealthChecker::new(pool.inner().clone()))
        }
    );
}

#[tokio::test]
async fn a_connection_held_past_the_leak_threshold_is_reported_with_where_it_was_taken() {
    let (captured, _guard) = logs::capture();

    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(&dir, PoolConfig::default().leak_detection_threshold(Some(Duration::from_millis(50)))).await;
    let held = pool.get().await.unwrap();
    let line = line!() - 1;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = captured.text();
    assert!(log.contains("possible database connection leak"), "the sweeper reports a connection still out: {log}");
    assert!(log.contains(&format!("sqlite_pool.rs:{line}")), "the report names the checkout site: {log}");
    drop(held);
    let quick = pool.get().await.unwrap();
    drop(quick);
    let log = captured.text();
    assert_eq!(log.matches("possible database connection leak").count(), 1, "reported once while held: {log}");
    assert!(!log.contains("held longer than"), "a reported checkout is not reported again on return: {log}");
    assert_eq!(log.lines().count(), 1, "the short checkout is not reported: {log}");
}
