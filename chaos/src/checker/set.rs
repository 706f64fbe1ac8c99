//! The set workload's checker. Elements are only ever added, so every read
//! of a part must contain every element of that part whose add was
//! acknowledged before the read began (else a write was lost) and every
//! element an earlier read already returned (else one disappeared), and
//! nothing that was never added.

use std::collections::{HashMap, HashSet};

use super::Verdict;
use crate::history::{Outcome, SetCall, SetOp, SetReply};

/// At most this many problems are listed per kind.
const MAX_LISTED: usize = 10;

pub fn check(calls: &[SetCall]) -> Verdict {
    let mut attempted: HashSet<&str> = HashSet::new();
    // part -> (element, completion of its acknowledged add)
    let mut acknowledged: HashMap<&str, Vec<(&str, u64)>> = HashMap::new();
    for call in calls {
        if let SetOp::Add(element) = &call.op {
            attempted.insert(element);
            if let Outcome::Ok(_) = call.outcome {
                acknowledged
                    .entry(part_of(element))
                    .or_default()
                    .push((element, call.completed));
            }
        }
    }
    let mut reads: Vec<(&SetCall, &str, HashSet<&str>)> = calls
        .iter()
        .filter_map(|call| match (&call.op, &call.outcome) {
            (SetOp::ReadAll { part }, Outcome::Ok(SetReply::Elements(elements))) => Some((
                call,
                part.as_str(),
                elements.iter().map(String::as_str).collect(),
            )),
            _ => None,
        })
        .collect();
    reads.sort_by_key(|(call, _, _)| call.invoked);

    let mut problems = Vec::new();
    for (part, elements) in &acknowledged {
        let last_ack = elements.iter().map(|(_, at)| *at).max().unwrap_or(0);
        let verified = reads
            .iter()
            .any(|(read, read_part, _)| read_part == part && read.invoked > last_ack);
        if !verified {
            problems.push(format!(
                "no successful read of part {part} after its last acknowledged add: lost writes cannot be ruled out"
            ));
        }
    }

    let mut lost = Vec::new();
    let mut phantoms = Vec::new();
    let mut vanished = Vec::new();
    // part -> element -> earliest completion of a read that returned it
    let mut first_seen: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
    for (read, part, elements) in &reads {
        for element in elements {
            if !attempted.contains(element) || part_of(element) != *part {
                phantoms.push(format!(
                    "read of part {part} at {} returned {element}, which was never added there",
                    read.invoked
                ));
            }
        }
        for &(element, acked_at) in acknowledged.get(part).into_iter().flatten() {
            if acked_at < read.invoked && !elements.contains(element) {
                lost.push(format!(
                    "{element} (acknowledged at {acked_at}) missing from the read invoked at {}",
                    read.invoked
                ));
            }
        }
        let seen = first_seen.entry(part).or_default();
        for (&element, &seen_at) in seen.iter() {
            if seen_at < read.invoked && !elements.contains(element) {
                vanished.push(format!(
                    "{element} (read by {seen_at}) missing from the read invoked at {}",
                    read.invoked
                ));
            }
        }
        for element in elements {
            let at = seen.entry(element).or_insert(read.completed);
            *at = (*at).min(read.completed);
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

/// The part an element belongs to: everything up to and including its '/'.
fn part_of(element: &str) -> &str {
    match element.find('/') {
        Some(slash) => &element[..=slash],
        None => "",
    }
}
