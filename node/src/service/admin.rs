//! Node administration (admin.proto): status, splits, and the meta range's
//! node-to-node calls.

use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use tonic::{Request, Response, Status};
use zdb_proto::v1::admin_server::Admin;
use zdb_proto::v1::*;

use super::range_stats::{self, SizeCache};
use crate::cluster::MetaClient;
use crate::engine::Engine;
use crate::error::Error;
use crate::range::apply::ApplyResult;
use crate::range::meta::META_RANGE_ID;
use crate::store::msg::Target;
use crate::store::StoreHandle;
use crate::transport::PeerDirectory;

const SPLIT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AdminService {
    node_id: u64,
    address: String,
    cluster_id: String,
    store: StoreHandle,
    engine: Engine,
    peers: Arc<PeerDirectory>,
    meta: MetaClient,
    sizes: Arc<SizeCache>,
}

impl AdminService {
    pub fn new(
        node_id: u64,
        address: String,
        cluster_id: String,
        store: StoreHandle,
        engine: Engine,
        peers: Arc<PeerDirectory>,
    ) -> Self {
        AdminService {
            node_id,
            address,
            cluster_id,
            meta: MetaClient::new(store.clone(), peers.clone()),
            store,
            engine,
            peers,
            sizes: Arc::default(),
        }
    }

    /// This node's replica of `range_id`, which must lead its range.
    async fn led_range(&self, range_id: u64) -> Result<RangeDescriptor, Error> {
        let replica = self
            .store
            .status()
            .await?
            .into_iter()
            .find(|replica| {
                replica
                    .range
                    .as_ref()
                    .is_some_and(|r| r.range_id == range_id)
            })
            .ok_or(Error::RangeNotFound(range_id))?;
        if replica.role != RaftRole::Leader as i32 {
            return Err(Error::NotLeader {
                range_id,
                leader_id: replica.leader_id,
                leader_address: self.peers.address(replica.leader_id).unwrap_or_default(),
            });
        }
        replica.range.ok_or(Error::RangeNotFound(range_id))
    }

    async fn propose_to(
        &self,
        range_id: u64,
        kind: command::Kind,
        timeout: Duration,
    ) -> Result<ApplyResult, Error> {
        let target = Target {
            header: Some(RequestHeader {
                range_id,
                epoch: None,
            }),
            ..Target::default()
        };
        self.store
            .propose(
                target,
                Command {
                    now_ms: 0,
                    kind: Some(kind),
                },
                timeout,
            )
            .await
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
        let engine = self.engine.clone();
        let sizes = self.sizes.clone();
        let replicas = tokio::task::spawn_blocking(move || {
            // Sizes cost a scan of the range: only leaders measure, and only
            // leaders' figures are read (placement, `zdbctl ranges`).
            for replica in &mut replicas {
                if replica.role != RaftRole::Leader as i32 {
                    continue;
                }
                if let Some(range) = &replica.range {
                    let size = sizes.get_or_measure(&engine, range)?;
                    replica.approximate_keys = size.keys;
                    replica.approximate_bytes = size.bytes;
                }
            }
            Ok::<_, Error>(replicas)
        })
        .await
        .map_err(|err| Status::internal(err.to_string()))??;
        Ok(Response::new(NodeStatusResponse {
            node_id: self.node_id,
            address: self.address.clone(),
            cluster_id: self.cluster_id.clone(),
            replica_count: replicas.len() as u64,
            leader_count: replicas
                .iter()
                .filter(|r| r.role == RaftRole::Leader as i32)
                .count() as u64,
            replicas,
        }))
    }

    async fn split_range(
        &self,
        request: Request<SplitRangeRequest>,
    ) -> Result<Response<SplitRangeResponse>, Status> {
        let request = request.into_inner();
        let range = self.led_range(request.range_id).await?;
        let split_key = if request.split_key.is_empty() {
            let engine = self.engine.clone();
            let span = range.clone();
            tokio::task::spawn_blocking(move || range_stats::middle_key(&engine, &span))
                .await
                .map_err(|err| Status::internal(err.to_string()))??
                .ok_or_else(|| {
                    Status::failed_precondition(format!(
                        "range {} holds too few keys to split by size; name a split key",
                        range.range_id
                    ))
                })?
        } else {
            request.split_key
        };
        if !crate::range::descriptor::contains(&range, &split_key) {
            // The caller's view of the ranges is stale: a typed error lets it refresh.
            return Err(Error::KeyNotInRange {
                key: split_key,
                range: Box::new(range),
            }
            .into());
        }
        if split_key == range.start_key {
            return Err(Status::invalid_argument(format!(
                "{:?} already starts range {}; nothing to split",
                String::from_utf8_lossy(&split_key),
                range.range_id
            )));
        }
        let new_range_id = self.meta.allocate_range_id().await?;
        let split = command::Kind::Split(SplitCommand {
            split_key,
            new_range_id,
            expected_epoch: range.epoch,
        });
        match self
            .propose_to(range.range_id, split, SPLIT_TIMEOUT)
            .await?
        {
            ApplyResult::Split { left, right } => {
                // Best effort: the range reporter repairs the table if this fails.
                if let Err(err) = self.meta.update(vec![left.clone(), right.clone()]).await {
                    tracing::warn!(error = %err, "split applied; routing table update deferred");
                }
                Ok(Response::new(SplitRangeResponse {
                    left: Some(left),
                    right: Some(right),
                }))
            }
            ApplyResult::Refused(reason) => Err(Status::failed_precondition(format!(
                "{reason}; retry the split"
            ))),
            other => Err(Status::internal(format!(
                "unexpected split result {other:?}"
            ))),
        }
    }

    async fn update_meta(
        &self,
        request: Request<UpdateMetaRequest>,
    ) -> Result<Response<UpdateMetaResponse>, Status> {
        let ranges = request.into_inner().ranges;
        let kind = command::Kind::MetaUpdate(MetaUpdateCommand { ranges });
        self.propose_to(META_RANGE_ID, kind, SPLIT_TIMEOUT).await?;
        Ok(Response::new(UpdateMetaResponse {}))
    }

    async fn allocate_range_id(
        &self,
        _request: Request<AllocateRangeIdRequest>,
    ) -> Result<Response<AllocateRangeIdResponse>, Status> {
        let kind = command::Kind::AllocateRangeId(AllocateRangeIdCommand {});
        match self.propose_to(META_RANGE_ID, kind, SPLIT_TIMEOUT).await? {
            ApplyResult::RangeId(range_id) => {
                Ok(Response::new(AllocateRangeIdResponse { range_id }))
            }
            other => Err(Status::internal(format!(
                "unexpected allocation result {other:?}"
            ))),
        }
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        let TransferLeaderRequest { range_id, node_id } = request.into_inner();
        let range = self.led_range(range_id).await?;
        if !range
            .replicas
            .iter()
            .any(|r| r.node_id == node_id && !r.learner)
        {
            return Err(Status::invalid_argument(format!(
                "node {node_id} holds no voting replica of range {range_id}"
            )));
        }
        self.store.transfer_leader(range_id, node_id).await?;
        self.wait_until(MEMBERSHIP_TIMEOUT, "the leadership transfer", || async {
            let status = self.store.status().await.ok()?;
            let replica = status
                .into_iter()
                .find(|r| r.range.as_ref().is_some_and(|d| d.range_id == range_id))?;
            (replica.leader_id == node_id).then_some(())
        })
        .await?;
        Ok(Response::new(TransferLeaderResponse {}))
    }

    async fn add_replica(
        &self,
        request: Request<AddReplicaRequest>,
    ) -> Result<Response<AddReplicaResponse>, Status> {
        let AddReplicaRequest { range_id, node_id } = request.into_inner();
        let range = self.led_range(range_id).await?;
        let registry = crate::range::meta::registry(&self.engine)?;
        match registry.iter().find(|n| n.node_id == node_id) {
            None => {
                return Err(Status::failed_precondition(format!(
                    "node {node_id} is not registered in the cluster; start it with --join first"
                )))
            }
            Some(node) if node.state != NodeState::Active as i32 => {
                return Err(Status::failed_precondition(format!(
                    "node {node_id} is {}; it takes no new replicas",
                    NodeState::try_from(node.state).map_or("not active", |s| {
                        if s == NodeState::Draining {
                            "draining"
                        } else {
                            "decommissioned"
                        }
                    })
                )))
            }
            Some(_) => {}
        }
        let existing = range.replicas.iter().find(|r| r.node_id == node_id);
        if existing.is_some_and(|r| !r.learner) {
            return Ok(Response::new(AddReplicaResponse { range: Some(range) }));
        }
        if existing.is_none() {
            tracing::info!(range_id, node_id, "adding a learner");
            self.change(
                range_id,
                ConfChangeType::AddLearnerNode,
                node_id,
                ConfChangeTransition::Auto,
            )
            .await?;
        }
        // The learner catches up (by snapshot) before it may vote.
        let target = self.store.progress(range_id).await?.commit_index;
        self.wait_until(CATCH_UP_TIMEOUT, "the new replica to catch up", || async {
            let progress = self.store.progress(range_id).await.ok()?;
            let matched = progress.members.iter().find(|(id, _, _)| *id == node_id)?.1;
            (matched >= target).then_some(())
        })
        .await?;
        tracing::info!(
            range_id,
            node_id,
            "promoting the learner through joint consensus"
        );
        let range = self
            .change(
                range_id,
                ConfChangeType::AddNode,
                node_id,
                ConfChangeTransition::Implicit,
            )
            .await?;
        Ok(Response::new(AddReplicaResponse { range: Some(range) }))
    }

    async fn remove_replica(
        &self,
        request: Request<RemoveReplicaRequest>,
    ) -> Result<Response<RemoveReplicaResponse>, Status> {
        let RemoveReplicaRequest { range_id, node_id } = request.into_inner();
        let range = self.led_range(range_id).await?;
        let Some(replica) = range
            .replicas
            .iter()
            .find(|r| r.node_id == node_id)
            .cloned()
        else {
            return Ok(Response::new(RemoveReplicaResponse { range: Some(range) }));
        };
        if node_id == self.node_id {
            return Err(Status::failed_precondition(format!(
                "node {node_id} leads range {range_id}; transfer the leadership first"
            )));
        }
        if !replica.learner {
            let remaining: Vec<u64> = range
                .replicas
                .iter()
                .filter(|r| !r.learner && r.node_id != node_id)
                .map(|r| r.node_id)
                .collect();
            self.check_live_quorum(range_id, node_id, &remaining)
                .await?;
        }
        let transition = if replica.learner {
            ConfChangeTransition::Auto
        } else {
            ConfChangeTransition::Implicit
        };
        let range = self
            .change(range_id, ConfChangeType::RemoveNode, node_id, transition)
            .await?;
        Ok(Response::new(RemoveReplicaResponse { range: Some(range) }))
    }

    async fn set_node_state(
        &self,
        request: Request<SetNodeStateRequest>,
    ) -> Result<Response<SetNodeStateResponse>, Status> {
        let SetNodeStateRequest { node_id, state } = request.into_inner();
        NodeState::try_from(state)
            .map_err(|_| Status::invalid_argument(format!("unknown node state {state}")))?;
        if !crate::range::meta::registry(&self.engine)?
            .iter()
            .any(|n| n.node_id == node_id)
        {
            return Err(Status::not_found(format!(
                "node {node_id} is not in the registry"
            )));
        }
        self.meta.set_node_state(node_id, state).await?;
        Ok(Response::new(SetNodeStateResponse {}))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        // Linearizable: a state just set is seen (on the meta range's leader).
        let meta = Target {
            header: Some(RequestHeader {
                range_id: META_RANGE_ID,
                epoch: None,
            }),
            ..Target::default()
        };
        self.store
            .read_barrier(
                meta,
                crate::store::msg::ReadKind::Linearizable,
                MEMBERSHIP_TIMEOUT,
            )
            .await?;
        Ok(Response::new(ListNodesResponse {
            nodes: crate::range::meta::registry(&self.engine)?,
        }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let JoinRequest {
            address,
            node_id: member,
        } = request.into_inner();
        if !is_host_port(&address) {
            return Err(Status::invalid_argument(format!(
                "join address {address:?} is not HOST:PORT"
            )));
        }
        let node_id = self.meta.register_node(&address, member).await?;
        if member != 0 {
            return Ok(Response::new(JoinResponse {
                node_id,
                cluster_id: self.cluster_id.clone(),
                nodes: Vec::new(),
            }));
        }
        self.peers.learn(node_id, &address);
        let mut nodes = crate::range::meta::registry(&self.engine)?;
        if !nodes.iter().any(|n| n.node_id == node_id) {
            nodes.push(NodeAddress {
                node_id,
                address,
                state: NodeState::Active as i32,
            });
        }
        tracing::info!(node_id, "registered a joining node");
        Ok(Response::new(JoinResponse {
            node_id,
            cluster_id: self.cluster_id.clone(),
            nodes,
        }))
    }
}

const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(5);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long live voters have to show themselves (several heartbeats).
const LIVENESS_WINDOW: Duration = Duration::from_secs(2);

impl AdminService {
    /// Proposes one membership change and waits until it is complete.
    async fn change(
        &self,
        range_id: u64,
        change_type: ConfChangeType,
        node_id: u64,
        transition: ConfChangeTransition,
    ) -> Result<RangeDescriptor, Status> {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = node_id;
        let mut change = ConfChangeV2::default();
        change.set_transition(transition);
        change.set_changes(vec![single].into());
        let range = match self
            .store
            .change_membership(range_id, change, MEMBERSHIP_TIMEOUT)
            .await?
        {
            ApplyResult::ConfChanged(range) => range,
            other => {
                return Err(Status::internal(format!(
                    "unexpected membership result {other:?}"
                )))
            }
        };
        // Joint consensus is left by an entry the leader proposes itself;
        // the change is complete once that applied. Then the routing table
        // learns the new epoch (the range reporter retries if this fails).
        self.wait_out_of_joint(range_id).await?;
        let range = self.current(range_id).await.unwrap_or(range);
        let _ = self.meta.update(vec![range.clone()]).await;
        Ok(range)
    }

    /// Refuses a change unless a majority of the voters that remain answer
    /// now: each must be heard from after this check began (heartbeats
    /// arrive every few ticks), so a node that died a moment ago counts as dead.
    async fn check_live_quorum(
        &self,
        range_id: u64,
        removing: u64,
        remaining: &[u64],
    ) -> Result<(), Status> {
        let started = std::time::Instant::now();
        let needed = remaining.len() / 2 + 1;
        let deadline = started + LIVENESS_WINDOW;
        loop {
            let heard = self.store.last_heard().await?;
            let live: Vec<u64> = remaining
                .iter()
                .copied()
                .filter(|id| *id == self.node_id || heard.get(id).is_some_and(|at| *at > started))
                .collect();
            if !remaining.is_empty() && live.len() >= needed {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let silent: Vec<u64> = remaining
                    .iter()
                    .copied()
                    .filter(|id| !live.contains(id))
                    .collect();
                return Err(Status::failed_precondition(format!(
                    "removing node {removing} would leave range {range_id} without a live quorum \
                     (voters left: {remaining:?}; not answering: {silent:?}); bring them back or add a replica first"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Joint consensus is left by an entry the leader proposes by itself.
    async fn wait_out_of_joint(&self, range_id: u64) -> Result<(), Status> {
        self.wait_until(
            MEMBERSHIP_TIMEOUT,
            "the membership change to complete",
            || async { (!self.store.progress(range_id).await.ok()?.joint).then_some(()) },
        )
        .await
    }

    async fn current(&self, range_id: u64) -> Option<RangeDescriptor> {
        self.store
            .status()
            .await
            .ok()?
            .into_iter()
            .filter_map(|r| r.range)
            .find(|r| r.range_id == range_id)
    }

    async fn wait_until<F, Fut>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: F,
    ) -> Result<(), Status>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if check().await.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Status::deadline_exceeded(format!(
                    "timed out after {timeout:?} waiting for {what}; check that every node is up and retry"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `HOST:PORT` with an IP address or a DNS name as the host (in Kubernetes
/// nodes advertise a stable DNS name; their pod IP changes on restart).
fn is_host_port(address: &str) -> bool {
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && port.parse::<u16>().is_ok_and(|port| port != 0)
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

#[cfg(test)]
mod host_port_tests {
    use super::is_host_port;

    #[test]
    fn join_addresses_may_be_ips_or_dns_names() {
        for good in [
            "127.0.0.1:7700",
            "[::1]:7700",
            "db-0.db-nodes.prod.svc:7700",
            "localhost:1",
        ] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "",
            "db-0",
            ":7700",
            "host:",
            "host:port",
            "host:70000",
            "a b:1",
            "host:0",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}
