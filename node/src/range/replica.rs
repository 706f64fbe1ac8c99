//! This node's replica of one range: its Raft group, the proposals waiting
//! for their entries to apply, and its linearizable reads. What the entries
//! do to the data is the apply delegate's (`crate::apply`).

use std::collections::BTreeMap;
use std::time::Instant;

use prost::Message as _;
use raft::eraftpb::{ConfChangeV2, Message};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;
use zdb_proto::v1::{
    command, Command, CommandHeader, RaftRole, RangeDescriptor, RangeEpoch, ReplicaStatus,
};

use super::load::Load;
use super::reads::{ReadQueue, ReadResponder};
use crate::apply::{ApplyDelegate, Outcome};
use crate::config::RaftConfig;
use crate::engine::{Batch, Engine};
use crate::error::{Error, Result};
use crate::metrics;
use crate::raftlog::RangeStorage;

pub type ProposalResponder = oneshot::Sender<Result<Outcome>>;

/// Whether a command writes versions of user keys at a commit timestamp
/// the leader assigns (a transaction's one-phase commit included).
fn writes_versions(command: &Command) -> bool {
    match &command.kind {
        Some(
            command::Kind::Write(_)
            | command::Kind::Cas(_)
            | command::Kind::Update(_)
            | command::Kind::DeleteRange(_)
            | command::Kind::Evict(_)
            | command::Kind::Expire(_),
        ) => true,
        Some(command::Kind::TxnPrewrite(prewrite)) => prewrite.one_phase,
        _ => false,
    }
}

/// A transaction's commit: its versions take the commit timestamp the
/// coordinator chose, which the leader cannot raise (other ranges commit
/// the same transaction at it). Reads at or above it are safe anyway: they
/// met the transaction's locks, which were in place before the timestamp
/// was taken.
fn has_fixed_commit_ts(command: &Command) -> bool {
    matches!(command.kind, Some(command::Kind::TxnCommit(_)))
}

pub(super) struct Proposal {
    pub(super) term: u64,
    pub(super) responder: Option<ProposalResponder>,
}

/// The leader's view of one range's members, for admin calls that wait on it.
#[derive(Debug, Clone, Default)]
pub struct RangeProgress {
    pub commit_index: u64,
    /// In a joint configuration (a membership change half done).
    pub joint: bool,
    /// node id -> (matched index, recently active)
    pub members: Vec<(u64, u64, bool)>,
}

pub struct Replica {
    pub(super) raw: RawNode<RangeStorage>,
    pub(super) apply: ApplyDelegate,
    /// Proposals waiting for their entry to apply, by log index.
    pub(super) proposals: BTreeMap<u64, Proposal>,
    pub(super) reads: ReadQueue,
    load: Load,
    /// A lease read was served since the last round: keep the lease fresh.
    lease_in_use: bool,
    /// A membership change removed this node: the store destroys the replica.
    pub(super) removed: bool,
    pub(super) timestamps: LeaderTimestamps,
}

/// What the leader keeps to give its writes commit timestamps that never
/// fall below what a snapshot read already saw, nor below an earlier
/// write of the range (so versions follow the log's order). Not
/// replicated: a new leader's writes take their timestamps from the oracle
/// after it became leader, above everything served before.
#[derive(Debug, Default)]
pub(super) struct LeaderTimestamps {
    /// The highest timestamp a snapshot read was served at as leader.
    max_read_ts: u64,
    /// The highest commit timestamp proposed as leader.
    last_proposed: u64,
    /// The term this replica last became leader in, and when: a timestamp
    /// taken before that may be below reads its predecessor served.
    pub(super) leader_since: Option<(u64, Instant)>,
}

impl Replica {
    pub fn open(
        engine: Engine,
        node_id: u64,
        descriptor: RangeDescriptor,
        raft: &RaftConfig,
        logger: &slog::Logger,
        now: Instant,
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
            apply: ApplyDelegate::new(descriptor),
            proposals: BTreeMap::new(),
            reads: ReadQueue::default(),
            load: Load::new(now),
            lease_in_use: false,
            removed: false,
            timestamps: LeaderTimestamps::default(),
        })
    }

    pub fn descriptor(&self) -> &RangeDescriptor {
        self.apply.descriptor()
    }

    pub fn range_id(&self) -> u64 {
        self.descriptor().range_id
    }

    /// A replica created for a message before it knows its range: it owns
    /// no keys until a snapshot brings its descriptor.
    pub fn is_initialized(&self) -> bool {
        !self.descriptor().replicas.is_empty()
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Term and vote, which a replica replacing this one must keep.
    pub fn term_and_vote(&self) -> (u64, u64) {
        (self.raw.raft.term, self.raw.raft.vote)
    }

    pub fn tick(&mut self, now: Instant) {
        self.raw.tick();
        self.load.sample(now);
    }

    pub fn step(&mut self, message: Message) -> raft::Result<()> {
        self.raw.step(message)
    }

    pub fn campaign(&mut self) -> raft::Result<()> {
        self.raw.campaign()
    }

    pub fn report_unreachable(&mut self, to: u64) {
        self.raw.report_unreachable(to);
    }

    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        let status = if delivered {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
    }

    pub fn count_read(&mut self) {
        self.load.read();
    }

    /// The term and end of this leader's lease, unless the leadership is
    /// moving (the next leader may start before the lease would run out).
    pub fn lease(&self) -> Option<(u64, Instant)> {
        if !self.is_leader() || self.raw.raft.lead_transferee.is_some() {
            return None;
        }
        let term = self.raw.raft.term;
        self.reads.lease_until(term).map(|until| (term, until))
    }

    /// Hands the leadership to `to`; reads stop using the lease at once (the
    /// new leader may serve writes before this lease would run out).
    pub fn transfer_leader(&mut self, to: u64) {
        self.reads.revoke_lease();
        self.raw.transfer_leader(to);
    }

    pub fn progress(&self) -> RangeProgress {
        let prs = self.raw.raft.prs();
        RangeProgress {
            commit_index: self.raw.raft.raft_log.committed,
            joint: !prs.conf().to_conf_state().voters_outgoing.is_empty(),
            members: prs
                .iter()
                .map(|(&id, progress)| (id, progress.matched, progress.recent_active))
                .collect(),
        }
    }

    /// Whether this replica has applied everything it knows to be committed
    /// and knows a leader: a restarted node is caught up once every replica is.
    pub fn caught_up(&self) -> bool {
        let raft = &self.raw.raft;
        raft.leader_id != 0 && self.raw.store().applied_index() >= raft.raft_log.committed
    }

    pub fn status(&self) -> ReplicaStatus {
        let raft = &self.raw.raft;
        let storage = self.raw.store();
        ReplicaStatus {
            range: Some(self.descriptor().clone()),
            role: match raft.state {
                StateRole::Follower => RaftRole::Follower,
                StateRole::Candidate => RaftRole::Candidate,
                StateRole::PreCandidate => RaftRole::PreCandidate,
                StateRole::Leader => RaftRole::Leader,
            } as i32,
            leader_id: raft.leader_id,
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: storage.applied_index(),
            first_log_index: storage.apply_state().truncated_index + 1,
            last_log_index: raft.raft_log.last_index(),
            reads_per_second: self.load.reads_per_second,
            writes_per_second: self.load.writes_per_second,
            ..Default::default()
        }
    }

    pub fn log_len(&self) -> u64 {
        self.raw.store().log_len()
    }

    fn header(&self) -> CommandHeader {
        CommandHeader {
            range_id: self.range_id(),
            epoch: self.descriptor().epoch,
        }
    }

    /// Appends a command to the log under the range's current epoch;
    /// `responder` hears the outcome once it applies, or at once if it
    /// cannot be proposed (without one, a refusal is only logged). A
    /// command that writes versions gets its commit timestamp here, from
    /// the oracle's `command.ts` taken at `ts_taken_at`.
    pub fn propose(
        &mut self,
        mut command: Command,
        ts_taken_at: Option<Instant>,
        responder: Option<ProposalResponder>,
    ) {
        let refusal = if self.raw.raft.lead_transferee.is_some() {
            // Moving the leadership: raft-rs drops proposals meanwhile.
            Some(Error::NotApplied("the leadership of the range is moving"))
        } else if writes_versions(&command) && !self.assign_commit_ts(&mut command, ts_taken_at) {
            Some(Error::NotApplied(
                "the range's leadership changed while the write's timestamp was taken",
            ))
        } else {
            if has_fixed_commit_ts(&command) {
                let stamps = &mut self.timestamps;
                stamps.last_proposed = stamps.last_proposed.max(command.ts);
            }
            command.header = Some(self.header());
            self.raw
                .propose(Vec::new(), command.encode_to_vec())
                .err()
                // The only other reason raft-rs drops a proposal: too much
                // of the log is not committed yet.
                .map(|_| Error::ServerBusy("too many writes of the range are waiting to commit"))
        };
        if let Some(err) = refusal {
            match responder {
                Some(responder) => {
                    let _ = responder.send(Err(err));
                }
                None => {
                    tracing::debug!(range_id = self.range_id(), error = %err, "proposal refused")
                }
            }
            return;
        }
        if matches!(command.kind, Some(command::Kind::Split(_))) {
            // The followers must apply a split before the new range's
            // leader asks them for votes: tell them of its commit at once.
            self.raw.raft.skip_bcast_commit(false);
        }
        let index = self.raw.raft.raft_log.last_index();
        metrics::RAFT_PROPOSALS.inc();
        self.load.write();
        let term = self.raw.raft.term;
        self.proposals.insert(index, Proposal { term, responder });
    }

    /// Raises the command's timestamp above every snapshot read served and
    /// every write proposed as leader; false for a timestamp taken before
    /// this replica became leader (or before the store saw it become
    /// leader in this term).
    fn assign_commit_ts(&mut self, command: &mut Command, ts_taken_at: Option<Instant>) -> bool {
        let term = self.raw.raft.term;
        let stamps = &mut self.timestamps;
        if let Some(taken) = ts_taken_at {
            match stamps.leader_since {
                Some((since_term, since)) if since_term == term && taken >= since => {}
                _ => return false,
            }
        }
        command.ts = command
            .ts
            .max(stamps.last_proposed)
            .max(stamps.max_read_ts + 1);
        stamps.last_proposed = command.ts;
        true
    }

    /// A snapshot read at `read_ts` arrives on the leader: later writes
    /// commit above it. Returns the index every write proposed so far has,
    /// which the read must see applied.
    pub fn note_snapshot_read(&mut self, read_ts: u64) -> u64 {
        self.timestamps.max_read_ts = self.timestamps.max_read_ts.max(read_ts);
        self.raw.raft.raft_log.last_index()
    }

    /// Proposes a membership change decided on the range at `epoch`;
    /// `responder` hears the new descriptor.
    pub fn propose_conf_change(
        &mut self,
        change: ConfChangeV2,
        epoch: Option<RangeEpoch>,
        responder: ProposalResponder,
    ) {
        if epoch.is_some() && epoch != self.descriptor().epoch {
            let _ = responder.send(Err(Error::EpochNotMatch {
                current: vec![self.descriptor().clone()],
            }));
            return;
        }
        let term = self.raw.raft.term;
        let context = self.header().encode_to_vec();
        if let Err(err) = self.raw.propose_conf_change(context, change) {
            let _ = responder.send(Err(Error::FailedPrecondition(format!(
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

    /// A linearizable read arrives on the leader: answer it from the lease if
    /// that is valid, otherwise queue it for the next ReadIndex round.
    pub fn read(&mut self, reader: ReadResponder, now: Instant, min_index: u64) {
        self.load.read();
        let lease_usable = self.raw.raft.lead_transferee.is_none()
            && self.reads.lease_valid(self.raw.raft.term, now);
        if lease_usable {
            self.lease_in_use = true;
            let target = self.raw.raft.raft_log.committed.max(min_index);
            if self.raw.store().applied_index() >= target {
                let _ = reader.send(Ok(()));
            } else {
                self.reads.await_apply(target, reader);
            }
        } else {
            self.reads.push_unsent(min_index, reader);
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

    /// Releases the reads whose read index is applied now.
    pub fn release_reads(&mut self) {
        self.reads.applied(self.raw.store().applied_index());
    }

    /// Drops applied entries once the log is long. A leader keeps what its
    /// followers still need, unless the log grew far past the threshold;
    /// then a lagging follower gets a snapshot instead.
    pub fn compact_log(&mut self, threshold: u64, batch: &mut Batch) -> Result<()> {
        let storage = self.raw.store();
        if storage.log_len() <= threshold {
            return Ok(());
        }
        let applied = storage.applied_index();
        let mut compact_to = applied;
        if self.is_leader() && storage.log_len() <= threshold * 4 {
            let slowest = self
                .raw
                .raft
                .prs()
                .iter()
                .map(|(_, progress)| progress.matched)
                .min()
                .unwrap_or(applied);
            compact_to = compact_to.min(slowest);
        }
        self.raw.mut_store().compact_to(batch, compact_to)
    }
}
