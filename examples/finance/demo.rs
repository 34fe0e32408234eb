//! The finance demo: open an account, record transactions under its lock, page through a week of history, and
//! show the refusals (an unknown account, a bad amount).

use std::io::Write;
use std::sync::Arc;

use chrono::{Duration, Utc};
use cpc_data::domain::{Money, NewUser, TransactionKind, UserId};
use cpc_data::ports::{PageRequest, TimeRange};
use cpc_data::wiring::Ports;

use crate::common::{FlowError, run_tag};
use crate::service::{Entry, Ledger};

/// What the demo computed, for tests.
#[cfg_attr(not(test), allow(dead_code, reason = "read by the tests"))]
#[derive(Debug)]
pub struct Outcome {
    /// The balance over the last week, and over all time, in cents.
    pub balances: (i64, i64),
    /// How many transactions each history page held.
    pub pages: Vec<usize>,
}

/// Runs the demo, writing what happens to `out`.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<Outcome, FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    let tag = run_tag();
    let account =
        ports.users.create(NewUser::new(&format!("trader{tag}"), &format!("trader{tag}@example.org"))?).await?;
    writeln!(out, "account: {} ({})", account.username, account.id)?;

    let ledger = Ledger::new(ports.transactions.clone(), ports.lock.clone());
    let now = Utc::now();
    let entry = |amount_minor, kind, description, days_ago| Entry {
        amount_minor,
        currency: "EUR",
        kind,
        description,
        occurred_at: now - Duration::days(days_ago),
    };
    let entries = [
        entry(100_000, TransactionKind::Credit, "opening deposit", 30),
        entry(45_000, TransactionKind::Debit, "rent", 5),
        entry(250_000, TransactionKind::Credit, "salary", 3),
        entry(320, TransactionKind::Debit, "coffee", 1),
        entry(5_675, TransactionKind::Debit, "groceries", 0),
    ];
    let recorded = ledger.record(account.id, &entries).await?;
    writeln!(out, "record: {} transactions under lock account:{}", recorded.len(), account.id)?;

    // Two writers at once on the same account: the lock serialises them, neither is lost.
    let ledger = Arc::new(ledger);
    let (cashback, fee) =
        ([entry(1_000, TransactionKind::Credit, "cashback", 0)], [entry(1_000, TransactionKind::Debit, "fee", 0)]);
    let (a, b) = tokio::join!(ledger.record(account.id, &cashback), ledger.record(account.id, &fee));
    writeln!(out, "concurrent writers: {} and {} transaction(s) recorded", a?.len(), b?.len())?;

    let week = TimeRange::new(now - Duration::days(7), now + Duration::seconds(1))?;
    let (mut offset, limit, mut pages) = (0u64, 2u32, Vec::new());
    loop {
        let got = ledger.history(account.id, week, PageRequest::Offset { offset, limit }).await?;
        let total = got.total.unwrap_or(0);
        let lines: Vec<String> =
            got.items.iter().map(|t| format!("{} {} {}", t.kind, t.amount, t.description)).collect();
        writeln!(out, "history page {} of the last 7 days ({total} in all): {}", pages.len() + 1, lines.join("; "))?;
        pages.push(got.items.len());
        offset += u64::from(limit);
        if offset >= total {
            break;
        }
    }
    let all_time = TimeRange::new(now - Duration::days(365), now + Duration::seconds(1))?;
    let balances = (ledger.balance(account.id, week).await?, ledger.balance(account.id, all_time).await?);
    writeln!(out, "balance: {} this week, {} in all", Money::new(balances.0, "EUR")?, Money::new(balances.1, "EUR")?)?;

    let stranger = UserId::new();
    match ledger.record(stranger, &entries[..1]).await {
        Err(e) => writeln!(out, "refused: {e}")?,
        Ok(_) => return Err("a transaction for an unknown account was recorded".into()),
    }
    match ledger.record(account.id, &[entry(-5, TransactionKind::Credit, "negative", 0)]).await {
        Err(e) => writeln!(out, "refused: {e}")?,
        Ok(_) => return Err("a negative amount was recorded".into()),
    }
    Ok(Outcome { balances, pages })
}
