//! A follower that was down while the leader compacted its log past the
//! follower's position catches up by snapshot.

use std::time::Duration;

use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3, &["--log-compact-threshold=20"]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let client = cluster.client();
    client.put("before", "1").await.unwrap();
    cluster.kill(follower);

    // Far more entries than the threshold (x4 forces compaction past a down follower).
    for i in 0..200 {
        client
            .put(format!("k{i:03}"), format!("v{i}"))
            .await
            .unwrap();
    }
    let leader_client = cluster.client_of(leader);
    let status = leader_client
        .node_status(&cluster.node(leader).address)
        .await
        .unwrap();
    let first_index = status.replicas[0].first_log_index;
    assert!(
        first_index > 100,
        "leader should have compacted its log, first index is {first_index}"
    );

    cluster.restart(follower);
    eventually("the follower to receive the data", WAIT, || async {
        (cluster.local_value(follower, "k199").await? == b"v199").then_some(())
    })
    .await;
    let snapshots = cluster
        .metric(follower, "zdb_raft_snapshots_applied_total")
        .await;
    assert!(
        snapshots >= 1.0,
        "the follower caught up without a snapshot"
    );
    for i in [0, 57, 199] {
        assert_eq!(
            cluster.local_value(follower, &format!("k{i:03}")).await,
            Some(format!("v{i}").into_bytes())
        );
    }
    assert_eq!(
        cluster.local_value(follower, "before").await,
        Some(b"1".to_vec())
    );

    // And it keeps replicating normally after the snapshot.
    client.put("after", "2").await.unwrap();
    eventually(
        "a write after the snapshot to reach the follower",
        WAIT,
        || async { cluster.local_value(follower, "after").await.map(|_| ()) },
    )
    .await;
}
