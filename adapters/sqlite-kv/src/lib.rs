//! # cpc-sqlite-kv
//!
//! The durable ports on SQLite, for the embedded default (a desktop or CLI app on one SQLite file): queued jobs and
//! sessions survive a restart. Each adapter passes the same contract suite as the Redis and in-process ones, on
//! tables created by the library's migrations (`migrations/sqlite`).
