//! Encryption at rest through the store's real write paths: Raft log
//! appends, apply (plain writes, a transaction's staged value and its
//! record, the meta range's system keyspace), a learner's snapshot
//! install, restarts and data key rotation. What is checked is the disk:
//! no file under a node's data directory holds a written value.

use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use tokio::sync::oneshot;
use zdb_proto::v1::{command, LockInfo, LockKind, TxnPrewriteCommand};
use zdb_security::encryption::KeyRing;

use super::harness::{answered, header, Harness};
use super::msg::StoreMsg;
use crate::apply::Outcome;
use crate::config::RaftConfig;
use crate::engine::CF_DATA;
use crate::mvcc::keys::version_key;
use crate::mvcc::{Versions, LATEST};

/// What every test writes, and looks for on disk.
const SECRET: &str = "plaintext-that-must-never-reach-the-disk";

fn raft() -> RaftConfig {
    RaftConfig {
        log_compact_threshold: 1000,
        ..RaftConfig::default()
    }
}

/// Every file under `dir` whose bytes hold `needle`: table files, the
/// write-ahead log, the manifest, info logs, the key file.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the data directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path)
                .expect("read a data file")
                .windows(needle.len())
                .any(|window| window == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

fn write_values(harness: &mut Harness, node: u64, prefix: &str, count: usize) {
    let range = harness.descriptor(node, 1).expect("the node holds range 1");
    for i in 0..count {
        let mut written = harness.put(
            node,
            &range,
            &format!("{prefix}{i:03}"),
            &format!("{SECRET}-{prefix}{i}"),
        );
        harness.settle();
        assert_eq!(answered(&mut written).unwrap(), Outcome::Written);
    }
}

/// A transaction's staged put: a lock holding the value (CF_LOCKS).
fn stage_value(harness: &mut Harness, node: u64, key: &str) {
    let range = harness.descriptor(node, 1).unwrap();
    let prewrite = command::Kind::TxnPrewrite(TxnPrewriteCommand {
        primary: key.into(),
        start_ts: 7,
        locks: vec![LockInfo {
            key: key.into(),
            kind: LockKind::Put as i32,
            value: format!("{SECRET}-staged").into(),
            ttl_ms: 60_000,
            ..Default::default()
        }],
        check_conflicts: true,
        one_phase: false,
        spans: Vec::new(),
    });
    let mut staged = harness.propose(node, header(&range), vec![key.into()], prewrite);
    harness.settle();
    assert_eq!(answered(&mut staged).unwrap(), Outcome::Written);
}

fn add_learner(harness: &mut Harness, node: u64) {
    let range = harness.descriptor(1, 1).unwrap();
    let mut change = ConfChangeV2::default();
    change.set_transition(ConfChangeTransition::Auto);
    change.mut_changes().push(ConfChangeSingle {
        change_type: ConfChangeType::AddLearnerNode,
        node_id: node,
        ..Default::default()
    });
    let (responder, mut answer) = oneshot::channel();
    harness.nodes[&1]
        .sender
        .send(StoreMsg::ChangeMembership {
            range_id: range.range_id,
            epoch: range.epoch,
            change,
            responder,
        })
        .unwrap();
    harness.settle();
    assert!(matches!(answer.try_recv(), Ok(Ok(Outcome::ConfChanged(_)))));
}

fn value(harness: &Harness, node: u64, key: &str) -> Option<String> {
    harness
        .data(node)
        .get(key.as_bytes())
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

#[test]
fn encrypted_nodes_keep_written_values_off_the_disk_and_read_them_back() {
    let mut harness = Harness::new_encrypted(&[1, 2, 3], &[4], raft());
    harness.elect(1, 1);
    write_values(&mut harness, 1, "key", 20);
    stage_value(&mut harness, 1, "staged-key");
    // Node 4 joins as a learner: it gets range 1 (versions, the staged
    // lock, the system keyspace) by snapshot, and seals it with its own keys.
    add_learner(&mut harness, 4);
    harness.run_until("node 4 caught up", 300, |h| h.data(4).len() == 20);
    harness.converge();
    harness.assert_replicas_identical();

    let expected = format!("{SECRET}-key7");
    let mut sealed_copies = Vec::new();
    for node in [1, 2, 3, 4] {
        assert_eq!(value(&harness, node, "key007").as_deref(), Some(&*expected));
        // The write-ahead log first, then the table files a flush makes.
        let dir = harness.data_dir(node);
        assert_eq!(
            files_holding(&dir, SECRET.as_bytes()),
            Vec::<PathBuf>::new()
        );
        harness.nodes[&node].engine.flush_all().unwrap();
        // Keys stay in the clear (the first key of a table block is
        // stored whole): the check looks where the data is.
        assert!(
            files_holding(&dir, b"key000")
                .iter()
                .any(|file| file.extension().is_some_and(|ext| ext == "sst")),
            "node {node}: no table file holds the key"
        );
        assert_eq!(
            files_holding(&dir, SECRET.as_bytes()),
            Vec::<PathBuf>::new(),
            "node {node}"
        );
        let engine = &harness.nodes[&node].engine;
        let (ts, _) = Versions::new(engine)
            .version_at(b"key007", LATEST)
            .unwrap()
            .expect("a version of key007");
        let stored = engine
            .stored(CF_DATA, &version_key(b"key007", ts))
            .unwrap()
            .expect("the version is stored");
        assert_eq!(KeyRing::key_id_of(&stored), Some(1));
        sealed_copies.push(stored);
    }
    // Each node seals with data keys of its own (and random nonces): the
    // same version is stored as different bytes on every replica.
    sealed_copies.sort();
    sealed_copies.dedup();
    assert_eq!(sealed_copies.len(), 4);

    for node in [1, 2, 3, 4] {
        harness.restart(node);
    }
    for node in [1, 2, 3, 4] {
        assert_eq!(value(&harness, node, "key007").as_deref(), Some(&*expected));
        assert_eq!(harness.data(node).len(), 20, "node {node}");
    }
    // The restarted cluster elects a leader from the sealed Raft state and
    // goes on writing.
    harness.elect(2, 1);
    write_values(&mut harness, 2, "after", 3);
    harness.converge();
    assert_eq!(harness.data(4).len(), 23);
}

#[test]
fn the_grep_finds_values_in_a_plaintext_data_directory() {
    // The check above would pass vacuously if it looked in the wrong place.
    let mut harness = Harness::new(&[1, 2, 3], &[], raft());
    harness.elect(1, 1);
    write_values(&mut harness, 1, "key", 3);
    assert!(!files_holding(&harness.data_dir(1), SECRET.as_bytes()).is_empty());
}

#[test]
fn data_keys_rotate_without_a_stop_and_old_values_stay_readable() {
    let mut harness = Harness::new_encrypted(&[1, 2, 3], &[], raft());
    harness.elect(1, 1);
    write_values(&mut harness, 1, "old", 5);
    for node in [1, 2, 3] {
        let status = harness.nodes[&node]
            .engine
            .key_ring()
            .expect("encrypted")
            .rotate()
            .unwrap();
        assert_eq!((status.current_key_id, status.data_keys), (2, 2));
    }
    write_values(&mut harness, 1, "new", 5);
    harness.converge();
    for node in [1, 2, 3] {
        harness.restart(node);
        let data = harness.data(node);
        assert_eq!(data.len(), 10, "node {node}");
        assert_eq!(
            value(&harness, node, "old002").as_deref(),
            Some(&*format!("{SECRET}-old2"))
        );
        assert_eq!(
            value(&harness, node, "new002").as_deref(),
            Some(&*format!("{SECRET}-new2"))
        );
        let ring = harness.nodes[&node].engine.key_ring().unwrap();
        assert_eq!(ring.status().current_key_id, 2);
        harness.nodes[&node].engine.flush_all().unwrap();
        assert_eq!(
            files_holding(&harness.data_dir(node), SECRET.as_bytes()),
            Vec::<PathBuf>::new()
        );
    }
}
