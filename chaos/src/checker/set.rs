//! The set workload's checker. Elements are only ever added, so every read
//! must contain every element whose add was acknowledged before the read
//! began (else a write was lost) and every element an earlier read already
//! returned (else one disappeared), and nothing that was never added.

use std::collections::{HashMap, HashSet};

use super::Verdict;
use crate::history::{Outcome, SetCall, SetOp, SetReply};

/// At most this many problems are listed per kind.
const MAX_LISTED: usize = 10;

pub fn check(calls: &[SetCall]) -> Verdict {
    let mut attempted: HashSet<&str> = HashSet::new();
    // element -> completion of its acknowledged add
    let mut acknowledged: HashMap<&str, u64> = HashMap::new();
    for call in calls {
        if let SetOp::Add(element) = &call.op {
            attempted.insert(element);
            if let Outcome::Ok(_) = call.outcome {
                acknowledged.insert(element, call.completed);
            }
        }
    }
    let mut reads: Vec<(&SetCall, HashSet<&str>)> = calls
        .iter()
        .filter_map(|call| match (&call.op, &call.outcome) {
            (SetOp::ReadAll, Outcome::Ok(SetReply::Elements(elements))) => {
                Some((call, elements.iter().map(String::as_str).collect()))
            }
            _ => None,
        })
        .collect();
    reads.sort_by_key(|(call, _)| call.invoked);

    let mut problems = Vec::new();
    let last_ack = acknowledged.values().copied().max().unwrap_or(0);
    if !acknowledged.is_empty() && !reads.iter().any(|(read, _)| read.invoked > last_ack) {
        problems.push(
            "no successful read after the last acknowledged add: lost writes cannot be ruled out"
                .to_owned(),
        );
    }

    let mut lost = Vec::new();
    let mut phantoms = Vec::new();
    let mut vanished = Vec::new();
    // element -> earliest completion of a read that returned it
    let mut first_seen: HashMap<&str, u64> = HashMap::new();
    for (read, elements) in &reads {
        for element in elements {
            if !attempted.contains(element) {
                phantoms.push(format!(
                    "read at {} returned {element}, which was never added",
                    read.invoked
                ));
            }
        }
        for (&element, &acked_at) in &acknowledged {
            if acked_at < read.invoked && !elements.contains(element) {
                lost.push(format!(
                    "{element} (acknowledged at {acked_at}) missing from the read invoked at {}",
                    read.invoked
                ));
            }
        }
        for (&element, &seen_at) in &first_seen {
            if seen_at < read.invoked && !elements.contains(element) {
                vanished.push(format!(
                    "{element} (read by {seen_at}) missing from the read invoked at {}",
                    read.invoked
                ));
            }
        }
        for element in elements {
            let seen = first_seen.entry(element).or_insert(read.completed);
            *seen = (*seen).min(read.completed);
        }
    }
    for (kind, list) in [
        ("lost", lost),
        ("phantom", phantoms),
        ("vanished", vanished),
    ] {
        if !list.is_empty() {
            let count = list.len();
            let shown: Vec<String> = list.into_iter().take(MAX_LISTED).collect();
            problems.push(format!("{count} {kind}: {}", shown.join("; ")));
        }
    }
    if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(problems)
    }
}
