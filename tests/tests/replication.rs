//! A 3-node cluster replicates writes, survives losing its leader, and a
//! restarted node catches up and serves the same data.

use std::time::Duration;

use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);

fn key(i: usize) -> String {
    format!("key-{i:05}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_leader_kill_and_restarted_node_catches_up() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();

    // 1,000 writes from 10 concurrent clients.
    let writers = (0..10).map(|w| {
        let client = client.clone();
        tokio::spawn(async move {
            for i in (w * 100)..(w * 100 + 100) {
                client
                    .put(key(i), format!("v1-{i}"))
                    .await
                    .expect("write acknowledged");
            }
        })
    });
    for writer in writers {
        writer.await.expect("writer task");
    }
    let pairs = client.scan("key-", "key.", 0, false).await.unwrap();
    assert_eq!(pairs.len(), 1000);
    assert!(pairs
        .iter()
        .enumerate()
        .all(|(i, kv)| kv.key == key(i).as_bytes() && kv.value == format!("v1-{i}").as_bytes()));

    // Kill the leader; the others elect a new one and keep taking writes.
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader(WAIT).await;
    assert_ne!(new_leader, leader);
    for i in 0..200 {
        client
            .put(key(i), format!("v2-{i}"))
            .await
            .expect("write after failover");
    }
    assert_eq!(client.get(key(0)).await.unwrap(), Some(b"v2-0".to_vec()));
    assert_eq!(
        client.get(key(999)).await.unwrap(),
        Some(b"v1-999".to_vec())
    );

    // The old leader comes back and catches up.
    cluster.restart(leader);
    eventually("the restarted node to catch up", WAIT, || async {
        (cluster.local_value(leader, &key(199)).await? == b"v2-199").then_some(())
    })
    .await;
    for i in [0, 150, 199, 200, 999] {
        let expected = if i < 200 {
            format!("v2-{i}")
        } else {
            format!("v1-{i}")
        };
        assert_eq!(
            cluster.local_value(leader, &key(i)).await,
            Some(expected.into_bytes()),
            "key {i} on the restarted node"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_cluster_serves_reads_and_writes() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put("a", "1").await.unwrap();
    client.put("b", "2").await.unwrap();
    client.put("c", "3").await.unwrap();
    assert_eq!(client.get("b").await.unwrap(), Some(b"2".to_vec()));
    client.delete("b").await.unwrap();
    assert_eq!(client.get("b").await.unwrap(), None);
    let reversed: Vec<Vec<u8>> = client
        .scan("a", "", 0, true)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(reversed, vec![b"c".to_vec(), b"a".to_vec()]);
    let limited = client.scan("a", "", 1, false).await.unwrap();
    assert_eq!(limited.len(), 1);

    let outcome = client.compare_and_swap("c", Some(b"3"), "4").await.unwrap();
    assert!(outcome.succeeded);
    let outcome = client.compare_and_swap("c", Some(b"3"), "5").await.unwrap();
    assert!(!outcome.succeeded);
    assert_eq!(outcome.previous, Some(b"4".to_vec()));
    let outcome = client.compare_and_swap("new", None, "x").await.unwrap();
    assert!(outcome.succeeded);
    let outcome = client.compare_and_swap("new", None, "y").await.unwrap();
    assert!(!outcome.succeeded);

    client
        .batch_write(vec![
            zdb_client::Mutation::Put {
                key: b"m1".to_vec(),
                value: b"1".to_vec(),
                ttl_seconds: 0,
            },
            zdb_client::Mutation::Put {
                key: b"m2".to_vec(),
                value: b"2".to_vec(),
                ttl_seconds: 0,
            },
            zdb_client::Mutation::Delete { key: b"a".to_vec() },
        ])
        .await
        .unwrap();
    let got = client
        .batch_get(vec![b"a".to_vec(), b"m1".to_vec(), b"m2".to_vec()])
        .await
        .unwrap();
    let keys: Vec<&[u8]> = got.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, vec![&b"m1"[..], &b"m2"[..]]);
}
