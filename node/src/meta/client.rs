//! Reads and writes of the meta range made through its leader, wherever it
//! is: the local replica if it leads, otherwise the node it names, and from
//! a node without a replica of range 1, any node (which passes the call on).
//! Reads are linearizable: what a split or a node state change recorded is
//! seen by the next read, on any node.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zdb_proto::v1::{
    command, AllocateRangeIdCommand, CacheSettings, Command, LocateRequest, LocateResponse,
    MetaUpdateCommand, NodeAddress, NowRequest, RangeDescriptor, RangeLocation,
    RegisterNodeCommand, RequestHeader, SecurityCatalog, SecurityCommand, SetCachePolicyCommand,
    SetCachePolicyRequest, SetGcLifeTimeCommand, SetGcLifeTimeRequest, SetGcSafePointCommand,
    SetNodeStateCommand, SetNodeStateRequest, SetNodeZoneCommand, SetNodeZoneRequest,
    UpdateMetaRequest, WaitForRequest,
};

use zdb_proto::v1::error::Kind;

use super::deadlock::WaitForGraph;
use super::oracle::Oracle;
use super::table::{self, META_RANGE_ID};
use crate::apply::Outcome;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::msg::{ReadKind, Target};
use crate::store::{MetaLease, StoreHandle};
use crate::transport::{PeerDirectory, Remote};

const META_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Most ranges one Locate returns.
pub const MAX_LOCATE: usize = 1000;

#[derive(Clone)]
pub struct MetaClient {
    store: StoreHandle,
    engine: Engine,
    peers: Arc<PeerDirectory>,
    remote: Remote,
    oracle: Arc<Oracle>,
    /// The wait-for graph, used while this node leads the meta range.
    waits: Arc<std::sync::Mutex<WaitForGraph>>,
    /// Whether calls the local replica cannot serve go to other nodes. Off
    /// for calls another node passed on here: they answer from this node
    /// or say where the leader is, so calls never bounce between nodes.
    forward: bool,
}

pub(super) fn meta_target() -> Target {
    Target {
        header: Some(RequestHeader {
            range_id: META_RANGE_ID,
            epoch: None,
        }),
        ..Target::default()
    }
}

/// Worth another attempt within the deadline: the meta range is electing
/// or moving its leader, or the node asked could not be reached.
fn retryable(err: &Error) -> bool {
    match err {
        Error::NotLeader { .. }
        | Error::NotApplied(_)
        | Error::Timeout(_)
        | Error::OutcomeUnknown
        | Error::ShuttingDown
        | Error::RangeNotFound(_) => true,
        Error::Remote { .. } => {
            !matches!(
                err.remote_code(),
                Some(tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition)
            ) || matches!(err.remote_kind(), Some(Kind::NotLeader(_)))
        }
        _ => false,
    }
}

impl MetaClient {
    pub fn new(
        store: StoreHandle,
        engine: Engine,
        peers: Arc<PeerDirectory>,
        remote: Remote,
        meta_lease: Arc<MetaLease>,
    ) -> Self {
        MetaClient {
            oracle: Arc::new(Oracle::new(store.clone(), engine.clone(), meta_lease)),
            waits: Arc::default(),
            store,
            engine,
            peers,
            remote,
            forward: true,
        }
    }

    /// The same client, answering only from this node (for calls that
    /// another node already passed on).
    pub fn local_only(&self) -> MetaClient {
        MetaClient {
            forward: false,
            ..self.clone()
        }
    }

    /// Runs `local` here if this node leads the meta range; otherwise
    /// `remote` on the leader it names, or, without a replica here, on each
    /// known node in turn. Retries within the deadline while the meta range
    /// elects or moves its leader.
    async fn on_leader<T, L, LF, R, RF>(&self, mut local: L, mut remote: R) -> Result<T>
    where
        L: FnMut() -> LF,
        LF: Future<Output = Result<T>>,
        R: FnMut(String) -> RF,
        RF: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + META_CALL_TIMEOUT;
        loop {
            let mut targets = match local().await {
                Ok(value) => return Ok(value),
                Err(err) if !self.forward => return Err(err),
                Err(Error::NotLeader { leader_address, .. }) if !leader_address.is_empty() => {
                    vec![leader_address]
                }
                Err(Error::RangeNotFound(META_RANGE_ID)) => self.peers.known_addresses(),
                Err(err) if retryable(&err) => Vec::new(),
                Err(err) => return Err(err),
            };
            // Follow at most a few redirects per round: leaders move.
            let mut redirects = 0;
            while let Some(address) = targets.pop() {
                match remote(address).await {
                    Ok(value) => return Ok(value),
                    Err(err) => match err.remote_kind() {
                        Some(Kind::NotLeader(not_leader))
                            if !not_leader.leader_address.is_empty() && redirects < 3 =>
                        {
                            redirects += 1;
                            targets.push(not_leader.leader_address);
                        }
                        _ if retryable(&err) => {}
                        _ => return Err(err),
                    },
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout("the meta range has no reachable leader"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Proposes to the meta range here, or returns where its leader is.
    async fn propose_local(&self, kind: command::Kind) -> Result<Outcome> {
        let command = Command {
            kind: Some(kind),
            ..Default::default()
        };
        self.store
            .propose(meta_target(), command, META_CALL_TIMEOUT)
            .await
    }

    /// Waits until this node's copy of the meta range may be read as the
    /// leader's, or returns where the leader is.
    async fn read_local(&self) -> Result<()> {
        self.store
            .read_barrier(meta_target(), ReadKind::Linearizable, 0, META_CALL_TIMEOUT)
            .await
    }

    pub async fn allocate_range_id(&self) -> Result<u64> {
        let kind = command::Kind::AllocateRangeId(AllocateRangeIdCommand {});
        self.on_leader(
            || async {
                match self.propose_local(kind.clone()).await? {
                    Outcome::RangeId(id) => Ok(id),
                    other => Err(unexpected(other)),
                }
            },
            |address| async move {
                let reply = self
                    .remote
                    .allocate_range_id(&address, META_CALL_TIMEOUT)
                    .await?;
                Ok(reply.range_id)
            },
        )
        .await
    }

    /// Registers a joining node's address (and zone, if not empty) and
    /// returns its new node id (`node_id` 0), or records where member
    /// `node_id` serves.
    pub async fn register_node(&self, address: &str, node_id: u64, zone: &str) -> Result<u64> {
        let kind = command::Kind::RegisterNode(RegisterNodeCommand {
            address: address.to_owned(),
            node_id,
            zone: zone.to_owned(),
        });
        self.on_leader(
            || async {
                match self.propose_local(kind.clone()).await? {
                    Outcome::NodeId(id) => Ok(id),
                    other => Err(unexpected(other)),
                }
            },
            |leader| async move {
                let request = zdb_proto::v1::JoinRequest {
                    address: address.to_owned(),
                    node_id,
                    zone: zone.to_owned(),
                };
                Ok(self
                    .remote
                    .join(&leader, META_CALL_TIMEOUT, request)
                    .await?
                    .node_id)
            },
        )
        .await
    }

    /// Records a node's state in the registry (refused for an unknown node).
    pub async fn set_node_state(&self, node_id: u64, state: i32) -> Result<()> {
        let kind = command::Kind::SetNodeState(SetNodeStateCommand { node_id, state });
        self.on_leader(
            || async { self.propose_local(kind.clone()).await.map(drop) },
            |leader| async move {
                let request = SetNodeStateRequest { node_id, state };
                self.remote
                    .set_node_state(&leader, META_CALL_TIMEOUT, request)
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// Records the zone a node runs in (refused for an unknown node).
    pub async fn set_node_zone(&self, node_id: u64, zone: &str) -> Result<()> {
        let kind = command::Kind::SetNodeZone(SetNodeZoneCommand {
            node_id,
            zone: zone.to_owned(),
        });
        self.on_leader(
            || async { self.propose_local(kind.clone()).await.map(drop) },
            |leader| async move {
                let request = SetNodeZoneRequest {
                    node_id,
                    zone: zone.to_owned(),
                };
                self.remote
                    .set_node_zone(&leader, META_CALL_TIMEOUT, request)
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// Records descriptors in the routing table (older epochs are ignored there).
    pub async fn update(&self, ranges: Vec<RangeDescriptor>) -> Result<()> {
        let kind = command::Kind::MetaUpdate(MetaUpdateCommand {
            ranges: ranges.clone(),
        });
        self.on_leader(
            || async { self.propose_local(kind.clone()).await.map(drop) },
            |leader| {
                let request = UpdateMetaRequest {
                    ranges: ranges.clone(),
                };
                async move {
                    self.remote
                        .update_meta(&leader, META_CALL_TIMEOUT, request)
                        .await
                        .map(drop)
                }
            },
        )
        .await
    }

    /// `count` consecutive timestamps from the oracle, wherever the meta
    /// range's leader is; returns the first.
    pub async fn timestamps(&self, count: u32) -> Result<u64> {
        self.on_leader(
            || self.oracle.take(count),
            |leader| async move {
                let request = NowRequest {
                    header: Some(RequestHeader {
                        range_id: META_RANGE_ID,
                        epoch: None,
                    }),
                    count,
                };
                let reply = self.remote.now(&leader, META_CALL_TIMEOUT, request).await?;
                Ok(reply.timestamp)
            },
        )
        .await
    }

    /// Records a lock wait in the cluster's wait-for graph: the cycle it
    /// would close, if any (then the waiter must abort).
    pub async fn wait_for(&self, request: WaitForRequest) -> Result<Vec<u64>> {
        self.on_leader(
            || self.wait_for_here(&request),
            |leader| {
                let request = WaitForRequest {
                    header: Some(RequestHeader {
                        range_id: META_RANGE_ID,
                        epoch: None,
                    }),
                    ..request.clone()
                };
                async move {
                    let reply = self
                        .remote
                        .wait_for(&leader, META_CALL_TIMEOUT, request)
                        .await?;
                    Ok(reply.cycle)
                }
            },
        )
        .await
    }

    /// The wait-for graph as this node keeps it, if it leads the meta range.
    pub async fn wait_for_here(&self, request: &WaitForRequest) -> Result<Vec<u64>> {
        self.store.leader_term(META_RANGE_ID).await?;
        let mut graph = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        if request.done {
            graph.done(request.waiter);
            return Ok(Vec::new());
        }
        Ok(graph
            .wait(request.waiter, request.holder, &request.key, Instant::now())
            .unwrap_or_default())
    }

    /// The oracle as this node runs it, for calls that must be answered
    /// here (or refused with where the meta range's leader is).
    pub async fn timestamps_here(&self, count: u32) -> Result<u64> {
        self.oracle.take(count).await
    }

    /// The GC safe point and life time, as the meta range's leader knows them.
    pub async fn gc_settings(&self) -> Result<(u64, u64)> {
        self.on_leader(
            || async {
                self.read_local().await?;
                Ok((
                    table::gc_safe_point(&self.engine)?,
                    table::gc_life_time_ms(&self.engine)?,
                ))
            },
            |leader| async move {
                let reply = self.remote.gc_status(&leader, META_CALL_TIMEOUT).await?;
                Ok((reply.safe_point, reply.life_time_ms))
            },
        )
        .await
    }

    pub async fn set_gc_life_time(&self, life_time_ms: u64) -> Result<()> {
        let kind = command::Kind::SetGcLifeTime(SetGcLifeTimeCommand { life_time_ms });
        self.on_leader(
            || async { self.propose_local(kind.clone()).await.map(drop) },
            |leader| async move {
                self.remote
                    .set_gc_life_time(
                        &leader,
                        META_CALL_TIMEOUT,
                        SetGcLifeTimeRequest { life_time_ms },
                    )
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// Raises the GC safe point, here: only the meta range's leader moves
    /// it. Returns the safe point as it stands after.
    pub async fn raise_gc_safe_point_here(&self, safe_point: u64) -> Result<u64> {
        let kind = command::Kind::SetGcSafePoint(SetGcSafePointCommand { safe_point });
        match self.propose_local(kind).await? {
            Outcome::Timestamp(stored) => Ok(stored),
            other => Err(unexpected(other)),
        }
    }

    /// The cache policies, as the meta range's leader knows them.
    pub async fn cache_settings(&self) -> Result<CacheSettings> {
        self.on_leader(
            || async {
                self.read_local().await?;
                table::cache_settings(&self.engine)
            },
            |leader| async move { self.remote.cache_settings(&leader, META_CALL_TIMEOUT).await },
        )
        .await
    }

    /// Adds, replaces or removes a cache policy through the meta range.
    pub async fn set_cache_policy(&self, change: SetCachePolicyCommand) -> Result<()> {
        let kind = command::Kind::SetCachePolicy(change.clone());
        self.on_leader(
            || async { self.propose_local(kind.clone()).await.map(drop) },
            |leader| {
                let request = SetCachePolicyRequest {
                    policy: change.policy.clone(),
                    remove: change.remove,
                };
                async move {
                    self.remote
                        .set_cache_policy(&leader, META_CALL_TIMEOUT, request)
                        .await
                        .map(drop)
                }
            },
        )
        .await
    }

    /// The security catalog, as the meta range's leader knows it.
    pub async fn security_catalog(&self) -> Result<SecurityCatalog> {
        self.on_leader(
            || async {
                self.read_local().await?;
                table::security_catalog(&self.engine)
            },
            |leader| async move {
                self.remote
                    .security_catalog(&leader, META_CALL_TIMEOUT)
                    .await
            },
        )
        .await
    }

    /// Applies a change to the security catalog through the meta range.
    pub async fn change_security(&self, change: SecurityCommand) -> Result<()> {
        let kind = command::Kind::Security(change.clone());
        self.on_leader(
            || async { self.propose_local(kind.clone()).await.map(drop) },
            |leader| {
                let change = change.clone();
                async move {
                    self.remote
                        .security_change(&leader, META_CALL_TIMEOUT, change)
                        .await
                        .map(drop)
                }
            },
        )
        .await
    }

    /// The node registry, as the meta range's leader knows it.
    pub async fn registry(&self) -> Result<Vec<NodeAddress>> {
        self.on_leader(
            || async {
                self.read_local().await?;
                table::registry(&self.engine)
            },
            |leader| async move {
                Ok(self
                    .remote
                    .list_nodes(&leader, META_CALL_TIMEOUT)
                    .await?
                    .nodes)
            },
        )
        .await
    }

    /// The ranges holding `key` and the keys after it (at most `limit`), with
    /// their last known leaders and the registry, as the meta range's leader
    /// knows them.
    pub async fn locate(&self, key: &[u8], limit: usize) -> Result<LocateResponse> {
        let limit = limit.clamp(1, MAX_LOCATE);
        self.on_leader(
            || async {
                self.read_local().await?;
                self.locate_here(key, limit).await
            },
            |leader| async move {
                let request = LocateRequest {
                    key: key.to_vec(),
                    limit: limit as u32,
                    range_id: 0,
                };
                // The node asked answers or names its leader.
                self.remote
                    .locate(&leader, 1, META_CALL_TIMEOUT, request)
                    .await
            },
        )
        .await
    }

    /// The routing entry of range `range_id` (none if the table has none),
    /// with its last known leader and the registry.
    pub async fn locate_range(&self, range_id: u64) -> Result<LocateResponse> {
        self.on_leader(
            || async {
                self.read_local().await?;
                let ranges = table::descriptor_of(&self.engine, range_id)?
                    .into_iter()
                    .collect();
                self.with_leaders(ranges).await
            },
            |leader| async move {
                let request = LocateRequest {
                    range_id,
                    ..LocateRequest::default()
                };
                self.remote
                    .locate(&leader, 1, META_CALL_TIMEOUT, request)
                    .await
            },
        )
        .await
    }

    /// Reads the routing table from this node's copy (current once a read
    /// barrier on the meta range passed here).
    async fn locate_here(&self, key: &[u8], limit: usize) -> Result<LocateResponse> {
        let ranges = table::locate(&self.engine, key, limit)?;
        self.with_leaders(ranges).await
    }

    /// Routing entries with the leaders this node knows and the registry.
    async fn with_leaders(&self, ranges: Vec<RangeDescriptor>) -> Result<LocateResponse> {
        let leaders: std::collections::HashMap<u64, u64> = self
            .store
            .status()
            .await?
            .into_iter()
            .filter_map(|replica| Some((replica.range?.range_id, replica.leader_id)))
            .collect();
        let ranges = ranges
            .into_iter()
            .map(|range| RangeLocation {
                leader_node_id: leaders.get(&range.range_id).copied().unwrap_or_default(),
                range: Some(range),
            })
            .collect();
        let nodes = table::registry(&self.engine)?;
        Ok(LocateResponse { ranges, nodes })
    }
}

fn unexpected(outcome: Outcome) -> Error {
    Error::Transport(format!("the meta range answered {outcome:?}"))
}
