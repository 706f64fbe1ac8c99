//! Node administration (admin.proto).

use tonic::{Request, Response, Status};
use zdb_proto::v1::admin_server::Admin;
use zdb_proto::v1::{NodeStatusRequest, NodeStatusResponse};

use crate::store::StoreHandle;

pub struct AdminService {
    node_id: u64,
    address: String,
    cluster_id: String,
    store: StoreHandle,
}

impl AdminService {
    pub fn new(node_id: u64, address: String, cluster_id: String, store: StoreHandle) -> Self {
        AdminService {
            node_id,
            address,
            cluster_id,
            store,
        }
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
        Ok(Response::new(NodeStatusResponse {
            node_id: self.node_id,
            address: self.address.clone(),
            cluster_id: self.cluster_id.clone(),
            replicas,
        }))
    }
}
