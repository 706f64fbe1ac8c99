//! Many ranges: splits under load lose and duplicate nothing, scans and
//! batches cross range boundaries, stale client caches recover, and every
//! node (also one killed during splits) ends up with the same ranges.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zdb_client::Mutation;
use zdb_proto::v1::RaftRole;
use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);

/// Range id -> (start, end) as one node holds them.
async fn ranges_on(cluster: &Cluster, id: u64) -> Option<BTreeMap<u64, (Vec<u8>, Vec<u8>)>> {
    let status = cluster
        .client_of(id)
        .node_status(&cluster.node(id).address)
        .await
        .ok()?;
    Some(
        status
            .replicas
            .into_iter()
            .filter_map(|r| r.range)
            .map(|r| (r.range_id, (r.start_key, r.end_key)))
            .collect(),
    )
}

/// Range ids that have a leader somewhere in the cluster.
async fn led_ranges(cluster: &Cluster) -> BTreeSet<u64> {
    let mut led = BTreeSet::new();
    for node in &cluster.nodes {
        if let Ok(status) = cluster.client_of(node.id).node_status(&node.address).await {
            for replica in status.replicas {
                if replica.role == RaftRole::Leader as i32 {
                    led.insert(replica.range.map_or(0, |r| r.range_id));
                }
            }
        }
    }
    led
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_under_load_lose_and_duplicate_nothing() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, acknowledged, stop) = (client.clone(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Spread keys over the whole space so every split lands under load.
                    let key = format!("{}-w{w}-{i:05}", (b'a' + (i % 26) as u8) as char);
                    client
                        .put(key.clone(), key.clone())
                        .await
                        .expect("write acknowledged");
                    // Read-your-writes through splits: the acknowledged value is visible.
                    assert_eq!(
                        client.get(key.clone()).await.unwrap(),
                        Some(key.clone().into_bytes())
                    );
                    acknowledged.lock().unwrap().insert(key);
                    i += 1;
                }
            })
        })
        .collect();

    for split_key in ["m", "f", "t", "c", "p", "w"] {
        let before = acknowledged.lock().unwrap().len();
        eventually("some writes between splits", WAIT, || {
            let count = acknowledged.lock().unwrap().len();
            async move { (count >= before + 40).then_some(()) }
        })
        .await;
        let (left, right) = client.split_at(split_key.as_bytes()).await.expect("split");
        assert_eq!(left.end_key, split_key.as_bytes());
        assert_eq!(right.start_key, split_key.as_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer saw no error");
    }

    let expected: Vec<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let forward: Vec<String> = client
        .scan("", "", 0, false)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect();
    assert_eq!(
        forward, expected,
        "a forward scan returns every acknowledged key once, in order"
    );
    let mut backward: Vec<String> = client
        .scan("", "", 0, true)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect();
    backward.reverse();
    assert_eq!(backward, expected, "a reverse scan returns the same keys");

    // Bounded and limited scans across boundaries.
    let middle: Vec<&String> = expected
        .iter()
        .filter(|k| k.as_str() >= "d" && k.as_str() < "r")
        .collect();
    let scanned = client.scan("d", "r", 0, false).await.unwrap();
    assert_eq!(scanned.len(), middle.len());
    let limited = client.scan("e", "", 25, true).await.unwrap();
    let tail: Vec<&String> = expected.iter().rev().take(25).collect();
    assert_eq!(
        limited
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect::<Vec<_>>(),
        tail.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );

    // Batches across ranges.
    let sample: Vec<Vec<u8>> = expected
        .iter()
        .step_by(37)
        .map(|k| k.clone().into_bytes())
        .collect();
    let got = client.batch_get(sample.clone()).await.unwrap();
    assert_eq!(got.into_iter().map(|kv| kv.key).collect::<Vec<_>>(), sample);
    let cross = vec![
        Mutation::Put {
            key: b"a-atomic".to_vec(),
            value: b"1".to_vec(),
            ttl_seconds: 0,
        },
        Mutation::Put {
            key: b"z-atomic".to_vec(),
            value: b"2".to_vec(),
            ttl_seconds: 0,
        },
    ];
    // Across ranges, atomic as a transaction.
    client.batch_write(cross).await.unwrap();
    assert_eq!(client.get("a-atomic").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(client.get("z-atomic").await.unwrap(), Some(b"2".to_vec()));

    // Every node holds the same 7 ranges.
    let reference = ranges_on(&cluster, 1).await.unwrap();
    assert_eq!(reference.len(), 7);
    for id in 2..=3 {
        eventually("every node to hold the same ranges", WAIT, || async {
            (ranges_on(&cluster, id).await? == reference).then_some(())
        })
        .await;
    }
}

/// The new range's leader asks for votes right after applying the split; a
/// follower that has not applied it yet has no such range. So followers,
/// which learn most commits lazily (with the next append or heartbeat),
/// hear of a split's commit at once, and a vote request that arrives in the
/// same pass as that commit waits for the split instead of being dropped.
/// Either miss would leave the range without a leader for a whole election
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_range_elects_its_leader_without_waiting_for_an_election_timeout() {
    // Elections time out after 10 to 20 seconds here.
    let cluster = Cluster::start(3, &["--election-ticks=100"]);
    cluster.wait_for_leader(WAIT).await;
    let admin = cluster.client();
    for key in ["e", "k", "r"] {
        let (_, right) = admin.split_at(key.as_bytes()).await.unwrap();
        let split_at = std::time::Instant::now();
        eventually("the new range has a leader", WAIT, || async {
            led_ranges(&cluster)
                .await
                .contains(&right.range_id)
                .then_some(())
        })
        .await;
        let waited = split_at.elapsed();
        assert!(
            waited < Duration::from_millis(2500),
            "range {} waited {waited:?} for a leader after the split at {key:?}",
            right.range_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_client_cache_recovers_after_splits() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let stale = cluster.client();
    let admin = cluster.client();
    for key in ["b", "h", "n", "u"] {
        stale.put(key, "v1").await.unwrap();
    }
    // `stale` now caches one range covering everything; split it four ways.
    for key in ["e", "k", "r"] {
        admin.split_at(key.as_bytes()).await.unwrap();
    }
    for key in ["b", "h", "n", "u"] {
        assert_eq!(stale.get(key).await.unwrap(), Some(b"v1".to_vec()));
        stale.put(key, "v2").await.unwrap();
    }
    assert_eq!(stale.scan("", "", 0, false).await.unwrap().len(), 4);
    let table = admin.ranges(b"", b"").await.unwrap();
    assert_eq!(
        table.len(),
        4,
        "the routing table lists every range: {table:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_during_splits_comes_back_with_the_same_ranges() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for i in 0..100 {
        client.put(format!("k{i:03}"), "v").await.unwrap();
    }
    let victim = if leader == 3 { 2 } else { 3 };
    let splitter = {
        let client = client.clone();
        tokio::spawn(async move {
            for key in ["k010", "k020", "k030", "k040", "k050"] {
                client
                    .split_at(key.as_bytes())
                    .await
                    .expect("split with a majority up");
            }
        })
    };
    cluster.kill(victim);
    splitter.await.unwrap();
    client.put("k999", "after").await.unwrap();

    cluster.restart(victim);
    let reference = ranges_on(&cluster, leader).await.unwrap();
    assert_eq!(reference.len(), 6);
    eventually(
        "the restarted node to hold the same ranges",
        WAIT,
        || async { (ranges_on(&cluster, victim).await? == reference).then_some(()) },
    )
    .await;
    eventually(
        "the restarted node to have the latest write",
        WAIT,
        || async { cluster.local_value(victim, "k999").await.map(|_| ()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_splits_then_full_restart_keep_every_range() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for i in 0..100 {
        let key = format!("s{i:03}");
        client.put(key.clone(), key.clone()).await.unwrap();
        client.split_at(key.as_bytes()).await.expect("split");
    }
    let all: BTreeSet<u64> = ranges_on(&cluster, 1).await.unwrap().into_keys().collect();
    assert_eq!(all.len(), 101);
    eventually("a leader for each of the 101 ranges", WAIT, || async {
        (led_ranges(&cluster).await == all).then_some(())
    })
    .await;

    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    eventually(
        "all 101 ranges to come back with leaders",
        Duration::from_secs(60),
        || async { (led_ranges(&cluster).await == all).then_some(()) },
    )
    .await;
    let client = cluster.client();
    let pairs = client.scan("", "", 0, false).await.unwrap();
    assert_eq!(pairs.len(), 100);
    assert!(pairs.iter().all(|kv| kv.key == kv.value));
    assert_eq!(client.ranges(b"", b"").await.unwrap().len(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_missed_splits_gets_the_new_ranges_by_snapshot() {
    // A short log: the leader compacts past the splits while the node is down,
    // so the node never replays them and must learn the new ranges from snapshots.
    let mut cluster = Cluster::start(3, &["--log-compact-threshold=20"]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let victim = if leader == 3 { 2 } else { 3 };
    let client = cluster.client();
    client.put("a", "1").await.unwrap();
    cluster.kill(victim);

    for key in ["g", "n", "t"] {
        client
            .split_at(key.as_bytes())
            .await
            .expect("split with a majority up");
    }
    // Well past 4x the threshold in every range: even a leader that keeps
    // entries for a down follower compacts them.
    for i in 0..600 {
        client
            .put(format!("{}{i:03}", ["b", "h", "p", "w"][i % 4]), "v")
            .await
            .unwrap();
    }

    cluster.restart(victim);
    let reference = ranges_on(&cluster, leader).await.unwrap();
    assert_eq!(reference.len(), 4);
    eventually(
        "the restarted node to hold the same four ranges",
        WAIT,
        || async { (ranges_on(&cluster, victim).await? == reference).then_some(()) },
    )
    .await;
    for key in ["a", "b000", "h001", "p002", "w599"] {
        eventually(
            "the restarted node to hold the data of every range",
            WAIT,
            || async { cluster.local_value(victim, key).await.map(|_| ()) },
        )
        .await;
    }
    assert!(
        cluster
            .metric(victim, "zdb_raft_snapshots_applied_total")
            .await
            >= 3.0
    );
    assert!(
        cluster.log_of(victim).contains("created an empty replica"),
        "the new ranges should have reached the node as empty replicas filled by snapshots"
    );
}

/// Issue 15, item 6: a range listing right after a split shows the split
/// (the split answers once the routing table recorded it, and listings
/// read the table through the meta range's leader); a scan asking for
/// more keys than one page holds gets them all, page after page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_listings_follow_splits_at_once_and_long_scans_page() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for round in 0..5u8 {
        let key = format!("split-{round}");
        let (_, right) = client.split_at(key.as_bytes()).await.expect("split");
        // Through each node, with clients that learned nothing from the split.
        for node in [1, 2, 3] {
            let listed = cluster.client_of(node).ranges(b"", b"").await.unwrap();
            assert_eq!(
                listed.len(),
                round as usize + 2,
                "through node {node}: {listed:?}"
            );
            assert!(
                listed.iter().any(|range| range == &right),
                "{listed:?} lacks {right:?}"
            );
        }
    }

    let keys = 12_000;
    let puts: Vec<Mutation> = (0..keys)
        .map(|i| Mutation::Put {
            key: format!("z{i:05}").into_bytes(),
            value: b"v".to_vec(),
            ttl_seconds: 0,
        })
        .collect();
    for chunk in puts.chunks(2000) {
        client.batch_write_per_range(chunk.to_vec()).await.unwrap();
    }
    let scanned = client
        .scan("z", "", 11_000, false)
        .await
        .expect("a scan past one page");
    assert_eq!(scanned.len(), 11_000);
    assert_eq!(scanned.last().unwrap().key, b"z10999");
    assert_eq!(client.scan("z", "", 0, false).await.unwrap().len(), keys);
}
