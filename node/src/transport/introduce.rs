use std::collections::BTreeMap;
use std::time::Duration;

use tonic::transport::Endpoint;
use tonic::Code;
use zdb_proto::v1::raft_transport_client::RaftTransportClient;
use zdb_proto::v1::PeerHeader;

use crate::error::{Error, Result};

/// Introduces a node with a new data directory to the peers that are up.
/// A peer that knew this node id under another store id refuses: the node
/// lost its data and must not take part (it could vote twice in a term).
/// Peers that are down are skipped; they refuse the node's traffic later.
pub async fn introduce(
    cluster_id: &str,
    node_id: u64,
    store_id: &str,
    peers: &BTreeMap<u64, String>,
) -> Result<()> {
    for (&peer_id, address) in peers.iter().filter(|(&id, _)| id != node_id) {
        let Ok(endpoint) = Endpoint::from_shared(format!("http://{address}")) else {
            return Err(Error::Config(format!(
                "peer {peer_id} has an invalid address {address:?}"
            )));
        };
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2));
        let Ok(channel) = endpoint.connect().await else {
            continue;
        };
        let header = PeerHeader {
            cluster_id: cluster_id.to_owned(),
            from_node_id: node_id,
            from_store_id: store_id.to_owned(),
            to_node_id: peer_id,
        };
        match RaftTransportClient::new(channel).hello(header).await {
            Err(status) if status.code() == Code::FailedPrecondition => {
                return Err(Error::IdentityChanged { node_id });
            }
            Err(status) => {
                tracing::debug!(peer_id, %status, "peer did not answer the introduction")
            }
            Ok(_) => {}
        }
    }
    Ok(())
}
