//! Work that needs another range's leader, wherever it is: the meta range's
//! routing table and range id counter, and keeping that table current.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Endpoint;
use zdb_proto::v1::admin_client::AdminClient;
use zdb_proto::v1::{
    command, AllocateRangeIdCommand, AllocateRangeIdRequest, Command, JoinRequest,
    MetaUpdateCommand, NodeStatusRequest, RaftRole, RangeDescriptor, RangeEpoch,
    RegisterNodeCommand, RequestHeader, SetNodeStateCommand, SetNodeStateRequest,
    UpdateMetaRequest,
};

use crate::error::{Error, Result};
use crate::range::apply::ApplyResult;
use crate::range::meta::META_RANGE_ID;
use crate::store::msg::Target;
use crate::store::StoreHandle;
use crate::transport::PeerDirectory;

const META_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often range leaders confirm their descriptors in the routing table.
const REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// Reaches the meta range's leader: the local replica if it leads, or the
/// node it names; from a node without a replica of the meta range, through
/// a node that has one.
#[derive(Clone)]
pub struct MetaClient {
    store: StoreHandle,
    peers: Arc<PeerDirectory>,
}

impl MetaClient {
    pub fn new(store: StoreHandle, peers: Arc<PeerDirectory>) -> Self {
        MetaClient { store, peers }
    }

    /// Addresses of the known nodes that hold a replica of the meta range,
    /// as each reports it (each passes meta calls on to the range's leader).
    pub async fn meta_holders(&self) -> Vec<String> {
        let mut holders = Vec::new();
        for address in self.peers.known_addresses() {
            let Ok(mut admin) = remote(&address).await else {
                continue;
            };
            let Ok(status) = admin.node_status(NodeStatusRequest {}).await else {
                continue;
            };
            let holds_meta = status.into_inner().replicas.iter().any(|replica| {
                replica
                    .range
                    .as_ref()
                    .is_some_and(|range| range.range_id == META_RANGE_ID)
            });
            if holds_meta {
                holders.push(address);
            }
        }
        holders
    }

    fn meta_target() -> Target {
        Target {
            header: Some(RequestHeader {
                range_id: META_RANGE_ID,
                epoch: None,
            }),
            ..Target::default()
        }
    }

    /// Proposes to the meta range here, or returns where its leader is.
    async fn propose_local(&self, kind: command::Kind) -> Result<ApplyResult> {
        let command = Command {
            now_ms: 0,
            kind: Some(kind),
        };
        self.store
            .propose(Self::meta_target(), command, META_CALL_TIMEOUT)
            .await
    }

    /// Proposes `kind` to the meta range here if this node leads it, or
    /// else makes the equivalent admin call on the leader it names; retries
    /// within the deadline while the meta range elects or moves its leader.
    async fn call<T, R, Fut>(
        &self,
        kind: command::Kind,
        local: fn(ApplyResult) -> Option<T>,
        mut on_leader: R,
    ) -> Result<T>
    where
        R: FnMut(AdminClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + META_CALL_TIMEOUT;
        loop {
            match self.propose_local(kind.clone()).await {
                Ok(result) => {
                    return local(result.clone()).ok_or_else(|| {
                        Error::Transport(format!("unexpected meta reply {result:?}"))
                    })
                }
                Err(Error::NotLeader { leader_address, .. }) if !leader_address.is_empty() => {
                    match remote(&leader_address).await {
                        Ok(admin) => match on_leader(admin).await {
                            Ok(value) => return Ok(value),
                            Err(status) => {
                                tracing::debug!(%status, "meta leader refused; retrying")
                            }
                        },
                        Err(err) => {
                            tracing::debug!(error = %err, "meta leader unreachable; retrying")
                        }
                    }
                }
                Err(Error::RangeNotFound(META_RANGE_ID)) => {
                    for address in self.meta_holders().await {
                        let Ok(admin) = remote(&address).await else {
                            continue;
                        };
                        match on_leader(admin).await {
                            Ok(value) => return Ok(value),
                            Err(status) => tracing::debug!(%status, "meta call refused; retrying"),
                        }
                    }
                }
                Err(err) if retryable(&err) => {}
                Err(err) => return Err(err),
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout("the meta range has no reachable leader"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn allocate_range_id(&self) -> Result<u64> {
        let kind = command::Kind::AllocateRangeId(AllocateRangeIdCommand {});
        let local = |result| match result {
            ApplyResult::RangeId(id) => Some(id),
            _ => None,
        };
        self.call(kind, local, |mut admin| async move {
            Ok(admin
                .allocate_range_id(AllocateRangeIdRequest {})
                .await?
                .into_inner()
                .range_id)
        })
        .await
    }

    /// Registers a joining node's address and returns its new node id
    /// (`node_id` 0), or records where member `node_id` serves.
    pub async fn register_node(&self, address: &str, node_id: u64) -> Result<u64> {
        let kind = command::Kind::RegisterNode(RegisterNodeCommand {
            address: address.to_owned(),
            node_id,
        });
        let local = |result| match result {
            ApplyResult::NodeId(id) => Some(id),
            _ => None,
        };
        self.call(kind, local, |mut admin| async move {
            let request = JoinRequest {
                address: address.to_owned(),
                node_id,
            };
            Ok(admin.join(request).await?.into_inner().node_id)
        })
        .await
    }

    /// Records a node's state in the registry.
    pub async fn set_node_state(&self, node_id: u64, state: i32) -> Result<()> {
        let kind = command::Kind::SetNodeState(SetNodeStateCommand { node_id, state });
        self.call(
            kind,
            |_| Some(()),
            |mut admin| async move {
                admin
                    .set_node_state(SetNodeStateRequest { node_id, state })
                    .await?;
                Ok(())
            },
        )
        .await
    }

    /// Records descriptors in the routing table (older epochs are ignored there).
    pub async fn update(&self, ranges: Vec<RangeDescriptor>) -> Result<()> {
        let kind = command::Kind::MetaUpdate(MetaUpdateCommand {
            ranges: ranges.clone(),
        });
        self.call(
            kind,
            |_| Some(()),
            |mut admin| {
                let ranges = ranges.clone();
                async move {
                    admin.update_meta(UpdateMetaRequest { ranges }).await?;
                    Ok(())
                }
            },
        )
        .await
    }
}

/// Records this node's own address in the registry, through Raft, once per
/// start. Founding members wrote the registry from their own `--peers`,
/// which may name the others by a route (a proxy) rather than where they
/// serve; and an address may change between starts.
pub async fn announce_address(
    meta: MetaClient,
    node_id: u64,
    address: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match meta.register_node(&address, node_id).await {
            Ok(_) => {
                tracing::debug!(node_id, %address, "address announced");
                return;
            }
            Err(err) => tracing::debug!(error = %err, "cannot announce this node's address yet"),
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn retryable(err: &Error) -> bool {
    matches!(
        err,
        Error::NotLeader { .. }
            | Error::ProposalDropped
            | Error::Timeout(_)
            | Error::OutcomeUnknown
    )
}

async fn remote(address: &str) -> Result<AdminClient<tonic::transport::Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|err| Error::Transport(err.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(META_CALL_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|err| Error::Transport(format!("{address}: {err}")))?;
    Ok(AdminClient::new(channel))
}

/// Keeps the routing table current: every range this node leads is reported
/// whenever its epoch differs from what was last reported, so a split whose
/// meta update was lost (a crash in between) is repaired within seconds.
pub async fn report_ranges(
    store: StoreHandle,
    meta: MetaClient,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut reported: HashMap<u64, Option<RangeEpoch>> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(REPORT_INTERVAL) => {}
        }
        let Ok(replicas) = store.status().await else {
            return;
        };
        let changed: Vec<RangeDescriptor> = replicas
            .into_iter()
            .filter(|replica| replica.role == RaftRole::Leader as i32)
            .filter_map(|replica| replica.range)
            .filter(|range| reported.get(&range.range_id) != Some(&range.epoch))
            .collect();
        if changed.is_empty() {
            continue;
        }
        match meta.update(changed.clone()).await {
            Ok(()) => {
                for range in changed {
                    reported.insert(range.range_id, range.epoch);
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "could not report ranges to the meta range; will retry")
            }
        }
    }
}
