//! A multi-key read of one range is one point in time: a BatchGet or a
//! Scan page never returns part of an atomic BatchWrite and part of the
//! state before it (issue 15, item 2).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zdb_client::Mutation;
use zdb_tests::Cluster;

const WAIT: Duration = Duration::from_secs(30);
const KEYS: usize = 200;
const WRITES: usize = 200;

fn batch(keys: &[String], value: &str) -> Vec<Mutation> {
    keys.iter()
        .map(|key| Mutation::Put {
            key: key.clone().into_bytes(),
            value: value.as_bytes().to_vec(),
            ttl_seconds: 0,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_reads_never_see_half_of_an_atomic_batch() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("pit{i:03}")).collect();
    client.batch_write(batch(&keys, "w0")).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, keys, done) = (client.clone(), keys.clone(), done.clone());
        tokio::spawn(async move {
            for round in 1..=WRITES {
                client
                    .batch_write(batch(&keys, &format!("w{round}")))
                    .await
                    .unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (client, keys, done, reads) =
                (client.clone(), keys.clone(), done.clone(), reads.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    let values: BTreeSet<Vec<u8>> = if reader == 0 {
                        let keys = keys.iter().map(|k| k.clone().into_bytes()).collect();
                        client
                            .batch_get(keys)
                            .await
                            .unwrap()
                            .into_iter()
                            .map(|kv| kv.value)
                            .collect()
                    } else {
                        client
                            .scan("pit", "piu", 0, false)
                            .await
                            .unwrap()
                            .into_iter()
                            .map(|kv| kv.value)
                            .collect()
                    };
                    assert_eq!(
                        values.len(),
                        1,
                        "a read saw several batches at once: {:?}",
                        values
                            .iter()
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .collect::<Vec<_>>()
                    );
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(
        reads.load(Ordering::SeqCst) >= 20,
        "too few reads ran alongside the writes"
    );
}
