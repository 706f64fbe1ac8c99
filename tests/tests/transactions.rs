//! Transactions (issue 18) on a real 3-node cluster with keys in several
//! ranges: all-or-nothing commits, first committer wins, deadlocks, and
//! locks left by a coordinator that died.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zdb_client::{Client, Error, Isolation, Mutation, TxnOptions};
use zdb_proto::v1::txn_range_client::TxnRangeClient;
use zdb_proto::v1::{CommitKeysRequest, LockInfo, LockKind, PrewriteRequest};
use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);

/// A cluster whose keys a.., m.., t.. live in three ranges.
async fn three_ranges() -> (Cluster, Client) {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.split_at(b"m").await.unwrap();
    client.split_at(b"t").await.unwrap();
    (cluster, client)
}

fn put(key: &str, value: &str) -> Mutation {
    Mutation::Put {
        key: key.into(),
        value: value.into(),
        ttl_seconds: 0,
    }
}

fn text(value: Option<Vec<u8>>) -> Option<String> {
    value.map(|v| String::from_utf8(v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_over_three_ranges_commits_every_write_or_none() {
    let (_cluster, client) = three_ranges().await;
    let commit_ts = client
        .transaction(Isolation::Serializable, |txn| {
            Box::pin(async move {
                for key in ["a1", "m1", "t1"] {
                    txn.put(key, "v1").await?;
                }
                txn.delete("absent").await?;
                Ok(txn.start_ts())
            })
        })
        .await
        .unwrap();
    assert!(commit_ts > 0);
    for key in ["a1", "m1", "t1"] {
        assert_eq!(text(client.get(key).await.unwrap()).as_deref(), Some("v1"));
    }

    let mut rolled_back = client.begin(TxnOptions::default()).await.unwrap();
    for key in ["a1", "m1", "t1"] {
        rolled_back.put(key, "never").await.unwrap();
    }
    assert_eq!(
        text(rolled_back.get("m1").await.unwrap()).as_deref(),
        Some("never"),
        "a transaction reads its own writes"
    );
    rolled_back.rollback().await.unwrap();
    for key in ["a1", "m1", "t1"] {
        assert_eq!(text(client.get(key).await.unwrap()).as_deref(), Some("v1"));
    }

    // A batch over several ranges is atomic too.
    client
        .batch_write(vec![put("a2", "b"), put("t2", "b")])
        .await
        .unwrap();
    assert_eq!(text(client.get("t2").await.unwrap()).as_deref(), Some("b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_committer_wins_and_the_second_gets_a_write_conflict() {
    let (_cluster, client) = three_ranges().await;
    let options = TxnOptions::new(Isolation::Snapshot);
    let mut first = client.begin(options.clone()).await.unwrap();
    let mut second = client.begin(options).await.unwrap();
    for txn in [&mut first, &mut second] {
        txn.put("a-conflict", format!("{}", txn.id()))
            .await
            .unwrap();
        txn.put("t-conflict", format!("{}", txn.id()))
            .await
            .unwrap();
    }
    let first_id = first.id();
    first.commit().await.unwrap();
    match second.commit().await {
        Err(Error::WriteConflict { key, .. }) => assert!(key.ends_with(b"-conflict")),
        other => panic!("expected a write conflict, got {other:?}"),
    }
    for key in ["a-conflict", "t-conflict"] {
        assert_eq!(
            text(client.get(key).await.unwrap()),
            Some(first_id.to_string())
        );
    }
}

/// Pessimistic transactions lock `keys` in order, then write them all.
async fn lock_in_order(
    client: Client,
    keys: Vec<&'static str>,
    hold: Arc<tokio::sync::Barrier>,
) -> Result<u64, Error> {
    let mut txn = client
        .begin(TxnOptions {
            lock_wait_timeout: Duration::from_secs(20),
            ..TxnOptions::new(Isolation::Serializable)
        })
        .await?;
    let id = txn.id();
    txn.get_for_update(keys[0]).await?;
    // Everyone holds its first lock before anyone asks for a second.
    hold.wait().await;
    for key in &keys[1..] {
        txn.get_for_update(*key).await?;
    }
    for key in &keys {
        txn.put(*key, id.to_string()).await?;
    }
    txn.commit().await?;
    Ok(id)
}

async fn deadlock_of(cycle: Vec<Vec<&'static str>>) {
    let (_cluster, client) = three_ranges().await;
    let count = cycle.len();
    let hold = Arc::new(tokio::sync::Barrier::new(count));
    let started = Instant::now();
    let runs: Vec<_> = cycle
        .into_iter()
        .map(|keys| tokio::spawn(lock_in_order(client.clone(), keys, hold.clone())))
        .collect();
    let mut committed = 0;
    let mut deadlocks = Vec::new();
    for run in runs {
        match run.await.unwrap() {
            Ok(_) => committed += 1,
            Err(Error::Deadlock { cycle, .. }) => deadlocks.push(cycle),
            Err(other) => panic!("expected commit or deadlock, got {other}"),
        }
    }
    assert_eq!(
        deadlocks.len(),
        1,
        "exactly one transaction breaks the cycle"
    );
    assert_eq!(committed, count - 1, "the others commit");
    assert_eq!(
        deadlocks[0].len(),
        count,
        "the cycle names every transaction in it"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "found by the detector, not by the 20 s lock wait timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_transactions_locking_in_opposite_orders_one_aborts_with_deadlock() {
    deadlock_of(vec![vec!["a-dl", "t-dl"], vec!["t-dl", "a-dl"]]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_transactions_locking_in_a_circle_one_aborts_with_deadlock() {
    deadlock_of(vec![
        vec!["a-dl3", "m-dl3"],
        vec!["m-dl3", "t-dl3"],
        vec!["t-dl3", "a-dl3"],
    ])
    .await;
}

fn lock(key: &str, value: &str) -> LockInfo {
    LockInfo {
        key: key.into(),
        kind: LockKind::Put as i32,
        value: value.into(),
        ..Default::default()
    }
}

/// A coordinator that prewrote on two ranges and died: without a commit,
/// the locks are rolled back within two lock lifetimes and nothing of the
/// transaction is ever visible; after the primary's commit, every reader
/// sees all of it (the secondary is rolled forward).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_coordinators_locks_are_resolved_from_the_primary() {
    let (cluster, client) = three_ranges().await;
    client.put("a-dead", "before").await.unwrap();
    client.put("t-dead", "before").await.unwrap();
    let mut range_api = TxnRangeClient::connect(format!("http://{}", cluster.node(1).address))
        .await
        .unwrap();
    const TTL_MS: u64 = 1_000;
    let prewrite = |start_ts: u64, key: &str, value: &str| PrewriteRequest {
        primary: b"a-dead".to_vec(),
        start_ts,
        ttl_ms: TTL_MS,
        locks: vec![lock(key, value)],
        check_conflicts: true,
        ..Default::default()
    };

    // Prewrote both, committed nothing, then vanished.
    let start_ts = client.now().await.unwrap();
    range_api
        .prewrite(prewrite(start_ts, "a-dead", "lost"))
        .await
        .unwrap();
    range_api
        .prewrite(prewrite(start_ts, "t-dead", "lost"))
        .await
        .unwrap();
    let prewritten = Instant::now();
    // A plain write waits for the locks; they are rolled back in time.
    client.put("t-dead", "after").await.unwrap();
    client.put("a-dead", "after").await.unwrap();
    assert!(
        prewritten.elapsed() < Duration::from_millis(2 * TTL_MS + 1_000),
        "resolved after {:?}",
        prewritten.elapsed()
    );
    assert_eq!(
        text(client.get("a-dead").await.unwrap()).as_deref(),
        Some("after")
    );
    let late_commit = CommitKeysRequest {
        start_ts,
        commit_ts: client.now().await.unwrap(),
        keys: vec![b"a-dead".to_vec()],
        primary: b"a-dead".to_vec(),
        ..Default::default()
    };
    let refused = range_api.commit_keys(late_commit).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Aborted, "{refused:?}");

    // Prewrote both, committed the primary, then vanished.
    let start_ts = client.now().await.unwrap();
    range_api
        .prewrite(prewrite(start_ts, "a-dead", "won"))
        .await
        .unwrap();
    range_api
        .prewrite(prewrite(start_ts, "t-dead", "won"))
        .await
        .unwrap();
    let commit_ts = client.now().await.unwrap();
    range_api
        .commit_keys(CommitKeysRequest {
            start_ts,
            commit_ts,
            keys: vec![b"a-dead".to_vec()],
            primary: b"a-dead".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        text(client.get("t-dead").await.unwrap()).as_deref(),
        Some("won")
    );
    assert_eq!(
        text(client.get_at("t-dead", commit_ts).await.unwrap()).as_deref(),
        Some("won")
    );
    assert_eq!(
        text(client.get_at("t-dead", commit_ts - 1).await.unwrap()).as_deref(),
        Some("after")
    );
}

/// kill -9 of the node coordinating a transaction that holds locks: its
/// locks are gone within two lock lifetimes of its last keep-alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_of_a_killed_coordinator_node_are_released_within_two_ttls() {
    let (mut cluster, _) = three_ranges().await;
    let coordinator = cluster.client_of(3);
    let mut txn = coordinator
        .begin(TxnOptions {
            lock_ttl: Duration::from_millis(1_000),
            ..TxnOptions::new(Isolation::Serializable)
        })
        .await
        .unwrap();
    assert_eq!(txn.coordinator(), cluster.node(3).address);
    txn.get_for_update("a-kill").await.unwrap();
    txn.get_for_update("t-kill").await.unwrap();
    txn.put("a-kill", "never").await.unwrap();
    cluster.kill(3);
    let killed = Instant::now();
    std::mem::forget(txn);
    let client = Client::connect(&format!(
        "{},{}",
        cluster.node(1).address,
        cluster.node(2).address
    ))
    .unwrap();
    eventually("the killed coordinator's locks to go", WAIT, || {
        let client = client.clone();
        async move { client.put("t-kill", "free").await.ok() }
    })
    .await;
    client.put("a-kill", "free").await.unwrap();
    assert!(
        killed.elapsed() < Duration::from_millis(2 * 1_000 + 1_500),
        "released after {:?}",
        killed.elapsed()
    );
    assert_eq!(
        text(client.get("a-kill").await.unwrap()).as_deref(),
        Some("free")
    );
}

/// A transaction that runs longer than its locks' time to live keeps them
/// (its coordinator renews the primary); one whose client goes quiet past
/// its idle timeout is rolled back, its locks released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_transactions_keep_their_locks_and_idle_ones_lose_them() {
    let (_cluster, client) = three_ranges().await;
    let ttl = Duration::from_millis(500);
    let mut long = client
        .begin(TxnOptions {
            lock_ttl: ttl,
            ..TxnOptions::new(Isolation::Serializable)
        })
        .await
        .unwrap();
    long.get_for_update("a-long").await.unwrap();
    long.get_for_update("t-long").await.unwrap();
    // Time passing is what is tested here: five lifetimes of the locks.
    tokio::time::sleep(ttl * 5).await;
    long.put("a-long", "kept").await.unwrap();
    long.put("t-long", "kept").await.unwrap();
    long.commit().await.unwrap();
    assert_eq!(
        text(client.get("t-long").await.unwrap()).as_deref(),
        Some("kept")
    );

    let mut idle = client
        .begin(TxnOptions {
            lock_ttl: ttl,
            idle_timeout: Duration::from_secs(1),
            ..TxnOptions::new(Isolation::Serializable)
        })
        .await
        .unwrap();
    idle.get_for_update("a-long").await.unwrap();
    let went_idle = Instant::now();
    client.put("a-long", "free").await.unwrap();
    assert!(
        went_idle.elapsed() < Duration::from_millis(3_000),
        "the idle transaction's lock outlived its idle timeout: {:?}",
        went_idle.elapsed()
    );
    match idle.commit().await {
        Err(Error::TxnNotFound(_)) | Err(Error::TxnAborted { .. }) => {}
        other => panic!("an idle transaction must be gone, got {other:?}"),
    }
}
