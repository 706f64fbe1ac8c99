//! Cluster administration and inspection: the range table, splits,
//! membership changes, node states, and reads of one node's own copy.

use std::future::Future;

use crate::transport::Transport;
use tonic::Status;
use zdb_proto::v1::admin_client::AdminClient;
use zdb_proto::v1::{
    self as pb, AddReplicaRequest, ListNodesRequest, NodeAddress, NodeState, NodeStatusRequest,
    NodeStatusResponse, RangeDescriptor, RemoveReplicaRequest, SetNodeStateRequest,
    SplitRangeRequest, TransferLeaderRequest,
};

use crate::client::{timed, Attempts, Client, Consistency, MAX_ATTEMPT};

/// Longest one attempt of an admin call that completes at once (a split)
/// may take before the client tries another node.
const MAX_ADMIN_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(5);
use crate::error::{Error, Result};
use crate::retry::{classify, Next};

impl Client {
    /// The ranges holding `[start, end)` as the meta range reports them.
    pub async fn ranges(&self, start: &[u8], end: &[u8]) -> Result<Vec<RangeDescriptor>> {
        self.cache().clear();
        let mut attempts = self.attempts();
        let ranges = self.ranges_covering(start, end, &mut attempts).await?;
        Ok(ranges.into_iter().map(|cached| cached.range).collect())
    }

    /// Splits the range holding `key` at `key`.
    pub async fn split_at(&self, key: &[u8]) -> Result<(RangeDescriptor, RangeDescriptor)> {
        let mut attempts = self.attempts();
        loop {
            let cached = self.route(key, &mut attempts).await?;
            attempts.remaining()?;
            let endpoint = self.target_node(&cached, attempts.count);
            attempts.count += 1;
            let request = timed(
                SplitRangeRequest {
                    range_id: cached.range.range_id,
                    split_key: key.to_vec(),
                },
                attempts.remaining()?.min(MAX_ADMIN_ATTEMPT),
            );
            match AdminClient::new(self.channel(&endpoint)?)
                .split_range(request)
                .await
            {
                Ok(response) => {
                    let response = response.into_inner();
                    let (Some(left), Some(right)) = (response.left, response.right) else {
                        return Err(Error::Rpc(Box::new(Status::internal(
                            "split response without ranges",
                        ))));
                    };
                    self.cache().insert(left.clone(), None);
                    self.cache().insert(right.clone(), None);
                    return Ok((left, right));
                }
                Err(status) => {
                    attempts.last = format!("{endpoint}: {}: {}", status.code(), status.message());
                    match classify(&status) {
                        Next::NotLeader { leader_id, address } => {
                            let mut cache = self.cache();
                            cache.learn_node(leader_id, address);
                            cache.set_leader(
                                cached.range.range_id,
                                (leader_id != 0).then_some(leader_id),
                            );
                            drop(cache);
                        }
                        Next::Fail => return Err(Error::from_final_status(status)),
                        _ => self.cache().invalidate(cached.range.range_id),
                    }
                    attempts.back_off().await;
                }
            }
        }
    }

    /// Reads `key` from the node at `endpoint` itself, whatever range it
    /// holds the key in: with [`Consistency::Stale`], that node's own copy.
    /// For inspecting replicas; applications use [`Client::get_with`].
    pub async fn get_at_node(
        &self,
        endpoint: &str,
        key: &[u8],
        consistency: Consistency,
    ) -> Result<Option<Vec<u8>>> {
        // A stale read here means this node's own copy, never another's.
        let consistency = match consistency {
            Consistency::Stale => pb::ReadConsistency::LocalReplica as i32,
            Consistency::Linearizable => consistency.to_proto(),
        };
        let request = timed(
            pb::GetRequest {
                key: key.to_vec(),
                consistency,
                ..Default::default()
            },
            self.timeout().min(MAX_ATTEMPT),
        );
        let response = self
            .kv(endpoint)?
            .get(request)
            .await
            .map_err(Error::from_final_status)?
            .into_inner();
        Ok(response.found.then_some(response.value))
    }

    /// Every key and value of `range` as the node at `endpoint` holds it in
    /// its own replica, as of `read_ts` (0: its latest), page by page. For
    /// comparing replicas.
    pub async fn scan_replica_at_node(
        &self,
        endpoint: &str,
        range: &pb::RangeDescriptor,
        read_ts: u64,
    ) -> Result<Vec<pb::KeyValue>> {
        let mut pairs = Vec::new();
        let mut start = range.start_key.clone();
        loop {
            let request = timed(
                pb::ScanRequest {
                    header: Some(pb::RequestHeader {
                        range_id: range.range_id,
                        epoch: range.epoch,
                    }),
                    start_key: start.clone(),
                    end_key: range.end_key.clone(),
                    consistency: pb::ReadConsistency::Stale as i32,
                    read_ts,
                    ..Default::default()
                },
                self.timeout(),
            );
            let page = self
                .kv(endpoint)?
                .scan(request)
                .await
                .map_err(Error::from_final_status)?
                .into_inner();
            let last = page.pairs.last().map(|pair| pair.key.clone());
            pairs.extend(page.pairs);
            match (page.more, last) {
                (true, Some(key)) => start = [key.as_slice(), &[0]].concat(),
                _ => return Ok(pairs),
            }
        }
    }

    /// Asks the node at `endpoint` (the range's leader) to split `range_id`
    /// at the key that halves it by size.
    pub async fn split_range_at_node(&self, endpoint: &str, range_id: u64) -> Result<()> {
        let request = timed(
            SplitRangeRequest {
                range_id,
                split_key: Vec::new(),
            },
            self.timeout(),
        );
        AdminClient::new(self.channel(endpoint)?)
            .split_range(request)
            .await
            .map_err(Error::from_final_status)?;
        Ok(())
    }

    /// Runs an admin call on the leader of range `range_id` (of the meta
    /// range when None), following redirects, and looking the range up
    /// again when the node asked holds no replica of it or knows no leader.
    async fn on_leader<T, F, Fut>(
        &self,
        range_id: Option<u64>,
        first: Option<&str>,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(AdminClient<Transport>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut attempts = self.attempts();
        let mut target: Option<String> = first.map(str::to_owned);
        loop {
            attempts.remaining()?;
            let endpoint = target.take().unwrap_or_else(|| self.any_endpoint());
            attempts.count += 1;
            let status = match call(AdminClient::new(self.channel(&endpoint)?)).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            attempts.last = format!("{endpoint}: {}: {}", status.code(), status.message());
            match classify(&status) {
                Next::NotLeader { address, .. } if !address.is_empty() && address != endpoint => {
                    target = Some(address);
                    continue;
                }
                Next::NotLeader { .. } | Next::Relocate => {
                    if let Some(range_id) = range_id {
                        target = self.leader_of_range(range_id, &mut attempts).await;
                    }
                }
                Next::Fail => return Err(Error::from_final_status(status)),
                Next::Ambiguous if status.code() == tonic::Code::DeadlineExceeded => {
                    return Err(Error::from_final_status(status))
                }
                _ => {}
            }
            attempts.back_off().await;
        }
    }

    /// Where range `range_id` is led, as the meta range knows it.
    async fn leader_of_range(&self, range_id: u64, attempts: &mut Attempts) -> Option<String> {
        let remaining = attempts.remaining().ok()?;
        let endpoint = self.any_endpoint();
        attempts.count += 1;
        let request = timed(
            pb::LocateRequest {
                range_id,
                ..Default::default()
            },
            remaining.min(MAX_ATTEMPT),
        );
        let located = self
            .kv(&endpoint)
            .ok()?
            .locate(request)
            .await
            .ok()?
            .into_inner();
        let leader = located.ranges.first()?.leader_node_id;
        let mut cache = self.cache();
        for node in &located.nodes {
            cache.learn_node(node.node_id, node.address.clone());
        }
        cache.address(leader).filter(|_| leader != 0)
    }

    /// Adds a replica of `range_id` on `node_id` (learner, catch-up, then
    /// voter). `leader`, if known, is where to ask first.
    pub async fn add_replica(
        &self,
        leader: Option<&str>,
        range_id: u64,
        node_id: u64,
    ) -> Result<RangeDescriptor> {
        let response = self
            .on_leader(Some(range_id), leader, |mut admin| async move {
                admin
                    .add_replica(AddReplicaRequest { range_id, node_id })
                    .await
            })
            .await?;
        range_in(response.range)
    }

    /// Removes the replica of `range_id` on `node_id`.
    pub async fn remove_replica(
        &self,
        leader: Option<&str>,
        range_id: u64,
        node_id: u64,
    ) -> Result<RangeDescriptor> {
        let response = self
            .on_leader(Some(range_id), leader, |mut admin| async move {
                admin
                    .remove_replica(RemoveReplicaRequest { range_id, node_id })
                    .await
            })
            .await?;
        range_in(response.range)
    }

    /// Moves the leadership of `range_id` to its replica on `node_id`.
    pub async fn transfer_leader(
        &self,
        leader: Option<&str>,
        range_id: u64,
        node_id: u64,
    ) -> Result<()> {
        self.on_leader(Some(range_id), leader, |mut admin| async move {
            admin
                .transfer_leader(TransferLeaderRequest { range_id, node_id })
                .await
        })
        .await?;
        self.cache().set_leader(range_id, Some(node_id));
        Ok(())
    }

    /// The node registry: every node's id, address and state, as the meta
    /// range's leader knows it.
    pub async fn list_nodes(&self) -> Result<Vec<NodeAddress>> {
        let response = self
            .on_leader(None, None, |mut admin| async move {
                admin.list_nodes(ListNodesRequest {}).await
            })
            .await?;
        let mut cache = self.cache();
        for node in &response.nodes {
            cache.learn_node(node.node_id, node.address.clone());
        }
        Ok(response.nodes)
    }

    /// Marks a node active, draining or decommissioned.
    pub async fn set_node_state(&self, node_id: u64, state: NodeState) -> Result<()> {
        let mut attempts = self.attempts();
        loop {
            attempts.remaining()?;
            let endpoint = self.any_endpoint();
            attempts.count += 1;
            let request = SetNodeStateRequest {
                node_id,
                state: state as i32,
            };
            match AdminClient::new(self.channel(&endpoint)?)
                .set_node_state(request)
                .await
            {
                Ok(_) => return Ok(()),
                Err(status) => {
                    attempts.last = format!("{endpoint}: {}: {}", status.code(), status.message());
                    if matches!(classify(&status), Next::Fail) {
                        return Err(Error::from_final_status(status));
                    }
                    attempts.back_off().await;
                }
            }
        }
    }

    /// Records the zone node `node_id` runs in (empty: unknown); placement
    /// spreads each range's replicas over zones.
    pub async fn set_node_zone(&self, node_id: u64, zone: &str) -> Result<()> {
        let zone = zone.to_owned();
        self.on_leader(None, None, |mut admin| {
            let zone = zone.clone();
            async move {
                admin
                    .set_node_zone(pb::SetNodeZoneRequest { node_id, zone })
                    .await
            }
        })
        .await?;
        Ok(())
    }

    /// The GC safe point and life time, and what the node at `endpoint`
    /// collected (any node, when `endpoint` is None).
    pub async fn gc_status(&self, endpoint: Option<&str>) -> Result<pb::GcStatusResponse> {
        match endpoint {
            Some(endpoint) => {
                let mut admin = AdminClient::new(self.channel(endpoint)?);
                let request = timed(pb::GcStatusRequest {}, self.timeout().min(MAX_ATTEMPT));
                admin
                    .gc_status(request)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(Error::from_final_status)
            }
            None => {
                self.on_leader(None, None, |mut admin| async move {
                    admin.gc_status(pb::GcStatusRequest {}).await
                })
                .await
            }
        }
    }

    /// Sets how long old versions are kept (reads may go that far back).
    pub async fn set_gc_life_time(&self, life_time: std::time::Duration) -> Result<()> {
        let life_time_ms = life_time.as_millis() as u64;
        self.on_leader(None, None, |mut admin| async move {
            admin
                .set_gc_life_time(pb::SetGcLifeTimeRequest { life_time_ms })
                .await
        })
        .await?;
        Ok(())
    }

    /// The cache policies and what each prefix holds now.
    pub async fn cache_status(&self) -> Result<pb::CacheStatusResponse> {
        self.on_leader(None, None, |mut admin| async move {
            admin.cache_status(pb::CacheStatusRequest {}).await
        })
        .await
    }

    /// Gives `prefix` a budget of `max_bytes` (keys plus values, across the
    /// cluster) and an eviction policy, replacing the one it had.
    pub async fn set_cache_policy(
        &self,
        prefix: impl Into<Vec<u8>>,
        max_bytes: u64,
        policy: pb::EvictionPolicy,
    ) -> Result<pb::CacheStatusResponse> {
        let request = pb::SetCachePolicyRequest {
            policy: Some(pb::CachePolicy {
                prefix: prefix.into(),
                max_bytes,
                policy: policy as i32,
                full: false,
            }),
            remove: false,
        };
        self.on_leader(None, None, |mut admin| {
            let request = request.clone();
            async move { admin.set_cache_policy(request).await }
        })
        .await
    }

    /// Removes the cache policy of `prefix` (its keys stay).
    pub async fn remove_cache_policy(&self, prefix: impl Into<Vec<u8>>) -> Result<()> {
        let request = pb::SetCachePolicyRequest {
            policy: Some(pb::CachePolicy {
                prefix: prefix.into(),
                ..Default::default()
            }),
            remove: true,
        };
        self.on_leader(None, None, |mut admin| {
            let request = request.clone();
            async move { admin.set_cache_policy(request).await }
        })
        .await?;
        Ok(())
    }

    /// Status of the node at `endpoint` (one of the configured ones or any other).
    pub async fn node_status(&self, endpoint: &str) -> Result<NodeStatusResponse> {
        let mut admin = AdminClient::new(self.channel(endpoint)?);
        let request = timed(NodeStatusRequest {}, self.timeout().min(MAX_ATTEMPT));
        admin
            .node_status(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(Error::from_final_status)
    }

    /// Makes a new data key current on the node at `endpoint` (encryption
    /// at rest); answers that node's encryption status afterwards.
    pub async fn rotate_data_key(&self, endpoint: &str) -> Result<pb::EncryptionStatus> {
        let mut admin = AdminClient::new(self.channel(endpoint)?);
        let request = timed(pb::RotateDataKeyRequest {}, self.timeout().min(MAX_ATTEMPT));
        let response = admin
            .rotate_data_key(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(Error::from_final_status)?;
        response.encryption.ok_or_else(|| {
            Error::Rpc(Box::new(Status::internal(
                "rotation response without a status",
            )))
        })
    }
}

fn range_in(range: Option<RangeDescriptor>) -> Result<RangeDescriptor> {
    range.ok_or_else(|| Error::Rpc(Box::new(Status::internal("no range in the reply"))))
}
