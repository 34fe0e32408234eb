//! The `Lock` contract, lease guard included, through the decorators of `cpc-observe` stacked as an app would
//! (`Observed<Retry<Timeout<DistributedLock>>>` on the shared Redis server), directly and as `Arc<dyn Lock>`: a
//! decorated lock is still a lock, and the guard's watchdog extends it through the decorators.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "observe", feature = "redis"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::observe::{Observe, Observed, Retry, RetryPolicy, TimeLimit, Timeout};
use cpc_adapters::redis::DistributedLock;
use cpc_ports::Lock;

type Decorated = Observed<Retry<Timeout<DistributedLock>>>;

/// A decorated Redis lock under a namespace of its own; fencing counters kept an hour, so runs leave nothing.
async fn decorated(case: &str) -> Decorated {
    let lock =
        DistributedLock::new(common::redis::shared_manager(case).await).with_fence_ttl(Duration::from_secs(3600));
    let lock = Timeout::new(lock, TimeLimit::new(Duration::from_secs(2)));
    let lock = Retry::new(lock, RetryPolicy::default());
    Observed::new(lock, Observe::new("redis", "locks"))
}

mod concrete {
    cpc_testkit::lock_contract!(async { std::sync::Arc::new(super::decorated("observe-lock").await) });
}

mod as_dyn {
    cpc_testkit::lock_contract!(async {
        super::Arc::new(super::decorated("observe-lock-dyn").await) as super::Arc<dyn super::Lock>
    });
}
