//! The timestamp oracle (issue 17): strictly increasing timestamps, never
//! handed out twice or out of order, while its leader is killed with
//! SIGKILL again and again, on nodes whose clocks disagree by seconds (a
//! new leader whose clock is behind must still start above what its
//! predecessor handed out).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zdb_node::clock::CLOCK_OFFSET_ENV;
use zdb_proto::v1::RaftRole;
use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);
const KILLS: usize = 3;

/// One call to Now: when it was sent, when it answered, what it got.
struct Taken {
    sent: Instant,
    answered: Instant,
    ts: u64,
}

async fn meta_leader(cluster: &Cluster, running: &[u64]) -> u64 {
    let client = cluster.client();
    eventually("the meta range's leader", WAIT, || {
        let client = client.clone();
        async move {
            for &id in running {
                let Ok(status) = client.node_status(&cluster.node(id).address).await else {
                    continue;
                };
                let leads_meta = status.replicas.iter().any(|replica| {
                    replica.role == RaftRole::Leader as i32
                        && replica
                            .range
                            .as_ref()
                            .is_some_and(|range| range.range_id == 1)
                });
                if leads_meta {
                    return Some(id);
                }
            }
            None
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_stay_unique_and_ordered_while_the_oracle_is_killed() {
    let mut cluster = Cluster::start_with_env(3, &[], |id| {
        let offset_ms = -2_000 * (id as i64 - 1);
        vec![(CLOCK_OFFSET_ENV.to_owned(), offset_ms.to_string())]
    });
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.now().await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let (client, done, count) = (client.clone(), done.clone(), count.clone());
            tokio::spawn(async move {
                let mut taken = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    let sent = Instant::now();
                    // A call that fails (the oracle is moving) took nothing.
                    if let Ok(ts) = client.now().await {
                        count.fetch_add(1, Ordering::SeqCst);
                        taken.push(Taken {
                            sent,
                            answered: Instant::now(),
                            ts,
                        });
                    }
                }
                taken
            })
        })
        .collect();
    for round in 0..=KILLS {
        // Each leader hands out a good number of timestamps first.
        let so_far = count.load(Ordering::SeqCst);
        eventually("timestamps are taken", WAIT, || {
            let count = count.clone();
            async move { (count.load(Ordering::SeqCst) >= so_far + 300).then_some(()) }
        })
        .await;
        if round == KILLS {
            break;
        }
        let leader = meta_leader(&cluster, &[1, 2, 3]).await;
        cluster.kill(leader);
        let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        meta_leader(&cluster, &others).await;
        // Timestamps flow from the new leader before the old one returns.
        let before = client.now().await.unwrap();
        eventually("the new oracle hands out timestamps", WAIT, || {
            let client = client.clone();
            async move { (client.now().await.ok()? > before).then_some(()) }
        })
        .await;
        cluster.restart(leader);
        cluster.wait_for_leader(WAIT).await;
    }
    done.store(true, Ordering::SeqCst);
    let mut all: Vec<Taken> = Vec::new();
    for taker in takers {
        all.extend(taker.await.unwrap());
    }
    assert!(all.len() >= 300 * (KILLS + 1));

    let mut seen: Vec<u64> = all.iter().map(|taken| taken.ts).collect();
    seen.sort_unstable();
    let before_dedup = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), before_dedup, "a timestamp was handed out twice");

    // Real-time order: a call that was sent after another one answered got
    // a larger timestamp. Sorted by answer time, the largest timestamp of
    // the calls answered before each call was sent must be below its own.
    all.sort_by_key(|taken| taken.answered);
    let mut highest_so_far = Vec::with_capacity(all.len());
    let mut highest = 0;
    for taken in &all {
        highest = highest.max(taken.ts);
        highest_so_far.push(highest);
    }
    for taken in &all {
        let answered_before = all.partition_point(|earlier| earlier.answered < taken.sent);
        if answered_before > 0 {
            assert!(
                highest_so_far[answered_before - 1] < taken.ts,
                "timestamp {} was handed out after a larger one had been",
                taken.ts
            );
        }
    }
}
