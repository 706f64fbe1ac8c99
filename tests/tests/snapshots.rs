//! Reads at a timestamp (issue 17): the state as of that timestamp on every
//! range they touch; a Scan or BatchGet across ranges is one snapshot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zdb_client::Error;
use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);
const RANGES: usize = 16;

fn key(i: usize) -> String {
    format!("snap{i:02}")
}

fn parse(value: &[u8]) -> u64 {
    String::from_utf8_lossy(value).parse().expect("a number")
}

/// A writer sets snap01..snap16 (one per range) to n in that order, each
/// acknowledged before the next, for n = 1, 2, 3...; meanwhile the ranges
/// split again. A consistent snapshot sees k1 >= k2 >= ... >= k16 and
/// k1 - k16 <= 1; a scan reading each range at its own moment breaks that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_across_sixteen_splitting_ranges_sees_one_instant() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for i in 1..=RANGES {
        client.put(key(i), "0").await.unwrap();
    }
    for i in 2..=RANGES {
        client.split_at(key(i).as_bytes()).await.unwrap();
    }
    assert!(client.ranges(b"snap", b"snaq").await.unwrap().len() >= RANGES);

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                n += 1;
                for i in 1..=RANGES {
                    client.put(key(i), n.to_string()).await.unwrap();
                }
            }
            n
        })
    };
    let splitter = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 1..=RANGES {
                let at = format!("{}m", key(i));
                client.split_at(at.as_bytes()).await.unwrap();
            }
        })
    };
    let checked = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (client, checked) = (client.clone(), checked.clone());
            tokio::spawn(async move {
                for _ in 0..150 {
                    let values: Vec<u64> = if reader == 0 {
                        client.scan("snap", "snaq", 0, false).await.unwrap()
                    } else {
                        let keys = (1..=RANGES).map(|i| key(i).into_bytes()).collect();
                        client.batch_get(keys).await.unwrap()
                    }
                    .iter()
                    .map(|pair| parse(&pair.value))
                    .collect();
                    assert_eq!(values.len(), RANGES);
                    let ordered = values.windows(2).all(|pair| pair[0] >= pair[1]);
                    assert!(
                        ordered && values[0] - values[RANGES - 1] <= 1,
                        "not one instant: {values:?}"
                    );
                    checked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    splitter.await.unwrap();
    done.store(true, Ordering::SeqCst);
    let rounds = writer.await.unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 300);
    assert!(rounds > 3, "the writer made only {rounds} rounds");
    assert!(client.ranges(b"snap", b"snaq").await.unwrap().len() >= 2 * RANGES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_at_a_timestamp_sees_the_state_of_that_moment() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put("a", "1").await.unwrap();
    client.put("b", "1").await.unwrap();
    client.split_at(b"b").await.unwrap();
    let before = client.now().await.unwrap();
    client.put("a", "2").await.unwrap();
    client.delete("b").await.unwrap();
    client.put("c", "2").await.unwrap();
    let after = client.now().await.unwrap();
    assert!(after > before);

    assert_eq!(
        client.get_at("a", before).await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        client.get_at("b", before).await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(client.get_at("c", before).await.unwrap(), None);
    assert_eq!(client.get_at("b", after).await.unwrap(), None);
    let then: Vec<_> = client
        .scan_at("", "", 0, false, before)
        .await
        .unwrap()
        .into_iter()
        .map(|pair| (pair.key, pair.value))
        .collect();
    assert_eq!(
        then,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"1".to_vec())
        ]
    );
    let keys = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
    let now: Vec<_> = client
        .batch_get_at(keys, after)
        .await
        .unwrap()
        .into_iter()
        .map(|pair| pair.value)
        .collect();
    assert_eq!(now, vec![b"2".to_vec(), b"2".to_vec()]);
    // A range that was led elsewhere before moves its leader: the new
    // leader serves the same past.
    let b_range = client.ranges(b"b", b"").await.unwrap()[0].clone();
    let leader = cluster.wait_for_leader(WAIT).await;
    let other = (1..=3).find(|&id| id != leader).unwrap();
    let _ = client.transfer_leader(None, b_range.range_id, other).await;
    assert_eq!(
        client.get_at("b", before).await.unwrap(),
        Some(b"1".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_the_oracle_has_not_handed_out_is_refused() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put("k", "v").await.unwrap();
    let ahead = client.now().await.unwrap() + (3_600_000 << 18);
    match client.get_at("k", ahead).await {
        Err(Error::InvalidArgument(message)) => {
            assert!(message.contains("ahead of the oracle"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(client.get("k").await.unwrap(), Some(b"v".to_vec()));
}

/// GC (issue 17): versions below the safe point go, reads at or above it
/// are unchanged, a read below it gets the typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_below_the_safe_point_are_collected_and_old_reads_refused() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for round in 0..10 {
        for i in 0..50 {
            client
                .put(format!("gc{i:02}"), format!("v{round}"))
                .await
                .unwrap();
        }
    }
    let old = client.now().await.unwrap();
    client
        .set_gc_life_time(Duration::from_secs(1))
        .await
        .unwrap();
    let safe_point = eventually("the safe point passes the old timestamp", WAIT, || {
        let client = client.clone();
        async move {
            let status = client.gc_status(None).await.ok()?;
            (status.safe_point > old).then_some(status.safe_point)
        }
    })
    .await;
    // The range's leader refuses the read once it has learnt the safe point.
    eventually("a read below the safe point is refused", WAIT, || {
        let client = client.clone();
        async move {
            match client.get_at("gc00", old).await {
                Err(Error::TimestampTooOld {
                    read_ts,
                    safe_point: refused_at,
                }) => {
                    assert_eq!(read_ts, old);
                    assert!(refused_at > old);
                    Some(())
                }
                Ok(value) => {
                    assert_eq!(value, Some(b"v9".to_vec()));
                    None
                }
                Err(err) => panic!("expected TimestampTooOld, got {err}"),
            }
        }
    })
    .await;
    // Every node collects its replicas' 9 shadowed versions of 50 keys.
    eventually("every node collected the shadowed versions", WAIT, || {
        let (client, cluster) = (client.clone(), &cluster);
        async move {
            for id in 1..=3 {
                let status = client
                    .gc_status(Some(&cluster.node(id).address))
                    .await
                    .ok()?;
                if status.versions_collected < 9 * 50 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    assert_eq!(client.get("gc07").await.unwrap(), Some(b"v9".to_vec()));
    let at_safe_point = client.now().await.unwrap().max(safe_point);
    assert_eq!(
        client.get_at("gc07", at_safe_point).await.unwrap(),
        Some(b"v9".to_vec())
    );
    assert_eq!(client.scan("gc", "gd", 0, false).await.unwrap().len(), 50);
}
