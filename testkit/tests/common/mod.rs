//! Helpers shared by several integration test files.

pub mod app_records;
