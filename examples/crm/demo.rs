//! The CRM demo: register two customers, find one by e-mail in another case, and show that a second customer
//! with a taken e-mail address is a clear conflict.

use std::io::Write;

use cpc_data::wiring::Ports;

use crate::common::{FlowError, run_tag};
use crate::service::{CrmError, Directory};

/// Runs the demo, writing what happens to `out`.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<(), FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    let directory = Directory::new(ports.customers.clone());
    let tag = run_tag();
    let (ada, bob) = (format!("ada.{tag}@example.org"), format!("bob.{tag}@example.org"));
    for (email, name, phone) in [(&ada, "Ada Lovelace", Some("+44 20 7946 0001")), (&bob, "Bob Noyce", None)] {
        let c = directory.register(email, name, phone).await?;
        writeln!(out, "registered: {} <{}> phone {}", c.name, c.email, c.phone.as_deref().unwrap_or("-"))?;
    }
    let shouted = ada.to_uppercase();
    let found = directory.find_by_email(&shouted).await?.ok_or("the customer was not found")?;
    writeln!(out, "found by {shouted}: {} (registered as {})", found.name, found.email)?;
    match directory.register(&shouted, "Someone Else", None).await {
        Err(e @ CrmError::EmailTaken(_)) => writeln!(out, "conflict: {e}")?,
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }
    match directory.register("not-an-email", "Nobody", None).await {
        Err(e @ CrmError::Invalid(_)) => writeln!(out, "invalid: {e}")?,
        other => return Err(format!("expected a validation error, got {other:?}").into()),
    }
    let nobody = format!("nobody.{tag}@example.org");
    writeln!(
        out,
        "find {nobody}: {}",
        if directory.find_by_email(&nobody).await?.is_some() { "found" } else { "none" }
    )?;
    Ok(())
}
