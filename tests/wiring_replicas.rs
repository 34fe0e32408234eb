//! The composition root over a PostgreSQL primary and a streaming replica started by the harness
//! (`PrivateReplicaPair`): `DATABASE_REPLICA_URLS` wires the replica, the ordinary ports read the primary, and a
//! `Ports::stale_reads` view reads the replica except right after its own writes. A paused replica proves where
//! a read went: it keeps answering with the data it had. The health report counts the replicas in rotation, and
//! an app started while its replica is down starts degraded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cpc_data::domain::{NewUser, UpdateUser, Username};
use cpc_data::ports::HealthStatus;
use cpc_data::wiring::{DatabaseSettings, Ports, Settings, WiringError};
use cpc_test_servers::PrivateReplicaPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wired_replicas_serve_stale_views_and_never_a_callers_own_write() {
    let pair = PrivateReplicaPair::start().await;
    let (primary_url, replica_url) = pair.create_database("app").await;
    let settings = Settings::from_lookup("app", |k| match k {
        "DATABASE_URL" => Some(primary_url.clone()),
        "DATABASE_REPLICA_URLS" => Some(replica_url.clone()),
        _ => None,
    })
    .unwrap();
    assert!(matches!(settings.database, DatabaseSettings::PostgresWithReplicas(ref c) if c.replicas.len() == 1));
    let ports = Ports::wire(&settings).await.unwrap();
    assert!(ports.description.contains("replicas:"), "{}", ports.description);

    let ada = ports.users.create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    pair.wait_replayed().await;
    pair.pause_replay().await;
    let rename = UpdateUser { username: Some(Username::parse("ada2").unwrap()), ..UpdateUser::default() };
    let renamed = ports.users.update(&ada.id, ada.version, rename).await.unwrap();

    let view = ports.stale_reads();
    assert_eq!(view.users.find_by_id(&ada.id).await.unwrap(), Some(ada.clone()), "the view read the paused replica");
    assert_eq!(ports.users.find_by_id(&ada.id).await.unwrap(), Some(renamed.clone()), "the ports read the primary");

    let bob = view.users.create(NewUser::new("bob", "bob@example.org").unwrap()).await.unwrap();
    assert_eq!(view.users.find_by_id(&bob.id).await.unwrap(), Some(bob.clone()), "the view reads its own write");
    let other = ports.stale_reads();
    assert_eq!(other.users.find_by_id(&bob.id).await.unwrap(), None, "another view still reads the replica");

    pair.resume_replay().await;
    pair.wait_replayed().await;
    assert_eq!(other.users.find_by_id(&ada.id).await.unwrap(), Some(renamed.clone()), "the replica caught up");
    let (status, reports) = ports.health().await;
    assert_eq!((status, reports[0].details["replicas_up"].as_str()), (HealthStatus::Healthy, "1/1"), "{reports:?}");

    // The replica dies: reads fall back to the primary, and the health report says so.
    pair.replica().kill();
    assert_eq!(ports.stale_reads().users.find_by_id(&ada.id).await.unwrap(), Some(renamed.clone()));
    let (status, reports) = ports.health().await;
    assert_eq!((status, reports[0].details["replicas_up"].as_str()), (HealthStatus::Degraded, "0/1"), "{reports:?}");

    // An app started while it is down starts all the same, degraded, and reads the primary.
    let started = Ports::wire(&settings).await.expect("a replica down at start-up does not stop the app");
    assert_eq!(started.stale_reads().users.find_by_id(&ada.id).await.unwrap(), Some(renamed));
    let (status, reports) = started.health().await;
    assert_eq!((status, reports[0].details["replicas_up"].as_str()), (HealthStatus::Degraded, "0/1"), "{reports:?}");
}

#[test]
fn replica_urls_without_postgres_or_malformed_are_errors_naming_the_variable() {
    let sqlite = Settings::from_lookup("app", |k| match k {
        "DATABASE_REPLICA_URLS" => Some("postgres://r1/app".into()),
        _ => None,
    });
    assert!(
        matches!(&sqlite, Err(WiringError::Config(e)) if e.key() == "DATABASE_REPLICA_URLS" && e.reason().contains("SQLite")),
        "{sqlite:?}"
    );
    let malformed = Settings::from_lookup("app", |k| match k {
        "DATABASE_URL" => Some("postgres://app@db/app".into()),
        "DATABASE_REPLICA_URLS" => Some("postgres://app:hunter2@r1:port/app".into()),
        _ => None,
    });
    let message = format!("{malformed:?}");
    assert!(message.contains("DATABASE_REPLICA_URLS") && !message.contains("hunter2"), "{message}");
}
