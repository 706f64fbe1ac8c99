//! The zdb admin calls the reconciler makes, behind a small trait so the
//! reconcile tests can drive scale-down and upgrade scenarios against an
//! in-memory model of the cluster. [`ZdbAdmin`] is the real one, over
//! `zdb-client`, reaching nodes through their headless-Service DNS names
//! (over TLS with the operator's client certificate when the cluster has
//! TLS on; see [`Connection`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use zdb_client::{Client, NodeState as WireNodeState};
use zdb_proto::v1::RaftRole;

use crate::connection::{ClientTls, Connection};

/// A node's state in the cluster's node registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Active,
    Draining,
    Decommissioned,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Active => "Active",
            NodeState::Draining => "Draining",
            NodeState::Decommissioned => "Decommissioned",
        }
    }
}

/// One registered node as the reconciler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node_id: u64,
    pub address: String,
    pub state: NodeState,
    /// Answered its status call just now.
    pub reachable: bool,
    /// Replicas the node holds: its own count when it answers, otherwise the
    /// range descriptors naming it.
    pub replicas: u64,
    pub leaders: u64,
    /// The zone the registry has for the node; empty when unknown.
    pub zone: String,
}

/// One range: its voters and current leader.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeView {
    pub range_id: u64,
    pub voters: Vec<u64>,
    pub leader: u64,
}

/// The cluster as the reconciler sees it in one pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterView {
    /// The id the answering nodes report.
    pub cluster_id: Option<String>,
    pub nodes: Vec<NodeView>,
    pub ranges: Vec<RangeView>,
}

impl ClusterView {
    pub fn node(&self, node_id: u64) -> Option<&NodeView> {
        self.nodes.iter().find(|node| node.node_id == node_id)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct AdminError(pub String);

/// What the reconciler asks of a zdb cluster. `nodes`: the `HOST:PORT`
/// addresses of the cluster's nodes, and how to speak to them.
pub trait ClusterAdmin: Send + Sync {
    /// The node registry, each node's replica and leader counts, the ranges.
    fn observe<'a>(
        &'a self,
        nodes: &'a Connection,
    ) -> BoxFuture<'a, Result<ClusterView, AdminError>>;

    fn set_node_state<'a>(
        &'a self,
        nodes: &'a Connection,
        node_id: u64,
        state: NodeState,
    ) -> BoxFuture<'a, Result<(), AdminError>>;

    /// Moves the leadership of `range_id` to its replica on `to`.
    fn transfer_leader<'a>(
        &'a self,
        nodes: &'a Connection,
        range_id: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), AdminError>>;

    /// Records the zone node `node_id` runs in, for placement.
    fn set_node_zone<'a>(
        &'a self,
        nodes: &'a Connection,
        node_id: u64,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>>;
}

/// One cached client per set of endpoints, with the TLS material it was
/// made with.
type Clients = HashMap<Vec<String>, (Option<ClientTls>, Client)>;

/// The admin API of real clusters, through `zdb-client`. Keeps one client
/// per set of endpoints (connections and caches are reused across passes),
/// replaced when the TLS material changes (a renewed certificate).
pub struct ZdbAdmin {
    timeout: Duration,
    clients: Mutex<Clients>,
}

impl ZdbAdmin {
    pub fn new(timeout: Duration) -> Self {
        ZdbAdmin {
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, nodes: &Connection) -> Result<Client, AdminError> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| AdminError("client cache lock poisoned".into()))?;
        if let Some((tls, client)) = clients.get(&nodes.endpoints) {
            if *tls == nodes.tls {
                return Ok(client.clone());
            }
        }
        let config = nodes.client_config(self.timeout);
        let client = Client::new(config).map_err(|err| AdminError(err.to_string()))?;
        clients.insert(nodes.endpoints.clone(), (nodes.tls.clone(), client.clone()));
        Ok(client)
    }

    async fn observe_with(&self, nodes: &Connection) -> Result<ClusterView, AdminError> {
        let client = self.client(nodes)?;
        let registry = client
            .list_nodes()
            .await
            .map_err(|err| AdminError(format!("listing nodes: {err}")))?;
        let mut view = ClusterView::default();
        let mut ranges: BTreeMap<u64, RangeView> = BTreeMap::new();
        let mut own_counts: HashMap<u64, (u64, u64)> = HashMap::new();
        for entry in &registry {
            let Ok(status) = client.node_status(&entry.address).await else {
                continue;
            };
            // A pod recreated with an empty volume answers at the address of
            // the node it replaced: that node is gone, not reachable.
            if status.node_id != entry.node_id {
                continue;
            }
            if view.cluster_id.is_none() && !status.cluster_id.is_empty() {
                view.cluster_id = Some(status.cluster_id.clone());
            }
            own_counts.insert(entry.node_id, (status.replica_count, status.leader_count));
            for replica in &status.replicas {
                if replica.role != RaftRole::Leader as i32 {
                    continue;
                }
                let Some(range) = &replica.range else {
                    continue;
                };
                ranges.insert(
                    range.range_id,
                    RangeView {
                        range_id: range.range_id,
                        voters: range
                            .replicas
                            .iter()
                            .filter(|r| !r.learner)
                            .map(|r| r.node_id)
                            .collect(),
                        leader: entry.node_id,
                    },
                );
            }
        }
        view.ranges = ranges.into_values().collect();
        view.nodes = registry
            .iter()
            .map(|entry| {
                let in_descriptors = view
                    .ranges
                    .iter()
                    .filter(|range| range.voters.contains(&entry.node_id))
                    .count() as u64;
                let led = view
                    .ranges
                    .iter()
                    .filter(|range| range.leader == entry.node_id)
                    .count() as u64;
                let own = own_counts.get(&entry.node_id).copied();
                NodeView {
                    node_id: entry.node_id,
                    address: entry.address.clone(),
                    state: match WireNodeState::try_from(entry.state) {
                        Ok(WireNodeState::Draining) => NodeState::Draining,
                        Ok(WireNodeState::Decommissioned) => NodeState::Decommissioned,
                        _ => NodeState::Active,
                    },
                    reachable: own.is_some(),
                    replicas: own
                        .map_or(in_descriptors, |(replicas, _)| replicas.max(in_descriptors)),
                    leaders: own.map_or(led, |(_, leaders)| leaders),
                    zone: entry.zone.clone(),
                }
            })
            .collect();
        Ok(view)
    }
}

impl ClusterAdmin for ZdbAdmin {
    fn observe<'a>(
        &'a self,
        nodes: &'a Connection,
    ) -> BoxFuture<'a, Result<ClusterView, AdminError>> {
        Box::pin(self.observe_with(nodes))
    }

    fn set_node_state<'a>(
        &'a self,
        nodes: &'a Connection,
        node_id: u64,
        state: NodeState,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let wire = match state {
                NodeState::Active => WireNodeState::Active,
                NodeState::Draining => WireNodeState::Draining,
                NodeState::Decommissioned => WireNodeState::Decommissioned,
            };
            self.client(nodes)?
                .set_node_state(node_id, wire)
                .await
                .map_err(|err| AdminError(format!("setting node {node_id} {state:?}: {err}")))
        })
    }

    fn transfer_leader<'a>(
        &'a self,
        nodes: &'a Connection,
        range_id: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.client(nodes)?
                .transfer_leader(None, range_id, to)
                .await
                .map_err(|err| {
                    AdminError(format!(
                        "moving the leadership of range {range_id} to node {to}: {err}"
                    ))
                })
        })
    }

    fn set_node_zone<'a>(
        &'a self,
        nodes: &'a Connection,
        node_id: u64,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.client(nodes)?
                .set_node_zone(node_id, zone)
                .await
                .map_err(|err| {
                    AdminError(format!("recording node {node_id}'s zone {zone:?}: {err}"))
                })
        })
    }
}
