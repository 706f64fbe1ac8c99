//! Acknowledged writes survive SIGKILL of every node; a wiped node cannot
//! come back under its old identity.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zdb_tests::Cluster;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_killing_all_nodes() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));

    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("w{w}-{i:06}");
                    match client.put(key.clone(), format!("{i}")).await {
                        Ok(()) => {
                            acknowledged.lock().unwrap().insert(key, format!("{i}"));
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // Let writes flow, then kill every node while they are in flight.
    zdb_tests::eventually("a few hundred acknowledged writes", WAIT, || {
        let count = acknowledged.lock().unwrap().len();
        async move { (count >= 300).then_some(()) }
    })
    .await;
    for id in 1..=3 {
        cluster.kill(id);
    }
    for writer in writers {
        writer.abort();
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    let stored: BTreeMap<String, String> = client
        .scan("w", "x", 0, false)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value).unwrap(),
            )
        })
        .collect();
    let lost: Vec<&String> = acknowledged
        .keys()
        .filter(|key| !stored.contains_key(*key))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    for (key, value) in &acknowledged {
        assert_eq!(stored.get(key), Some(value));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_is_refused_under_its_old_identity() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put("k", "v").await.unwrap();
    let victim = if leader == 3 { 2 } else { 3 };
    cluster.kill(victim);
    cluster.wipe(victim);

    let (status, stderr) = cluster.run_to_exit(victim, WAIT);
    assert!(!status.success());
    assert!(
        stderr.contains("data directory was wiped"),
        "unexpected error output: {stderr}"
    );
    // The cluster goes on with its two healthy members.
    client.put("k2", "v2").await.unwrap();
    assert_eq!(client.get("k").await.unwrap(), Some(b"v".to_vec()));

    // The machine comes back as a new node: a fresh id, never the old one.
    let fresh = cluster.join_node(leader).await;
    assert_eq!(fresh, 4);
}
