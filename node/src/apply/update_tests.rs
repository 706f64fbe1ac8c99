//! Read-modify-writes and delete-ranges at apply: what they answer, what
//! they leave, and what keeps them out.

use zdb_proto::v1::*;

use super::tests::{entry, header_of, range, stored, write, Fixture};
use super::*;

fn update(h: Option<CommandHeader>, ts: u64, key: &str, op: update_op::Kind) -> Command {
    Command {
        now_ms: 1_000,
        ts,
        header: h,
        kind: Some(command::Kind::Update(UpdateCommand {
            key: key.into(),
            op: Some(UpdateOp { kind: Some(op) }),
            max_value_bytes: 16,
            blind: false,
        })),
    }
}

fn blind(mut command: Command) -> Command {
    if let Some(command::Kind::Update(update)) = &mut command.kind {
        update.blind = true;
    }
    command
}

fn set(value: &str, condition: SetCondition, expiry: Option<expiry::Kind>) -> update_op::Kind {
    update_op::Kind::Set(SetOp {
        value: value.into(),
        condition: condition as i32,
        expiry: expiry.map(|kind| Expiry { kind: Some(kind) }),
    })
}

fn answer(result: &ExecResult) -> &UpdateResponse {
    match result {
        ExecResult::Applied(Outcome::Update(response)) => response,
        other => panic!("not an update's answer: {other:?}"),
    }
}

#[test]
fn increments_in_one_batch_build_on_each_other_and_keep_the_expiry() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let results = fixture.apply(&[
        entry(&write(h, 10, vec![stored("n", "40", 9_000)])),
        entry(&update(h, 11, "n", update_op::Kind::Increment(1))),
        entry(&update(h, 12, "n", update_op::Kind::Increment(1))),
        entry(&update(
            h,
            13,
            "s",
            update_op::Kind::Append(b"0123456789abcdef!".to_vec()),
        )),
        entry(&update(h, 14, "n", update_op::Kind::Append(b"x".to_vec()))),
        entry(&update(h, 15, "n", update_op::Kind::Increment(1))),
    ]);
    let second = answer(&results[2]);
    assert_eq!(
        (second.value.as_slice(), second.expire_at_ms),
        (&b"42"[..], 9_000)
    );
    // Past the proposer's limit: refused alike on every replica, nothing written.
    assert_eq!(answer(&results[3]).refusal, UpdateRefusal::TooLarge as i32);
    assert_eq!(fixture.value("s"), None);
    assert_eq!(answer(&results[4]).value, b"42x");
    assert_eq!(
        answer(&results[5]).refusal,
        UpdateRefusal::NotAnInteger as i32
    );
    assert_eq!(fixture.value("n").as_deref(), Some(&b"42x"[..]));
}

#[test]
fn conditional_sets_and_takes_answer_with_the_value_before() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let results = fixture.apply(&[
        entry(&update(h, 10, "k", set("a", SetCondition::IfPresent, None))),
        entry(&update(h, 11, "k", set("b", SetCondition::IfAbsent, None))),
        entry(&update(h, 12, "k", set("c", SetCondition::IfAbsent, None))),
        entry(&update(h, 13, "k", update_op::Kind::Take(true))),
        entry(&update(h, 14, "k", update_op::Kind::Take(true))),
    ]);
    assert!(!answer(&results[0]).applied);
    assert!(answer(&results[1]).applied);
    let refused = answer(&results[2]);
    assert!(!refused.applied && refused.found && refused.previous == b"b");
    assert!(answer(&results[3]).applied && answer(&results[3]).previous == b"b");
    assert!(!answer(&results[4]).applied && !answer(&results[4]).found);
    assert_eq!(fixture.value("k"), None);
}

#[test]
fn blind_sets_write_without_reading_and_only_plain_sets_are_blind() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let always = |value| set(value, SetCondition::Always, None);
    let results = fixture.apply(&[
        entry(&write(h, 10, vec![stored("k", "a", 9_000)])),
        entry(&blind(update(h, 11, "k", always("b")))),
        // A condition and KEEPTTL depend on the key: read whatever the flag says.
        entry(&blind(update(
            h,
            12,
            "k",
            set("c", SetCondition::IfAbsent, None),
        ))),
        entry(&blind(update(
            h,
            13,
            "k",
            set("d", SetCondition::Always, Some(expiry::Kind::Keep(true))),
        ))),
        // An expiry already past (now_ms is 1,000) deletes the key unread.
        entry(&blind(update(
            h,
            14,
            "k",
            set("e", SetCondition::Always, Some(expiry::Kind::AtMs(500))),
        ))),
    ]);
    let written = answer(&results[1]);
    assert!(written.applied && !written.found && written.previous.is_empty());
    let refused = answer(&results[2]);
    assert!(!refused.applied && refused.found && refused.previous == b"b");
    let kept = answer(&results[3]);
    assert!(kept.applied && kept.found && kept.previous == b"b");
    assert_eq!(
        kept.expire_at_ms, 0,
        "the blind set before it cleared the expiry"
    );
    assert!(answer(&results[4]).applied);
    assert_eq!(fixture.value("k"), None);
}

#[test]
fn a_delete_range_clears_only_its_span_and_waits_for_a_transaction_in_it() {
    let range = range("", "");
    let h = header_of(&range);
    let mut fixture = Fixture::new(range);
    let delete_range = |ts: u64, start: &str, end: &str| Command {
        now_ms: 1_000,
        ts,
        header: h,
        kind: Some(command::Kind::DeleteRange(DeleteRangeCommand {
            start_key: start.into(),
            end_key: end.into(),
        })),
    };
    let results = fixture.apply(&[
        entry(&write(
            h,
            10,
            vec![
                stored("a/1", "x", 0),
                stored("a/2", "y", 0),
                stored("b/1", "z", 0),
            ],
        )),
        entry(&write(h, 11, vec![stored("a/3", "gone", 500)])),
        entry(&delete_range(12, "a/", "a0")),
    ]);
    // The expired key was no longer live: two keys deleted.
    assert_eq!(results[2], ExecResult::Applied(Outcome::Deleted(2)));
    assert_eq!(fixture.value("a/1"), None);
    assert_eq!(fixture.value("b/1").as_deref(), Some(&b"z"[..]));

    let prewrite = Command {
        now_ms: 1_000,
        ts: 20,
        header: h,
        kind: Some(command::Kind::TxnPrewrite(TxnPrewriteCommand {
            primary: "b/2".into(),
            start_ts: 20,
            locks: vec![LockInfo {
                key: "b/2".into(),
                kind: LockKind::Put as i32,
                value: "staged".into(),
                ttl_ms: 1_000,
                ..Default::default()
            }],
            ..Default::default()
        })),
    };
    let results = fixture.apply(&[entry(&prewrite), entry(&delete_range(21, "b/", "b0"))]);
    assert!(matches!(
        &results[1],
        ExecResult::Refused(Refusal::Txn { conflict: Conflict::Locked(lock), .. }) if lock.key == b"b/2"
    ));
    assert_eq!(fixture.value("b/1").as_deref(), Some(&b"z"[..]));
}
