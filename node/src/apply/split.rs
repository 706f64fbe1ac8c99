//! Cutting a range in two. Every replica reaches the same decision from the
//! same descriptor and Raft configuration, so a refusal is as deterministic
//! as a split.

use std::collections::HashSet;

use raft::eraftpb::ConfState;
use zdb_proto::v1::{RangeDescriptor, SplitCommand};

use super::epoch::{bumped, CommandKind};
use super::{ExecResult, Refusal};
use crate::engine::{Batch, Engine, ReadView};
use crate::error::Result;
use crate::raftlog::RangeStorage;
use crate::range::descriptor;

/// Splits `current` at the command's key. `conf_state` is the range's Raft
/// configuration as of this entry; `existing` are the ranges this node holds
/// initialized already (a range that arrived by snapshot before this node
/// applied the split is not reset).
pub fn apply(
    engine: &Engine,
    batch: &mut Batch,
    current: &mut RangeDescriptor,
    split: &SplitCommand,
    conf_state: &ConfState,
    existing: &HashSet<u64>,
) -> Result<ExecResult> {
    let key = split.split_key.as_slice();
    if key <= current.start_key.as_slice() || !descriptor::contains(current, key) {
        return Ok(ExecResult::Refused(Refusal::Precondition(format!(
            "split key {:?} is not strictly inside range {}",
            String::from_utf8_lossy(key),
            current.range_id
        ))));
    }
    // The new range starts with the parent's members, learners included.
    // A joint configuration would leave the new range with nobody to finish
    // the change: every replica refuses alike (they all applied the same
    // changes before this entry).
    if !conf_state.voters_outgoing.is_empty() || !conf_state.learners_next.is_empty() {
        return Ok(ExecResult::Refused(Refusal::Precondition(format!(
            "range {} is in the middle of a membership change; split it once the change is done",
            current.range_id
        ))));
    }
    // A span lock is kept by the range holding its start; cut in two, the
    // right half's writers would not see it.
    let (lower, upper) = crate::mvcc::keys::delete_bounds(&current.start_key, &current.end_key);
    let mut crosses = false;
    engine.scan(
        crate::engine::CF_SPAN_LOCKS,
        &lower,
        &upper,
        false,
        |_, raw| {
            let span = crate::txn::SpanLock::decode(raw)?;
            crosses = span.0.start_key.as_slice() < key && span.covers(key);
            Ok(!crosses)
        },
    )?;
    if crosses {
        return Ok(ExecResult::Refused(Refusal::Precondition(format!(
            "a transaction holds a lock on a span across {:?} in range {}; split once it ends",
            String::from_utf8_lossy(key),
            current.range_id
        ))));
    }
    let mut left = current.clone();
    left.end_key = key.to_vec();
    left.epoch = Some(bumped(CommandKind::Split, current.epoch));
    let right = RangeDescriptor {
        range_id: split.new_range_id,
        start_key: key.to_vec(),
        end_key: current.end_key.clone(),
        epoch: left.epoch,
        replicas: current.replicas.clone(),
    };
    descriptor::save(batch, &left);
    if !existing.contains(&right.range_id) {
        descriptor::save(batch, &right);
        RangeStorage::write_bootstrap_state(engine, batch, right.range_id, conf_state.clone())?;
    }
    *current = left.clone();
    tracing::info!(
        range_id = left.range_id,
        new_range_id = right.range_id,
        "split applied"
    );
    Ok(ExecResult::Split { left, right })
}
