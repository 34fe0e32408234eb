//! The quickstart flow. It knows the ports only (through [`Ports`], a bundle of `Arc<dyn Port>`): the same code
//! runs on the embedded default and on PostgreSQL + Redis.

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use cpc_data::prelude::*;

use crate::common::FlowError;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// What a session holds.
#[derive(Debug, Serialize, Deserialize)]
struct SessionData {
    user_id: UserId,
    username: String,
}

/// The event published when a balance changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceChanged {
    /// Whose balance.
    pub user_id: UserId,
    /// The new balance, in minor units.
    pub balance_minor: i64,
}

/// What the flow saw, for tests.
#[cfg_attr(not(test), allow(dead_code, reason = "read by the tests"))]
#[derive(Debug)]
pub struct Outcome {
    /// The user signed up (or found, on a second run).
    pub user: User,
    /// Whether the sign-up created the user (false when an earlier run had).
    pub created: bool,
    /// The balance computed from the ledger, in minor units.
    pub balance_minor: i64,
    /// How many of the burst's requests the rate limiter allowed, and how many it refused.
    pub burst: (u64, u64),
    /// The event received from the subscription.
    pub received: BalanceChanged,
}

/// The burst's limit: 5 requests a minute.
const BURST_LIMIT: u64 = 5;
/// How many requests the burst sends.
const BURST_SIZE: u64 = 8;

/// Runs every step, writing a readable log of each to `out`.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<Outcome, FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    writeln!(out, "migrations: applied at start-up (embedded in the binary)")?;

    // 1. Sign up (idempotent across runs: the e-mail is unique) and log in.
    let new = NewUser::new("ada", "ada@example.org")?;
    let (user, created) = match ports.users.create(new.clone()).await {
        Ok(user) => (user, true),
        Err(RepoError::Conflict { kind: ConflictKind::Duplicate { .. }, .. }) => {
            let user = ports.users.find_by_email(&new.email).await?.ok_or("the taken e-mail's user vanished")?;
            (user, false)
        }
        Err(e) => return Err(e.into()),
    };
    if created {
        writeln!(out, "sign-up: created user {} <{}> ({})", user.username, user.email, user.id)?;
    } else {
        writeln!(out, "sign-up: {} is already signed up (an earlier run); logging in", user.email)?;
    }
    let found = ports.users.find_by_email(&new.email).await?.ok_or("no user with that e-mail")?;
    let data = SessionData { user_id: found.id, username: found.username.to_string() };
    let session = ports.sessions.create(&data, Duration::from_secs(3600)).await?;
    let loaded: SessionData = ports.sessions.load(&session).await?.ok_or("the new session did not load")?;
    writeln!(out, "login: session for {} loads back (lives 1 h)", loaded.username)?;

    // 2. Record transactions under a per-account lock: no two writers on one account at once.
    let key = LockKey::new(format!("account:{}", user.id))?;
    let now = Utc::now();
    let entries = [
        (10_000, TransactionKind::Credit, "salary"),
        (2_550, TransactionKind::Debit, "groceries"),
        (1_000, TransactionKind::Credit, "refund"),
    ];
    let transactions = ports.transactions.clone();
    let user_id = user.id;
    let (token, recorded) = ports
        .lock
        .with_lock(&key, Duration::from_secs(10), Duration::from_secs(5), |lease| async move {
            let mut recorded = 0;
            for (minor, kind, what) in entries {
                let new = NewTransaction::new(user_id, Money::new(minor, "EUR")?, kind, what, now)?;
                transactions.create(new).await?;
                recorded += 1;
            }
            Ok::<_, FlowError>((lease.token, recorded))
        })
        .await??;
    writeln!(out, "finance: recorded {recorded} transactions under lock {key} (fencing token {token})")?;

    // 3. Compute the balance from the ledger (paged history) and cache it.
    let balance_minor = balance(ports, user.id).await?;
    let cache_key = CacheKey::new(format!("balance:{}", user.id))?;
    ports.cache.set(&cache_key, &balance_minor, Some(Duration::from_secs(60))).await?;
    let cached: i64 = ports.cache.get(&cache_key).await?.ok_or("the cached balance is missing")?;
    writeln!(out, "cache: balance {} cached for 60 s; read back {}", money(balance_minor)?, money(cached)?)?;

    // 4. Rate-limit a burst.
    let limit_key = RateLimitKey::new(format!("api:{}", user.id))?;
    ports.rate_limiter.reset(&limit_key).await?;
    let policy = RateLimitPolicy::sliding_window(BURST_LIMIT, Duration::from_secs(60));
    let (mut allowed, mut refused) = (0, 0);
    for _ in 0..BURST_SIZE {
        if ports.rate_limiter.check(&limit_key, &policy, 1).await?.allowed {
            allowed += 1;
        } else {
            refused += 1;
        }
    }
    writeln!(out, "rate limit: burst of {BURST_SIZE} at {BURST_LIMIT}/min: {allowed} allowed, {refused} refused")?;

    // 5. Publish an event and receive it.
    let channel = Channel::new(format!("balances.{}", user.id))?;
    let mut subscription = ports.pubsub.subscribe::<BalanceChanged>(&channel).await?;
    let event = BalanceChanged { user_id: user.id, balance_minor };
    let receivers = ports.pubsub.publish(&channel, &event).await?;
    let received = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .map_err(|_| "no event within 5 s")?
        .ok_or("the subscription ended")??;
    writeln!(
        out,
        "pub/sub: published to {receivers} subscriber(s) on {channel}; received balance {}",
        money(received.balance_minor)?
    )?;

    // 6. Health of every backend.
    let (status, reports) = ports.health().await;
    writeln!(out, "health: {status:?}")?;
    for r in &reports {
        let details: String = r.details.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        writeln!(out, "  {}: {:?} in {:?}{details}", r.component, r.status, r.latency)?;
    }
    Ok(Outcome { user, created, balance_minor, burst: (allowed, refused), received })
}

/// The signed sum of every transaction of `user`, read page by page.
async fn balance(ports: &Ports, user: UserId) -> Result<i64, FlowError> {
    let range = TimeRange::new(Utc::now() - chrono::Duration::days(1), Utc::now() + chrono::Duration::days(1))?;
    let mut page = PageRequest::first(2);
    let mut total = 0i64;
    loop {
        let got = ports.transactions.history(&user, range, page).await?;
        for t in &got.items {
            total += t.kind.signed(t.amount.amount_minor());
        }
        match got.next_cursor {
            Some(cursor) => page = PageRequest::Keyset { after: Some(cursor), limit: 2 },
            None => return Ok(total),
        }
    }
}

fn money(minor: i64) -> Result<Money, FlowError> {
    Ok(Money::new(minor, "EUR")?)
}
