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
    address: String,
    writes: Arc<AtomicUsize>,
}

impl LossyNode {
    /// Counts the write as applied; the first reply is lost on the way back.
    fn write<T>(&self, reply: T) -> Result<Response<T>, Status> {
        if self.writes.fetch_add(1, Ordering::SeqCst) == 0 {
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
    async fn locate(&self, _: Request<LocateRequest>) -> Result<Response<LocateResponse>, Status> {
        let range = RangeDescriptor {
            range_id: 7,
            start_key: Vec::new(),
            end_key: Vec::new(),
            epoch: Some(RangeEpoch {
                conf_ver: 1,
                version: 1,
            }),
            replicas: vec![ReplicaDescriptor {
                node_id: 1,
                replica_id: 1,
                learner: false,
            }],
        };
        Ok(Response::new(LocateResponse {
            ranges: vec![RangeLocation {
                range: Some(range),
                leader_node_id: 1,
            }],
            nodes: vec![NodeAddress {
                node_id: 1,
                address: self.address.clone(),
                state: 0,
            }],
        }))
    }
}

async fn lossy_node() -> (Client, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let writes = Arc::new(AtomicUsize::new(0));
    let node = LossyNode {
        address: address.clone(),
        writes: writes.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(node))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut config = ClientConfig::new([address]);
    config.timeout = Duration::from_secs(5);
    (Client::new(config).expect("client"), writes)
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
