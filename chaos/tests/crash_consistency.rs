//! Crash consistency of one known-dangerous path, made deterministic: a node
//! is down while its range splits and the new range's log is compacted, so
//! that on restart it replays the parent's split from its own log *and*
//! receives a snapshot of the new range (the past race: the split reset the
//! freshly installed range to its bootstrap state, raft panicked with
//! "to_commit out of range"). No acknowledged write may be lost and every
//! replica must end identical.

use std::time::Duration;

use zdb_chaos::checker::{replicas, Verdict};
use zdb_chaos::cluster::{ChaosCluster, ClusterConfig};
use zdb_chaos::proxy::LinkFault;
use zdb_client::Consistency;
use zdb_proto::v1::RaftRole;
use zdb_tests::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replays_a_split_and_installs_the_new_ranges_snapshot() {
    let mut config = ClusterConfig::new(3);
    // Compact after 50 entries: the new range's log is gone before node 3 returns.
    config.log_compact_threshold = 50;
    let mut cluster = ChaosCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("cluster ready");
    let client = cluster.client(Duration::from_secs(10)).expect("client");
    client
        .split_at(b"data/")
        .await
        .expect("split off the data range");
    client
        .put("data/0000", "before")
        .await
        .expect("write before the crash");

    cluster.kill(3).expect("SIGKILL node 3");
    let (_, right) = client
        .split_at(b"data/5")
        .await
        .expect("split while node 3 is down");
    let mut acknowledged = Vec::new();
    for index in 0..400 {
        let key = format!("data/5{index:04}");
        client
            .put(key.clone(), format!("v{index}"))
            .await
            .expect("write to the new range");
        acknowledged.push((key, format!("v{index}")));
    }
    cluster.start_node(3).expect("restart node 3");

    let address = cluster.address(3).expect("node 3");
    let admin = client.clone();
    eventually(
        "node 3 to catch up with the new range",
        Duration::from_secs(60),
        || {
            let (admin, address) = (admin.clone(), address.clone());
            async move {
                let status = admin.node_status(&address).await.ok()?;
                let replica = status.replicas.iter().find(|r| {
                    r.range
                        .as_ref()
                        .is_some_and(|d| d.range_id == right.range_id)
                })?;
                let caught_up = replica.role == RaftRole::Follower as i32
                    && replica.applied_index > 400
                    && replica.first_log_index > 1;
                caught_up.then_some(())
            }
        },
    )
    .await;
    assert!(cluster.is_running(3), "node 3 died while catching up");

    for (key, value) in &acknowledged {
        let seen = client.get(key.clone()).await.expect("linearizable read");
        assert_eq!(
            seen.as_deref(),
            Some(value.as_bytes()),
            "acknowledged write of {key} lost"
        );
    }
    let at_node_3 = eventually(
        "node 3 to serve the last write",
        Duration::from_secs(30),
        || {
            let (client, address) = (client.clone(), address.clone());
            async move {
                let value = client
                    .get_at_node(&address, b"data/50399", Consistency::Stale)
                    .await
                    .ok()??;
                Some(value)
            }
        },
    )
    .await;
    assert_eq!(at_node_3, b"v399");

    let nodes: Vec<(u64, String)> = cluster
        .node_ids()
        .into_iter()
        .filter_map(|id| Some((id, cluster.address(id)?)))
        .collect();
    let verdict = replicas::check(&client, &nodes, Duration::from_secs(60), None).await;
    assert_eq!(verdict, Verdict::Pass, "replicas differ: {verdict}");
    assert!(
        cluster.crashed_nodes().is_empty(),
        "a node crashed: {:?}",
        cluster.crashed_nodes()
    );
}

/// Found by zdb-chaos (flaky-network schedule, seed 3): a follower that
/// hears from a new range's leader before it applies the split creating that
/// range makes an empty replica for it; when the split then applied in the
/// same pass, the empty replica's hard state (commit 0) overwrote the split's
/// bootstrap state and the node panicked ("hs.commit 0 is out of range
/// [5, 5]"), also on every restart. Cutting the link from the parent's
/// leader to one follower during the split, then healing it, delivers the
/// split's commit and the new range's first messages in one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_survive_the_new_ranges_leader_arriving_first() {
    let mut cluster = ChaosCluster::start(ClusterConfig::new(3))
        .await
        .expect("cluster starts");
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("cluster ready");
    let client = cluster.client(Duration::from_secs(10)).expect("client");
    let nodes: Vec<(u64, String)> = cluster
        .node_ids()
        .into_iter()
        .filter_map(|id| Some((id, cluster.address(id)?)))
        .collect();
    // Each split's right half is the next one's parent. Taken from the
    // split's answer: the routing table may lag behind it, and splitting
    // behind the wrong leader's back would test nothing.
    let (_, mut parent) = client.split_at(b"split/").await.expect("first split");
    for index in 0..8 {
        let key = format!("split/{index:02}");
        let leader = eventually("the parent's leader", Duration::from_secs(30), || {
            let (client, nodes) = (client.clone(), nodes.clone());
            async move { zdb_chaos::nemesis::leader_of(&client, &nodes, parent.range_id).await }
        })
        .await;
        // Not the meta range's leader: the split needs it for a range id.
        let meta_leader = zdb_chaos::nemesis::leader_of(&client, &nodes, 1).await;
        let follower = cluster
            .node_ids()
            .into_iter()
            .find(|&id| id != leader && Some(id) != meta_leader)
            .expect("a follower");
        cluster.set_link(leader, follower, LinkFault::Blackhole);
        let (_, right) = client
            .split_at(key.as_bytes())
            .await
            .expect("split with a quorum of two");
        // Let the new range elect its leader without the follower, then
        // deliver everything the follower missed at once.
        let others: Vec<(u64, String)> = nodes
            .iter()
            .filter(|(id, _)| *id != follower)
            .cloned()
            .collect();
        eventually("the new range's leader", Duration::from_secs(30), || {
            let (client, others) = (client.clone(), others.clone());
            async move { zdb_chaos::nemesis::leader_of(&client, &others, right.range_id).await }
        })
        .await;
        cluster.heal_network();
        let address = cluster.address(follower).expect("follower address");
        let joined = eventually(
            "the follower to hold the new range",
            Duration::from_secs(30),
            || {
                let (client, address) = (client.clone(), address.clone());
                async move {
                    let status = client.node_status(&address).await.ok()?;
                    status
                        .replicas
                        .iter()
                        .any(|r| {
                            r.range
                                .as_ref()
                                .is_some_and(|d| d.range_id == right.range_id)
                        })
                        .then_some(())
                }
            },
        );
        tokio::select! {
            _ = joined => {}
            _ = wait_for_crash(&mut cluster) => {}
        }
        assert!(
            cluster.crashed_nodes().is_empty(),
            "node {follower} crashed after split {index}; see {}",
            cluster.dir().display()
        );
        parent = right;
    }
    let verdict = replicas::check(&client, &nodes, Duration::from_secs(60), None).await;
    assert!(
        cluster.crashed_nodes().is_empty(),
        "a node crashed: {:?}",
        cluster.crashed_nodes()
    );
    assert_eq!(verdict, Verdict::Pass, "replicas differ: {verdict}");
}

/// Returns once any node's process has exited on its own.
async fn wait_for_crash(cluster: &mut ChaosCluster) {
    while cluster.crashed_nodes().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
