//! The unit-of-work contract against the in-memory store, plus behaviour specific to the fake.

use std::sync::Arc;

use cpc_testkit::contract::repository::DataPorts;
use cpc_testkit::memory::InMemoryDatabase;

/// The whole suite, through `Arc<dyn ...>` ports.
mod dyn_ports {
    use super::*;

    cpc_testkit::uow_contract!(async { Arc::new(DataPorts::from(&InMemoryDatabase::new())) });
}

/// A few generic cases called directly on the concrete types.
mod concrete {
    use cpc_testkit::contract::uow::{concurrency, failures, visibility};
    use cpc_testkit::memory::InMemoryDatabase;

    #[tokio::test]
    async fn writes_are_invisible_outside_before_commit() {
        let db = InMemoryDatabase::new();
        visibility::writes_are_invisible_outside_before_commit(&db.unit_of_work(), &db.users(), &db.transactions())
            .await;
    }

    #[tokio::test]
    async fn an_error_inside_run_rolls_back_every_write() {
        let db = InMemoryDatabase::new();
        failures::an_error_inside_run_rolls_back_every_write(&db.unit_of_work(), &db.users(), &db.transactions()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_units_taking_the_same_email_commit_exactly_once() {
        let db = InMemoryDatabase::new();
        let uow = db.unit_of_work();
        concurrency::concurrent_units_taking_the_same_email_commit_exactly_once(&uow, &db.users(), &db.transactions())
            .await;
    }
}

/// Behaviour of the fake beyond the contract: READ COMMITTED visibility, commit-time checks, no deadlocks.
mod fake {
    use std::time::Duration;

    use cpc_domain::{Money, NewTransaction, NewUser, TransactionKind, UpdateUser, Version};
    use cpc_ports::{ConflictKind, RepoError, Repository, UnitOfWork, UserRepository};
    use cpc_testkit::memory::InMemoryDatabase;

    fn user(name: &str) -> NewUser {
        NewUser::new(name, &format!("{name}@example.org")).expect("valid user")
    }

    fn credit(user: cpc_domain::UserId) -> NewTransaction {
        let one = Money::new(1, "EUR").expect("valid money");
        NewTransaction::new(user, one, TransactionKind::Credit, "", chrono::Utc::now()).expect("valid transaction")
    }

    #[tokio::test]
    async fn a_commit_that_lost_a_race_for_an_email_fails_and_applies_nothing() {
        let db = InMemoryDatabase::new();
        let uow = db.unit_of_work();
        let (first, second) = (uow.begin().await.unwrap(), uow.begin().await.unwrap());
        first.users().create(user("ada")).await.unwrap();
        let bob = second.users().create(user("bob")).await.unwrap();
        second.users().create(NewUser::new("ada2", "ADA@example.org").unwrap()).await.unwrap();
        first.commit().await.unwrap();
        match second.commit().await {
            Err(RepoError::Conflict { entity: "user", kind: ConflictKind::Duplicate { field } }) => {
                assert_eq!(field, "email")
            }
            other => panic!("expected a duplicate e-mail at commit, got {other:?}"),
        }
        assert!(!db.users().exists(&bob.id).await.unwrap(), "nothing of the failed commit was applied");
    }

    #[tokio::test]
    async fn a_commit_after_a_concurrent_update_of_the_same_row_is_a_retryable_conflict() {
        let db = InMemoryDatabase::new();
        let ada = db.users().create(user("ada")).await.unwrap();
        let tx = db.unit_of_work().begin().await.unwrap();
        tx.users().update(&ada.id, Version::FIRST, UpdateUser::default()).await.unwrap();
        db.users().update(&ada.id, Version::FIRST, UpdateUser::default()).await.unwrap();
        let err = tx.users().find_by_id(&ada.id).await.unwrap_err();
        assert!(err.is_retryable(), "the unit is doomed by the concurrent update: {err:?}");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, RepoError::Conflict { kind: ConflictKind::Concurrent, .. }), "{err:?}");
        assert_eq!(db.users().find_by_id(&ada.id).await.unwrap().unwrap().version, Version::new(2));
    }

    #[tokio::test]
    async fn a_transaction_sees_what_others_committed_after_it_began() {
        let db = InMemoryDatabase::new();
        let tx = db.unit_of_work().begin().await.unwrap();
        let early = tx.users().create(user("early")).await.unwrap();
        // Non-transactional writes while a unit is open neither block nor deadlock.
        let late = db.users().create(user("late")).await.unwrap();
        assert!(tx.users().exists(&late.id).await.unwrap(), "READ COMMITTED: the later commit is visible");
        assert!(tx.users().exists(&early.id).await.unwrap(), "own writes survive the refresh");
        tx.transactions().create(credit(late.id)).await.expect("references see the later commit");
        tx.commit().await.unwrap();
        assert_eq!(db.users().count(&[]).await.unwrap(), 2);
        assert_eq!(db.transactions().count(&[]).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn deleting_a_user_outside_dooms_a_unit_that_refers_to_it() {
        let db = InMemoryDatabase::new();
        let ada = db.users().create(user("ada")).await.unwrap();
        let tx = db.unit_of_work().begin().await.unwrap();
        tx.transactions().create(credit(ada.id)).await.unwrap();
        assert!(db.users().delete(&ada.id).await.unwrap(), "the committed state has no transaction yet");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(&err, RepoError::Validation(e) if e.field == "user_id"), "a missing reference: {err:?}");
        assert_eq!(db.transactions().count(&[]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_unit_without_writes_commits_trivially_and_a_second_finish_is_refused() {
        let db = InMemoryDatabase::new();
        let tx = db.unit_of_work().begin().await.unwrap();
        let users = tx.users();
        assert_eq!(users.count(&[]).await.unwrap(), 0);
        tx.commit().await.unwrap();
        assert!(matches!(users.count(&[]).await, Err(RepoError::TransactionFinished)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_mixing_units_and_plain_writes_neither_deadlock_nor_lose_rows() {
        let db = InMemoryDatabase::new();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        let name = format!("u{t}-{i}");
                        if i % 2 == 0 {
                            let tx = db.unit_of_work().begin().await.unwrap();
                            let u = tx.users().create(user(&name)).await.unwrap();
                            tx.transactions().create(credit(u.id)).await.unwrap();
                            db.users().count(&[]).await.unwrap();
                            tx.commit().await.unwrap();
                        } else {
                            db.users().create(user(&name)).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        let all = futures::future::join_all(tasks);
        for joined in tokio::time::timeout(Duration::from_secs(20), all).await.expect("no deadlock") {
            joined.unwrap();
        }
        assert_eq!(db.users().count(&[]).await.unwrap(), 200);
        assert_eq!(db.transactions().count(&[]).await.unwrap(), 104);
        let _: &dyn UserRepository = &db.users();
    }
}
