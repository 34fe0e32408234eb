//! The app code of the finance example: a ledger that records transactions under a per-account lock and reads an
//! account's history in a time range, page by page. It knows only ports.

use std::sync::Arc;
use std::time::Duration;

use cpc_data::domain::{Money, NewTransaction, Timestamp, Transaction, TransactionKind, UserId, ValidationError};
use cpc_data::ports::{KvError, Lock, LockKey, Page, PageRequest, RepoError, TimeRange, TransactionRepository};

/// Why a ledger operation failed, in terms a caller (or an HTTP layer) can act on.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The input is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The account does not exist (404).
    #[error("no account {0}")]
    UnknownAccount(UserId),
    /// Another writer held the account for longer than we wait (409; retry).
    #[error("account {0} is busy; try again")]
    Busy(UserId),
    /// A backend is down (503; retry later).
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
}

impl From<RepoError> for LedgerError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<KvError> for LedgerError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// One entry to record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Amount in minor units (cents), positive; `kind` gives the direction.
    pub amount_minor: i64,
    /// ISO currency code.
    pub currency: &'static str,
    /// Credit or debit.
    pub kind: TransactionKind,
    /// What it was.
    pub description: &'static str,
    /// When it happened.
    pub occurred_at: Timestamp,
}

/// The ledger service.
pub struct Ledger {
    transactions: Arc<dyn TransactionRepository>,
    lock: Arc<dyn Lock>,
    lease: Duration,
    wait: Duration,
}

impl Ledger {
    /// A ledger that holds an account's lock for at most 10 s and waits at most 2 s for it.
    pub fn new(transactions: Arc<dyn TransactionRepository>, lock: Arc<dyn Lock>) -> Self {
        Self { transactions, lock, lease: Duration::from_secs(10), wait: Duration::from_secs(2) }
    }

    /// Records `entries` for `account`, all while holding the account's lock, so two writers never interleave.
    pub async fn record(&self, account: UserId, entries: &[Entry]) -> Result<Vec<Transaction>, LedgerError> {
        // Validate everything before taking the lock: bad input costs no round trip.
        let new = entries
            .iter()
            .map(|e| {
                let amount = Money::new(e.amount_minor, e.currency)?;
                NewTransaction::new(account, amount, e.kind, e.description, e.occurred_at)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = LockKey::new(format!("account:{account}"))?;
        let lease = match self.lock.acquire(&key, self.lease, self.wait).await {
            Ok(lease) => lease,
            Err(KvError::Timeout { .. }) => return Err(LedgerError::Busy(account)),
            Err(e) => return Err(e.into()),
        };
        let mut recorded = Vec::with_capacity(new.len());
        let mut outcome = Ok(());
        for n in new {
            match self.transactions.create(n).await {
                Ok(t) => recorded.push(t),
                // The account (`user_id`) refers to no user.
                Err(RepoError::Validation(e)) if e.field == "user_id" => {
                    outcome = Err(LedgerError::UnknownAccount(account));
                    break;
                }
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            }
        }
        // Release even after a failed write; a lost lease means the writes were not exclusive.
        self.lock.release(lease).await?;
        outcome.map(|()| recorded)
    }

    /// One page of `account`'s transactions in `range`.
    pub async fn history(
        &self,
        account: UserId,
        range: TimeRange,
        page: PageRequest,
    ) -> Result<Page<Transaction>, LedgerError> {
        Ok(self.transactions.history(&account, range, page).await?)
    }

    /// The signed sum of `account`'s transactions in `range` (credits minus debits), read in pages of 100.
    pub async fn balance(&self, account: UserId, range: TimeRange) -> Result<i64, LedgerError> {
        let mut page = PageRequest::first(100);
        let mut total = 0i64;
        loop {
            let got = self.history(account, range, page).await?;
            total += got.items.iter().map(|t| t.kind.signed(t.amount.amount_minor())).sum::<i64>();
            match got.next_cursor {
                Some(cursor) => page = PageRequest::Keyset { after: Some(cursor), limit: 100 },
                None => return Ok(total),
            }
        }
    }
}
