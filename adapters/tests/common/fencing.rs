//! A store protected by fencing tokens, and the check that tokens grow strictly across holders, shared by the
//! fencing tests (`reliability_load.rs`, `reliability_fencing.rs`).
//!
//! The store is a PostgreSQL row `(token, writes)`: a write carries its lease's token and is accepted only if
//! the token is above the last accepted one (`UPDATE ... WHERE token < $1`), as the lock port's docs tell apps to
//! do. The check does not rely on that: each acquisition is logged with the moment its (one round trip)
//! `try_acquire` was sent and the moment it answered, so when one acquisition answered before another was sent,
//! the first happened first on the server, and its token must be the smaller.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpc_adapters::postgres::PgPool;
use cpc_ports::{KvError, Lock, LockKey, LockLease};

/// One acquisition: when its `try_acquire` was sent, when it answered, and the token it got.
#[derive(Clone, Copy, Debug)]
pub struct Acquisition {
    pub sent: Instant,
    pub answered: Instant,
    pub token: u64,
}

/// Acquisitions, as the tasks made them.
#[derive(Default)]
pub struct AcquisitionLog(Mutex<Vec<Acquisition>>);

impl AcquisitionLog {
    /// Takes `key` with `try_acquire`, one round trip per attempt (a short pause between), until it is taken or
    /// `wait` is over; logs the successful attempt. Errors (a dead server) count as "not taken" and are retried.
    pub async fn take(&self, lock: &dyn Lock, key: &LockKey, ttl: Duration, wait: Duration) -> Option<LockLease> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let sent = Instant::now();
            let attempt: Result<Option<LockLease>, KvError> = lock.try_acquire(key, ttl).await;
            let answered = Instant::now();
            if let Ok(Some(lease)) = attempt {
                self.0.lock().unwrap().push(Acquisition { sent, answered, token: lease.token.0 });
                return Some(lease);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }

    pub fn all(&self) -> Vec<Acquisition> {
        self.0.lock().unwrap().clone()
    }

    /// Panics unless every acquisition that answered before another was sent has the smaller token. Returns how
    /// many ordered pairs were compared, so a caller can assert the check was not vacuous.
    pub fn assert_tokens_grow(&self) -> usize {
        let all = self.all();
        let mut compared = 0;
        for a in &all {
            for b in &all {
                if a.answered < b.sent {
                    compared += 1;
                    assert!(
                        a.token < b.token,
                        "token {} was handed out after token {} yet is not greater ({} acquisitions)",
                        b.token,
                        a.token,
                        all.len()
                    );
                }
            }
        }
        compared
    }
}

/// The fenced store: one row `(token, writes)` in a table of its own.
pub struct FencedStore {
    pool: PgPool,
}

impl FencedStore {
    pub async fn create(pool: PgPool) -> Self {
        pool.get()
            .await
            .unwrap()
            .batch_execute(
                "CREATE TABLE fenced (token BIGINT NOT NULL, writes BIGINT NOT NULL); INSERT INTO fenced VALUES (0, 0)",
            )
            .await
            .unwrap();
        Self { pool }
    }

    /// Writes with `token`: true if the store accepted it (the token is above every accepted one).
    pub async fn write(&self, token: u64) -> bool {
        let token = i64::try_from(token).unwrap();
        let conn = self.pool.get().await.unwrap();
        let changed = conn
            .execute("UPDATE fenced SET token = $1, writes = writes + 1 WHERE token < $1", &[&token])
            .await
            .unwrap();
        changed == 1
    }

    /// The last accepted token and the number of accepted writes.
    pub async fn state(&self) -> (u64, u64) {
        let row = self.pool.get().await.unwrap().query_one("SELECT token, writes FROM fenced", &[]).await.unwrap();
        let (token, writes): (i64, i64) = (row.get(0), row.get(1));
        (u64::try_from(token).unwrap(), u64::try_from(writes).unwrap())
    }
}
