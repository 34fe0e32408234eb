//! [`AppData`]: what an app adds to the data layer at start-up: its own records and its migrations.

use cpc_adapters::diesel::migrations::MigrationSet;
use cpc_adapters::diesel::{DbManager, DieselRecord};

/// Registers one record with a database.
type Register = fn(&DbManager);

/// An app's own records and migration sets, handed to [`wire_with`](super::wire_with) once at start-up.
///
/// ```no_run
/// # use cpc_data::wiring::{AppData, Ports};
/// # fn sets() -> cpc_data::adapters::diesel::migrations::MigrationSet { cpc_data::adapters::diesel::migrations::LIBRARY }
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// # type Consent = cpc_data::domain::User;
/// let data = AppData::new().record::<Consent>().migrations(sets());
/// let ports = Ports::from_env_with("consent", &data).await?;
/// let consents = ports.repo::<Consent>()?; // Arc<dyn Repository<Consent>>, on whatever DATABASE_URL says
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct AppData {
    registrations: Vec<(&'static str, Register)>,
    migrations: Vec<MigrationSet>,
}

impl std::fmt::Debug for AppData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let records: Vec<_> = self.registrations.iter().map(|(entity, _)| entity).collect();
        let sets: Vec<_> = self.migrations.iter().map(MigrationSet::name).collect();
        f.debug_struct("AppData").field("records", &records).field("migrations", &sets).finish()
    }
}

impl AppData {
    /// No records and no migrations of the app's own (the library's alone).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers record `T` (declared with `cpc_adapters::record!`).
    pub fn record<T: DieselRecord>(mut self) -> Self {
        self.registrations.push((T::ENTITY, |db| {
            db.register::<T>();
        }));
        self
    }

    /// Adds a migration set, run with the library's at start-up.
    pub fn migrations(mut self, set: MigrationSet) -> Self {
        self.migrations.push(set);
        self
    }

    /// The app's migration sets.
    pub fn migration_sets(&self) -> &[MigrationSet] {
        &self.migrations
    }

    /// The registered records' names.
    pub fn entities(&self) -> Vec<&'static str> {
        self.registrations.iter().map(|(entity, _)| *entity).collect()
    }

    /// Registers every record with `db`.
    pub fn register_with(&self, db: &DbManager) {
        for (_, register) in &self.registrations {
            register(db);
        }
    }
}
