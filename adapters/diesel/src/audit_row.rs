//! One `audit_log` row as the repositories hand it to the connection ([`RecordConn::write_audit`]), and what it
//! records.
//!
//! [`RecordConn::write_audit`]: crate::sql::RecordConn::write_audit

use cpc_domain::Timestamp;

use crate::error::ErrorContext;

/// What a write did to a row: the `audit_log.action` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A row was inserted.
    Create,
    /// A row was changed.
    Update,
    /// A row was deleted.
    Delete,
}

impl AuditAction {
    /// `"create"`, `"update"` or `"delete"`, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// One `audit_log` row to insert.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The table written, e.g. `"users"`.
    pub table: &'static str,
    /// The row written: its key as text (a UUID, or a database-assigned integer).
    pub row_id: String,
    /// What was done.
    pub action: AuditAction,
    /// Who did it, if known.
    pub actor: Option<String>,
    /// When: the row's own timestamp for creates and updates, the deletion time for deletes.
    pub at: Timestamp,
}

/// Where audit insert errors happen.
pub(crate) const fn audit_context(backend: &'static str) -> ErrorContext {
    ErrorContext { backend, table: "audit_log", entity: "audit log", reference_field: "" }
}
