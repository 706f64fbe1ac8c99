//! Regression test (found by zdb-chaos, flaky-network schedule): a write
//! whose first attempt may have applied must not be sent again. The retry
//! could apply the old value a second time, after another client's write,
//! which is not linearizable (A, B, A from one put). The client reports
//! OutcomeUnknown instead.
//!
//! A fake node applies every write it receives and then "loses" the reply
//! of the first one, the way a broken connection does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use zdb_client::{Client, ClientConfig, Error, Mutation};
use zdb_proto::v1::kv_server::{Kv, KvServer};
use zdb_proto::v1::*;

#[derive(Clone)]
struct LossyNode {
    /// What Locate reports: the range's replicas (node id, address), in
    /// this order, and its leader.
    replicas: Vec<(u64, String)>,
    leader: u64,
    writes: Arc<AtomicUsize>,
    /// Lose every reply, not only the first.
    always_lossy: bool,
}

impl LossyNode {
    /// Counts the write as applied; the first reply is lost on the way back.
    fn write<T>(&self, reply: T) -> Result<Response<T>, Status> {
        if self.writes.fetch_add(1, Ordering::SeqCst) == 0 || self.always_lossy {
            return Err(Status::unavailable("connection reset by peer"));
        }
        Ok(Response::new(reply))
    }
}

#[tonic::async_trait]
impl Kv for LossyNode {
    async fn get(&self, _: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        Ok(Response::new(GetResponse::default()))
    }
    async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.write(PutResponse {})
    }
    async fn delete(&self, _: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        self.write(DeleteResponse {})
    }
    async fn scan(&self, _: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        Ok(Response::new(ScanResponse::default()))
    }
    async fn batch_get(
        &self,
        _: Request<BatchGetRequest>,
    ) -> Result<Response<BatchGetResponse>, Status> {
        Ok(Response::new(BatchGetResponse::default()))
    }
    async fn batch_write(
        &self,
        _: Request<BatchWriteRequest>,
    ) -> Result<Response<BatchWriteResponse>, Status> {
        self.write(BatchWriteResponse {})
    }
    async fn compare_and_swap(
        &self,
        _: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        self.write(CompareAndSwapResponse::default())
    }
    async fn now(&self, _: Request<NowRequest>) -> Result<Response<NowResponse>, Status> {
        Err(Status::unimplemented("this test node has no oracle"))
    }
    async fn exists(&self, _: Request<ExistsRequest>) -> Result<Response<ExistsResponse>, Status> {
        Err(Status::unimplemented("not used by this test"))
    }
    async fn count(&self, _: Request<CountRequest>) -> Result<Response<CountResponse>, Status> {
        Err(Status::unimplemented("not used by this test"))
    }
    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("not used by this test"))
    }
    async fn update(&self, _: Request<UpdateRequest>) -> Result<Response<UpdateResponse>, Status> {
        Err(Status::unimplemented("not used by this test"))
    }
    async fn locate(&self, _: Request<LocateRequest>) -> Result<Response<LocateResponse>, Status> {
        let range = RangeDescriptor {
            range_id: 7,
            start_key: Vec::new(),
            end_key: Vec::new(),
            epoch: Some(RangeEpoch {
                conf_ver: 1,
                version: 1,
            }),
            replicas: self
                .replicas
                .iter()
                .map(|(node_id, _)| ReplicaDescriptor {
                    node_id: *node_id,
                    replica_id: *node_id,
                    learner: false,
                })
                .collect(),
        };
        Ok(Response::new(LocateResponse {
            ranges: vec![RangeLocation {
                range: Some(range),
                leader_node_id: self.leader,
            }],
            nodes: self
                .replicas
                .iter()
                .map(|(node_id, address)| NodeAddress {
                    node_id: *node_id,
                    address: address.clone(),
                    state: 0,
                    zone: String::new(),
                })
                .collect(),
        }))
    }
}

/// Serves `node` (with its address filled in by `configure`) on a free port.
async fn serve(configure: impl FnOnce(String) -> LossyNode) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let node = configure(address.clone());
    let writes = node.writes.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(node))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (address, writes)
}

fn client_of(address: &str) -> Client {
    let mut config = ClientConfig::new([address.to_owned()]);
    config.timeout = Duration::from_secs(5);
    Client::new(config).expect("client")
}

async fn lossy_node() -> (Client, Arc<AtomicUsize>) {
    let (address, writes) = serve(|address| LossyNode {
        replicas: vec![(1, address)],
        leader: 1,
        writes: Arc::new(AtomicUsize::new(0)),
        always_lossy: false,
    })
    .await;
    (client_of(&address), writes)
}

#[tokio::test]
async fn a_put_with_a_lost_reply_is_not_sent_again() {
    let (client, writes) = lossy_node().await;
    let result = client.put("k", "v").await;
    assert!(
        matches!(result, Err(Error::OutcomeUnknown(_))),
        "{result:?}"
    );
    assert_eq!(writes.load(Ordering::SeqCst), 1, "the put was sent again");
}

#[tokio::test]
async fn a_delete_with_a_lost_reply_is_not_sent_again() {
    let (client, writes) = lossy_node().await;
    let result = client.delete("k").await;
    assert!(
        matches!(result, Err(Error::OutcomeUnknown(_))),
        "{result:?}"
    );
    assert_eq!(
        writes.load(Ordering::SeqCst),
        1,
        "the delete was sent again"
    );
}

#[tokio::test]
async fn a_batch_with_a_lost_reply_is_not_sent_again() {
    let (client, writes) = lossy_node().await;
    let batch = vec![Mutation::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ttl_seconds: 0,
    }];
    let result = client.batch_write(batch).await;
    assert!(
        matches!(result, Err(Error::OutcomeUnknown(_))),
        "{result:?}"
    );
    assert_eq!(writes.load(Ordering::SeqCst), 1, "the batch was sent again");
}

#[tokio::test]
async fn reads_are_still_retried_and_writes_after_a_clean_reply_succeed() {
    let (client, writes) = lossy_node().await;
    let _ = client.put("k", "lost reply").await;
    client
        .put("k", "v")
        .await
        .expect("a put with a clean reply");
    assert_eq!(writes.load(Ordering::SeqCst), 2);
}

/// After a lost reply the client forgets the range's leader, so the next
/// call looks for it again instead of going back to a node that may be gone
/// (found by zdb-chaos: thousands of instant OutcomeUnknown writes against a
/// killed leader).
#[tokio::test]
async fn after_a_lost_reply_the_next_write_looks_for_the_leader_again() {
    // Node 2 answers; node 1, the leader Locate names, loses every reply.
    let (healthy, healthy_writes) = serve(|address| LossyNode {
        replicas: vec![(2, address)],
        leader: 2,
        writes: Arc::new(AtomicUsize::new(1)), // past its "first" write: answers
        always_lossy: false,
    })
    .await;
    let (gone, gone_writes) = serve(|address| LossyNode {
        replicas: vec![(2, healthy.clone()), (1, address)],
        leader: 1,
        writes: Arc::new(AtomicUsize::new(0)),
        always_lossy: true,
    })
    .await;
    let client = client_of(&gone);
    let first = client.put("k", "v1").await;
    assert!(matches!(first, Err(Error::OutcomeUnknown(_))), "{first:?}");
    client
        .put("k", "v2")
        .await
        .expect("the second write finds another replica");
    assert_eq!(gone_writes.load(Ordering::SeqCst), 1);
    assert_eq!(healthy_writes.load(Ordering::SeqCst), 2);
}
