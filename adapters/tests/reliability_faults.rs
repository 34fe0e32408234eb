//! Faults under load, measured (docs/RELIABILITY.md): a private Redis killed (`SIGKILL`) while 64 tasks run
//! cache, lock, rate-limit and session operations, and restarted 2 s later. No call may hang past its timeout,
//! and at least 99% of the calls made from 2 s after the restart on must succeed, on the same adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::redis::{CacheManager, DistributedLock, RedisConfig, RedisManager, RedisRateLimiter, SessionManager};
use cpc_ports::{
    Bytes, Cache, CacheKey, KvError, Lock, LockKey, RateLimitKey, RateLimitPolicy, RateLimiter, SessionStore,
};
use cpc_test_servers::PrivateRedis;
use tokio::time::Instant;

const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// What a call may take beyond the response timeout on a loaded machine (a reconnect attempt, scheduling).
const SLACK: Duration = Duration::from_millis(500);

struct Adapters {
    cache: CacheManager,
    lock: DistributedLock,
    limiter: RedisRateLimiter,
    sessions: SessionManager,
}

/// One call: when it started (since the test began), how long it took, whether it succeeded.
struct Call {
    at: Duration,
    took: Duration,
    ok: bool,
}

/// The `n`th operation of task `t`: a cache write or read, a lock taken and given back, a rate-limit check, a
/// session created and loaded, in turn.
async fn operation(a: &Adapters, t: usize, n: usize) -> Result<(), KvError> {
    let key = CacheKey::new(format!("k{}", (t * 31 + n) % 500)).unwrap();
    match n % 4 {
        0 => a.cache.set_bytes(&key, Bytes::from_static(b"value"), None).await,
        1 => a.cache.get_bytes(&key).await.map(drop),
        2 => {
            let lock_key = LockKey::new(format!("l{t}")).unwrap();
            if let Some(lease) = a.lock.try_acquire(&lock_key, Duration::from_secs(5)).await? {
                a.lock.release(lease).await?;
            }
            let policy = RateLimitPolicy::token_bucket(1_000_000, 1_000_000);
            a.limiter.check(&RateLimitKey::new(format!("u{t}")).unwrap(), &policy, 1).await.map(drop)
        }
        _ => {
            let id = a.sessions.create_bytes(Bytes::from_static(b"{}"), Duration::from_secs(60)).await?;
            a.sessions.load_bytes(&id).await.map(drop)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_64_tasks_recovers_with_no_call_hanging() {
    let server = PrivateRedis::start().await;
    let config = RedisConfig::builder()
        .port(server.port())
        .response_timeout(RESPONSE_TIMEOUT)
        .connect_timeout(RESPONSE_TIMEOUT)
        .build()
        .unwrap();
    let manager = RedisManager::new(&config).await.unwrap();
    let a = Arc::new(Adapters {
        cache: CacheManager::new(manager.clone(), Duration::from_secs(60)),
        lock: DistributedLock::new(manager.clone()),
        limiter: RedisRateLimiter::new(manager.clone()),
        sessions: SessionManager::new(manager.clone()),
    });
    let begun = Instant::now();
    let end = begun + Duration::from_secs(7);
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let a = a.clone();
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut n = 0;
                while Instant::now() < end {
                    let at = begun.elapsed();
                    let started = Instant::now();
                    let result = tokio::time::timeout(Duration::from_secs(10), operation(&a, t, n))
                        .await
                        .unwrap_or_else(|_| panic!("task {t}, call {n} hung"));
                    calls.push(Call { at, took: started.elapsed(), ok: result.is_ok() });
                    n += 1;
                    if result.is_err() {
                        // A failing call returns at once; pace the retries as an app would.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                calls
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    server.kill();
    let killed = begun.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart().await;
    let restarted = begun.elapsed();

    let mut calls = Vec::new();
    for task in tasks {
        calls.extend(task.await.expect("no task panicked"));
    }
    let slowest = calls.iter().map(|c| c.took).max().unwrap();
    assert!(slowest <= RESPONSE_TIMEOUT + SLACK, "a call took {slowest:?}");
    let settled: Vec<&Call> = calls.iter().filter(|c| c.at >= restarted + Duration::from_secs(2)).collect();
    let settled_ok = settled.iter().filter(|c| c.ok).count();
    // Calls over before the kill (one in flight at the kill may fail, as it should).
    let before = calls.iter().filter(|c| c.at + c.took < killed).collect::<Vec<_>>();
    let outage = calls.iter().filter(|c| c.at >= killed && c.at < restarted).count();
    // Not asserted: on a loaded machine a call may time out before the kill too; reported below.
    let failed_before = before.iter().filter(|c| !c.ok).count();
    assert!(!settled.is_empty());
    let share = settled_ok as f64 / settled.len() as f64;
    assert!(share >= 0.99, "{settled_ok} of {} calls from 2 s after the restart succeeded", settled.len());
    eprintln!(
        "redis kill under 64 tasks: {} calls; {} over before the kill ({failed_before} failed); {outage} during the outage; \
         {settled_ok} of {} ok from 2 s after the restart ({:.2}%); slowest call {slowest:?}",
        calls.len(),
        before.len(),
        settled.len(),
        share * 100.0
    );
}

/// A private PostgreSQL stopped (fast shutdown: open transactions are cut) while 32 tasks read and write through
/// the Diesel repositories, and started again 2 s later. No call hangs past `connection_timeout`; at least 99% of
/// the calls made from 2 s after the restart succeed, on the same `DbManager`; every unit of work (a user and two
/// ledger rows) landed whole or not at all; and no session is left idle inside a transaction.
#[cfg(feature = "diesel")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_32_tasks_recovers_with_no_partial_unit_of_work() {
    use cpc_adapters::diesel::DbManager;
    use cpc_adapters::diesel::migrations::{self, MigrationTarget};
    use cpc_adapters::pool::PoolConfig;
    use cpc_adapters::postgres::PgConfig;
    use cpc_domain::{Money, NewTransaction, NewUser, TransactionKind};
    use cpc_ports::{RepoError, UnitOfWorkExt};
    use cpc_test_servers::PrivatePostgres;

    const TIMEOUT: Duration = Duration::from_secs(2);
    let pg = PrivatePostgres::start_default().await;
    let config = PgConfig::from_url(&pg.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let db = Arc::new(
        // A connection per task: a checkout then waits only on the outage, never on the other tasks (on a loaded
        // CI machine, 32 tasks on 8 connections could time out for want of a connection, which is not the fault
        // under test).
        DbManager::postgres(&config, &PoolConfig::default().max_connections(32).connection_timeout(TIMEOUT))
            .await
            .unwrap(),
    );
    let seed = db.users().create(NewUser::new("seed", "seed@example.org").unwrap()).await.unwrap();

    let begun = Instant::now();
    let end = begun + Duration::from_secs(9);
    let tasks: Vec<_> = (0..32usize)
        .map(|t| {
            let (db, seed_id) = (db.clone(), seed.id);
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut n = 0usize;
                while Instant::now() < end {
                    let at = begun.elapsed();
                    let started = Instant::now();
                    let work = async {
                        if t % 2 == 0 {
                            db.users().find_by_id(&seed_id).await.map(drop)
                        } else {
                            let uow = db.unit_of_work();
                            uow.run(|tx| {
                                Box::pin(async move {
                                    let name = format!("w{t}n{n}");
                                    let user =
                                        tx.users().create(NewUser::new(&name, &format!("{name}@example.org"))?).await?;
                                    for cents in [100, 250] {
                                        let entry = NewTransaction::new(
                                            user.id,
                                            Money::new(cents, "EUR")?,
                                            TransactionKind::Credit,
                                            "fault test",
                                            chrono::Utc::now(),
                                        )?;
                                        tx.transactions().create(entry).await?;
                                    }
                                    Ok::<(), RepoError>(())
                                })
                            })
                            .await
                        }
                    };
                    let result = tokio::time::timeout(Duration::from_secs(10), work)
                        .await
                        .unwrap_or_else(|_| panic!("task {t}, call {n} hung"));
                    calls.push(Call { at, took: started.elapsed(), ok: result.is_ok() });
                    n += 1;
                    if result.is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                calls
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop().await;
    let stopped = begun.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.start().await;
    let restarted = begun.elapsed();

    let mut calls = Vec::new();
    for task in tasks {
        calls.extend(task.await.expect("no task panicked"));
    }
    let slowest = calls.iter().map(|c| c.took).max().unwrap();
    assert!(slowest <= TIMEOUT + Duration::from_secs(1), "a call took {slowest:?}");
    let settled: Vec<&Call> = calls.iter().filter(|c| c.at >= restarted + Duration::from_secs(2)).collect();
    let settled_ok = settled.iter().filter(|c| c.ok).count();
    assert!(!settled.is_empty());
    let share = settled_ok as f64 / settled.len() as f64;
    assert!(share >= 0.99, "{settled_ok} of {} calls from 2 s after the restart succeeded", settled.len());

    // Every unit of work landed whole: each user it created has exactly its two ledger rows.
    let admin = pg.admin_client().await;
    let partial: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT u.id FROM users u LEFT JOIN transactions t ON t.user_id = u.id \
             WHERE u.username <> 'seed' GROUP BY u.id HAVING count(t.id) <> 2) AS p",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let whole: i64 = admin.query_one("SELECT count(*) FROM users WHERE username <> 'seed'", &[]).await.unwrap().get(0);
    assert_eq!(partial, 0, "units of work cut by the stop left partial rows");
    assert!(whole > 0);
    let idle_in_tx: i64 = admin
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(idle_in_tx, 0, "a connection was left (or reused) inside a transaction");
    eprintln!(
        "postgres stop under 32 tasks: {} calls; stopped at {stopped:?}, started at {restarted:?}; {settled_ok} of {} ok \
         from 2 s after the restart ({:.2}%); {whole} units of work landed whole, 0 partial; slowest call {slowest:?}",
        calls.len(),
        settled.len(),
        share * 100.0
    );
}
