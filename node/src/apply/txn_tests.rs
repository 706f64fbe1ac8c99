//! Transaction commands at apply: what each refuses and what it leaves.

use zdb_proto::v1::*;

use super::tests::{entry, header_of, range, stored, write, Fixture};
use super::*;
use crate::txn::{locks, records};

fn lock(key: &str, kind: LockKind, value: &str) -> LockInfo {
    LockInfo {
        key: key.into(),
        kind: kind as i32,
        value: value.into(),
        ttl_ms: 1_000,
        ..Default::default()
    }
}

fn command(h: Option<CommandHeader>, ts: u64, now_ms: u64, kind: command::Kind) -> Command {
    Command {
        now_ms,
        ts,
        header: h,
        kind: Some(kind),
    }
}

fn prewrite(primary: &str, start_ts: u64, locks: Vec<LockInfo>, check: bool) -> command::Kind {
    command::Kind::TxnPrewrite(TxnPrewriteCommand {
        primary: primary.into(),
        start_ts,
        locks,
        check_conflicts: check,
        one_phase: false,
        spans: Vec::new(),
    })
}

fn commit(start_ts: u64, keys: &[&str], primary: &str) -> command::Kind {
    command::Kind::TxnCommit(TxnCommitCommand {
        start_ts,
        keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        primary: primary.into(),
    })
}

fn rollback(start_ts: u64, keys: &[&str], primary: &str, only_if_expired: bool) -> command::Kind {
    command::Kind::TxnRollback(TxnRollbackCommand {
        start_ts,
        keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        primary: primary.into(),
        only_if_expired,
    })
}

fn refused_by(result: &ExecResult) -> Option<&Conflict> {
    match result {
        ExecResult::Refused(Refusal::Txn { conflict, .. }) => Some(conflict),
        _ => None,
    }
}

#[test]
fn a_prewrite_stages_values_that_commit_makes_versions_at_the_commit_ts() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let staged = vec![
        lock("a", LockKind::Put, "1"),
        lock("b", LockKind::Delete, ""),
    ];
    let results = fixture.apply(&[
        entry(&write(h, 5, vec![stored("b", "old", 0)])),
        entry(&command(h, 0, 100, prewrite("a", 10, staged, true))),
    ]);
    assert_eq!(results[1], ExecResult::Applied(Outcome::Written));
    assert_eq!(fixture.value("a"), None, "staged, not visible");
    assert_eq!(fixture.value("b"), Some(b"old".to_vec()));
    let held = locks::read(&fixture.engine, b"a").unwrap().unwrap();
    assert_eq!(held.holders[0].heartbeat_ms, 100, "the proposer's clock");

    let results = fixture.apply(&[entry(&command(h, 20, 101, commit(10, &["a", "b"], "a")))]);
    assert_eq!(results[0], ExecResult::Applied(Outcome::Written));
    assert_eq!(fixture.value("a"), Some(b"1".to_vec()));
    assert_eq!(fixture.value("b"), None);
    assert!(locks::read(&fixture.engine, b"a").unwrap().is_none());
    assert_eq!(
        records::read(&fixture.engine, b"a", 10).unwrap(),
        Some(records::Fate::Committed(20))
    );
    // Committing again (a retry after an unknown outcome) is harmless.
    let again = fixture.apply(&[entry(&command(h, 20, 102, commit(10, &["a", "b"], "a")))]);
    assert_eq!(again[0], ExecResult::Applied(Outcome::Written));
}

#[test]
fn first_committer_wins_and_locks_keep_other_transactions_out() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let results = fixture.apply(&[
        entry(&write(h, 15, vec![stored("k", "v15", 0)])),
        // Started at 10: k changed at 15 after its snapshot.
        entry(&command(
            h,
            0,
            1,
            prewrite("k", 10, vec![lock("k", LockKind::Put, "x")], true),
        )),
        // Read committed does not check.
        entry(&command(
            h,
            0,
            1,
            prewrite("k", 11, vec![lock("k", LockKind::Put, "y")], false),
        )),
        entry(&command(
            h,
            0,
            1,
            prewrite("k", 16, vec![lock("k", LockKind::Put, "z")], true),
        )),
    ]);
    assert_eq!(
        refused_by(&results[1]),
        Some(&Conflict::Write {
            key: b"k".to_vec(),
            conflict_ts: 15
        })
    );
    assert_eq!(results[2], ExecResult::Applied(Outcome::Written));
    match refused_by(&results[3]) {
        Some(Conflict::Locked(held)) => assert_eq!(held.start_ts, 11),
        other => panic!("expected the lock of 11, got {other:?}"),
    }
}

#[test]
fn shared_locks_coexist_and_keep_writers_and_plain_writes_out() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let results = fixture.apply(&[
        entry(&command(
            h,
            0,
            1,
            prewrite("p", 10, vec![lock("s", LockKind::Shared, "")], true),
        )),
        entry(&command(
            h,
            0,
            1,
            prewrite("q", 11, vec![lock("s", LockKind::Shared, "")], true),
        )),
        entry(&command(
            h,
            0,
            1,
            prewrite("r", 12, vec![lock("s", LockKind::Put, "v")], true),
        )),
        entry(&write(h, 13, vec![stored("s", "plain", 0)])),
    ]);
    assert_eq!(results[0], ExecResult::Applied(Outcome::Written));
    assert_eq!(results[1], ExecResult::Applied(Outcome::Written));
    assert!(matches!(refused_by(&results[2]), Some(Conflict::Locked(_))));
    match &results[3] {
        ExecResult::Refused(Refusal::Txn {
            start_ts: 0,
            conflict: Conflict::Locked(_),
        }) => {}
        other => panic!("a plain write must keep off a locked key: {other:?}"),
    }
    assert_eq!(fixture.value("s"), None);
}

#[test]
fn a_rollback_is_recorded_so_a_late_prewrite_and_commit_are_refused() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let results = fixture.apply(&[
        entry(&command(h, 0, 1, rollback(10, &["p"], "p", false))),
        entry(&command(
            h,
            0,
            1,
            prewrite("p", 10, vec![lock("p", LockKind::Put, "v")], true),
        )),
        entry(&command(h, 20, 1, commit(10, &["p"], "p"))),
    ]);
    assert_eq!(
        results[0],
        ExecResult::Applied(Outcome::TxnFate(Some(records::Fate::RolledBack)))
    );
    assert!(matches!(
        refused_by(&results[1]),
        Some(Conflict::Aborted(_))
    ));
    assert!(matches!(
        refused_by(&results[2]),
        Some(Conflict::Aborted(_))
    ));
    assert_eq!(fixture.value("p"), None);
}

#[test]
fn an_expiry_rollback_waits_for_the_primary_lock_to_run_out_and_spares_a_commit() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let staged = vec![lock("p", LockKind::Put, "v")];
    let results = fixture.apply(&[
        entry(&command(h, 0, 1_000, prewrite("p", 10, staged, true))),
        // ttl 1000 ms from 1000: alive at 1500.
        entry(&command(h, 0, 1_500, rollback(10, &["p"], "p", true))),
    ]);
    assert_eq!(results[1], ExecResult::Applied(Outcome::TxnFate(None)));
    let results = fixture.apply(&[
        entry(&command(h, 20, 1_600, commit(10, &["p"], "p"))),
        entry(&command(h, 0, 5_000, rollback(10, &["p"], "p", true))),
    ]);
    assert_eq!(results[0], ExecResult::Applied(Outcome::Written));
    assert_eq!(
        results[1],
        ExecResult::Applied(Outcome::TxnFate(Some(records::Fate::Committed(20))))
    );
    assert_eq!(fixture.value("p"), Some(b"v".to_vec()));
}

#[test]
fn a_span_lock_keeps_writers_out_of_the_span_and_checks_what_changed() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let span = |start: &str, end: &str| SpanLockInfo {
        start_key: start.into(),
        end_key: end.into(),
        ttl_ms: 1_000,
        ..Default::default()
    };
    let with_span = |start_ts: u64, spans: Vec<SpanLockInfo>| {
        command::Kind::TxnPrewrite(TxnPrewriteCommand {
            primary: b"p".to_vec(),
            start_ts,
            locks: vec![lock("p", LockKind::Put, "v")],
            check_conflicts: true,
            one_phase: false,
            spans,
        })
    };
    let results = fixture.apply(&[
        entry(&write(h, 12, vec![stored("m", "new", 0)])),
        // Scanned [a, z) at 10; m changed at 12.
        entry(&command(h, 0, 1, with_span(10, vec![span("a", "z")]))),
        entry(&command(h, 0, 1, with_span(13, vec![span("a", "n")]))),
        entry(&write(h, 14, vec![stored("c", "phantom", 0)])),
        entry(&write(h, 15, vec![stored("x", "outside", 0)])),
    ]);
    assert_eq!(
        refused_by(&results[1]),
        Some(&Conflict::Write {
            key: b"m".to_vec(),
            conflict_ts: 12
        })
    );
    assert_eq!(results[2], ExecResult::Applied(Outcome::Written));
    assert!(matches!(refused_by(&results[3]), Some(Conflict::Locked(_))));
    assert_eq!(results[4], ExecResult::Applied(Outcome::Written));
    let results = fixture.apply(&[
        entry(&command(h, 20, 2, commit(13, &["p"], "p"))),
        entry(&write(h, 21, vec![stored("c", "after", 0)])),
    ]);
    assert_eq!(
        results[1],
        ExecResult::Applied(Outcome::Written),
        "released at commit"
    );
}

#[test]
fn a_one_phase_prewrite_writes_versions_and_releases_its_pessimistic_locks() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let lock_cmd = command::Kind::TxnLock(TxnLockCommand {
        primary: b"a".to_vec(),
        start_ts: 10,
        locks: vec![
            lock("a", LockKind::Exclusive, ""),
            lock("b", LockKind::Exclusive, ""),
        ],
    });
    let one_phase = command::Kind::TxnPrewrite(TxnPrewriteCommand {
        primary: b"a".to_vec(),
        start_ts: 10,
        locks: vec![
            lock("a", LockKind::Put, "1"),
            lock("b", LockKind::Exclusive, ""),
        ],
        check_conflicts: true,
        one_phase: true,
        spans: Vec::new(),
    });
    let results = fixture.apply(&[
        entry(&command(h, 0, 1, lock_cmd)),
        entry(&write(h, 11, vec![stored("b", "blocked", 0)])),
        entry(&command(h, 30, 2, one_phase)),
    ]);
    assert!(matches!(refused_by(&results[1]), Some(Conflict::Locked(_))));
    assert_eq!(results[2], ExecResult::Applied(Outcome::Timestamp(30)));
    assert_eq!(fixture.value("a"), Some(b"1".to_vec()));
    assert_eq!(fixture.value("b"), None);
    assert!(locks::read(&fixture.engine, b"b").unwrap().is_none());
}
