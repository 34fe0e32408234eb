//! The accounts service against mockall mocks: what runs in one unit of work, the lock order, and the error paths
//! (conflict, unavailable backends, a busy account, insufficient funds); and the app's rate limit against a mock
//! limiter (refused: 429 with `Retry-After`; down: the request goes through).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use cpc_data::domain::{Money, NewTransaction, NewUser, Transaction, TransactionId, TransactionKind, User, UserId};
use cpc_data::ports::{
    Cache, ConflictKind, FencingToken, KvError, LockKey, LockLease, Page, RateLimitDecision, Record, RepoError,
};
use cpc_testkit::mocks::{
    MockCache, MockLock, MockRateLimiter, MockTransactionRepository, MockTx, MockUnitOfWork, MockUserRepository,
};

use crate::service::{AccountError, AccountPorts, Accounts, OPENING_DEPOSIT};

fn user(name: &str) -> User {
    User::build(UserId::new(), NewUser::new(name, &format!("{name}@example.org")).unwrap(), Utc::now())
}

/// What a store returns for `new`.
fn stored(new: NewTransaction) -> Transaction {
    Transaction::build(TransactionId::new(), new, Utc::now())
}

/// A cache that misses and accepts every write.
fn missing_cache() -> MockCache {
    let mut cache = MockCache::new();
    cache.expect_get_bytes().returning(|_| Ok(None));
    cache.expect_set_if_absent_bytes().returning(|_, _, _| Ok(true));
    cache.expect_set_bytes().returning(|_, _, _| Ok(()));
    cache.expect_codec().returning(Default::default);
    cache.expect_max_value_bytes().return_const(usize::MAX);
    cache
}

/// A ledger whose every account holds `balance` minor units (one credit).
fn ledger(balance: i64) -> MockTransactionRepository {
    let mut transactions = MockTransactionRepository::new();
    transactions.expect_history().returning(move |user, _, _| {
        let credit =
            NewTransaction::new(*user, Money::new(balance, "EUR").unwrap(), TransactionKind::Credit, "x", Utc::now());
        Ok(Page { items: vec![stored(credit.unwrap())], total: None, next_cursor: None })
    });
    transactions
}

fn lease(key: &LockKey) -> LockLease {
    LockLease { key: key.clone(), owner: "me".into(), token: FencingToken(1), ttl: Duration::from_secs(10) }
}

fn accounts(
    users: MockUserRepository,
    transactions: MockTransactionRepository,
    uow: MockUnitOfWork,
    lock: MockLock,
    cache: impl Cache,
) -> Accounts {
    Accounts::new(AccountPorts {
        users: Arc::new(users),
        transactions: Arc::new(transactions),
        unit_of_work: Arc::new(uow),
        lock: Arc::new(lock),
        cache: Arc::new(cache),
    })
}

fn recipient_lookup(recipient: User) -> MockUserRepository {
    let mut users = MockUserRepository::new();
    users.expect_find_by_username().returning(move |_| Ok(Some(recipient.clone())));
    users
}

#[tokio::test]
async fn sign_up_creates_the_user_and_the_opening_deposit_in_one_unit_of_work() {
    let mut uow = MockUnitOfWork::new();
    uow.expect_begin().times(1).returning(|| {
        let mut tx = MockTx::new();
        tx.expect_users().times(1).returning(|| {
            let mut users = MockUserRepository::new();
            users
                .expect_create()
                .times(1)
                .returning(|n| Ok(User { username: n.username, email: n.email, ..user("placeholder") }));
            Arc::new(users)
        });
        tx.expect_transactions().times(1).returning(|| {
            let mut transactions = MockTransactionRepository::new();
            transactions
                .expect_create()
                .withf(|n| n.amount.amount_minor() == OPENING_DEPOSIT && n.kind == TransactionKind::Credit)
                .times(1)
                .returning(|n| Ok(stored(n)));
            Arc::new(transactions)
        });
        tx.expect_commit().times(1).returning(|| Ok(()));
        Ok(Box::new(tx))
    });
    let service =
        accounts(MockUserRepository::new(), MockTransactionRepository::new(), uow, MockLock::new(), MockCache::new());
    let ada = service.sign_up("ada", "ada@example.org").await.unwrap();
    assert_eq!(ada.username.as_str(), "ada");
}

#[tokio::test]
async fn a_taken_email_is_taken_and_the_unit_of_work_rolled_back() {
    let mut uow = MockUnitOfWork::new();
    uow.expect_begin().times(1).returning(|| {
        let mut tx = MockTx::new();
        tx.expect_users().returning(|| {
            let mut users = MockUserRepository::new();
            users.expect_create().returning(|_| {
                Err(RepoError::Conflict { entity: "user", kind: ConflictKind::Duplicate { field: "email".into() } })
            });
            Arc::new(users)
        });
        tx.expect_transactions().times(0);
        tx.expect_commit().times(0);
        tx.expect_rollback().times(1).returning(|| Ok(()));
        Ok(Box::new(tx))
    });
    let service =
        accounts(MockUserRepository::new(), MockTransactionRepository::new(), uow, MockLock::new(), MockCache::new());
    let err = service.sign_up("ada", "ada@example.org").await.unwrap_err();
    assert!(matches!(err, AccountError::Taken { ref field } if field == "email"), "{err:?}");
}

#[tokio::test]
async fn an_unavailable_database_is_unavailable() {
    let mut uow = MockUnitOfWork::new();
    uow.expect_begin()
        .returning(|| Err(RepoError::Unavailable { backend: "postgres", reason: "connection refused".into() }));
    let service =
        accounts(MockUserRepository::new(), MockTransactionRepository::new(), uow, MockLock::new(), MockCache::new());
    let err = service.sign_up("ada", "ada@example.org").await.unwrap_err();
    assert!(matches!(err, AccountError::Unavailable(ref m) if m.contains("connection refused")), "{err:?}");
}

#[tokio::test]
async fn log_in_needs_the_matching_email_and_bad_input_touches_nothing() {
    let ada = user("ada");
    let mut users = MockUserRepository::new();
    let known = ada.clone();
    users
        .expect_find_by_username()
        .times(2)
        .returning(move |name| Ok((*name == known.username).then(|| known.clone())));
    let service =
        accounts(users, MockTransactionRepository::new(), MockUnitOfWork::new(), MockLock::new(), MockCache::new());
    assert_eq!(service.log_in("ada", "ADA@example.org").await.unwrap().id, ada.id);
    for (name, email) in [("ada", "eve@example.org"), ("not an @ name", "ada@example.org"), ("ada", "no-at-sign")] {
        let err = service.log_in(name, email).await.unwrap_err();
        assert!(matches!(err, AccountError::BadCredentials), "{name} {email}: {err:?}");
    }
}

#[tokio::test]
async fn a_transfer_locks_both_accounts_smaller_id_first_whichever_way_it_goes() {
    let (a, b) = (user("ann"), user("bob"));
    let (low, high) = if a.id < b.id { (a.id, b.id) } else { (b.id, a.id) };
    for (from, to) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut lock = MockLock::new();
        let seen = order.clone();
        lock.expect_acquire().times(2).returning(move |k, _, _| {
            seen.lock().unwrap().push(k.to_string());
            Ok(lease(k))
        });
        lock.expect_release().times(2).returning(|_| Ok(()));
        let mut uow = MockUnitOfWork::new();
        uow.expect_begin().times(1).returning(|| {
            let mut tx = MockTx::new();
            tx.expect_transactions().times(2).returning(|| {
                let mut transactions = MockTransactionRepository::new();
                transactions.expect_create().times(1).returning(|n| Ok(stored(n)));
                Arc::new(transactions)
            });
            tx.expect_commit().times(1).returning(|| Ok(()));
            Ok(Box::new(tx))
        });
        let service = accounts(recipient_lookup(to.clone()), ledger(5_000), uow, lock, missing_cache());
        let receipt = service.transfer(from.id, to.username.as_str(), 1_500).await.unwrap();
        assert_eq!((receipt.debit.user_id, receipt.credit.user_id), (from.id, to.id));
        assert_eq!((receipt.debit.kind, receipt.credit.kind), (TransactionKind::Debit, TransactionKind::Credit));
        assert_eq!(receipt.balance, 3_500);
        assert_eq!(*order.lock().unwrap(), [format!("account:{low}"), format!("account:{high}")]);
    }
}

#[tokio::test]
async fn a_busy_second_account_is_busy_the_first_lock_released_and_nothing_written() {
    let (a, b) = (user("ann"), user("bob"));
    let (low, high) = if a.id < b.id { (a.id, b.id) } else { (b.id, a.id) };
    let mut lock = MockLock::new();
    let first = LockKey::new(format!("account:{low}")).unwrap();
    lock.expect_acquire().withf(move |k, _, _| *k == first).times(1).returning(|k, _, _| Ok(lease(k)));
    lock.expect_acquire()
        .times(1)
        .returning(|_, _, wait| Err(KvError::Timeout { operation: "acquire lock", after: wait }));
    let released = LockKey::new(format!("account:{low}")).unwrap();
    lock.expect_release().withf(move |l| l.key == released).times(1).returning(|_| Ok(()));
    let mut uow = MockUnitOfWork::new();
    uow.expect_begin().times(0);
    let service = accounts(recipient_lookup(b.clone()), MockTransactionRepository::new(), uow, lock, MockCache::new());
    let err = service.transfer(a.id, "bob", 100).await.unwrap_err();
    assert!(matches!(err, AccountError::Busy(id) if id == high), "{err:?}");
}

#[tokio::test]
async fn insufficient_funds_write_nothing_and_release_both_locks() {
    let (a, b) = (user("ann"), user("bob"));
    let mut lock = MockLock::new();
    lock.expect_acquire().times(2).returning(|k, _, _| Ok(lease(k)));
    lock.expect_release().times(2).returning(|_| Ok(()));
    let mut uow = MockUnitOfWork::new();
    uow.expect_begin().times(0);
    let service = accounts(recipient_lookup(b), ledger(1_000), uow, lock, MockCache::new());
    let err = service.transfer(a.id, "bob", 1_001).await.unwrap_err();
    assert!(matches!(err, AccountError::InsufficientFunds { balance } if balance.amount_minor() == 1_000), "{err:?}");
}

#[tokio::test]
async fn bad_amounts_and_transfers_to_oneself_touch_no_lock() {
    let ann = user("ann");
    let service = accounts(
        recipient_lookup(ann.clone()),
        MockTransactionRepository::new(),
        MockUnitOfWork::new(),
        MockLock::new(),
        MockCache::new(),
    );
    for amount in [0, -5] {
        assert!(matches!(service.transfer(ann.id, "bob", amount).await, Err(AccountError::Invalid(_))));
    }
    let err = service.transfer(ann.id, "ann", 100).await.unwrap_err();
    assert!(matches!(err, AccountError::Invalid(ref v) if v.to_string().contains("to")), "{err:?}");
}

#[tokio::test]
async fn an_unknown_recipient_is_unknown_recipient() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_username().returning(|_| Ok(None));
    let service =
        accounts(users, MockTransactionRepository::new(), MockUnitOfWork::new(), MockLock::new(), MockCache::new());
    let err = service.transfer(UserId::new(), "nobody", 100).await.unwrap_err();
    assert!(matches!(err, AccountError::UnknownRecipient(ref n) if n == "nobody"), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_lock_service_is_unavailable() {
    let mut lock = MockLock::new();
    lock.expect_acquire()
        .returning(|_, _, _| Err(KvError::Unavailable { backend: "redis", reason: "connection refused".into() }));
    let service = accounts(
        recipient_lookup(user("bob")),
        MockTransactionRepository::new(),
        MockUnitOfWork::new(),
        lock,
        MockCache::new(),
    );
    let err = service.transfer(UserId::new(), "bob", 100).await.unwrap_err();
    assert!(matches!(err, AccountError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_cache_that_is_down_only_slows_the_balance_down() {
    let mut cache = MockCache::new();
    let down = || KvError::Unavailable { backend: "redis", reason: "connection refused".into() };
    cache.expect_get_bytes().times(1).returning(move |_| Err(down()));
    cache.expect_set_if_absent_bytes().times(1).returning(move |_, _, _| Err(down()));
    cache.expect_codec().returning(Default::default);
    cache.expect_max_value_bytes().return_const(usize::MAX);
    let service = accounts(MockUserRepository::new(), ledger(4_200), MockUnitOfWork::new(), MockLock::new(), cache);
    assert_eq!(service.balance(UserId::new()).await.unwrap(), 4_200);
}

mod http {
    //! The app's rate limit over a mock limiter: the service behind it runs on the in-memory fakes.

    use cpc_data::wiring::Ports;

    use super::*;
    use crate::tests_fakes::{fake_ports, start};

    fn decision(allowed: bool) -> RateLimitDecision {
        RateLimitDecision {
            allowed,
            limit: 20,
            remaining: 0,
            retry_after: (!allowed).then_some(Duration::from_secs(3)),
            reset_after: Duration::from_secs(4),
        }
    }

    /// Serves the app on the fakes with `limiter` as its rate limiter, and signs ada up through it.
    async fn sign_up_ada(limiter: MockRateLimiter) -> (Ports, reqwest::Response) {
        let mut ports = fake_ports();
        ports.rate_limiter = Arc::new(limiter);
        let base = start(&ports).await;
        let body = serde_json::json!({ "username": "ada", "email": "ada@example.org" });
        let response = reqwest::Client::new().post(format!("{base}/signup")).json(&body).send().await.unwrap();
        (ports, response)
    }

    #[tokio::test]
    async fn a_refused_request_is_429_with_retry_after_and_never_reaches_the_service() {
        let mut limiter = MockRateLimiter::new();
        limiter.expect_check().times(1).returning(|_, _, _| Ok(decision(false)));
        let (ports, response) = sign_up_ada(limiter).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
        assert!(ports.users.find_by_username(&"ada".parse().unwrap()).await.unwrap().is_none(), "not signed up");
    }

    #[tokio::test]
    async fn a_limiter_that_is_down_lets_requests_through() {
        let mut limiter = MockRateLimiter::new();
        limiter
            .expect_check()
            .times(1)
            .returning(|_, _, _| Err(KvError::Unavailable { backend: "redis", reason: "connection refused".into() }));
        let (_, response) = sign_up_ada(limiter).await;
        assert_eq!(response.status(), 201);
        assert!(!response.headers().contains_key("ratelimit"), "no headers without a decision");
    }

    #[tokio::test]
    async fn the_rate_limit_key_is_the_client_ip_before_log_in() {
        let keys = Arc::new(Mutex::new(Vec::new()));
        let seen = keys.clone();
        let mut limiter = MockRateLimiter::new();
        limiter.expect_check().times(1).returning(move |k, _, _| {
            seen.lock().unwrap().push(k.to_string());
            Ok(decision(true))
        });
        let mut ports = fake_ports();
        ports.rate_limiter = Arc::new(limiter);
        let base = start(&ports).await;
        let response = reqwest::Client::new().get(format!("{base}/me")).send().await.unwrap();
        assert_eq!(response.status(), 401, "not logged in");
        assert_eq!(*keys.lock().unwrap(), ["web:ip:127.0.0.1"]);
    }
}
