//! # cpc-domain
//!
//! The models the CPC apps share, as plain values: [`User`], [`Entity`], [`Customer`] and the finance
//! [`Transaction`], each with its `New*` and `Update*` forms, and the value types they are made of ([`Email`],
//! [`Username`], [`Money`], ids as newtypes, [`Version`]).
//!
//! Everything that can be invalid is validated in a constructor that can fail (`Email::parse`, `Username::parse`,
//! `Money::new`), and each [`ValidationError`] names the field and the rule it broke. Nothing here does I/O.

mod customer;
mod email;
mod entity;
mod error;
mod ids;
mod money;
mod transaction;
mod user;
mod username;
mod version;

pub use customer::{Customer, NewCustomer, UpdateCustomer};
pub use email::Email;
pub use entity::{Entity, EntityKind, NewEntity, UpdateEntity};
pub use error::ValidationError;
pub use ids::{CustomerId, EntityId, TransactionId, UserId};
pub use money::{Currency, Money};
pub use transaction::{NewTransaction, Transaction, TransactionKind, UpdateTransaction};
pub use user::{NewUser, UpdateUser, User};
pub use username::Username;
pub use version::Version;

/// A point in time, always UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
