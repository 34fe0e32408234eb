//! The `users` row decoded by hand, as the raw baselines of the repository benches read it
//! (`#[path = "common/users.rs"] mod users;`).

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A `users` row decoded by hand: id, username, email, created_at, updated_at, version.
pub type UserTuple = (Uuid, String, String, DateTime<Utc>, DateTime<Utc>, i64);

/// `find_by_id` on SQLite, written by hand.
pub const SQLITE_FIND: &str = "SELECT id, username, email, created_at, updated_at, version FROM users WHERE id = ?1";

/// A `users` row as raw rusqlite decodes it: the same types the repository produces.
pub fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserTuple> {
    let text = |i: usize| r.get::<_, String>(i);
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e)
    };
    let time = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(&text(i)?).map_err(|e| bad(e.into()))?.with_timezone(&Utc))
    };
    Ok((Uuid::parse_str(&text(0)?).map_err(|e| bad(e.into()))?, text(1)?, text(2)?, time(3)?, time(4)?, r.get(5)?))
}
