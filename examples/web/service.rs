//! The app code of the web service: accounts that sign up, log in and transfer money between each other. It knows
//! only ports.
//!
//! * Sign-up creates the user and credits an opening deposit in **one** unit of work: both or neither.
//! * Log-in is by username, with the e-mail address as the credential. The domain's `User` has no password
//!   (password hashing is the app's business, not the data library's): this is a demo credential, not security.
//! * A transfer takes the locks of both accounts **in id order** (two opposite transfers cannot deadlock), checks
//!   the sender's balance on the ledger, and records the debit and the credit in one unit of work.
//! * Balances are computed from the ledger and cached; a cache that is down only makes them slower.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cpc_data::domain::{
    Email, Money, NewTransaction, NewUser, Transaction, TransactionKind, User, UserId, Username, ValidationError,
};
use cpc_data::ports::{
    Cache, CacheExt, CacheKey, ConflictKind, KvError, Lock, LockKey, LockLease, PageRequest, RepoError, TimeRange,
    TransactionRepository, UnitOfWork, UnitOfWorkExt, UserRepository,
};

/// The currency of every account.
pub const CURRENCY: &str = "EUR";
/// What a new account is credited with, in minor units (100.00 EUR).
pub const OPENING_DEPOSIT: i64 = 10_000;
/// How long a cached balance lives.
pub const BALANCE_TTL: Duration = Duration::from_secs(60);

/// Why an operation failed, in terms the HTTP layer maps to a status code.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The input is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The username or e-mail is taken (409).
    #[error("{field} is already taken")]
    Taken {
        /// Which field.
        field: String,
    },
    /// No user with that username and e-mail (401).
    #[error("unknown username or e-mail")]
    BadCredentials,
    /// The recipient of a transfer does not exist (404).
    #[error("no user {0}")]
    UnknownRecipient(String),
    /// The sender's balance does not cover the amount (422).
    #[error("insufficient funds: the balance is {balance}")]
    InsufficientFunds {
        /// The sender's balance.
        balance: Money,
    },
    /// Another transfer held an account for longer than we wait (409; retry).
    #[error("account {0} is busy; try again")]
    Busy(UserId),
    /// A backend is down (503; retry later).
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl From<RepoError> for AccountError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict { kind: ConflictKind::Duplicate { field }, .. } => Self::Taken { field },
            RepoError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<KvError> for AccountError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The sender's debit.
    pub debit: Transaction,
    /// The recipient's credit.
    pub credit: Transaction,
    /// The sender's balance afterwards, in minor units.
    pub balance: i64,
}

/// The ports the service needs.
#[derive(Clone)]
pub struct AccountPorts {
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// The ledger.
    pub transactions: Arc<dyn TransactionRepository>,
    /// Atomic writes.
    pub unit_of_work: Arc<dyn UnitOfWork>,
    /// Per-account locks.
    pub lock: Arc<dyn Lock>,
    /// Cached balances.
    pub cache: Arc<dyn Cache>,
}

/// The accounts service.
pub struct Accounts {
    ports: AccountPorts,
    lease: Duration,
    wait: Duration,
}

impl Accounts {
    /// A service that holds an account's lock for at most 10 s and waits at most 2 s for it.
    pub fn new(ports: AccountPorts) -> Self {
        Self { ports, lease: Duration::from_secs(10), wait: Duration::from_secs(2) }
    }

    /// Creates the user and credits the opening deposit, in one unit of work.
    pub async fn sign_up(&self, username: &str, email: &str) -> Result<User, AccountError> {
        let new = NewUser::new(username, email)?;
        let deposit = Money::new(OPENING_DEPOSIT, CURRENCY)?;
        self.ports
            .unit_of_work
            .run(|tx| {
                Box::pin(async move {
                    let user = tx.users().create(new).await?;
                    let opening =
                        NewTransaction::new(user.id, deposit, TransactionKind::Credit, "opening deposit", Utc::now())?;
                    tx.transactions().create(opening).await?;
                    Ok::<_, AccountError>(user)
                })
            })
            .await
    }

    /// The user named `username` whose e-mail is `email` (in any case); [`AccountError::BadCredentials`] if there is
    /// none, without saying which of the two was wrong.
    pub async fn log_in(&self, username: &str, email: &str) -> Result<User, AccountError> {
        let (Ok(username), Ok(email)) = (Username::parse(username), Email::parse(email)) else {
            return Err(AccountError::BadCredentials);
        };
        match self.ports.users.find_by_username(&username).await? {
            Some(user) if user.email.normalized() == email.normalized() => Ok(user),
            _ => Err(AccountError::BadCredentials),
        }
    }

    /// `user`'s balance in minor units: from the cache, else from the ledger (then cached).
    pub async fn balance(&self, user: UserId) -> Result<i64, AccountError> {
        let key = balance_key(user)?;
        if let Ok(Some(cached)) = self.ports.cache.get::<i64>(&key).await {
            return Ok(cached);
        }
        let balance = self.ledger_balance(user).await?;
        // Set only if absent: a transfer that committed meanwhile has written the newer figure, which wins.
        // A cache that is down is no reason to fail a read.
        let _ = self.ports.cache.set_if_absent(&key, &balance, Some(BALANCE_TTL)).await;
        Ok(balance)
    }

    /// Moves `amount_minor` from `from` to the user named `to`, under both accounts' locks.
    pub async fn transfer(&self, from: UserId, to: &str, amount_minor: i64) -> Result<Receipt, AccountError> {
        let amount = Money::new(amount_minor, CURRENCY)?;
        if amount_minor <= 0 {
            return Err(ValidationError::new("amount", "must be positive").into());
        }
        let to_name = Username::parse(to)?;
        let recipient = self.ports.users.find_by_username(&to_name).await?;
        let recipient = recipient.ok_or_else(|| AccountError::UnknownRecipient(to.to_owned()))?;
        if recipient.id == from {
            return Err(ValidationError::new("to", "must be another user").into());
        }
        let leases = self.lock_both(from, recipient.id).await?;
        let outcome = self.transfer_locked(from, recipient.id, amount).await;
        // The transfer is committed (or not) by now; a lease that expired meanwhile cannot change that, and the
        // lock expires by itself, so a failed release is not the caller's error.
        for lease in leases.into_iter().rev() {
            let _ = self.ports.lock.release(lease).await;
        }
        outcome
    }

    /// Takes both accounts' locks, the smaller id first; releases the first if the second cannot be had.
    async fn lock_both(&self, a: UserId, b: UserId) -> Result<[LockLease; 2], AccountError> {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        let held = self.lock_account(first).await?;
        match self.lock_account(second).await {
            Ok(lease) => Ok([held, lease]),
            Err(e) => {
                let _ = self.ports.lock.release(held).await;
                Err(e)
            }
        }
    }

    async fn lock_account(&self, account: UserId) -> Result<LockLease, AccountError> {
        let key = LockKey::new(format!("account:{account}"))?;
        match self.ports.lock.acquire(&key, self.lease, self.wait).await {
            Ok(lease) => Ok(lease),
            Err(KvError::Timeout { .. }) => Err(AccountError::Busy(account)),
            Err(e) => Err(e.into()),
        }
    }

    /// The part of a transfer that runs under both locks.
    async fn transfer_locked(&self, from: UserId, to: UserId, amount: Money) -> Result<Receipt, AccountError> {
        let (from_balance, to_balance) = (self.ledger_balance(from).await?, self.ledger_balance(to).await?);
        if from_balance < amount.amount_minor() {
            return Err(AccountError::InsufficientFunds { balance: Money::new(from_balance, CURRENCY)? });
        }
        let now = Utc::now();
        let debit = NewTransaction::new(from, amount, TransactionKind::Debit, "transfer out", now)?;
        let credit = NewTransaction::new(to, amount, TransactionKind::Credit, "transfer in", now)?;
        let (debit, credit) = self
            .ports
            .unit_of_work
            .run(|tx| {
                Box::pin(async move {
                    let debit = tx.transactions().create(debit).await?;
                    let credit = tx.transactions().create(credit).await?;
                    Ok::<_, AccountError>((debit, credit))
                })
            })
            .await?;
        let balance = from_balance - amount.amount_minor();
        // Still under both locks: the new figures are exact. If the cache cannot take them, drop the old ones; if
        // it is unreachable altogether, a figure cached earlier may be served until its TTL runs out.
        for (user, figure) in [(from, balance), (to, to_balance + amount.amount_minor())] {
            let key = balance_key(user)?;
            if self.ports.cache.set(&key, &figure, Some(BALANCE_TTL)).await.is_err() {
                let _ = self.ports.cache.delete(&key).await;
            }
        }
        Ok(Receipt { debit, credit, balance })
    }

    /// The signed sum of `user`'s transactions (credits minus debits), read from the ledger in pages of 100.
    async fn ledger_balance(&self, user: UserId) -> Result<i64, AccountError> {
        let range = TimeRange::new(DateTime::UNIX_EPOCH, Utc::now() + chrono::Duration::days(1))?;
        let mut page = PageRequest::first(100);
        let mut total = 0i64;
        loop {
            let got = self.ports.transactions.history(&user, range, page).await?;
            total += got.items.iter().map(|t| t.kind.signed(t.amount.amount_minor())).sum::<i64>();
            match got.next_cursor {
                Some(cursor) => page = PageRequest::Keyset { after: Some(cursor), limit: 100 },
                None => return Ok(total),
            }
        }
    }
}

/// Where `user`'s balance is cached.
pub fn balance_key(user: UserId) -> Result<CacheKey, ValidationError> {
    CacheKey::new(format!("balance:{user}"))
}
