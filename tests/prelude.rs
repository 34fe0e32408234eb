//! The quickstart's flow written with nothing from the library but `use cpc_data::prelude::*;`, on the embedded
//! default (SQLite + in-process ports): sign-up, log-in with a session, transactions under a lock, a paged
//! history, a cached balance, a rate-limited burst, an event published and received, a unit of work, health.
#![cfg(feature = "wiring")]

use std::time::Duration;

use cpc_data::prelude::*;
use futures::StreamExt;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct BalanceChanged {
    user_id: UserId,
    balance_minor: i64,
}

#[tokio::test]
async fn the_quickstart_flow_runs_on_the_prelude_alone() -> Result<(), Box<dyn std::error::Error>> {
    tokio::time::timeout(Duration::from_secs(30), flow()).await?
}

async fn flow() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let ports: Ports = Ports::wire(&Settings::embedded("prelude", dir.path())).await?;

    // Sign up; a second sign-up with the same e-mail is a typed conflict.
    let ada = ports.users.create(NewUser::new("ada", "ada@example.org")?).await?;
    let twin = ports.users.create(NewUser::new("ada2", "ADA@example.org")?).await;
    assert!(matches!(twin, Err(RepoError::Conflict { kind: ConflictKind::Duplicate { .. }, .. })), "{twin:?}");

    // Log in: a session holding the user's id.
    let session: SessionId = ports.sessions.create(&ada.id, Duration::from_secs(3600)).await?;
    assert_eq!(ports.sessions.load::<UserId>(&session).await?, Some(ada.id));

    // Transactions under a per-account lock.
    let key = LockKey::new(format!("account:{}", ada.id))?;
    let transactions = ports.transactions.clone();
    let user_id = ada.id;
    let token: FencingToken = ports
        .lock
        .with_lock(&key, Duration::from_secs(10), Duration::from_secs(5), |lease: LockLease| async move {
            for (minor, kind) in [(10_000, TransactionKind::Credit), (2_550, TransactionKind::Debit)] {
                let new = NewTransaction::new(user_id, Money::new(minor, "EUR")?, kind, "entry", chrono::Utc::now())?;
                transactions.create(new).await?;
            }
            Ok::<_, RepoError>(lease.token)
        })
        .await??;
    let _ = token;

    // The balance from the paged history, cached.
    let range = TimeRange::new(chrono::Utc::now() - chrono::Duration::days(1), chrono::Utc::now())?;
    let page = ports.transactions.history(&ada.id, range, PageRequest::first(10)).await?;
    let balance: i64 = page.items.iter().map(|t| t.kind.signed(t.amount.amount_minor())).sum();
    assert_eq!(balance, 7_450);
    let cache_key = CacheKey::new(format!("balance:{}", ada.id))?;
    ports.cache.set(&cache_key, &balance, Some(Duration::from_secs(60))).await?;
    assert_eq!(ports.cache.get::<i64>(&cache_key).await?, Some(7_450));

    // A burst of 4 against a limit of 3 a minute.
    let limit_key = RateLimitKey::new(format!("api:{}", ada.id))?;
    let policy = RateLimitPolicy::sliding_window(3, Duration::from_secs(60));
    let mut allowed = 0;
    for _ in 0..4 {
        let decision: RateLimitDecision = ports.rate_limiter.check(&limit_key, &policy, 1).await?;
        allowed += u32::from(decision.allowed);
    }
    assert_eq!(allowed, 3);

    // An event published and received.
    let channel = Channel::new(format!("balances.{}", ada.id))?;
    let mut events = ports.pubsub.subscribe::<BalanceChanged>(&channel).await?;
    let event = BalanceChanged { user_id: ada.id, balance_minor: balance };
    ports.pubsub.publish(&channel, &event).await?;
    let received = tokio::time::timeout(Duration::from_secs(5), events.next()).await?.ok_or("no event")??;
    assert_eq!(received, event);

    // A unit of work that fails leaves nothing behind.
    let failed = ports
        .unit_of_work
        .run(|tx| {
            Box::pin(async move {
                tx.users().create(NewUser::new("grace", "grace@example.org")?).await?;
                Err::<(), _>(RepoError::NotFound { entity: "account", id: "42".into() })
            })
        })
        .await;
    assert!(matches!(failed, Err(RepoError::NotFound { .. })), "{failed:?}");
    let filter = [Filter::Eq(UserField::Username, "grace".into())];
    assert_eq!(ports.users.count(&filter).await?, 0);

    // Health of every backend.
    let (status, reports): (HealthStatus, Vec<HealthReport>) = ports.health().await;
    assert_eq!(status, HealthStatus::Healthy, "{reports:?}");
    Ok(())
}
