//! Cache mode on a real 3-node cluster: each eviction policy, past its
//! budget, evicts the keys it names (ranked exactly, not sampled: the
//! tolerance is zero), every replica holds the same keys afterwards, and a
//! prefix that may evict nothing refuses writes until there is room.

use std::collections::BTreeSet;
use std::time::Duration;

use zdb_client::Client;
use zdb_proto::v1::EvictionPolicy;
use zdb_tests::{eventually, Cluster};

const VALUE: usize = 1_000;
/// Keys plus values: a key here is 6 bytes ("lru/07").
const PER_KEY: u64 = VALUE as u64 + 6;
/// Holds 24 such keys.
const BUDGET: u64 = 25_000;

fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:02}")
}

async fn put_keys(client: &Client, prefix: &str, keys: std::ops::Range<usize>) {
    for i in keys {
        client
            .put(key(prefix, i), vec![b'v'; VALUE])
            .await
            .expect("put");
    }
}

/// The prefix's keys as a replica on node `id` holds them (a scan of the
/// node's own copy: it touches nothing).
async fn keys_on(cluster: &Cluster, client: &Client, id: u64, prefix: &str) -> BTreeSet<String> {
    let end = format!("{prefix}\u{7f}");
    let mut keys = BTreeSet::new();
    for range in client
        .ranges(prefix.as_bytes(), end.as_bytes())
        .await
        .expect("ranges")
    {
        let pairs = client
            .scan_replica_at_node(&cluster.node(id).address, &range, 0)
            .await
            .expect("scan a replica");
        keys.extend(
            pairs
                .into_iter()
                .map(|pair| String::from_utf8_lossy(&pair.key).into_owned())
                .filter(|key| key.starts_with(prefix)),
        );
    }
    keys
}

/// Waits until the prefix fits its budget and every replica holds the
/// same keys; returns them.
async fn settled(cluster: &Cluster, client: &Client, prefix: &str) -> BTreeSet<String> {
    eventually(
        &format!("{prefix} within its budget on every replica"),
        Duration::from_secs(30),
        || async {
            let status = client.cache_status().await.ok()?;
            let used = status
                .usage
                .iter()
                .find(|usage| usage.prefix == prefix.as_bytes())?
                .bytes;
            if used > BUDGET {
                return None;
            }
            let first = keys_on(cluster, client, 1, prefix).await;
            for id in 2..=3 {
                if keys_on(cluster, client, id, prefix).await != first {
                    return None;
                }
            }
            Some(first)
        },
    )
    .await
}

fn missing(kept: &BTreeSet<String>, prefix: &str, all: std::ops::Range<usize>) -> Vec<String> {
    all.map(|i| key(prefix, i))
        .filter(|k| !kept.contains(k))
        .collect()
}

/// Waits until every node holds `count` policies: a node counts reads of
/// a prefix's keys from then on.
async fn policies_everywhere(cluster: &Cluster, count: f64) {
    for id in 1..=3 {
        eventually(
            "every node to hold the cache policies",
            Duration::from_secs(30),
            || async { (cluster.metric(id, "zdb_cache_policies").await == count).then_some(()) },
        )
        .await;
    }
}

fn wall_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.expect("the clock is past 1970").as_millis() as u64
}

/// Waits until the wall clock has moved past the millisecond it reads
/// now, so what follows has later access and commit times.
async fn next_millisecond() {
    let now = wall_ms();
    eventually("the clock to move on", Duration::from_secs(5), || async {
        (wall_ms() > now + 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_policy_evicts_the_keys_it_names_and_every_replica_agrees() {
    let cluster = Cluster::start(3, &[]);
    let client = cluster.client();
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    for (prefix, policy) in [
        ("lru/", EvictionPolicy::AllkeysLru),
        ("lfu/", EvictionPolicy::AllkeysLfu),
        ("ttl/", EvictionPolicy::VolatileTtl),
    ] {
        client
            .set_cache_policy(prefix, BUDGET, policy)
            .await
            .expect("set a cache policy");
    }
    policies_everywhere(&cluster, 3.0).await;

    // LRU: 00..04 are read after 05..19 were written, so they outlive them.
    put_keys(&client, "lru/", 0..20).await;
    next_millisecond().await;
    for i in 0..5 {
        client.get(key("lru/", i)).await.expect("get");
    }
    next_millisecond().await;
    put_keys(&client, "lru/", 20..30).await;
    let kept = settled(&cluster, &client, "lru/").await;
    let gone = missing(&kept, "lru/", 0..30);
    let expected: Vec<String> = (5..5 + gone.len()).map(|i| key("lru/", i)).collect();
    assert_eq!(gone, expected, "LRU evicts the least recently used first");
    assert_eq!(gone.len() as u64, (30 * PER_KEY - BUDGET).div_ceil(PER_KEY));

    // LFU: 00..04 are read often, so they stay although they are the oldest.
    put_keys(&client, "lfu/", 0..5).await;
    for _ in 0..5 {
        for i in 0..5 {
            client.get(key("lfu/", i)).await.expect("get");
        }
    }
    put_keys(&client, "lfu/", 5..30).await;
    let kept = settled(&cluster, &client, "lfu/").await;
    let gone = missing(&kept, "lfu/", 0..30);
    let expected: Vec<String> = (5..5 + gone.len()).map(|i| key("lfu/", i)).collect();
    assert_eq!(gone, expected, "LFU evicts the least frequently used first");

    // volatile-ttl: only keys that expire go, the soonest first; with none
    // left the prefix is full and refuses writes.
    for i in 0..15 {
        let ttl = 10_000 - i as u64;
        client
            .put_with_ttl(key("ttl/v", i), vec![b'v'; VALUE - 1], ttl)
            .await
            .expect("put with a ttl");
    }
    for i in 0..15 {
        client
            .put(key("ttl/p", i), vec![b'v'; VALUE - 1])
            .await
            .expect("put");
    }
    let kept = settled(&cluster, &client, "ttl/").await;
    let gone = missing(&kept, "ttl/v", 0..15);
    let expected: Vec<String> = (0..gone.len())
        .map(|i| key("ttl/v", 14 - i))
        .rev()
        .collect();
    assert_eq!(
        gone, expected,
        "volatile-ttl evicts the soonest to expire first"
    );
    assert!(
        missing(&kept, "ttl/p", 0..15).is_empty(),
        "keys without expiry stay"
    );
    // 25 keys without expiry: over the budget once every volatile key went.
    put_keys(&client, "ttl/p", 15..25).await;
    let refused = eventually(
        "volatile-ttl with nothing left to evict refuses writes",
        Duration::from_secs(30),
        || async { client.put("ttl/p99", vec![b'v'; VALUE]).await.err() },
    )
    .await;
    assert!(refused.to_string().contains("over its budget"), "{refused}");
    let kept = keys_on(&cluster, &client, 1, "ttl/").await;
    assert!(
        kept.iter().all(|key| key.starts_with("ttl/p")),
        "every volatile key went: {kept:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn noeviction_refuses_writes_past_the_budget_until_keys_are_deleted() {
    let cluster = Cluster::start(3, &[]);
    let client = cluster.client();
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    client
        .set_cache_policy("no/", BUDGET, EvictionPolicy::Noeviction)
        .await
        .expect("set a cache policy");
    put_keys(&client, "no/", 0..30).await;
    eventually(
        "a full prefix refuses writes",
        Duration::from_secs(30),
        || async {
            client
                .put("no/probe", vec![b'v'; 10])
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let refused = client.put("no/refused", vec![b'v'; 10]).await;
    assert!(refused.is_err(), "{refused:?}");
    // Nothing was evicted, and the refused write changed nothing.
    let all: BTreeSet<String> = (0..30).map(|i| key("no/", i)).collect();
    for id in 1..=3 {
        let held = eventually(
            "every replica holds all 30 keys",
            Duration::from_secs(30),
            || async {
                let held = keys_on(&cluster, &client, id, "no/").await;
                held.is_superset(&all).then_some(held)
            },
        )
        .await;
        assert!(!held.contains("no/refused"));
    }
    // Deletes are allowed, and once there is room writes are again.
    for i in 0..10 {
        client.delete(key("no/", i)).await.expect("delete");
    }
    eventually(
        "writes are accepted again",
        Duration::from_secs(30),
        || async { client.put("no/extra", vec![b'v'; 10]).await.ok() },
    )
    .await;
    // Keys outside the prefix were never limited.
    client
        .put("elsewhere", vec![b'v'; 10])
        .await
        .expect("put elsewhere");
}
