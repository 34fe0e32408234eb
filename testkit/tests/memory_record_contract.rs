//! The record contract (`record_contract!`) on the in-memory fake, for the same two app records the Diesel
//! backends run it on (`cpc-adapters`' `tests/app_contract`): a fresh `InMemoryDatabase` per case.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../adapters/tests/app_contract/mod.rs"]
mod app_contract;

use std::sync::Arc;

use app_contract::{Project, Projects, Task, Tasks};
use cpc_ports::RecordStore;
use cpc_testkit::memory::InMemoryDatabase;

/// A fresh fake with both app records registered.
async fn memory() -> Arc<dyn RecordStore> {
    let db = InMemoryDatabase::new();
    db.register::<Project>().register::<Task>();
    Arc::new(db)
}

mod projects_in_memory {
    use super::*;
    cpc_testkit::record_contract!(Projects, memory());
}

mod tasks_in_memory {
    use super::*;
    cpc_testkit::record_contract!(Tasks, memory());
}
