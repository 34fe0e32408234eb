//! The contract suites: one module per port, each case a `pub async fn` taking the port, and a macro that runs
//! them all as named tests.
