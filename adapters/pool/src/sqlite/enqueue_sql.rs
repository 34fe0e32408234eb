//! The statements that store a job in the SQLite job queue's tables (`cpc_jobs`, `cpc_job_keys` of migration
//! `2026-12-06-000001_create_job_queue`), shared by `SqliteJobQueue` (`cpc-sqlite-kv`) and by a caller that
//! enqueues inside a transaction of its own (the Diesel unit of work's `tx.jobs()`, the transactional outbox), so a
//! job stored either way is the queue's like any other once its transaction commits.
//!
//! Times are whole milliseconds since the Unix epoch on SQLite's clock ([`NOW_MS`]). A keyed enqueue is
//! [`CLAIM_KEY`], then [`INSERT`] if the claim returned a row, else [`KEY_HOLDER`], all in one transaction.

/// SQLite's clock in whole milliseconds since the Unix epoch, as an SQL expression. SQLite reads the clock once per
/// statement, so every use within one statement sees the same instant.
pub const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// Stores job `?1` on queue `?2` with payload `?3` (blob), due in `?4` ms, with `?5` attempts.
pub const INSERT: &str = "INSERT INTO cpc_jobs (id, queue, payload, state, run_at, max_attempts) \
     VALUES (?1, ?2, ?3, 'ready', CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?4, ?5)";

/// Claims idempotency key `?2` on queue `?1` for job `?3` for `?4` ms, unless a live claim holds it (an expired
/// claim is taken over). Returns the job id (column `job_id`) when the claim succeeded, no row when a live claim
/// holds the key.
pub const CLAIM_KEY: &str = "INSERT INTO cpc_job_keys (queue, key, job_id, expires_at) \
     VALUES (?1, ?2, ?3, CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?4) \
     ON CONFLICT (queue, key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at \
       WHERE cpc_job_keys.expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER) \
     RETURNING job_id";

/// The job holding idempotency key `?2` on queue `?1` (column `job_id`).
pub const KEY_HOLDER: &str = "SELECT job_id FROM cpc_job_keys WHERE queue = ?1 AND key = ?2";

#[cfg(test)]
mod tests {
    #[test]
    fn the_statements_use_the_one_clock_expression() {
        for sql in [super::INSERT, super::CLAIM_KEY] {
            assert!(sql.contains(super::NOW_MS), "{sql}");
        }
    }
}
