use proptest::prelude::*;

use super::*;

fn node(id: u64, state: NodeState) -> NodeInfo {
    NodeInfo {
        id,
        address: format!("n{id}"),
        state,
        live: true,
        dead: false,
        zone: String::new(),
    }
}

fn zoned(id: u64, zone: &str) -> NodeInfo {
    NodeInfo {
        zone: zone.to_owned(),
        ..node(id, NodeState::Active)
    }
}

fn range(range_id: u64, voters: &[u64]) -> RangeLoad {
    RangeLoad {
        range_id,
        bytes: 10,
        keys: 10,
        writes_per_second: 0.0,
        leader_address: format!("n{}", voters[0]),
        leader: voters[0],
        voters: voters.to_vec(),
        learners: vec![],
    }
}

fn settings() -> Settings {
    Settings {
        max_moves: 2,
        ..Settings::default()
    }
}

/// Plans and applies rounds until nothing is left to do; returns the rounds taken.
fn converge(nodes: &[NodeInfo], ranges: &mut [RangeLoad], settings: &Settings) -> Option<usize> {
    for round in 0..200 {
        let actions = plan(nodes, ranges, settings);
        if actions.is_empty() {
            return Some(round);
        }
        for action in &actions {
            check_safe(nodes, ranges, action);
            simulate(ranges, action);
        }
    }
    None
}

fn check_safe(nodes: &[NodeInfo], ranges: &[RangeLoad], action: &Action) {
    let live = |id: &u64| nodes.iter().any(|n| n.id == *id && n.live && !n.dead);
    match action {
        Action::RemoveReplica {
            range_id, node_id, ..
        } => {
            let range = ranges.iter().find(|r| r.range_id == *range_id).unwrap();
            assert_ne!(range.leader, *node_id, "never removes the leader");
            let remaining: Vec<&u64> = range.voters.iter().filter(|id| *id != node_id).collect();
            let live_left = remaining.iter().filter(|id| live(id)).count();
            assert!(
                live_left * 2 > remaining.len(),
                "removal keeps a live majority: {range:?} - {node_id}"
            );
        }
        Action::AddReplica {
            range_id, node_id, ..
        } => {
            let range = ranges.iter().find(|r| r.range_id == *range_id).unwrap();
            assert!(
                !range.voters.contains(node_id),
                "never two replicas of a range on one node"
            );
            let target = nodes.iter().find(|n| n.id == *node_id).unwrap();
            assert_eq!(target.state, NodeState::Active);
        }
        Action::TransferLeader { range_id, to, .. } => {
            let range = ranges.iter().find(|r| r.range_id == *range_id).unwrap();
            assert!(range.voters.contains(to) && live(to));
        }
        Action::Split { .. } => {}
    }
}

#[test]
fn grows_onto_new_nodes_until_counts_are_even() {
    let nodes: Vec<NodeInfo> = (1..=5).map(|id| node(id, NodeState::Active)).collect();
    let mut ranges: Vec<RangeLoad> = (1..=10).map(|id| range(id, &[1, 2, 3])).collect();
    converge(&nodes, &mut ranges, &settings()).expect("converges");
    let mut counts = BTreeMap::new();
    for r in &ranges {
        assert_eq!(r.voters.len(), 3);
        for id in &r.voters {
            *counts.entry(*id).or_insert(0) += 1;
        }
    }
    let (min, max) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(max - min <= 1, "replica counts {counts:?}");
}

#[test]
fn drains_a_node_completely() {
    let mut nodes: Vec<NodeInfo> = (1..=4).map(|id| node(id, NodeState::Active)).collect();
    nodes[0].state = NodeState::Draining;
    let mut ranges: Vec<RangeLoad> = (1..=6).map(|id| range(id, &[1, 2, 3])).collect();
    converge(&nodes, &mut ranges, &settings()).expect("converges");
    assert!(ranges
        .iter()
        .all(|r| !r.voters.contains(&1) && r.leader != 1 && r.voters.len() == 3));
}

#[test]
fn replaces_replicas_of_a_dead_node_but_never_removes_below_a_live_majority() {
    let mut nodes: Vec<NodeInfo> = (1..=4).map(|id| node(id, NodeState::Active)).collect();
    nodes[2].live = false;
    nodes[2].dead = true;
    let mut ranges = vec![range(1, &[1, 2, 3])];
    converge(&nodes, &mut ranges, &settings()).expect("converges");
    assert_eq!(
        ranges[0].voters.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 4])
    );

    // Two of three voters down and nowhere to go: nothing is removed.
    let mut nodes: Vec<NodeInfo> = (1..=3).map(|id| node(id, NodeState::Active)).collect();
    nodes[1].live = false;
    nodes[2].live = false;
    nodes[2].dead = true;
    let actions = plan(&nodes, &[range(1, &[1, 2, 3])], &settings());
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a, Action::RemoveReplica { .. })),
        "{actions:?}"
    );
}

#[test]
fn splits_big_and_hot_ranges_biggest_first() {
    let split = SplitSettings {
        max_bytes: 100,
        max_writes_per_second: Some(50.0),
    };
    let mut big = range(3, &[1]);
    big.bytes = 500;
    let mut medium = range(2, &[1]);
    medium.bytes = 150;
    let mut hot = range(4, &[1]);
    hot.writes_per_second = 80.0;
    let mut single_key = range(5, &[1]);
    single_key.bytes = 1 << 30;
    single_key.keys = 1;
    let plan = plan_splits(&[range(1, &[1]), medium, big, hot, single_key], &split);
    let ids: Vec<u64> = plan
        .iter()
        .map(|action| match action {
            Action::Split { range_id, .. } => *range_id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![3, 2, 4]);
}

#[test]
fn a_new_replica_goes_to_a_zone_the_range_lacks() {
    let nodes = [zoned(1, "a"), zoned(2, "b"), zoned(3, "a"), zoned(4, "c")];
    // Node 3 holds nothing, node 4 a replica of another range: zone c wins.
    let ranges = [range(1, &[1, 2]), range(2, &[4, 1, 2])];
    let actions = plan(&nodes, &ranges, &settings());
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::AddReplica {
                range_id: 1,
                node_id: 4,
                ..
            }
        )),
        "{actions:?}"
    );
}

#[test]
fn ranges_crowded_into_one_zone_spread_over_every_zone() {
    let nodes = [
        zoned(1, "a"),
        zoned(2, "a"),
        zoned(3, "b"),
        zoned(4, "b"),
        zoned(5, "c"),
        zoned(6, "c"),
    ];
    let mut ranges: Vec<RangeLoad> = (1..=4).map(|id| range(id, &[1, 2, 3])).collect();
    assert!(converge(&nodes, &mut ranges, &settings()).is_some());
    for range in &ranges {
        let zones: BTreeSet<&str> = range
            .voters
            .iter()
            .map(|id| nodes.iter().find(|n| n.id == *id).unwrap().zone.as_str())
            .collect();
        assert_eq!(zones.len(), 3, "{range:?}");
    }
}

fn arbitrary_cluster() -> impl Strategy<Value = (Vec<NodeInfo>, Vec<RangeLoad>)> {
    (3u64..8).prop_flat_map(|node_count| {
        let states = proptest::collection::vec(0u8..10, node_count as usize);
        let ranges = proptest::collection::vec(
            proptest::sample::subsequence(
                (1..=node_count).collect::<Vec<_>>(),
                1..=4.min(node_count as usize),
            ),
            1..15,
        );
        (states, ranges).prop_map(move |(states, replica_sets)| {
            let nodes: Vec<NodeInfo> = (1..=node_count)
                .zip(states)
                .map(|(id, roll)| NodeInfo {
                    id,
                    address: format!("n{id}"),
                    // Mostly active; some leaving; at most the first two nodes dead.
                    state: match roll {
                        0 => NodeState::Draining,
                        1 => NodeState::Decommissioned,
                        _ => NodeState::Active,
                    },
                    live: !(roll == 2 && id <= 2),
                    dead: roll == 2 && id <= 2,
                    // Three zones; some nodes do not say theirs.
                    zone: if roll % 3 == 0 {
                        String::new()
                    } else {
                        format!("z{}", id % 3)
                    },
                })
                .collect();
            let ranges = replica_sets
                .into_iter()
                .enumerate()
                .map(|(i, voters)| range(i as u64 + 1, &voters))
                .collect();
            (nodes, ranges)
        })
    })
}

proptest! {
    #[test]
    fn every_plan_is_safe_and_planning_settles((nodes, mut ranges) in arbitrary_cluster()) {
        let healthy = nodes.iter().filter(|n| n.can_take_replicas()).count();
        let rounds = converge(&nodes, &mut ranges, &settings());
        prop_assert!(rounds.is_some(), "planning did not settle: {ranges:?}");
        // Settled means stable: planning again proposes nothing (no oscillation).
        prop_assert!(plan(&nodes, &ranges, &settings()).is_empty());
        for range in &ranges {
            let distinct: BTreeSet<_> = range.voters.iter().collect();
            prop_assert_eq!(distinct.len(), range.voters.len());
            if healthy >= 3 {
                let good = range.voters.iter().filter(|id| nodes.iter().any(|n| n.id == **id && n.healthy())).count();
                prop_assert!(good >= 3, "range {} kept only {} healthy voters", range.range_id, good);
            }
        }
    }
}
