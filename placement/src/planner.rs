//! The planner: a cluster snapshot in, actions out. Pure, so that every
//! decision can be tested on made-up clusters.
//!
//! Rules, in order: split ranges that are too big or too hot; move
//! leaderships off nodes that are leaving; bring every range to the
//! replication factor on healthy nodes (replacing replicas on draining,
//! decommissioned or dead nodes); then spread ranges whose replicas share a
//! zone over more zones; then balance replica and leader counts. A
//! removal never leaves a range without a live majority, never takes the
//! leader, and happens only once the range has enough healthy voters.
//! Wherever a node is chosen, one in a zone the range does not use yet
//! wins over a less loaded one (nodes with no zone share none).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Active,
    /// Leaving: gets no new replicas, gives its leaderships and replicas away.
    Draining,
    /// Gone for good: holds nothing.
    Decommissioned,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub id: u64,
    pub address: String,
    pub state: NodeState,
    /// Answered the last status request.
    pub live: bool,
    /// Unreachable for longer than the dead timeout: its replicas are replaced.
    pub dead: bool,
    /// The failure domain the node runs in; empty when unknown.
    pub zone: String,
}

impl NodeInfo {
    fn healthy(&self) -> bool {
        self.state == NodeState::Active && !self.dead
    }

    fn can_take_replicas(&self) -> bool {
        self.state == NodeState::Active && self.live && !self.dead
    }
}

/// One range as its leader reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeLoad {
    pub range_id: u64,
    pub bytes: u64,
    pub keys: u64,
    pub writes_per_second: f64,
    /// gRPC address of the node leading the range.
    pub leader_address: String,
    pub leader: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitSettings {
    /// Split a range once its keys and values pass this many bytes.
    pub max_bytes: u64,
    /// Split a range taking more writes per second than this (None: never for load).
    pub max_writes_per_second: Option<f64>,
}

impl Default for SplitSettings {
    fn default() -> Self {
        SplitSettings {
            max_bytes: 64 << 20,
            max_writes_per_second: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub replication_factor: usize,
    pub split: SplitSettings,
    /// Replica additions and removals per round, cluster-wide.
    pub max_moves: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            replication_factor: 3,
            split: SplitSettings::default(),
            max_moves: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Split at the key that halves the range by size (chosen by its leader).
    Split {
        range_id: u64,
        leader_address: String,
        reason: String,
    },
    AddReplica {
        range_id: u64,
        node_id: u64,
        reason: String,
    },
    RemoveReplica {
        range_id: u64,
        node_id: u64,
        reason: String,
    },
    TransferLeader {
        range_id: u64,
        to: u64,
        reason: String,
    },
}

/// Ranges too big or too hot, biggest first. A range with fewer than two
/// keys cannot be split and is left alone.
pub fn plan_splits(ranges: &[RangeLoad], settings: &SplitSettings) -> Vec<Action> {
    let mut candidates: Vec<(&RangeLoad, String)> = ranges
        .iter()
        .filter(|range| range.keys >= 2)
        .filter_map(|range| {
            if range.bytes > settings.max_bytes {
                return Some((
                    range,
                    format!("{} bytes > {}", range.bytes, settings.max_bytes),
                ));
            }
            match settings.max_writes_per_second {
                Some(limit) if range.writes_per_second > limit => Some((
                    range,
                    format!("{:.0} writes/s > {limit:.0}", range.writes_per_second),
                )),
                _ => None,
            }
        })
        .collect();
    candidates.sort_by_key(|(range, _)| std::cmp::Reverse(range.bytes));
    candidates
        .into_iter()
        .map(|(range, reason)| Action::Split {
            range_id: range.range_id,
            leader_address: range.leader_address.clone(),
            reason,
        })
        .collect()
}

/// The zones of `voters` (those known), counting each voter once.
fn zone_counts<'a>(
    nodes: &'a [NodeInfo],
    voters: impl Iterator<Item = &'a u64>,
) -> BTreeMap<&'a str, usize> {
    let mut zones = BTreeMap::new();
    for id in voters {
        if let Some(node) = nodes.iter().find(|n| n.id == *id && !n.zone.is_empty()) {
            *zones.entry(node.zone.as_str()).or_default() += 1;
        }
    }
    zones
}

/// Whether `node` is in a zone one of the range's voters (other than
/// `except`) is in already.
fn zone_taken(nodes: &[NodeInfo], range: &RangeLoad, node: &NodeInfo, except: u64) -> bool {
    !node.zone.is_empty()
        && zone_counts(nodes, range.voters.iter().filter(|id| **id != except))
            .contains_key(node.zone.as_str())
}

/// Everything the planner wants done now, splits first.
pub fn plan(nodes: &[NodeInfo], ranges: &[RangeLoad], settings: &Settings) -> Vec<Action> {
    let mut actions = plan_splits(ranges, &settings.split);
    let node = |id: u64| nodes.iter().find(|n| n.id == id);
    let healthy = |id: u64| node(id).is_some_and(NodeInfo::healthy);
    let live = |id: u64| node(id).is_some_and(|n| n.live && !n.dead);
    let mut replicas_per_node: BTreeMap<u64, usize> = nodes.iter().map(|n| (n.id, 0)).collect();
    let mut leaders_per_node: BTreeMap<u64, usize> = nodes.iter().map(|n| (n.id, 0)).collect();
    for range in ranges {
        for id in range.voters.iter().chain(&range.learners) {
            *replicas_per_node.entry(*id).or_default() += 1;
        }
        *leaders_per_node.entry(range.leader).or_default() += 1;
    }
    let mut moves = 0;
    let rf = settings.replication_factor;

    for range in ranges {
        let held: BTreeSet<u64> = range
            .voters
            .iter()
            .chain(&range.learners)
            .copied()
            .collect();
        let good: Vec<u64> = range
            .voters
            .iter()
            .copied()
            .filter(|id| healthy(*id))
            .collect();

        // Leadership leaves nodes that are leaving.
        if !healthy(range.leader) {
            if let Some(to) = good
                .iter()
                .copied()
                .filter(|id| live(*id))
                .min_by_key(|id| (leaders_per_node.get(id).copied().unwrap_or(0), *id))
            {
                actions.push(Action::TransferLeader {
                    range_id: range.range_id,
                    to,
                    reason: format!("node {} is leaving", range.leader),
                });
                continue;
            }
        }
        if moves >= settings.max_moves {
            continue;
        }
        if good.len() < rf {
            // Add in a zone the range does not use, on the least loaded
            // node that can take it.
            if let Some(target) = nodes
                .iter()
                .filter(|n| n.can_take_replicas() && !held.contains(&n.id))
                .min_by_key(|n| {
                    let load = replicas_per_node.get(&n.id).copied().unwrap_or(0);
                    (zone_taken(nodes, range, n, 0), load, n.id)
                })
            {
                actions.push(Action::AddReplica {
                    range_id: range.range_id,
                    node_id: target.id,
                    reason: format!("{} healthy voters < replication factor {rf}", good.len()),
                });
                *replicas_per_node.entry(target.id).or_default() += 1;
                moves += 1;
            }
            continue;
        }
        // Enough healthy voters: drop a learner left over, a replica on a
        // leaving or dead node, or one over the replication factor.
        let victim = range
            .learners
            .first()
            .copied()
            .or_else(|| range.voters.iter().copied().find(|id| !healthy(*id)))
            .or_else(|| {
                // Over the factor: one whose zone another voter shares
                // first, then the most loaded.
                let zones = zone_counts(nodes, range.voters.iter());
                let shares_zone = |id: &u64| {
                    node(*id).is_some_and(|n| zones.get(n.zone.as_str()).is_some_and(|c| *c > 1))
                };
                (range.voters.len() > rf).then(|| {
                    range
                        .voters
                        .iter()
                        .copied()
                        .filter(|id| *id != range.leader)
                        .max_by_key(|id| {
                            let load = replicas_per_node.get(id).copied().unwrap_or(0);
                            (shares_zone(id), load, *id)
                        })
                })?
            });
        if let Some(victim) = victim.filter(|id| *id != range.leader) {
            let remaining: Vec<u64> = range
                .voters
                .iter()
                .copied()
                .filter(|id| *id != victim)
                .collect();
            let live_remaining = remaining.iter().filter(|id| live(**id)).count();
            if !remaining.is_empty() && live_remaining * 2 > remaining.len() {
                actions.push(Action::RemoveReplica {
                    range_id: range.range_id,
                    node_id: victim,
                    reason: format!(
                        "range {} has {} voters, {rf} wanted",
                        range.range_id,
                        range.voters.len()
                    ),
                });
                *replicas_per_node.entry(victim).or_default() -= 1;
                moves += 1;
            }
        }
    }
    if moves == 0 && actions.iter().all(|a| matches!(a, Action::Split { .. })) {
        actions.extend(balance(
            nodes,
            ranges,
            &replicas_per_node,
            &leaders_per_node,
        ));
    }
    actions
}

/// A range two of whose voters share a zone while a node that can take a
/// replica is in a zone the range does not use: a copy goes there (the next
/// round sees the range over the factor and removes a voter of the shared
/// zone).
fn spread_zones(
    nodes: &[NodeInfo],
    ranges: &[RangeLoad],
    replicas: &BTreeMap<u64, usize>,
) -> Option<Action> {
    ranges.iter().find_map(|range| {
        let zones = zone_counts(nodes, range.voters.iter());
        let (crowded, _) = zones.iter().find(|(_, count)| **count > 1)?;
        let target = nodes
            .iter()
            .filter(|n| {
                n.can_take_replicas()
                    && !range.voters.contains(&n.id)
                    && !range.learners.contains(&n.id)
                    && !n.zone.is_empty()
                    && !zones.contains_key(n.zone.as_str())
            })
            .min_by_key(|n| (replicas.get(&n.id).copied().unwrap_or(0), n.id))?;
        Some(Action::AddReplica {
            range_id: range.range_id,
            node_id: target.id,
            reason: format!(
                "spread over zones: range {} has two replicas in {crowded}, none in {}",
                range.range_id, target.zone
            ),
        })
    })
}

/// One step towards replicas in distinct zones, else towards even replica
/// counts (at most one apart across active nodes), else towards even
/// leader counts.
fn balance(
    nodes: &[NodeInfo],
    ranges: &[RangeLoad],
    replicas: &BTreeMap<u64, usize>,
    leaders: &BTreeMap<u64, usize>,
) -> Option<Action> {
    if let Some(spread) = spread_zones(nodes, ranges, replicas) {
        return Some(spread);
    }
    let active: Vec<&NodeInfo> = nodes.iter().filter(|n| n.can_take_replicas()).collect();
    let count = |map: &BTreeMap<u64, usize>, id: u64| map.get(&id).copied().unwrap_or(0);
    let fullest = active
        .iter()
        .max_by_key(|n| (count(replicas, n.id), n.id))?;
    let emptiest = active
        .iter()
        .min_by_key(|n| (count(replicas, n.id), n.id))?;
    if count(replicas, fullest.id) > count(replicas, emptiest.id) + 1 {
        // Copy a range from the fullest node to the emptiest; the next round
        // sees it over-replicated and removes the copy on the fullest node.
        // Not a range the fullest node leads: the removal that follows must
        // be able to take the fullest node's copy.
        // Nor one the move would crowd into one zone.
        if let Some(range) = ranges.iter().find(|r| {
            r.voters.contains(&fullest.id)
                && r.leader != fullest.id
                && !r.voters.contains(&emptiest.id)
                && !r.learners.contains(&emptiest.id)
                && !zone_taken(nodes, r, emptiest, fullest.id)
        }) {
            return Some(Action::AddReplica {
                range_id: range.range_id,
                node_id: emptiest.id,
                reason: format!(
                    "balance replicas: node {} has {}, node {} has {}",
                    fullest.id,
                    count(replicas, fullest.id),
                    emptiest.id,
                    count(replicas, emptiest.id)
                ),
            });
        }
    }
    let most = active.iter().max_by_key(|n| (count(leaders, n.id), n.id))?;
    let least = active.iter().min_by_key(|n| (count(leaders, n.id), n.id))?;
    if count(leaders, most.id) > count(leaders, least.id) + 1 {
        if let Some(range) = ranges
            .iter()
            .find(|r| r.leader == most.id && r.voters.contains(&least.id))
        {
            return Some(Action::TransferLeader {
                range_id: range.range_id,
                to: least.id,
                reason: format!(
                    "balance leaders: node {} leads {}",
                    most.id,
                    count(leaders, most.id)
                ),
            });
        }
    }
    None
}

/// What the cluster looks like once `action` is done (for tests and dry runs).
pub fn simulate(ranges: &mut [RangeLoad], action: &Action) {
    match action {
        Action::Split { .. } => {}
        Action::AddReplica {
            range_id, node_id, ..
        } => {
            if let Some(range) = ranges.iter_mut().find(|r| r.range_id == *range_id) {
                if !range.voters.contains(node_id) {
                    range.voters.push(*node_id);
                }
                range.learners.retain(|id| id != node_id);
            }
        }
        Action::RemoveReplica {
            range_id, node_id, ..
        } => {
            if let Some(range) = ranges.iter_mut().find(|r| r.range_id == *range_id) {
                range.voters.retain(|id| id != node_id);
                range.learners.retain(|id| id != node_id);
            }
        }
        Action::TransferLeader { range_id, to, .. } => {
            if let Some(range) = ranges.iter_mut().find(|r| r.range_id == *range_id) {
                range.leader = *to;
            }
        }
    }
}

#[cfg(test)]
mod tests;
