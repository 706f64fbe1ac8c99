//! Replicas come and go: created by splits, created empty for a range a
//! leader talks about, destroyed when a membership change removes them.

use zdb_proto::v1::RangeDescriptor;

use super::Store;
use crate::error::Result;
use crate::raftlog::RangeStorage;
use crate::range::{descriptor, Replica};

impl Store {
    /// A leader is talking to this node about a range it does not hold: the
    /// node missed the split that created it (it caught up on the parent by
    /// snapshot). An empty replica joins and receives a snapshot.
    pub(super) fn create_for_message(
        &mut self,
        range_id: u64,
        message: &raft::eraftpb::Message,
    ) -> bool {
        use raft::eraftpb::MessageType::*;
        if !matches!(
            message.get_msg_type(),
            MsgAppend | MsgHeartbeat | MsgSnapshot
        ) {
            return false;
        }
        let placeholder = RangeDescriptor {
            range_id,
            ..Default::default()
        };
        match Replica::open(
            self.engine.clone(),
            self.node_id,
            placeholder,
            &self.raft,
            &self.logger,
            self.clock.now(),
        ) {
            Ok(replica) => {
                tracing::info!(
                    range_id,
                    from = message.from,
                    "created an empty replica to receive a snapshot"
                );
                self.replicas.insert(range_id, replica);
                true
            }
            Err(err) => {
                tracing::warn!(range_id, error = %err, "cannot create a replica for an incoming message");
                false
            }
        }
    }

    /// Starts the Raft groups of ranges just created by splits. The node
    /// that led the parent campaigns at once, so the new range has a leader
    /// without waiting for an election timeout. Returns the ranges whose
    /// empty replica (made for an early message) was replaced: a Ready taken
    /// from that replica must not be handed to the new one.
    pub(super) fn open_created(&mut self, created: &mut Vec<RangeDescriptor>) -> Vec<u64> {
        let mut replaced = Vec::new();
        for range in created.drain(..) {
            // Already here with its data (it came by snapshot): keep it.
            if self
                .replicas
                .get(&range.range_id)
                .is_some_and(Replica::is_initialized)
            {
                continue;
            }
            let led_parent = self.replicas.values().any(|replica| {
                replica.is_leader() && replica.descriptor().end_key == range.start_key
            });
            let range_id = range.range_id;
            // An empty replica made for an early message of the new range's
            // leader may have voted this very pass: keep its term and vote.
            if let Some(placeholder) = self.replicas.get(&range_id) {
                let (term, vote) = placeholder.term_and_vote();
                if let Err(err) = RangeStorage::keep_newer_vote(&self.engine, range_id, term, vote)
                {
                    tracing::error!(range_id, error = %err, "cannot keep the vote of a range created by a split");
                    continue;
                }
            }
            match Replica::open(
                self.engine.clone(),
                self.node_id,
                range,
                &self.raft,
                &self.logger,
                self.clock.now(),
            ) {
                Ok(mut replica) => {
                    if led_parent {
                        let _ = replica.campaign();
                    }
                    if self.replicas.insert(range_id, replica).is_some() {
                        self.forget_unsynced(range_id);
                        replaced.push(range_id);
                    }
                }
                Err(err) => {
                    tracing::error!(range_id, error = %err, "cannot open a range created by a split")
                }
            }
        }
        replaced
    }

    /// Deletes replicas that membership changes removed from this node: their
    /// Raft state, their descriptor and the data of their span.
    pub(super) fn destroy_removed(&mut self) -> Result<()> {
        let removed: Vec<u64> = self
            .replicas
            .iter()
            .filter(|(_, replica)| replica.is_removed())
            .map(|(&id, _)| id)
            .collect();
        if removed.is_empty() {
            return Ok(());
        }
        let mut batch = self.engine.batch();
        for range_id in removed {
            let replica = self.replicas.remove(&range_id).expect("listed above");
            self.forget_unsynced(range_id);
            descriptor::destroy(&mut batch, replica.descriptor());
            tracing::info!(
                range_id,
                "replica removed from this node; its data is deleted"
            );
        }
        self.engine.write(batch, true)
    }
}
