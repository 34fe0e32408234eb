use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{Money, Timestamp, TransactionId, UserId, ValidationError, Version};

/// Which way money moved, from the user's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// Money in.
    Credit,
    /// Money out.
    Debit,
}

impl TransactionKind {
    /// The stored spelling: `"credit"` or `"debit"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Debit => "debit",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "credit" => Ok(Self::Credit),
            "debit" => Ok(Self::Debit),
            _ => Err(ValidationError::new("kind", "must be 'credit' or 'debit'")),
        }
    }

    /// The signed amount: positive for a credit, negative for a debit.
    pub fn signed(self, amount_minor: i64) -> i64 {
        match self {
            Self::Credit => amount_minor,
            Self::Debit => -amount_minor,
        }
    }
}

impl fmt::Display for TransactionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finance ledger entry of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Unique id.
    pub id: TransactionId,
    /// Whose ledger this entry belongs to.
    pub user_id: UserId,
    /// The amount, always positive; [`Transaction::kind`] says the direction.
    pub amount: Money,
    /// Credit or debit.
    pub kind: TransactionKind,
    /// Free text, at most 500 characters.
    pub description: String,
    /// When the money moved (not when the row was written).
    pub occurred_at: Timestamp,
    /// When the row was created.
    pub created_at: Timestamp,
    /// When the row was last changed.
    pub updated_at: Timestamp,
    /// Optimistic-locking version.
    pub version: Version,
}

/// What it takes to record a [`Transaction`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTransaction {
    /// Whose ledger.
    pub user_id: UserId,
    /// A positive amount.
    pub amount: Money,
    /// Credit or debit.
    pub kind: TransactionKind,
    /// Free text.
    pub description: String,
    /// When the money moved.
    pub occurred_at: Timestamp,
}

impl NewTransaction {
    /// Validates raw input: the amount must be positive, the description at most 500 characters.
    pub fn new(
        user_id: UserId,
        amount: Money,
        kind: TransactionKind,
        description: &str,
        occurred_at: Timestamp,
    ) -> Result<Self, ValidationError> {
        if amount.amount_minor() <= 0 {
            return Err(ValidationError::new("amount", "must be positive; the kind gives the direction"));
        }
        Ok(Self { user_id, amount, kind, description: validate_description(description)?, occurred_at })
    }
}

/// A correction to a [`Transaction`]; amounts are never edited (record a reversing entry instead).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateTransaction {
    /// A new description.
    pub description: Option<String>,
}

impl UpdateTransaction {
    /// Validates a new description.
    pub fn description(text: &str) -> Result<Self, ValidationError> {
        Ok(Self { description: Some(validate_description(text)?) })
    }
}

fn validate_description(d: &str) -> Result<String, ValidationError> {
    if d.chars().count() > 500 {
        return Err(ValidationError::new("description", "must be at most 500 characters"));
    }
    Ok(d.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_must_be_positive_and_kinds_round_trip() {
        let eur = |n| Money::new(n, "EUR").unwrap();
        let now = chrono::Utc::now();
        assert!(NewTransaction::new(UserId::new(), eur(1), TransactionKind::Debit, "x", now).is_ok());
        assert_eq!(
            NewTransaction::new(UserId::new(), eur(0), TransactionKind::Debit, "x", now).unwrap_err().field,
            "amount"
        );
        assert_eq!(UpdateTransaction::description(&"d".repeat(501)).unwrap_err().field, "description");
        for k in [TransactionKind::Credit, TransactionKind::Debit] {
            assert_eq!(TransactionKind::parse(k.as_str()), Ok(k));
        }
        assert_eq!(TransactionKind::Debit.signed(5), -5);
    }
}
