//! The app code of the CRM example: register customers (one per e-mail address, whatever its case) and find them by
//! e-mail. It knows only the `CustomerRepository` port.

use std::sync::Arc;

use cpc_data::domain::{Customer, Email, NewCustomer, ValidationError};
use cpc_data::ports::{ConflictKind, CustomerRepository, RepoError};

/// Why a CRM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// The input is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A customer with this e-mail address exists already (409).
    #[error("a customer with e-mail {0} already exists")]
    EmailTaken(String),
    /// The database is down (503; retry later).
    #[error("CRM unavailable: {0}")]
    Unavailable(String),
}

impl From<RepoError> for CrmError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// The customer directory.
pub struct Directory {
    customers: Arc<dyn CustomerRepository>,
}

impl Directory {
    /// A directory over `customers`.
    pub fn new(customers: Arc<dyn CustomerRepository>) -> Self {
        Self { customers }
    }

    /// Registers a customer; an e-mail address that is taken (in any case) is [`CrmError::EmailTaken`].
    pub async fn register(&self, email: &str, name: &str, phone: Option<&str>) -> Result<Customer, CrmError> {
        let new = NewCustomer::new(email, name, phone)?;
        let address = new.email.to_string();
        match self.customers.create(new).await {
            Ok(customer) => Ok(customer),
            Err(RepoError::Conflict { kind: ConflictKind::Duplicate { .. }, .. }) => Err(CrmError::EmailTaken(address)),
            Err(e) => Err(e.into()),
        }
    }

    /// The customer with this e-mail address (compared without case), if any.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Customer>, CrmError> {
        let email = Email::parse(email)?;
        Ok(self.customers.find_by_email(&email).await?)
    }
}
