//! SIGTERM to a cluster member (issue 16, item 8): it hands its
//! leaderships to peers, stops taking requests and exits within its
//! shutdown timeout, while clients carry on through the other nodes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zdb_tests::Cluster;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meta_leader_leaves_on_sigterm_and_clients_carry_on() {
    let mut cluster = Cluster::start(3, &["--shutdown-timeout-secs=5"]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put("before", "1").await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (written, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (client, stop) = (client.clone(), stop.clone());
            let (written, failed) = (written.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    match client.put(format!("w{writer}-{i}"), "v").await {
                        Ok(()) => written.fetch_add(1, Ordering::SeqCst),
                        Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                    };
                    i += 1;
                }
            })
        })
        .collect();
    while written.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let sent = Instant::now();
    cluster.signal(leader, libc::SIGTERM);
    let exited = tokio::task::block_in_place(|| cluster.wait_exit(leader, Duration::from_secs(10)));
    let took = sent.elapsed();
    assert!(exited.is_some_and(|status| status.success()), "{exited:?}");
    assert!(
        took < Duration::from_secs(8),
        "the node took {took:?} to exit"
    );

    let after = written.load(Ordering::SeqCst);
    while written.load(Ordering::SeqCst) < after + 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    // The leaderships moved before the node stopped: no write waited out an
    // election, and none failed.
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert_eq!(client.get("before").await.unwrap(), Some(b"1".to_vec()));
}
