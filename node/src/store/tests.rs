//! In-process tests of the store: elections, splits, membership changes,
//! log compaction, and the race between a split and the writes proposed
//! just before it. Each runs several stores with a manual clock and a
//! network the test controls (see `harness`), so each is deterministic.

use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use zdb_proto::v1::RangeDescriptor;

use super::harness::{answered, Answer, Harness};
use super::msg::StoreMsg;
use crate::apply::Outcome;
use crate::config::RaftConfig;
use crate::error::Error;

fn raft() -> RaftConfig {
    RaftConfig {
        log_compact_threshold: 1000,
        ..RaftConfig::default()
    }
}

fn three_nodes() -> Harness {
    let mut harness = Harness::new(&[1, 2, 3], &[], raft());
    harness.elect(1, 1);
    harness
}

fn value(harness: &Harness, node: u64, key: &str) -> Option<String> {
    harness
        .data(node)
        .get(key.as_bytes())
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

fn split_answer(answer: &mut Answer) -> (RangeDescriptor, RangeDescriptor) {
    match answered(answer) {
        Ok(Outcome::Split { left, right }) => (left, right),
        other => panic!("the split did not apply: {other:?}"),
    }
}

#[test]
fn a_leader_is_elected_and_its_writes_reach_every_replica() {
    let mut harness = three_nodes();
    let range = harness.descriptor(1, 1).unwrap();
    let mut written = harness.put(1, &range, "a", "1");
    harness.settle();
    assert_eq!(answered(&mut written).unwrap(), Outcome::Written);
    harness.converge();
    assert_eq!(value(&harness, 3, "a").as_deref(), Some("1"));

    let mut refused = harness.put(2, &range, "b", "2");
    harness.settle();
    assert!(
        matches!(
            answered(&mut refused),
            Err(Error::NotLeader { leader_id: 1, .. })
        ),
        "a follower sends writes to the leader"
    );
}

#[test]
fn a_cut_off_leader_is_replaced_and_catches_up_when_it_returns() {
    let mut harness = three_nodes();
    harness.set_rule(|&(from, to, _, _)| from != 1 && to != 1);
    harness.run_until("another node leads", 200, |h| {
        h.leads(2, 1) || h.leads(3, 1)
    });
    let leader = if harness.leads(2, 1) { 2 } else { 3 };
    let range = harness.descriptor(leader, 1).unwrap();
    let mut written = harness.put(leader, &range, "k", "while 1 was away");
    harness.settle();
    assert_eq!(answered(&mut written).unwrap(), Outcome::Written);

    harness.deliver_all();
    harness.run_until("node 1 caught up", 200, |h| {
        h.data(1).contains_key(b"k".as_slice()) && !h.leads(1, 1)
    });
    harness.assert_replicas_identical();
}

#[test]
fn a_split_gives_every_replica_both_halves_and_the_new_range_a_leader() {
    let mut harness = three_nodes();
    let range = harness.descriptor(1, 1).unwrap();
    let mut split = harness.split(1, &range, "m", 2);
    harness.settle();
    let (left, right) = split_answer(&mut split);
    assert_eq!(
        (left.end_key.as_slice(), right.start_key.as_slice()),
        (&b"m"[..], &b"m"[..])
    );
    let version = |range: &RangeDescriptor| range.epoch.unwrap().version;
    assert_eq!(
        version(&left),
        version(&range) + 1,
        "a split bumps the version"
    );
    assert_eq!(left.epoch.unwrap().conf_ver, range.epoch.unwrap().conf_ver);
    for node in [1, 2, 3] {
        assert_eq!(harness.descriptor(node, 1), Some(left.clone()));
        assert_eq!(harness.descriptor(node, 2), Some(right.clone()));
    }
    harness.run_until("range 2 has a leader", 50, |h| h.leads(1, 2));
    let mut written = harness.put(1, &right, "x", "1");
    harness.settle();
    assert_eq!(answered(&mut written).unwrap(), Outcome::Written);
}

/// The defect of issue 15, item 1: a write proposed to the parent while the
/// split entry is in flight lands in the log after it.
#[test]
fn a_write_proposed_before_a_split_is_refused_after_it_on_every_replica() {
    let mut harness = three_nodes();
    let range = harness.descriptor(1, 1).unwrap();
    // Both go into the same pass, so the split's entry comes first.
    let mut split = harness.split(1, &range, "m", 2);
    let mut stale = harness.put(1, &range, "x", "stale");
    harness.settle();
    let (left, right) = split_answer(&mut split);
    match answered(&mut stale) {
        Err(Error::EpochNotMatch { current }) => {
            assert_eq!(current, vec![left, right], "the refusal names both halves");
        }
        other => panic!("the stale write was not refused: {other:?}"),
    }
    for node in [1, 2, 3] {
        assert_eq!(
            value(&harness, node, "x"),
            None,
            "node {node} applied a stale write"
        );
    }
}

/// The divergence that defect allowed: a replica that catches up on the
/// parent after the new range took writes must not apply the parent's
/// stale write over them.
#[test]
fn a_lagging_replica_never_overwrites_the_new_range_with_a_stale_write() {
    let mut harness = three_nodes();
    let range = harness.descriptor(1, 1).unwrap();
    // Node 3 hears nothing of range 1 for a while.
    harness.set_rule(|&(from, to, range_id, _)| !(range_id == 1 && (from == 3 || to == 3)));
    let mut split = harness.split(1, &range, "m", 2);
    let mut stale = harness.put(1, &range, "x", "stale");
    harness.settle();
    let (_, right) = split_answer(&mut split);
    let _ = answered(&mut stale);
    // Node 3 gets range 2 by snapshot from its leader, then its writes.
    harness.run_until("range 2 is led and on node 3", 200, |h| {
        h.leads(1, 2) && h.descriptor(3, 2).is_some()
    });
    let mut fresh = harness.put(1, &right, "x", "fresh");
    harness.settle();
    assert_eq!(answered(&mut fresh).unwrap(), Outcome::Written);
    harness.run_until("node 3 has the fresh write", 100, |h| {
        value(h, 3, "x").as_deref() == Some("fresh")
    });
    // Now node 3 catches up on range 1: the split, then the stale write.
    harness.deliver_all();
    harness.run_until("node 3 applied range 1's log", 200, |h| {
        h.descriptor(3, 1) == h.descriptor(1, 1)
    });
    harness.settle();
    harness.assert_replicas_identical();
    assert_eq!(value(&harness, 3, "x").as_deref(), Some("fresh"));
}

/// The range table as node 1 (which leads every range here) has it.
fn table(harness: &Harness) -> Vec<RangeDescriptor> {
    harness.nodes[&1]
        .store
        .replicas
        .values()
        .map(|replica| replica.descriptor().clone())
        .collect()
}

fn owner(table: &[RangeDescriptor], key: &str) -> RangeDescriptor {
    table
        .iter()
        .find(|range| crate::range::descriptor::contains(range, key.as_bytes()))
        .cloned()
        .expect("the table covers every key")
}

/// Writers keep using the range table they saw while ranges split under
/// them and one replica of the splitting range lags behind: every write is
/// either applied by the range that owns its key, on every replica, or
/// refused; the lagging replica, catching up on the parent after the new
/// range took writes, ends up like the others.
#[test]
fn splits_under_writers_on_both_sides_keep_every_replica_identical() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut harness = three_nodes();
    let keys: Vec<String> = (0..40).map(|i| format!("k{i:02}")).collect();
    let mut writes = Vec::new();
    // Each round's writers come back to the keys of the round before.
    let mut hot: Vec<String> = Vec::new();
    let mut propose = |harness: &mut Harness, table: &[RangeDescriptor], label: String| {
        let mut proposed = Vec::new();
        for i in 0..6 {
            let key = match hot.get(i) {
                Some(key) if i % 2 == 0 => key.clone(),
                _ => keys[rng.random_range(0..keys.len())].clone(),
            };
            let value = format!("{label}{i}");
            let answer = harness.put(1, &owner(table, &key), &key, &value);
            proposed.push((key, value, answer));
        }
        hot = proposed.iter().map(|(key, _, _)| key.clone()).collect();
        proposed
    };
    for (round, split_at) in ["k20", "k10", "k30", "k05", "k15", "k25", "k35"]
        .iter()
        .enumerate()
    {
        let before = table(&harness);
        let parent = owner(&before, split_at);
        let parent_id = parent.range_id;
        let new_range_id = 10 + round as u64;
        let lagging = 2 + round as u64 % 2;
        harness.set_rule(move |&(from, to, range_id, _)| {
            !(range_id == parent_id && (from == lagging || to == lagging))
        });
        writes.extend(propose(&mut harness, &before, format!("r{round}-before")));
        let mut split = harness.split(1, &parent, split_at, new_range_id);
        writes.extend(propose(&mut harness, &before, format!("r{round}-stale")));
        harness.run_until("the new range is led and on the lagging node", 300, |h| {
            h.leads(1, new_range_id) && h.descriptor(lagging, new_range_id).is_some()
        });
        split_answer(&mut split);
        let after = table(&harness);
        writes.extend(propose(&mut harness, &after, format!("r{round}-after")));
        let applied = |h: &Harness, node: u64| {
            h.nodes[&node].store.replicas[&new_range_id]
                .status()
                .applied_index
        };
        harness.settle();
        harness.run_until(
            "the lagging node applied the new range's writes",
            100,
            |h| applied(h, lagging) == applied(h, 1),
        );
        harness.deliver_all();
        harness.run_until("every replica applied the split", 300, |h| {
            [2, 3]
                .iter()
                .all(|&n| h.descriptor(n, parent_id) == h.descriptor(1, parent_id))
        });
    }
    harness.converge();
    harness.assert_replicas_identical();

    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for (key, value, mut answer) in writes {
        match answer.try_recv() {
            Ok(Ok(Outcome::Written)) => acked.push((key, value)),
            Ok(Err(Error::EpochNotMatch { .. })) => refused.push(value),
            other => panic!("write {key}={value}: unexpected answer {other:?}"),
        }
    }
    let data = harness.data(1);
    for value in &refused {
        assert!(
            !data.values().any(|held| held == value.as_bytes()),
            "refused write {value} was applied"
        );
    }
    for (key, value) in data {
        let key = String::from_utf8(key).unwrap();
        let value = String::from_utf8(value).unwrap();
        assert!(
            acked.iter().any(|(k, v)| *k == key && *v == value),
            "{key}={value} is not an acknowledged write"
        );
    }
    assert!(!refused.is_empty() && !acked.is_empty());
}

fn change(kind: ConfChangeType, node_id: u64, transition: ConfChangeTransition) -> ConfChangeV2 {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(kind);
    single.node_id = node_id;
    let mut change = ConfChangeV2::default();
    change.set_transition(transition);
    change.set_changes(vec![single].into());
    change
}

fn change_membership(
    harness: &mut Harness,
    range: &RangeDescriptor,
    change: ConfChangeV2,
) -> Answer {
    let (responder, answer) = oneshot::channel();
    harness.nodes[&1]
        .sender
        .send(StoreMsg::ChangeMembership {
            range_id: range.range_id,
            epoch: range.epoch,
            change,
            responder,
        })
        .unwrap();
    answer
}

#[test]
fn a_learner_catches_up_by_snapshot_and_is_promoted_through_joint_consensus() {
    let mut harness = Harness::new(&[1, 2, 3], &[4], raft());
    harness.elect(1, 1);
    let range = harness.descriptor(1, 1).unwrap();
    let mut written = harness.put(1, &range, "a", "1");
    harness.settle();
    answered(&mut written).unwrap();

    let learner = change(
        ConfChangeType::AddLearnerNode,
        4,
        ConfChangeTransition::Auto,
    );
    let mut added = change_membership(&mut harness, &range, learner);
    harness.settle();
    let Ok(Outcome::ConfChanged(with_learner)) = answered(&mut added) else {
        panic!("the learner was not added");
    };
    assert!(with_learner
        .replicas
        .iter()
        .any(|r| r.node_id == 4 && r.learner));
    harness.run_until("node 4 caught up", 200, |h| {
        h.data(4).contains_key(b"a".as_slice())
    });

    // Decided on the range before the learner joined: refused.
    let promote = change(ConfChangeType::AddNode, 4, ConfChangeTransition::Implicit);
    let mut stale = change_membership(&mut harness, &range, promote.clone());
    harness.settle();
    assert!(matches!(
        answered(&mut stale),
        Err(Error::EpochNotMatch { .. })
    ));

    let mut promoted = change_membership(&mut harness, &with_learner, promote);
    harness.run_until("the joint configuration is left", 100, |h| {
        h.descriptor(4, 1).is_some_and(|range| {
            range.replicas.len() == 4
                && range.replicas.iter().all(|r| !r.learner)
                && range.epoch.unwrap().conf_ver == with_learner.epoch.unwrap().conf_ver + 2
        })
    });
    assert!(matches!(
        answered(&mut promoted),
        Ok(Outcome::ConfChanged(_))
    ));
    harness.assert_replicas_identical();
}

#[test]
fn a_membership_change_proposed_before_a_split_is_refused_after_it() {
    let mut harness = Harness::new(&[1, 2, 3], &[4], raft());
    harness.elect(1, 1);
    let range = harness.descriptor(1, 1).unwrap();
    let mut split = harness.split(1, &range, "m", 2);
    let learner = change(
        ConfChangeType::AddLearnerNode,
        4,
        ConfChangeTransition::Auto,
    );
    let mut added = change_membership(&mut harness, &range, learner);
    harness.settle();
    split_answer(&mut split);
    assert!(matches!(
        answered(&mut added),
        Err(Error::EpochNotMatch { .. })
    ));
    for node in [1, 2, 3] {
        let members = harness.descriptor(node, 1).unwrap().replicas;
        assert!(
            members.iter().all(|r| r.node_id != 4),
            "node {node}: {members:?}"
        );
    }
}

#[test]
fn a_follower_that_missed_compacted_entries_catches_up_by_snapshot() {
    let mut harness = Harness::new(
        &[1, 2, 3],
        &[],
        RaftConfig {
            log_compact_threshold: 20,
            ..RaftConfig::default()
        },
    );
    harness.elect(1, 1);
    let range = harness.descriptor(1, 1).unwrap();
    harness.set_rule(|&(from, to, _, _)| from != 3 && to != 3);
    for i in 0..200 {
        let mut written = harness.put(1, &range, &format!("key{i:03}"), "v");
        harness.settle();
        answered(&mut written).unwrap();
    }
    let first_index = |h: &Harness| h.nodes[&1].store.replicas[&1].status().first_log_index;
    assert!(first_index(&harness) > 100, "the leader compacted its log");
    harness.deliver_all();
    harness.run_until("node 3 caught up", 300, |h| h.data(3).len() == 200);
    harness.assert_replicas_identical();
}

/// Issue 17: a write whose oracle timestamp is older than a snapshot read
/// the leader served commits above that read, so the read's snapshot never
/// changes; and a read at a timestamp waits for the writes proposed before it.
#[test]
fn writes_commit_above_every_snapshot_read_the_leader_served() {
    let mut harness = three_nodes();
    let range = harness.descriptor(1, 1).unwrap();
    let mut first = harness.propose_at(
        1,
        super::harness::header(&range),
        vec![b"x".to_vec()],
        super::harness::put("x", "1"),
        10,
    );
    harness.settle();
    answered(&mut first).unwrap();

    // A write is proposed (oracle timestamp 40) and a read at 100 arrives
    // before it commits: the read waits for it.
    harness.set_rule(|_| false);
    let mut in_flight = harness.propose_at(
        1,
        super::harness::header(&range),
        vec![b"x".to_vec()],
        super::harness::put("x", "2"),
        40,
    );
    let mut read = harness.read_at(1, &range, "x", 100);
    harness.round(false);
    assert!(
        read.try_recv().is_err(),
        "the read went ahead of a write proposed before it"
    );
    harness.set_rule(|_| true);
    harness.settle();
    answered(&mut in_flight).unwrap();
    read.try_recv().expect("answered").unwrap();
    assert_eq!(harness.value_at(1, "x", 100), Some(b"2".to_vec()));

    // A write that took its timestamp (50) before the read at 100 commits
    // above it: the state at 100 stays as the read saw it.
    let mut late = harness.propose_at(
        1,
        super::harness::header(&range),
        vec![b"x".to_vec()],
        super::harness::put("x", "3"),
        50,
    );
    harness.settle();
    answered(&mut late).unwrap();
    harness.converge();
    for node in 1..=3 {
        assert_eq!(
            harness.value_at(node, "x", 100),
            Some(b"2".to_vec()),
            "node {node}"
        );
        assert_eq!(
            harness.value_at(node, "x", 101),
            Some(b"3".to_vec()),
            "node {node}"
        );
        assert_eq!(
            harness.value_at(node, "x", 39),
            Some(b"1".to_vec()),
            "node {node}"
        );
    }
    harness.assert_replicas_identical();
}
