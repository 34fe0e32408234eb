use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ValidationError;

/// An ISO 4217-shaped currency code: three uppercase ASCII letters (`EUR`, `USD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a code; lowercase input is not accepted, so stored codes have one spelling.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(ValidationError::new("currency", "must be three uppercase letters (ISO 4217)")),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII uppercase letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in integer minor units (cents) of one currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount of `amount_minor` minor units of `currency` (a code such as `"EUR"`).
    pub fn new(amount_minor: i64, currency: &str) -> Result<Self, ValidationError> {
        Ok(Self { amount_minor, currency: Currency::parse(currency)? })
    }

    /// An amount in an already-parsed currency.
    pub const fn of(amount_minor: i64, currency: Currency) -> Self {
        Self { amount_minor, currency }
    }

    /// The amount in minor units.
    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// The sum, or an error if the currencies differ or the sum overflows.
    pub fn checked_add(self, other: Money) -> Result<Money, ValidationError> {
        if self.currency != other.currency {
            return Err(ValidationError::new("currency", "amounts in different currencies cannot be added"));
        }
        self.amount_minor
            .checked_add(other.amount_minor)
            .map(|amount_minor| Money { amount_minor, currency: self.currency })
            .ok_or_else(|| ValidationError::new("amount_minor", "sum overflows 64 bits"))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_rules() {
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert_eq!(Currency::parse(bad).unwrap_err().field, "currency");
        }
    }

    #[test]
    fn money_adds_in_one_currency_only() {
        let a = Money::new(1050, "EUR").unwrap();
        let b = Money::new(-50, "EUR").unwrap();
        assert_eq!(a.checked_add(b).unwrap().amount_minor(), 1000);
        assert!(a.checked_add(Money::new(1, "USD").unwrap()).is_err());
        assert!(Money::new(i64::MAX, "EUR").unwrap().checked_add(a).is_err());
        assert_eq!(Money::new(-1234, "USD").unwrap().to_string(), "-12.34 USD");
    }
}
