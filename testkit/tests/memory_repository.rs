//! The repository contract against the in-memory store, plus behaviour specific to the fake.

use std::sync::Arc;

use cpc_testkit::contract::repository::DataPorts;
use cpc_testkit::memory::InMemoryDatabase;

/// The whole suite, through `Arc<dyn ...>` ports.
mod dyn_ports {
    use super::*;

    cpc_testkit::repository_contract!(async { Arc::new(DataPorts::from(&InMemoryDatabase::new())) });
}

/// A few generic cases called directly on the concrete repository types: static dispatch works too.
mod concrete {
    use cpc_testkit::contract::repository::{customers, queries, transactions, users};
    use cpc_testkit::memory::{InMemoryDatabase, InMemoryUserRepository};

    #[tokio::test]
    async fn duplicate_email_in_another_case_is_a_conflict_naming_email() {
        let repo: InMemoryUserRepository = InMemoryDatabase::new().users();
        users::duplicate_email_in_another_case_is_a_conflict_naming_email(&repo).await;
    }

    #[tokio::test]
    async fn stale_version_update_is_refused_and_changes_nothing() {
        users::stale_version_update_is_refused_and_changes_nothing(&InMemoryUserRepository::default()).await;
    }

    #[tokio::test]
    async fn create_many_is_all_or_nothing() {
        users::create_many_is_all_or_nothing(&InMemoryDatabase::new().users()).await;
    }

    #[tokio::test]
    async fn page_sizes_outside_1_to_1000_are_validation_errors() {
        queries::page_sizes_outside_1_to_1000_are_validation_errors(&InMemoryDatabase::new().users()).await;
    }

    #[tokio::test]
    async fn keyset_paging_walks_every_row_once() {
        queries::keyset_paging_walks_every_row_once(&InMemoryDatabase::new().customers()).await;
    }

    #[tokio::test]
    async fn customer_email_is_unique_and_found_ignoring_case() {
        customers::customer_email_is_unique_and_found_ignoring_case(&InMemoryDatabase::new().customers()).await;
    }

    #[tokio::test]
    async fn deleting_a_user_with_transactions_is_a_validation_error_on_user_id() {
        let db = InMemoryDatabase::new();
        let (users, transactions) = (db.users(), db.transactions());
        transactions::deleting_a_user_with_transactions_is_a_validation_error_on_user_id(&users, &transactions).await;
    }
}

/// Behaviour of the fake beyond the contract.
mod fake {
    use chrono::Timelike;
    use cpc_domain::{Money, NewTransaction, NewUser, TransactionKind, UpdateUser, Version};
    use cpc_ports::{Query, RepoError, Repository, UserField};
    use cpc_testkit::memory::{InMemoryDatabase, InMemoryTransactionRepository};

    #[tokio::test]
    async fn repositories_of_one_database_share_rows_and_databases_are_isolated() {
        let (db, other) = (InMemoryDatabase::new(), InMemoryDatabase::new());
        let ada = db.users().create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
        assert!(db.clone().users().exists(&ada.id).await.unwrap(), "a clone shares the rows");
        assert!(!other.users().exists(&ada.id).await.unwrap(), "another database does not");
        other.users().create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
        assert!(format!("{db:?}").contains("user: 1"), "Debug shows row counts per record: {db:?}");
    }

    #[tokio::test]
    async fn occurred_at_is_stored_with_microsecond_precision_like_timestamptz() {
        let db = InMemoryDatabase::new();
        let user = db.users().create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
        let when = chrono::Utc::now().with_nanosecond(123_456_789).unwrap();
        let new = NewTransaction::new(user.id, Money::new(5, "EUR").unwrap(), TransactionKind::Credit, "", when);
        let stored = db.transactions().create(new.unwrap()).await.unwrap();
        assert_eq!(stored.occurred_at.nanosecond(), 123_456_000, "truncated to microseconds");
        assert_eq!(db.transactions().find_by_id(&stored.id).await.unwrap(), Some(stored));
    }

    #[tokio::test]
    async fn a_standalone_transaction_repository_has_no_users_to_refer_to() {
        let repo = InMemoryTransactionRepository::default();
        let new = NewTransaction::new(
            cpc_domain::UserId::new(),
            Money::new(5, "EUR").unwrap(),
            TransactionKind::Debit,
            "",
            chrono::Utc::now(),
        );
        match repo.create(new.unwrap()).await {
            Err(RepoError::Validation(e)) => {
                assert_eq!((&*e.field, &*e.rule), ("user_id", RepoError::MISSING_REFERENCE))
            }
            other => panic!("expected a missing reference, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn failed_writes_leave_the_unique_index_consistent() {
        let users = InMemoryDatabase::new().users();
        let a = users.create(NewUser::new("aaa", "a@example.org").unwrap()).await.unwrap();
        let b = users.create(NewUser::new("bbb", "b@example.org").unwrap()).await.unwrap();
        // A refused update must not release or steal any key.
        let steal =
            UpdateUser { username: Some("ccc".parse().unwrap()), email: Some("A@example.org".parse().unwrap()) };
        assert!(users.update(&b.id, Version::FIRST, steal).await.is_err());
        users.create(NewUser::new("xxx", "b@example.org").unwrap()).await.unwrap_err();
        users.create(NewUser::new("ccc", "c@example.org").unwrap()).await.unwrap();
        // Swapping e-mails through a free one works, and every key follows its row.
        let free = UpdateUser { email: Some("tmp@example.org".parse().unwrap()), username: None };
        let a2 = users.update(&a.id, Version::FIRST, free).await.unwrap();
        let to_a = UpdateUser { email: Some("a@example.org".parse().unwrap()), username: None };
        users.update(&b.id, Version::FIRST, to_a).await.unwrap();
        let to_b = UpdateUser { email: Some("b@example.org".parse().unwrap()), username: None };
        users.update(&a.id, a2.version, to_b).await.unwrap();
        let page = users.find_page(&Query::new().asc(UserField::Username)).await.unwrap();
        let emails: Vec<_> = page.items.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["b@example.org", "a@example.org", "c@example.org"]);
        users.create(NewUser::new("ddd", "tmp@example.org").unwrap()).await.expect("tmp was released");
    }
}
