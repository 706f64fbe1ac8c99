//! Node administration (admin.proto) over the node's operations.

use tonic::{Request, Response, Status};
use zdb_proto::v1::admin_server::Admin;
use zdb_proto::v1::*;

use super::call::serve;
use crate::ops::Ops;

pub struct AdminService {
    ops: Ops,
}

impl AdminService {
    pub fn new(ops: Ops) -> Self {
        AdminService { ops }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn node_status(
        &self,
        request: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeStatusResponse>, Status> {
        serve(&self.ops, "NodeStatus", request, async |_, _| {
            self.ops.node_status().await
        })
        .await
    }

    async fn split_range(
        &self,
        request: Request<SplitRangeRequest>,
    ) -> Result<Response<SplitRangeResponse>, Status> {
        serve(&self.ops, "SplitRange", request, async |req, _| {
            self.ops.split_range(req).await
        })
        .await
    }

    async fn update_meta(
        &self,
        request: Request<UpdateMetaRequest>,
    ) -> Result<Response<UpdateMetaResponse>, Status> {
        serve(&self.ops, "UpdateMeta", request, async |req, _| {
            self.ops.update_meta(req).await
        })
        .await
    }

    async fn security_catalog_read(
        &self,
        request: Request<SecurityCatalogRequest>,
    ) -> Result<Response<SecurityCatalog>, Status> {
        serve(&self.ops, "SecurityCatalogRead", request, async |_, _| {
            self.ops.security_catalog_here().await
        })
        .await
    }

    async fn security_change(
        &self,
        request: Request<SecurityCommand>,
    ) -> Result<Response<UserChangeResponse>, Status> {
        serve(&self.ops, "SecurityChange", request, async |req, _| {
            self.ops.security_change_here(req).await
        })
        .await
    }

    async fn allocate_range_id(
        &self,
        request: Request<AllocateRangeIdRequest>,
    ) -> Result<Response<AllocateRangeIdResponse>, Status> {
        serve(&self.ops, "AllocateRangeId", request, async |_, _| {
            self.ops.allocate_range_id().await
        })
        .await
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        serve(&self.ops, "TransferLeader", request, async |req, _| {
            self.ops.transfer_leader(req).await
        })
        .await
    }

    async fn add_replica(
        &self,
        request: Request<AddReplicaRequest>,
    ) -> Result<Response<AddReplicaResponse>, Status> {
        serve(&self.ops, "AddReplica", request, async |req, _| {
            self.ops.add_replica(req).await
        })
        .await
    }

    async fn remove_replica(
        &self,
        request: Request<RemoveReplicaRequest>,
    ) -> Result<Response<RemoveReplicaResponse>, Status> {
        serve(&self.ops, "RemoveReplica", request, async |req, _| {
            self.ops.remove_replica(req).await
        })
        .await
    }

    async fn set_node_state(
        &self,
        request: Request<SetNodeStateRequest>,
    ) -> Result<Response<SetNodeStateResponse>, Status> {
        serve(&self.ops, "SetNodeState", request, async |req, ctx| {
            self.ops.set_node_state(req, ctx).await
        })
        .await
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        serve(&self.ops, "ListNodes", request, async |_, ctx| {
            self.ops.list_nodes(ctx).await
        })
        .await
    }

    async fn set_node_zone(
        &self,
        request: Request<SetNodeZoneRequest>,
    ) -> Result<Response<SetNodeZoneResponse>, Status> {
        serve(&self.ops, "SetNodeZone", request, async |req, ctx| {
            self.ops.set_node_zone(req, ctx).await
        })
        .await
    }

    async fn gc_status(
        &self,
        request: Request<GcStatusRequest>,
    ) -> Result<Response<GcStatusResponse>, Status> {
        serve(&self.ops, "GcStatus", request, async |_req, ctx| {
            self.ops.gc_status(ctx).await
        })
        .await
    }

    async fn set_gc_life_time(
        &self,
        request: Request<SetGcLifeTimeRequest>,
    ) -> Result<Response<SetGcLifeTimeResponse>, Status> {
        serve(&self.ops, "SetGcLifeTime", request, async |req, ctx| {
            self.ops
                .set_gc_life_time(req.life_time_ms, ctx)
                .await
                .map(|()| SetGcLifeTimeResponse {})
        })
        .await
    }

    async fn rotate_data_key(
        &self,
        request: Request<RotateDataKeyRequest>,
    ) -> Result<Response<RotateDataKeyResponse>, Status> {
        serve(&self.ops, "RotateDataKey", request, async |_, _| {
            self.ops.rotate_data_key().await
        })
        .await
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        serve(&self.ops, "Join", request, async |req, ctx| {
            self.ops.join(req, ctx).await
        })
        .await
    }

    async fn cache_status(
        &self,
        request: Request<CacheStatusRequest>,
    ) -> Result<Response<CacheStatusResponse>, Status> {
        serve(&self.ops, "CacheStatus", request, async |_, _| {
            self.ops.cache_status().await
        })
        .await
    }

    async fn set_cache_policy(
        &self,
        request: Request<SetCachePolicyRequest>,
    ) -> Result<Response<CacheStatusResponse>, Status> {
        serve(&self.ops, "SetCachePolicy", request, async |req, ctx| {
            self.ops.set_cache_policy(req, ctx).await?;
            // A call passed on by another node needs no status back.
            match ctx.hops {
                0 => self.ops.cache_status().await,
                _ => Ok(CacheStatusResponse::default()),
            }
        })
        .await
    }

    async fn cache_settings_read(
        &self,
        request: Request<CacheSettingsRequest>,
    ) -> Result<Response<CacheSettings>, Status> {
        serve(&self.ops, "CacheSettingsRead", request, async |_, _| {
            self.ops.cache_settings_here().await
        })
        .await
    }

    async fn evict_range(
        &self,
        request: Request<EvictRangeRequest>,
    ) -> Result<Response<EvictRangeResponse>, Status> {
        serve(&self.ops, "EvictRange", request, async |req, ctx| {
            self.ops.evict_range(req, ctx).await
        })
        .await
    }
}
