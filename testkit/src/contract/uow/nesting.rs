//! Cases on nested transactions ([`Tx::savepoint`](cpc_ports::Tx::savepoint), [`TxExt::nested`]): a nested commit keeps its writes in the
//! enclosing transaction, a nested rollback or drop undoes exactly its own, only the innermost open level may be
//! used, and a failed statement inside a nested level leaves the enclosing one usable.

use std::panic::AssertUnwindSafe;

use cpc_domain::{Email, NewCustomer, NewEntity, NewUser, UpdateUser, User, UserId, Version};
use cpc_ports::{
    ConflictKind, EntityField, Query, RepoError, TransactionRepository, TxExt, UnitOfWork, UserRepository,
};
use futures::FutureExt;

use super::{Abandon, assert_deliberate_panic, create_then_panic};

use crate::contract::repository::fixtures::{Names, at_hour, entry};

async fn present<U: UserRepository + ?Sized>(users: &U, id: &UserId, what: &str) {
    assert!(users.exists(id).await.expect("exists"), "{what}: expected present");
}

async fn absent<U: UserRepository + ?Sized>(users: &U, id: &UserId, what: &str) {
    assert!(!users.exists(id).await.expect("exists"), "{what}: expected absent");
}

#[track_caller]
fn assert_finished<T: std::fmt::Debug>(result: Result<T, RepoError>, what: &str) {
    assert!(
        matches!(result, Err(RepoError::TransactionFinished)),
        "{what}: expected TransactionFinished, got {result:?}"
    );
}

#[track_caller]
fn assert_nested_open<T: std::fmt::Debug>(result: Result<T, RepoError>, what: &str) {
    assert!(
        matches!(result, Err(RepoError::NestedTransactionOpen)),
        "{what}: expected NestedTransactionOpen, got {result:?}"
    );
}

/// Rolling back a nested transaction undoes its writes only: the enclosing one keeps its earlier writes, stays
/// usable, and commits them; the nested one's unique values are free again.
pub async fn a_nested_rollback_keeps_the_outer_writes<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_nested_rollback_keeps_the_outer_writes");
    let tx = uow.begin().await.expect("begin");
    let a = tx.users().create(names.user(1)).await.expect("create in the outer tx");
    let inner = tx.savepoint().await.expect("savepoint");
    let b = inner.users().create(names.user(2)).await.expect("create in the nested tx");
    let t = inner.transactions().create(entry(a.id, 100, at_hour(0))).await.expect("transaction in the nested tx");
    let renamed = UpdateUser { username: None, email: Some(Email::parse(&names.email(9)).expect("email")) };
    inner.users().update(&a.id, Version::FIRST, renamed).await.expect("update the outer's row in the nested tx");
    inner.rollback().await.expect("nested rollback");

    let outer_users = tx.users();
    assert_eq!(outer_users.find_by_id(&a.id).await.expect("find"), Some(a.clone()), "the outer's row, unchanged");
    absent(&*outer_users, &b.id, "the nested create, inside the outer").await;
    assert!(!tx.transactions().exists(&t.id).await.expect("exists"), "the nested transaction row is gone");
    let c = outer_users.create(names.user(3)).await.expect("the outer tx is still usable");
    tx.commit().await.expect("commit");

    present(users, &a.id, "the outer's earlier write").await;
    present(users, &c.id, "the outer's later write").await;
    absent(users, &b.id, "the rolled-back nested write").await;
    assert!(!transactions.exists(&t.id).await.expect("exists"), "the rolled-back nested transaction row");
    users.create(names.user(2)).await.expect("the nested user's username and e-mail are free again");
}

/// A committed nested transaction's writes belong to the enclosing one: rolling that back discards them too.
pub async fn a_nested_commit_then_outer_rollback_keeps_nothing<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_nested_commit_then_outer_rollback_keeps_nothing");
    let tx = uow.begin().await.expect("begin");
    let a = tx.users().create(names.user(1)).await.expect("create in the outer tx");
    let inner = tx.savepoint().await.expect("savepoint");
    let b = inner.users().create(names.user(2)).await.expect("create in the nested tx");
    let t = inner.transactions().create(entry(b.id, 100, at_hour(0))).await.expect("transaction in the nested tx");
    inner.commit().await.expect("nested commit");
    present(&*tx.users(), &b.id, "the released write, inside the outer").await;
    absent(users, &b.id, "the released write, outside before the outer commits").await;
    tx.rollback().await.expect("outer rollback");

    absent(users, &a.id, "the outer's write").await;
    absent(users, &b.id, "the nested committed write").await;
    assert!(!transactions.exists(&t.id).await.expect("exists"), "the nested committed transaction row");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 0, "nothing was kept");
}

/// Nested commit then outer commit keeps everything, and nothing is visible outside before the outer commits.
pub async fn a_nested_commit_then_outer_commit_keeps_everything<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_nested_commit_then_outer_commit_keeps_everything");
    let tx = uow.begin().await.expect("begin");
    let a = tx.users().create(names.user(1)).await.expect("create in the outer tx");
    let inner = tx.savepoint().await.expect("savepoint");
    let b = inner.users().create(names.user(2)).await.expect("create in the nested tx");
    let t = inner.transactions().create(entry(a.id, 100, at_hour(0))).await.expect("transaction in the nested tx");
    let updated = inner.users().update(&a.id, Version::FIRST, UpdateUser::default()).await.expect("update");
    inner.commit().await.expect("nested commit");
    absent(users, &b.id, "the nested write, outside before the outer commits").await;
    let after = tx.users().find_by_id(&a.id).await.expect("find");
    assert_eq!(after, Some(updated.clone()), "the nested update, inside the outer");
    tx.commit().await.expect("outer commit");

    assert_eq!(users.find_by_id(&a.id).await.expect("find"), Some(updated), "the outer's row, as updated");
    present(users, &b.id, "the nested write").await;
    assert!(transactions.exists(&t.id).await.expect("exists"), "the nested transaction row");
}

/// Dropping a nested transaction without finishing it rolls back to its savepoint: its repositories fail with
/// `TransactionFinished`, the enclosing transaction goes on and commits its own writes.
pub async fn a_dropped_nested_transaction_rolls_back_to_its_savepoint<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_dropped_nested_transaction_rolls_back_to_its_savepoint");
    let tx = uow.begin().await.expect("begin");
    let a = tx.users().create(names.user(1)).await.expect("create in the outer tx");
    let inner = tx.savepoint().await.expect("savepoint");
    let kept = inner.users();
    let b = kept.create(names.user(2)).await.expect("create in the nested tx");
    drop(inner);
    assert_finished(kept.find_by_id(&b.id).await, "a repository of the dropped nested tx");
    absent(&*tx.users(), &b.id, "the dropped nested write, inside the outer").await;
    let c = tx.users().create(names.user(3)).await.expect("the outer tx is still usable");
    tx.commit().await.expect("commit");

    present(users, &a.id, "the outer's earlier write").await;
    present(users, &c.id, "the outer's later write").await;
    absent(users, &b.id, "the dropped nested write").await;
}

/// Two levels of nesting unwind one at a time: rolling back the inner one keeps the middle one's writes; a
/// committed inner one goes with the middle one when that rolls back.
pub async fn two_levels_of_nesting_unwind_one_at_a_time<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("two_levels_of_nesting_unwind_one_at_a_time");
    let tx = uow.begin().await.expect("begin");
    let a = tx.users().create(names.user(1)).await.expect("level 1");

    let middle = tx.savepoint().await.expect("level 2");
    let b = middle.users().create(names.user(2)).await.expect("create at level 2");
    let inner = middle.savepoint().await.expect("level 3");
    let c = inner.users().create(names.user(3)).await.expect("create at level 3");
    inner.rollback().await.expect("roll back level 3");
    present(&*middle.users(), &b.id, "level 2's write, after level 3 rolled back").await;
    absent(&*middle.users(), &c.id, "level 3's rolled-back write").await;
    middle.commit().await.expect("commit level 2");

    let middle = tx.savepoint().await.expect("level 2 again");
    let inner = middle.savepoint().await.expect("level 3 again");
    let d = inner.users().create(names.user(4)).await.expect("create at level 3");
    inner.commit().await.expect("commit level 3");
    present(&*middle.users(), &d.id, "level 3's committed write, at level 2").await;
    middle.rollback().await.expect("roll back level 2");
    absent(&*tx.users(), &d.id, "level 3's write, gone with level 2").await;

    tx.commit().await.expect("commit");
    present(users, &a.id, "level 1's write").await;
    present(users, &b.id, "level 2's committed write").await;
    absent(users, &c.id, "level 3's rolled-back write").await;
    absent(users, &d.id, "the write of a level 3 whose level 2 rolled back").await;
}

/// Repositories handed out by a committed or rolled-back nested transaction fail with `TransactionFinished`, for
/// reads and writes, on every repository; so do those of a nested transaction whose enclosing one finished.
pub async fn repositories_of_a_finished_nested_transaction_fail<W, U, X>(uow: &W, _users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("repositories_of_a_finished_nested_transaction_fail");
    let tx = uow.begin().await.expect("begin");
    let user = tx.users().create(names.user(0)).await.expect("create in the outer tx");
    for commit in [true, false] {
        let inner = tx.savepoint().await.expect("savepoint");
        let (users, entities, customers, transactions) =
            (inner.users(), inner.entities(), inner.customers(), inner.transactions());
        users.create(names.user(1 + usize::from(commit))).await.expect("create in the nested tx");
        if commit {
            inner.commit().await.expect("commit");
        } else {
            inner.rollback().await.expect("rollback");
        }
        let what = |op: &str| format!("{op} (commit: {commit})");
        assert_finished(users.find_by_id(&user.id).await, &what("users.find_by_id"));
        assert_finished(users.create(names.user(5)).await, &what("users.create"));
        let update = users.update(&user.id, Version::FIRST, UpdateUser::default()).await;
        assert_finished(update, &what("users.update"));
        let email = Email::parse(&names.email(5)).expect("email");
        assert_finished(customers.find_by_email(&email).await, &what("customers.find_by_email"));
        let customer = NewCustomer::new(&names.email(6), "Late", None).expect("customer");
        assert_finished(customers.create(customer).await, &what("customers.create"));
        assert_finished(entities.find_page(&Query::<EntityField>::new()).await, &what("entities.find_page"));
        let entity = NewEntity::new("late", "Late", serde_json::json!({})).expect("entity");
        assert_finished(entities.create(entity).await, &what("entities.create"));
        assert_finished(transactions.count(&[]).await, &what("transactions.count"));
        assert_finished(transactions.create(entry(user.id, 1, at_hour(0))).await, &what("transactions.create"));
    }
    let inner = tx.savepoint().await.expect("savepoint");
    let orphan = inner.users();
    assert_nested_open(tx.users().count(&[]).await, "the outer tx while its nested tx is open");
    tx.rollback().await.expect("rolling back the outer tx rolls back the nested one too");
    assert_finished(orphan.count(&[]).await, "a repository of a nested tx whose outer tx rolled back");
    assert_finished(inner.commit().await, "committing a nested tx whose outer tx rolled back");
}

/// Only the innermost open transaction may be used: while a nested one is open, the enclosing one's
/// repositories and `savepoint` fail with `NestedTransactionOpen` (and write nothing); once it is finished the
/// enclosing one works again. Committing the enclosing one while a nested one is open fails the same way and
/// keeps nothing.
pub async fn only_the_innermost_open_transaction_may_be_used<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("only_the_innermost_open_transaction_may_be_used");
    let tx = uow.begin().await.expect("begin");
    let outer_users = tx.users();
    let a = outer_users.create(names.user(1)).await.expect("create in the outer tx");
    let inner = tx.savepoint().await.expect("savepoint");
    assert_nested_open(outer_users.create(names.user(2)).await, "an outer write while a nested tx is open");
    assert_nested_open(outer_users.find_by_id(&a.id).await, "an outer read while a nested tx is open");
    assert_nested_open(tx.savepoint().await.map(drop), "a second savepoint of the outer tx");
    let b = inner.users().create(names.user(3)).await.expect("the nested tx works");
    inner.commit().await.expect("nested commit");
    let c = outer_users.create(names.user(2)).await.expect("the outer tx works again");
    tx.commit().await.expect("commit");
    for (id, what) in [(a.id, "a"), (b.id, "b"), (c.id, "c")] {
        present(users, &id, what).await;
    }

    let tx = uow.begin().await.expect("begin");
    let d = tx.users().create(names.user(4)).await.expect("create in the outer tx");
    let inner = tx.savepoint().await.expect("savepoint");
    let nested_users = inner.users();
    let e = nested_users.create(names.user(5)).await.expect("create in the nested tx");
    assert_nested_open(tx.commit().await, "committing the outer tx while a nested tx is open");
    assert_finished(nested_users.count(&[]).await, "the nested tx of an outer tx whose commit failed");
    drop(inner);
    absent(users, &d.id, "the outer write of a failed commit").await;
    absent(users, &e.id, "the nested write of a failed commit").await;
}

/// A unique violation inside a nested transaction fails that statement only: the nested transaction stays
/// usable, and after rolling it back the enclosing one goes on and commits its own writes. (PostgreSQL aborts the
/// whole transaction on an error unless it happened inside a savepoint.)
pub async fn a_unique_violation_inside_a_nested_transaction_leaves_the_outer_usable<W, U, X>(
    uow: &W,
    users: &U,
    _transactions: &X,
) where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_unique_violation_inside_a_nested_transaction_leaves_the_outer_usable");
    let tx = uow.begin().await.expect("begin");
    let a = tx.users().create(names.user(1)).await.expect("create in the outer tx");
    let inner = tx.savepoint().await.expect("savepoint");
    let clash = NewUser::new(&names.username(2), &names.email(1).to_uppercase()).expect("user");
    match inner.users().create(clash).await {
        Err(RepoError::Conflict { entity: "user", kind: ConflictKind::Duplicate { field } }) => {
            assert_eq!(field, "email", "the conflict names the field")
        }
        other => panic!("expected a duplicate e-mail conflict, got {other:?}"),
    }
    let b = inner.users().create(names.user(3)).await.expect("the nested tx is still usable");
    inner.rollback().await.expect("nested rollback");
    let c = tx.users().create(names.user(4)).await.expect("the outer tx is still usable");
    tx.commit().await.expect("commit");

    present(users, &a.id, "the outer's earlier write").await;
    present(users, &c.id, "the outer's later write").await;
    absent(users, &b.id, "the rolled-back nested write").await;
}

/// `TxExt::nested` commits the nested transaction when its closure returns `Ok` (returning the value), rolls it
/// back when the closure returns `Err` (returning the error) or panics (the panic propagates); either way the
/// enclosing transaction goes on with its own writes.
pub async fn nested_runs_commit_on_ok_and_roll_back_on_err_or_panic<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("nested_runs_commit_on_ok_and_roll_back_on_err_or_panic");
    let tx = uow.begin().await.expect("begin");
    let a = tx.users().create(names.user(1)).await.expect("create in the outer tx");

    let new = names.user(2);
    let b: User = tx.nested(|inner| Box::pin(async move { inner.users().create(new).await })).await.expect("nested Ok");

    let new = names.user(3);
    let failed: Result<(), Abandon> = tx
        .nested(|inner| {
            Box::pin(async move {
                inner.users().create(new).await?;
                Err(Abandon::OnPurpose)
            })
        })
        .await;
    assert!(matches!(failed, Err(Abandon::OnPurpose)), "nested returns the closure's error, got {failed:?}");

    let new = names.user(4);
    let unwound = AssertUnwindSafe(tx.nested(|inner| Box::pin(create_then_panic(inner, new)))).catch_unwind().await;
    assert_deliberate_panic(unwound);

    let c = tx.users().create(names.user(5)).await.expect("the outer tx is still usable");
    tx.commit().await.expect("commit");
    present(users, &a.id, "the outer's earlier write").await;
    present(users, &b.id, "the write of the nested closure that returned Ok").await;
    present(users, &c.id, "the outer's later write").await;
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 3, "the failed and panicked writes are gone");
    for i in [3, 4] {
        let email = Email::parse(&names.email(i)).expect("email");
        assert_eq!(users.find_by_email(&email).await.expect("find"), None, "user {i} was rolled back");
    }
}
