//! The placement driver on a real cluster: new nodes get replicas until the
//! counts are even, draining nodes are emptied, a dead node's replicas are
//! re-created elsewhere, and no acknowledged write is lost on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zdb_client::{Client, NodeState};
use zdb_placement::driver::{self, Liveness};
use zdb_placement::planner::{RangeLoad, Settings};
use zdb_tests::Cluster;

const WAIT: Duration = Duration::from_secs(60);
const DEAD_AFTER: Duration = Duration::from_secs(2);

/// Runs driver rounds until the planner has nothing left to do.
async fn settle(client: &Client, liveness: &mut Liveness) -> Vec<RangeLoad> {
    let settings = Settings::default();
    let deadline = std::time::Instant::now() + WAIT;
    let mut quiet_rounds = 0;
    loop {
        let round = driver::run_once(client, &settings, liveness, DEAD_AFTER).await;
        // A round plans on what it saw: a range caught between leaders is
        // missing from it. Settled means nothing to do, twice in a row, with
        // every range of the routing table seen.
        let routed = client
            .ranges(b"", b"")
            .await
            .map_or(0, |ranges| ranges.len());
        let quiet = round.done.is_empty() && round.failures.is_empty() && round.ranges == routed;
        quiet_rounds = if quiet { quiet_rounds + 1 } else { 0 };
        if quiet_rounds >= 2 && routed > 0 {
            if let Ok((_, ranges)) = driver::observe(client, liveness, DEAD_AFTER).await {
                if ranges.len() == routed {
                    return ranges;
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "placement did not settle: last round {round:?}"
        );
    }
}

fn replica_counts(ranges: &[RangeLoad]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for range in ranges {
        for id in &range.voters {
            *counts.entry(*id).or_default() += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_drain_and_lose_a_node_under_traffic() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for key in ["d", "h", "p", "t"] {
        client.split_at(key.as_bytes()).await.unwrap();
    }

    // Continuous writes and read-your-writes checks through everything below.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let writer = {
        let (client, stop, acknowledged) = (client.clone(), stop.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("{}{i:06}", (b'a' + (i % 26) as u8) as char);
                if client.put(key.clone(), "v").await.is_ok() {
                    assert_eq!(client.get(key.clone()).await.unwrap(), Some(b"v".to_vec()));
                    acknowledged.lock().unwrap().insert(key);
                }
                i += 1;
            }
        })
    };

    // Grow from 3 to 5 nodes: replicas spread until counts differ by at most one.
    let n4 = cluster.join_node(1).await;
    let n5 = cluster.join_node(2).await;
    let mut liveness = Liveness::default();
    let ranges = settle(&client, &mut liveness).await;
    let counts = replica_counts(&ranges);
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, n4, n5],
        "{counts:?}"
    );
    let (min, max) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(max - min <= 1, "replica counts {counts:?}");
    assert!(ranges.iter().all(|r| r.voters.len() == 3));

    // Drain node 1 and decommission node 2: they end up holding nothing.
    client.set_node_state(1, NodeState::Draining).await.unwrap();
    client
        .set_node_state(2, NodeState::Decommissioned)
        .await
        .unwrap();
    let ranges = settle(&client, &mut liveness).await;
    for range in &ranges {
        assert!(
            !range.voters.contains(&1) && !range.voters.contains(&2),
            "{range:?}"
        );
        assert_eq!(range.voters.len(), 3);
    }

    // Kill node 3 for longer than the dead timeout: its replicas are re-created
    // on healthy nodes (node 1 comes back to active first, so there is room).
    client.set_node_state(1, NodeState::Active).await.unwrap();
    settle(&client, &mut liveness).await;
    cluster.kill(3);
    // Until the dead timeout passes the node only counts as unreachable.
    let deadline = std::time::Instant::now() + WAIT;
    let ranges = loop {
        let ranges = settle(&client, &mut liveness).await;
        if ranges.iter().all(|r| !r.voters.contains(&3)) || std::time::Instant::now() > deadline {
            break ranges;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for range in &ranges {
        assert!(
            !range.voters.contains(&3),
            "the dead node still holds {range:?}"
        );
        assert_eq!(range.voters.len(), 3);
    }

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("no read missed an acknowledged write");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 50, "the writer made progress");
    let stored: BTreeSet<String> = client
        .scan("", "", 0, false)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "lost acknowledged writes: {lost:?}");
}

/// Issue 15, item 7: a driver that cannot read the registry reports a
/// failure; it never takes an unreachable cluster for an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_that_reaches_no_node_reports_a_failure() {
    let mut config =
        zdb_client::ClientConfig::new([format!("127.0.0.1:{}", zdb_tests::free_port())]);
    config.timeout = Duration::from_secs(1);
    let client = Client::new(config).unwrap();
    let round = driver::run_once(
        &client,
        &Settings::default(),
        &mut Liveness::default(),
        DEAD_AFTER,
    )
    .await;
    assert!(round.done.is_empty());
    assert!(
        round
            .failures
            .iter()
            .any(|failure| failure.step == driver::Step::Observe),
        "{round:?}"
    );
}

/// Issue 15, item 7: the driver keeps working after the nodes it was
/// started with leave, and after the meta range moves off them: its client
/// learns every node from the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_follows_the_meta_range_off_the_nodes_it_started_with() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let n4 = cluster.join_node(1).await;
    let n5 = cluster.join_node(1).await;
    // The driver knows node 1 only.
    let driver_client = cluster.client_of(1);
    let mut liveness = Liveness::default();
    let (nodes, _) = driver::observe(&driver_client, &mut liveness, DEAD_AFTER)
        .await
        .unwrap();
    assert_eq!(nodes.len(), 5);

    // The meta range moves to nodes 3, 4 and 5; then node 1 dies.
    let admin = cluster.client();
    for node in [n4, n5] {
        admin.add_replica(None, 1, node).await.unwrap();
    }
    admin.transfer_leader(None, 1, n4).await.unwrap();
    for node in [1, 2] {
        admin.remove_replica(None, 1, node).await.unwrap();
    }
    cluster.kill(1);

    let (nodes, ranges) = driver::observe(&driver_client, &mut liveness, DEAD_AFTER)
        .await
        .expect("the driver still reads the cluster");
    assert_eq!(nodes.len(), 5);
    assert!(nodes.iter().any(|node| node.id == 1 && !node.live));
    assert!(
        ranges
            .iter()
            .any(|range| range.range_id == 1 && range.leader == n4),
        "{ranges:?}"
    );
}

/// Issue 16: with zones recorded in the registry (the operator reads them
/// from the Kubernetes nodes), placement keeps each range's replicas in
/// different zones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_over_the_zones_recorded_in_the_registry() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for key in ["g", "p"] {
        client.split_at(key.as_bytes()).await.unwrap();
    }
    let mut ids = vec![1, 2, 3];
    for _ in 0..3 {
        ids.push(cluster.join_node(1).await);
    }
    // Nodes 1 and 2 share zone a: every range starts with two replicas there.
    let zones = ["a", "a", "b", "b", "c", "c"];
    for (id, zone) in ids.iter().zip(zones) {
        client.set_node_zone(*id, zone).await.unwrap();
    }
    let listed = client.list_nodes().await.unwrap();
    assert!(
        listed.iter().all(|node| !node.zone.is_empty()),
        "{listed:?}"
    );

    let zone_of = |id: u64| zones[ids.iter().position(|n| *n == id).unwrap()];
    let mut liveness = Liveness::default();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let ranges = settle(&client, &mut liveness).await;
        let spread = ranges.iter().all(|range| {
            let used: BTreeSet<&str> = range.voters.iter().map(|id| zone_of(*id)).collect();
            used.len() == 3 && range.voters.len() == 3
        });
        if spread {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replicas share zones: {ranges:?}"
        );
    }
}
