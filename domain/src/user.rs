use serde::{Deserialize, Serialize};

use crate::{Email, Timestamp, UserId, Username, ValidationError, Version};

/// A user account, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique id.
    pub id: UserId,
    /// Unique handle.
    pub username: Username,
    /// Unique (case-insensitively) e-mail address.
    pub email: Email,
    /// When the row was created.
    pub created_at: Timestamp,
    /// When the row was last changed.
    pub updated_at: Timestamp,
    /// Optimistic-locking version.
    pub version: Version,
}

/// What it takes to create a [`User`]; the store assigns id, timestamps and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    /// Unique handle.
    pub username: Username,
    /// Unique (case-insensitively) e-mail address.
    pub email: Email,
}

impl NewUser {
    /// Validates raw input into a new user.
    pub fn new(username: &str, email: &str) -> Result<Self, ValidationError> {
        Ok(Self { username: Username::parse(username)?, email: Email::parse(email)? })
    }
}

/// A partial change to a [`User`]: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateUser {
    /// A new handle.
    pub username: Option<Username>,
    /// A new address.
    pub email: Option<Email>,
}

impl UpdateUser {
    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.username.is_none() && self.email.is_none()
    }
}
