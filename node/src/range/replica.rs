use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Snapshot};
use raft::{RawNode, StateRole};
use rocksdb::WriteBatch;
use tokio::sync::oneshot;
use zdb_proto::v1::{command, Command, RangeDescriptor, ReplicaDescriptor, SplitCommand};

use super::apply::{Applier, ApplyResult};
use super::descriptor;
use super::load::Load;
use super::meta::META_RANGE_ID;
use super::reads::{ReadQueue, ReadResponder};
use super::snapshot;
use crate::config::RaftConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metrics;
use crate::raftlog::RangeStorage;

pub type ProposalResponder = oneshot::Sender<Result<ApplyResult>>;

struct Proposal {
    term: u64,
    responder: Option<ProposalResponder>,
}

/// A proposal's outcome, sent only once the batch holding its effects is written.
pub struct Reply(ProposalResponder, Result<ApplyResult>);

impl Reply {
    pub fn send(self) {
        let _ = self.0.send(self.1);
    }
}

/// This node's replica of one range.
pub struct Replica {
    pub raw: RawNode<RangeStorage>,
    pub descriptor: RangeDescriptor,
    /// Proposals waiting for their entry to apply, by log index.
    proposals: BTreeMap<u64, Proposal>,
    pub reads: ReadQueue,
    pub load: Load,
    /// A lease read was served since the last round: keep the lease fresh.
    lease_in_use: bool,
    /// A membership change removed this node: the store destroys the replica.
    pub removed: bool,
}

impl Replica {
    pub fn open(
        engine: Engine,
        node_id: u64,
        descriptor: RangeDescriptor,
        raft: &RaftConfig,
        logger: &slog::Logger,
    ) -> Result<Self> {
        let storage = RangeStorage::load(engine, descriptor.range_id)?;
        let config = raft::Config {
            id: node_id,
            election_tick: raft.election_ticks,
            heartbeat_tick: raft.heartbeat_ticks,
            applied: storage.applied_index(),
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_uncommitted_size: 256 << 20,
            // Proposals of one pass go to each follower as one append message.
            batch_append: true,
            // Followers learn a new commit index with the next append or
            // heartbeat instead of from a message of its own: with many
            // ranges, that extra append and its response per range and
            // round were a third of all Raft messages. Membership changes
            // still broadcast at once (raft-rs does so for a pending
            // configuration change).
            skip_bcast_commit: true,
            ..Default::default()
        };
        let logger = logger.new(slog::o!("range" => descriptor.range_id));
        let raw = RawNode::new(&config, storage, &logger)?;
        Ok(Replica {
            raw,
            descriptor,
            proposals: BTreeMap::new(),
            reads: ReadQueue::default(),
            load: Load::default(),
            lease_in_use: false,
            removed: false,
        })
    }

    pub fn range_id(&self) -> u64 {
        self.descriptor.range_id
    }

    /// A replica created for a message before it knows its range: it owns
    /// no keys until a snapshot brings its descriptor.
    pub fn is_initialized(&self) -> bool {
        !self.descriptor.replicas.is_empty()
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// Proposes a membership change; `responder` hears the new descriptor.
    pub fn propose_conf_change(&mut self, change: ConfChangeV2, responder: ProposalResponder) {
        let term = self.raw.raft.term;
        if let Err(err) = self.raw.propose_conf_change(Vec::new(), change) {
            let _ = responder.send(Err(Error::InvalidArgument(format!(
                "membership change refused: {err}"
            ))));
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        self.proposals.insert(
            index,
            Proposal {
                term,
                responder: Some(responder),
            },
        );
    }

    /// Appends a command to the log; `responder` hears the outcome once it
    /// applies, or at once if raft-rs refuses it (e.g. during a leader transfer).
    pub fn propose(
        &mut self,
        command: &Command,
        responder: Option<ProposalResponder>,
    ) -> Result<()> {
        let term = self.raw.raft.term;
        if self
            .raw
            .propose(Vec::new(), command.encode_to_vec())
            .is_err()
        {
            if let Some(responder) = responder {
                let _ = responder.send(Err(Error::ProposalDropped));
            }
            return Err(Error::ProposalDropped);
        }
        if matches!(command.kind, Some(command::Kind::Split(_))) {
            // The followers must apply a split before the new range's
            // leader asks them for votes: tell them of its commit at once.
            self.raw.raft.skip_bcast_commit(false);
        }
        let index = self.raw.raft.raft_log.last_index();
        metrics::RAFT_PROPOSALS.inc();
        self.proposals.insert(index, Proposal { term, responder });
        Ok(())
    }

    /// A linearizable read arrives on the leader: answer it from the lease if
    /// that is valid, otherwise queue it for the next ReadIndex round.
    pub fn read(&mut self, reader: ReadResponder, now: Instant) {
        let lease_usable = self.raw.raft.lead_transferee.is_none()
            && self.reads.lease_valid(self.raw.raft.term, now);
        if lease_usable {
            self.lease_in_use = true;
            let committed = self.raw.raft.raft_log.committed;
            if self.raw.store().applied_index() >= committed {
                let _ = reader.send(Ok(()));
            } else {
                self.reads.await_apply(committed, reader);
            }
        } else {
            self.reads.push_unsent(reader);
        }
    }

    /// Sends a ReadIndex round for the queued reads, or to renew a lease in use.
    pub fn flush_reads(&mut self, now: Instant, raft: &RaftConfig) {
        if !self.is_leader() || !self.raw.raft.commit_to_current_term() {
            return;
        }
        let term = self.raw.raft.term;
        self.reads.resend_stale_rounds(now, raft.election_timeout());
        let renew = self.lease_in_use
            && !self.reads.has_round_in_flight()
            && self
                .reads
                .lease_needs_renewal(term, now, raft.lease_length());
        if self.reads.has_unsent() || renew {
            self.lease_in_use = false;
            let context = self.reads.start_round(term, now);
            self.raw.read_index(context);
        }
    }

    /// Applies committed entries into `batch`; replies wait until it is written.
    /// Ranges created by splits are added to `created`; `existing` are the
    /// ranges this node already holds initialized (a split must not reset them).
    pub fn apply_committed(
        &mut self,
        engine: &Engine,
        batch: &mut WriteBatch,
        entries: Vec<Entry>,
        replies: &mut Vec<Reply>,
        existing: &HashSet<u64>,
        created: &mut Vec<RangeDescriptor>,
    ) -> Result<()> {
        let Some(last) = entries.last().map(|entry| entry.index) else {
            return Ok(());
        };
        let mut conf_state: Option<ConfState> = None;
        let mut applier = Applier::new(engine, batch);
        for entry in entries {
            metrics::RAFT_APPLIED.inc();
            let outcome = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => None,
                EntryType::EntryNormal => Some(match Command::decode(entry.data.as_ref()) {
                    Ok(Command {
                        kind: Some(command::Kind::Split(split)),
                        ..
                    }) => {
                        self.raw.raft.skip_bcast_commit(true);
                        self.apply_split(engine, applier.batch(), &split, existing, created)?
                    }
                    Ok(command) if self.range_id() == META_RANGE_ID => {
                        applier.apply_meta(&command)?
                    }
                    Ok(command) => applier.apply(&command)?,
                    // Every replica fails the same way on the same bytes.
                    Err(err) => {
                        self.answer(
                            entry.index,
                            entry.term,
                            Err(Error::InvalidArgument(format!(
                                "undecodable command: {err}"
                            ))),
                            replies,
                        );
                        continue;
                    }
                }),
                EntryType::EntryConfChange => {
                    let change: ConfChange =
                        protobuf::Message::parse_from_bytes(entry.data.as_ref())
                            .map_err(|err| Error::corruption("conf change entry", err))?;
                    let state = self.raw.apply_conf_change(&change)?;
                    let result = self.membership_changed(engine, applier.batch(), &state);
                    conf_state = Some(state);
                    Some(result)
                }
                EntryType::EntryConfChangeV2 => {
                    let change: ConfChangeV2 =
                        protobuf::Message::parse_from_bytes(entry.data.as_ref())
                            .map_err(|err| Error::corruption("conf change entry", err))?;
                    let state = self.raw.apply_conf_change(&change)?;
                    let result = self.membership_changed(engine, applier.batch(), &state);
                    conf_state = Some(state);
                    Some(result)
                }
            };
            if let Some(result) = outcome {
                self.answer(entry.index, entry.term, Ok(result), replies);
            }
        }
        drop(applier);
        self.raw.mut_store().set_applied(batch, last, conf_state);
        Ok(())
    }

    /// Records a new membership in the descriptor (a new `conf_ver`). A
    /// replica that is no longer a member is marked for removal.
    fn membership_changed(
        &mut self,
        engine: &Engine,
        batch: &mut WriteBatch,
        state: &ConfState,
    ) -> ApplyResult {
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
        self.descriptor.replicas = replicas;
        self.descriptor
            .epoch
            .get_or_insert_with(Default::default)
            .conf_ver += 1;
        descriptor::save(engine, batch, &self.descriptor);
        let me = self.raw.raft.id;
        self.removed = !self.descriptor.replicas.iter().any(|r| r.node_id == me);
        tracing::info!(range_id = self.range_id(), replicas = ?self.descriptor.replicas, "membership changed");
        ApplyResult::ConfChanged(self.descriptor.clone())
    }

    /// Cuts this range in two. Every replica reaches the same decision from
    /// the same descriptor, so a refusal is as deterministic as a split.
    fn apply_split(
        &mut self,
        engine: &Engine,
        batch: &mut WriteBatch,
        split: &SplitCommand,
        existing: &HashSet<u64>,
        created: &mut Vec<RangeDescriptor>,
    ) -> Result<ApplyResult> {
        let current = &self.descriptor;
        if split.expected_epoch != current.epoch {
            return Ok(ApplyResult::Refused(format!(
                "range {} changed since the split was requested (epoch {:?}, expected {:?})",
                current.range_id, current.epoch, split.expected_epoch
            )));
        }
        let key = split.split_key.as_slice();
        if key <= current.start_key.as_slice() || !descriptor::contains(current, key) {
            return Ok(ApplyResult::Refused(format!(
                "split key {:?} is not strictly inside range {}",
                String::from_utf8_lossy(key),
                current.range_id
            )));
        }
        // The new range starts with the parent's members, learners included.
        // A joint configuration would leave the new range with nobody to
        // finish the change: every replica refuses alike (they all applied
        // the same changes before this entry).
        let conf_state = self.raw.raft.prs().conf().to_conf_state();
        if !conf_state.voters_outgoing.is_empty() || !conf_state.learners_next.is_empty() {
            return Ok(ApplyResult::Refused(format!(
                "range {} is in the middle of a membership change; split it once the change is done",
                current.range_id
            )));
        }
        let mut left = current.clone();
        left.end_key = key.to_vec();
        let epoch = left.epoch.get_or_insert_with(Default::default);
        epoch.version += 1;
        let right = RangeDescriptor {
            range_id: split.new_range_id,
            start_key: key.to_vec(),
            end_key: current.end_key.clone(),
            epoch: left.epoch,
            replicas: current.replicas.clone(),
        };
        descriptor::save(engine, batch, &left);
        if !existing.contains(&right.range_id) {
            descriptor::save(engine, batch, &right);
            RangeStorage::write_bootstrap_state(engine, batch, right.range_id, conf_state)?;
        }
        self.descriptor = left.clone();
        created.push(right.clone());
        tracing::info!(
            range_id = left.range_id,
            new_range_id = right.range_id,
            "split applied"
        );
        Ok(ApplyResult::Split { left, right })
    }

    /// Resolves the proposal waiting at `index`, if any. A proposal whose slot
    /// was taken by another term's entry was overwritten: it never applied.
    fn answer(
        &mut self,
        index: u64,
        term: u64,
        result: Result<ApplyResult>,
        replies: &mut Vec<Reply>,
    ) {
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (slot, proposal) = entry.remove_entry();
            let Some(responder) = proposal.responder else {
                continue;
            };
            if slot == index && proposal.term == term {
                replies.push(Reply(responder, result));
                return;
            }
            replies.push(Reply(responder, Err(Error::ProposalDropped)));
        }
    }

    pub fn install_snapshot(
        &mut self,
        engine: &Engine,
        batch: &mut WriteBatch,
        snap: &Snapshot,
    ) -> Result<()> {
        let installed = snapshot::install(engine, batch, &snap.data)?;
        if let Some(range) = installed.range {
            self.descriptor = range;
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use raft::eraftpb::{ConfState, Entry};
    use rocksdb::WriteBatch;
    use zdb_proto::v1::{
        command, Command, RangeDescriptor, RangeEpoch, ReplicaDescriptor, SplitCommand,
    };

    use super::Replica;
    use crate::config::RaftConfig;
    use crate::engine::Engine;
    use crate::raftlog::{RangeStorage, RAFT_INIT_INDEX};
    use crate::range::descriptor;

    /// Found by zdb-chaos (topology schedule, seed 4242): a range split while
    /// a replica was a learner started without that replica in its Raft
    /// configuration, so no leader ever replicated to it.
    #[test]
    fn a_split_keeps_the_learners_of_the_parent() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let member = |node_id, learner| ReplicaDescriptor {
            node_id,
            replica_id: node_id,
            learner,
        };
        let parent = RangeDescriptor {
            range_id: 7,
            start_key: Vec::new(),
            end_key: Vec::new(),
            epoch: Some(RangeEpoch {
                conf_ver: 3,
                version: 2,
            }),
            replicas: vec![member(1, false), member(2, false), member(3, true)],
        };
        let mut batch = WriteBatch::default();
        descriptor::save(&engine, &mut batch, &parent);
        let members = ConfState::from((vec![1, 2], vec![3]));
        RangeStorage::write_bootstrap_state(&engine, &mut batch, 7, members.clone()).unwrap();
        engine.write(batch, true).unwrap();

        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut replica = Replica::open(
            engine.clone(),
            1,
            parent.clone(),
            &RaftConfig::default(),
            &logger,
        )
        .unwrap();
        let split = Command {
            kind: Some(command::Kind::Split(SplitCommand {
                split_key: b"m".to_vec(),
                new_range_id: 8,
                expected_epoch: parent.epoch,
            })),
            ..Default::default()
        };
        let entry = Entry {
            index: RAFT_INIT_INDEX + 1,
            term: 6,
            data: prost::Message::encode_to_vec(&split).into(),
            ..Default::default()
        };
        let (mut batch, mut replies, mut created) = (WriteBatch::default(), vec![], vec![]);
        replica
            .apply_committed(
                &engine,
                &mut batch,
                vec![entry],
                &mut replies,
                &HashSet::new(),
                &mut created,
            )
            .unwrap();
        engine.write(batch, true).unwrap();

        assert_eq!(created.len(), 1, "the split applied");
        let right = RangeStorage::load(engine, 8).unwrap();
        assert_eq!(right.apply_state().conf_state, members);
    }
}
