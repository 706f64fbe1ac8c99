//! Membership changes under traffic: a node joins, receives a replica,
//! takes the leadership, and an old member is removed; changes that would
//! cost a range its quorum are refused.

use std::time::{Duration, Instant};

use zdb_client::Error;
use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);
const RANGE: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_add_transfer_remove_under_traffic() {
    let mut cluster = Cluster::start(3, &[]);
    let first_leader = cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for i in 0..100 {
        client.put(format!("k{i:03}"), "v0").await.unwrap();
    }

    let new_node = cluster.join_node(1).await;
    assert_eq!(new_node, 4, "node ids continue after the founding members");

    let range = client
        .add_replica(None, RANGE, new_node)
        .await
        .expect("add replica");
    let voters: Vec<u64> = range
        .replicas
        .iter()
        .filter(|r| !r.learner)
        .map(|r| r.node_id)
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4]);
    eventually("the new replica to hold the data", WAIT, || async {
        cluster.local_value(new_node, "k099").await.map(|_| ())
    })
    .await;
    client.put("after-add", "1").await.unwrap();

    let started = Instant::now();
    client
        .transfer_leader(None, RANGE, new_node)
        .await
        .expect("transfer leader");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "transfer took {:?}",
        started.elapsed()
    );
    assert_eq!(cluster.wait_for_leader(WAIT).await, new_node);
    client.put("after-transfer", "1").await.unwrap();
    assert_eq!(client.get("k000").await.unwrap(), Some(b"v0".to_vec()));

    // The leader itself cannot be removed.
    let refused = client.remove_replica(None, RANGE, new_node).await;
    assert!(
        matches!(refused, Err(Error::Rpc(ref status)) if status.message().contains("transfer the leadership first")),
        "{refused:?}"
    );

    let range = client
        .remove_replica(None, RANGE, first_leader)
        .await
        .expect("remove replica");
    assert!(range.replicas.iter().all(|r| r.node_id != first_leader));
    assert_eq!(range.replicas.len(), 3);
    eventually("the removed node to drop its copy", WAIT, || async {
        cluster
            .local_value(first_leader, "k000")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    for i in 0..100 {
        assert_eq!(
            client.get(format!("k{i:03}")).await.unwrap(),
            Some(b"v0".to_vec())
        );
    }
    client.put("after-remove", "1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_that_would_lose_quorum_is_refused() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put("k", "v").await.unwrap();
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    cluster.kill(others[0]);
    // Refused at once: a voter that died a moment ago must not count as live.
    let refused = match client.remove_replica(None, RANGE, others[1]).await {
        Err(Error::Rpc(status)) => status,
        other => panic!("removal should be refused, got {other:?}"),
    };
    assert!(
        refused.message().contains("without a live quorum"),
        "{refused:?}"
    );
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(client.get("k").await.unwrap(), Some(b"v".to_vec()));
    client.put("k", "still writable").await.unwrap();
}

/// A node without a replica of the meta range (here: one that just joined)
/// still tells clients where keys live, and the routing updates of the
/// ranges it leads still reach the meta range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_without_the_routing_table_still_routes() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put("before", "1").await.unwrap();
    let (_, right) = client.split_at(b"m").await.expect("split at m");
    let new_node = cluster.join_node(1).await;

    // A client that only knows the new node: Locate is answered elsewhere.
    let through_new = cluster.client_of(new_node);
    through_new
        .put("through-new-node", "2")
        .await
        .expect("a write routed through a node without the routing table");
    assert_eq!(
        through_new.get("before").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );

    // The new node leads a range and splits it: its routing update goes
    // through a node that holds the meta range.
    client
        .add_replica(None, right.range_id, new_node)
        .await
        .expect("add replica");
    eventually("the new node to lead the right range", WAIT, || async {
        client
            .transfer_leader(None, right.range_id, new_node)
            .await
            .ok()?;
        let status = client
            .node_status(&cluster.node(new_node).address)
            .await
            .ok()?;
        status
            .replicas
            .iter()
            .any(|r| {
                r.role == zdb_proto::v1::RaftRole::Leader as i32
                    && r.range.as_ref().map(|d| d.range_id) == Some(right.range_id)
            })
            .then_some(())
    })
    .await;
    let (_, newest) = client.split_at(b"t").await.expect("split at t");
    eventually("the routing table to hold the new range", WAIT, || async {
        let ranges = cluster.client().ranges(b"", b"").await.ok()?;
        ranges
            .iter()
            .any(|range| range.range_id == newest.range_id && range.start_key == b"t")
            .then_some(())
    })
    .await;
}

/// Issue 15, item 5: a node that no longer holds the meta range answers
/// registry questions as the meta range's leader knows them, and keeps no
/// copy of the registry that nobody updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_meta_range_reads_the_registry_through_its_leader() {
    use zdb_client::NodeState;
    use zdb_node::engine::{Engine, ReadView, CF_SYSTEM};

    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    let new_node = cluster.join_node(1).await;
    client
        .add_replica(None, RANGE, new_node)
        .await
        .expect("add replica");
    let leads_meta = |status: &zdb_client::NodeStatusResponse| {
        status.replicas.iter().any(|r| {
            r.role == zdb_proto::v1::RaftRole::Leader as i32
                && r.range.as_ref().is_some_and(|d| d.range_id == RANGE)
        })
    };
    if leads_meta(&client.node_status(&cluster.node(3).address).await.unwrap()) {
        client
            .transfer_leader(None, RANGE, 1)
            .await
            .expect("move the leadership off node 3");
    }
    client
        .remove_replica(None, RANGE, 3)
        .await
        .expect("remove node 3's replica");
    let node3 = cluster.node(3).address.clone();
    eventually(
        "node 3 to drop its replica of the meta range",
        WAIT,
        || async { (client.node_status(&node3).await.ok()?.replica_count == 0).then_some(()) },
    )
    .await;

    client.set_node_state(2, NodeState::Draining).await.unwrap();
    let nodes = cluster
        .client_of(3)
        .list_nodes()
        .await
        .expect("node 3 lists the nodes");
    let node2 = nodes
        .iter()
        .find(|n| n.node_id == 2)
        .expect("node 2 is listed");
    assert_eq!(node2.state, NodeState::Draining as i32, "{nodes:?}");
    assert_eq!(nodes.len(), 4);

    cluster.stop(3);
    let engine = Engine::open(&cluster.node(3).data_dir.join("db")).unwrap();
    let mut leftovers = 0;
    engine
        .scan(CF_SYSTEM, b"", b"", false, |_, _| {
            leftovers += 1;
            Ok(true)
        })
        .unwrap();
    assert_eq!(leftovers, 0, "node 3 kept a copy of the system keyspace");
}
