//! The store: every range replica on this node, driven by one event loop.
//!
//! One pass of the loop takes every pending message, ticks the Raft groups
//! when a tick is due, then collects the Ready of every replica and writes
//! all of them — log entries, hard states, applied commands — in one RocksDB
//! write. The loop does not wait for the disk: the syncer thread fsyncs the
//! write-ahead log once for every pass written while the previous fsync ran
//! (group commit), and only then do the messages that depend on durability
//! leave and Raft learn that the entries are persisted. Committed entries
//! are applied only once persisted here, so answering clients right after
//! the write is safe.

mod handle;
mod lifecycle;
pub mod msg;
mod routing;
mod syncer;
mod ttl;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raft::eraftpb::Message;
use raft::{SnapshotStatus, StateRole};
use rocksdb::WriteBatch;
use zdb_proto::v1::{RaftRole, RangeDescriptor, ReplicaStatus};

pub use handle::StoreHandle;
use msg::{RangeProgress, ReadKind, StoreMsg, Target};
use syncer::{SyncRequest, Syncer};

use crate::config::RaftConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metrics;
use crate::range::replica::{ProposalResponder, Reply};
use crate::range::Replica;
use crate::range::{descriptor, meta};
use crate::transport::{Outbox, PeerDirectory};

/// Most messages taken from the queue in one pass, so that a flood of
/// requests cannot delay persisting and answering the ones already taken.
const MAX_MESSAGES_PER_PASS: usize = 4096;
/// A pass that took this many messages means load: the next one lingers.
const BUSY_PASS: usize = 16;

pub struct Store {
    node_id: u64,
    logger: slog::Logger,
    engine: Engine,
    raft: RaftConfig,
    /// By range id: a pass writes the ranges' log entries in key order,
    /// which keeps RocksDB's memtable inserts cheap.
    replicas: BTreeMap<u64, Replica>,
    outbox: Outbox,
    peers: Arc<PeerDirectory>,
    inbox: mpsc::Receiver<StoreMsg>,
    ttl: ttl::Sweeper,
    /// When a message from each peer node last arrived.
    last_heard: HashMap<u64, Instant>,
    syncer: Syncer,
    /// Token of the newest sync asked for, and of the newest one done.
    sync_requested: u64,
    synced: u64,
    /// Readies written but maybe not durable yet, oldest first.
    unsynced: VecDeque<Unsynced>,
    /// Messages of this pass, by range: they leave together, as one batch
    /// per peer, rather than one hand-over per range.
    outgoing: Vec<(u64, Message)>,
    /// Vote requests for ranges this node does not hold, kept until the
    /// end of the pass: a new range's leader campaigns as soon as it applies
    /// the split, so its request can arrive together with the commit that
    /// makes this node apply the split and create the range.
    early_votes: Vec<(u64, Message)>,
}

/// A Ready whose writes wait for the sync `token` before Raft may count
/// them as persisted and before the messages that depend on them may leave
/// (a follower's append response, a vote).
struct Unsynced {
    token: u64,
    range_id: u64,
    number: u64,
    messages: Vec<Message>,
    /// A snapshot counts as applied only once it is durable: raft-rs
    /// refuses an applied index above the persisted one.
    snapshot_index: Option<u64>,
}

impl Store {
    /// Opens every replica found on disk and starts the event loop on its own thread.
    pub fn start(
        node_id: u64,
        engine: Engine,
        raft: RaftConfig,
        ttl_sweep_interval: std::time::Duration,
        outbox: Outbox,
        peers: Arc<PeerDirectory>,
        logger: &slog::Logger,
    ) -> Result<(StoreHandle, thread::JoinHandle<()>, mpsc::Sender<StoreMsg>)> {
        let mut replicas = BTreeMap::new();
        for range in descriptor::load_all(&engine)? {
            let replica = Replica::open(engine.clone(), node_id, range, &raft, logger)?;
            replicas.insert(replica.range_id(), replica);
        }
        let (sender, inbox) = mpsc::channel();
        let syncer = Syncer::start(engine.clone(), sender.clone())?;
        let store = Store {
            node_id,
            logger: logger.clone(),
            engine,
            raft,
            replicas,
            outbox,
            peers,
            inbox,
            ttl: ttl::Sweeper::new(ttl_sweep_interval),
            last_heard: HashMap::new(),
            syncer,
            sync_requested: 0,
            synced: 0,
            unsynced: VecDeque::new(),
            outgoing: Vec::new(),
            early_votes: Vec::new(),
        };
        let thread = thread::Builder::new()
            .name("zdb-store".into())
            .spawn(move || store.run())?;
        Ok((StoreHandle::new(sender.clone()), thread, sender))
    }

    fn run(mut self) {
        let mut next_tick = Instant::now() + self.raft.tick;
        let mut busy = false;
        let mut stepped_early_votes = false;
        loop {
            let wait = if self.has_synced_readies() || stepped_early_votes {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            match self.inbox.recv_timeout(wait) {
                Ok(msg) => {
                    let mut running = self.handle(msg);
                    let mut taken = 1;
                    // Under load, let more work arrive before the pass:
                    // fewer, larger passes mean fewer syncs, Raft messages
                    // and wake-ups per write. Sleeping rather than waiting
                    // on the queue spares a wake-up per arriving message.
                    if busy {
                        thread::sleep(self.raft.batch_linger);
                    }
                    while taken < MAX_MESSAGES_PER_PASS {
                        let Ok(msg) = self.inbox.try_recv() else {
                            break;
                        };
                        running &= self.handle(msg);
                        taken += 1;
                    }
                    metrics::MESSAGES_PER_PASS.observe(taken as f64);
                    busy = taken >= BUSY_PASS;
                    if !running {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_tick {
                for replica in self.replicas.values_mut() {
                    replica.raw.tick();
                    replica.load.sample(now);
                }
                next_tick = now + self.raft.tick;
                self.sweep_expired_keys(now);
            }
            for replica in self.replicas.values_mut() {
                replica.flush_reads(now, &self.raft);
            }
            self.release_synced();
            let result = self.process_ready();
            self.flush_outgoing();
            stepped_early_votes = self.step_early_votes();
            if let Err(err) = result {
                // The engine refused a write: continuing could acknowledge
                // something that is not durable. Stop the node.
                tracing::error!(error = %err, "cannot persist Raft state; stopping the node");
                std::process::exit(70);
            }
        }
        tracing::info!("store event loop stopped");
    }

    /// Returns false once asked to stop.
    fn handle(&mut self, msg: StoreMsg) -> bool {
        match msg {
            StoreMsg::Shutdown => return false,
            StoreMsg::Synced(token) => self.synced = self.synced.max(token),
            StoreMsg::Raft(messages) => {
                let now = Instant::now();
                for (range_id, message) in messages {
                    self.last_heard.insert(message.from, now);
                    if !self.replicas.contains_key(&range_id)
                        && !self.create_for_message(range_id, &message)
                    {
                        if is_vote_request(&message) {
                            self.early_votes.push((range_id, message));
                        }
                        continue;
                    }
                    let replica = self
                        .replicas
                        .get_mut(&range_id)
                        .expect("present or just created");
                    if let Err(err) = replica.raw.step(message) {
                        tracing::debug!(range_id, error = %err, "raft message ignored");
                    }
                }
            }
            StoreMsg::Propose {
                target,
                command,
                responder,
            } => {
                if let Err(err) = self.propose(&target, command, responder) {
                    tracing::trace!(error = %err, "proposal refused");
                }
            }
            StoreMsg::Read {
                target,
                kind,
                responder,
            } => match self.route(&target) {
                Err(err) => {
                    let _ = responder.send(Err(err));
                }
                Ok(range_id) => {
                    let replica = self
                        .replicas
                        .get_mut(&range_id)
                        .expect("routed to a local replica");
                    replica.load.read();
                    if kind == ReadKind::Stale {
                        let _ = responder.send(Ok(()));
                    } else if !replica.is_leader() {
                        let _ = responder.send(Err(not_leader(replica, &self.peers)));
                    } else {
                        replica.read(responder, Instant::now());
                    }
                }
            },
            StoreMsg::Unreachable { range_id, to } => {
                if let Some(replica) = self.replicas.get_mut(&range_id) {
                    replica.raw.report_unreachable(to);
                }
            }
            StoreMsg::SnapshotSent { range_id, to, ok } => {
                if let Some(replica) = self.replicas.get_mut(&range_id) {
                    let status = if ok {
                        SnapshotStatus::Finish
                    } else {
                        SnapshotStatus::Failure
                    };
                    replica.raw.report_snapshot(to, status);
                }
            }
            StoreMsg::Status(responder) => {
                let _ = responder.send(self.status());
            }
            StoreMsg::LastHeard(responder) => {
                let _ = responder.send(self.last_heard.clone());
            }
            StoreMsg::ChangeMembership {
                range_id,
                change,
                responder,
            } => match self.led(range_id) {
                Ok(replica) => replica.propose_conf_change(change, responder),
                Err(err) => {
                    let _ = responder.send(Err(err));
                }
            },
            StoreMsg::TransferLeader {
                range_id,
                to,
                responder,
            } => {
                let result = self.led(range_id).map(|replica| {
                    replica.reads.revoke_lease();
                    replica.raw.transfer_leader(to);
                });
                let _ = responder.send(result);
            }
            StoreMsg::Progress {
                range_id,
                responder,
            } => {
                let progress = self.led(range_id).map(|replica| RangeProgress {
                    commit_index: replica.raw.raft.raft_log.committed,
                    joint: !replica
                        .raw
                        .raft
                        .prs()
                        .conf()
                        .to_conf_state()
                        .voters_outgoing
                        .is_empty(),
                    members: replica
                        .raw
                        .raft
                        .prs()
                        .iter()
                        .map(|(&id, progress)| (id, progress.matched, progress.recent_active))
                        .collect(),
                });
                let _ = responder.send(progress);
            }
        }
        true
    }

    fn propose(
        &mut self,
        target: &Target,
        mut command: zdb_proto::v1::Command,
        responder: ProposalResponder,
    ) -> Result<()> {
        let range_id = match self.route(target) {
            Ok(range_id) => range_id,
            Err(err) => {
                let _ = responder.send(Err(err));
                return Ok(());
            }
        };
        let replica = self
            .replicas
            .get_mut(&range_id)
            .expect("routed to a local replica");
        if !replica.is_leader() {
            let _ = responder.send(Err(not_leader(replica, &self.peers)));
            return Ok(());
        }
        command.now_ms = now_ms();
        replica.load.write();
        if crate::planted::active() == Some(crate::planted::PlantedBug::AckBeforeCommit)
            && matches!(command.kind, Some(zdb_proto::v1::command::Kind::Write(_)))
        {
            let _ = responder.send(Ok(crate::range::apply::ApplyResult::Written));
            return replica.propose(&command, None);
        }
        replica.propose(&command, Some(responder))
    }

    fn sweep_expired_keys(&mut self, now: Instant) {
        if !self.ttl.due(now) {
            return;
        }
        for replica in self
            .replicas
            .values_mut()
            .filter(|replica| replica.is_leader())
        {
            match ttl::expired_in_range(&self.engine, &replica.descriptor, now_ms()) {
                Ok(Some(command)) => {
                    if let Err(err) = replica.propose(&command, None) {
                        tracing::debug!(error = %err, "TTL sweep proposal dropped");
                    }
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "TTL sweep failed"),
            }
        }
    }

    fn has_synced_readies(&self) -> bool {
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
            if let Some(replica) = self.replicas.get_mut(&unsynced.range_id) {
                replica.raw.on_persist_ready(unsynced.number);
                if let Some(index) = unsynced.snapshot_index {
                    replica.raw.advance_apply_to(index);
                }
                stage(&mut self.outgoing, unsynced.range_id, unsynced.messages);
            }
        }
    }

    /// Steps the vote requests for ranges that this pass created; drops the
    /// others (the candidate asks again). Returns whether any was stepped.
    fn step_early_votes(&mut self) -> bool {
        let mut stepped = false;
        for (range_id, message) in std::mem::take(&mut self.early_votes) {
            if let Some(replica) = self.replicas.get_mut(&range_id) {
                stepped |= replica.raw.step(message).is_ok();
            }
        }
        stepped
    }

    fn flush_outgoing(&mut self) {
        if !self.outgoing.is_empty() {
            self.outbox.send(std::mem::take(&mut self.outgoing));
        }
    }

    /// Forgets the unsynced readies of a Raft group that is gone (removed,
    /// or an empty replica replaced by a split): their numbers mean nothing
    /// to a new group, and their messages are stale.
    fn forget_unsynced(&mut self, range_id: u64) {
        self.unsynced
            .retain(|unsynced| unsynced.range_id != range_id);
    }

    fn process_ready(&mut self) -> Result<()> {
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        let mut readies = Vec::new();
        let mut must_sync = false;
        let mut appended = 0usize;
        // Ranges this node already holds initialized: a split must not reset
        // them. A snapshot installed earlier in this same pass counts too.
        let mut existing: HashSet<u64> = self
            .replicas
            .iter()
            .filter(|(_, replica)| replica.is_initialized())
            .map(|(&id, _)| id)
            .collect();
        let mut created = Vec::new();

        for (&range_id, replica) in self.replicas.iter_mut() {
            if !replica.raw.has_ready() {
                continue;
            }
            let mut ready = replica.raw.ready();
            if let Some(soft) = ready.ss() {
                on_role_change(replica, soft.raft_state, soft.leader_id, &self.peers);
            }
            // A leader may send its appends before its own copy is durable.
            stage(&mut self.outgoing, range_id, ready.take_messages());
            if !ready.snapshot().is_empty() {
                replica.install_snapshot(&self.engine, &mut batch, ready.snapshot())?;
                existing.insert(range_id);
            }
            appended += ready.entries().len();
            replica
                .raw
                .mut_store()
                .append(&mut batch, ready.entries())?;
            if let Some(hard_state) = ready.hs() {
                replica
                    .raw
                    .mut_store()
                    .set_hard_state(&mut batch, hard_state);
            }
            // Raft hands out only entries that are committed and durable here.
            let committed = ready.take_committed_entries();
            let applied = committed.last().map(|entry| entry.index);
            replica.apply_committed(
                &self.engine,
                &mut batch,
                committed,
                &mut replies,
                &existing,
                &mut created,
            )?;
            for read_state in ready.take_read_states() {
                let term = replica.raw.raft.term;
                replica.reads.round_confirmed(
                    &read_state.request_ctx,
                    read_state.index,
                    term,
                    self.raft.lease_length(),
                );
            }
            must_sync |= ready.must_sync();
            readies.push((range_id, ready, applied));
        }
        if readies.is_empty() {
            return Ok(());
        }
        // The leaders' appends leave before the local write, so that
        // followers persist in parallel with this node.
        self.flush_outgoing();
        // Raft reads what it appended from the engine once the ready is
        // advanced, so the write comes first; durability follows.
        self.engine.write(batch, false)?;
        if must_sync {
            self.sync_requested += 1;
            self.syncer.request(SyncRequest {
                token: self.sync_requested,
                entries: appended,
            });
        }
        let replaced = self.open_created(&mut created);
        replies.drain(..).for_each(Reply::send);

        for (range_id, mut ready, applied) in readies {
            // That Ready came from an empty replica the split just replaced
            // (found by zdb-chaos: raft-rs panicked advancing the new group
            // with it). Its writes are in; its messages are dropped and
            // Raft resends what matters.
            if replaced.contains(&range_id) {
                continue;
            }
            let replica = self
                .replicas
                .get_mut(&range_id)
                .expect("ready replica exists");
            // Even a ready with nothing to sync waits for the syncs before
            // it: Raft must learn of persistence in order.
            let snapshot = ready.snapshot();
            let snapshot_index = (!snapshot.is_empty()).then(|| snapshot.get_metadata().index);
            self.unsynced.push_back(Unsynced {
                token: self.sync_requested,
                range_id,
                number: ready.number(),
                messages: ready.take_persisted_messages(),
                snapshot_index,
            });
            replica.raw.advance_append_async(ready);
            // Not `advance_apply`: after a snapshot not yet durable, raft-rs
            // would take its index as applied.
            if let Some(index) = applied {
                replica.raw.advance_apply_to(index);
            }
        }

        let mut batch = WriteBatch::default();
        let mut log_entries = 0;
        for replica in self.replicas.values_mut() {
            replica.reads.applied(replica.raw.store().applied_index());
            compact_log(replica, self.raft.log_compact_threshold, &mut batch)?;
            log_entries += replica.raw.store().log_len();
        }
        metrics::RAFT_LOG_ENTRIES.set(log_entries as i64);
        if !batch.is_empty() {
            self.engine.write(batch, false)?;
        }
        self.destroy_removed()
    }

    fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .values()
            .filter(|replica| replica.is_initialized())
            .map(|replica| {
                let raft = &replica.raw.raft;
                let storage = replica.raw.store();
                ReplicaStatus {
                    range: Some(replica.descriptor.clone()),
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
                    reads_per_second: replica.load.reads_per_second,
                    writes_per_second: replica.load.writes_per_second,
                    ..Default::default()
                }
            })
            .collect()
    }
}

fn is_vote_request(message: &Message) -> bool {
    use raft::eraftpb::MessageType::{MsgRequestPreVote, MsgRequestVote};
    matches!(message.get_msg_type(), MsgRequestPreVote | MsgRequestVote)
}

fn stage(outgoing: &mut Vec<(u64, Message)>, range_id: u64, messages: Vec<Message>) {
    outgoing.extend(messages.into_iter().map(|message| (range_id, message)));
}

fn on_role_change(replica: &mut Replica, role: StateRole, leader_id: u64, peers: &PeerDirectory) {
    if role == StateRole::Leader {
        metrics::RAFT_LEADER_ELECTED.inc();
        tracing::info!(
            range_id = replica.range_id(),
            term = replica.raw.raft.term,
            "became leader"
        );
    } else {
        replica.reads.lost_leadership(
            replica.range_id(),
            leader_id,
            peers.address(leader_id).unwrap_or_default(),
        );
    }
}

fn not_leader(replica: &Replica, peers: &PeerDirectory) -> Error {
    let leader_id = replica.leader_id();
    Error::NotLeader {
        range_id: replica.range_id(),
        leader_id,
        leader_address: peers.address(leader_id).unwrap_or_default(),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

/// Every founding member writes the same initial state: the first range and,
/// in the meta range's keyspace, the cluster id, the node registry and the
/// routing table's first entry.
pub fn bootstrap(
    engine: &Engine,
    cluster_id: &str,
    members: &BTreeMap<u64, String>,
) -> Result<RangeDescriptor> {
    let node_ids: Vec<u64> = members.keys().copied().collect();
    let node_ids = node_ids.as_slice();
    let range = descriptor::initial(node_ids);
    let mut batch = WriteBatch::default();
    descriptor::save(engine, &mut batch, &range);
    meta::write_cluster(engine, &mut batch, cluster_id, members);
    meta::upsert(engine, engine, &mut batch, &mut HashMap::new(), &range)?;
    crate::raftlog::RangeStorage::write_bootstrap_state(
        engine,
        &mut batch,
        range.range_id,
        raft::eraftpb::ConfState::from((node_ids.to_vec(), vec![])),
    )?;
    engine.write(batch, true)?;
    Ok(range)
}

/// Drops applied entries once the log is long. A leader keeps what its
/// followers still need, unless the log grew far past the threshold; then
/// a lagging follower gets a snapshot instead.
fn compact_log(replica: &mut Replica, threshold: u64, batch: &mut WriteBatch) -> Result<()> {
    let storage = replica.raw.store();
    if storage.log_len() <= threshold {
        return Ok(());
    }
    let applied = storage.applied_index();
    let mut compact_to = applied;
    if replica.is_leader() && storage.log_len() <= threshold * 4 {
        let slowest = replica
            .raw
            .raft
            .prs()
            .iter()
            .map(|(_, progress)| progress.matched)
            .min()
            .unwrap_or(applied);
        compact_to = compact_to.min(slowest);
    }
    replica.raw.mut_store().compact_to(batch, compact_to)
}
