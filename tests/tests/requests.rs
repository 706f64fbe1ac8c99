//! Bad input through the real gRPC API is refused with INVALID_ARGUMENT and
//! changes nothing; followers pass writes on to the leader; TTLs expire.

use std::time::Duration;

use tonic::Code;
use zdb_node::engine::ReadView;
use zdb_node::mvcc;
use zdb_proto::v1::kv_client::KvClient;
use zdb_proto::v1::{self as pb, error::Kind};
use zdb_tests::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(30);

async fn raw_client(address: &str) -> KvClient<tonic::transport::Channel> {
    KvClient::connect(format!("http://{address}"))
        .await
        .expect("connect")
        .max_encoding_message_size(usize::MAX)
}

fn put(key: Vec<u8>, value: Vec<u8>) -> pb::PutRequest {
    pb::PutRequest {
        key,
        value,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_change_nothing() {
    let cluster = Cluster::start(
        1,
        &[
            "--max-key-bytes=64",
            "--max-value-bytes=1024",
            "--max-batch-ops=4",
        ],
    );
    cluster.wait_for_leader(WAIT).await;
    let mut kv = raw_client(&cluster.node(1).address).await;

    let cases: Vec<(&str, tonic::Status)> = vec![
        (
            "empty key",
            kv.put(put(vec![], b"v".to_vec())).await.unwrap_err(),
        ),
        (
            "long key",
            kv.put(put(vec![b'k'; 65], b"v".to_vec()))
                .await
                .unwrap_err(),
        ),
        (
            "big value",
            kv.put(put(b"big".to_vec(), vec![0; 1025]))
                .await
                .unwrap_err(),
        ),
        (
            "empty get key",
            kv.get(pb::GetRequest::default()).await.unwrap_err(),
        ),
        (
            "backwards scan",
            kv.scan(pb::ScanRequest {
                start_key: b"b".to_vec(),
                end_key: b"a".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "oversized batch",
            kv.batch_write(pb::BatchWriteRequest {
                mutations: (0..5)
                    .map(|i| pb::Mutation {
                        op: Some(pb::mutation::Op::Put(pb::PutOp {
                            key: vec![b'a' + i],
                            value: vec![],
                            ttl_seconds: 0,
                        })),
                    })
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "batch with one bad key",
            kv.batch_write(pb::BatchWriteRequest {
                mutations: vec![
                    pb::Mutation {
                        op: Some(pb::mutation::Op::Put(pb::PutOp {
                            key: b"ok".to_vec(),
                            value: vec![],
                            ttl_seconds: 0,
                        })),
                    },
                    pb::Mutation {
                        op: Some(pb::mutation::Op::Delete(pb::DeleteOp { key: vec![] })),
                    },
                ],
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "cas with both expectations",
            kv.compare_and_swap(pb::CompareAndSwapRequest {
                key: b"c".to_vec(),
                expected_value: b"x".to_vec(),
                expect_absent: true,
                new_value: b"y".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
    ];
    for (case, status) in cases {
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert!(
            !status.message().is_empty(),
            "{case}: the message must say what is wrong"
        );
    }

    // Nothing was written by any refused request.
    let scan = kv
        .scan(pb::ScanRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        scan.pairs.is_empty(),
        "refused requests wrote {:?}",
        scan.pairs
    );
}

/// A client that knows one address (any language, no routing of its own)
/// just works: the follower passes the write on to the leader, and names
/// the leader in the response for clients that route themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_pass_writes_on_to_the_leader_and_name_it() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    // Followers learn the leader from its first heartbeat; poll until one does.
    let redirect = eventually("the follower to pass a write on", WAIT, || {
        let address = cluster.node(follower).address.clone();
        async move {
            let mut kv = raw_client(&address).await;
            let response = kv.put(put(b"k".to_vec(), b"v".to_vec())).await.ok()?;
            let raw = response
                .metadata()
                .get_bin("zdb-redirect-bin")?
                .to_bytes()
                .ok()?;
            match <pb::Error as prost::Message>::decode(raw).ok()?.kind? {
                Kind::NotLeader(not_leader) => Some(not_leader),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(redirect.leader_id, leader);
    assert_eq!(redirect.leader_address, cluster.node(leader).address);
    let mut at_leader = raw_client(&cluster.node(leader).address).await;
    let read = at_leader
        .get(pb::GetRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.value, b"v");
    assert!(
        at_leader
            .put(put(b"k2".to_vec(), b"v".to_vec()))
            .await
            .unwrap()
            .metadata()
            .get_bin("zdb-redirect-bin")
            .is_none(),
        "the leader names no redirect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_vanish_at_once_and_leave_the_disk_later() {
    let mut cluster = Cluster::start(1, &["--ttl-sweep-interval-ms=200"]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.put_with_ttl("short", "lived", 1).await.unwrap();
    client.put("forever", "x").await.unwrap();
    assert_eq!(client.get("short").await.unwrap(), Some(b"lived".to_vec()));

    eventually("the TTL key to expire", Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.get("short").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let keys: Vec<Vec<u8>> = client
        .scan("", "", 0, false)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, vec![b"forever".to_vec()]);

    // The leader's sweep ends it with a tombstone, through Raft; once the
    // GC safe point passes the tombstone, both versions leave the disk.
    eventually("the sweeper to end the expired key", WAIT, || {
        let cluster = &cluster;
        async move { (cluster.metric(1, "zdb_ttl_keys_removed_total").await >= 1.0).then_some(()) }
    })
    .await;
    client
        .set_gc_life_time(Duration::from_secs(1))
        .await
        .unwrap();
    eventually("the expired key's versions to be collected", WAIT, || {
        let cluster = &cluster;
        async move { (cluster.metric(1, "zdb_gc_versions_collected_total").await >= 2.0).then_some(()) }
    })
    .await;
    cluster.stop(1);
    let engine = zdb_node::engine::Engine::open(&cluster.node(1).data_dir.join("db"))
        .expect("open the node's RocksDB");
    let stored = |key: &[u8]| {
        let mut versions = 0;
        let (start, end) = (mvcc::keys::encode_key(key), mvcc::keys::versions_end(key));
        engine
            .scan(zdb_node::engine::CF_DATA, &start, &end, false, |_, _| {
                versions += 1;
                Ok(true)
            })
            .unwrap();
        versions
    };
    assert_eq!(stored(b"short"), 0, "the expired key is still on disk");
    assert_eq!(stored(b"forever"), 1);
}
