use serde::{Deserialize, Serialize};

use crate::{CustomerId, Email, Timestamp, ValidationError, Version};

/// A CRM customer. The e-mail address is unique (case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Unique id.
    pub id: CustomerId,
    /// Unique e-mail address.
    pub email: Email,
    /// Display name, 1 to 200 characters, not blank.
    pub name: String,
    /// Optional phone number, free-form, at most 32 characters.
    pub phone: Option<String>,
    /// When the row was created.
    pub created_at: Timestamp,
    /// When the row was last changed.
    pub updated_at: Timestamp,
    /// Optimistic-locking version.
    pub version: Version,
}

/// What it takes to create a [`Customer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCustomer {
    /// Unique e-mail address.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Optional phone number.
    pub phone: Option<String>,
}

impl NewCustomer {
    /// Validates raw input into a new customer.
    pub fn new(email: &str, name: &str, phone: Option<&str>) -> Result<Self, ValidationError> {
        Ok(Self {
            email: Email::parse(email)?,
            name: validate_name(name)?,
            phone: phone.map(validate_phone).transpose()?,
        })
    }
}

/// A partial change to a [`Customer`]. `phone: Some(None)` clears the phone number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCustomer {
    /// A new address.
    pub email: Option<Email>,
    /// A new name (validate with [`UpdateCustomer::name`]).
    pub name: Option<String>,
    /// A new phone number, or `Some(None)` to clear it.
    pub phone: Option<Option<String>>,
}

impl UpdateCustomer {
    /// An update that renames the customer, validating the name.
    pub fn name(name: &str) -> Result<Self, ValidationError> {
        Ok(Self { name: Some(validate_name(name)?), ..Self::default() })
    }
}

pub(crate) fn validate_name(name: &str) -> Result<String, ValidationError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(ValidationError::new("name", "must be 1 to 200 characters and not blank"));
    }
    Ok(n.to_owned())
}

fn validate_phone(phone: &str) -> Result<String, ValidationError> {
    let p = phone.trim();
    if p.is_empty() || p.chars().count() > 32 || p.chars().any(char::is_control) {
        return Err(ValidationError::new("phone", "must be 1 to 32 printable characters"));
    }
    Ok(p.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_customer_validates_each_field() {
        assert!(NewCustomer::new("c@x.io", "Ada", Some("+44 1")).is_ok());
        assert_eq!(NewCustomer::new("bad", "Ada", None).unwrap_err().field, "email");
        assert_eq!(NewCustomer::new("c@x.io", "  ", None).unwrap_err().field, "name");
        assert_eq!(NewCustomer::new("c@x.io", "Ada", Some(&"9".repeat(40))).unwrap_err().field, "phone");
    }
}
