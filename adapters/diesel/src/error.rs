//! Diesel errors mapped into [`cpc_ports::RepoError`] (`DbError`): each database failure a
//! caller can act on becomes its semantic variant, whatever the backend.
//!
//! | database reports                                        | becomes                                              |
//! |---------------------------------------------------------|------------------------------------------------------|
//! | unique violation (`users_email_key`, `users.username`)  | `Conflict { Duplicate { field: "email" } }`          |
//! | foreign-key violation on insert or update               | `Validation` naming the field ([`RepoError::missing_reference`]) |
//! | foreign-key violation on delete (row still referred to) | `Validation` naming the field ([`RepoError::still_referenced`])  |
//! | check violation (`users_username_check`)               | `Validation` naming the field                        |
//! | serialization failure, deadlock, SQLite busy/locked     | `Conflict { Concurrent }` (retryable)                |
//! | `statement_timeout` or `lock_timeout` ran out           | `Timeout` naming the setting (retryable)             |
//! | lost or closed connection, broken transaction state     | `Unavailable` (retryable)                            |
//! | `NotFound`                                              | `NotFound`                                           |
//! | anything else                                           | `Backend { backend: "postgres" \| "sqlite" }`        |

use cpc_domain::ValidationError;
use cpc_ports::{ConflictKind, RepoError};
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};

/// Where an error happened: which backend, which table, which record type.
#[derive(Debug, Clone, Copy)]
pub struct ErrorContext {
    /// `"postgres"` or `"sqlite"`.
    pub backend: &'static str,
    /// The table written or read, e.g. `"users"`.
    pub table: &'static str,
    /// The record type in errors, e.g. `"user"`.
    pub entity: &'static str,
    /// The column named by a foreign-key error of an insert or update when the database does not say which
    /// (SQLite never does): the table's own foreign key (`transactions`: `user_id`). A refused delete names
    /// `<entity>_id` there (`users`: `user_id`).
    pub reference_field: &'static str,
}

impl ErrorContext {
    /// Maps `error` in this context.
    pub fn map(&self, error: Error) -> RepoError {
        map_diesel_error(self, error)
    }

    /// Maps an error of a `DELETE` of this table's rows: there a foreign-key violation means other rows still
    /// refer to the row (SQLite does not say which side of the key failed; PostgreSQL does, and [`Self::map`]
    /// reads it).
    pub fn map_delete(&self, error: Error) -> RepoError {
        map_error(self, error, true)
    }
}

/// Maps a Diesel error into the port error (see the module documentation for the table). A foreign-key violation
/// is taken as a reference to a missing row unless PostgreSQL says a deleted row is still referred to; for a
/// `DELETE` on SQLite use [`ErrorContext::map_delete`].
pub fn map_diesel_error(ctx: &ErrorContext, error: Error) -> RepoError {
    map_error(ctx, error, false)
}

fn map_error(ctx: &ErrorContext, error: Error, deleting: bool) -> RepoError {
    let conflict = |kind| RepoError::Conflict { entity: ctx.entity, kind };
    match error {
        Error::DatabaseError(kind, info) => match classify_kind(kind, info.message()) {
            DatabaseErrorKind::UniqueViolation => {
                conflict(ConflictKind::Duplicate { field: unique_field(ctx.table, info.as_ref()) })
            }
            DatabaseErrorKind::ForeignKeyViolation => {
                // SQLite never names the key: a delete was refused by rows referring to this one (conventionally
                // through `<entity>_id`), an insert or update by this row's own reference.
                let field = info
                    .constraint_name()
                    .and_then(|c| named_field(c, info.table_name().unwrap_or(ctx.table), "_fkey"))
                    .unwrap_or_else(|| {
                        if deleting { format!("{}_id", ctx.entity) } else { ctx.reference_field.to_owned() }
                    });
                // PostgreSQL: "update or delete on table "users" violates foreign key constraint ... on table
                // "transactions"" for a referred-to row, "insert or update on table ..." for a missing one.
                if deleting || info.message().starts_with("update or delete on table") {
                    RepoError::still_referenced(field)
                } else {
                    RepoError::missing_reference(field)
                }
            }
            DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                let field = info
                    .column_name()
                    .map(str::to_owned)
                    .or_else(|| info.constraint_name().and_then(|c| named_field(c, ctx.table, "_check")))
                    .unwrap_or_else(|| ctx.table.to_owned());
                RepoError::Validation(ValidationError::new(field, info.message().to_owned()))
            }
            DatabaseErrorKind::SerializationFailure => conflict(ConflictKind::Concurrent),
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                RepoError::Unavailable { backend: ctx.backend, reason: info.message().to_owned() }
            }
            _ if is_concurrency_failure(info.message()) => conflict(ConflictKind::Concurrent),
            // The limit is not in the message; the caller's source fills in how long the call ran.
            _ if let Some(setting) = server_timeout(info.message()) => {
                RepoError::Timeout { operation: setting, after: std::time::Duration::ZERO }
            }
            _ => RepoError::backend(ctx.backend, Error::DatabaseError(kind, info)),
        },
        Error::NotFound => RepoError::NotFound { entity: ctx.entity, id: String::new() },
        Error::BrokenTransactionManager => RepoError::Unavailable {
            backend: ctx.backend,
            reason: "the connection's transaction state is broken (an interrupted transaction)".to_owned(),
        },
        other => RepoError::backend(ctx.backend, other),
    }
}

/// The kind, refined from SQLite's message when Diesel could not tell it (SQLite reports some constraint
/// failures, such as a foreign key checked when a statement ends, without the extended error code).
fn classify_kind(kind: DatabaseErrorKind, message: &str) -> DatabaseErrorKind {
    match kind {
        DatabaseErrorKind::Unknown if message.starts_with("FOREIGN KEY constraint failed") => {
            DatabaseErrorKind::ForeignKeyViolation
        }
        DatabaseErrorKind::Unknown if message.starts_with("UNIQUE constraint failed") => {
            DatabaseErrorKind::UniqueViolation
        }
        other => other,
    }
}

/// PostgreSQL's deadlock (40P01, which Diesel does not classify) and SQLite's busy and locked errors: another
/// transaction held what this one needed, so retrying the unit of work may succeed.
fn is_concurrency_failure(message: &str) -> bool {
    message.starts_with("deadlock detected")
        || message.starts_with("database is locked")
        || message.starts_with("database table is locked")
}

/// PostgreSQL's `statement_timeout` and `lock_timeout` cancellations (SQLSTATE 57014 and 55P03, which Diesel does
/// not pass on): the setting that ran out.
fn server_timeout(message: &str) -> Option<&'static str> {
    match message {
        "canceling statement due to statement timeout" => Some("statement_timeout"),
        "canceling statement due to lock timeout" => Some("lock_timeout"),
        _ => None,
    }
}

/// The field of a unique violation: PostgreSQL names the index (`users_email_key`, `users_pkey`); SQLite names the
/// column (`UNIQUE constraint failed: users.username`) or, for an index on an expression, the index
/// (`UNIQUE constraint failed: index 'users_email_key'`).
fn unique_field(table: &str, info: &(dyn DatabaseErrorInformation + Send + Sync)) -> String {
    if let Some(name) = info.constraint_name() {
        let table = info.table_name().unwrap_or(table);
        return named_field(name, table, "_key").unwrap_or_else(|| name.to_owned());
    }
    let message = info.message();
    let Some(detail) = message.strip_prefix("UNIQUE constraint failed: ") else {
        return message.to_owned();
    };
    if let Some(index) = detail.strip_prefix("index '").and_then(|s| s.strip_suffix('\'')) {
        return named_field(index, table, "_key").unwrap_or_else(|| index.to_owned());
    }
    // `users.username` or, for a composite key, `t.a, t.b`: the first column names it.
    let first = detail.split(", ").next().unwrap_or(detail);
    first.rsplit('.').next().unwrap_or(first).to_owned()
}

/// `users_email_key` -> `email`, `users_pkey` -> `id`, `transactions_user_id_fkey` -> `user_id`.
fn named_field(name: &str, table: &str, suffix: &str) -> Option<String> {
    let rest = name.strip_prefix(table)?.strip_prefix('_')?;
    if rest == "pkey" {
        return Some("id".to_owned());
    }
    let field = rest.strip_suffix(suffix).or_else(|| rest.strip_suffix("_idx")).unwrap_or(rest);
    (!field.is_empty()).then(|| field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: ErrorContext =
        ErrorContext { backend: "sqlite", table: "users", entity: "user", reference_field: "user_id" };

    fn db(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn sqlite_unique_messages_name_the_field() {
        for (message, field) in [
            ("UNIQUE constraint failed: users.username", "username"),
            ("UNIQUE constraint failed: index 'users_email_key'", "email"),
            ("UNIQUE constraint failed: users.id", "id"),
        ] {
            match USERS.map(db(DatabaseErrorKind::UniqueViolation, message)) {
                RepoError::Conflict { entity: "user", kind: ConflictKind::Duplicate { field: f } } => {
                    assert_eq!(f, field, "{message}")
                }
                other => panic!("{message}: {other:?}"),
            }
        }
    }

    #[test]
    fn index_names_become_fields() {
        assert_eq!(named_field("users_email_key", "users", "_key").as_deref(), Some("email"));
        assert_eq!(named_field("customers_email_key", "customers", "_key").as_deref(), Some("email"));
        assert_eq!(named_field("users_pkey", "users", "_key").as_deref(), Some("id"));
        assert_eq!(named_field("transactions_user_id_fkey", "transactions", "_fkey").as_deref(), Some("user_id"));
        assert_eq!(named_field("other_key", "users", "_key"), None);
    }

    #[test]
    fn busy_deadlock_and_serialization_failures_are_retryable_conflicts() {
        for e in [
            db(DatabaseErrorKind::Unknown, "database is locked"),
            db(DatabaseErrorKind::Unknown, "deadlock detected"),
            db(DatabaseErrorKind::SerializationFailure, "could not serialize access"),
        ] {
            let mapped = USERS.map(e);
            assert!(matches!(mapped, RepoError::Conflict { kind: ConflictKind::Concurrent, .. }), "{mapped:?}");
            assert!(mapped.is_retryable());
        }
        let closed = USERS.map(db(DatabaseErrorKind::ClosedConnection, "connection closed"));
        assert!(matches!(closed, RepoError::Unavailable { backend: "sqlite", .. }));
        assert!(matches!(USERS.map(db(DatabaseErrorKind::Unknown, "syntax")), RepoError::Backend { .. }));
    }

    fn validation(e: RepoError) -> (String, String) {
        match e {
            RepoError::Validation(v) => (v.field.into_owned(), v.rule.into_owned()),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn foreign_key_violations_are_validation_errors_naming_the_field_and_the_side() {
        let missing = || (String::from("user_id"), RepoError::MISSING_REFERENCE.to_owned());
        let referred = || (String::from("user_id"), RepoError::STILL_REFERENCED.to_owned());
        let sqlite = || db(DatabaseErrorKind::Unknown, "FOREIGN KEY constraint failed");
        const TRANSACTIONS: ErrorContext = ErrorContext {
            backend: "sqlite",
            table: "transactions",
            entity: "transaction",
            reference_field: "user_id",
        };
        assert_eq!(validation(TRANSACTIONS.map(sqlite())), missing(), "sqlite insert");
        assert_eq!(validation(USERS.map_delete(sqlite())), referred(), "sqlite delete");
        let pg_insert = "insert or update on table \"transactions\" violates foreign key constraint \
                         \"transactions_user_id_fkey\"";
        let pg_delete = "update or delete on table \"users\" violates foreign key constraint \
                         \"transactions_user_id_fkey\" on table \"transactions\"";
        let fk = |message: &str| db(DatabaseErrorKind::ForeignKeyViolation, message);
        assert_eq!(validation(TRANSACTIONS.map(fk(pg_insert))), missing(), "postgres insert");
        assert_eq!(validation(USERS.map(fk(pg_delete))), referred(), "postgres delete, even through map");
    }
}
