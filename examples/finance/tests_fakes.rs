//! The ledger over the testkit's in-memory fakes: real ranges, real paging, a real lock.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cpc_data::domain::{NewUser, TransactionKind, UserId};
use cpc_data::ports::{Lock, LockKey, PageRequest, Repository, TimeRange};
use cpc_testkit::memory::{InMemoryDatabase, InMemoryLock};

use crate::service::{Entry, Ledger, LedgerError};

struct Fixture {
    ledger: Arc<Ledger>,
    lock: Arc<InMemoryLock>,
    account: UserId,
}

async fn fixture() -> Fixture {
    let db = InMemoryDatabase::new();
    let account = db.users().create(NewUser::new("grace", "grace@example.org").unwrap()).await.unwrap().id;
    let lock = Arc::new(InMemoryLock::default());
    let ledger = Arc::new(Ledger::new(Arc::new(db.transactions()), lock.clone()));
    Fixture { ledger, lock, account }
}

fn entry(amount_minor: i64, kind: TransactionKind, days_ago: i64) -> Entry {
    let occurred_at = Utc::now() - chrono::Duration::days(days_ago);
    Entry { amount_minor, currency: "EUR", kind, description: "x", occurred_at }
}

#[tokio::test]
async fn history_keeps_to_the_range_and_pages_without_gaps_or_repeats() {
    let f = fixture().await;
    let entries: Vec<Entry> = (0..7).map(|d| entry(100 + d, TransactionKind::Credit, d)).collect();
    f.ledger.record(f.account, &entries).await.unwrap();
    let range = TimeRange::new(Utc::now() - chrono::Duration::hours(24 * 4 + 1), Utc::now()).unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let got = f.ledger.history(f.account, range, page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|t| t.amount.amount_minor()));
        match got.next_cursor {
            Some(c) => page = PageRequest::Keyset { after: Some(c), limit: 2 },
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [100, 101, 102, 103, 104], "days 0 to 4 only, each once");
}

#[tokio::test]
async fn the_balance_is_credits_minus_debits() {
    let f = fixture().await;
    let entries = [entry(10_000, TransactionKind::Credit, 1), entry(2_550, TransactionKind::Debit, 0)];
    f.ledger.record(f.account, &entries).await.unwrap();
    let range = TimeRange::new(Utc::now() - chrono::Duration::days(2), Utc::now()).unwrap();
    assert_eq!(f.ledger.balance(f.account, range).await.unwrap(), 7_450);
}

#[tokio::test]
async fn concurrent_writers_on_one_account_all_land() {
    let f = fixture().await;
    let writers = (0..8).map(|_| {
        let ledger = f.ledger.clone();
        tokio::spawn(async move { ledger.record(f.account, &[entry(100, TransactionKind::Credit, 0)]).await })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap().unwrap();
    }
    let range = TimeRange::new(Utc::now() - chrono::Duration::days(1), Utc::now()).unwrap();
    assert_eq!(f.ledger.balance(f.account, range).await.unwrap(), 800);
}

#[tokio::test(start_paused = true)]
async fn an_account_locked_by_someone_else_is_busy_after_the_wait() {
    let f = fixture().await;
    let key = LockKey::new(format!("account:{}", f.account)).unwrap();
    let _held = f.lock.try_acquire(&key, Duration::from_secs(60)).await.unwrap().expect("free");
    let err = f.ledger.record(f.account, &[entry(100, TransactionKind::Credit, 0)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Busy(a) if a == f.account), "{err:?}");
}

#[tokio::test]
async fn an_unknown_account_is_refused_and_its_lock_released() {
    let f = fixture().await;
    let stranger = UserId::new();
    let err = f.ledger.record(stranger, &[entry(100, TransactionKind::Credit, 0)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::UnknownAccount(a) if a == stranger), "{err:?}");
    let key = LockKey::new(format!("account:{stranger}")).unwrap();
    assert!(f.lock.try_acquire(&key, Duration::from_secs(1)).await.unwrap().is_some(), "released");
}
