//! A composition root: wires in-memory adapters into the sign-up service and runs it.
//!
//! `cargo run --example signup`

mod service;
#[cfg(test)]
mod tests_fakes;
#[cfg(test)]
mod tests_mocks;

use std::sync::Arc;

use cpc_testkit::memory::{InMemoryDatabase, InMemoryRateLimiter, InMemorySessionStore};
use service::{SignupError, SignupService};

/// The one place that names adapter types.
fn wire() -> SignupService {
    let db = InMemoryDatabase::new();
    SignupService::new(
        Arc::new(db.users()),
        Arc::new(InMemoryRateLimiter::default()),
        Arc::new(InMemorySessionStore::default()),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = wire();
    let (user, session) = service.signup("203.0.113.7", "ada", "ada@example.org").await?;
    println!("signed up {} <{}> as {}", user.username, user.email, user.id);
    let me = service.whoami(&session).await?.ok_or("the new session should load")?;
    println!("session belongs to {}", me.username);
    match service.signup("203.0.113.8", "ada2", "ADA@example.org").await {
        Err(SignupError::Taken { field }) => println!("second sign-up with the same e-mail refused: {field} taken"),
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }
    Ok(())
}
