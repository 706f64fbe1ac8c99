//! Linearizability of register histories: the Wing–Gong search with Lowe's
//! memoization, one key at a time (keys are independent registers), as in
//! Porcupine.
//!
//! The history of one key becomes a list of call and return events in time
//! order. The search repeatedly picks an operation whose call is in the list
//! before the first remaining return (so it could take effect now), applies
//! it to the model, and removes both its events; when it reaches a return
//! whose operation cannot be placed, it backtracks. Lowe's cache remembers
//! every (set of linearized operations, model state) already explored, which
//! cuts the search from factorial to what the concurrency allows.
//!
//! An operation with an unknown outcome may have taken effect at any time
//! after its invocation or never: its return is placed after every other
//! event, so the search may place it anywhere, including after everything
//! (which is the same as never). Each one can double the configurations to
//! explore: those whose value nobody saw are dropped before the search,
//! which changes no verdict, and the search has a budget of steps and of
//! remembered configurations (memory) and answers "inconclusive" beyond it.
//!
//! The cache keys a set of linearized operations by a 128-bit Zobrist hash
//! (the XOR of a random number per operation), updated in O(1) per step,
//! instead of a bitset that costs O(operations) to copy and store. Two sets
//! with the same hash would make the search skip one of them; at 2^-128 per
//! pair that cannot happen in any history this checker will see.

use std::collections::{BTreeMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::model::{State, Step, Values, ABSENT};
use super::Verdict;
use crate::history::{render_register, Outcome, RegisterCall};

/// How far the search for one key may go before answering "inconclusive".
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub steps: u64,
    /// Configurations remembered by the cache, 33 bytes each in its table.
    pub configurations: usize,
}

impl Default for Budget {
    /// At most about 0.8 GiB for one key (the cache's table of 2^24
    /// slots, and the half-size one it grew from).
    fn default() -> Self {
        Budget {
            steps: 200_000_000,
            configurations: 14_000_000,
        }
    }
}

const NIL: usize = usize::MAX;

/// One call or return event in the doubly linked event list.
struct Event {
    prev: usize,
    next: usize,
    /// Index of the operation in `ops`.
    op: usize,
    is_call: bool,
    /// For a call, the index of its return event.
    partner: usize,
}

struct Operation {
    /// Index of the call it came from, in the key's calls.
    call: usize,
    step: Step,
    invoked: u64,
    /// u64::MAX when the outcome is unknown.
    completed: u64,
    definite: bool,
}

/// The result for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    Linearizable,
    /// Index (into the key's calls) of the operation that could not be
    /// placed at the deepest point the search reached.
    Violation {
        stuck_at: usize,
    },
    Inconclusive,
}

/// Checks one key's calls. Failed operations and reads with unknown
/// results are ignored (they changed nothing).
pub fn check_key(calls: &[RegisterCall]) -> KeyVerdict {
    check_key_within(calls, Budget::default())
}

/// [`check_key`] with a search budget of its own.
pub fn check_key_within(calls: &[RegisterCall], budget: Budget) -> KeyVerdict {
    let mut values = Values::default();
    let mut ops = Vec::new();
    for (index, call) in calls.iter().enumerate() {
        let (reply, definite) = match &call.outcome {
            Outcome::Ok(reply) => (Some(reply), true),
            Outcome::Unknown(_) => (None, false),
            Outcome::Failed(_) => continue,
        };
        let Some(step) = Step::new(&call.op, reply, &mut values) else {
            continue;
        };
        ops.push(Operation {
            call: index,
            step,
            invoked: call.invoked,
            completed: if definite { call.completed } else { u64::MAX },
            definite,
        });
    }
    drop_unseen_unknown_writes(&mut ops);
    match search(&ops, budget) {
        KeyVerdict::Violation { stuck_at } => KeyVerdict::Violation {
            stuck_at: ops[stuck_at].call,
        },
        other => other,
    }
}

/// Drops the writes with an unknown outcome whose value no operation ever
/// saw (no read returned it, no compare-and-swap expected or reported it).
/// Had such a write taken effect, every operation until the next write
/// would have to ignore the value: the ones that depend on it would have
/// seen it, and an unknown compare-and-swap expecting something else may be
/// taken as never applied. So a history is linearizable with the write iff
/// it is without it. Each unknown write can double the search (it may apply
/// at any time after its call, or never), and most of them are timeouts
/// whose value was overwritten unseen, or never written.
fn drop_unseen_unknown_writes(ops: &mut Vec<Operation>) {
    let seen: HashSet<State> = ops.iter().flat_map(|op| op.step.seen()).collect();
    ops.retain(|op| op.definite || op.step.written().is_none_or(|value| seen.contains(&value)));
}

fn build_events(ops: &[Operation]) -> Vec<Event> {
    // (time, returns after calls at the same instant, op): a call and a
    // return at the same nanosecond are taken as concurrent.
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (index, op) in ops.iter().enumerate() {
        order.push((op.invoked, false, index));
        order.push((op.completed, true, index));
    }
    order.sort_unstable();
    // Event 0 is the list's head sentinel.
    let mut events = vec![Event {
        prev: NIL,
        next: NIL,
        op: NIL,
        is_call: false,
        partner: NIL,
    }];
    let mut call_of = vec![NIL; ops.len()];
    for (position, &(_, is_return, op)) in order.iter().enumerate() {
        let index = position + 1;
        events.push(Event {
            prev: index - 1,
            next: if position + 1 < order.len() {
                index + 1
            } else {
                NIL
            },
            op,
            is_call: !is_return,
            partner: NIL,
        });
        if is_return {
            events[call_of[op]].partner = index;
        } else {
            call_of[op] = index;
        }
    }
    events[0].next = if order.is_empty() { NIL } else { 1 };
    events
}

fn lift(events: &mut [Event], call: usize) {
    let (prev, next) = (events[call].prev, events[call].next);
    events[prev].next = next;
    events[next].prev = prev; // a call is always followed by its return
    let ret = events[call].partner;
    let (prev, next) = (events[ret].prev, events[ret].next);
    events[prev].next = next;
    if next != NIL {
        events[next].prev = prev;
    }
}

fn unlift(events: &mut [Event], call: usize) {
    let ret = events[call].partner;
    let (prev, next) = (events[ret].prev, events[ret].next);
    events[prev].next = ret;
    if next != NIL {
        events[next].prev = ret;
    }
    let (prev, next) = (events[call].prev, events[call].next);
    events[prev].next = call;
    events[next].prev = call;
}

/// A random 128-bit number per operation (fixed seed): the hash of a set
/// of operations is the XOR of its members' numbers.
fn zobrist_keys(count: usize) -> Vec<u128> {
    let mut rng = StdRng::seed_from_u64(0x5a6f_6272_6973_7421);
    (0..count).map(|_| rng.random()).collect()
}

fn search(ops: &[Operation], budget: Budget) -> KeyVerdict {
    let mut events = build_events(ops);
    let mut definite_left = ops.iter().filter(|op| op.definite).count();
    let zobrist = zobrist_keys(ops.len());
    let mut linearized = 0u128;
    let mut cache: HashSet<(u128, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = ABSENT;
    let mut entry = events[0].next;
    let mut deepest = (0usize, 0usize);
    let mut steps = 0u64;
    while definite_left > 0 {
        steps += 1;
        if steps > budget.steps || cache.len() > budget.configurations {
            return KeyVerdict::Inconclusive;
        }
        // With definite operations left, their returns are still in the
        // list, and every unknown return comes after them.
        debug_assert!(entry != NIL);
        let event = &events[entry];
        if event.is_call {
            let op = &ops[event.op];
            if let Some(next_state) = op.step.apply(state) {
                let candidate = linearized ^ zobrist[event.op];
                if cache.insert((candidate, next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    linearized = candidate;
                    if op.definite {
                        definite_left -= 1;
                    }
                    lift(&mut events, entry);
                    entry = events[0].next;
                    continue;
                }
            }
            entry = events[entry].next;
        } else {
            // This operation must have taken effect by now, and could not.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), event.op);
            }
            let Some((call, previous_state)) = stack.pop() else {
                return KeyVerdict::Violation {
                    stuck_at: deepest.1,
                };
            };
            let op = events[call].op;
            state = previous_state;
            linearized ^= zobrist[op];
            if ops[op].definite {
                definite_left += 1;
            }
            unlift(&mut events, call);
            entry = events[call].next;
        }
    }
    KeyVerdict::Linearizable
}

/// Checks every key of the history; describes the violations found.
pub fn check(calls: &[RegisterCall]) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<RegisterCall>> = BTreeMap::new();
    for call in calls {
        by_key.entry(&call.key).or_default().push(call.clone());
    }
    let mut problems = Vec::new();
    let mut inconclusive = Vec::new();
    for (key, mut calls) in by_key {
        calls.sort_by_key(|call| call.invoked);
        match check_key(&calls) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Inconclusive => inconclusive.push(key.to_owned()),
            KeyVerdict::Violation { stuck_at } => {
                problems.push(describe_violation(key, &calls, stuck_at))
            }
        }
    }
    if !problems.is_empty() {
        Verdict::Fail(problems)
    } else if !inconclusive.is_empty() {
        Verdict::Inconclusive(format!(
            "the search exceeded its budget on keys {inconclusive:?}"
        ))
    } else {
        Verdict::Pass
    }
}

/// The stuck operation and everything that overlapped it in time.
fn describe_violation(key: &str, calls: &[RegisterCall], stuck_at: usize) -> String {
    let stuck = &calls[stuck_at];
    let mut text = format!(
        "key {key}: no linearization ({} operations); could not place: {}\n  operations overlapping it and just before:",
        calls.len(),
        render_register(stuck)
    );
    let window_start = stuck.invoked.saturating_sub(2_000_000_000);
    for call in calls
        .iter()
        .filter(|call| call.completed >= window_start && call.invoked <= stuck.completed)
        .take(40)
    {
        text.push_str("\n    ");
        text.push_str(&render_register(call));
    }
    text
}
