//! The access-control contract on the in-memory fake: `ReadOnly` and `Scoped` views over `InMemoryDatabase`'s
//! repositories, with the ledger entries of two users (two tenants) and customers of two names.

use std::sync::Arc;

use cpc_testkit::contract::repository::DataPorts;
use cpc_testkit::memory::InMemoryDatabase;

mod access {
    use super::*;

    cpc_testkit::access_contract!(async { Arc::new(DataPorts::from(&InMemoryDatabase::new())) });
}

/// Every case again on one database shared by all of them: cases keep to their own tenants, so a view never
/// sees a neighbour's rows even when the table holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_on_one_shared_database() {
    let ports = DataPorts::from(&InMemoryDatabase::new());
    for (name, case) in cpc_testkit::contract::access::all() {
        eprintln!("case {name}");
        case(&ports).await;
    }
}
