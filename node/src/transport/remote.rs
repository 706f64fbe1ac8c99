//! Calls this node makes on another node's client and admin APIs: requests
//! forwarded to a range's leader, and the meta range's reads and writes made
//! through its leader. The rest of the node sees requests, responses and
//! typed errors, never gRPC.

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Code, Status};
use zdb_proto::v1::admin_client::AdminClient;
use zdb_proto::v1::kv_client::KvClient;
use zdb_proto::v1::*;

use super::Dialer;
use crate::error::{Error, Result};

/// Request metadata: how many nodes have forwarded the request already.
pub const HOPS_METADATA: &str = "zdb-forward-hops";

#[derive(Clone)]
pub struct Remote {
    pub(super) dialer: Dialer,
}

/// A gRPC failure as the node passes it on: the remote node's status,
/// unless the connection could not even be made (then nothing was sent).
pub(super) fn from_status(address: &str, status: Status) -> Error {
    if never_sent(&status) {
        return Error::NotApplied("the node the request was for could not be reached");
    }
    Error::Remote {
        code: status.code() as i32,
        message: format!("{address}: {}", status.message()),
        details: status.details().to_vec(),
    }
}

/// tonic reports a connection it could not make as a `ConnectError` in the
/// status's source chain.
fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl Remote {
    pub fn new(dialer: Dialer) -> Self {
        Remote { dialer }
    }

    pub(super) fn request<T>(message: T, hops: u32, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        request.metadata_mut().insert(HOPS_METADATA, hops.into());
        request
    }

    async fn kv<Req, Resp, F, Fut>(
        &self,
        address: &str,
        hops: u32,
        timeout: Duration,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        F: FnOnce(KvClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, Status>>,
    {
        let client = KvClient::new(self.dialer.channel(address)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        call(client, Self::request(message, hops, timeout))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| from_status(address, status))
    }

    async fn admin<Req, Resp, F, Fut>(
        &self,
        address: &str,
        timeout: Duration,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        F: FnOnce(AdminClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, Status>>,
    {
        let client = AdminClient::new(self.dialer.channel(address)?);
        call(client, Self::request(message, 1, timeout))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| from_status(address, status))
    }

    pub async fn get(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: GetRequest,
    ) -> Result<GetResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.get(r).await
        })
        .await
    }

    pub async fn put(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: PutRequest,
    ) -> Result<PutResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.put(r).await
        })
        .await
    }

    pub async fn delete(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: DeleteRequest,
    ) -> Result<DeleteResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.delete(r).await
        })
        .await
    }

    pub async fn scan(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: ScanRequest,
    ) -> Result<ScanResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.scan(r).await
        })
        .await
    }

    pub async fn batch_get(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: BatchGetRequest,
    ) -> Result<BatchGetResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.batch_get(r).await
        })
        .await
    }

    pub async fn batch_write(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: BatchWriteRequest,
    ) -> Result<BatchWriteResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.batch_write(r).await
        })
        .await
    }

    pub async fn compare_and_swap(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: CompareAndSwapRequest,
    ) -> Result<CompareAndSwapResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.compare_and_swap(r).await
        })
        .await
    }

    pub async fn exists(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: ExistsRequest,
    ) -> Result<ExistsResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.exists(r).await
        })
        .await
    }

    pub async fn count(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: CountRequest,
    ) -> Result<CountResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.count(r).await
        })
        .await
    }

    pub async fn delete_range(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.delete_range(r).await
        })
        .await
    }

    pub async fn update(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: UpdateRequest,
    ) -> Result<UpdateResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.update(r).await
        })
        .await
    }

    pub async fn locate(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: LocateRequest,
    ) -> Result<LocateResponse> {
        self.kv(to, hops, timeout, req, |mut kv, r| async move {
            kv.locate(r).await
        })
        .await
    }

    pub async fn now(&self, to: &str, timeout: Duration, req: NowRequest) -> Result<NowResponse> {
        self.kv(
            to,
            1,
            timeout,
            req,
            |mut kv, r| async move { kv.now(r).await },
        )
        .await
    }

    pub async fn gc_status(&self, to: &str, timeout: Duration) -> Result<GcStatusResponse> {
        self.admin(to, timeout, GcStatusRequest {}, |mut admin, r| async move {
            admin.gc_status(r).await
        })
        .await
    }

    pub async fn set_gc_life_time(
        &self,
        to: &str,
        timeout: Duration,
        req: SetGcLifeTimeRequest,
    ) -> Result<SetGcLifeTimeResponse> {
        self.admin(to, timeout, req, |mut admin, r| async move {
            admin.set_gc_life_time(r).await
        })
        .await
    }

    pub async fn cache_settings(&self, to: &str, timeout: Duration) -> Result<CacheSettings> {
        self.admin(
            to,
            timeout,
            CacheSettingsRequest {},
            |mut admin, r| async move { admin.cache_settings_read(r).await },
        )
        .await
    }

    pub async fn set_cache_policy(
        &self,
        to: &str,
        timeout: Duration,
        req: SetCachePolicyRequest,
    ) -> Result<CacheStatusResponse> {
        self.admin(to, timeout, req, |mut admin, r| async move {
            admin.set_cache_policy(r).await
        })
        .await
    }

    pub async fn evict_range(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: EvictRangeRequest,
    ) -> Result<EvictRangeResponse> {
        let client = AdminClient::new(self.dialer.channel(to)?);
        let mut admin = client;
        admin
            .evict_range(Self::request(req, hops, timeout))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| from_status(to, status))
    }

    pub async fn security_catalog(&self, to: &str, timeout: Duration) -> Result<SecurityCatalog> {
        self.admin(
            to,
            timeout,
            SecurityCatalogRequest {},
            |mut admin, r| async move { admin.security_catalog_read(r).await },
        )
        .await
    }

    pub async fn security_change(
        &self,
        to: &str,
        timeout: Duration,
        change: SecurityCommand,
    ) -> Result<UserChangeResponse> {
        self.admin(to, timeout, change, |mut admin, r| async move {
            admin.security_change(r).await
        })
        .await
    }

    pub async fn list_nodes(&self, to: &str, timeout: Duration) -> Result<ListNodesResponse> {
        self.admin(
            to,
            timeout,
            ListNodesRequest {},
            |mut admin, r| async move { admin.list_nodes(r).await },
        )
        .await
    }

    pub async fn node_status(&self, to: &str, timeout: Duration) -> Result<NodeStatusResponse> {
        self.admin(
            to,
            timeout,
            NodeStatusRequest {},
            |mut admin, r| async move { admin.node_status(r).await },
        )
        .await
    }

    pub async fn join(
        &self,
        to: &str,
        timeout: Duration,
        req: JoinRequest,
    ) -> Result<JoinResponse> {
        self.admin(to, timeout, req, |mut admin, r| async move {
            admin.join(r).await
        })
        .await
    }

    pub async fn set_node_state(
        &self,
        to: &str,
        timeout: Duration,
        req: SetNodeStateRequest,
    ) -> Result<SetNodeStateResponse> {
        self.admin(to, timeout, req, |mut admin, r| async move {
            admin.set_node_state(r).await
        })
        .await
    }

    pub async fn set_node_zone(
        &self,
        to: &str,
        timeout: Duration,
        req: SetNodeZoneRequest,
    ) -> Result<SetNodeZoneResponse> {
        self.admin(to, timeout, req, |mut admin, r| async move {
            admin.set_node_zone(r).await
        })
        .await
    }

    pub async fn update_meta(
        &self,
        to: &str,
        timeout: Duration,
        req: UpdateMetaRequest,
    ) -> Result<UpdateMetaResponse> {
        self.admin(to, timeout, req, |mut admin, r| async move {
            admin.update_meta(r).await
        })
        .await
    }

    pub async fn allocate_range_id(
        &self,
        to: &str,
        timeout: Duration,
    ) -> Result<AllocateRangeIdResponse> {
        self.admin(
            to,
            timeout,
            AllocateRangeIdRequest {},
            |mut admin, r| async move { admin.allocate_range_id(r).await },
        )
        .await
    }
}

impl Error {
    /// The typed zdb error a remote node returned, if any.
    pub fn remote_kind(&self) -> Option<error::Kind> {
        match self {
            Error::Remote { details, .. } => zdb_proto::decode_error_details(details)?.kind,
            _ => None,
        }
    }

    /// The gRPC code of an error a remote node returned.
    pub fn remote_code(&self) -> Option<Code> {
        match self {
            Error::Remote { code, .. } => Some(Code::from_i32(*code)),
            _ => None,
        }
    }
}
