//! Node administration: status, splits, the node registry, joining, and
//! the meta range's node-to-node calls.

use std::time::Duration;

use zdb_proto::v1::*;

use super::{range_stats, CallContext, Ops};
use crate::apply::Outcome;
use crate::error::{Error, Result};
use crate::meta::META_RANGE_ID;
use crate::store::msg::Target;

const SPLIT_TIMEOUT: Duration = Duration::from_secs(10);

impl Ops {
    /// This node's replica of `range_id`, which must lead its range.
    pub(super) async fn led_range(&self, range_id: u64) -> Result<RangeDescriptor> {
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
        range: &RangeDescriptor,
        kind: command::Kind,
        timeout: Duration,
    ) -> Result<Outcome> {
        let target = Target {
            header: Some(RequestHeader {
                range_id: range.range_id,
                epoch: range.epoch,
            }),
            ..Target::default()
        };
        let command = Command {
            kind: Some(kind),
            ..Default::default()
        };
        self.store.propose(target, command, timeout).await
    }

    pub async fn node_status(&self) -> Result<NodeStatusResponse> {
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
        .map_err(|err| Error::Transport(format!("status measurement failed: {err}")))??;
        let identity = &self.identity;
        Ok(NodeStatusResponse {
            node_id: identity.node_id,
            address: identity.address.clone(),
            cluster_id: identity.cluster_id.clone(),
            replica_count: replicas.len() as u64,
            leader_count: replicas
                .iter()
                .filter(|r| r.role == RaftRole::Leader as i32)
                .count() as u64,
            replicas,
            encryption: Some(self.encryption_status()),
        })
    }

    /// Which keys this node encrypts with, if it does.
    pub fn encryption_status(&self) -> EncryptionStatus {
        let Some(ring) = self.engine.key_ring() else {
            return EncryptionStatus::default();
        };
        let status = ring.status();
        EncryptionStatus {
            enabled: true,
            master_key_id: status.master_key_id,
            data_key_id: status.current_key_id,
            data_key_created_at_ms: status.current_key_created_at_ms,
            data_keys: status.data_keys as u32,
        }
    }

    /// Makes a new data key current on this node (a synced write of the
    /// key file, off the async threads).
    pub async fn rotate_data_key(&self) -> Result<RotateDataKeyResponse> {
        let Some(ring) = self.engine.key_ring().cloned() else {
            return Err(Error::FailedPrecondition(format!(
                "node {} does not encrypt data at rest (start it with --encryption-key-file)",
                self.identity.node_id
            )));
        };
        tokio::task::spawn_blocking(move || ring.rotate())
            .await
            .map_err(|err| Error::Config(format!("the rotation task failed: {err}")))??;
        Ok(RotateDataKeyResponse {
            encryption: Some(self.encryption_status()),
        })
    }

    /// Splits a range at a key (or at the key that halves it by size) and
    /// answers once the routing table records both halves, so the next
    /// range listing shows them.
    pub async fn split_range(&self, req: SplitRangeRequest) -> Result<SplitRangeResponse> {
        self.admit()?;
        let range = self.led_range(req.range_id).await?;
        let split_key = if req.split_key.is_empty() {
            let engine = self.engine.clone();
            let span = range.clone();
            tokio::task::spawn_blocking(move || range_stats::middle_key(&engine, &span))
                .await
                .map_err(|err| Error::Transport(format!("split key search failed: {err}")))??
                .ok_or_else(|| {
                    Error::FailedPrecondition(format!(
                        "range {} holds too few keys to split by size; name a split key",
                        range.range_id
                    ))
                })?
        } else {
            req.split_key
        };
        if !crate::range::descriptor::contains(&range, &split_key) {
            // The caller's view of the ranges is stale: a typed error lets it refresh.
            return Err(Error::KeyNotInRange {
                key: split_key,
                range: Box::new(range),
            });
        }
        if split_key == range.start_key {
            return Err(Error::InvalidArgument(format!(
                "{:?} already starts range {}; nothing to split",
                String::from_utf8_lossy(&split_key),
                range.range_id
            )));
        }
        let new_range_id = self.meta.allocate_range_id().await?;
        let split = command::Kind::Split(SplitCommand {
            split_key,
            new_range_id,
        });
        match self.propose_to(&range, split, SPLIT_TIMEOUT).await? {
            Outcome::Split { left, right } => {
                self.meta
                    .update(vec![left.clone(), right.clone()])
                    .await
                    .map_err(|err| {
                        tracing::warn!(error = %err, "split applied; routing table update failed");
                        Error::Timeout(
                            "the split applied but the routing table did not record it in time; \
                         it will within seconds (each range's leader reports it)",
                        )
                    })?;
                Ok(SplitRangeResponse {
                    left: Some(left),
                    right: Some(right),
                })
            }
            other => Err(Error::Transport(format!(
                "unexpected split result {other:?}"
            ))),
        }
    }

    pub async fn update_meta(&self, req: UpdateMetaRequest) -> Result<UpdateMetaResponse> {
        let kind = command::Kind::MetaUpdate(MetaUpdateCommand { ranges: req.ranges });
        self.propose_meta(kind).await?;
        Ok(UpdateMetaResponse {})
    }

    pub async fn allocate_range_id(&self) -> Result<AllocateRangeIdResponse> {
        let kind = command::Kind::AllocateRangeId(AllocateRangeIdCommand {});
        match self.propose_meta(kind).await? {
            Outcome::RangeId(range_id) => Ok(AllocateRangeIdResponse { range_id }),
            other => Err(Error::Transport(format!(
                "unexpected allocation result {other:?}"
            ))),
        }
    }

    /// A system command for the meta range, which this node must lead.
    async fn propose_meta(&self, kind: command::Kind) -> Result<Outcome> {
        let target = Target {
            header: Some(RequestHeader {
                range_id: META_RANGE_ID,
                epoch: None,
            }),
            ..Target::default()
        };
        let command = Command {
            kind: Some(kind),
            ..Default::default()
        };
        self.store.propose(target, command, SPLIT_TIMEOUT).await
    }

    /// Every node's id, address and state, as the meta range's leader has it.
    pub async fn list_nodes(&self, ctx: &CallContext) -> Result<ListNodesResponse> {
        Ok(ListNodesResponse {
            nodes: self.meta_for(ctx).registry().await?,
        })
    }

    /// Marks a node active, draining or decommissioned (refused for a node
    /// the registry does not know, decided by the meta range itself).
    pub async fn set_node_state(
        &self,
        req: SetNodeStateRequest,
        ctx: &CallContext,
    ) -> Result<SetNodeStateResponse> {
        NodeState::try_from(req.state)
            .map_err(|_| Error::InvalidArgument(format!("unknown node state {}", req.state)))?;
        self.meta_for(ctx)
            .set_node_state(req.node_id, req.state)
            .await
            .map_err(|err| match err {
                Error::FailedPrecondition(reason) => Error::NotFound(reason),
                other => other,
            })?;
        Ok(SetNodeStateResponse {})
    }

    /// Records the zone a node runs in (refused for a node the registry does
    /// not know).
    pub async fn set_node_zone(
        &self,
        req: SetNodeZoneRequest,
        ctx: &CallContext,
    ) -> Result<SetNodeZoneResponse> {
        if req.zone.len() > 253 || req.zone.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(
                "a zone is at most 253 printable characters".into(),
            ));
        }
        self.meta_for(ctx)
            .set_node_zone(req.node_id, &req.zone)
            .await
            .map_err(|err| match err {
                Error::FailedPrecondition(reason) => Error::NotFound(reason),
                other => other,
            })?;
        Ok(SetNodeZoneResponse {})
    }

    /// A new node joins (node id 0: it gets a fresh id), or a member
    /// announces where it serves.
    pub async fn join(&self, req: JoinRequest, ctx: &CallContext) -> Result<JoinResponse> {
        if !is_host_port(&req.address) {
            return Err(Error::InvalidArgument(format!(
                "join address {:?} is not HOST:PORT",
                req.address
            )));
        }
        let meta = self.meta_for(ctx);
        let node_id = meta
            .register_node(&req.address, req.node_id, &req.zone)
            .await?;
        let cluster_id = self.identity.cluster_id.clone();
        if req.node_id != 0 {
            return Ok(JoinResponse {
                node_id,
                cluster_id,
                nodes: Vec::new(),
            });
        }
        self.peers.learn(node_id, &req.address);
        let mut nodes = meta.registry().await.unwrap_or_default();
        if !nodes.iter().any(|n| n.node_id == node_id) {
            nodes.push(NodeAddress {
                node_id,
                address: req.address,
                state: NodeState::Active as i32,
                zone: req.zone,
            });
        }
        tracing::info!(node_id, "registered a joining node");
        Ok(JoinResponse {
            node_id,
            cluster_id,
            nodes,
        })
    }

    /// The ranges holding a key and those after it, or one range by id, as
    /// the meta range's leader knows them.
    pub async fn locate(&self, req: LocateRequest, ctx: &CallContext) -> Result<LocateResponse> {
        let meta = self.meta_for(ctx);
        if req.range_id != 0 {
            return meta.locate_range(req.range_id).await;
        }
        meta.locate(&req.key, req.limit as usize).await
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
mod tests {
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
