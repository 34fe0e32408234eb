//! # cpc-testkit
//!
//! What app and adapter tests need:
//!
//! * [`memory`]: in-memory implementations of every port that behave like the real backends (TTLs on tokio's
//!   clock, atomic set-if-absent, growing fencing tokens, exact rate limits, fan-out pub/sub, unique e-mails,
//!   optimistic versions, all-or-nothing units of work). Use them in app unit tests. The key-value ones are
//!   `cpc_adapters::memory` re-exported (apps take them from there as their single-process embedded default);
//!   the repository fakes (`InMemoryDatabase`) live here.
//! * [`contract`]: one suite per port, written once, run against every implementation. A fake that passes the
//!   same suite as the Redis adapter is a fake apps can trust.
//! * [`mocks`]: the mockall mocks of every core trait, re-exported from `cpc-ports`.
//!
//! ## Running a contract suite
//!
//! Each suite has a macro that expands to one `#[tokio::test]` per case, named after the rule it checks. It takes
//! an async expression that yields a fresh, isolated implementation (behind anything that derefs to it, such as
//! `Arc<dyn Cache>`); it is evaluated once per case.
//!
//! ```
//! mod memory_cache {
//!     cpc_testkit::cache_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemoryCache::default()) });
//! }
//! mod memory_cache_as_dyn {
//!     use std::sync::Arc;
//!     cpc_testkit::cache_contract!(async {
//!         Arc::new(cpc_testkit::memory::InMemoryCache::default()) as Arc<dyn cpc_ports::Cache>
//!     });
//! }
//! # fn main() {}
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod contract;
pub mod memory;

/// The mockall mocks of every core port trait (`MockCache`, `MockUserRepository`, `MockUnitOfWork`, ...).
pub mod mocks {
    pub use cpc_ports::mocks::*;
}

/// Expands to one `#[tokio::test]` per named case: each evaluates `$factory` (an async expression yielding a
/// smart pointer to the port) and calls `$module::$case(&*port)`; with `inline`, to a block running every case in
/// turn inside the caller's own test. Used by the per-port suite macros. With `via Trait => method` before the
/// cases, each case gets `&port.method()` instead (`Trait` in scope, so the call auto-derefs through the factory's
/// wrapper): for cases that need an owned handle on the port, such as a clone for a lease guard's watchdog.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($module:path, $factory:expr, [$($case:ident),+ $(,)?] $(, $mode:ident)?) => {
        $crate::__contract_cases!(@run $module, $factory, (deref), [$($case),+] $(, $mode)?);
    };
    ($module:path, $factory:expr, via $trait:path => $method:ident, [$($case:ident),+ $(,)?] $(, $mode:ident)?) => {
        $crate::__contract_cases!(@run $module, $factory, ($trait => $method), [$($case),+] $(, $mode)?);
    };
    (@run $module:path, $factory:expr, $via:tt, [$($case:ident),+]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let port = $factory.await;
                use $module as suite;
                suite::$case(&$crate::__contract_cases!(@port port, $via)).await;
            }
        )+
    };
    (@run $module:path, $factory:expr, $via:tt, [$($case:ident),+], inline) => {{
        // Every case in turn, each on a fresh port from the factory, as statements of the caller's test: for
        // ports whose server is costly to start (a Redis Cluster), so one test starts it once and the factory
        // may borrow it. The failing case is named.
        use $module as suite;
        $(
            {
                let port = $factory.await;
                eprintln!("contract case {}", stringify!($case));
                suite::$case(&$crate::__contract_cases!(@port port, $via)).await;
            }
        )+
    }};
    (@port $port:ident, (deref)) => {
        *$port
    };
    (@port $port:ident, ($trait:path => $method:ident)) => {{
        use $trait as _;
        $port.$method()
    }};
}
