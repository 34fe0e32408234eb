//! The accounts service over the testkit's in-memory fakes: a real unit of work, real locks, a real cache.

use std::sync::Arc;
use std::time::Duration;

use cpc_data::ports::{Cache, CacheExt, Lock, LockKey};
use cpc_data::wiring::{Ports, Repositories};
use cpc_testkit::memory::{
    InMemoryCache, InMemoryDatabase, InMemoryJobQueue, InMemoryLock, InMemoryPubSub, InMemoryRateLimiter,
    InMemorySessionStore, StaticHealthCheck,
};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::app::{AppConfig, router};
use crate::service::{AccountError, AccountPorts, Accounts, OPENING_DEPOSIT, balance_key};

/// Every port on the in-memory fakes.
pub fn fake_ports() -> Ports {
    let db = InMemoryDatabase::new();
    let repos = Repositories {
        users: Arc::new(db.users()),
        entities: Arc::new(db.entities()),
        customers: Arc::new(db.customers()),
        transactions: Arc::new(db.transactions()),
        unit_of_work: Arc::new(db.unit_of_work()),
        records: Arc::new(db.clone()),
    };
    Ports {
        users: repos.users.clone(),
        entities: repos.entities.clone(),
        customers: repos.customers.clone(),
        transactions: repos.transactions.clone(),
        unit_of_work: repos.unit_of_work.clone(),
        records: repos.records.clone(),
        stale_views: repos.always(),
        cache: Arc::new(InMemoryCache::default()),
        lock: Arc::new(InMemoryLock::default()),
        rate_limiter: Arc::new(InMemoryRateLimiter::default()),
        sessions: Arc::new(InMemorySessionStore::default()),
        pubsub: Arc::new(InMemoryPubSub::new()),
        jobs: Arc::new(InMemoryJobQueue::new()),
        health_checks: vec![Arc::new(StaticHealthCheck::healthy("fake"))],
        description: "in-memory fakes".to_owned(),
    }
}

/// Serves the app over `ports` on a free local port (metrics rendered by a recorder of its own, not installed);
/// returns `http://127.0.0.1:<port>`.
pub async fn start(ports: &Ports) -> String {
    let metrics = PrometheusBuilder::new().build_recorder().handle();
    let app = router(ports, metrics, &AppConfig::default()).expect("the default config is valid");
    format!("http://{}", crate::compose::serve(app, "127.0.0.1:0").await.expect("a free local port"))
}

struct Fixture {
    accounts: Arc<Accounts>,
    lock: Arc<InMemoryLock>,
    cache: Arc<InMemoryCache>,
}

fn fixture() -> Fixture {
    let db = InMemoryDatabase::new();
    let (lock, cache) = (Arc::new(InMemoryLock::default()), Arc::new(InMemoryCache::default()));
    let accounts = Accounts::new(AccountPorts {
        users: Arc::new(db.users()),
        transactions: Arc::new(db.transactions()),
        unit_of_work: Arc::new(db.unit_of_work()),
        lock: lock.clone(),
        cache: cache.clone(),
    });
    Fixture { accounts: Arc::new(accounts), lock, cache }
}

#[tokio::test]
async fn a_new_account_holds_the_opening_deposit_and_a_taken_email_is_refused_in_any_case() {
    let f = fixture();
    let ada = f.accounts.sign_up("ada", "ada@example.org").await.unwrap();
    assert_eq!(f.accounts.balance(ada.id).await.unwrap(), OPENING_DEPOSIT);
    let err = f.accounts.sign_up("ada2", "ADA@example.org").await.unwrap_err();
    assert!(matches!(err, AccountError::Taken { ref field } if field.contains("email")), "{err:?}");
    let err = f.accounts.sign_up("ada", "other@example.org").await.unwrap_err();
    assert!(matches!(err, AccountError::Taken { ref field } if field.contains("username")), "{err:?}");
}

#[tokio::test]
async fn log_in_takes_the_email_in_any_case_and_refuses_another() {
    let f = fixture();
    let ada = f.accounts.sign_up("ada", "ada@example.org").await.unwrap();
    assert_eq!(f.accounts.log_in("ada", "Ada@Example.org").await.unwrap().id, ada.id);
    assert!(matches!(f.accounts.log_in("ada", "eve@example.org").await, Err(AccountError::BadCredentials)));
    assert!(matches!(f.accounts.log_in("eve", "ada@example.org").await, Err(AccountError::BadCredentials)));
}

#[tokio::test]
async fn a_transfer_moves_money_and_the_cached_balances_follow() {
    let f = fixture();
    let (ann, bob) = (
        f.accounts.sign_up("ann", "ann@example.org").await.unwrap(),
        f.accounts.sign_up("bob", "bob@example.org").await.unwrap(),
    );
    // Both balances cached before the transfer: the transfer must not leave them stale.
    assert_eq!(f.accounts.balance(ann.id).await.unwrap(), OPENING_DEPOSIT);
    assert_eq!(f.accounts.balance(bob.id).await.unwrap(), OPENING_DEPOSIT);
    let receipt = f.accounts.transfer(ann.id, "bob", 2_500).await.unwrap();
    assert_eq!(receipt.balance, OPENING_DEPOSIT - 2_500);
    assert_eq!(f.accounts.balance(ann.id).await.unwrap(), OPENING_DEPOSIT - 2_500);
    assert_eq!(f.accounts.balance(bob.id).await.unwrap(), OPENING_DEPOSIT + 2_500);
    let cached: Option<i64> = f.cache.get(&balance_key(bob.id).unwrap()).await.unwrap();
    assert_eq!(cached, Some(OPENING_DEPOSIT + 2_500));
    let err = f.accounts.transfer(ann.id, "bob", OPENING_DEPOSIT).await.unwrap_err();
    assert!(matches!(err, AccountError::InsufficientFunds { balance } if balance.amount_minor() == 7_500), "{err:?}");
    f.cache.delete(&balance_key(ann.id).unwrap()).await.unwrap();
    assert_eq!(f.accounts.balance(ann.id).await.unwrap(), 7_500, "the ledger agrees with the cache");
}

#[tokio::test]
async fn opposite_transfers_at_once_neither_deadlock_nor_lose_money() {
    let f = fixture();
    let ann = f.accounts.sign_up("ann", "ann@example.org").await.unwrap();
    let bob = f.accounts.sign_up("bob", "bob@example.org").await.unwrap();
    let transfers = (0..10).map(|i| {
        let accounts = f.accounts.clone();
        let (from, to) = if i % 2 == 0 { (ann.id, "bob") } else { (bob.id, "ann") };
        tokio::spawn(async move { accounts.transfer(from, to, 100 + i).await })
    });
    let done = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(transfers)).await;
    for t in done.expect("no deadlock: every transfer finished") {
        t.unwrap().unwrap();
    }
    let (a, b) = (f.accounts.balance(ann.id).await.unwrap(), f.accounts.balance(bob.id).await.unwrap());
    assert_eq!(a + b, 2 * OPENING_DEPOSIT, "money is neither made nor lost");
    // Ann sent 100+102+...+108 and received 101+103+...+109.
    assert_eq!(a, OPENING_DEPOSIT - 520 + 525);
}

#[tokio::test(start_paused = true)]
async fn an_account_locked_elsewhere_makes_the_transfer_busy_after_the_wait() {
    let f = fixture();
    let ann = f.accounts.sign_up("ann", "ann@example.org").await.unwrap();
    let bob = f.accounts.sign_up("bob", "bob@example.org").await.unwrap();
    let key = LockKey::new(format!("account:{}", bob.id)).unwrap();
    let _held = f.lock.try_acquire(&key, Duration::from_secs(60)).await.unwrap().expect("free");
    let err = f.accounts.transfer(ann.id, "bob", 100).await.unwrap_err();
    assert!(matches!(err, AccountError::Busy(id) if id == bob.id), "{err:?}");
    let mine = LockKey::new(format!("account:{}", ann.id)).unwrap();
    assert!(f.lock.try_acquire(&mine, Duration::from_secs(1)).await.unwrap().is_some(), "ann's lock released");
    assert_eq!(f.accounts.balance(ann.id).await.unwrap(), OPENING_DEPOSIT, "nothing moved");
}
