//! The placement driver: observe the cluster through the admin API, ask the
//! planner, carry out its actions, repeat.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zdb_client::{Client, NodeState as WireNodeState};
use zdb_proto::v1::RaftRole;

use crate::planner::{self, Action, NodeInfo, NodeState, RangeLoad, Settings};

/// What the driver observed and did in one round, for progress reports.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Round {
    pub nodes: usize,
    pub ranges: usize,
    pub done: Vec<String>,
    pub failures: Vec<String>,
}

/// Remembers since when each node has been unreachable.
#[derive(Default)]
pub struct Liveness {
    unreachable_since: HashMap<u64, Instant>,
}

/// The cluster as the planner sees it: the node registry with liveness, and
/// every range as its leader reports it.
pub async fn observe(
    client: &Client,
    liveness: &mut Liveness,
    dead_after: Duration,
) -> (Vec<NodeInfo>, Vec<RangeLoad>) {
    let registry = client.list_nodes().await.unwrap_or_default();
    let mut nodes = Vec::new();
    let mut ranges: HashMap<u64, RangeLoad> = HashMap::new();
    for entry in registry {
        let status = client.node_status(&entry.address).await.ok();
        let live = status.is_some();
        let dead = if live {
            liveness.unreachable_since.remove(&entry.node_id);
            false
        } else {
            let since = *liveness
                .unreachable_since
                .entry(entry.node_id)
                .or_insert_with(Instant::now);
            since.elapsed() >= dead_after
        };
        nodes.push(NodeInfo {
            id: entry.node_id,
            address: entry.address.clone(),
            state: match WireNodeState::try_from(entry.state) {
                Ok(WireNodeState::Draining) => NodeState::Draining,
                Ok(WireNodeState::Decommissioned) => NodeState::Decommissioned,
                _ => NodeState::Active,
            },
            live,
            dead,
        });
        for replica in status.into_iter().flat_map(|s| s.replicas) {
            if replica.role != RaftRole::Leader as i32 {
                continue;
            }
            let Some(range) = replica.range else { continue };
            ranges.insert(
                range.range_id,
                RangeLoad {
                    range_id: range.range_id,
                    bytes: replica.approximate_bytes,
                    keys: replica.approximate_keys,
                    writes_per_second: replica.writes_per_second,
                    leader_address: entry.address.clone(),
                    leader: entry.node_id,
                    voters: range
                        .replicas
                        .iter()
                        .filter(|r| !r.learner)
                        .map(|r| r.node_id)
                        .collect(),
                    learners: range
                        .replicas
                        .iter()
                        .filter(|r| r.learner)
                        .map(|r| r.node_id)
                        .collect(),
                },
            );
        }
    }
    let mut ranges: Vec<RangeLoad> = ranges.into_values().collect();
    ranges.sort_by_key(|r| r.range_id);
    (nodes, ranges)
}

async fn execute(client: &Client, action: &Action, ranges: &[RangeLoad]) -> Result<String, String> {
    let leader = |range_id: &u64| {
        ranges
            .iter()
            .find(|r| r.range_id == *range_id)
            .map(|r| r.leader_address.as_str())
    };
    let result = match action {
        Action::Split {
            range_id,
            leader_address,
            reason,
        } => client
            .split_range_at_node(leader_address, *range_id)
            .await
            .map(|()| format!("split range {range_id} ({reason})")),
        Action::AddReplica {
            range_id,
            node_id,
            reason,
        } => client
            .add_replica(leader(range_id), *range_id, *node_id)
            .await
            .map(|_| format!("added a replica of range {range_id} on node {node_id} ({reason})")),
        Action::RemoveReplica {
            range_id,
            node_id,
            reason,
        } => client
            .remove_replica(leader(range_id), *range_id, *node_id)
            .await
            .map(|_| {
                format!("removed the replica of range {range_id} from node {node_id} ({reason})")
            }),
        Action::TransferLeader {
            range_id,
            to,
            reason,
        } => client
            .transfer_leader(leader(range_id), *range_id, *to)
            .await
            .map(|()| format!("moved the leadership of range {range_id} to node {to} ({reason})")),
    };
    result.map_err(|err| format!("{action:?}: {err}"))
}

/// One round: observe, plan, act.
pub async fn run_once(
    client: &Client,
    settings: &Settings,
    liveness: &mut Liveness,
    dead_after: Duration,
) -> Round {
    let (nodes, ranges) = observe(client, liveness, dead_after).await;
    let mut round = Round {
        nodes: nodes.len(),
        ranges: ranges.len(),
        ..Round::default()
    };
    if nodes.is_empty() {
        return round;
    }
    for action in planner::plan(&nodes, &ranges, settings) {
        match execute(client, &action, &ranges).await {
            Ok(done) => round.done.push(done),
            Err(failure) => round.failures.push(failure),
        }
    }
    round
}

/// Runs rounds every `interval` until `stop` turns true, reporting each action.
pub async fn run(
    client: Client,
    settings: Settings,
    interval: Duration,
    dead_after: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    report: impl Fn(&Round) + Send,
) {
    let mut liveness = Liveness::default();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let round = run_once(&client, &settings, &mut liveness, dead_after).await;
        if !round.done.is_empty() || !round.failures.is_empty() {
            report(&round);
        }
    }
}
