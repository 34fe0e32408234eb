//! Where a repository reads and writes: the committed state of a database, or an open unit of work's view of it.
//!
//! A unit of work keeps a journal of its row changes and a view: the committed state plus its journal. The view
//! is rebuilt whenever another writer has committed since (so, like PostgreSQL's READ COMMITTED, every statement
//! sees what others committed before it). Commit replays the journal against the current committed state under
//! the lock, with every check, all or nothing.
//!
//! Lock order: a unit of work's state, then the database. Non-transactional writes take only the database lock,
//! never while a unit of work's lock is held by the same call, so mixing both cannot deadlock.

use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cpc_ports::{ConflictKind, RepoError};

use super::table::{Change, Tables};

/// The committed state of one database.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(crate) tables: Tables,
    /// Incremented by every commit that changed something.
    generation: u64,
}

/// One database's committed state, shared by its repositories and units of work.
pub(crate) type Shared = Arc<Mutex<Committed>>;

/// Locks a mutex, recovering from poisoning (every mutation here is applied whole or not at all).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a repository works on.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// The committed state: every write commits at once.
    Committed(Shared),
    /// An open (or finished) unit of work.
    Tx(Arc<TxHandle>),
}

impl Store {
    /// Runs a read against the visible state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Tables) -> Result<R, RepoError>) -> Result<R, RepoError> {
        match self {
            Self::Committed(shared) => f(&lock(shared).tables),
            Self::Tx(tx) => {
                let mut state = lock(&tx.state);
                tx.refresh(&mut state)?;
                f(&state.view)
            }
        }
    }

    /// Runs a write: `f` decides on the row changes (or an error) from the visible state; they are then checked
    /// and applied all or nothing.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&Tables) -> Result<(R, Vec<Change>), RepoError>,
    ) -> Result<R, RepoError> {
        match self {
            Self::Committed(shared) => {
                let mut committed = lock(shared);
                let (result, changes) = f(&committed.tables)?;
                if !changes.is_empty() {
                    committed.tables.apply_all(&changes)?;
                    committed.generation += 1;
                }
                Ok(result)
            }
            Self::Tx(tx) => {
                let mut state = lock(&tx.state);
                tx.refresh(&mut state)?;
                let (result, changes) = f(&state.view)?;
                state.view.apply_all(&changes)?;
                state.journal.extend(changes);
                Ok(result)
            }
        }
    }
}

/// A unit of work, shared by the `Tx` and every repository it handed out.
#[derive(Debug)]
pub(crate) struct TxHandle {
    shared: Shared,
    state: Mutex<TxState>,
}

#[derive(Debug)]
struct TxState {
    open: bool,
    /// The committed state as of `view_generation`, plus the journal. Built on first use.
    view: Tables,
    view_generation: Option<u64>,
    journal: Vec<Change>,
    /// Set when a concurrent commit made the journal impossible to apply (e.g. it took an e-mail address this
    /// unit of work had taken): every later statement and the commit fail with this conflict.
    doomed: Option<(&'static str, ConflictKind)>,
}

impl TxHandle {
    /// A new, open unit of work on `shared`.
    pub(crate) fn begin(shared: Shared) -> Self {
        let state =
            TxState { open: true, view: Tables::default(), view_generation: None, journal: Vec::new(), doomed: None };
        Self { shared, state: Mutex::new(state) }
    }

    /// Makes sure the unit of work is usable and its view includes everything committed meanwhile.
    fn refresh(&self, state: &mut TxState) -> Result<(), RepoError> {
        if !state.open {
            return Err(RepoError::TransactionFinished);
        }
        if let Some((entity, kind)) = &state.doomed {
            return Err(RepoError::Conflict { entity, kind: kind.clone() });
        }
        let (generation, mut view) = {
            let committed = lock(&self.shared);
            if state.view_generation == Some(committed.generation) {
                return Ok(());
            }
            (committed.generation, committed.tables.clone())
        };
        if let Err(e) = view.apply_each(&state.journal) {
            state.doomed = Some(match &e {
                RepoError::Conflict { entity, kind } => (*entity, kind.clone()),
                _ => ("transaction", ConflictKind::Concurrent),
            });
            return Err(e);
        }
        state.view = view;
        state.view_generation = Some(generation);
        Ok(())
    }

    /// Applies the journal to the committed state, all or nothing, and finishes the unit of work either way.
    pub(crate) fn commit(&self) -> Result<(), RepoError> {
        let mut state = lock(&self.state);
        if !state.open {
            return Err(RepoError::TransactionFinished);
        }
        state.open = false;
        let journal = mem::take(&mut state.journal);
        let view = mem::take(&mut state.view);
        if let Some((entity, kind)) = state.doomed.take() {
            return Err(RepoError::Conflict { entity, kind });
        }
        if journal.is_empty() {
            return Ok(());
        }
        let mut committed = lock(&self.shared);
        if state.view_generation == Some(committed.generation) {
            // Nothing was committed since the view was built: it is exactly the new state.
            committed.tables = view;
        } else {
            let mut next = committed.tables.clone();
            next.apply_each(&journal)?;
            committed.tables = next;
        }
        committed.generation += 1;
        Ok(())
    }

    /// Discards the journal and finishes the unit of work. Harmless on a finished one.
    pub(crate) fn rollback(&self) {
        let mut state = lock(&self.state);
        state.open = false;
        state.journal = Vec::new();
        state.view = Tables::default();
        state.doomed = None;
    }
}
