//! Node administration (admin.proto): status, splits, and the meta range's
//! node-to-node calls.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use zdb_proto::v1::admin_server::Admin;
use zdb_proto::v1::*;

use super::range_stats::{self, SizeCache};
use crate::cluster::MetaClient;
use crate::engine::Engine;
use crate::error::Error;
use crate::range::apply::ApplyResult;
use crate::range::meta::META_RANGE_ID;
use crate::store::msg::Target;
use crate::store::StoreHandle;
use crate::transport::PeerDirectory;

const SPLIT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AdminService {
    node_id: u64,
    address: String,
    cluster_id: String,
    store: StoreHandle,
    engine: Engine,
    peers: Arc<PeerDirectory>,
    meta: MetaClient,
    sizes: Arc<SizeCache>,
}

impl AdminService {
    pub fn new(
        node_id: u64,
        address: String,
        cluster_id: String,
        store: StoreHandle,
        engine: Engine,
        peers: Arc<PeerDirectory>,
    ) -> Self {
        AdminService {
            node_id,
            address,
            cluster_id,
            meta: MetaClient::new(store.clone()),
            store,
            engine,
            peers,
            sizes: Arc::default(),
        }
    }

    /// This node's replica of `range_id`, which must lead its range.
    async fn led_range(&self, range_id: u64) -> Result<RangeDescriptor, Error> {
        let replica = self
            .store
            .status()
            .await?
            .into_iter()
            .find(|replica| {
                replica
                    .range
                    .as_ref()
                    .is_some_and(|r| r.range_id == range_id)
            })
            .ok_or(Error::RangeNotFound(range_id))?;
        if replica.role != RaftRole::Leader as i32 {
            return Err(Error::NotLeader {
                range_id,
                leader_id: replica.leader_id,
                leader_address: self.peers.address(replica.leader_id).unwrap_or_default(),
            });
        }
        replica.range.ok_or(Error::RangeNotFound(range_id))
    }

    async fn propose_to(
        &self,
        range_id: u64,
        kind: command::Kind,
        timeout: Duration,
    ) -> Result<ApplyResult, Error> {
        let target = Target {
            header: Some(RequestHeader {
                range_id,
                epoch: None,
            }),
            ..Target::default()
        };
        self.store
            .propose(
                target,
                Command {
                    now_ms: 0,
                    kind: Some(kind),
                },
                timeout,
            )
            .await
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn node_status(
        &self,
        _request: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeStatusResponse>, Status> {
        let mut replicas = self.store.status().await?;
        replicas.sort_by_key(|replica| replica.range.as_ref().map(|range| range.range_id));
        let engine = self.engine.clone();
        let sizes = self.sizes.clone();
        let replicas = tokio::task::spawn_blocking(move || {
            for replica in &mut replicas {
                if let Some(range) = &replica.range {
                    let size = sizes.get_or_measure(&engine, range)?;
                    replica.approximate_keys = size.keys;
                    replica.approximate_bytes = size.bytes;
                }
            }
            Ok::<_, Error>(replicas)
        })
        .await
        .map_err(|err| Status::internal(err.to_string()))??;
        Ok(Response::new(NodeStatusResponse {
            node_id: self.node_id,
            address: self.address.clone(),
            cluster_id: self.cluster_id.clone(),
            replica_count: replicas.len() as u64,
            leader_count: replicas
                .iter()
                .filter(|r| r.role == RaftRole::Leader as i32)
                .count() as u64,
            replicas,
        }))
    }

    async fn split_range(
        &self,
        request: Request<SplitRangeRequest>,
    ) -> Result<Response<SplitRangeResponse>, Status> {
        let request = request.into_inner();
        let range = self.led_range(request.range_id).await?;
        let split_key = if request.split_key.is_empty() {
            let engine = self.engine.clone();
            let span = range.clone();
            tokio::task::spawn_blocking(move || range_stats::middle_key(&engine, &span))
                .await
                .map_err(|err| Status::internal(err.to_string()))??
                .ok_or_else(|| {
                    Status::failed_precondition(format!(
                        "range {} holds too few keys to split by size; name a split key",
                        range.range_id
                    ))
                })?
        } else {
            request.split_key
        };
        if !crate::range::descriptor::contains(&range, &split_key) {
            // The caller's view of the ranges is stale: a typed error lets it refresh.
            return Err(Error::KeyNotInRange {
                key: split_key,
                range,
            }
            .into());
        }
        if split_key == range.start_key {
            return Err(Status::invalid_argument(format!(
                "{:?} already starts range {}; nothing to split",
                String::from_utf8_lossy(&split_key),
                range.range_id
            )));
        }
        let new_range_id = self.meta.allocate_range_id().await?;
        let split = command::Kind::Split(SplitCommand {
            split_key,
            new_range_id,
            expected_epoch: range.epoch.clone(),
        });
        match self
            .propose_to(range.range_id, split, SPLIT_TIMEOUT)
            .await?
        {
            ApplyResult::Split { left, right } => {
                // Best effort: the range reporter repairs the table if this fails.
                if let Err(err) = self.meta.update(vec![left.clone(), right.clone()]).await {
                    tracing::warn!(error = %err, "split applied; routing table update deferred");
                }
                Ok(Response::new(SplitRangeResponse {
                    left: Some(left),
                    right: Some(right),
                }))
            }
            ApplyResult::Refused(reason) => Err(Status::failed_precondition(format!(
                "{reason}; retry the split"
            ))),
            other => Err(Status::internal(format!(
                "unexpected split result {other:?}"
            ))),
        }
    }

    async fn update_meta(
        &self,
        request: Request<UpdateMetaRequest>,
    ) -> Result<Response<UpdateMetaResponse>, Status> {
        let ranges = request.into_inner().ranges;
        let kind = command::Kind::MetaUpdate(MetaUpdateCommand { ranges });
        self.propose_to(META_RANGE_ID, kind, SPLIT_TIMEOUT).await?;
        Ok(Response::new(UpdateMetaResponse {}))
    }

    async fn allocate_range_id(
        &self,
        _request: Request<AllocateRangeIdRequest>,
    ) -> Result<Response<AllocateRangeIdResponse>, Status> {
        let kind = command::Kind::AllocateRangeId(AllocateRangeIdCommand {});
        match self.propose_to(META_RANGE_ID, kind, SPLIT_TIMEOUT).await? {
            ApplyResult::RangeId(range_id) => {
                Ok(Response::new(AllocateRangeIdResponse { range_id }))
            }
            other => Err(Status::internal(format!(
                "unexpected allocation result {other:?}"
            ))),
        }
    }
}
