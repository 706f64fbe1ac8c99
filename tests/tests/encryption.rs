//! Encryption at rest with real node processes: values written through the
//! client are found in no file of any node's data folder (write-ahead log,
//! table files, anything), survive kill -9 and restarts, stay readable
//! after data key rotation through the admin API, and a node started
//! without its master key refuses to open its data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zdb_client::TxnOptions;
use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);
/// What the test writes, and looks for on disk.
const SECRET: &str = "e2e-plaintext-that-must-never-reach-the-disk";

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|window| window == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

fn text(value: Option<Vec<u8>>) -> Option<String> {
    value.map(|value| String::from_utf8(value).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_values_stay_off_the_disk_through_kills_restarts_and_rotation() {
    let mut cluster = Cluster::start_encrypted(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for i in 0..50 {
        client
            .put(format!("key{i:03}"), format!("{SECRET}-{i}"))
            .await
            .unwrap();
    }
    // A transaction: staged values in locks, then versions and a record.
    let mut txn = client.begin(TxnOptions::default()).await.unwrap();
    txn.put("txn-key", format!("{SECRET}-txn")).await.unwrap();
    txn.commit().await.unwrap();

    // Every node reports encryption with its own master key.
    let mut master_keys = Vec::new();
    for node in &cluster.nodes {
        let status = client.node_status(&node.address).await.unwrap();
        let encryption = status.encryption.expect("an encryption status");
        assert!(encryption.enabled, "node {}", node.id);
        assert_eq!(encryption.data_key_id, 1);
        assert_eq!(encryption.master_key_id.len(), 16);
        master_keys.push(encryption.master_key_id);
    }
    master_keys.sort();
    master_keys.dedup();
    assert_eq!(master_keys.len(), 3, "each node has its own master key");

    // kill -9 and back: node 2 reads its own copy from its sealed files.
    cluster.kill(2);
    cluster.restart(2);
    let expected = format!("{SECRET}-7");
    eventually("node 2 serves its copy again", WAIT, || {
        let cluster = &cluster;
        let expected = expected.clone();
        async move {
            (cluster.local_value(2, "key007").await.as_deref() == Some(expected.as_bytes()))
                .then_some(())
        }
    })
    .await;

    // Rotate every node's data key; old values stay readable, new ones are
    // sealed with the new key.
    for node in &cluster.nodes {
        let status = client.rotate_data_key(&node.address).await.unwrap();
        assert_eq!((status.data_key_id, status.data_keys), (2, 2));
    }
    for i in 50..60 {
        client
            .put(format!("key{i:03}"), format!("{SECRET}-{i}"))
            .await
            .unwrap();
    }
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for i in [0, 7, 49, 50, 59] {
        assert_eq!(
            text(client.get(format!("key{i:03}")).await.unwrap()),
            Some(format!("{SECRET}-{i}")),
            "key{i:03}"
        );
    }
    assert_eq!(
        text(client.get("txn-key").await.unwrap()),
        Some(format!("{SECRET}-txn"))
    );
    for node in &cluster.nodes {
        let status = client.node_status(&node.address).await.unwrap();
        assert_eq!(
            status.encryption.unwrap().data_key_id,
            2,
            "a restart keeps the rotation"
        );
    }

    // Stop the nodes cleanly (RocksDB flushes nothing more than it had),
    // then look at every byte of every data folder.
    for id in 1..=3 {
        cluster.stop(id);
    }
    for node in &cluster.nodes {
        let found = files_holding(&node.data_dir, SECRET.as_bytes());
        assert!(found.is_empty(), "node {}: plaintext in {found:?}", node.id);
        assert!(
            !files_holding(&node.data_dir, b"key000").is_empty(),
            "node {}: keys stay in the clear (the grep looks in the right place)",
            node.id
        );
    }

    // Without its master key a node refuses to open its data.
    cluster.set_env(3, Vec::new());
    let (status, stderr) = cluster.run_to_exit(3, WAIT);
    assert!(!status.success());
    assert!(
        stderr.contains("encrypted at rest") && stderr.contains("--encryption-key-file"),
        "{stderr}"
    );
    // With another master key, it names both keys.
    let wrong = cluster.dir.path().join("wrong.key");
    zdb_tests::write_master_key(&wrong);
    cluster.set_env(
        3,
        vec![(
            "ZDB_ENCRYPTION_KEY_FILE".into(),
            wrong.display().to_string(),
        )],
    );
    let (status, stderr) = cluster.run_to_exit(3, WAIT);
    assert!(!status.success());
    assert!(stderr.contains("wrapped by master key"), "{stderr}");
}
