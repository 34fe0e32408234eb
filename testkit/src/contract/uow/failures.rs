//! Cases on units of work that fail: errors and panics inside `run`, conflicts, and using a finished `Tx`.

use std::panic::AssertUnwindSafe;

use cpc_domain::{Email, NewCustomer, NewEntity, NewUser, UpdateUser, Username, ValidationError, Version};
use cpc_ports::{
    ConflictKind, EntityField, Query, RepoError, TransactionRepository, UnitOfWork, UnitOfWorkExt, UserRepository,
};
use futures::FutureExt;

use super::{Abandon, assert_deliberate_panic, create_then_panic};

use crate::contract::repository::fixtures::{Names, at_hour, entry};

/// When the closure of `run` returns an error, `run` returns it and every write of the unit is undone: creates
/// of users and transactions, and an update of a user that existed before.
pub async fn an_error_inside_run_rolls_back_every_write<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("an_error_inside_run_rolls_back_every_write");
    let existing = users.create(names.user(0)).await.expect("create");
    let (a, b) = (names.user(1), names.user(2));
    let rename = UpdateUser { username: Some(Username::parse(&names.username(9)).expect("name")), email: None };
    let outcome: Result<(), Abandon> = uow
        .run(|tx| {
            Box::pin(async move {
                let a = tx.users().create(a).await?;
                let b = tx.users().create(b).await?;
                let repo = tx.transactions();
                for (user, minor) in [(a.id, 100), (b.id, 200), (existing.id, 300)] {
                    repo.create(entry(user, minor, at_hour(0))).await?;
                }
                tx.users().update(&existing.id, Version::FIRST, rename).await?;
                Err(Abandon::OnPurpose)
            })
        })
        .await;
    assert!(matches!(outcome, Err(Abandon::OnPurpose)), "run returns the closure's error, got {outcome:?}");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 1, "only the user from before remains");
    let kept = users.find_by_id(&existing.id).await.expect("find");
    assert_eq!(kept, Some(existing.clone()), "the update was rolled back");
    let mine = cpc_ports::Filter::Eq(cpc_ports::TransactionField::UserId, (*existing.id.as_uuid()).into());
    assert_eq!(transactions.count(&[mine]).await.expect("count"), 0, "no transaction was kept");
}

/// A panic inside `run` rolls the unit back and keeps unwinding to the caller.
pub async fn a_panic_inside_run_rolls_back_and_propagates<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_panic_inside_run_rolls_back_and_propagates");
    let new = names.user(1);
    let unwound = AssertUnwindSafe(uow.run(|tx| Box::pin(create_then_panic(tx, new)))).catch_unwind().await;
    assert_deliberate_panic(unwound);
    let email = Email::parse(&names.email(1)).expect("email");
    assert_eq!(users.find_by_email(&email).await.expect("find"), None, "the panicking unit was rolled back");
    users.create(names.user(1)).await.expect("its username and e-mail are free again");
}

/// A conflict inside a unit (here a duplicate e-mail) reaches the caller of `run` unchanged, and the unit's
/// earlier writes are not kept.
pub async fn a_conflict_inside_a_transaction_surfaces_and_nothing_is_kept<W, U, X>(
    uow: &W,
    users: &U,
    _transactions: &X,
) where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_conflict_inside_a_transaction_surfaces_and_nothing_is_kept");
    users.create(names.user(0)).await.expect("create");
    let first = names.user(1);
    let clash = NewUser::new(&names.username(2), &names.email(0).to_uppercase()).expect("user");
    let outcome = uow
        .run(|tx| {
            Box::pin(async move {
                tx.users().create(first).await?;
                tx.users().create(clash).await?;
                Ok::<_, RepoError>(())
            })
        })
        .await;
    match outcome {
        Err(RepoError::Conflict { entity: "user", kind: ConflictKind::Duplicate { field } }) => {
            assert_eq!(field, "email", "the conflict names the field")
        }
        other => panic!("expected a duplicate e-mail conflict, got {other:?}"),
    }
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 1, "the unit's first user was not kept");
}

/// Repositories handed out by a committed or rolled-back `Tx` fail with `TransactionFinished`, for reads and
/// writes, on every repository.
pub async fn repositories_of_a_finished_transaction_fail<W, U, X>(uow: &W, _users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("repositories_of_a_finished_transaction_fail");
    for commit in [true, false] {
        let tx = uow.begin().await.expect("begin");
        let (users, entities, customers, transactions) = (tx.users(), tx.entities(), tx.customers(), tx.transactions());
        let user = users.create(names.user(usize::from(commit))).await.expect("create in tx");
        if commit {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
        let finished = |r: Result<(), RepoError>, what: &str| {
            assert!(matches!(r, Err(RepoError::TransactionFinished)), "{what} (commit: {commit}): got {r:?}");
        };
        finished(users.find_by_id(&user.id).await.map(drop), "users.find_by_id");
        finished(users.create(names.user(5)).await.map(drop), "users.create");
        finished(users.update(&user.id, Version::FIRST, UpdateUser::default()).await.map(drop), "users.update");
        let email = Email::parse(&names.email(5)).expect("email");
        finished(customers.find_by_email(&email).await.map(drop), "customers.find_by_email");
        let customer = NewCustomer::new(&names.email(6), "Late", None).expect("customer");
        finished(customers.create(customer).await.map(drop), "customers.create");
        finished(entities.find_page(&Query::<EntityField>::new()).await.map(drop), "entities.find_page");
        let entity = NewEntity::new("late", "Late", serde_json::json!({})).expect("entity");
        finished(entities.create(entity).await.map(drop), "entities.create");
        finished(transactions.count(&[]).await.map(drop), "transactions.count");
        finished(transactions.create(entry(user.id, 1, at_hour(0))).await.map(drop), "transactions.create");
    }
}

/// A unit that fails validation inside `run` after writing keeps nothing (errors from `?` on a non-data call).
pub async fn a_validation_error_inside_run_keeps_nothing<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_validation_error_inside_run_keeps_nothing");
    let first = names.user(1);
    let outcome = uow
        .run(|tx| {
            Box::pin(async move {
                tx.users().create(first).await?;
                let bad: Result<NewUser, ValidationError> = NewUser::new("x", "not an e-mail");
                tx.users().create(bad?).await?;
                Ok::<_, RepoError>(())
            })
        })
        .await;
    assert!(matches!(outcome, Err(RepoError::Validation(_))), "the validation error surfaces, got {outcome:?}");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 0, "nothing was kept");
}
