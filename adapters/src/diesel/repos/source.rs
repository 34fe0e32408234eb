//! Where a repository runs its statements: a connection checked out of the pool per call, or one level of the
//! open transaction of a unit of work.

use cpc_ports::RepoError;
use diesel_async::{AsyncConnection, TransactionManager};
use futures::future::BoxFuture;

use crate::diesel::connection::DieselBackend;
use crate::diesel::error::ErrorContext;
use crate::diesel::repos::tx_state::{InFlight, TxScope};
use crate::pool::Pool;

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
}

impl<B: DieselBackend> Clone for Source<B> {
    fn clone(&self) -> Self {
        match self {
            Self::Pool(p) => Self::Pool(p.clone()),
            Self::Tx(t) => Self::Tx(t.clone()),
        }
    }
}

/// Context for errors of transaction control statements.
pub(crate) fn tx_context(backend: &'static str) -> ErrorContext {
    ErrorContext { backend, table: "", entity: "transaction", reference_field: "" }
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

impl<B: DieselBackend> Source<B> {
    /// Runs `f` on a connection, wrapped as `mode` asks.
    pub(crate) async fn run<R, F>(&self, mode: Mode, f: F) -> Result<R, RepoError>
    where
        F: for<'c> FnOnce(&'c mut B::Conn) -> BoxFuture<'c, Result<R, RepoError>> + Send,
        R: Send,
    {
        match self {
            Self::Pool(pool) => {
                let mut conn = pool.get().await.map_err(RepoError::from)?;
                match mode {
                    Mode::Read | Mode::Write => f(&mut conn).await,
                    Mode::Atomic => in_transaction::<B, R, F>(&mut conn, true, f).await,
                }
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
