//! Everything an app needs for everyday use, in one import: `use cpc_data::prelude::*;`.
//!
//! It holds:
//!
//! * **Ports** (the traits app code takes as `Arc<dyn …>`): [`Repository`], [`UserRepository`],
//!   [`EntityRepository`], [`CustomerRepository`], [`TransactionRepository`], [`RecordStore`], [`UnitOfWork`],
//!   [`Tx`], [`Cache`], [`Lock`], [`RateLimiter`], [`SessionStore`], [`PubSub`], [`JobQueue`], [`HealthCheck`].
//! * **Their extension traits**, which give every implementation (`dyn` ones included) its typed methods
//!   (`cache.get::<T>()`, `lock.with_lock(..)`, `uow.run(..)`, `tx.nested(..)`, `repo.read_only()`, ...):
//!   [`CacheExt`], [`LockExt`], [`RateLimiterExt`], [`SessionStoreExt`], [`PubSubExt`], [`JobQueueExt`],
//!   [`UnitOfWorkExt`], [`TxExt`], [`RepositoryExt`], [`RecordStoreExt`], [`AccessExt`].
//! * **Keys and the values the ports take**: [`CacheKey`], [`LockKey`], [`RateLimitKey`], [`SessionId`],
//!   [`Channel`], [`ChannelPattern`], [`QueueName`], [`JobId`]; [`LockLease`], [`FencingToken`],
//!   [`RateLimitPolicy`], [`RateLimitDecision`], [`EnqueueOptions`], [`ReservedJob`], [`Subscription`],
//!   [`TypedSubscription`], [`HealthReport`], [`HealthStatus`].
//! * **Queries**: [`Filter`], [`Query`], [`Sort`], [`Direction`], [`Page`], [`PageRequest`], [`Cursor`],
//!   [`TimeRange`], and the built-in tables' fields [`UserField`], [`EntityField`], [`CustomerField`],
//!   [`TransactionField`].
//! * **Errors**: [`RepoError`] (with [`ConflictKind`]), [`KvError`], [`CodecError`], [`ValidationError`], and,
//!   with a pool feature (`postgres`, `sqlite` or `redis`), the pool's `DatabaseError`.
//! * **The domain**: the built-in records [`User`], [`Entity`], [`Customer`], [`Transaction`], their ids
//!   ([`UserId`], [`EntityId`], [`CustomerId`], [`TransactionId`]), their `New*` and `Update*` forms
//!   ([`NewUser`], [`UpdateUser`], ...), and the validated values [`Email`], [`Username`], [`Money`],
//!   [`Currency`], [`EntityKind`], [`TransactionKind`].
//! * **The composition root** (feature `wiring`, on by default): `Ports`, `Settings`, `AppData`, `Repositories`
//!   and `WiringError`.
//!
//! Left out on purpose, because their names are too generic for a glob import or an app rarely writes them:
//! the query model's `Value`, `Field`, `FieldValue` and `Float` (a filter's value is written as `x.into()`),
//! `Record` (implemented by `record!`), `Version`, `Codec` and the pub/sub `Message`. They stay one path away,
//! in [`crate::ports`] and [`crate::domain`], as does every adapter type in [`crate::adapters`].
//!
//! ```
//! use cpc_data::prelude::*;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let ports = Ports::wire(&Settings::embedded("myapp", dir.path())).await?;
//! let ada = ports.users.create(NewUser::new("ada", "ada@example.org")?).await?;
//! let key = CacheKey::new(format!("user:{}", ada.id))?;
//! ports.cache.set(&key, "ada", None).await?;
//! assert_eq!(ports.cache.get::<String>(&key).await?.as_deref(), Some("ada"));
//! # Ok(()) }
//! ```

pub use cpc_domain::{
    Currency, Customer, CustomerId, Email, Entity, EntityId, EntityKind, Money, NewCustomer, NewEntity, NewTransaction,
    NewUser, Transaction, TransactionId, TransactionKind, UpdateCustomer, UpdateEntity, UpdateTransaction, UpdateUser,
    User, UserId, Username, ValidationError,
};
// The ports.
pub use cpc_ports::{
    Cache, CustomerRepository, EntityRepository, HealthCheck, JobQueue, Lock, PubSub, RateLimiter, RecordStore,
    Repository, SessionStore, TransactionRepository, Tx, UnitOfWork, UserRepository,
};
// Their extension traits.
pub use cpc_ports::{
    AccessExt, CacheExt, JobQueueExt, LockExt, PubSubExt, RateLimiterExt, RecordStoreExt, RepositoryExt,
    SessionStoreExt, TxExt, UnitOfWorkExt,
};
// Keys and the values the ports take and give.
pub use cpc_ports::{
    CacheKey, Channel, ChannelPattern, EnqueueOptions, FencingToken, HealthReport, HealthStatus, JobId, LockKey,
    LockLease, QueueName, RateLimitDecision, RateLimitKey, RateLimitPolicy, ReservedJob, SessionId, Subscription,
    TypedSubscription,
};
// Queries.
pub use cpc_ports::{
    Cursor, CustomerField, Direction, EntityField, Filter, Page, PageRequest, Query, Sort, TimeRange, TransactionField,
    UserField,
};
// Errors.
pub use cpc_ports::{CodecError, ConflictKind, KvError, RepoError};

#[cfg(any(feature = "postgres", feature = "sqlite", feature = "redis"))]
pub use cpc_adapters::pool::DatabaseError;

#[cfg(feature = "wiring")]
pub use crate::wiring::{AppData, Ports, Repositories, Settings, WiringError};
