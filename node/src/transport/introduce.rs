use std::collections::BTreeMap;
use std::time::Duration;

use tonic::Code;
use zdb_proto::v1::admin_client::AdminClient;
use zdb_proto::v1::raft_transport_client::RaftTransportClient;
use zdb_proto::v1::{JoinRequest, JoinResponse, PeerHeader};

use super::Dialer;
use crate::error::{Error, Result};

/// Introduces a node with a new data directory to the peers that are up.
/// A peer that knew this node id under another store id refuses: the node
/// lost its data and must not take part (it could vote twice in a term).
/// Peers that are down are skipped; they refuse the node's traffic later.
pub async fn introduce(
    dialer: &Dialer,
    me: &PeerHeader,
    peers: &BTreeMap<u64, String>,
) -> Result<()> {
    let node_id = me.from_node_id;
    for (&peer_id, address) in peers.iter().filter(|(&id, _)| id != node_id) {
        let channel = match dialer.connect(address).await {
            Ok(channel) => channel,
            Err(Error::Config(reason)) => {
                return Err(Error::Config(format!("peer {peer_id}: {reason}")))
            }
            Err(_) => continue,
        };
        let header = PeerHeader {
            to_node_id: peer_id,
            ..me.clone()
        };
        let mut request = tonic::Request::new(header);
        request.set_timeout(Duration::from_secs(2));
        match RaftTransportClient::new(channel).hello(request).await {
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

/// Asks a member of a running cluster for a node id. Retries until the
/// cluster answers (its meta range may be electing a leader). `seeds` is one
/// `HOST:PORT` or several, comma-separated: each attempt asks the next one,
/// since only a node holding a replica of the meta range can register us.
pub async fn join(dialer: &Dialer, seeds: &str, my_address: &str) -> Result<JoinResponse> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let seeds: Vec<&str> = seeds
        .split(',')
        .map(str::trim)
        .filter(|seed| !seed.is_empty())
        .collect();
    if seeds.is_empty() {
        return Err(Error::Config("--join needs at least one HOST:PORT".into()));
    }
    let mut attempts = 0usize;
    loop {
        let seed = seeds[attempts % seeds.len()];
        attempts += 1;
        let attempt = async {
            let channel = dialer.connect(seed).await.map_err(|err| match err {
                Error::Config(reason) => Error::Config(format!("--join {seed:?}: {reason}")),
                other => other,
            })?;
            // The zone follows once the node runs (it announces itself).
            let mut request = tonic::Request::new(JoinRequest {
                address: my_address.to_owned(),
                ..JoinRequest::default()
            });
            request.set_timeout(Duration::from_secs(5));
            AdminClient::new(channel)
                .join(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| Error::Transport(status.message().to_owned()))
        };
        match attempt.await {
            Ok(joined) => return Ok(joined),
            Err(Error::Config(message)) => return Err(Error::Config(message)),
            Err(err) if std::time::Instant::now() >= deadline => {
                return Err(Error::Config(format!(
                    "could not join through {seed}: {err}"
                )))
            }
            Err(err) => {
                tracing::info!(error = %err, seed, "waiting for the cluster to accept this node");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
