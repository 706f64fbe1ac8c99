//! The transaction client against an in-process fake `Txn` service that
//! answers as scripted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};
use zdb_proto::v1::error::Kind;
use zdb_proto::v1::txn_server::{Txn, TxnServer};
use zdb_proto::v1::KeyValue;

use super::*;
use crate::client::ClientConfig;

#[test]
fn options_go_on_the_wire_in_whole_milliseconds() {
    assert_eq!(
        TxnOptions::default().to_proto(),
        pb::BeginRequest {
            isolation: pb::Isolation::Serializable as i32,
            lock_wait_timeout_ms: 0,
            lock_ttl_ms: 0,
            idle_timeout_ms: 0,
        }
    );
    let options = TxnOptions {
        isolation: Isolation::ReadCommitted,
        lock_wait_timeout: Duration::from_micros(10),
        lock_ttl: Duration::from_millis(1500),
        idle_timeout: Duration::from_secs(60),
    };
    let request = options.to_proto();
    assert_eq!(request.isolation, pb::Isolation::ReadCommitted as i32);
    // Under a millisecond must not turn into "the node's default".
    assert_eq!(request.lock_wait_timeout_ms, 1);
    assert_eq!(request.lock_ttl_ms, 1500);
    assert_eq!(request.idle_timeout_ms, 60_000);
    assert_eq!(
        Isolation::Snapshot.to_proto(),
        pb::Isolation::Snapshot as i32
    );
}

#[test]
fn comparisons_and_mutations_convert() {
    assert_eq!(
        Compare::equals("k", "v").into_proto(),
        pb::Compare {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            absent: false
        }
    );
    // An empty value is a value, not absence.
    assert!(!Compare::equals("k", "").into_proto().absent);
    assert!(Compare::absent("k").into_proto().absent);
    let put = to_proto_mutation(Mutation::Put {
        key: b"a".to_vec(),
        value: b"1".to_vec(),
        ttl_seconds: 5,
    });
    assert_eq!(
        put.op,
        Some(pb::mutation::Op::Put(pb::PutOp {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            ttl_seconds: 5
        }))
    );
    let delete = to_proto_mutation(Mutation::Delete { key: b"b".to_vec() });
    assert_eq!(
        delete.op,
        Some(pb::mutation::Op::Delete(pb::DeleteOp {
            key: b"b".to_vec()
        }))
    );
}

fn typed(code: Code, kind: Kind) -> Status {
    let detail = pb::Error { kind: Some(kind) };
    let bytes = zdb_proto::encode_error_details(code as i32, "scripted", &detail);
    Status::with_details(code, "scripted", bytes.into())
}

fn conflict() -> Status {
    typed(
        Code::Aborted,
        Kind::WriteConflict(pb::WriteConflict {
            key: b"k".to_vec(),
            start_ts: 1,
            conflict_ts: 2,
        }),
    )
}

/// A coordinator that keeps committed data and each transaction's
/// buffered writes, logs every call, and fails calls as scripted.
#[derive(Clone, Default)]
struct FakeCoordinator(Arc<Mutex<State>>);

/// A transaction's buffered puts (Some) and deletes (None), in order.
type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

#[derive(Default)]
struct State {
    next_id: u64,
    /// (method, txn_id) of every call, in order.
    calls: Vec<(&'static str, u64)>,
    scan_starts: Vec<Vec<u8>>,
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    writes: HashMap<u64, Writes>,
    /// Most keys a scan page holds.
    page: usize,
    fail_put: VecDeque<Status>,
    fail_commit: VecDeque<Status>,
    fail_atomic: VecDeque<Status>,
}

impl FakeCoordinator {
    /// Transaction ids of this node start at `first_id`.
    fn new(first_id: u64) -> Self {
        let fake = FakeCoordinator::default();
        fake.0.lock().unwrap().next_id = first_id;
        fake.0.lock().unwrap().page = 2;
        fake
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn log(&self, method: &'static str, txn_id: u64) {
        self.state().calls.push((method, txn_id));
    }

    fn methods(&self) -> Vec<&'static str> {
        self.state()
            .calls
            .iter()
            .map(|(method, _)| *method)
            .collect()
    }

    fn live(&self, txn_id: u64) -> Result<(), Status> {
        if self.state().writes.contains_key(&txn_id) {
            Ok(())
        } else {
            Err(typed(
                Code::NotFound,
                Kind::TxnNotFound(pb::TxnNotFound { txn_id }),
            ))
        }
    }
}

#[tonic::async_trait]
impl Txn for FakeCoordinator {
    async fn begin(
        &self,
        _: Request<pb::BeginRequest>,
    ) -> Result<Response<pb::BeginResponse>, Status> {
        let mut state = self.state();
        state.next_id += 1;
        let txn_id = state.next_id;
        state.writes.insert(txn_id, Vec::new());
        state.calls.push(("begin", txn_id));
        Ok(Response::new(pb::BeginResponse {
            txn_id,
            start_ts: txn_id * 10,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::TxnGetRequest>,
    ) -> Result<Response<pb::TxnGetResponse>, Status> {
        let request = request.into_inner();
        self.log("get", request.txn_id);
        self.live(request.txn_id)?;
        let value = self.state().data.get(&request.key).cloned();
        Ok(Response::new(pb::TxnGetResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
            expire_at_ms: 0,
        }))
    }

    async fn batch_get(
        &self,
        request: Request<pb::TxnBatchGetRequest>,
    ) -> Result<Response<pb::TxnBatchGetResponse>, Status> {
        let request = request.into_inner();
        self.log("batch_get", request.txn_id);
        self.live(request.txn_id)?;
        let state = self.state();
        let pairs = request
            .keys
            .into_iter()
            .filter_map(|key| {
                let value = state.data.get(&key)?.clone();
                Some(KeyValue { key, value })
            })
            .collect();
        Ok(Response::new(pb::TxnBatchGetResponse { pairs }))
    }

    async fn scan(
        &self,
        request: Request<pb::TxnScanRequest>,
    ) -> Result<Response<pb::TxnScanResponse>, Status> {
        let request = request.into_inner();
        self.log("scan", request.txn_id);
        self.live(request.txn_id)?;
        let mut state = self.state();
        state.scan_starts.push(request.start_key.clone());
        let most = match request.limit as usize {
            0 => state.page,
            limit => limit.min(state.page),
        };
        let mut pairs: Vec<KeyValue> = state
            .data
            .range(request.start_key..)
            .filter(|(key, _)| request.end_key.is_empty() || **key < request.end_key)
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .take(most + 1)
            .collect();
        let more = pairs.len() > most;
        pairs.truncate(most);
        Ok(Response::new(pb::TxnScanResponse { pairs, more }))
    }

    async fn put(
        &self,
        request: Request<pb::TxnPutRequest>,
    ) -> Result<Response<pb::TxnPutResponse>, Status> {
        let request = request.into_inner();
        self.log("put", request.txn_id);
        self.live(request.txn_id)?;
        let mut state = self.state();
        if let Some(status) = state.fail_put.pop_front() {
            return Err(status);
        }
        let writes = state.writes.get_mut(&request.txn_id).expect("live");
        writes.push((request.key, Some(request.value)));
        Ok(Response::new(pb::TxnPutResponse {}))
    }

    async fn delete(
        &self,
        request: Request<pb::TxnDeleteRequest>,
    ) -> Result<Response<pb::TxnDeleteResponse>, Status> {
        let request = request.into_inner();
        self.log("delete", request.txn_id);
        self.live(request.txn_id)?;
        let mut state = self.state();
        let writes = state.writes.get_mut(&request.txn_id).expect("live");
        writes.push((request.key, None));
        Ok(Response::new(pb::TxnDeleteResponse {}))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let request = request.into_inner();
        let txn_id = request.txn_id;
        self.log("commit", txn_id);
        self.live(txn_id)?;
        let mut state = self.state();
        for mutation in request.mutations {
            let write = match mutation.op {
                Some(pb::mutation::Op::Put(put)) => (put.key, Some(put.value)),
                Some(pb::mutation::Op::Delete(delete)) => (delete.key, None),
                None => continue,
            };
            state.writes.entry(txn_id).or_default().push(write);
        }
        if let Some(status) = state.fail_commit.pop_front() {
            // Aborted or unknown: the fake forgets it either way.
            state.writes.remove(&txn_id);
            return Err(status);
        }
        let writes = state.writes.remove(&txn_id).unwrap_or_default();
        for (key, value) in writes {
            match value {
                Some(value) => state.data.insert(key, value),
                None => state.data.remove(&key),
            };
        }
        Ok(Response::new(pb::CommitResponse {
            commit_ts: txn_id * 10 + 1,
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        let txn_id = request.into_inner().txn_id;
        self.log("rollback", txn_id);
        self.live(txn_id)?;
        self.state().writes.remove(&txn_id);
        Ok(Response::new(pb::RollbackResponse {}))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let txn_id = request.into_inner().txn_id;
        self.log("heartbeat", txn_id);
        self.live(txn_id)?;
        Ok(Response::new(pb::HeartbeatResponse {}))
    }

    async fn atomic(
        &self,
        request: Request<pb::AtomicRequest>,
    ) -> Result<Response<pb::AtomicResponse>, Status> {
        let request = request.into_inner();
        self.log("atomic", 0);
        let mut state = self.state();
        if let Some(status) = state.fail_atomic.pop_front() {
            return Err(status);
        }
        let holds = request.compare.iter().all(|compare| {
            match (state.data.get(&compare.key), compare.absent) {
                (None, true) => true,
                (Some(value), false) => *value == compare.value,
                _ => false,
            }
        });
        let mutations = if holds {
            request.success
        } else {
            request.failure
        };
        for mutation in mutations {
            match mutation.op {
                Some(pb::mutation::Op::Put(put)) => {
                    state.data.insert(put.key, put.value);
                }
                Some(pb::mutation::Op::Delete(delete)) => {
                    state.data.remove(&delete.key);
                }
                None => {}
            }
        }
        Ok(Response::new(pb::AtomicResponse {
            succeeded: holds,
            commit_ts: 77,
        }))
    }
}

async fn serve(fake: &FakeCoordinator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TxnServer::new(fake.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    address
}

fn client(endpoints: &[String]) -> Client {
    let mut config = ClientConfig::new(endpoints.iter().cloned());
    config.timeout = Duration::from_secs(3);
    Client::new(config).unwrap()
}

async fn one_node() -> (FakeCoordinator, Client) {
    let fake = FakeCoordinator::new(0);
    let address = serve(&fake).await;
    (fake, client(&[address]))
}

#[tokio::test]
async fn calls_carry_the_transaction_and_commit_applies_its_writes() {
    let (fake, client) = one_node().await;
    let mut txn = client.begin(TxnOptions::default()).await.unwrap();
    assert_eq!((txn.id(), txn.start_ts()), (1, 10));
    assert_eq!(txn.get("k").await.unwrap(), None);
    txn.put("k", "v").await.unwrap();
    txn.put("gone", "x").await.unwrap();
    txn.delete("gone").await.unwrap();
    txn.heartbeat().await.unwrap();
    assert_eq!(txn.commit().await.unwrap(), 11);
    assert_eq!(fake.state().data.get(b"k".as_slice()), Some(&b"v".to_vec()));
    assert!(!fake.state().data.contains_key(b"gone".as_slice()));
    assert!(fake.state().calls.iter().all(|(_, txn_id)| *txn_id == 1));

    let mut txn = client.begin(TxnOptions::default()).await.unwrap();
    assert_eq!(txn.get_for_update("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(txn.get_for_share("k").await.unwrap(), Some(b"v".to_vec()));
    let found = txn.batch_get(vec![b"x".to_vec(), b"k".to_vec()]).await;
    assert_eq!(found.unwrap().len(), 1);
    txn.rollback().await.unwrap();
    assert_eq!(fake.methods().last(), Some(&"rollback"));
}

#[tokio::test]
async fn scan_follows_more_from_just_after_the_last_key() {
    let (fake, client) = one_node().await;
    for key in ["a", "b", "c", "d", "e"] {
        fake.state().data.insert(key.into(), b"v".to_vec());
    }
    let mut txn = client.begin(TxnOptions::default()).await.unwrap();
    let all = txn.scan("", "", 0).await.unwrap();
    let keys: Vec<&[u8]> = all.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [b"a", b"b", b"c", b"d", b"e"]);
    assert_eq!(
        fake.state().scan_starts,
        [b"".to_vec(), b"b\0".to_vec(), b"d\0".to_vec()]
    );
    let three = txn.scan("b", "", 3).await.unwrap();
    assert_eq!(three.len(), 3);
    assert_eq!(three[0].key, b"b");
    let bounded = txn.scan("a", "c", 0).await.unwrap();
    assert_eq!(bounded.len(), 2);
}

#[tokio::test]
async fn every_call_of_a_transaction_goes_to_the_node_that_began_it() {
    let (first, second) = (FakeCoordinator::new(100), FakeCoordinator::new(200));
    let endpoints = [serve(&first).await, serve(&second).await];
    let client = client(&endpoints);
    for _ in 0..4 {
        let mut txn = client.begin(TxnOptions::default()).await.unwrap();
        txn.get("k").await.unwrap();
        txn.put("k", "v").await.unwrap();
        txn.scan("", "", 0).await.unwrap();
        txn.commit().await.unwrap();
    }
    for (fake, ids) in [(&first, 100..200), (&second, 200..300)] {
        let calls = fake.state().calls.clone();
        // Begin went round the nodes: each began two.
        assert_eq!(calls.iter().filter(|(m, _)| *m == "begin").count(), 2);
        assert!(calls.iter().all(|(_, id)| ids.contains(id)), "{calls:?}");
    }
}

#[tokio::test]
async fn an_aborted_commit_runs_the_transaction_again() {
    let (fake, client) = one_node().await;
    fake.state().fail_commit.push_back(conflict());
    let runs = Arc::new(AtomicU32::new(0));
    let value = client
        .transaction(Isolation::Serializable, |txn| {
            let runs = runs.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let before = txn.get("k").await?;
                txn.put("k", "v").await?;
                Ok(before)
            })
        })
        .await
        .unwrap();
    assert_eq!(value, None);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(fake.state().data.get(b"k".as_slice()), Some(&b"v".to_vec()));
    // The conflict ended the first transaction: no rollback was needed.
    assert_eq!(
        fake.methods(),
        ["begin", "get", "commit", "begin", "get", "commit"]
    );
}

#[tokio::test]
async fn a_commit_with_an_unknown_outcome_is_not_run_again() {
    let (fake, client) = one_node().await;
    fake.state().fail_commit.push_back(typed(
        Code::DeadlineExceeded,
        Kind::OutcomeUnknown(pb::OutcomeUnknown {}),
    ));
    let runs = Arc::new(AtomicU32::new(0));
    let result = client
        .transaction(Isolation::Snapshot, |txn| {
            let runs = runs.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                txn.put("k", "v").await?;
                txn.scan("a", "z", 0).await.map(drop)
            })
        })
        .await;
    assert!(
        matches!(result, Err(Error::OutcomeUnknown(_))),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(fake.methods(), ["begin", "put", "scan", "commit"]);
}

#[tokio::test]
async fn a_final_error_of_the_body_rolls_back_and_is_returned_at_once() {
    let (fake, client) = one_node().await;
    let runs = Arc::new(AtomicU32::new(0));
    let result: Result<()> = client
        .transaction(Isolation::Serializable, |txn| {
            let runs = runs.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                txn.put("k", "v").await?;
                Err(Error::InvalidArgument("the application says no".into()))
            })
        })
        .await;
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The write was still buffered in the client: nothing reached the node.
    assert_eq!(fake.methods(), ["begin", "rollback"]);
    assert!(fake.state().data.is_empty());
}

#[tokio::test]
async fn a_write_whose_reply_was_lost_abandons_the_transaction() {
    let (fake, client) = one_node().await;
    // No kind: the write may have reached the coordinator.
    fake.state()
        .fail_put
        .push_back(Status::unavailable("connection reset"));
    let mut txn = client.begin(TxnOptions::default()).await.unwrap();
    // Buffered here; sent before a scan, which the coordinator merges.
    txn.put("k", "v").await.unwrap();
    let error = txn.scan("a", "z", 0).await.unwrap_err();
    assert!(
        matches!(error, Error::TxnAborted { start_ts: 10, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable_txn_error());
    // Rolled back, and nothing more is sent for it, above all no commit.
    assert_eq!(fake.methods(), ["begin", "put", "rollback"]);
    assert!(matches!(txn.get("k").await, Err(Error::TxnAborted { .. })));
    assert!(matches!(txn.commit().await, Err(Error::TxnAborted { .. })));
    assert_eq!(fake.methods().len(), 3);

    // The closure API runs such a transaction again.
    fake.state()
        .fail_put
        .push_back(Status::unavailable("connection reset"));
    let runs = Arc::new(AtomicU32::new(0));
    client
        .transaction(Isolation::Serializable, |txn| {
            let runs = runs.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                txn.put("k", "v").await?;
                txn.scan("a", "z", 0).await.map(drop)
            })
        })
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(fake.state().data.get(b"k".as_slice()), Some(&b"v".to_vec()));
}

#[tokio::test]
async fn refusals_that_applied_nothing_are_sent_again_to_the_coordinator() {
    let (fake, client) = one_node().await;
    fake.state().fail_put.push_back(typed(
        Code::ResourceExhausted,
        Kind::ServerBusy(pb::ServerBusy {}),
    ));
    fake.state().fail_put.push_back(typed(
        Code::Unavailable,
        Kind::KeyLocked(pb::KeyLocked { lock: None }),
    ));
    let mut txn = client.begin(TxnOptions::default()).await.unwrap();
    txn.put("k", "v").await.unwrap();
    txn.scan("a", "z", 0).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(
        fake.methods(),
        ["begin", "put", "put", "put", "scan", "commit"]
    );
}

/// Applications run transactions on spawned tasks.
#[tokio::test]
async fn the_closure_api_runs_on_any_task() {
    let (fake, client) = one_node().await;
    let task = tokio::spawn(async move {
        client
            .transaction(Isolation::Serializable, |txn| {
                Box::pin(async move {
                    txn.put("k", "v").await?;
                    txn.get("k").await
                })
            })
            .await
    });
    task.await.unwrap().unwrap();
    // The put went with the commit; the get read it from the client's buffer.
    assert_eq!(fake.methods(), ["begin", "commit"]);
}

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back() {
    let (fake, client) = one_node().await;
    let txn = client.begin(TxnOptions::default()).await.unwrap();
    drop(txn);
    for _ in 0..100 {
        if fake.methods().last() == Some(&"rollback") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no rollback: {:?}", fake.methods());
}

#[tokio::test]
async fn atomic_retries_aborts_and_refusals_but_not_final_errors() {
    let (fake, client) = one_node().await;
    fake.state().fail_atomic.push_back(typed(
        Code::Unavailable,
        Kind::NotApplied(pb::NotApplied {}),
    ));
    fake.state().fail_atomic.push_back(conflict());
    let put = Mutation::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ttl_seconds: 0,
    };
    let outcome = client
        .atomic(vec![Compare::absent("k")], vec![put.clone()], vec![])
        .await
        .unwrap();
    assert_eq!(outcome, (true, 77));
    assert_eq!(fake.methods(), ["atomic", "atomic", "atomic"]);
    let outcome = client
        .atomic(vec![Compare::absent("k")], vec![put.clone()], vec![])
        .await
        .unwrap();
    assert!(!outcome.0);

    fake.state()
        .fail_atomic
        .push_back(Status::invalid_argument("too many mutations"));
    let result = client.atomic(vec![], vec![put.clone()], vec![]).await;
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
    fake.state().fail_atomic.push_back(typed(
        Code::DeadlineExceeded,
        Kind::OutcomeUnknown(pb::OutcomeUnknown {}),
    ));
    let result = client.atomic(vec![], vec![put], vec![]).await;
    assert!(matches!(result, Err(Error::OutcomeUnknown(_))));
}
