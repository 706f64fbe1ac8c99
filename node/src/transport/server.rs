use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};
use zdb_proto::v1::raft_transport_server::RaftTransport;
use zdb_proto::v1::{
    HelloResponse, PeerHeader, RaftBatch, SnapshotAck, SnapshotChunk, SnapshotData, StreamClosed,
};

use super::{caller_of, PeerDirectory, MAX_SNAPSHOT_BYTES};
use crate::auth::{Guard, Requirement};
use crate::error::Error;
use crate::store::msg::StoreMsg;

/// Receives peers' Raft streams and snapshots and hands them to the store.
pub struct RaftTransportService {
    node_id: u64,
    cluster_id: String,
    peers: Arc<PeerDirectory>,
    store: std_mpsc::Sender<StoreMsg>,
    /// Turns true on shutdown: open streams end, so the server can stop.
    stop: watch::Receiver<bool>,
    /// With TLS on, only peers with a node certificate from the cluster CA
    /// may send Raft messages and snapshots.
    guard: Guard,
}

impl RaftTransportService {
    pub fn new(
        node_id: u64,
        cluster_id: String,
        peers: Arc<PeerDirectory>,
        store: std_mpsc::Sender<StoreMsg>,
        stop: watch::Receiver<bool>,
        guard: Guard,
    ) -> Self {
        RaftTransportService {
            node_id,
            cluster_id,
            peers,
            store,
            stop,
            guard,
        }
    }

    fn check_peer<T>(&self, request: &Request<T>, rpc: &str) -> Result<(), Status> {
        self.guard
            .authorize(&caller_of(request), rpc, &Requirement::Node)
            .map(drop)
            .map_err(Status::from)
    }

    fn check_header(&self, header: Option<&PeerHeader>) -> Result<(), Status> {
        let header = header.ok_or_else(|| {
            Status::invalid_argument("the first message of a stream must carry a peer header")
        })?;
        if header.cluster_id != self.cluster_id {
            return Err(Status::permission_denied(format!(
                "node {} belongs to cluster {:?}, this node to {:?}",
                header.from_node_id, header.cluster_id, self.cluster_id
            )));
        }
        if header.to_node_id != self.node_id {
            return Err(Status::invalid_argument(format!(
                "message for node {} reached node {}: check the peer addresses",
                header.to_node_id, self.node_id
            )));
        }
        match self
            .peers
            .verify_store(header.from_node_id, &header.from_store_id)
        {
            Ok(()) => {
                self.peers.learn(header.from_node_id, &header.from_address);
                Ok(())
            }
            Err(err @ Error::IdentityChanged { .. }) => {
                Err(Status::failed_precondition(err.to_string()))
            }
            Err(err) => Err(Status::internal(err.to_string())),
        }
    }

    fn deliver(&self, messages: Vec<(u64, Message)>) -> Result<(), Status> {
        self.store
            .send(StoreMsg::Raft(messages))
            .map_err(|_| Status::unavailable("node is shutting down"))
    }
}

fn decode(bytes: &[u8]) -> Result<Message, Status> {
    Message::parse_from_bytes(bytes)
        .map_err(|err| Status::invalid_argument(format!("undecodable raft message: {err}")))
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn hello(&self, request: Request<PeerHeader>) -> Result<Response<HelloResponse>, Status> {
        self.check_peer(&request, "RaftTransport/Hello")?;
        self.check_header(Some(request.get_ref()))?;
        Ok(Response::new(HelloResponse {}))
    }

    async fn stream(
        &self,
        request: Request<Streaming<RaftBatch>>,
    ) -> Result<Response<StreamClosed>, Status> {
        self.check_peer(&request, "RaftTransport/Stream")?;
        let mut stream = request.into_inner();
        let mut verified = false;
        let mut stop = self.stop.clone();
        loop {
            let batch = tokio::select! {
                batch = stream.message() => batch?,
                _ = stop.wait_for(|stopped| *stopped) => None,
            };
            let Some(batch) = batch else { break };
            if !verified {
                self.check_header(batch.header.as_ref())?;
                verified = true;
            }
            let messages = batch
                .messages
                .iter()
                .map(|envelope| Ok((envelope.range_id, decode(&envelope.message)?)))
                .collect::<Result<Vec<_>, Status>>()?;
            self.deliver(messages)?;
        }
        Ok(Response::new(StreamClosed {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotAck>, Status> {
        self.check_peer(&request, "RaftTransport/Snapshot")?;
        let mut stream = request.into_inner();
        let mut bytes = Vec::new();
        let mut range_id = None;
        while let Some(chunk) = stream.message().await? {
            if range_id.is_none() {
                self.check_header(chunk.header.as_ref())?;
                range_id = Some(chunk.range_id);
            }
            if bytes.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                return Err(Status::resource_exhausted(
                    "snapshot exceeds the size this node accepts",
                ));
            }
            bytes.extend_from_slice(&chunk.data);
        }
        let range_id = range_id.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let message = decode(&bytes)?;
        // A payload that cannot be installed is refused here, not at install time.
        SnapshotData::decode(message.get_snapshot().get_data()).map_err(|err| {
            Status::invalid_argument(format!("undecodable snapshot payload: {err}"))
        })?;
        tracing::info!(
            range_id,
            bytes = bytes.len(),
            from = message.from,
            "received snapshot"
        );
        self.deliver(vec![(range_id, message)])?;
        Ok(Response::new(SnapshotAck {}))
    }
}
