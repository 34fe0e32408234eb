//! What the decorators do: `Retry` retries only retryable errors of idempotent operations, with backoff, within
//! its budget; `Timeout` cuts off slow calls (allowing a lock's own wait); `Observed` emits OpenTelemetry-style
//! spans and the port metrics, never keys or values, over a real Redis cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "observe", feature = "redis"))]

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpc_adapters::observe::{
    Decorate, Decorated, Observe, Observed, Op, PortError, Retry, RetryBudget, RetryPolicy, TimeLimit, Timeout,
};
use cpc_adapters::redis::CacheManager;
use cpc_ports::mocks::{MockCache, MockJobQueue};
use cpc_ports::{Bytes, Cache, CacheKey, EnqueueOptions, JobId, JobQueue, KvError, Lock, LockKey, NewJob, QueueName};
use cpc_testkit::memory::{InMemoryCache, InMemoryLock};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

fn key() -> CacheKey {
    CacheKey::new("k").unwrap()
}

fn unavailable() -> KvError {
    KvError::Unavailable { backend: "test", reason: "down".into() }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default().max_attempts(3).backoff(Duration::from_millis(1), Duration::from_millis(4))
}

#[tokio::test]
async fn retry_retries_retryable_errors_until_success() {
    let mut m = MockCache::new();
    let mut calls = 0;
    m.expect_get_bytes().times(3).returning(move |_| {
        calls += 1;
        if calls < 3 { Err(unavailable()) } else { Ok(Some(Bytes::from("v"))) }
    });
    let cache = Retry::new(m, fast_retries());
    assert_eq!(cache.get_bytes(&key()).await.unwrap(), Some(Bytes::from("v")));
}

#[tokio::test]
async fn retry_gives_up_after_max_attempts_with_the_last_error() {
    let mut m = MockCache::new();
    m.expect_exists().times(3).returning(|_| Err(unavailable()));
    let cache = Retry::new(m, fast_retries());
    assert!(matches!(cache.exists(&key()).await, Err(KvError::Unavailable { .. })));
}

#[tokio::test]
async fn retry_does_not_retry_errors_that_are_not_retryable() {
    let mut m = MockCache::new();
    m.expect_get_bytes().times(1).returning(|_| Err(KvError::invalid("cache_key", "bad")));
    let cache = Retry::new(m, fast_retries());
    assert!(matches!(cache.get_bytes(&key()).await, Err(KvError::Validation(_))));
}

#[tokio::test]
async fn retry_leaves_non_idempotent_operations_alone_unless_told() {
    let mut m = MockCache::new();
    m.expect_set_if_absent_bytes().times(1).returning(|_, _, _| Err(unavailable()));
    let cache = Retry::new(m, fast_retries());
    assert!(cache.set_if_absent_bytes(&key(), Bytes::new(), None).await.is_err());

    let mut m = MockCache::new();
    m.expect_set_if_absent_bytes().times(3).returning(|_, _, _| Err(unavailable()));
    let cache = Retry::new(m, fast_retries().retry_non_idempotent(true));
    assert!(cache.set_if_absent_bytes(&key(), Bytes::new(), None).await.is_err());
}

#[tokio::test]
async fn retry_leaves_counters_and_get_and_delete_alone_but_retries_expire() {
    // A retried increment could count twice, a retried get_and_delete lose the value it took.
    let mut m = MockCache::new();
    m.expect_increment_by().times(1).returning(|_, _, _| Err(unavailable()));
    m.expect_get_and_delete_bytes().times(1).returning(|_| Err(unavailable()));
    m.expect_expire().times(3).returning(|_, _| Err(unavailable()));
    let cache = Retry::new(m, fast_retries());
    assert!(matches!(cache.increment_by(&key(), 1, None).await, Err(KvError::Unavailable { .. })));
    assert!(matches!(cache.get_and_delete_bytes(&key()).await, Err(KvError::Unavailable { .. })));
    assert!(matches!(cache.expire(&key(), None).await, Err(KvError::Unavailable { .. })));
}

/// The cache contract through the whole stack of decorators, as `Arc<dyn Cache>`: single flight, counters and
/// expiry reach the wrapped cache unchanged.
mod decorated_cache_contract {
    use std::sync::Arc;
    use std::time::Duration;

    use cpc_adapters::observe::{Observe, Observed, Retry, RetryPolicy, TimeLimit, Timeout};
    use cpc_ports::Cache;
    use cpc_testkit::contract::cache::COMPUTE_WAIT;
    use cpc_testkit::memory::InMemoryCache;

    cpc_testkit::cache_contract!(async {
        let cache = InMemoryCache::default().with_compute_wait(COMPUTE_WAIT);
        let cache = Timeout::new(cache, TimeLimit::new(Duration::from_secs(5)));
        let cache = Retry::new(cache, RetryPolicy::default());
        Arc::new(Observed::new(cache, Observe::new("memory", "contract"))) as Arc<dyn Cache>
    });
}

#[tokio::test]
async fn retry_repeats_an_enqueue_only_when_its_idempotency_key_makes_that_safe() {
    let q = QueueName::new("q").unwrap();
    // Without a key, a second attempt after a lost reply could store the job twice: one call, the error back.
    let mut m = MockJobQueue::new();
    m.expect_enqueue_bytes().times(1).returning(|_, _, _| Err(unavailable()));
    let queue = Retry::new(m, fast_retries());
    assert!(queue.enqueue_bytes(&q, Bytes::new(), EnqueueOptions::default()).await.is_err());

    // With a key the queue stores it once however often it is sent: retried until it succeeds.
    let mut m = MockJobQueue::new();
    let mut calls = 0;
    m.expect_enqueue_bytes().times(2).returning(move |_, _, _| {
        calls += 1;
        if calls < 2 { Err(unavailable()) } else { Ok(JobId::new("j")) }
    });
    let queue = Retry::new(m, fast_retries());
    let keyed = EnqueueOptions::default().idempotency_key("order-7");
    assert_eq!(queue.enqueue_bytes(&q, Bytes::new(), keyed.clone()).await.unwrap(), JobId::new("j"));

    // A batch is repeated only when every job has a key; one job without a key makes it a single call.
    let mut m = MockJobQueue::new();
    m.expect_enqueue_many_bytes().times(1).returning(|_, _| Err(unavailable()));
    let queue = Retry::new(m, fast_retries());
    let half_keyed = vec![NewJob::new("a").with_options(keyed.clone()), NewJob::new("b")];
    assert!(queue.enqueue_many_bytes(&q, half_keyed).await.is_err());
    let mut m = MockJobQueue::new();
    let mut calls = 0;
    m.expect_enqueue_many_bytes().times(2).returning(move |_, jobs| {
        calls += 1;
        if calls < 2 { Err(unavailable()) } else { Ok(jobs.iter().map(|_| JobId::new("j")).collect()) }
    });
    let queue = Retry::new(m, fast_retries());
    let all_keyed = vec![
        NewJob::new("a").with_options(keyed.clone()),
        NewJob::new("b").with_options(EnqueueOptions::default().idempotency_key("order-8")),
    ];
    assert_eq!(queue.enqueue_many_bytes(&q, all_keyed).await.unwrap().len(), 2);

    // Reserving is never repeated: the first attempt may have taken a job whose reply was lost.
    let mut m = MockJobQueue::new();
    m.expect_reserve().times(1).returning(|_, _| Err(unavailable()));
    let queue = Retry::new(m, fast_retries());
    assert!(queue.reserve(&q, Duration::from_secs(1)).await.is_err());
}

#[tokio::test]
async fn retry_budget_stops_retries_when_spent() {
    // No reserve and no deposits: not a single retry is allowed.
    let mut m = MockCache::new();
    m.expect_get_bytes().times(1).returning(|_| Err(unavailable()));
    let cache = Retry::new(m, fast_retries().budget(Arc::new(RetryBudget::new(0.0, 0))));
    assert!(cache.get_bytes(&key()).await.is_err());

    // A reserve of 2, shared by two ports: the first call spends both retries, the second gets none.
    let budget = Arc::new(RetryBudget::new(0.0, 2));
    let mut a = MockCache::new();
    a.expect_get_bytes().times(3).returning(|_| Err(unavailable()));
    let mut b = MockCache::new();
    b.expect_get_bytes().times(1).returning(|_| Err(unavailable()));
    let policy = fast_retries().budget(Arc::clone(&budget));
    assert!(Retry::new(a, policy.clone()).get_bytes(&key()).await.is_err());
    assert!(Retry::new(b, policy).get_bytes(&key()).await.is_err());
    assert_eq!(budget.available(), 0);
}

#[tokio::test]
async fn retry_backs_off_between_attempts() {
    let mut m = MockCache::new();
    m.expect_get_bytes().times(3).returning(|_| Err(unavailable()));
    let policy = RetryPolicy::default().max_attempts(3).backoff(Duration::from_millis(40), Duration::from_secs(1));
    let started = Instant::now();
    assert!(Retry::new(m, policy).get_bytes(&key()).await.is_err());
    // Waits of 20..=40 ms then 40..=80 ms.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(60) && took < Duration::from_secs(2), "{took:?}");
}

/// A decorator that makes every call slow, to have something to time out.
#[derive(Clone)]
struct Slow(Duration);

impl Decorate for Slow {
    async fn around<'a, T, E, F, Fut>(&'a self, _op: Op, mut call: F) -> Result<T, E>
    where
        T: Send + 'a,
        E: PortError,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        tokio::time::sleep(self.0).await;
        call().await
    }
}

#[tokio::test]
async fn timeout_cuts_off_a_slow_call_with_a_retryable_timeout() {
    let slow = Decorated::new(InMemoryCache::new(Duration::from_secs(60)), Slow(Duration::from_secs(5)));
    let cache = Timeout::new(slow, TimeLimit::new(Duration::from_millis(50)));
    let started = Instant::now();
    let err = cache.get_bytes(&key()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, KvError::Timeout { operation: "get_bytes", .. }) && err.is_retryable(), "{err:?}");
    // A fast call under the same limit passes.
    let fast = Timeout::new(InMemoryCache::new(Duration::from_secs(60)), TimeLimit::new(Duration::from_millis(50)));
    fast.set_bytes(&key(), Bytes::from("v"), None).await.unwrap();
    assert_eq!(fast.get_bytes(&key()).await.unwrap(), Some(Bytes::from("v")));
}

#[tokio::test]
async fn timeout_allows_a_lock_its_own_wait() {
    let lock = Arc::new(InMemoryLock::new());
    let k = LockKey::new("busy").unwrap();
    let _held = lock.try_acquire(&k, Duration::from_secs(30)).await.unwrap().unwrap();
    let bounded = Timeout::from_arc(lock, TimeLimit::new(Duration::from_millis(20)));
    // The lock's own wait (150 ms) runs out, not the 20 ms limit: the error is the lock's.
    let started = Instant::now();
    let err = bounded.acquire(&k, Duration::from_secs(1), Duration::from_millis(150)).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(140), "{:?}", started.elapsed());
    assert!(matches!(err, KvError::Timeout { .. }), "{err:?}");
}

/// Spans seen: name and fields (recorded at creation and later).
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> tracing_subscriber::Layer<S>
    for Spans
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::from([("name".to_owned(), attrs.metadata().name().to_owned())]);
        attrs.record(&mut Fields(&mut fields));
        let mut all = self.0.lock().unwrap();
        all.push(fields);
        ctx.span(id).unwrap().extensions_mut().insert(all.len() - 1);
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let index = *ctx.span(id).unwrap().extensions().get::<usize>().unwrap();
        values.record(&mut Fields(&mut self.0.lock().unwrap()[index]));
    }
}

#[test]
fn observed_redis_cache_emits_db_spans_and_port_metrics_without_keys_or_values() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let secret_key = CacheKey::new("user:4711:password-reset").unwrap();
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let manager = common::redis::shared_manager("observe").await;
                let namespace = manager.config().namespace.clone();
                let cache = Observed::new(
                    CacheManager::new(manager, Duration::from_secs(60)),
                    Observe::new("redis", namespace),
                );
                cache.set_bytes(&secret_key, Bytes::from("s3cr3t-value"), None).await.unwrap();
                assert_eq!(cache.get_bytes(&secret_key).await.unwrap(), Some(Bytes::from("s3cr3t-value")));
                let err = cache.set_bytes(&secret_key, Bytes::new(), Some(Duration::ZERO)).await.unwrap_err();
                assert!(matches!(err, KvError::Validation(_)));
                cache.delete(&secret_key).await.unwrap();
            });
        });
    });

    let spans = spans.0.lock().unwrap().clone();
    let port_spans: Vec<_> = spans.iter().filter(|s| s["name"] == "cpc.port").collect();
    let ops: Vec<_> = port_spans.iter().map(|s| s["db.operation"].as_str()).collect();
    assert_eq!(ops, ["set_bytes", "get_bytes", "set_bytes", "delete"], "{spans:#?}");
    for span in &port_spans {
        assert_eq!((span["db.system"].as_str(), span["cpc.port"].as_str()), ("redis", "cache"));
        assert!(span["db.namespace"].starts_with("cpc-test:observe:"), "{span:?}");
        assert_eq!(span["otel.kind"], "client");
        let text = format!("{span:?}");
        assert!(!text.contains("4711") && !text.contains("s3cr3t"), "a key or value leaked into a span: {text}");
    }
    assert_eq!(port_spans[2].get("error.type").map(String::as_str), Some("validation"));
    assert_eq!(port_spans[2].get("otel.status_code").map(String::as_str), Some("ERROR"));
    assert!(!port_spans[1].contains_key("error.type"));

    let series: Vec<_> = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        series
            .iter()
            .find(|(k, _, _, _)| {
                let key = k.key();
                key.name() == name
                    && labels.iter().all(|(l, v)| key.labels().any(|kl| kl.key() == *l && kl.value() == *v))
            })
            .map(|(_, _, _, v)| v)
            .unwrap_or_else(|| panic!("no series {name} {labels:?}"))
    };
    let set = [("port", "cache"), ("operation", "set_bytes")];
    assert_eq!(*find("cpc_port_calls_total", &set), DebugValue::Counter(2));
    let errors = find("cpc_port_errors_total", &[("operation", "set_bytes"), ("kind", "validation")]);
    assert_eq!(*errors, DebugValue::Counter(1));
    match find("cpc_port_call_seconds", &[("port", "cache"), ("operation", "get_bytes")]) {
        DebugValue::Histogram(h) => assert_eq!(h.len(), 1),
        other => panic!("not a histogram: {other:?}"),
    }
    // The adapter's own metrics are there too: the decorator adds to them, it does not replace them.
    find("cpc_redis_commands_total", &[("adapter", "cache"), ("operation", "get")]);
}
