//! The optional audit trail: with an [`AuditConfig`], every create, update and delete a repository makes also
//! inserts `audit_log` rows (table, row id, action, actor, time) in the same transaction as the write, so both
//! land or neither does.

use cpc_domain::Timestamp;
use cpc_ports::{RecordId, RepoError};

use super::INSERT_CHUNK;
use crate::audit_row::{AuditAction, AuditEntry};
use crate::sql::{RecordConn, SqlTable};

/// Turns the audit trail on (see [`DbManager::with_audit`](crate::DbManager::with_audit)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// Who is writing, stored in `audit_log.actor` (`NULL` when `None`).
    pub actor: Option<String>,
}

impl AuditConfig {
    /// Audit rows without an actor.
    pub fn anonymous() -> Self {
        Self { actor: None }
    }

    /// Audit rows naming `actor`.
    pub fn actor(actor: impl Into<String>) -> Self {
        Self { actor: Some(actor.into()) }
    }
}

/// Inserts one audit row per `(id, at)` for table `T`, when auditing is on (`audit` is `Some`). The caller runs
/// this on the connection and in the transaction (or savepoint) of the write it records.
pub(crate) async fn record<T, C>(
    conn: &mut C,
    audit: Option<&AuditConfig>,
    action: AuditAction,
    rows: impl IntoIterator<Item = (&T::Id, Timestamp)>,
) -> Result<(), RepoError>
where
    T: SqlTable<C>,
    C: RecordConn,
{
    let Some(audit) = audit else {
        return Ok(());
    };
    let entries: Vec<AuditEntry> = rows
        .into_iter()
        .map(|(id, at)| AuditEntry {
            table: T::CONTEXT.table,
            row_id: key_text(&id.to_value()),
            action,
            actor: audit.actor.clone(),
            at,
        })
        .collect();
    for chunk in entries.chunks(INSERT_CHUNK) {
        conn.write_audit(chunk).await?;
    }
    Ok(())
}

/// A key as `audit_log.row_id` stores it: a UUID hyphenated, an integer in decimal.
fn key_text(key: &cpc_ports::Value) -> String {
    match key {
        cpc_ports::Value::Uuid(u) => u.hyphenated().to_string(),
        cpc_ports::Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}
