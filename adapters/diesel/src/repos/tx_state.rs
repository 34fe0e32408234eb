//! The state of a unit of work: its connection, the stack of nested transactions (savepoints) open on it, and
//! which level a `Tx` or repository belongs to.
//!
//! Nesting follows Diesel's transaction manager, which keeps one depth per connection: `begin_transaction` inside
//! a transaction issues `SAVEPOINT`, `commit_transaction` at depth > 1 `RELEASE SAVEPOINT`, `rollback_transaction`
//! `ROLLBACK TO SAVEPOINT`, each moving the depth by one. So levels form a stack and only the innermost open one
//! may run statements; any other gets [`RepoError::NestedTransactionOpen`] (or `TransactionFinished` once it is
//! finished). A dropped nested level is only marked finished (a `Drop` cannot await); its savepoint is rolled
//! back by the next call on the connection, before anything else runs, or by the top level's end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cpc_ports::RepoError;
use diesel_async::{AsyncConnection, TransactionManager};

use crate::connection::DieselBackend;
use crate::error::ErrorContext;
use cpc_pool::pool::PooledConn;

type Tm<C> = <C as AsyncConnection>::TransactionManager;

/// Context for errors of transaction control statements.
pub(crate) fn tx_context(backend: &'static str) -> ErrorContext {
    ErrorContext { backend, table: "", entity: "transaction", reference_field: "" }
}

/// One level of a unit of work: the top-level transaction, or a transaction nested in it.
#[derive(Debug, Default)]
pub(crate) struct TxLevel {
    /// Set by commit, rollback and drop of this level, and by the end of an enclosing one, before anything else:
    /// later calls on it fail at once.
    finished: AtomicBool,
}

impl TxLevel {
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Marks the level finished; returns whether it already was.
    pub(crate) fn finish(&self) -> bool {
        self.finished.swap(true, Ordering::SeqCst)
    }
}

/// The connection of a unit of work and what is open on it, behind one lock.
pub(crate) struct TxConn<B: DieselBackend> {
    /// Gone once the top-level transaction is finished.
    pub(crate) conn: Option<PooledConn<'static, B>>,
    /// The nested levels whose savepoint is open, innermost last: the transaction manager's depth is this length
    /// plus one. A finished level still listed was dropped and is rolled back by the next call.
    pub(crate) savepoints: Vec<Arc<TxLevel>>,
}

impl<B: DieselBackend> TxConn<B> {
    /// Rolls back the savepoints from `savepoints[from]` up, innermost first, finishing their levels. Stops at
    /// the first failure, after which the connection's state is unknown: the unit is then abandoned.
    async fn unwind(&mut self, from: usize, interrupted: &AtomicBool) -> Result<(), RepoError> {
        for level in &self.savepoints[from..] {
            level.finish();
        }
        let Some(conn) = self.conn.as_mut() else {
            self.savepoints.truncate(from);
            return Ok(());
        };
        while self.savepoints.len() > from {
            // Diesel lowers its depth by one whether or not the statement succeeds.
            self.savepoints.pop();
            if let Err(e) = Tm::<B::Conn>::rollback_transaction(&mut **conn).await {
                self.savepoints.truncate(from);
                interrupted.store(true, Ordering::SeqCst);
                return Err(tx_context(B::NAME).map(e));
            }
        }
        Ok(())
    }

    /// Rolls back the savepoints of dropped levels (and of every level nested in them).
    async fn roll_back_abandoned(&mut self, interrupted: &AtomicBool) -> Result<(), RepoError> {
        match self.savepoints.iter().position(|level| level.is_finished()) {
            Some(lowest) => self.unwind(lowest, interrupted).await,
            None => Ok(()),
        }
    }
}

/// The open transaction of a unit of work, shared by every `Tx` (top-level and nested) and every repository they
/// handed out.
pub(crate) struct TxShared<B: DieselBackend> {
    pub(crate) state: tokio::sync::Mutex<TxConn<B>>,
    /// The top-level transaction.
    pub(crate) top: Arc<TxLevel>,
    /// Set when a call was cancelled halfway, or a savepoint could not be rolled back: the connection's state is
    /// unknown, so nothing more runs on it and it is not rolled back but discarded (the pool does, as it is still
    /// inside a transaction).
    pub(crate) interrupted: AtomicBool,
}

impl<B: DieselBackend> TxShared<B> {
    pub(crate) fn new(conn: PooledConn<'static, B>) -> Self {
        Self {
            state: tokio::sync::Mutex::new(TxConn { conn: Some(conn), savepoints: Vec::new() }),
            top: Arc::new(TxLevel::default()),
            interrupted: AtomicBool::new(false),
        }
    }

    pub(crate) fn interrupted_error() -> RepoError {
        RepoError::Unavailable {
            backend: B::NAME,
            reason: "an operation of this unit of work was cancelled halfway or could not be rolled back; the \
                     transaction was abandoned"
                .to_owned(),
        }
    }

    fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// Marks the transaction interrupted unless the call it guards completes.
pub(crate) struct InFlight<'a> {
    interrupted: &'a AtomicBool,
    landed: bool,
}

impl<'a> InFlight<'a> {
    pub(crate) fn new(interrupted: &'a AtomicBool) -> Self {
        Self { interrupted, landed: false }
    }

    /// The guarded call completed (successfully or not): the connection's state is known.
    pub(crate) fn land(mut self) {
        self.landed = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.landed {
            self.interrupted.store(true, Ordering::SeqCst);
        }
    }
}

/// One level of a unit of work, as its `Tx` and its repositories hold it.
pub(crate) struct TxScope<B: DieselBackend> {
    pub(crate) shared: Arc<TxShared<B>>,
    pub(crate) level: Arc<TxLevel>,
}

impl<B: DieselBackend> Clone for TxScope<B> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone(), level: self.level.clone() }
    }
}

impl<B: DieselBackend> TxScope<B> {
    /// The top level of a new unit of work on `conn`, which must be inside a transaction.
    pub(crate) fn begin(conn: PooledConn<'static, B>) -> Self {
        let shared = Arc::new(TxShared::new(conn));
        let level = shared.top.clone();
        Self { shared, level }
    }

    /// Whether this is the top-level transaction.
    pub(crate) fn is_top(&self) -> bool {
        Arc::ptr_eq(&self.level, &self.shared.top)
    }

    /// Whether this level, or the whole unit, is known to be finished (checked again under the lock).
    pub(crate) fn is_finished(&self) -> bool {
        self.level.is_finished() || self.shared.top.is_finished()
    }

    /// The connection, under the lock, when this level may run statements on it now: savepoints of dropped levels
    /// are rolled back first; the unit must be open, this level too, and innermost.
    pub(crate) async fn enter<'s>(&self, state: &'s mut TxConn<B>) -> Result<&'s mut B::Conn, RepoError> {
        self.check(state).await?;
        match state.conn.as_mut() {
            Some(conn) => Ok(&mut **conn),
            None => Err(RepoError::TransactionFinished),
        }
    }

    async fn check(&self, state: &mut TxConn<B>) -> Result<(), RepoError> {
        if self.shared.top.is_finished() || state.conn.is_none() {
            return Err(RepoError::TransactionFinished);
        }
        if self.shared.is_interrupted() {
            return Err(TxShared::<B>::interrupted_error());
        }
        state.roll_back_abandoned(&self.shared.interrupted).await?;
        if self.level.is_finished() {
            return Err(RepoError::TransactionFinished);
        }
        let innermost = match state.savepoints.last() {
            Some(last) => Arc::ptr_eq(last, &self.level),
            None => self.is_top(),
        };
        if innermost { Ok(()) } else { Err(RepoError::NestedTransactionOpen) }
    }

    /// Opens a level nested in this one (`SAVEPOINT`).
    pub(crate) async fn savepoint(&self) -> Result<Self, RepoError> {
        if self.is_finished() {
            return Err(RepoError::TransactionFinished);
        }
        let mut state = self.shared.state.lock().await;
        let flight = InFlight::new(&self.shared.interrupted);
        let opened = async {
            let conn = self.enter(&mut state).await?;
            Tm::<B::Conn>::begin_transaction(conn).await.map_err(|e| tx_context(B::NAME).map(e))?;
            let level = Arc::new(TxLevel::default());
            state.savepoints.push(level.clone());
            Ok(Self { shared: self.shared.clone(), level })
        }
        .await;
        flight.land();
        opened
    }

    /// Commits a nested level (`RELEASE SAVEPOINT`): its writes join the enclosing level. With a level nested in
    /// it still open, fails with `NestedTransactionOpen` and rolls back to its savepoint instead.
    pub(crate) async fn release(&self) -> Result<(), RepoError> {
        let mut state = self.shared.state.lock().await;
        let flight = InFlight::new(&self.shared.interrupted);
        let released = async {
            if let Err(e) = self.check(&mut state).await {
                if !self.level.finish() && matches!(e, RepoError::NestedTransactionOpen) {
                    state.roll_back_abandoned(&self.shared.interrupted).await?;
                }
                return Err(e);
            }
            self.level.finish();
            state.savepoints.pop();
            let conn = state.conn.as_mut().ok_or(RepoError::TransactionFinished)?;
            Tm::<B::Conn>::commit_transaction(&mut **conn).await.map_err(|e| {
                // The savepoint may still hold its writes, which Diesel no longer tracks: abandon the unit rather
                // than let the enclosing commit keep them.
                self.shared.interrupted.store(true, Ordering::SeqCst);
                tx_context(B::NAME).map(e)
            })
        }
        .await;
        flight.land();
        released
    }

    /// Rolls a nested level back to its savepoint, with every level nested in it.
    pub(crate) async fn roll_back_nested(&self) -> Result<(), RepoError> {
        if self.level.finish() {
            return Err(RepoError::TransactionFinished);
        }
        let mut state = self.shared.state.lock().await;
        if state.conn.is_none() || self.shared.top.is_finished() {
            return Err(RepoError::TransactionFinished);
        }
        if self.shared.is_interrupted() {
            return Err(TxShared::<B>::interrupted_error());
        }
        let flight = InFlight::new(&self.shared.interrupted);
        let rolled_back = state.roll_back_abandoned(&self.shared.interrupted).await;
        flight.land();
        rolled_back
    }

    /// Marks a dropped nested level finished and, when there is a runtime, rolls back to its savepoint on a spawned
    /// task (otherwise the next call on the connection does it).
    pub(crate) fn abandon_nested(&self) {
        if self.level.finish() {
            return;
        }
        let shared = self.shared.clone();
        let roll_back = async move {
            let mut state = shared.state.lock().await;
            if state.conn.is_none() || shared.top.is_finished() || shared.is_interrupted() {
                return;
            }
            let flight = InFlight::new(&shared.interrupted);
            // A failure marks the unit interrupted; its next call reports it.
            let _ = state.roll_back_abandoned(&shared.interrupted).await;
            flight.land();
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(roll_back));
        }
    }

    /// Finishes the top level: marks it and every nested level finished and takes the connection. Returns it with
    /// the number of savepoints still open on it, and whether any of them belonged to a level still open (not
    /// dropped).
    pub(crate) async fn finish_top(&self) -> Result<(PooledConn<'static, B>, usize, bool), RepoError> {
        if self.shared.top.finish() {
            return Err(RepoError::TransactionFinished);
        }
        let mut state = self.shared.state.lock().await;
        let conn = state.conn.take().ok_or(RepoError::TransactionFinished)?;
        let savepoints = std::mem::take(&mut state.savepoints);
        let mut nested_open = false;
        for level in &savepoints {
            // Every level must be marked, so no short-circuiting `any`.
            nested_open |= !level.finish();
        }
        if self.shared.is_interrupted() {
            // Dropping it returns it to the pool inside a transaction: the pool discards it.
            drop(conn);
            return Err(TxShared::<B>::interrupted_error());
        }
        Ok((conn, savepoints.len(), nested_open))
    }
}

/// Rolls back `levels` levels of the transaction on `conn` (savepoints first, then, for the last, the transaction
/// itself when they are all there is). Stops at the first failure, which leaves the connection marked broken.
pub(crate) async fn roll_back_levels<B: DieselBackend>(conn: &mut B::Conn, levels: usize) -> Result<(), RepoError> {
    for _ in 0..levels {
        Tm::<B::Conn>::rollback_transaction(conn).await.map_err(|e| tx_context(B::NAME).map(e))?;
    }
    Ok(())
}
