//! Every decorator (`Observed`, `Timeout`, `Retry`) forwards every method of every port to the port it wraps,
//! exactly once, with the arguments it was given, and hands back the wrapped port's answer. Checked with mockall
//! mocks expecting each method `.times(1)`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "observe")]

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::observe::{Decorate, Decorated, Observe, RetryPolicy, TimeLimit};
use cpc_ports::domain::{Email, EntityId, EntityKind, NewEntity, NewUser, UpdateUser, UserId, Username, Version};
use cpc_ports::mocks::{
    MockCache, MockCustomerRepository, MockEntityRepository, MockHealthCheck, MockJobQueue, MockLock, MockPubSub,
    MockRateLimiter, MockSessionStore, MockTransactionRepository, MockTx, MockUnitOfWork, MockUserRepository,
};
use cpc_ports::{
    Bytes, Cache, CacheKey, Channel, ChannelPattern, Codec, CustomerRepository, DeadJob, EnqueueOptions,
    EntityRepository, HealthCheck, HealthReport, HealthStatus, JobId, JobQueue, KeyTtl, KvError, Lock, LockKey,
    LockLease, NackOutcome, NewJob, PageRequest, PubSub, PubSubCapabilities, Query, QueueName, QueueStats,
    RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter, RepoError, Repository, ReservedJob, SessionId,
    SessionStore, SingleFlight, Subscription, TimeRange, TransactionRepository, UnitOfWork, UserRepository,
};

const TTL: Duration = Duration::from_secs(30);

fn key() -> CacheKey {
    CacheKey::new("k").unwrap()
}

fn lease() -> LockLease {
    LockLease { key: LockKey::new("l").unwrap(), owner: "me".into(), token: cpc_ports::FencingToken(7), ttl: TTL }
}

async fn cache_forwards<D: Decorate>(d: D) {
    let mut m = MockCache::new();
    m.expect_get_bytes().times(1).withf(|k| k.as_str() == "k").returning(|_| Ok(Some(Bytes::from("v"))));
    m.expect_set_bytes().times(1).withf(|_, v, t| v == "v" && *t == Some(TTL)).returning(|_, _, _| Ok(()));
    m.expect_set_if_absent_bytes().times(1).returning(|_, _, _| Ok(true));
    m.expect_delete().times(1).returning(|_| Ok(true));
    m.expect_exists().times(1).returning(|_| Ok(false));
    m.expect_ttl().times(1).returning(|_| Ok(KeyTtl::Persistent));
    m.expect_get_many_bytes().times(1).withf(|ks| ks.len() == 2).returning(|_| Ok(vec![None, None]));
    m.expect_set_many_bytes().times(1).withf(|e, _| e.len() == 1).returning(|_, _| Ok(()));
    m.expect_delete_prefix().times(1).withf(|p| p == "pre").returning(|_| Ok(3));
    m.expect_increment_by()
        .times(1)
        .withf(|k, d, t| k.as_str() == "k" && *d == -3 && *t == Some(TTL))
        .returning(|_, _, _| Ok(39));
    m.expect_expire().times(1).withf(|_, t| *t == Some(TTL)).returning(|_, _| Ok(true));
    m.expect_get_and_delete_bytes().times(1).returning(|_| Ok(Some(Bytes::from("gone"))));
    m.expect_codec().times(1).returning(Codec::msgpack);
    m.expect_max_value_bytes().times(1).return_const(123usize);
    let flights = Arc::new(SingleFlight::new());
    let shared = Arc::clone(&flights);
    m.expect_single_flight().times(1).returning(move || Some(Arc::clone(&shared)));
    m.expect_compute_wait().times(1).return_const(Duration::from_millis(250));
    let c = Decorated::new(m, d);
    assert_eq!(c.get_bytes(&key()).await.unwrap(), Some(Bytes::from("v")));
    c.set_bytes(&key(), Bytes::from("v"), Some(TTL)).await.unwrap();
    assert!(c.set_if_absent_bytes(&key(), Bytes::new(), None).await.unwrap());
    assert!(c.delete(&key()).await.unwrap());
    assert!(!c.exists(&key()).await.unwrap());
    assert_eq!(c.ttl(&key()).await.unwrap(), KeyTtl::Persistent);
    assert_eq!(c.get_many_bytes(&[key(), key()]).await.unwrap(), vec![None, None]);
    c.set_many_bytes(vec![(key(), Bytes::new())], None).await.unwrap();
    assert_eq!(c.delete_prefix("pre").await.unwrap(), 3);
    assert_eq!(c.increment_by(&key(), -3, Some(TTL)).await.unwrap(), 39);
    assert!(c.expire(&key(), Some(TTL)).await.unwrap());
    assert_eq!(c.get_and_delete_bytes(&key()).await.unwrap(), Some(Bytes::from("gone")));
    assert_eq!(c.codec(), Codec::msgpack());
    assert_eq!(c.max_value_bytes(), 123);
    assert!(c.single_flight().is_some_and(|f| Arc::ptr_eq(&f, &flights)), "the wrapped cache's group");
    assert_eq!(c.compute_wait(), Duration::from_millis(250));
}

async fn lock_forwards<D: Decorate>(d: D) {
    let mut m = MockLock::new();
    m.expect_try_acquire().times(1).withf(|_, t| *t == TTL).returning(|_, _| Ok(Some(lease())));
    m.expect_acquire().times(1).withf(|_, _, w| *w == Duration::from_millis(5)).returning(|_, _, _| Ok(lease()));
    m.expect_extend().times(1).returning(|l, _| Ok(l.clone()));
    m.expect_release().times(1).withf(|l| l.owner == "me").returning(|_| Ok(()));
    m.expect_is_held().times(1).returning(|_| Ok(true));
    let l = Decorated::new(m, d);
    let k = LockKey::new("l").unwrap();
    assert_eq!(l.try_acquire(&k, TTL).await.unwrap(), Some(lease()));
    assert_eq!(l.acquire(&k, TTL, Duration::from_millis(5)).await.unwrap(), lease());
    assert_eq!(l.extend(&lease(), TTL).await.unwrap(), lease());
    l.release(lease()).await.unwrap();
    assert!(l.is_held(&lease()).await.unwrap());
}

async fn rate_limiter_forwards<D: Decorate>(d: D) {
    let decision =
        RateLimitDecision { allowed: true, limit: 5, remaining: 4, retry_after: None, reset_after: Duration::ZERO };
    let mut m = MockRateLimiter::new();
    m.expect_check().times(1).withf(|_, _, cost| *cost == 2).returning(move |_, _, _| Ok(decision));
    m.expect_reset().times(1).returning(|_| Ok(()));
    let r = Decorated::new(m, d);
    let k = RateLimitKey::new("r").unwrap();
    assert_eq!(r.check(&k, &RateLimitPolicy::token_bucket(5, 1), 2).await.unwrap(), decision);
    r.reset(&k).await.unwrap();
}

async fn session_store_forwards<D: Decorate>(d: D) {
    let id = SessionId::generate();
    let (a, b, c) = (id.clone(), id.clone(), id.clone());
    let mut m = MockSessionStore::new();
    m.expect_create_bytes().times(1).returning(move |_, _| Ok(a.clone()));
    m.expect_insert_bytes().times(1).withf(|_, data, ttl| data == "x" && *ttl == TTL).returning(|_, _, _| Ok(true));
    m.expect_load_bytes().times(1).returning(|_| Ok(Some(Bytes::from("x"))));
    m.expect_save_bytes().times(1).withf(|_, data| data == "y").returning(|_, _| Ok(()));
    m.expect_extend().times(1).returning(|_, _| Ok(()));
    m.expect_destroy().times(1).returning(|_| Ok(true));
    m.expect_cycle_id().times(1).returning(move |_| Ok(b.clone()));
    m.expect_ttl().times(1).returning(|_| Ok(Some(TTL)));
    m.expect_codec().times(1).returning(Codec::json);
    let s = Decorated::new(m, d);
    assert_eq!(s.create_bytes(Bytes::new(), TTL).await.unwrap(), c);
    assert!(s.insert_bytes(&id, Bytes::from("x"), TTL).await.unwrap());
    assert_eq!(s.load_bytes(&id).await.unwrap(), Some(Bytes::from("x")));
    s.save_bytes(&id, Bytes::from("y")).await.unwrap();
    s.extend(&id, TTL).await.unwrap();
    assert!(s.destroy(&id).await.unwrap());
    assert_eq!(s.cycle_id(&id).await.unwrap(), id);
    assert_eq!(s.ttl(&id).await.unwrap(), Some(TTL));
    assert_eq!(s.codec(), Codec::json());
}

async fn pubsub_forwards<D: Decorate>(d: D) {
    let mut m = MockPubSub::new();
    m.expect_publish_bytes().times(1).withf(|c, p| c.as_str() == "c" && p == "m").returning(|_, _| Ok(2));
    m.expect_subscribe_bytes().times(1).returning(|_| Ok(Subscription::new(futures::stream::empty())));
    m.expect_psubscribe_bytes().times(1).returning(|_| Ok(Subscription::new(futures::stream::empty())));
    m.expect_codec().times(1).returning(Codec::json);
    m.expect_capabilities().times(1).returning(|| PubSubCapabilities::all().without_patterns());
    let p = Decorated::new(m, d);
    let channel = Channel::new("c").unwrap();
    assert_eq!(p.publish_bytes(&channel, Bytes::from("m")).await.unwrap(), 2);
    p.subscribe_bytes(&channel).await.unwrap();
    p.psubscribe_bytes(&ChannelPattern::new("c*").unwrap()).await.unwrap();
    assert_eq!(p.codec(), Codec::json());
    assert_eq!(p.capabilities(), PubSubCapabilities::all().without_patterns(), "capabilities are the inner bus's");
}

async fn health_check_forwards<D: Decorate>(d: D) {
    let mut m = MockHealthCheck::new();
    m.expect_check().times(1).returning(|| HealthReport::new("db", HealthStatus::Degraded, Duration::ZERO));
    assert_eq!(Decorated::new(m, d).check().await.status, HealthStatus::Degraded);
}

async fn job_queue_forwards<D: Decorate>(d: D) {
    let q = QueueName::new("q").unwrap();
    let job =
        ReservedJob { id: JobId::new("j1"), queue: q.clone(), payload: Bytes::from("p"), attempt: 1, max_attempts: 3 };
    let (reserved, dead) = (job.clone(), DeadJob { id: JobId::new("j0"), payload: Bytes::new(), attempts: 3 });
    let stats = QueueStats { pending: 1, in_flight: 2, delayed: 3, dead: 4 };
    let mut m = MockJobQueue::new();
    m.expect_enqueue_bytes()
        .times(1)
        .withf(|q, p, o| q.as_str() == "q" && p == "p" && o.idempotency_key.as_deref() == Some("k"))
        .returning(|_, _, _| Ok(JobId::new("j1")));
    // The batch reaches the inner queue whole: the port's default (one enqueue_bytes per job) would fail the
    // enqueue_bytes expectation above.
    m.expect_enqueue_many_bytes()
        .times(1)
        .withf(|q, jobs| q.as_str() == "q" && jobs.len() == 2 && jobs[1].payload == "b")
        .returning(|_, _| Ok(vec![JobId::new("j2"), JobId::new("j3")]));
    m.expect_reserve().times(1).withf(|_, v| *v == TTL).returning(move |_, _| Ok(Some(reserved.clone())));
    m.expect_ack().times(1).withf(|j| j.id.as_str() == "j1").returning(|_| Ok(()));
    m.expect_nack().times(1).withf(|_, after| *after == TTL).returning(|_, _| Ok(NackOutcome::Dead));
    m.expect_extend().times(1).withf(|j, v| j.id.as_str() == "j1" && *v == TTL).returning(|_, _| Ok(()));
    m.expect_dead_letters().times(1).withf(|_, limit| *limit == 10).returning(move |_, _| Ok(vec![dead.clone()]));
    m.expect_requeue_dead().times(1).withf(|_, id| id.as_str() == "j0").returning(|_, _| Ok(()));
    m.expect_stats().times(1).returning(move |_| Ok(stats));
    m.expect_codec().times(1).returning(Codec::msgpack);
    let jq = Decorated::new(m, d);
    let options = EnqueueOptions::default().idempotency_key("k");
    assert_eq!(jq.enqueue_bytes(&q, Bytes::from("p"), options).await.unwrap(), JobId::new("j1"));
    let batch = vec![NewJob::new("a"), NewJob::new("b")];
    assert_eq!(jq.enqueue_many_bytes(&q, batch).await.unwrap(), vec![JobId::new("j2"), JobId::new("j3")]);
    assert_eq!(jq.reserve(&q, TTL).await.unwrap(), Some(job.clone()));
    jq.ack(&job).await.unwrap();
    assert_eq!(jq.nack(&job, TTL).await.unwrap(), NackOutcome::Dead);
    jq.extend(&job, TTL).await.unwrap();
    assert_eq!(jq.dead_letters(&q, 10).await.unwrap().len(), 1);
    jq.requeue_dead(&q, &JobId::new("j0")).await.unwrap();
    assert_eq!(jq.stats(&q).await.unwrap(), stats);
    assert_eq!(jq.codec(), Codec::msgpack());
}

fn not_found() -> RepoError {
    RepoError::NotFound { entity: "test", id: "x".into() }
}

async fn repositories_forward<D: Decorate>(d: D) {
    let mut users = MockUserRepository::new();
    users.expect_create().times(1).withf(|n| n.username.as_str() == "ann").returning(|_| Err(not_found()));
    users.expect_create_many().times(1).withf(|n| n.len() == 2).returning(|_| Ok(vec![]));
    users.expect_find_by_id().times(1).returning(|_| Ok(None));
    users.expect_find_page().times(1).returning(|_| Err(not_found()));
    users.expect_update().times(1).withf(|_, v, _| *v == Version::FIRST).returning(|_, _, _| Err(not_found()));
    users.expect_delete().times(1).returning(|_| Ok(true));
    users.expect_exists().times(1).returning(|_| Ok(false));
    users.expect_count().times(1).returning(|_| Ok(9));
    users.expect_find_by_email().times(1).returning(|_| Ok(None));
    users.expect_find_by_username().times(1).returning(|_| Ok(None));
    let u = Decorated::new(users, d.clone());
    let new = NewUser::new("ann", "ann@example.com").unwrap();
    let id = UserId::new();
    assert!(matches!(u.create(new.clone()).await, Err(RepoError::NotFound { .. })));
    assert!(u.create_many(vec![new.clone(), new]).await.unwrap().is_empty());
    assert!(u.find_by_id(&id).await.unwrap().is_none());
    assert!(u.find_page(&Query::new()).await.is_err());
    assert!(u.update(&id, Version::FIRST, UpdateUser::default()).await.is_err());
    assert!(u.delete(&id).await.unwrap());
    assert!(!u.exists(&id).await.unwrap());
    assert_eq!(u.count(&[]).await.unwrap(), 9);
    let email = Email::parse("ann@example.com").unwrap();
    assert!(UserRepository::find_by_email(&u, &email).await.unwrap().is_none());
    assert!(u.find_by_username(&Username::parse("ann").unwrap()).await.unwrap().is_none());

    let mut entities = MockEntityRepository::new();
    entities.expect_find_by_kind().times(1).returning(|_, _| Err(not_found()));
    entities.expect_upsert().times(1).withf(|_, n| n.name == "n").returning(|_, _| Err(not_found()));
    let e = Decorated::new(entities, d.clone());
    let kind = EntityKind::parse("invoice").unwrap();
    assert!(e.find_by_kind(&kind, PageRequest::default()).await.is_err());
    let new = NewEntity { kind, name: "n".into(), attributes: serde_json::json!({}) };
    assert!(e.upsert(&EntityId::new(), new).await.is_err());

    let mut customers = MockCustomerRepository::new();
    customers.expect_find_by_email().times(1).returning(|_| Ok(None));
    let c = Decorated::new(customers, d.clone());
    assert!(CustomerRepository::find_by_email(&c, &email).await.unwrap().is_none());

    let mut transactions = MockTransactionRepository::new();
    transactions.expect_history().times(1).returning(|_, _, _| Err(not_found()));
    let t = Decorated::new(transactions, d);
    let now = cpc_ports::repository::stored_now();
    assert!(t.history(&id, TimeRange::new(now, now).unwrap(), PageRequest::default()).await.is_err());
}

async fn unit_of_work_forwards<D: Decorate>(d: D) {
    let mut uow = MockUnitOfWork::new();
    let mut seq = mockall::Sequence::new();
    uow.expect_begin().times(1).in_sequence(&mut seq).returning(|| {
        let mut tx = MockTx::new();
        tx.expect_users().times(1).returning(|| {
            let mut users = MockUserRepository::new();
            users.expect_count().times(1).returning(|_| Ok(1));
            Arc::new(users)
        });
        tx.expect_entities().times(1).returning(|| Arc::new(MockEntityRepository::new()));
        tx.expect_customers().times(1).returning(|| Arc::new(MockCustomerRepository::new()));
        tx.expect_transactions().times(1).returning(|| Arc::new(MockTransactionRepository::new()));
        tx.expect_commit().times(1).returning(|| Ok(()));
        Ok(Box::new(tx))
    });
    uow.expect_begin().times(1).in_sequence(&mut seq).returning(|| {
        let mut tx = MockTx::new();
        tx.expect_savepoint().times(1).returning(|| {
            let mut nested = MockTx::new();
            nested.expect_users().times(1).returning(|| {
                let mut users = MockUserRepository::new();
                users.expect_count().times(1).returning(|_| Ok(2));
                Arc::new(users)
            });
            nested.expect_commit().times(1).returning(|| Ok(()));
            Ok(Box::new(nested))
        });
        tx.expect_rollback().times(1).returning(|| Ok(()));
        Ok(Box::new(tx))
    });
    let u = Decorated::new(uow, d);
    let tx = u.begin().await.unwrap();
    assert_eq!(tx.users().count(&[]).await.unwrap(), 1);
    let _ = (tx.entities(), tx.customers(), tx.transactions());
    tx.commit().await.unwrap();
    let tx = u.begin().await.unwrap();
    let nested = tx.savepoint().await.unwrap();
    assert_eq!(nested.users().count(&[]).await.unwrap(), 2, "the nested transaction's repositories forward");
    nested.commit().await.unwrap();
    tx.rollback().await.unwrap();
}

async fn every_port_forwards<D: Decorate>(d: D) {
    cache_forwards(d.clone()).await;
    lock_forwards(d.clone()).await;
    rate_limiter_forwards(d.clone()).await;
    session_store_forwards(d.clone()).await;
    pubsub_forwards(d.clone()).await;
    health_check_forwards(d.clone()).await;
    job_queue_forwards(d.clone()).await;
    repositories_forward(d.clone()).await;
    unit_of_work_forwards(d).await;
}

#[tokio::test]
async fn observed_forwards_every_method_once() {
    every_port_forwards(Observe::new("memory", "forwarding")).await;
}

#[tokio::test]
async fn timeout_forwards_every_method_once() {
    every_port_forwards(TimeLimit::new(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn retry_forwards_every_method_once() {
    // Generous enough to retry anything; nothing here fails retryably, so each method still runs once.
    every_port_forwards(RetryPolicy::default().retry_non_idempotent(true)).await;
}

#[tokio::test]
async fn decorators_stack_and_still_forward_once() {
    let mut m = MockCache::new();
    m.expect_get_bytes().times(1).returning(|_| Err(KvError::invalid("cache_key", "refused by the mock")));
    let inner = Decorated::new(m, TimeLimit::new(Duration::from_secs(5)));
    let stacked = Decorated::new(Decorated::new(inner, RetryPolicy::default()), Observe::new("memory", "stack"));
    let cache: Arc<dyn Cache> = Arc::new(stacked);
    assert!(matches!(cache.get_bytes(&key()).await, Err(KvError::Validation(_))));
}
