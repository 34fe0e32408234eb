//! The consent demo: a subject grants three purposes, a second grant of one is refused, a revocation and a
//! second revocation that writes nothing, a grant again after the revocation, two concurrent grants of one
//! purpose (the unique index lets exactly one in), the current state in one query and the history paged.

use std::io::Write;

use cpc_data::ports::{Filter, RecordStoreExt};
use cpc_data::wiring::Ports;

use crate::common::{FlowError, run_tag};
use crate::records::{Consent, ConsentField};
use crate::service::{ConsentError, ConsentPorts, Consents};

/// What the demo computed, for tests.
#[cfg_attr(not(test), allow(dead_code, reason = "read by the tests"))]
#[derive(Debug)]
pub struct Outcome {
    /// The active purposes at the end, in order.
    pub current: Vec<String>,
    /// How many grants each history page held.
    pub pages: Vec<usize>,
    /// The purposes of the history, newest grant first.
    pub history: Vec<String>,
}

/// Runs the demo, writing what happens to `out`.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<Outcome, FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    let consents = std::sync::Arc::new(Consents::new(ConsentPorts::from_store(&*ports.records)?));
    let repo = ports.records.repo::<Consent>()?;
    let subject = format!("customer-{}", run_tag());
    writeln!(out, "subject: {subject}")?;

    for purpose in ["analytics", "newsletter", "profiling"] {
        let c = consents.grant(&subject, purpose, "signup-form").await?;
        writeln!(out, "granted {} (version {})", c.purpose, c.version)?;
    }
    match consents.grant(&subject, "newsletter", "settings-page").await {
        Err(e @ ConsentError::AlreadyGranted { .. }) => writeln!(out, "refused: {e}")?,
        other => return Err(format!("expected an active grant to be refused, got {other:?}").into()),
    }

    let revoked = consents.revoke(&subject, "newsletter").await?.ok_or("the newsletter grant was not revoked")?;
    writeln!(out, "revoked newsletter (version {})", revoked.version)?;
    let again = consents.revoke(&subject, "newsletter").await?;
    let stored = repo.find_by_id(&revoked.id).await?.ok_or("the revoked grant is gone")?;
    let rows = repo.count(&[Filter::Eq(ConsentField::subject, subject.as_str().into())]).await?;
    writeln!(
        out,
        "revoked again: {} ; version still {}, {rows} row(s)",
        if again.is_none() { "nothing to do" } else { "REVOKED TWICE" },
        stored.version
    )?;
    let nothing = consents.revoke(&subject, "telemetry").await?;
    writeln!(out, "revoked never-granted telemetry: {}", if nothing.is_none() { "nothing to do" } else { "?" })?;

    let regranted = consents.grant(&subject, "newsletter", "settings-page").await?;
    writeln!(out, "granted newsletter again from {}", regranted.source)?;

    // Two grants of one purpose at once: the partial unique index lets exactly one in.
    let (a, b) =
        tokio::join!(consents.grant(&subject, "marketing", "app"), consents.grant(&subject, "marketing", "web"),);
    let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
    let refused = [&a, &b].iter().filter(|r| matches!(r, Err(ConsentError::AlreadyGranted { .. }))).count();
    let active = repo
        .count(&[
            Filter::Eq(ConsentField::subject, subject.as_str().into()),
            Filter::Eq(ConsentField::purpose, "marketing".into()),
            Filter::IsNull(ConsentField::revoked_at),
        ])
        .await?;
    writeln!(out, "concurrent grants: {won} recorded, {refused} refused; {active} active marketing grant(s)")?;

    let current: Vec<String> = consents.current(&subject).await?.into_iter().map(|c| c.purpose).collect();
    writeln!(out, "current: {}", current.join(", "))?;

    let (mut pages, mut history, mut cursor) = (Vec::new(), Vec::new(), None);
    loop {
        let page = consents.history(&subject, cursor, 2).await?;
        pages.push(page.items.len());
        history.extend(page.items.iter().map(|c| match c.revoked_at {
            Some(_) => format!("{} (revoked)", c.purpose),
            None => c.purpose.clone(),
        }));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    writeln!(out, "history: {} grants over {} pages: {}", history.len(), pages.len(), history.join(", "))?;
    Ok(Outcome { current, pages, history })
}
