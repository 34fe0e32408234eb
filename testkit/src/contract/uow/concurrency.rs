//! Cases on units of work running side by side or one after another.

use cpc_domain::{Email, NewUser, UpdateUser, Version};
use cpc_ports::{
    ConflictKind, Filter, RepoError, TransactionField, TransactionRepository, UnitOfWork, UnitOfWorkExt,
    UserRepository, Value,
};
use futures::future::join_all;

use crate::contract::repository::fixtures::{Names, at_hour, entry};

/// Several units creating users with the same e-mail at the same time: exactly one commits; the others fail
/// with a conflict (a duplicate, or a retryable concurrency conflict) and leave nothing behind.
pub async fn concurrent_units_taking_the_same_email_commit_exactly_once<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("concurrent_units_taking_the_same_email_commit_exactly_once");
    let contenders = (0..4).map(|i| {
        let new = NewUser::new(&names.username(i), &names.email(0)).expect("user");
        uow.run(move |tx| {
            Box::pin(async move {
                let user = tx.users().create(new).await?;
                // Let the other units run their statements before this one commits.
                tokio::task::yield_now().await;
                Ok::<_, RepoError>(user)
            })
        })
    });
    let outcomes = join_all(contenders).await;
    let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one unit commits: {outcomes:?}");
    for outcome in &outcomes {
        if let Err(e) = outcome {
            let expected = matches!(
                e,
                RepoError::Conflict { entity: "user", kind: ConflictKind::Duplicate { field } } if field == "email"
            ) || matches!(e, RepoError::Conflict { kind: ConflictKind::Concurrent, .. });
            assert!(expected, "losers fail with a conflict, got {e:?}");
        }
    }
    let email = Email::parse(&names.email(0)).expect("email");
    let holder = users.find_by_email(&email).await.expect("find").expect("the winner's user");
    assert_eq!(holder.id, winners[0].id, "the winner holds the e-mail");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 1, "the losers left nothing");
}

/// Many units one after another, some failing: committed counts are exact, and a version bumped once per unit
/// ends where it should.
pub async fn sequential_units_keep_counts_exact<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("sequential_units_keep_counts_exact");
    let counter = users.create(names.user(999)).await.expect("create");
    let mut committed = 0u64;
    for round in 0..24usize {
        let new = names.user(round);
        let counter_id = counter.id;
        let fail = round % 3 == 2;
        let outcome = uow
            .run(|tx| {
                Box::pin(async move {
                    let user = tx.users().create(new).await?;
                    let repo = tx.transactions();
                    repo.create(entry(user.id, 100, at_hour(0))).await?;
                    repo.create(entry(counter_id, 1, at_hour(1))).await?;
                    let current = tx
                        .users()
                        .find_by_id(&counter_id)
                        .await?
                        .ok_or_else(|| RepoError::NotFound { entity: "user", id: counter_id.to_string() })?;
                    tx.users().update(&counter_id, current.version, UpdateUser::default()).await?;
                    if fail {
                        return Err(RepoError::Validation(cpc_domain::ValidationError::new("round", "fails")));
                    }
                    Ok(())
                })
            })
            .await;
        assert_eq!(outcome.is_err(), fail, "round {round}: {outcome:?}");
        committed += u64::from(!fail);
    }
    assert_eq!(committed, 16, "fixture: 16 of 24 rounds commit");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), committed + 1, "users");
    let counter_rows = Filter::Eq(TransactionField::UserId, Value::Uuid(*counter.id.as_uuid()));
    assert_eq!(transactions.count(&[counter_rows]).await.expect("count"), committed, "transactions");
    let last = users.find_by_id(&counter.id).await.expect("find").expect("counter");
    assert_eq!(last.version, Version::new(1 + committed as i64), "one version per committed unit");
}
