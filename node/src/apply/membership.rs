//! Recording a membership change in the range's descriptor, once Raft has
//! applied it to its configuration.

use raft::eraftpb::ConfState;
use zdb_proto::v1::{RangeDescriptor, ReplicaDescriptor};

use super::epoch::{bumped, CommandKind};
use crate::engine::Batch;
use crate::range::descriptor;

/// The members of `state`, voters and learners (joint configurations
/// included), with `conf_ver` bumped. Saved into `batch`.
pub fn record(
    batch: &mut Batch,
    current: &mut RangeDescriptor,
    kind: CommandKind,
    state: &ConfState,
) -> RangeDescriptor {
    let voters = state.voters.iter().chain(&state.voters_outgoing);
    let learners = state.learners.iter().chain(&state.learners_next);
    let mut replicas: Vec<ReplicaDescriptor> = voters
        .map(|&id| (id, false))
        .chain(learners.map(|&id| (id, true)))
        .map(|(id, learner)| ReplicaDescriptor {
            node_id: id,
            replica_id: id,
            learner,
        })
        .collect();
    replicas.sort_by_key(|r| (r.node_id, r.learner));
    replicas.dedup_by_key(|r| r.node_id);
    current.replicas = replicas;
    current.epoch = Some(bumped(kind, current.epoch));
    descriptor::save(batch, current);
    tracing::info!(range_id = current.range_id, replicas = ?current.replicas, "membership changed");
    current.clone()
}
