//! The transaction APIs (txn.proto) over the node's operations: `Txn` for
//! applications (this node coordinates), `TxnRange` for coordinators.

use tonic::{Request, Response, Status};
use zdb_proto::v1::txn_range_server::TxnRange;
use zdb_proto::v1::txn_server::Txn;
use zdb_proto::v1::*;

use super::call::serve;
use crate::ops::Ops;

pub struct TxnService {
    ops: Ops,
}

impl TxnService {
    pub fn new(ops: Ops) -> Self {
        TxnService { ops }
    }
}

#[tonic::async_trait]
impl Txn for TxnService {
    async fn begin(
        &self,
        request: Request<BeginRequest>,
    ) -> Result<Response<BeginResponse>, Status> {
        serve(&self.ops, "TxnBegin", request, async |req, _| {
            self.ops.begin(req).await
        })
        .await
    }

    async fn get(
        &self,
        request: Request<TxnGetRequest>,
    ) -> Result<Response<TxnGetResponse>, Status> {
        serve(&self.ops, "TxnGet", request, async |req, ctx| {
            self.ops.txn_get(req, ctx).await
        })
        .await
    }

    async fn batch_get(
        &self,
        request: Request<TxnBatchGetRequest>,
    ) -> Result<Response<TxnBatchGetResponse>, Status> {
        serve(&self.ops, "TxnBatchGet", request, async |req, ctx| {
            self.ops.txn_batch_get(req, ctx).await
        })
        .await
    }

    async fn scan(
        &self,
        request: Request<TxnScanRequest>,
    ) -> Result<Response<TxnScanResponse>, Status> {
        serve(&self.ops, "TxnScan", request, async |req, ctx| {
            self.ops.txn_scan(req, ctx).await
        })
        .await
    }

    async fn put(
        &self,
        request: Request<TxnPutRequest>,
    ) -> Result<Response<TxnPutResponse>, Status> {
        serve(&self.ops, "TxnPut", request, async |req, _| {
            self.ops.txn_put(req).await
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<TxnDeleteRequest>,
    ) -> Result<Response<TxnDeleteResponse>, Status> {
        serve(&self.ops, "TxnDelete", request, async |req, _| {
            self.ops.txn_delete(req).await
        })
        .await
    }

    async fn commit(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        serve(&self.ops, "TxnCommit", request, async |req, _| {
            self.ops.txn_commit(req).await
        })
        .await
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        serve(&self.ops, "TxnRollback", request, async |req, _| {
            self.ops.txn_rollback(req).await
        })
        .await
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        serve(&self.ops, "TxnHeartbeat", request, async |req, _| {
            self.ops.txn_heartbeat(req).await
        })
        .await
    }

    async fn atomic(
        &self,
        request: Request<AtomicRequest>,
    ) -> Result<Response<AtomicResponse>, Status> {
        serve(&self.ops, "TxnAtomic", request, async |req, _| {
            self.ops.atomic(req).await
        })
        .await
    }
}

pub struct TxnRangeService {
    ops: Ops,
}

impl TxnRangeService {
    pub fn new(ops: Ops) -> Self {
        TxnRangeService { ops }
    }
}

#[tonic::async_trait]
impl TxnRange for TxnRangeService {
    async fn prewrite(
        &self,
        request: Request<PrewriteRequest>,
    ) -> Result<Response<PrewriteResponse>, Status> {
        serve(&self.ops, "Prewrite", request, async |req, ctx| {
            self.ops.prewrite(req, ctx).await
        })
        .await
    }

    async fn acquire_locks(
        &self,
        request: Request<AcquireLocksRequest>,
    ) -> Result<Response<AcquireLocksResponse>, Status> {
        serve(&self.ops, "AcquireLocks", request, async |req, ctx| {
            self.ops.acquire_locks(req, ctx).await
        })
        .await
    }

    async fn commit_keys(
        &self,
        request: Request<CommitKeysRequest>,
    ) -> Result<Response<CommitKeysResponse>, Status> {
        serve(&self.ops, "CommitKeys", request, async |req, ctx| {
            self.ops.commit_keys(req, ctx).await
        })
        .await
    }

    async fn rollback_keys(
        &self,
        request: Request<RollbackKeysRequest>,
    ) -> Result<Response<RollbackKeysResponse>, Status> {
        serve(&self.ops, "RollbackKeys", request, async |req, ctx| {
            self.ops.rollback_keys(req, ctx).await
        })
        .await
    }

    async fn check_status(
        &self,
        request: Request<CheckStatusRequest>,
    ) -> Result<Response<CheckStatusResponse>, Status> {
        serve(&self.ops, "CheckStatus", request, async |req, ctx| {
            self.ops.check_status(req, ctx).await
        })
        .await
    }

    async fn keep_alive(
        &self,
        request: Request<KeepAliveRequest>,
    ) -> Result<Response<KeepAliveResponse>, Status> {
        serve(&self.ops, "KeepAlive", request, async |req, ctx| {
            self.ops.keep_alive(req, ctx).await
        })
        .await
    }

    async fn wait_for(
        &self,
        request: Request<WaitForRequest>,
    ) -> Result<Response<WaitForResponse>, Status> {
        serve(&self.ops, "WaitFor", request, async |req, ctx| {
            self.ops.wait_for(req, ctx).await
        })
        .await
    }
}
