//! Bad input: arbitrary bytes as the body of every gRPC request a node
//! serves (client, admin and node-to-node), and well-framed Raft batches
//! with arbitrary headers and arbitrary bytes as the Raft message. The node
//! must answer with a gRPC status (or accept), never crash, and keep
//! serving normal requests afterwards.
//!
//! The bytes go through a raw codec, so they reach the node's own decoding
//! exactly as sent.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, BufMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use zdb_chaos::cluster::{ChaosCluster, ClusterConfig};
use zdb_proto::v1::{
    mutation, BatchGetRequest, BatchWriteRequest, CompareAndSwapRequest, DeleteOp, GetRequest,
    LocateRequest, Mutation, PeerHeader, PutOp, PutRequest, RaftBatch, RaftEnvelope, RangeEpoch,
    RequestHeader, ScanRequest, SnapshotChunk,
};

/// Sends and receives message bodies as raw bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut body = vec![0; src.remaining()];
        src.copy_to_slice(&mut body);
        Ok(Some(body))
    }
}

const UNARY: [&str; 20] = [
    "/zdb.v1.Kv/Get",
    "/zdb.v1.Kv/Put",
    "/zdb.v1.Kv/Delete",
    "/zdb.v1.Kv/Scan",
    "/zdb.v1.Kv/BatchGet",
    "/zdb.v1.Kv/BatchWrite",
    "/zdb.v1.Kv/CompareAndSwap",
    "/zdb.v1.Kv/Locate",
    "/zdb.v1.Admin/NodeStatus",
    "/zdb.v1.Admin/SplitRange",
    "/zdb.v1.Admin/TransferLeader",
    "/zdb.v1.Admin/AddReplica",
    "/zdb.v1.Admin/RemoveReplica",
    "/zdb.v1.Admin/Join",
    "/zdb.v1.Admin/SetNodeState",
    "/zdb.v1.Admin/ListNodes",
    "/zdb.v1.Admin/UpdateMeta",
    "/zdb.v1.Admin/AllocateRangeId",
    "/zdb.v1.RaftTransport/Hello",
    // Client-streaming calls get one message of arbitrary bytes.
    "/zdb.v1.RaftTransport/Stream",
];
const SNAPSHOT: &str = "/zdb.v1.RaftTransport/Snapshot";

async fn unary(channel: Channel, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    let mut request = Request::new(body);
    request.set_timeout(Duration::from_secs(5));
    let path = PathAndQuery::from_static(path);
    if path.path().ends_with("/Stream") || path.path().ends_with("/Snapshot") {
        let stream = tokio_stream::iter(vec![request.into_inner()]);
        let mut request = Request::new(stream);
        request.set_timeout(Duration::from_secs(5));
        return grpc
            .client_streaming(request, path, RawCodec)
            .await
            .map(tonic::Response::into_inner);
    }
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

struct Target {
    runtime: tokio::runtime::Runtime,
    cluster: Mutex<ChaosCluster>,
    channel: Channel,
    /// status code -> how often the node answered with it
    answers: Mutex<BTreeMap<String, usize>>,
}

impl Target {
    fn start() -> Target {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let cluster = runtime
            .block_on(ChaosCluster::start(ClusterConfig::new(1)))
            .expect("a one-node cluster starts");
        runtime
            .block_on(cluster.wait_ready(Duration::from_secs(60)))
            .expect("the node serves");
        let address = cluster.address(1).expect("node 1");
        let channel = runtime.block_on(async {
            Endpoint::from_shared(format!("http://{address}"))
                .expect("a valid address")
                .connect_lazy()
        });
        Target {
            runtime,
            cluster: Mutex::new(cluster),
            channel,
            answers: Mutex::default(),
        }
    }

    /// Sends `body` to `path`; fails if the node crashed or the call broke
    /// at the transport level instead of getting an answer.
    fn send(&self, path: &'static str, body: Vec<u8>) -> Result<(), TestCaseError> {
        let result = self
            .runtime
            .block_on(unary(self.channel.clone(), path, body));
        let answer = match &result {
            Ok(_) => "ok".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        *self
            .answers
            .lock()
            .expect("lock")
            .entry(answer)
            .or_default() += 1;
        let alive = self.cluster.lock().expect("lock").is_running(1);
        prop_assert!(alive, "the node died on a request to {path}: {result:?}");
        if let Err(status) = &result {
            // Unknown is what a broken connection or a panicking handler
            // looks like; Internal what an undecodable body got from tonic.
            prop_assert!(
                status.code() != Code::Unknown && status.code() != Code::Internal,
                "no typed answer from {path}: {status:?}"
            );
        }
        Ok(())
    }

    fn still_serves(&self) {
        let cluster = self.cluster.lock().expect("lock");
        self.runtime.block_on(async {
            let client = cluster.client(Duration::from_secs(10)).expect("client");
            client
                .put("after/fuzz", "still here")
                .await
                .expect("a normal write");
            let value = client.get("after/fuzz").await.expect("a normal read");
            assert_eq!(value.as_deref(), Some(&b"still here"[..]));
        });
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn arbitrary_bytes_in_every_request_get_a_typed_answer() {
    let target = Target::start();
    for path in UNARY.into_iter().chain([SNAPSHOT]) {
        runner(40)
            .run(&proptest::collection::vec(any::<u8>(), 0..300), |body| {
                target.send(path, body)
            })
            .unwrap_or_else(|failure| panic!("{path}: {failure}"));
    }
    println!("answers: {:?}", target.answers.lock().expect("lock"));
    target.still_serves();
}

/// Mostly a header node 1 accepts (so the messages behind it get decoded),
/// sometimes anything.
fn header() -> impl Strategy<Value = PeerHeader> {
    let accepted = (2u64..6).prop_map(|from| PeerHeader {
        cluster_id: "chaos".into(),
        from_node_id: from,
        from_store_id: format!("store-of-{from}"),
        to_node_id: 1,
        from_address: String::new(),
    });
    let arbitrary = (".{0,12}", any::<u64>(), ".{0,12}", any::<u64>(), ".{0,20}").prop_map(
        |(cluster_id, from, store, to, address)| PeerHeader {
            cluster_id,
            from_node_id: from,
            from_store_id: store,
            to_node_id: to,
            from_address: address,
        },
    );
    prop_oneof![4 => accepted, 1 => arbitrary]
}

#[test]
fn raft_batches_with_arbitrary_headers_and_messages_are_refused_cleanly() {
    let target = Target::start();
    let envelope = (
        prop_oneof![1u64..6, any::<u64>()],
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(range_id, message)| RaftEnvelope { range_id, message });
    let batch = (
        proptest::option::of(header()),
        proptest::collection::vec(envelope, 0..4),
    )
        .prop_map(|(header, messages)| RaftBatch { header, messages });
    runner(150)
        .run(&batch, |batch| {
            target.send("/zdb.v1.RaftTransport/Stream", batch.encode_to_vec())
        })
        .unwrap_or_else(|failure| panic!("raft stream: {failure}"));

    let chunk = (
        proptest::option::of(header()),
        prop_oneof![1u64..6, any::<u64>()],
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(header, range_id, data)| SnapshotChunk {
            header,
            range_id,
            data,
        });
    runner(100)
        .run(&chunk, |chunk| target.send(SNAPSHOT, chunk.encode_to_vec()))
        .unwrap_or_else(|failure| panic!("snapshot stream: {failure}"));
    println!("answers: {:?}", target.answers.lock().expect("lock"));
    target.still_serves();
}

fn request_header() -> impl Strategy<Value = Option<RequestHeader>> {
    proptest::option::of(
        (
            prop_oneof![0u64..6, any::<u64>()],
            proptest::option::of((any::<u64>(), any::<u64>())),
        )
            .prop_map(|(range_id, epoch)| RequestHeader {
                range_id,
                epoch: epoch.map(|(conf_ver, version)| RangeEpoch { conf_ver, version }),
            }),
    )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Well-formed messages with arbitrary field values: out-of-range enums,
/// unknown ranges, stale epochs, empty keys, keys outside every range,
/// huge TTLs and limits. The node validates, answers with a status, and
/// keeps serving.
#[test]
fn kv_requests_with_arbitrary_fields_are_validated() {
    let target = Target::start();
    let cases: Vec<(&'static str, BoxedStrategy<Vec<u8>>)> = vec![
        (
            "/zdb.v1.Kv/Get",
            (request_header(), bytes(64), any::<i32>(), any::<u64>())
                .prop_map(|(header, key, consistency, read_ts)| {
                    GetRequest {
                        header,
                        key,
                        consistency,
                        read_ts,
                    }
                    .encode_to_vec()
                })
                .boxed(),
        ),
        (
            "/zdb.v1.Kv/Put",
            (request_header(), bytes(64), bytes(64), any::<u64>())
                .prop_map(|(header, key, value, ttl_seconds)| {
                    PutRequest {
                        header,
                        key,
                        value,
                        ttl_seconds,
                    }
                    .encode_to_vec()
                })
                .boxed(),
        ),
        (
            "/zdb.v1.Kv/Scan",
            (
                request_header(),
                bytes(16),
                bytes(16),
                any::<u32>(),
                any::<bool>(),
                any::<i32>(),
                any::<u64>(),
            )
                .prop_map(
                    |(header, start_key, end_key, limit, reverse, consistency, read_ts)| {
                        ScanRequest {
                            header,
                            start_key,
                            end_key,
                            limit,
                            reverse,
                            consistency,
                            read_ts,
                        }
                        .encode_to_vec()
                    },
                )
                .boxed(),
        ),
        (
            "/zdb.v1.Kv/BatchGet",
            (
                request_header(),
                proptest::collection::vec(bytes(16), 0..8),
                any::<i32>(),
                any::<u64>(),
            )
                .prop_map(|(header, keys, consistency, read_ts)| {
                    BatchGetRequest {
                        header,
                        keys,
                        consistency,
                        read_ts,
                    }
                    .encode_to_vec()
                })
                .boxed(),
        ),
        (
            "/zdb.v1.Kv/BatchWrite",
            (
                request_header(),
                proptest::collection::vec(
                    proptest::option::of((
                        bytes(16),
                        proptest::option::of(bytes(16)),
                        any::<u64>(),
                    )),
                    0..8,
                ),
            )
                .prop_map(|(header, ops)| {
                    let mutations = ops
                        .into_iter()
                        .map(|op| Mutation {
                            op: op.map(|(key, value, ttl_seconds)| match value {
                                Some(value) => mutation::Op::Put(PutOp {
                                    key,
                                    value,
                                    ttl_seconds,
                                }),
                                None => mutation::Op::Delete(DeleteOp { key }),
                            }),
                        })
                        .collect();
                    BatchWriteRequest { header, mutations }.encode_to_vec()
                })
                .boxed(),
        ),
        (
            "/zdb.v1.Kv/CompareAndSwap",
            (
                request_header(),
                bytes(16),
                bytes(16),
                any::<bool>(),
                bytes(16),
                any::<u64>(),
            )
                .prop_map(
                    |(header, key, expected_value, expect_absent, new_value, ttl_seconds)| {
                        CompareAndSwapRequest {
                            header,
                            key,
                            expected_value,
                            expect_absent,
                            new_value,
                            ttl_seconds,
                        }
                        .encode_to_vec()
                    },
                )
                .boxed(),
        ),
        (
            "/zdb.v1.Kv/Locate",
            (bytes(32), any::<u32>())
                .prop_map(|(key, limit)| {
                    LocateRequest {
                        key,
                        limit,
                        range_id: 0,
                    }
                    .encode_to_vec()
                })
                .boxed(),
        ),
    ];
    for (path, strategy) in cases {
        runner(60)
            .run(&strategy, |body| target.send(path, body))
            .unwrap_or_else(|failure| panic!("{path}: {failure}"));
    }
    println!("answers: {:?}", target.answers.lock().expect("lock"));
    target.still_serves();
}
