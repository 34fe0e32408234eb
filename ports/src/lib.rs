//! # cpc-ports
//!
//! The traits CPC apps program against, and nothing that talks to a server. Apps hold `Arc<dyn Cache>`,
//! `Arc<dyn UserRepository>` and so on, wired once at start-up by a composition root; adapters (`cpc-adapters`)
//! and in-memory fakes (`cpc-testkit`) implement them, and every implementation passes the same contract suites.
//!
//! * Data: [`Repository`] (generic CRUD with filter, sort and paging), the built-in [`UserRepository`],
//!   [`EntityRepository`], [`CustomerRepository`], [`TransactionRepository`], and [`UnitOfWork`] for writes that
//!   must land together, with nested transactions (savepoints, [`Tx::savepoint`]). Errors: [`RepoError`].
//!   Access-controlled views of any repository ([`AccessExt`]): [`ReadOnly`], and [`Scoped`] to one tenant or
//!   owner.
//! * Key-value and coordination: [`Cache`], [`Lock`], [`RateLimiter`], [`SessionStore`], [`PubSub`]. Errors:
//!   [`KvError`]. Values cross these ports as bytes made by a [`Codec`] (JSON or MessagePack, optional
//!   compression, a format marker so foreign bytes are an error, never a wrong value); the typed extension traits
//!   ([`CacheExt`], [`PubSubExt`], [`SessionStoreExt`], [`LockExt`], [`RateLimiterExt`], [`UnitOfWorkExt`],
//!   [`TxExt`]) add
//!   `get::<T>()`-style convenience to every implementation, `dyn` ones included.
//! * Background work: [`JobQueue`] (enqueue, reserve with a visibility timeout, ack, nack with retry, dead
//!   letters; at-least-once delivery) and its typed [`JobQueueExt`]. Errors: [`KvError`].
//! * [`HealthCheck`], for `/health` endpoints.
//! * [`SingleFlight`]: one computation per key at a time in a process, its value or error handed to every caller
//!   waiting for it, each wait bounded (the core of a cache's `get_or_set`).
//! * [`jitter`]: randomised waits for retry loops (a lock's acquire loop, a retry decorator), shared by the
//!   adapters that back off.
//!
//! Every core trait is object-safe, `Send + Sync + 'static`, and has a mockall mock behind the `mocks` feature
//! (`MockCache`, `MockUserRepository`, ...). Each method's contract is written as MUST sentences; the contract
//! suites in `cpc-testkit` check them.

pub mod cache;
pub mod codec;
pub mod config_error;
pub mod error;
pub mod health;
pub mod jitter;
pub mod job_queue;
pub mod keys;
pub mod lock;
#[cfg(feature = "mocks")]
pub mod mocks;
pub mod pubsub;
pub mod rate_limit;
mod rate_limit_headers;
pub mod repository;
pub mod session;
pub mod single_flight;
pub mod uow;

pub use cache::{Cache, CacheExt, DEFAULT_COMPUTE_WAIT, KeyTtl};
pub use codec::{Codec, CodecError, Compression, Format, KeyId, Keyring};
pub use config_error::ConfigError;
pub use error::{ConflictKind, KvError, MAX_PAYLOAD_BYTES, PortError, RepoError, check_payload};
pub use health::{HealthCheck, HealthReport, HealthStatus, check_all};
pub use job_queue::{
    DeadJob, EnqueueOptions, JobId, JobQueue, JobQueueExt, JobQueueSettings, NackOutcome, NewJob, QueueName,
    QueueStats, ReservedJob, TypedJob,
};
pub use keys::{CacheKey, Channel, ChannelPattern, LockKey, RateLimitKey, SessionId};
pub use lock::{FencingToken, LeaseGuard, Lock, LockExt, LockLease};
pub use pubsub::{BufferLimits, Message, PubSub, PubSubCapabilities, PubSubExt, Subscription, TypedSubscription};
pub use rate_limit::{RateLimitDecision, RateLimitPolicy, RateLimiter, RateLimiterExt};
pub use rate_limit_headers::rate_limit_headers;
pub use repository::{
    AccessExt, Cursor, CustomerField, CustomerRepository, Direction, EntityField, EntityRepository, Field, FieldValue,
    Filter, Float, MAX_IN_VALUES, MAX_PAGE_SIZE, Page, PageRequest, Query, ReadOnly, Record, RecordId, RecordStore,
    RecordStoreExt, Reference, Repository, RepositoryExt, Scope, Scoped, Sort, TimeRange, TransactionField,
    TransactionRepository, UniqueKey, UserField, UserRepository, Value, ValueKind, placeholder_id,
};
pub use session::{SessionStore, SessionStoreExt};
pub use single_flight::{Joined, Leader, SingleFlight};
pub use uow::{Tx, TxExt, UnitOfWork, UnitOfWorkExt, unknown_record};

/// Re-exported so implementors and callers use the same `async_trait` as the traits.
pub use async_trait::async_trait;
/// The byte buffer values travel in.
pub use bytes::Bytes;
/// Re-exported domain types, so `use cpc_ports::*` is enough for most app code.
pub use cpc_domain as domain;
