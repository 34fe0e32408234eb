//! Where a repository reads and writes: the committed state of a database, or an open unit of work's view of it.
//!
//! A unit of work keeps a journal of its row changes and a view: the committed state plus its journal. The view
//! is rebuilt whenever another writer has committed since (so, like PostgreSQL's READ COMMITTED, every statement
//! sees what others committed before it). Commit replays the journal against the current committed state under
//! the lock, with every check, all or nothing. A nested level (a savepoint) remembers the journal's length when it
//! began: rolling back to it truncates the journal there; committing it keeps the journal as it is.
//!
//! Lock order: a unit of work's state, then the database. Non-transactional writes take only the database lock,
//! never while a unit of work's lock is held by the same call, so mixing both cannot deadlock.

use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cpc_domain::ValidationError;
use cpc_ports::{ConflictKind, RepoError};

use super::table::{Change, Opener, Tables};

/// The committed state of one database.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(crate) tables: Tables,
    /// Incremented by every commit that changed something.
    generation: u64,
}

impl Committed {
    /// Gives record `T` a table unless it has one; open units of work see it from their next statement.
    pub(crate) fn register<T: cpc_ports::Record>(&mut self, open: Opener) {
        if self.tables.register::<T>(open) {
            self.generation += 1;
        }
    }
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
    /// One level of an open (or finished) unit of work.
    Tx(TxScope),
}

/// The id of the top level of a unit of work; nested levels count up from it.
const TOP: u64 = 0;

/// One level of a unit of work, as its `Tx` and repositories hold it: the top-level transaction, or one nested in
/// it (a savepoint).
#[derive(Debug, Clone)]
pub(crate) struct TxScope {
    pub(crate) handle: Arc<TxHandle>,
    level: u64,
}

impl TxScope {
    /// The top level of a new unit of work on `shared`.
    pub(crate) fn begin(shared: Shared) -> Self {
        Self { handle: Arc::new(TxHandle::begin(shared)), level: TOP }
    }

    /// Whether this is the top-level transaction.
    pub(crate) fn is_top(&self) -> bool {
        self.level == TOP
    }

    /// Opens a level nested in this one. Like the database, MUST be done from the innermost open level.
    pub(crate) fn savepoint(&self) -> Result<Self, RepoError> {
        let mut state = lock(&self.handle.state);
        state.check_level(self.level)?;
        state.next_level += 1;
        let level = state.next_level;
        let journal_len = state.journal.len();
        state.savepoints.push(Savepoint { level, journal_len });
        Ok(Self { handle: self.handle.clone(), level })
    }

    /// Commits a nested level: its writes stay in the journal, now the enclosing level's. With a level nested in
    /// it still open, fails with `NestedTransactionOpen` and rolls back to its savepoint instead.
    pub(crate) fn release(&self) -> Result<(), RepoError> {
        let mut state = lock(&self.handle.state);
        if let Err(e) = state.check_level(self.level) {
            state.roll_back_to(self.level);
            return Err(e);
        }
        state.savepoints.pop();
        Ok(())
    }

    /// Rolls a nested level back to its savepoint, with every level nested in it.
    pub(crate) fn roll_back_nested(&self) -> Result<(), RepoError> {
        let mut state = lock(&self.handle.state);
        if state.open && state.roll_back_to(self.level) { Ok(()) } else { Err(RepoError::TransactionFinished) }
    }

    /// What dropping a nested level does: rolls it back to its savepoint, unless it is finished.
    pub(crate) fn abandon_nested(&self) {
        lock(&self.handle.state).roll_back_to(self.level);
    }
}

impl Store {
    /// The repository of the record whose `TypeId` is `record` on this store, if the database has its table.
    pub(crate) fn repository(&self, record: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        let shared = match self {
            Self::Committed(shared) => shared,
            Self::Tx(scope) => &scope.handle.shared,
        };
        lock(shared).tables.repository(record, self)
    }

    /// Runs a read against the visible state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Tables) -> Result<R, RepoError>) -> Result<R, RepoError> {
        match self {
            Self::Committed(shared) => f(&lock(shared).tables),
            Self::Tx(scope) => {
                let tx = &scope.handle;
                let mut state = lock(&tx.state);
                state.check_level(scope.level)?;
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
            Self::Tx(scope) => {
                let tx = &scope.handle;
                let mut state = lock(&tx.state);
                state.check_level(scope.level)?;
                tx.refresh(&mut state)?;
                let (result, changes) = f(&state.view)?;
                state.view.apply_all(&changes)?;
                state.journal.extend(changes);
                Ok(result)
            }
        }
    }
}

/// A unit of work, shared by its `Tx`s (the top-level one and those nested in it) and every repository they
/// handed out.
#[derive(Debug)]
pub(crate) struct TxHandle {
    pub(crate) shared: Shared,
    state: Mutex<TxState>,
}

#[derive(Debug)]
struct TxState {
    open: bool,
    /// The committed state as of `view_generation`, plus the journal. Built on first use.
    view: Tables,
    view_generation: Option<u64>,
    journal: Vec<Change>,
    /// The nested levels open, innermost last (a finished level is removed at once, its writes rolled back).
    savepoints: Vec<Savepoint>,
    /// The id of the last nested level opened.
    next_level: u64,
    /// Set when a concurrent commit made the journal impossible to apply (e.g. it took an e-mail address this
    /// unit of work had taken): every later statement and the commit fail with this error.
    doomed: Option<Doom>,
}

/// An open nested level: where the journal stood when it began.
#[derive(Debug)]
struct Savepoint {
    level: u64,
    journal_len: usize,
}

/// Why a unit of work can no longer commit, kept to report it again at every later call.
#[derive(Debug, Clone)]
enum Doom {
    Conflict(&'static str, ConflictKind),
    Invalid(ValidationError),
}

impl Doom {
    fn of(e: &RepoError) -> Self {
        match e {
            RepoError::Conflict { entity, kind } => Self::Conflict(entity, kind.clone()),
            RepoError::Validation(v) => Self::Invalid(v.clone()),
            _ => Self::Conflict("transaction", ConflictKind::Concurrent),
        }
    }

    fn error(&self) -> RepoError {
        match self {
            Self::Conflict(entity, kind) => RepoError::Conflict { entity, kind: kind.clone() },
            Self::Invalid(v) => RepoError::Validation(v.clone()),
        }
    }
}

impl TxState {
    /// Checks that the unit is open and `level` is its innermost open level.
    fn check_level(&self, level: u64) -> Result<(), RepoError> {
        if !self.open {
            return Err(RepoError::TransactionFinished);
        }
        match self.savepoints.last() {
            Some(last) if last.level == level => Ok(()),
            None if level == TOP => Ok(()),
            _ if level == TOP || self.savepoints.iter().any(|s| s.level == level) => {
                Err(RepoError::NestedTransactionOpen)
            }
            _ => Err(RepoError::TransactionFinished),
        }
    }

    /// Undoes the writes of nested `level` and of every level nested in it, and closes them. Returns whether it
    /// was open.
    fn roll_back_to(&mut self, level: u64) -> bool {
        let Some(at) = self.savepoints.iter().position(|s| s.level == level) else {
            return false;
        };
        self.journal.truncate(self.savepoints[at].journal_len);
        self.savepoints.truncate(at);
        // The view is rebuilt from the committed state and what is left of the journal at the next statement,
        // which also decides afresh whether the unit is doomed.
        self.view_generation = None;
        self.doomed = None;
        true
    }
}

impl TxHandle {
    /// A new, open unit of work on `shared`.
    pub(crate) fn begin(shared: Shared) -> Self {
        let state = TxState {
            open: true,
            view: Tables::default(),
            view_generation: None,
            journal: Vec::new(),
            savepoints: Vec::new(),
            next_level: TOP,
            doomed: None,
        };
        Self { shared, state: Mutex::new(state) }
    }

    /// Makes sure the unit of work is usable and its view includes everything committed meanwhile.
    fn refresh(&self, state: &mut TxState) -> Result<(), RepoError> {
        if !state.open {
            return Err(RepoError::TransactionFinished);
        }
        if let Some(doom) = &state.doomed {
            return Err(doom.error());
        }
        let (generation, mut view) = {
            let committed = lock(&self.shared);
            if state.view_generation == Some(committed.generation) {
                return Ok(());
            }
            (committed.generation, committed.tables.clone())
        };
        if let Err(e) = view.apply_each(&state.journal) {
            state.doomed = Some(Doom::of(&e));
            return Err(e);
        }
        state.view = view;
        state.view_generation = Some(generation);
        Ok(())
    }

    /// Applies the journal to the committed state, all or nothing, and finishes the unit of work either way. With
    /// a nested level still open, fails with `NestedTransactionOpen` and applies nothing.
    pub(crate) fn commit(&self) -> Result<(), RepoError> {
        let mut state = lock(&self.state);
        if !state.open {
            return Err(RepoError::TransactionFinished);
        }
        state.open = false;
        let journal = mem::take(&mut state.journal);
        let view = mem::take(&mut state.view);
        if !mem::take(&mut state.savepoints).is_empty() {
            state.doomed = None;
            return Err(RepoError::NestedTransactionOpen);
        }
        if let Some(doom) = state.doomed.take() {
            return Err(doom.error());
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
        state.savepoints = Vec::new();
        state.view = Tables::default();
        state.doomed = None;
    }
}
