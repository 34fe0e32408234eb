//! Table definitions, one module per backend.

pub mod postgres;
pub mod sqlite;
