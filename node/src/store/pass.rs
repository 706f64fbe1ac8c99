//! One pass of the event loop, after its messages were taken: tick when due,
//! send read rounds, release what the last sync made durable, gather every
//! replica's Ready into one write, answer the proposals it applied.

use std::collections::HashSet;
use std::time::Instant;

use zdb_proto::v1::ReplicaStatus;

use super::syncer::SyncRequest;
use super::{Durability, Store, Unsynced};
use crate::error::Result;
use crate::metrics;
use crate::range::ready::{stage, Pass};

impl Store {
    /// Runs one pass at `now`. Returns whether there is more to do at once
    /// (vote requests for ranges this pass created were stepped).
    pub(super) fn run_pass(&mut self, now: Instant) -> Result<bool> {
        if now >= self.next_tick {
            self.tick(now);
        }
        for replica in self.replicas.values_mut() {
            replica.flush_reads(now, &self.raft);
        }
        self.release_synced();
        let result = self.process_ready(now);
        self.publish_meta_lease();
        self.flush_outgoing();
        let stepped = self.step_early_votes();
        result.map(|()| stepped)
    }

    fn tick(&mut self, now: Instant) {
        for replica in self.replicas.values_mut() {
            replica.tick(now);
        }
        self.next_tick = now + self.raft.tick;
        self.sweep_expired_keys(now);
        let behind = self
            .replicas
            .values()
            .filter(|replica| replica.is_initialized() && !replica.caught_up())
            .count();
        self.health.store_beat(behind);
    }

    /// Ends keys whose time to live ran out by the oracle's time as this
    /// node knows it: their tombstones then commit above the moment they
    /// expired, and a read at an earlier timestamp still sees the value.
    fn sweep_expired_keys(&mut self, now: Instant) {
        if !self.ttl.due(now) {
            return;
        }
        let oracle_seen = self.horizon.oracle_seen();
        if oracle_seen == 0 {
            return;
        }
        let now_ms = zdb_proto::timestamp::physical_ms(oracle_seen).min(self.clock.wall_ms());
        for replica in self
            .replicas
            .values_mut()
            .filter(|replica| replica.is_leader())
        {
            match super::ttl::expired_in_range(&self.engine, replica.descriptor(), now_ms) {
                Ok(Some(mut command)) => {
                    command.ts = oracle_seen;
                    replica.propose(command, None, None)
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "TTL sweep failed"),
            }
        }
    }

    pub(super) fn has_synced_readies(&self) -> bool {
        self.unsynced
            .front()
            .is_some_and(|unsynced| unsynced.token <= self.synced)
    }

    /// Tells Raft which readies are durable now and sends what waited for that.
    fn release_synced(&mut self) {
        let synced = self.synced;
        while let Some(unsynced) = self
            .unsynced
            .pop_front_if(|unsynced| unsynced.token <= synced)
        {
            let Unsynced {
                range_id, awaiting, ..
            } = unsynced;
            if let Some(replica) = self.replicas.get_mut(&range_id) {
                replica.on_synced(awaiting.number, awaiting.snapshot_index);
                stage(&mut self.outgoing, range_id, awaiting.messages);
            }
        }
    }

    /// Steps the vote requests for ranges that this pass created; drops the
    /// others (the candidate asks again). Returns whether any was stepped.
    fn step_early_votes(&mut self) -> bool {
        let mut stepped = false;
        for (range_id, message) in std::mem::take(&mut self.early_votes) {
            if let Some(replica) = self.replicas.get_mut(&range_id) {
                stepped |= replica.step(message).is_ok();
            }
        }
        stepped
    }

    fn flush_outgoing(&mut self) {
        if !self.outgoing.is_empty() {
            self.sink.send(std::mem::take(&mut self.outgoing));
        }
    }

    /// Forgets the unsynced readies of a Raft group that is gone (removed,
    /// or an empty replica replaced by a split): their numbers mean nothing
    /// to a new group, and their messages are stale.
    pub(super) fn forget_unsynced(&mut self, range_id: u64) {
        self.unsynced
            .retain(|unsynced| unsynced.range_id != range_id);
    }

    fn process_ready(&mut self, now: Instant) -> Result<()> {
        let existing: HashSet<u64> = self
            .replicas
            .iter()
            .filter(|(_, replica)| replica.is_initialized())
            .map(|(&id, _)| id)
            .collect();
        let mut outgoing = std::mem::take(&mut self.outgoing);
        let mut pass = Pass {
            engine: &self.engine,
            peers: &self.peers,
            batch: self.engine.batch(),
            replies: Vec::new(),
            existing,
            created: Vec::new(),
            outgoing: &mut outgoing,
            lease_length: self.raft.lease_length(),
            now,
            must_sync: false,
            appended: 0,
        };
        let mut taken = Vec::new();
        for (&range_id, replica) in self.replicas.iter_mut() {
            if replica.has_ready() {
                taken.push((range_id, replica.take_ready(&mut pass)?));
            }
        }
        let Pass {
            batch,
            mut replies,
            mut created,
            must_sync,
            appended,
            ..
        } = pass;
        self.outgoing = outgoing;
        if taken.is_empty() {
            return Ok(());
        }
        // The leaders' appends leave before the local write, so that
        // followers persist in parallel with this node.
        self.flush_outgoing();
        // Raft reads what it appended from the engine once the ready is
        // advanced, so the write comes first; durability follows.
        self.engine.write(batch, false)?;
        if must_sync {
            self.request_sync(appended)?;
        }
        let replaced = self.open_created(&mut created);
        for mut reply in replies.drain(..) {
            reply.widen_epoch_refusal(|key| self.holding(key));
            reply.send();
        }

        for (range_id, ready) in taken {
            // That Ready came from an empty replica the split just replaced
            // (found by zdb-chaos: raft-rs panicked advancing the new group
            // with it). Its writes are in; its messages are dropped and
            // Raft resends what matters.
            if replaced.contains(&range_id) {
                continue;
            }
            let replica = self.replica_mut(range_id);
            // Even a ready with nothing to sync waits for the syncs before
            // it: Raft must learn of persistence in order.
            let awaiting = replica.advance(ready);
            self.unsynced.push_back(Unsynced {
                token: self.sync_requested,
                range_id,
                awaiting,
            });
        }
        self.after_apply()?;
        self.destroy_removed()
    }

    fn request_sync(&mut self, entries: usize) -> Result<()> {
        self.sync_requested += 1;
        let token = self.sync_requested;
        match &self.durability {
            Durability::Syncer(syncer) => syncer.request(SyncRequest { token, entries }),
            #[cfg(test)]
            Durability::Inline => {
                self.engine.sync_wal()?;
                self.synced = token;
            }
        }
        Ok(())
    }

    /// Reads waiting for an apply index, and log compaction.
    fn after_apply(&mut self) -> Result<()> {
        let mut batch = self.engine.batch();
        let mut log_entries = 0;
        for replica in self.replicas.values_mut() {
            replica.release_reads();
            replica.compact_log(self.raft.log_compact_threshold, &mut batch)?;
            log_entries += replica.log_len();
        }
        metrics::RAFT_LOG_ENTRIES.set(log_entries as i64);
        if !batch.is_empty() {
            self.engine.write(batch, false)?;
        }
        Ok(())
    }

    pub(super) fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .values()
            .filter(|replica| replica.is_initialized())
            .map(|replica| replica.status())
            .collect()
    }
}
