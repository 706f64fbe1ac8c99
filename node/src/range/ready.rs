//! One replica's share of a store pass: take its Raft Ready, write what must
//! be persisted into the pass's batch, apply its committed entries, and,
//! once the batch is written, hand the Ready back to Raft.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use raft::eraftpb::{Entry, Message, Snapshot};
use raft::{Ready, StateRole};
use zdb_proto::v1::RangeDescriptor;

use super::replica::{ProposalResponder, Replica};
use super::snapshot;
use crate::apply::{ApplyContext, ExecResult, Outcome, Refusal};
use crate::engine::{Batch, Engine};
use crate::error::{Error, Result};
use crate::metrics;
use crate::transport::PeerDirectory;

/// A proposal's answer, sent only once the batch holding its effects is
/// written.
pub struct Reply {
    responder: ProposalResponder,
    result: Result<Outcome>,
    /// For a command refused for its epoch: the keys it touched, so that
    /// the store can name every local range that holds them now.
    stale_keys: Vec<Vec<u8>>,
}

impl Reply {
    pub fn new(responder: ProposalResponder, result: Result<Outcome>) -> Self {
        Reply {
            responder,
            result,
            stale_keys: Vec::new(),
        }
    }

    /// Adds to an epoch refusal the current descriptors `holding` finds for
    /// the keys the command touched (the ranges a split created, say).
    pub fn widen_epoch_refusal(&mut self, holding: impl Fn(&[u8]) -> Option<RangeDescriptor>) {
        let Err(Error::EpochNotMatch { current }) = &mut self.result else {
            return;
        };
        for key in &self.stale_keys {
            if let Some(range) = holding(key) {
                if !current.iter().any(|known| known.range_id == range.range_id) {
                    current.push(range);
                }
            }
        }
    }

    pub fn send(self) {
        let _ = self.responder.send(self.result);
    }
}

/// What a store pass gathers from every replica before its one write.
pub struct Pass<'a> {
    pub engine: &'a Engine,
    pub peers: &'a PeerDirectory,
    pub batch: Batch,
    pub replies: Vec<Reply>,
    /// Ranges this node holds initialized: a split must not reset them. A
    /// snapshot installed earlier in this same pass counts too.
    pub existing: HashSet<u64>,
    /// Ranges created by splits applied in this pass.
    pub created: Vec<RangeDescriptor>,
    /// Messages that may leave before the batch is durable (a leader's appends).
    pub outgoing: &'a mut Vec<(u64, Message)>,
    pub lease_length: Duration,
    /// When the pass runs, on the store's clock.
    pub now: Instant,
    pub must_sync: bool,
    pub appended: usize,
}

/// A Ready taken from a replica, whose writes are in the pass's batch.
pub struct Taken {
    ready: Ready,
    applied: Option<u64>,
}

/// What of a Ready must wait for the pass's sync.
pub struct AwaitingSync {
    pub number: u64,
    /// Messages that depend on durability (a follower's append response, a vote).
    pub messages: Vec<Message>,
    /// A snapshot counts as applied only once it is durable: raft-rs
    /// refuses an applied index above the persisted one.
    pub snapshot_index: Option<u64>,
}

impl Replica {
    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    /// Takes the Ready into the pass: its log entries, hard state and
    /// snapshot go into the batch, its committed entries are applied there.
    pub fn take_ready(&mut self, pass: &mut Pass<'_>) -> Result<Taken> {
        let range_id = self.range_id();
        let mut ready = self.raw.ready();
        if let Some(soft) = ready.ss() {
            self.on_role_change(soft.raft_state, soft.leader_id, pass.peers, pass.now);
        }
        // A leader may send its appends before its own copy is durable.
        stage(pass.outgoing, range_id, ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_snapshot(&mut pass.batch, ready.snapshot())?;
            pass.existing.insert(range_id);
        }
        pass.appended += ready.entries().len();
        self.raw
            .mut_store()
            .append(&mut pass.batch, ready.entries())?;
        if let Some(hard_state) = ready.hs() {
            self.raw
                .mut_store()
                .set_hard_state(&mut pass.batch, hard_state);
        }
        // Raft hands out only entries that are committed and durable here.
        let committed = ready.take_committed_entries();
        let applied = committed.last().map(|entry| entry.index);
        self.apply_committed(pass, committed)?;
        for read_state in ready.take_read_states() {
            let term = self.raw.raft.term;
            self.reads.round_confirmed(
                &read_state.request_ctx,
                read_state.index,
                term,
                pass.lease_length,
            );
        }
        pass.must_sync |= ready.must_sync();
        Ok(Taken { ready, applied })
    }

    /// The pass's batch is written: Raft may go on. What depends on the
    /// batch being durable is returned, to wait for the sync.
    pub fn advance(&mut self, taken: Taken) -> AwaitingSync {
        let Taken { mut ready, applied } = taken;
        let snapshot = ready.snapshot();
        let snapshot_index = (!snapshot.is_empty()).then(|| snapshot.get_metadata().index);
        let awaiting = AwaitingSync {
            number: ready.number(),
            messages: ready.take_persisted_messages(),
            snapshot_index,
        };
        self.raw.advance_append_async(ready);
        // Not `advance_apply`: after a snapshot not yet durable, raft-rs
        // would take its index as applied.
        if let Some(index) = applied {
            self.raw.advance_apply_to(index);
        }
        awaiting
    }

    /// The writes of a Ready are durable now.
    pub fn on_synced(&mut self, number: u64, snapshot_index: Option<u64>) {
        self.raw.on_persist_ready(number);
        if let Some(index) = snapshot_index {
            self.raw.advance_apply_to(index);
        }
    }

    fn on_role_change(
        &mut self,
        role: StateRole,
        leader_id: u64,
        peers: &PeerDirectory,
        now: Instant,
    ) {
        if role == StateRole::Leader {
            self.timestamps.leader_since = Some((self.raw.raft.term, now));
            metrics::RAFT_LEADER_ELECTED.inc();
            tracing::info!(
                range_id = self.range_id(),
                term = self.raw.raft.term,
                "became leader"
            );
        } else {
            self.reads.lost_leadership(
                self.range_id(),
                leader_id,
                peers.address(leader_id).unwrap_or_default(),
            );
        }
    }

    /// Applies committed entries into the pass's batch, one at a time, and
    /// acts on what each did; the answers wait until the batch is written.
    fn apply_committed(&mut self, pass: &mut Pass<'_>, entries: Vec<Entry>) -> Result<()> {
        let Some(last) = entries.last().map(|entry| entry.index) else {
            return Ok(());
        };
        let mut conf_state = self.raw.raft.prs().conf().to_conf_state();
        let mut conf_changed = false;
        self.apply.begin_batch();
        for entry in entries {
            metrics::RAFT_APPLIED.inc();
            let mut ctx = ApplyContext {
                engine: pass.engine,
                batch: &mut pass.batch,
                conf_state: &conf_state,
                existing: &pass.existing,
            };
            let (answer, stale_keys) = match self.apply.apply(&mut ctx, &entry)? {
                ExecResult::Noop => continue,
                ExecResult::Applied(outcome) => (Ok(outcome), Vec::new()),
                ExecResult::Refused(Refusal::StaleEpoch { current, keys }) => {
                    let current = vec![current];
                    (Err(Error::EpochNotMatch { current }), keys)
                }
                ExecResult::Refused(refusal) => (Err(refusal.into_error()), Vec::new()),
                ExecResult::Split { left, right } => {
                    self.raw.raft.skip_bcast_commit(true);
                    pass.created.push(right.clone());
                    (Ok(Outcome::Split { left, right }), Vec::new())
                }
                ExecResult::ChangeMembership { change, kind } => {
                    conf_state = self.raw.apply_conf_change(&change)?;
                    conf_changed = true;
                    let mut ctx = ApplyContext {
                        engine: pass.engine,
                        batch: &mut pass.batch,
                        conf_state: &conf_state,
                        existing: &pass.existing,
                    };
                    let range = self.apply.membership_applied(&mut ctx, kind, &conf_state);
                    let me = self.raw.raft.id;
                    self.removed = !range.replicas.iter().any(|r| r.node_id == me);
                    (Ok(Outcome::ConfChanged(range)), Vec::new())
                }
            };
            if let Some(mut reply) = self.answer(entry.index, entry.term, answer, &mut pass.replies)
            {
                reply.stale_keys = stale_keys;
                pass.replies.push(reply);
            }
        }
        self.raw
            .mut_store()
            .set_applied(&mut pass.batch, last, conf_changed.then_some(conf_state));
        Ok(())
    }

    /// Resolves the proposals up to `index`: the one waiting there gets
    /// `result` (returned, for the caller to send), the ones before it were
    /// overwritten by another term's entries and never applied.
    fn answer(
        &mut self,
        index: u64,
        term: u64,
        result: Result<Outcome>,
        replies: &mut Vec<Reply>,
    ) -> Option<Reply> {
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (slot, proposal) = entry.remove_entry();
            let Some(responder) = proposal.responder else {
                continue;
            };
            if slot == index && proposal.term == term {
                return Some(Reply::new(responder, result));
            }
            replies.push(Reply::new(
                responder,
                Err(Error::NotApplied(
                    "the leader changed before the request committed",
                )),
            ));
        }
        None
    }

    fn install_snapshot(&mut self, batch: &mut Batch, snap: &Snapshot) -> Result<()> {
        let installed = snapshot::install(batch, &snap.data)?;
        if let Some(range) = installed.range {
            self.apply.reset(range);
        }
        self.raw.mut_store().apply_snapshot(batch, snap);
        // Proposals at or below the snapshot index can no longer be matched to
        // their entries: their outcome is unknown to this node.
        let index = snap.get_metadata().index;
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > index {
                break;
            }
            if let Some(responder) = entry.remove().responder {
                let _ = responder.send(Err(Error::OutcomeUnknown));
            }
        }
        metrics::RAFT_SNAPSHOTS_APPLIED.inc();
        Ok(())
    }
}

pub fn stage(outgoing: &mut Vec<(u64, Message)>, range_id: u64, messages: Vec<Message>) {
    outgoing.extend(messages.into_iter().map(|message| (range_id, message)));
}
