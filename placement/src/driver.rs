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
    pub done: Vec<Report>,
    pub failures: Vec<Report>,
}

/// One line of a round's report: what kind of step it was and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub step: Step,
    pub message: String,
}

/// The kinds of step a round takes, so that a caller can tell them apart
/// (the operator gives each its own Event reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Reading the node registry and every node's status.
    Observe,
    Split,
    AddReplica,
    RemoveReplica,
    TransferLeader,
}

impl Step {
    pub fn of(action: &Action) -> Step {
        match action {
            Action::Split { .. } => Step::Split,
            Action::AddReplica { .. } => Step::AddReplica,
            Action::RemoveReplica { .. } => Step::RemoveReplica,
            Action::TransferLeader { .. } => Step::TransferLeader,
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Remembers since when each node has been unreachable.
#[derive(Default)]
pub struct Liveness {
    unreachable_since: HashMap<u64, Instant>,
}

/// The cluster as the planner sees it: the node registry with liveness, and
/// every range as its leader reports it. Fails when the registry cannot be
/// read: an unknown cluster is never taken for an empty one.
pub async fn observe(
    client: &Client,
    liveness: &mut Liveness,
    dead_after: Duration,
) -> Result<(Vec<NodeInfo>, Vec<RangeLoad>), zdb_client::Error> {
    let registry = client.list_nodes().await?;
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
            zone: entry.zone.clone(),
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
    Ok((nodes, ranges))
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
    let (nodes, ranges) = match observe(client, liveness, dead_after).await {
        Ok(observed) => observed,
        Err(err) => {
            return Round {
                failures: vec![Report {
                    step: Step::Observe,
                    message: format!("cannot read the node registry: {err}"),
                }],
                ..Round::default()
            }
        }
    };
    let mut round = Round {
        nodes: nodes.len(),
        ranges: ranges.len(),
        ..Round::default()
    };
    for action in planner::plan(&nodes, &ranges, settings) {
        let step = Step::of(&action);
        match execute(client, &action, &ranges).await {
            Ok(message) => round.done.push(Report { step, message }),
            Err(message) => round.failures.push(Report { step, message }),
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
