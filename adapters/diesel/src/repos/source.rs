//! Where a repository runs its statements: a connection checked out of the pool per call, one level of the open
//! transaction of a unit of work, or a [`ReplicaSet`] (writes on the primary, reads that allow stale data on a
//! replica that has replayed the caller's last write).

use std::sync::Arc;

use cpc_ports::RepoError;
use diesel_async::{AsyncConnection, TransactionManager};
use futures::future::BoxFuture;

use crate::connection::DieselBackend;
use crate::replicas::{ReplicaSet, Session};
use crate::repos::tx_state::{InFlight, TxScope, tx_context};
use cpc_pool::pool::Pool;

/// What a repository call does, which decides how it is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads only: runs as is.
    Read,
    /// Writes with statements that are each atomic, or whose partial effect is harmless: on the pool it runs as
    /// is; inside a unit of work it runs in a savepoint, so a failure leaves the transaction usable.
    Write,
    /// Several statements that must land together: on the pool it runs in a transaction of its own.
    Atomic,
}

/// Where a repository runs its statements.
pub(crate) enum Source<B: DieselBackend> {
    /// A connection checked out of the pool for each call.
    Pool(Pool<B>),
    /// One level (the top-level transaction or a nested one) of a unit of work.
    Tx(TxScope<B>),
    /// The primary of a replica set for writes, a replica for reads when it replayed the session's last write.
    Replicas(Routed<B>),
}

/// A replica set and the session (the caller) whose writes decide where its reads may go.
pub(crate) struct Routed<B: DieselBackend> {
    pub(crate) set: ReplicaSet<B>,
    pub(crate) session: Arc<Session>,
}

impl<B: DieselBackend> Clone for Source<B> {
    fn clone(&self) -> Self {
        match self {
            Self::Pool(p) => Self::Pool(p.clone()),
            Self::Tx(t) => Self::Tx(t.clone()),
            Self::Replicas(r) => Self::Replicas(Routed { set: r.set.clone(), session: r.session.clone() }),
        }
    }
}

/// Failures that say the server or the connection is gone, not that the query was wrong: a replica failing so is
/// taken out of rotation and the read runs on the primary.
fn is_connection_failure(e: &RepoError) -> bool {
    matches!(e, RepoError::Unavailable { .. } | RepoError::Timeout { .. })
}

/// Records in `session` the primary's WAL position after a write on `conn` (whatever its outcome: a failed call
/// may still have committed part of its work).
pub(crate) async fn record_write<B: DieselBackend>(session: &Session, conn: &mut B::Conn, succeeded: bool) {
    match B::write_position(conn).await {
        Ok(Some(position)) => session.wrote(Some(position)),
        Ok(None) => {}
        Err(_) if succeeded => session.wrote(None),
        Err(_) => {}
    }
}

/// Runs `f` on a pool connection: as is, or in a transaction of its own for [`Mode::Atomic`].
async fn on_connection<B, R, F>(conn: &mut B::Conn, mode: Mode, f: F) -> Result<R, RepoError>
where
    B: DieselBackend,
    F: for<'c> FnOnce(&'c mut B::Conn) -> BoxFuture<'c, Result<R, RepoError>> + Send,
    R: Send,
{
    match mode {
        Mode::Read | Mode::Write => f(conn).await,
        Mode::Atomic => in_transaction::<B, R, F>(conn, true, f).await,
    }
}

/// Runs `f` in a transaction (a savepoint when one is already open): commits on `Ok`, rolls back on `Err`.
pub(crate) async fn in_transaction<B, R, F>(conn: &mut B::Conn, top_level: bool, f: F) -> Result<R, RepoError>
where
    B: DieselBackend,
    F: for<'c> FnOnce(&'c mut B::Conn) -> BoxFuture<'c, Result<R, RepoError>> + Send,
    R: Send,
{
    type Tm<C> = <C as AsyncConnection>::TransactionManager;
    let ctx = tx_context(B::NAME);
    let begun = if top_level { B::begin(conn).await } else { Tm::<B::Conn>::begin_transaction(conn).await };
    begun.map_err(|e| ctx.map(e))?;
    match f(conn).await {
        Ok(value) => {
            Tm::<B::Conn>::commit_transaction(conn).await.map_err(|e| ctx.map(e))?;
            Ok(value)
        }
        Err(e) => {
            // The caller needs the original error; a failed rollback leaves the connection marked broken.
            let _ = Tm::<B::Conn>::rollback_transaction(conn).await;
            Err(e)
        }
    }
}

/// A server-side timeout mapped from Diesel's error carries no duration (PostgreSQL does not say the limit):
/// it gets how long the call ran, which is the limit it hit plus the round trip.
fn with_elapsed(e: RepoError, started: std::time::Instant) -> RepoError {
    match e {
        RepoError::Timeout { operation, after } if after.is_zero() => {
            RepoError::Timeout { operation, after: started.elapsed() }
        }
        other => other,
    }
}

impl<B: DieselBackend> Source<B> {
    /// Runs the read `f`: on a replica when this source routes reads and one can serve the caller (run again on
    /// the primary if that replica fails), else as [`run`](Self::run) would.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, RepoError>
    where
        F: for<'c> FnOnce(&'c mut B::Conn) -> BoxFuture<'c, Result<R, RepoError>> + Send + Clone,
        R: Send,
    {
        let Self::Replicas(routed) = self else { return self.run(Mode::Read, f).await };
        let mut fallback = false;
        if let Some(mut replica) = routed.set.replica_for(routed.session.min_position(), &mut fallback).await {
            let outcome = match routed.set.policy().read_timeout {
                Some(limit) => tokio::time::timeout(limit, f.clone()(&mut replica.conn)).await.map_err(|_| limit),
                None => Ok(f.clone()(&mut replica.conn).await),
            };
            match outcome {
                Err(after) => {
                    // Abandoned mid-query: the connection's state is unknown, so it is closed, not reused.
                    replica.conn.discard();
                    routed.set.replica_timed_out(replica.index, after);
                    fallback = true;
                }
                Ok(Err(e)) if is_connection_failure(&e) => {
                    routed.set.replica_failed(replica.index, &e);
                    fallback = true;
                }
                Ok(outcome) => {
                    routed.set.served_by_replica(replica.index);
                    return outcome;
                }
            }
        }
        routed.set.served_by_primary(fallback);
        let started = std::time::Instant::now();
        let mut conn = routed.set.primary().get().await.map_err(RepoError::from)?;
        f(&mut conn).await.map_err(|e| with_elapsed(e, started))
    }

    /// Runs `f` on a connection, wrapped as `mode` asks.
    pub(crate) async fn run<R, F>(&self, mode: Mode, f: F) -> Result<R, RepoError>
    where
        F: for<'c> FnOnce(&'c mut B::Conn) -> BoxFuture<'c, Result<R, RepoError>> + Send,
        R: Send,
    {
        let started = std::time::Instant::now();
        self.run_untimed(mode, f).await.map_err(|e| with_elapsed(e, started))
    }

    async fn run_untimed<R, F>(&self, mode: Mode, f: F) -> Result<R, RepoError>
    where
        F: for<'c> FnOnce(&'c mut B::Conn) -> BoxFuture<'c, Result<R, RepoError>> + Send,
        R: Send,
    {
        match self {
            Self::Pool(pool) => {
                let mut conn = pool.get().await.map_err(RepoError::from)?;
                on_connection::<B, R, F>(&mut conn, mode, f).await
            }
            Self::Replicas(routed) => {
                let mut conn = routed.set.primary().get().await.map_err(RepoError::from)?;
                let result = on_connection::<B, R, F>(&mut conn, mode, f).await;
                if mode != Mode::Read {
                    record_write::<B>(&routed.session, &mut conn, result.is_ok()).await;
                }
                result
            }
            Self::Tx(scope) => {
                if scope.is_finished() {
                    return Err(RepoError::TransactionFinished);
                }
                let mut state = scope.shared.state.lock().await;
                let flight = InFlight::new(&scope.shared.interrupted);
                let result = async {
                    let conn = scope.enter(&mut state).await?;
                    match mode {
                        Mode::Read => f(conn).await,
                        Mode::Write | Mode::Atomic => in_transaction::<B, R, F>(conn, false, f).await,
                    }
                }
                .await;
                flight.land();
                result
            }
        }
    }
}
