//! Ids as newtypes over UUIDs, so a `UserId` can never be passed where a `CustomerId` is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

use crate::ValidationError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, unique id. UUIDv7: time-ordered, so ids sort roughly by creation.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses the hyphenated or simple text form of a UUID.
            pub fn parse(s: &str) -> Result<Self, ValidationError> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| ValidationError::new($field, "must be a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

uuid_id!(
    /// The id of a [`User`](crate::User).
    UserId,
    "user_id"
);
uuid_id!(
    /// The id of an [`Entity`](crate::Entity).
    EntityId,
    "entity_id"
);
uuid_id!(
    /// The id of a [`Customer`](crate::Customer).
    CustomerId,
    "customer_id"
);
uuid_id!(
    /// The id of a finance [`Transaction`](crate::Transaction).
    TransactionId,
    "transaction_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_reject_garbage() {
        let id = UserId::new();
        assert_eq!(UserId::parse(&id.to_string()), Ok(id));
        let err = UserId::parse("not-a-uuid").unwrap_err();
        assert_eq!(err.field, "user_id");
    }

    #[test]
    fn new_ids_are_unique_and_time_ordered() {
        let a = EntityId::new();
        let b = EntityId::new();
        assert_ne!(a, b);
        assert!(a < b);
    }
}
