//! The consent app's own table: one portable `diesel::table!` (PostgreSQL and SQLite), the model, its create and
//! update forms, and one `record!` declaration; and the migration set that creates it.
//!
//! `consents`: one row per grant (UUID keys made by the library), revoked in place by setting `revoked_at` with an
//! optimistic update (`version`), so the table is the whole history. At most one active grant per subject and
//! purpose: a partial unique index (`WHERE revoked_at IS NULL`) on both databases, mirrored as the record's unique
//! key `purpose` (none once revoked), so the in-memory fake enforces it as the databases do.
//!
//! Subjects are opaque text (a user id, a customer number, a hashed e-mail), not a reference to the library's
//! `users`: consent is often recorded for people who hold no account here.

#![cfg_attr(not(test), allow(dead_code, reason = "some fields and forms are used by the tests only"))]

use chrono::{DateTime, Utc};
use cpc_data::adapters::diesel::migrations::{EmbeddedMigrations, MigrationSet, embed_migrations};
use uuid::Uuid;

static POSTGRES: EmbeddedMigrations = embed_migrations!("examples/consent/migrations/postgres");
static SQLITE: EmbeddedMigrations = embed_migrations!("examples/consent/migrations/sqlite");

/// The app's migrations, run beside the library's at start-up.
pub const MIGRATIONS: MigrationSet = MigrationSet::new("consent", &POSTGRES, &SQLITE);

/// The field both databases report a second active grant of one subject and purpose as (the index
/// `consents_purpose_key` on `(purpose, subject)`), and the record's unique key of the same name.
pub const ACTIVE_GRANT_FIELD: &str = "purpose";

diesel::table! {
    use cpc_data::adapters::diesel::sql_types::*;
    consents (id) {
        id -> Uuid,
        subject -> Text,
        purpose -> Text,
        source -> Text,
        granted_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        version -> BigInt,
    }
}

/// A subject's consent to one purpose: granted at `granted_at`, active until `revoked_at` is set.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = consents)]
pub struct Consent {
    /// Made by the library (UUIDv7).
    pub id: Uuid,
    /// Who consented (an opaque id).
    pub subject: String,
    /// What for, e.g. `newsletter`.
    pub purpose: String,
    /// Where the grant came from, e.g. `signup-form` (may be empty).
    pub source: String,
    /// When it was granted (set by the library).
    pub granted_at: DateTime<Utc>,
    /// When it was revoked; `None` while active.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set by the library.
    pub updated_at: DateTime<Utc>,
    /// Optimistic locking: a revocation names the version it read.
    pub version: i64,
}

/// What granting consent takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConsent {
    /// Who consents.
    pub subject: String,
    /// What for.
    pub purpose: String,
    /// Where the grant came from.
    pub source: String,
}

/// What updating a consent may change: only its revocation.
#[derive(Debug, Clone, Default)]
pub struct ConsentChanges {
    /// `Some(Some(t))` revokes at `t`.
    pub revoked_at: Option<Option<DateTime<Utc>>>,
}

cpc_data::adapters::record! {
    Consent in consents as "consent" {
        key: id: Uuid,
        new: NewConsent,
        update: ConsentChanges { revoked_at },
        fields: ConsentField { subject, purpose, source, revoked_at = None },
        version: version,
        created_at: granted_at,
        updated_at: updated_at,
        unique: { "purpose" => |c| c.revoked_at.is_none().then(|| format!("{}/{}", c.subject, c.purpose)) },
    }
}
