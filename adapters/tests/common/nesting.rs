//! A check both Diesel suites run on a one-connection pool: however a unit of work with nested transactions
//! ends (commits and rollbacks at each level, dropped levels, a commit refused while a nested level is open), the
//! savepoint bookkeeping matches the connection's, so the connection comes back outside any transaction and is
//! reused: none is discarded as broken, none is opened anew. Include with
//! `#[path = "common/nesting.rs"] mod nesting;`.

use std::time::Duration;

use cpc_adapters::pool::{Backend, Pool};
use cpc_domain::NewUser;
use cpc_ports::{RepoError, Tx, UnitOfWork, UserRepository};

fn user(i: usize) -> NewUser {
    NewUser::new(&format!("nested-{i:02}"), &format!("nested-{i:02}@example.org")).unwrap()
}

/// Waits until the unit's connection is back in the pool (a dropped `Tx` rolls back on a spawned task).
async fn returned<B: Backend>(pool: &Pool<B>) {
    for _ in 0..200 {
        if pool.state().in_use == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the unit's connection was not returned: {:?}", pool.state());
}

/// One unit: the outer level writes user `i`, a nested level user `i + 1`; `end` finishes them.
async fn unit<F>(uow: &dyn UnitOfWork, i: usize, end: F)
where
    F: FnOnce(Box<dyn Tx>, Box<dyn Tx>) -> futures::future::BoxFuture<'static, ()>,
{
    let tx = uow.begin().await.unwrap();
    tx.users().create(user(i)).await.unwrap();
    let inner = tx.savepoint().await.unwrap();
    inner.users().create(user(i + 1)).await.unwrap();
    end(tx, inner).await;
}

/// Runs every ending on `uow`, whose pool is `pool` (at most one connection), and checks the connection is reused
/// and exactly the committed users are stored.
pub async fn every_ending_reuses_the_connection<B: Backend>(
    uow: &dyn UnitOfWork,
    users: &dyn UserRepository,
    pool: &Pool<B>,
) {
    assert_eq!(pool.state().max, 1, "the check needs a one-connection pool");
    users.count(&[]).await.unwrap();
    let before = pool.metrics();
    let mut kept = Vec::new();

    // Nested commit, outer commit: both kept.
    unit(uow, 0, |tx, inner| {
        Box::pin(async move {
            inner.commit().await.unwrap();
            tx.commit().await.unwrap();
        })
    })
    .await;
    kept.extend([0, 1]);
    // Nested rollback, outer commit.
    unit(uow, 10, |tx, inner| {
        Box::pin(async move {
            inner.rollback().await.unwrap();
            tx.commit().await.unwrap();
        })
    })
    .await;
    kept.push(10);
    // Nested dropped, nothing run after it, outer commit.
    unit(uow, 20, |tx, inner| {
        Box::pin(async move {
            drop(inner);
            tx.commit().await.unwrap();
        })
    })
    .await;
    kept.push(20);
    // Nested dropped, outer rollback.
    unit(uow, 30, |tx, inner| {
        Box::pin(async move {
            drop(inner);
            tx.rollback().await.unwrap();
        })
    })
    .await;
    // Nested open, outer commit: refused, everything rolled back.
    unit(uow, 40, |tx, inner| {
        Box::pin(async move {
            assert!(matches!(tx.commit().await, Err(RepoError::NestedTransactionOpen)));
            drop(inner);
        })
    })
    .await;
    // Nested open, outer rollback.
    unit(uow, 50, |tx, inner| {
        Box::pin(async move {
            tx.rollback().await.unwrap();
            assert!(matches!(inner.rollback().await, Err(RepoError::TransactionFinished)));
        })
    })
    .await;
    // Nested open, outer dropped.
    unit(uow, 60, |tx, inner| {
        Box::pin(async move {
            drop(tx);
            drop(inner);
        })
    })
    .await;
    returned(pool).await;
    // Nested committed, outer dropped.
    unit(uow, 70, |tx, inner| {
        Box::pin(async move {
            inner.commit().await.unwrap();
            drop(tx);
        })
    })
    .await;
    returned(pool).await;
    // Two levels: the innermost dropped, the middle one committed, the outer committed.
    unit(uow, 80, |tx, inner| {
        Box::pin(async move {
            let innermost = inner.savepoint().await.unwrap();
            innermost.users().create(user(82)).await.unwrap();
            drop(innermost);
            inner.commit().await.unwrap();
            tx.commit().await.unwrap();
        })
    })
    .await;
    kept.extend([80, 81]);
    returned(pool).await;

    let after = pool.metrics();
    assert_eq!(after.closed_broken, before.closed_broken, "no connection was discarded as broken");
    assert_eq!(after.created, before.created, "no connection was opened anew");
    let stored = users.count(&[]).await.unwrap();
    assert_eq!(stored, kept.len() as u64, "exactly the committed users are stored (users {kept:?})");
    for i in kept {
        let email = cpc_domain::Email::parse(&format!("nested-{i:02}@example.org")).unwrap();
        assert!(users.find_by_email(&email).await.unwrap().is_some(), "user {i} was committed");
    }
}
