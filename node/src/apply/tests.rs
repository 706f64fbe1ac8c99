use std::collections::HashSet;

use prost::Message as _;
use raft::eraftpb::{ConfChangeV2, ConfState, Entry, EntryType};
use zdb_proto::v1::*;

use super::*;
use crate::engine::{ReadView, CF_TTL};
use crate::mvcc::{record, Record, Versions, LATEST};

pub(super) fn range(start: &str, end: &str) -> RangeDescriptor {
    RangeDescriptor {
        range_id: 7,
        start_key: start.into(),
        end_key: end.into(),
        epoch: Some(RangeEpoch {
            conf_ver: 2,
            version: 3,
        }),
        replicas: vec![ReplicaDescriptor {
            node_id: 1,
            replica_id: 1,
            learner: false,
        }],
    }
}

pub(super) fn header_of(range: &RangeDescriptor) -> Option<CommandHeader> {
    Some(CommandHeader {
        range_id: range.range_id,
        epoch: range.epoch,
    })
}

pub(super) fn stored(key: &str, value: &str, expire_at_ms: u64) -> StoredPut {
    StoredPut {
        key: key.into(),
        value: value.into(),
        expire_at_ms,
    }
}

pub(super) fn write(header: Option<CommandHeader>, now_ms: u64, puts: Vec<StoredPut>) -> Command {
    Command {
        now_ms,
        ts: now_ms,
        header,
        kind: Some(command::Kind::Write(WriteBatchCommand {
            mutations: puts
                .into_iter()
                .map(|put| StoredMutation {
                    op: Some(stored_mutation::Op::Put(put)),
                })
                .collect(),
        })),
    }
}

fn cas(
    header: Option<CommandHeader>,
    key: &str,
    expected: Option<&str>,
    new: &str,
    now_ms: u64,
) -> Command {
    Command {
        now_ms,
        ts: now_ms,
        header,
        kind: Some(command::Kind::Cas(CompareAndSwapCommand {
            key: key.into(),
            expected_value: expected.unwrap_or_default().into(),
            expect_absent: expected.is_none(),
            new_value: Some(stored(key, new, 0)),
        })),
    }
}

pub(super) fn entry(command: &Command) -> Entry {
    Entry {
        data: command.encode_to_vec().into(),
        ..Default::default()
    }
}

/// Applies entries to one delegate in one batch, then writes the batch.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) engine: Engine,
    delegate: ApplyDelegate,
}

impl Fixture {
    pub(super) fn new(range: RangeDescriptor) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        Fixture {
            _dir: dir,
            engine,
            delegate: ApplyDelegate::new(range),
        }
    }

    pub(super) fn apply(&mut self, entries: &[Entry]) -> Vec<ExecResult> {
        let mut batch = self.engine.batch();
        let conf_state = ConfState::from((vec![1], vec![]));
        let existing = HashSet::new();
        self.delegate.begin_batch();
        let results = entries
            .iter()
            .map(|entry| {
                let mut ctx = ApplyContext {
                    engine: &self.engine,
                    batch: &mut batch,
                    conf_state: &conf_state,
                    existing: &existing,
                };
                self.delegate.apply(&mut ctx, entry).unwrap()
            })
            .collect();
        self.engine.write(batch, false).unwrap();
        results
    }

    pub(super) fn value(&self, key: &str) -> Option<Vec<u8>> {
        let (_, raw) = Versions::new(&self.engine)
            .version_at(key.as_bytes(), LATEST)
            .unwrap()?;
        match record::decode(&raw).unwrap() {
            Record::Put { value, .. } => Some(value.to_vec()),
            Record::Tombstone => None,
        }
    }
}

#[test]
fn a_compare_and_swap_sees_writes_earlier_in_the_same_batch() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let results = fixture.apply(&[
        entry(&cas(h, "k", None, "v1", 1)),
        entry(&cas(h, "k", Some("nope"), "v2", 1)),
        entry(&cas(h, "k", Some("v1"), "v2", 1)),
    ]);
    assert_eq!(
        results,
        vec![
            ExecResult::Applied(Outcome::CompareAndSwap {
                succeeded: true,
                current: None
            }),
            ExecResult::Applied(Outcome::CompareAndSwap {
                succeeded: false,
                current: Some(b"v1".to_vec())
            }),
            ExecResult::Applied(Outcome::CompareAndSwap {
                succeeded: true,
                current: Some(b"v1".to_vec())
            }),
        ]
    );
    assert_eq!(fixture.value("k"), Some(b"v2".to_vec()));
}

#[test]
fn an_expired_value_counts_as_absent_and_is_removed_only_if_unchanged() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let expire = Command {
        now_ms: 200,
        ts: 200,
        header: h,
        kind: Some(command::Kind::Expire(ExpireCommand {
            keys: ["old", "new"]
                .into_iter()
                .map(|key| ExpiredKey {
                    key: key.into(),
                    expire_at_ms: 100,
                })
                .collect(),
        })),
    };
    let results = fixture.apply(&[
        entry(&write(
            h,
            0,
            vec![stored("old", "x", 100), stored("new", "y", 100)],
        )),
        // Expired at t=150: a compare-and-swap expecting absence succeeds.
        entry(&cas(h, "new", None, "fresh", 150)),
        entry(&expire),
    ]);
    assert!(matches!(
        results[1],
        ExecResult::Applied(Outcome::CompareAndSwap {
            succeeded: true,
            current: None
        })
    ));
    assert_eq!(fixture.value("old"), None, "ended by a tombstone");
    assert_eq!(
        Versions::new(&fixture.engine).get(b"old", 199, 50).unwrap(),
        Some(b"x".to_vec()),
        "a read before the expiry still sees the value"
    );
    assert_eq!(fixture.value("new"), Some(b"fresh".to_vec()));
    let mut ttl_entries = 0;
    fixture
        .engine
        .scan(CF_TTL, b"", b"", false, |_, _| {
            ttl_entries += 1;
            Ok(true)
        })
        .unwrap();
    assert_eq!(ttl_entries, 0);
}

#[test]
fn a_command_from_an_older_epoch_or_without_one_is_refused_and_changes_nothing() {
    let current = range("a", "m");
    let mut older = current.clone();
    older.epoch = Some(RangeEpoch {
        conf_ver: 2,
        version: 2,
    });
    let mut fixture = Fixture::new(current.clone());
    let results = fixture.apply(&[
        entry(&write(header_of(&older), 0, vec![stored("b", "stale", 0)])),
        entry(&write(None, 0, vec![stored("c", "headless", 0)])),
    ]);
    for result in &results {
        assert!(
            matches!(result, ExecResult::Refused(Refusal::StaleEpoch { current: c, .. }) if *c == current),
            "{result:?}"
        );
    }
    let ExecResult::Refused(Refusal::StaleEpoch { keys, .. }) = &results[0] else {
        unreachable!()
    };
    assert_eq!(keys, &vec![b"b".to_vec()]);
    assert_eq!((fixture.value("b"), fixture.value("c")), (None, None));
}

#[test]
fn a_key_outside_the_range_is_written_nowhere() {
    let current = range("a", "m");
    let mut fixture = Fixture::new(current.clone());
    let results = fixture.apply(&[entry(&write(
        header_of(&current),
        0,
        vec![stored("b", "1", 0), stored("x", "2", 0)],
    ))]);
    assert!(
        matches!(&results[0], ExecResult::Refused(Refusal::KeyNotInRange { key, .. }) if key == b"x"),
        "{results:?}"
    );
    assert_eq!(
        fixture.value("b"),
        None,
        "nothing of a refused batch applies"
    );
}

#[test]
fn system_commands_apply_on_the_meta_range_only() {
    let command = Command {
        kind: Some(command::Kind::AllocateRangeId(AllocateRangeIdCommand {})),
        ..Default::default()
    };
    let mut fixture = Fixture::new(range("", ""));
    assert!(matches!(
        fixture.apply(&[entry(&command)])[0],
        ExecResult::Refused(Refusal::Precondition(_))
    ));
    let mut meta = range("", "");
    meta.range_id = crate::meta::META_RANGE_ID;
    let mut fixture = Fixture::new(meta);
    assert_eq!(
        fixture.apply(&[entry(&command)]),
        vec![ExecResult::Applied(Outcome::RangeId(2))]
    );
}

#[test]
fn membership_changes_need_their_epoch_but_raft_leaving_a_joint_state_does_not() {
    let current = range("", "");
    let mut fixture = Fixture::new(current.clone());
    let change = |context: Vec<u8>| Entry {
        entry_type: EntryType::EntryConfChangeV2,
        data: protobuf::Message::write_to_bytes(&ConfChangeV2::default())
            .unwrap()
            .into(),
        context: context.into(),
        ..Default::default()
    };
    let mut older = current.clone();
    older.epoch = Some(RangeEpoch {
        conf_ver: 1,
        version: 3,
    });
    let encoded = |range: &RangeDescriptor| header_of(range).unwrap().encode_to_vec();
    let results = fixture.apply(&[
        change(Vec::new()),
        change(encoded(&older)),
        change(encoded(&current)),
    ]);
    assert!(matches!(
        results[0],
        ExecResult::ChangeMembership {
            kind: epoch::CommandKind::LeaveJoint,
            ..
        }
    ));
    assert!(matches!(
        results[1],
        ExecResult::Refused(Refusal::StaleEpoch { .. })
    ));
    assert!(matches!(
        results[2],
        ExecResult::ChangeMembership {
            kind: epoch::CommandKind::ChangeMembership,
            ..
        }
    ));
}

#[test]
fn an_entry_that_does_not_decode_is_refused_alike_everywhere() {
    let mut fixture = Fixture::new(range("", ""));
    let garbage = Entry {
        data: vec![0xff, 0xff, 0xff].into(),
        ..Default::default()
    };
    assert!(matches!(
        fixture.apply(&[garbage])[0],
        ExecResult::Refused(Refusal::Malformed(_))
    ));
}
