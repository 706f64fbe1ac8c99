//! The client KV API (kv.proto) over the node's operations.

use tonic::{Request, Response, Status};
use zdb_proto::v1::kv_server::Kv;
use zdb_proto::v1::*;

use super::call::serve;
use crate::ops::Ops;

pub struct KvService {
    ops: Ops,
}

impl KvService {
    pub fn new(ops: Ops) -> Self {
        KvService { ops }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        serve(&self.ops, "Get", request, async |req, ctx| {
            self.ops.get(req, ctx).await
        })
        .await
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        serve(&self.ops, "Put", request, async |req, ctx| {
            self.ops.put(req, ctx).await
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        serve(&self.ops, "Delete", request, async |req, ctx| {
            self.ops.delete(req, ctx).await
        })
        .await
    }

    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        serve(&self.ops, "Scan", request, async |req, ctx| {
            self.ops.scan(req, ctx).await
        })
        .await
    }

    async fn batch_get(
        &self,
        request: Request<BatchGetRequest>,
    ) -> Result<Response<BatchGetResponse>, Status> {
        serve(&self.ops, "BatchGet", request, async |req, ctx| {
            self.ops.batch_get(req, ctx).await
        })
        .await
    }

    async fn batch_write(
        &self,
        request: Request<BatchWriteRequest>,
    ) -> Result<Response<BatchWriteResponse>, Status> {
        serve(&self.ops, "BatchWrite", request, async |req, ctx| {
            self.ops.batch_write(req, ctx).await
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        request: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        serve(&self.ops, "CompareAndSwap", request, async |req, ctx| {
            self.ops.compare_and_swap(req, ctx).await
        })
        .await
    }

    async fn locate(
        &self,
        request: Request<LocateRequest>,
    ) -> Result<Response<LocateResponse>, Status> {
        serve(&self.ops, "Locate", request, async |req, ctx| {
            self.ops.locate(req, ctx).await
        })
        .await
    }

    async fn now(&self, request: Request<NowRequest>) -> Result<Response<NowResponse>, Status> {
        serve(&self.ops, "Now", request, async |req, ctx| {
            self.ops.now(req, ctx).await
        })
        .await
    }

    async fn exists(
        &self,
        request: Request<ExistsRequest>,
    ) -> Result<Response<ExistsResponse>, Status> {
        serve(&self.ops, "Exists", request, async |req, ctx| {
            self.ops.exists(req, ctx).await
        })
        .await
    }

    async fn count(
        &self,
        request: Request<CountRequest>,
    ) -> Result<Response<CountResponse>, Status> {
        serve(&self.ops, "Count", request, async |req, ctx| {
            self.ops.count(req, ctx).await
        })
        .await
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        serve(&self.ops, "DeleteRange", request, async |req, ctx| {
            self.ops.delete_range(req, ctx).await
        })
        .await
    }

    async fn update(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, Status> {
        serve(&self.ops, "Update", request, async |req, ctx| {
            self.ops.update(req, ctx).await
        })
        .await
    }
}
