//! The ledger against mockall mocks: the order of the calls (lock, writes, release) and every error path.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cpc_data::domain::{Transaction, TransactionKind, UserId, Version};
use cpc_data::ports::{FencingToken, KvError, LockKey, LockLease, RepoError};
use cpc_testkit::mocks::{MockLock, MockTransactionRepository};
use mockall::Sequence;

use crate::service::{Entry, Ledger, LedgerError};

fn entry(amount_minor: i64) -> Entry {
    Entry { amount_minor, currency: "EUR", kind: TransactionKind::Credit, description: "x", occurred_at: Utc::now() }
}

fn lease(key: &LockKey) -> LockLease {
    LockLease { key: key.clone(), owner: "me".into(), token: FencingToken(7), ttl: Duration::from_secs(10) }
}

/// A lock mock that grants the account's lock once and expects it back once, in that order.
fn granting_lock(account: UserId, seq: &mut Sequence) -> MockLock {
    let mut lock = MockLock::new();
    let key = LockKey::new(format!("account:{account}")).unwrap();
    lock.expect_acquire().withf(move |k, _, _| *k == key).times(1).in_sequence(seq).returning(|k, _, _| Ok(lease(k)));
    lock
}

fn expect_release(lock: &mut MockLock, seq: &mut Sequence) {
    lock.expect_release().times(1).in_sequence(seq).returning(|_| Ok(()));
}

fn stored(new: cpc_data::domain::NewTransaction) -> Transaction {
    let now = Utc::now();
    Transaction {
        id: Default::default(),
        user_id: new.user_id,
        amount: new.amount,
        kind: new.kind,
        description: new.description,
        occurred_at: new.occurred_at,
        created_at: now,
        updated_at: now,
        version: Version::FIRST,
    }
}

#[tokio::test]
async fn record_writes_every_entry_between_acquire_and_release() {
    let account = UserId::new();
    let mut seq = Sequence::new();
    let mut lock = granting_lock(account, &mut seq);
    let mut transactions = MockTransactionRepository::new();
    transactions.expect_create().times(2).in_sequence(&mut seq).returning(|n| Ok(stored(n)));
    expect_release(&mut lock, &mut seq);
    let ledger = Ledger::new(Arc::new(transactions), Arc::new(lock));
    let recorded = ledger.record(account, &[entry(100), entry(250)]).await.unwrap();
    assert_eq!(recorded.iter().map(|t| t.amount.amount_minor()).collect::<Vec<_>>(), [100, 250]);
}

#[tokio::test]
async fn a_missing_account_is_unknown_account_and_the_lock_is_still_released() {
    let account = UserId::new();
    let mut seq = Sequence::new();
    let mut lock = granting_lock(account, &mut seq);
    let mut transactions = MockTransactionRepository::new();
    transactions
        .expect_create()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(RepoError::missing_reference("user_id")));
    expect_release(&mut lock, &mut seq);
    let ledger = Ledger::new(Arc::new(transactions), Arc::new(lock));
    let err = ledger.record(account, &[entry(100), entry(250)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::UnknownAccount(a) if a == account), "{err:?}");
}

#[tokio::test]
async fn an_unavailable_database_is_unavailable_and_the_lock_is_still_released() {
    let account = UserId::new();
    let mut seq = Sequence::new();
    let mut lock = granting_lock(account, &mut seq);
    let mut transactions = MockTransactionRepository::new();
    transactions
        .expect_create()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(RepoError::Unavailable { backend: "postgres", reason: "connection refused".into() }));
    expect_release(&mut lock, &mut seq);
    let ledger = Ledger::new(Arc::new(transactions), Arc::new(lock));
    let err = ledger.record(account, &[entry(100)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(ref m) if m.contains("connection refused")), "{err:?}");
}

#[tokio::test]
async fn a_lock_held_elsewhere_is_busy_and_nothing_is_written() {
    let mut lock = MockLock::new();
    lock.expect_acquire()
        .times(1)
        .returning(|_, _, wait| Err(KvError::Timeout { operation: "acquire lock", after: wait }));
    let mut transactions = MockTransactionRepository::new();
    transactions.expect_create().times(0);
    let ledger = Ledger::new(Arc::new(transactions), Arc::new(lock));
    let account = UserId::new();
    let err = ledger.record(account, &[entry(100)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Busy(a) if a == account), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_lock_service_is_unavailable() {
    let mut lock = MockLock::new();
    lock.expect_acquire()
        .returning(|_, _, _| Err(KvError::Unavailable { backend: "redis", reason: "connection refused".into() }));
    let ledger = Ledger::new(Arc::new(MockTransactionRepository::new()), Arc::new(lock));
    let err = ledger.record(UserId::new(), &[entry(100)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn invalid_input_touches_neither_the_lock_nor_the_database() {
    // Mocks without expectations fail the test on any call.
    let ledger = Ledger::new(Arc::new(MockTransactionRepository::new()), Arc::new(MockLock::new()));
    for bad in [entry(0), entry(-5), Entry { currency: "euro", ..entry(100) }] {
        let err = ledger.record(UserId::new(), &[entry(100), bad]).await.unwrap_err();
        assert!(matches!(err, LedgerError::Invalid(_)), "{err:?}");
    }
}
