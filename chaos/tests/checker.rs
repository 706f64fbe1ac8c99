//! The checkers on hand-made histories: linearizable ones must pass, and
//! non-linearizable ones (stale reads, lost writes, impossible CAS results)
//! must fail, with unknown outcomes treated as "maybe applied, any time".

use zdb_chaos::checker::linearizability::{check, check_key, check_key_within, Budget, KeyVerdict};
use zdb_chaos::checker::{set, Verdict};
use zdb_chaos::history::{
    Outcome, RegisterCall, RegisterOp, RegisterReply, SetCall, SetOp, SetReply,
};

fn v(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn call(
    process: u64,
    op: RegisterOp,
    invoked: u64,
    completed: u64,
    outcome: Outcome<RegisterReply>,
) -> RegisterCall {
    RegisterCall {
        process,
        key: "k".into(),
        op,
        invoked,
        completed,
        outcome,
    }
}

fn put(process: u64, value: &str, invoked: u64, completed: u64) -> RegisterCall {
    call(
        process,
        RegisterOp::Put(v(value)),
        invoked,
        completed,
        Outcome::Ok(RegisterReply::Written),
    )
}

fn get(process: u64, seen: Option<&str>, invoked: u64, completed: u64) -> RegisterCall {
    call(
        process,
        RegisterOp::Get,
        invoked,
        completed,
        Outcome::Ok(RegisterReply::Read(seen.map(v))),
    )
}

fn unknown_put(process: u64, value: &str, invoked: u64, completed: u64) -> RegisterCall {
    call(
        process,
        RegisterOp::Put(v(value)),
        invoked,
        completed,
        Outcome::Unknown("timeout".into()),
    )
}

fn cas(
    process: u64,
    expected: Option<&str>,
    new: &str,
    invoked: u64,
    completed: u64,
    outcome: Outcome<RegisterReply>,
) -> RegisterCall {
    call(
        process,
        RegisterOp::Cas {
            expected: expected.map(v),
            new: v(new),
        },
        invoked,
        completed,
        outcome,
    )
}

fn cas_reply(succeeded: bool, previous: Option<&str>) -> Outcome<RegisterReply> {
    Outcome::Ok(RegisterReply::Cas {
        succeeded,
        previous: previous.map(v),
    })
}

#[test]
fn sequential_history_is_linearizable() {
    let history = [
        get(1, None, 0, 1),
        put(1, "a", 2, 3),
        get(2, Some("a"), 4, 5),
        cas(1, Some("a"), "b", 6, 7, cas_reply(true, Some("a"))),
        cas(2, Some("a"), "c", 8, 9, cas_reply(false, Some("b"))),
        call(
            1,
            RegisterOp::Delete,
            10,
            11,
            Outcome::Ok(RegisterReply::Written),
        ),
        get(2, None, 12, 13),
    ];
    assert_eq!(check_key(&history), KeyVerdict::Linearizable);
}

#[test]
fn concurrent_reads_may_see_either_side_of_a_concurrent_write() {
    let history = [
        put(1, "a", 0, 1),
        put(1, "b", 10, 20),
        // Both reads overlap the write and each other: the one seeing "a"
        // takes effect before the write, the one seeing "b" after.
        get(2, Some("b"), 11, 12),
        get(3, Some("a"), 11, 13),
    ];
    assert_eq!(check_key(&history), KeyVerdict::Linearizable);
}

#[test]
fn a_stale_read_after_a_completed_write_is_caught() {
    let history = [
        put(1, "a", 0, 1),
        put(1, "b", 2, 3),
        get(2, Some("a"), 4, 5),
    ];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

#[test]
fn reads_going_back_in_time_are_caught() {
    // "b" is seen, then a later read sees "a" again, with no write of "a" in between.
    let history = [
        put(1, "a", 0, 1),
        put(1, "b", 2, 100),
        get(2, Some("b"), 3, 4),
        get(3, Some("a"), 5, 6),
    ];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let history = [put(1, "a", 0, 1), get(2, None, 2, 3)];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

#[test]
fn a_value_nobody_wrote_is_caught() {
    let history = [put(1, "a", 0, 1), get(2, Some("z"), 2, 3)];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

#[test]
fn an_unknown_write_may_apply_late_or_never() {
    // The unknown put of "x" was never observed: fine.
    let never = [
        unknown_put(1, "x", 0, 1),
        get(2, None, 2, 3),
        put(2, "a", 4, 5),
        get(2, Some("a"), 6, 7),
    ];
    assert_eq!(check_key(&never), KeyVerdict::Linearizable);
    // Observed long after the client gave up on it: also fine, it may apply any time.
    let late = [
        unknown_put(1, "x", 0, 1),
        get(2, None, 2, 3),
        get(2, Some("x"), 50, 51),
    ];
    assert_eq!(check_key(&late), KeyVerdict::Linearizable);
}

#[test]
fn an_unknown_write_still_cannot_apply_before_it_was_invoked() {
    let history = [get(2, Some("x"), 0, 1), unknown_put(1, "x", 5, 6)];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

#[test]
fn an_unknown_write_cannot_apply_twice() {
    // x, then y (acknowledged, after x was seen), then x again: the single
    // unknown put of x cannot explain both observations of x.
    let history = [
        unknown_put(1, "x", 0, 1),
        get(2, Some("x"), 2, 3),
        put(3, "y", 4, 5),
        get(2, Some("y"), 6, 7),
        get(2, Some("x"), 8, 9),
    ];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

/// A read of "nothing", `deleters` deletes whose outcome is unknown, then a
/// read of a value nobody wrote: proving that no subset of the deletes
/// explains the last read means visiting every subset.
fn unknown_deletes_then_impossible_read(deleters: u64) -> Vec<RegisterCall> {
    let mut history = vec![get(0, None, 0, 1)];
    history.extend((1..=deleters).map(|i| {
        call(
            i,
            RegisterOp::Delete,
            10 + i,
            11 + i,
            Outcome::Unknown("timeout".into()),
        )
    }));
    history.push(get(0, Some("z"), 1_000, 1_001));
    history
}

#[test]
fn many_unknown_outcomes_are_searched_exhaustively_within_the_budget() {
    let history = unknown_deletes_then_impossible_read(10);
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

#[test]
fn a_search_past_its_memory_budget_is_inconclusive_not_endless() {
    // 2^30 subsets: far past a budget of 10,000 remembered configurations.
    let history = unknown_deletes_then_impossible_read(30);
    let budget = Budget {
        steps: u64::MAX,
        configurations: 10_000,
    };
    assert_eq!(check_key_within(&history, budget), KeyVerdict::Inconclusive);
}

#[test]
fn unknown_writes_nobody_saw_cost_the_search_nothing() {
    // 40 timed-out puts whose values no read returned, amid acknowledged
    // writes and reads: each could have applied at any time or never.
    let mut history = Vec::new();
    for i in 0..40u64 {
        let t = 10 * i;
        history.push(unknown_put(1, &format!("lost{i}"), t, t + 1));
        history.push(put(2, &format!("v{i}"), t + 2, t + 3));
        history.push(get(3, Some(&format!("v{i}")), t + 4, t + 5));
    }
    let budget = Budget {
        steps: 100_000,
        configurations: 10_000,
    };
    assert_eq!(check_key_within(&history, budget), KeyVerdict::Linearizable);
    // One of them seen after its writer gave up: it is kept, and placed.
    history.push(get(3, Some("lost7"), 1_000, 1_001));
    assert_eq!(check_key_within(&history, budget), KeyVerdict::Linearizable);
    // Seen before it was written: impossible.
    history.push(get(3, Some("lost39"), 380, 381));
    assert!(matches!(
        check_key_within(&history, budget),
        KeyVerdict::Violation { .. }
    ));
}

#[test]
fn a_long_history_of_one_key_is_checked_in_linear_memory() {
    // 200,000 sequential operations: a cache entry per step that copied the
    // set of linearized operations would hold 200,000^2 / 8 bytes (5 GB).
    let history: Vec<RegisterCall> = (0..100_000u64)
        .flat_map(|i| {
            let value = format!("v{i}");
            [
                put(1, &value, 4 * i, 4 * i + 1),
                get(2, Some(&value), 4 * i + 2, 4 * i + 3),
            ]
        })
        .collect();
    let budget = Budget {
        steps: 1_000_000,
        configurations: 300_000,
    };
    assert_eq!(check_key_within(&history, budget), KeyVerdict::Linearizable);
}

#[test]
fn an_unknown_cas_applies_only_where_its_comparison_holds() {
    let applied = [
        put(1, "a", 0, 1),
        cas(2, Some("a"), "b", 2, 3, Outcome::Unknown("timeout".into())),
        get(3, Some("b"), 10, 11),
    ];
    assert_eq!(check_key(&applied), KeyVerdict::Linearizable);
    let impossible = [
        put(1, "c", 0, 1),
        cas(2, Some("a"), "b", 2, 3, Outcome::Unknown("timeout".into())),
        get(3, Some("b"), 10, 11),
    ];
    assert!(matches!(
        check_key(&impossible),
        KeyVerdict::Violation { .. }
    ));
}

#[test]
fn a_cas_that_reports_the_wrong_outcome_is_caught() {
    let history = [
        put(1, "a", 0, 1),
        cas(2, Some("a"), "b", 2, 3, cas_reply(false, Some("a"))),
    ];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}

#[test]
fn failed_operations_change_nothing() {
    let history = [
        put(1, "a", 0, 1),
        call(
            2,
            RegisterOp::Put(v("b")),
            2,
            3,
            Outcome::Failed("invalid".into()),
        ),
        get(3, Some("a"), 4, 5),
    ];
    assert_eq!(check_key(&history), KeyVerdict::Linearizable);
}

#[test]
fn keys_are_checked_independently_and_violations_are_described() {
    let mut other = put(1, "q", 0, 1);
    other.key = "other".into();
    let history = vec![other, put(1, "a", 0, 1), get(2, None, 2, 3)];
    match check(&history) {
        Verdict::Fail(problems) => {
            assert_eq!(problems.len(), 1);
            assert!(problems[0].starts_with("key k:"), "{}", problems[0]);
        }
        verdict => panic!("expected a violation, got {verdict}"),
    }
}

#[test]
fn many_concurrent_operations_are_checked_quickly() {
    // 8 processes, 2000 operations each in overlapping windows: a correct
    // register history (a sequence of writes, each read seeing the latest).
    let mut history = Vec::new();
    let mut time = 0u64;
    let mut latest: Option<String> = None;
    for round in 0..2000u64 {
        let process = round % 8;
        if round % 3 == 0 {
            let value = format!("v{round}");
            history.push(put(process, &value, time, time + 15));
            latest = Some(value);
        } else {
            history.push(get(process, latest.as_deref(), time + 14, time + 20));
        }
        if round % 5 == 0 {
            history.push(unknown_put(
                process + 100,
                &format!("u{round}"),
                time,
                time + 1,
            ));
        }
        time += 10;
    }
    let started = std::time::Instant::now();
    assert_eq!(check_key(&history), KeyVerdict::Linearizable);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

fn add(element: &str, invoked: u64, completed: u64, outcome: Outcome<SetReply>) -> SetCall {
    SetCall {
        process: 1,
        op: SetOp::Add(element.into()),
        invoked,
        completed,
        outcome,
    }
}

fn read(elements: &[&str], invoked: u64, completed: u64) -> SetCall {
    SetCall {
        process: 2,
        op: SetOp::ReadAll { part: "0/".into() },
        invoked,
        completed,
        outcome: Outcome::Ok(SetReply::Elements(
            elements.iter().map(|e| e.to_string()).collect(),
        )),
    }
}

#[test]
fn set_checker_accepts_complete_reads_and_unknown_adds_either_way() {
    let history = [
        add("0/a", 0, 1, Outcome::Ok(SetReply::Added)),
        add("0/b", 2, 3, Outcome::Unknown("timeout".into())),
        add("0/c", 2, 3, Outcome::Unknown("timeout".into())),
        read(&["0/a", "0/b"], 4, 5),
        read(&["0/a", "0/b"], 6, 7),
    ];
    assert_eq!(set::check(&history), Verdict::Pass);
}

#[test]
fn set_checker_catches_lost_phantom_and_vanished_elements() {
    let lost = [
        add("0/a", 0, 1, Outcome::Ok(SetReply::Added)),
        read(&[], 2, 3),
    ];
    assert!(!set::check(&lost).passed());
    let phantom = [
        add("0/a", 0, 1, Outcome::Ok(SetReply::Added)),
        read(&["0/a", "0/zz"], 2, 3),
    ];
    assert!(!set::check(&phantom).passed());
    let vanished = [
        add("0/a", 0, 1, Outcome::Unknown("timeout".into())),
        read(&["0/a"], 2, 3),
        read(&[], 4, 5),
    ];
    assert!(!set::check(&vanished).passed());
    let unverified = [
        add("0/a", 5, 6, Outcome::Ok(SetReply::Added)),
        read(&[], 0, 1),
    ];
    assert!(
        !set::check(&unverified).passed(),
        "no read after the last add: nothing proven"
    );
}

#[test]
fn one_put_applied_twice_around_another_write_is_caught() {
    // Found in a real run (flaky network): the client resent a put whose
    // first attempt had applied; p2-3844 came back after p5-3816 replaced it.
    let history = [
        put(2, "p2-3844", 100, 900),
        get(1, Some("p2-3844"), 110, 120),
        cas(
            5,
            Some("p2-3844"),
            "p5-3816",
            200,
            300,
            cas_reply(true, Some("p2-3844")),
        ),
        get(5, Some("p5-3816"), 310, 320),
        cas(
            1,
            Some("x"),
            "y",
            400,
            500,
            cas_reply(false, Some("p2-3844")),
        ),
    ];
    assert!(matches!(check_key(&history), KeyVerdict::Violation { .. }));
}
