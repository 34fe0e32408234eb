//! The primary + streaming replica harness against the real servers it starts: the replica is read-only and in
//! recovery, follows the primary's writes, can be paused, killed and restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cpc_test_servers::{PrivateReplicaPair, connect};

async fn count(url: &str) -> i64 {
    let client = connect(url).await.expect("connect");
    client.query_one("SELECT count(*) FROM notes", &[]).await.expect("count").get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_streams_follows_writes_and_survives_a_kill() {
    let pair = PrivateReplicaPair::start().await;
    let (primary_url, replica_url) = pair.create_database("app").await;
    let primary = connect(&primary_url).await.expect("connect to the primary");
    let replica = connect(&replica_url).await.expect("connect to the replica");
    assert!(replica.query_one("SELECT pg_is_in_recovery()", &[]).await.unwrap().get::<_, bool>(0));
    assert!(!primary.query_one("SELECT pg_is_in_recovery()", &[]).await.unwrap().get::<_, bool>(0));

    primary.batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('one')").await.unwrap();
    pair.wait_replayed().await;
    assert_eq!(count(&replica_url).await, 1, "the replica replayed the primary's write");
    assert!(replica.batch_execute("INSERT INTO notes VALUES ('no')").await.is_err(), "the replica is read-only");

    pair.pause_replay().await;
    primary.batch_execute("INSERT INTO notes VALUES ('two')").await.unwrap();
    assert_eq!(count(&replica_url).await, 1, "a paused replica is stale");
    pair.resume_replay().await;
    assert_eq!(count(&replica_url).await, 2, "and catches up once resumed");

    pair.replica().kill();
    assert!(connect(&replica_url).await.is_err(), "the killed replica refuses connections");
    primary.batch_execute("INSERT INTO notes VALUES ('three')").await.unwrap();
    pair.restart_replica().await;
    pair.wait_replayed().await;
    assert_eq!(count(&replica_url).await, 3, "the restarted replica follows the primary again");
}
