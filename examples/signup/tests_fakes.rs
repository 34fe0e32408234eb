//! The same service over the testkit's in-memory fakes: real behaviour, no expectations.
