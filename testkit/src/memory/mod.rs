//! In-memory implementations of every port.
