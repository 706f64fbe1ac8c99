//! The client KV API (kv.proto): validate, then propose through Raft or read
//! once the store says the local engine is current enough.

use std::time::Duration;

use tonic::{Request, Response, Status};
use zdb_proto::v1::kv_client::KvClient;
use zdb_proto::v1::kv_server::Kv;
use zdb_proto::v1::*;

use super::observe::observe;
use super::validate;
use crate::cluster::MetaClient;
use crate::config::Limits;
use crate::engine::{value, Engine, CF_DATA};
use crate::error::{Error, Result};
use crate::range::apply::ApplyResult;
use crate::range::meta::{self, META_RANGE_ID};
use crate::store::msg::{ReadKind, Target};
use crate::store::{now_ms, StoreHandle};

pub struct KvService {
    store: StoreHandle,
    engine: Engine,
    meta: MetaClient,
    limits: Limits,
    timeout: Duration,
}

impl KvService {
    async fn locate_elsewhere(
        &self,
        request: LocateRequest,
    ) -> Result<Response<LocateResponse>, Status> {
        for address in self.meta.meta_holders().await {
            let Ok(mut kv) = KvClient::connect(format!("http://{address}")).await else {
                continue;
            };
            if let Ok(response) = kv.locate(request.clone()).await {
                return Ok(response);
            }
        }
        Err(Status::unavailable(
            "this node holds no copy of the routing table and reaches no node that does; \
             retry, or ask another node",
        ))
    }

    pub fn new(
        store: StoreHandle,
        engine: Engine,
        meta: MetaClient,
        limits: Limits,
        timeout: Duration,
    ) -> Self {
        KvService {
            store,
            engine,
            meta,
            limits,
            timeout,
        }
    }

    async fn write(
        &self,
        header: Option<RequestHeader>,
        keys: Vec<Vec<u8>>,
        kind: command::Kind,
    ) -> Result<ApplyResult> {
        let command = Command {
            now_ms: 0,
            kind: Some(kind),
        };
        self.store
            .propose(
                Target {
                    header,
                    keys,
                    span_end: None,
                },
                command,
                self.timeout,
            )
            .await
    }

    async fn read_barrier(
        &self,
        header: Option<RequestHeader>,
        keys: Vec<Vec<u8>>,
        span_end: Option<Vec<u8>>,
        consistency: i32,
    ) -> Result<()> {
        let kind = match ReadConsistency::try_from(consistency) {
            Ok(ReadConsistency::Stale) => ReadKind::Stale,
            Ok(ReadConsistency::Linearizable) => ReadKind::Linearizable,
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "unknown read consistency {consistency}"
                )))
            }
        };
        self.store
            .read_barrier(
                Target {
                    header,
                    keys,
                    span_end,
                },
                kind,
                self.timeout,
            )
            .await
    }

    fn live_value(&self, key: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>> {
        let Some(raw) = self.engine.get(CF_DATA, key)? else {
            return Ok(None);
        };
        let stored = value::decode(&raw)?;
        Ok(stored.is_live_at(now_ms).then(|| stored.value.to_vec()))
    }

    fn stored_put(&self, key: Vec<u8>, value: Vec<u8>, ttl_seconds: u64) -> Result<StoredPut> {
        Ok(StoredPut {
            key,
            value,
            expire_at_ms: validate::expiry(now_ms(), ttl_seconds)?,
        })
    }
}

fn single(op: stored_mutation::Op) -> command::Kind {
    command::Kind::Write(WriteBatchCommand {
        mutations: vec![StoredMutation { op: Some(op) }],
    })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        observe("Get", async {
            let req = request.into_inner();
            validate::key(&self.limits, &req.key)?;
            self.read_barrier(req.header, vec![req.key.clone()], None, req.consistency)
                .await?;
            let response = match self.live_value(&req.key, now_ms())? {
                Some(value) => GetResponse { found: true, value },
                None => GetResponse::default(),
            };
            Ok(Response::new(response))
        })
        .await
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        observe("Put", async {
            let req = request.into_inner();
            validate::key(&self.limits, &req.key)?;
            validate::value(&self.limits, &req.value)?;
            let put = self.stored_put(req.key.clone(), req.value, req.ttl_seconds)?;
            self.write(
                req.header,
                vec![req.key],
                single(stored_mutation::Op::Put(put)),
            )
            .await?;
            Ok(Response::new(PutResponse {}))
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        observe("Delete", async {
            let req = request.into_inner();
            validate::key(&self.limits, &req.key)?;
            self.write(
                req.header,
                vec![req.key.clone()],
                single(stored_mutation::Op::Delete(req.key)),
            )
            .await?;
            Ok(Response::new(DeleteResponse {}))
        })
        .await
    }

    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        observe("Scan", async {
            let req = request.into_inner();
            validate::scan(&self.limits, &req.start_key, &req.end_key, req.limit)?;
            self.read_barrier(
                req.header,
                vec![req.start_key.clone()],
                Some(req.end_key.clone()),
                req.consistency,
            )
            .await?;
            let limit = if req.limit == 0 {
                self.limits.max_scan_limit
            } else {
                req.limit
            } as usize;
            let now = now_ms();
            let mut response = ScanResponse::default();
            self.engine.scan(
                CF_DATA,
                &req.start_key,
                &req.end_key,
                req.reverse,
                |key, raw| {
                    let stored = value::decode(raw)?;
                    if !stored.is_live_at(now) {
                        return Ok(true);
                    }
                    if response.pairs.len() == limit {
                        response.more = true;
                        return Ok(false);
                    }
                    response.pairs.push(KeyValue {
                        key: key.to_vec(),
                        value: stored.value.to_vec(),
                    });
                    Ok(true)
                },
            )?;
            Ok(Response::new(response))
        })
        .await
    }

    async fn batch_get(
        &self,
        request: Request<BatchGetRequest>,
    ) -> Result<Response<BatchGetResponse>, Status> {
        observe("BatchGet", async {
            let req = request.into_inner();
            validate::batch_len(&self.limits, "key list", req.keys.len())?;
            for key in &req.keys {
                validate::key(&self.limits, key)?;
            }
            self.read_barrier(req.header, req.keys.clone(), None, req.consistency)
                .await?;
            let now = now_ms();
            let mut pairs = Vec::new();
            for key in req.keys {
                if let Some(value) = self.live_value(&key, now)? {
                    pairs.push(KeyValue { key, value });
                }
            }
            Ok(Response::new(BatchGetResponse { pairs }))
        })
        .await
    }

    async fn batch_write(
        &self,
        request: Request<BatchWriteRequest>,
    ) -> Result<Response<BatchWriteResponse>, Status> {
        observe("BatchWrite", async {
            let req = request.into_inner();
            validate::mutations(&self.limits, &req.mutations)?;
            let mut keys = Vec::with_capacity(req.mutations.len());
            let mut stored = Vec::with_capacity(req.mutations.len());
            for mutation in req.mutations {
                let op = match mutation.op {
                    Some(mutation::Op::Put(put)) => {
                        keys.push(put.key.clone());
                        stored_mutation::Op::Put(self.stored_put(
                            put.key,
                            put.value,
                            put.ttl_seconds,
                        )?)
                    }
                    Some(mutation::Op::Delete(delete)) => {
                        keys.push(delete.key.clone());
                        stored_mutation::Op::Delete(delete.key)
                    }
                    None => unreachable!("validated above"),
                };
                stored.push(StoredMutation { op: Some(op) });
            }
            let kind = command::Kind::Write(WriteBatchCommand { mutations: stored });
            self.write(req.header, keys, kind).await?;
            Ok(Response::new(BatchWriteResponse {}))
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        request: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        observe("CompareAndSwap", async {
            let req = request.into_inner();
            validate::key(&self.limits, &req.key)?;
            validate::value(&self.limits, &req.new_value)?;
            validate::value(&self.limits, &req.expected_value)?;
            if req.expect_absent && !req.expected_value.is_empty() {
                return Err(Error::InvalidArgument(
                    "expect_absent and expected_value exclude each other; set one".into(),
                )
                .into());
            }
            let new_value = self.stored_put(req.key.clone(), req.new_value, req.ttl_seconds)?;
            let kind = command::Kind::Cas(CompareAndSwapCommand {
                key: req.key.clone(),
                expected_value: req.expected_value,
                expect_absent: req.expect_absent,
                new_value: Some(new_value),
            });
            let response = match self.write(req.header, vec![req.key], kind).await? {
                ApplyResult::CompareAndSwap { succeeded, current } => CompareAndSwapResponse {
                    succeeded,
                    found: current.is_some(),
                    current_value: current.unwrap_or_default(),
                },
                other => {
                    return Err(Status::internal(format!(
                        "compare-and-swap applied as {other:?}"
                    )))
                }
            };
            Ok(Response::new(response))
        })
        .await
    }

    async fn locate(
        &self,
        request: Request<LocateRequest>,
    ) -> Result<Response<LocateResponse>, Status> {
        observe("Locate", async {
            let req = request.into_inner();
            let limit = (req.limit as usize).clamp(1, 1000);
            let replicas = self.store.status().await?;
            let holds_meta = replicas.iter().any(|replica| {
                replica
                    .range
                    .as_ref()
                    .is_some_and(|range| range.range_id == META_RANGE_ID)
            });
            if !holds_meta {
                // The routing table lives in the meta range: ask a node with a copy.
                return self.locate_elsewhere(req).await;
            }
            let ranges = meta::locate(&self.engine, &req.key, limit)?;
            let leaders: std::collections::HashMap<u64, u64> = replicas
                .into_iter()
                .filter_map(|replica| Some((replica.range?.range_id, replica.leader_id)))
                .collect();
            let ranges = ranges
                .into_iter()
                .map(|range| RangeLocation {
                    leader_node_id: leaders.get(&range.range_id).copied().unwrap_or_default(),
                    range: Some(range),
                })
                .collect();
            let nodes = meta::registry(&self.engine)?;
            Ok(Response::new(LocateResponse { ranges, nodes }))
        })
        .await
    }
}
