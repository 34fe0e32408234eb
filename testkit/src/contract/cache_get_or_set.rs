//! The [`Cache`] contract, `get_or_set` part: single flight per key, failures handed to the waiters, waits
//! bounded by [`Cache::compute_wait`]. Run by [`cache_contract!`](crate::cache_contract) with the other cases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cpc_ports::{Cache, CacheExt, KeyTtl, KvError};
use tokio::time::sleep;

use super::cache::{key, namespace};
use super::concurrently;

/// The compute wait the runners in this workspace build their caches with (`with_compute_wait`), so that
/// [`a_waiter_gives_up_after_the_compute_wait_with_a_timeout`] takes about a second. A cache left at the default
/// 10 s passes the same cases, that one taking 10 s longer.
pub const COMPUTE_WAIT: Duration = Duration::from_secs(1);

/// The longest compute wait the suite accepts: beyond it the timeout case would wait too long to be a test.
const MAX_COMPUTE_WAIT: Duration = Duration::from_secs(30);

/// How long a computation that other callers join runs: long enough for every caller to join it, short
/// enough to end well within the compute wait.
fn compute_time<P: Cache + ?Sized>(port: &P) -> Duration {
    (port.compute_wait() / 4).min(Duration::from_millis(200))
}

/// A stored value is returned without computing; a zero TTL is refused before anything runs.
pub async fn get_or_set_returns_a_stored_value_without_computing<P: Cache + ?Sized>(port: &P) {
    let ns = namespace("get_or_set_returns_a_stored_value_without_computing");
    let (k, fresh) = (key(format!("{ns}stored")), key(format!("{ns}fresh")));
    let computed = AtomicUsize::new(0);
    port.set(&k, &41_u32, None).await.unwrap();
    let got: u32 = port
        .get_or_set(&k, None, || async {
            computed.fetch_add(1, Ordering::SeqCst);
            Ok(99)
        })
        .await
        .unwrap();
    assert_eq!(got, 41, "get_or_set on a present key returns the stored value");
    let err = port
        .get_or_set::<u32, _, _>(&fresh, Some(Duration::ZERO), || async {
            computed.fetch_add(1, Ordering::SeqCst);
            Ok(1)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "a zero TTL must be a Validation error, got {err:?}");
    assert_eq!(computed.load(Ordering::SeqCst), 0, "neither call may compute");
    assert_eq!(port.get_bytes(&fresh).await.unwrap(), None, "a refused get_or_set stores nothing");
    let got: u32 = port.get_or_set(&fresh, Some(Duration::from_secs(10)), || async { Ok(7) }).await.unwrap();
    assert_eq!((got, port.get::<u32>(&fresh).await.unwrap()), (7, Some(7)), "a miss computes and stores");
    match port.ttl(&fresh).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_secs(10), "get_or_set's TTL applies: {left:?}"),
        other => panic!("a computed value must be stored with its TTL, got {other:?}"),
    }
}

/// Of 16 concurrent callers on one missing key, one computes; every caller gets that value, which is stored.
pub async fn get_or_set_computes_once_for_concurrent_callers<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}k", namespace("get_or_set_computes_once_for_concurrent_callers")));
    let computed = AtomicUsize::new(0);
    let pause = compute_time(port);
    let values = concurrently(16, |i| {
        let (k, computed) = (k.clone(), &computed);
        async move {
            port.get_or_set(&k, None, || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                sleep(pause).await;
                Ok(format!("computed by caller {i}"))
            })
            .await
            .unwrap()
        }
    })
    .await;
    assert_eq!(computed.load(Ordering::SeqCst), 1, "16 concurrent callers must compute the value once");
    assert!(values.iter().all(|v| *v == values[0]), "every caller gets the one computed value: {values:?}");
    assert_eq!(port.get::<String>(&k).await.unwrap().as_ref(), Some(&values[0]), "the computed value is stored");
}

/// A computation that fails runs once: every caller waiting for it gets its error (same variant, same text),
/// nothing is stored, and the next call computes again.
pub async fn a_failing_computation_runs_once_and_every_waiter_gets_its_error<P: Cache + ?Sized>(port: &P) {
    let k = key(format!("{}k", namespace("a_failing_computation_runs_once_and_every_waiter_gets_its_error")));
    let computed = AtomicUsize::new(0);
    let pause = compute_time(port);
    let results = concurrently(16, |_| {
        let (k, computed) = (k.clone(), &computed);
        async move {
            port.get_or_set::<u32, _, _>(&k, None, || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                sleep(pause).await;
                Err(KvError::Unavailable { backend: "source", reason: "the source is down".into() })
            })
            .await
        }
    })
    .await;
    assert_eq!(computed.load(Ordering::SeqCst), 1, "a failing computation runs once, not once per waiter");
    for result in &results {
        match result {
            Err(KvError::Unavailable { backend: "source", reason }) => assert_eq!(reason, "the source is down"),
            other => panic!("every caller must get the computation's error, got {other:?}"),
        }
    }
    assert_eq!(port.get_bytes(&k).await.unwrap(), None, "a failed computation stores nothing");
    let got: u32 = port.get_or_set(&k, None, || async { Ok(5) }).await.unwrap();
    assert_eq!(got, 5, "after a failure the next call computes again");
}

/// A caller waiting for another's computation gives up after [`Cache::compute_wait`] with
/// [`KvError::Timeout`], without computing; the computation goes on and its value is stored.
pub async fn a_waiter_gives_up_after_the_compute_wait_with_a_timeout<P: Cache + ?Sized>(port: &P) {
    let wait = port.compute_wait();
    assert!(wait <= MAX_COMPUTE_WAIT, "build the cache with a compute wait of at most {MAX_COMPUTE_WAIT:?}");
    let k = key(format!("{}k", namespace("a_waiter_gives_up_after_the_compute_wait_with_a_timeout")));
    let waiter_computed = AtomicUsize::new(0);
    let leader = port.get_or_set(&k, None, || async move {
        sleep(wait + Duration::from_secs(1)).await;
        Ok("slow".to_owned())
    });
    let waiter = async {
        sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let result = port
            .get_or_set::<String, _, _>(&k, None, || async {
                waiter_computed.fetch_add(1, Ordering::SeqCst);
                Ok("waiter".to_owned())
            })
            .await;
        (result, started.elapsed())
    };
    let (led, (waited, took)) = tokio::join!(leader, waiter);
    match waited {
        Err(KvError::Timeout { after, .. }) => assert_eq!(after, wait, "the timeout names the compute wait"),
        other => panic!("a waiter must give up with Timeout after the compute wait, got {other:?}"),
    }
    assert!(took >= wait, "the waiter waits the compute wait: {took:?} < {wait:?}");
    assert!(took < wait + Duration::from_millis(700), "the waiter gives up at the compute wait, took {took:?}");
    assert_eq!(waiter_computed.load(Ordering::SeqCst), 0, "a waiter that gives up does not compute");
    assert_eq!(led.unwrap(), "slow", "the leader is not cut short");
    assert_eq!(port.get::<String>(&k).await.unwrap().as_deref(), Some("slow"), "the leader's value is stored");
}
