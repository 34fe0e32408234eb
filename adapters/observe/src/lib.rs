//! # cpc-observe
//!
//! Decorators for every port (feature `observe`): [`Observed`] adds `tracing` spans and `metrics`,
//! [`Timeout`] bounds each call, [`Retry`] retries retryable errors with backoff and a budget. All three are one
//! type, [`Decorated<P, D>`](Decorated), whose port impls forward every method of [`Cache`](cpc_ports::Cache),
//! [`Lock`](cpc_ports::Lock), [`RateLimiter`](cpc_ports::RateLimiter), [`SessionStore`](cpc_ports::SessionStore),
//! [`PubSub`](cpc_ports::PubSub), [`HealthCheck`](cpc_ports::HealthCheck), [`JobQueue`](cpc_ports::JobQueue), the
//! four repositories and [`UnitOfWork`](cpc_ports::UnitOfWork) to the wrapped port, through one [`Decorate::around`] per call. They
//! stack: `Observed<Retry<Timeout<CacheManager>>>` traces one span per logical call, retried under a time limit
//! per attempt.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cpc_observe::{Observe, Observed, Retry, RetryPolicy, TimeLimit, Timeout};
//! use cpc_ports::Cache;
//! use cpc_memory::InMemoryCache;
//!
//! let cache = InMemoryCache::default();
//! let cache = Timeout::new(cache, TimeLimit::new(Duration::from_millis(200)));
//! let cache = Retry::new(cache, RetryPolicy::default());
//! let cache: Arc<dyn Cache> = Arc::new(Observed::new(cache, Observe::new("memory", "sessions-cache")));
//! ```
//!
//! # Spans
//!
//! One `INFO` span `cpc.port` per call, following the OpenTelemetry database conventions: `db.system` (given at
//! construction: `redis`, `postgresql`, `sqlite`, `memory`), `db.operation` (the port method, e.g. `get_bytes`),
//! `db.namespace` (the key namespace or database name given at construction), `cpc.port` (`cache`, `lock`,
//! `rate_limit`, `session`, `pubsub`, `health`, `job_queue`, `unit_of_work`, or a repository's record: `user`,
//! `entity`, `customer`, `transaction`), `otel.kind = "client"`, and on failure `error.type` (the error's kind) and
//! `otel.status_code = "ERROR"`. Keys, values, session ids and credentials are never recorded.
//!
//! # Metrics
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `cpc_port_calls_total` | counter | `port`, `operation` | calls through an [`Observed`] port |
//! | `cpc_port_errors_total` | counter | `port`, `operation`, `kind` | calls that returned an error (`kind`: [`KvError::kind`](cpc_ports::KvError::kind) / [`RepoError::kind`](cpc_ports::RepoError::kind); `unhealthy` for a health report) |
//! | `cpc_port_call_seconds` | histogram | `port`, `operation` | call latency, errors included |
//! | `cpc_port_retries_total` | counter | `port`, `operation` | attempts a [`Retry`] made after the first |
//! | `cpc_port_retry_budget_exhausted_total` | counter | `port`, `operation` | retryable errors not retried because the budget was spent |
//! | `cpc_port_timeouts_total` | counter | `port`, `operation` | calls a [`Timeout`] cut off |
//!
//! Handles are looked up in the installed recorder per call (labels are static strings, so no allocation);
//! install the recorder before the first call.

mod decorate;
mod forward_jobs;
mod forward_kv;
mod forward_repo;
mod observed;
mod retry;
mod timeout;

pub use cpc_ports::PortError;
pub use decorate::{Decorate, Decorated, Op};
pub use observed::Observe;
pub use retry::{RetryBudget, RetryPolicy};
pub use timeout::TimeLimit;

/// A port with `tracing` spans and `metrics` on every call.
pub type Observed<P> = Decorated<P, Observe>;
/// A port whose every call is bounded by a [`TimeLimit`].
pub type Timeout<P> = Decorated<P, TimeLimit>;
/// A port whose calls are retried under a [`RetryPolicy`].
pub type Retry<P> = Decorated<P, RetryPolicy>;
