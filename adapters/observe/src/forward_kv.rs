//! The key-value and coordination ports of a [`Decorated`] port: every method goes through
//! [`Decorate::around`] (the codec and size getters, which do no I/O, are forwarded as they are).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{
    Bytes, Cache, CacheKey, Channel, ChannelPattern, Codec, HealthCheck, HealthReport, KeyTtl, KvError, Lock, LockKey,
    LockLease, PubSub, PubSubCapabilities, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter, SessionId,
    SessionStore, SingleFlight, Subscription,
};

use super::{Decorate, Decorated, Op};

#[async_trait]
impl<P: Cache + ?Sized, D: Decorate> Cache for Decorated<P, D> {
    async fn get_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        self.decorator.around(Op::idempotent("cache", "get_bytes"), move || self.inner.get_bytes(key)).await
    }

    async fn set_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<(), KvError> {
        let op = Op::idempotent("cache", "set_bytes");
        self.decorator.around(op, move || self.inner.set_bytes(key, value.clone(), ttl)).await
    }

    async fn set_if_absent_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<bool, KvError> {
        let op = Op::once("cache", "set_if_absent_bytes");
        self.decorator.around(op, move || self.inner.set_if_absent_bytes(key, value.clone(), ttl)).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool, KvError> {
        self.decorator.around(Op::idempotent("cache", "delete"), move || self.inner.delete(key)).await
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool, KvError> {
        self.decorator.around(Op::idempotent("cache", "exists"), move || self.inner.exists(key)).await
    }

    async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, KvError> {
        self.decorator.around(Op::idempotent("cache", "ttl"), move || self.inner.ttl(key)).await
    }

    async fn get_many_bytes(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, KvError> {
        self.decorator.around(Op::idempotent("cache", "get_many_bytes"), move || self.inner.get_many_bytes(keys)).await
    }

    async fn set_many_bytes(&self, entries: Vec<(CacheKey, Bytes)>, ttl: Option<Duration>) -> Result<(), KvError> {
        let op = Op::idempotent("cache", "set_many_bytes");
        self.decorator.around(op, move || self.inner.set_many_bytes(entries.clone(), ttl)).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        self.decorator.around(Op::idempotent("cache", "delete_prefix"), move || self.inner.delete_prefix(prefix)).await
    }

    /// Not idempotent: a retried increment could count twice, so [`Retry`](super::Retry) leaves it alone.
    async fn increment_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let op = Op::once("cache", "increment_by");
        self.decorator.around(op, move || self.inner.increment_by(key, delta, ttl)).await
    }

    async fn expire(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<bool, KvError> {
        self.decorator.around(Op::idempotent("cache", "expire"), move || self.inner.expire(key, ttl)).await
    }

    /// Not idempotent: a retry after a lost answer would find the key gone and return `None`.
    async fn get_and_delete_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        let op = Op::once("cache", "get_and_delete_bytes");
        self.decorator.around(op, move || self.inner.get_and_delete_bytes(key)).await
    }

    fn codec(&self) -> Codec {
        self.inner.codec()
    }

    fn max_value_bytes(&self) -> usize {
        self.inner.max_value_bytes()
    }

    /// The wrapped cache's group, so calls through the decorator and past it share their computations.
    fn single_flight(&self) -> Option<Arc<SingleFlight<Bytes>>> {
        self.inner.single_flight()
    }

    fn compute_wait(&self) -> Duration {
        self.inner.compute_wait()
    }
}

#[async_trait]
impl<P: Lock + ?Sized, D: Decorate> Lock for Decorated<P, D> {
    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<LockLease>, KvError> {
        self.decorator.around(Op::once("lock", "try_acquire"), move || self.inner.try_acquire(key, ttl)).await
    }

    async fn acquire(&self, key: &LockKey, ttl: Duration, wait: Duration) -> Result<LockLease, KvError> {
        let op = Op::once("lock", "acquire").waiting(wait);
        self.decorator.around(op, move || self.inner.acquire(key, ttl, wait)).await
    }

    async fn extend(&self, lease: &LockLease, ttl: Duration) -> Result<LockLease, KvError> {
        self.decorator.around(Op::idempotent("lock", "extend"), move || self.inner.extend(lease, ttl)).await
    }

    async fn release(&self, lease: LockLease) -> Result<(), KvError> {
        self.decorator.around(Op::once("lock", "release"), move || self.inner.release(lease.clone())).await
    }

    async fn is_held(&self, lease: &LockLease) -> Result<bool, KvError> {
        self.decorator.around(Op::idempotent("lock", "is_held"), move || self.inner.is_held(lease)).await
    }
}

#[async_trait]
impl<P: RateLimiter + ?Sized, D: Decorate> RateLimiter for Decorated<P, D> {
    async fn check(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        self.decorator.around(Op::once("rate_limit", "check"), move || self.inner.check(key, policy, cost)).await
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<(), KvError> {
        self.decorator.around(Op::idempotent("rate_limit", "reset"), move || self.inner.reset(key)).await
    }
}

#[async_trait]
impl<P: SessionStore + ?Sized, D: Decorate> SessionStore for Decorated<P, D> {
    async fn create_bytes(&self, data: Bytes, ttl: Duration) -> Result<SessionId, KvError> {
        let op = Op::once("session", "create_bytes");
        self.decorator.around(op, move || self.inner.create_bytes(data.clone(), ttl)).await
    }

    async fn insert_bytes(&self, id: &SessionId, data: Bytes, ttl: Duration) -> Result<bool, KvError> {
        let op = Op::once("session", "insert_bytes");
        self.decorator.around(op, move || self.inner.insert_bytes(id, data.clone(), ttl)).await
    }

    async fn load_bytes(&self, id: &SessionId) -> Result<Option<Bytes>, KvError> {
        self.decorator.around(Op::idempotent("session", "load_bytes"), move || self.inner.load_bytes(id)).await
    }

    async fn save_bytes(&self, id: &SessionId, data: Bytes) -> Result<(), KvError> {
        let op = Op::idempotent("session", "save_bytes");
        self.decorator.around(op, move || self.inner.save_bytes(id, data.clone())).await
    }

    async fn extend(&self, id: &SessionId, ttl: Duration) -> Result<(), KvError> {
        self.decorator.around(Op::idempotent("session", "extend"), move || self.inner.extend(id, ttl)).await
    }

    async fn destroy(&self, id: &SessionId) -> Result<bool, KvError> {
        self.decorator.around(Op::idempotent("session", "destroy"), move || self.inner.destroy(id)).await
    }

    async fn cycle_id(&self, id: &SessionId) -> Result<SessionId, KvError> {
        self.decorator.around(Op::once("session", "cycle_id"), move || self.inner.cycle_id(id)).await
    }

    async fn ttl(&self, id: &SessionId) -> Result<Option<Duration>, KvError> {
        self.decorator.around(Op::idempotent("session", "ttl"), move || self.inner.ttl(id)).await
    }

    fn codec(&self) -> Codec {
        self.inner.codec()
    }
}

#[async_trait]
impl<P: PubSub + ?Sized, D: Decorate> PubSub for Decorated<P, D> {
    async fn publish_bytes(&self, channel: &Channel, payload: Bytes) -> Result<u64, KvError> {
        let op = Op::once("pubsub", "publish_bytes");
        self.decorator.around(op, move || self.inner.publish_bytes(channel, payload.clone())).await
    }

    async fn subscribe_bytes(&self, channel: &Channel) -> Result<Subscription, KvError> {
        self.decorator
            .around(Op::idempotent("pubsub", "subscribe_bytes"), move || self.inner.subscribe_bytes(channel))
            .await
    }

    async fn psubscribe_bytes(&self, pattern: &ChannelPattern) -> Result<Subscription, KvError> {
        let op = Op::idempotent("pubsub", "psubscribe_bytes");
        self.decorator.around(op, move || self.inner.psubscribe_bytes(pattern)).await
    }

    fn codec(&self) -> Codec {
        self.inner.codec()
    }

    fn capabilities(&self) -> PubSubCapabilities {
        self.inner.capabilities()
    }
}

#[async_trait]
impl<P: HealthCheck + ?Sized, D: Decorate> HealthCheck for Decorated<P, D> {
    async fn check(&self) -> HealthReport {
        self.decorator.around_report(Op::idempotent("health", "check"), self.inner.check()).await
    }
}
