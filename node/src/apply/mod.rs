//! Applying a replica's committed Raft entries.
//!
//! One [`ApplyDelegate`] per replica owns the range's descriptor and what the
//! pass's write batch holds so far. It applies one entry at a time and
//! returns an [`ExecResult`] for the replica to act on. Before anything else
//! it checks the command against the descriptor as it stands at apply (the
//! [`epoch`] table says which part of the epoch each kind of command must
//! match): a write proposed before a split and committed after it is refused
//! by the range that no longer owns its key, on every replica alike.
//!
//! Determinism: the result depends only on the entry's bytes and on the
//! state earlier entries produced (descriptor, data, Raft configuration),
//! never on the local clock, role or anything else one replica may see
//! differently. So a refusal is returned by every replica or by none.
//! Engine errors are not results: they stop the node.
//!
//! - [`data`]: puts, deletes, compare-and-swap, delete-range, expiry;
//! - [`update`]: read-modify-writes of one key (increments, appends,
//!   conditional sets, expiry changes);
//! - [`system`]: the meta range's routing table and registry;
//! - [`split`]: cutting the range in two;
//! - [`membership`]: recording a membership change in the descriptor;
//! - [`txn`]: transactions' prewrites, locks, commits and rollbacks, and
//!   the lock check of plain writes.

pub mod data;
pub mod epoch;
pub mod membership;
pub mod split;
pub mod system;
pub mod txn;
pub mod update;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
#[cfg(test)]
mod update_tests;

use std::collections::{HashMap, HashSet};

use prost::Message as _;
use raft::eraftpb::{ConfChangeV2, ConfState, Entry, EntryType};
use zdb_proto::v1::{command, stored_mutation, Command, CommandHeader, RangeDescriptor};

use self::data::DataBatch;
use self::epoch::CommandKind;
use self::txn::{TxnBatch, TxnWritten};
use crate::engine::{Batch, Engine};
use crate::error::{Error, Result};
use crate::meta::table::{SystemBatch, META_RANGE_ID};
use crate::range::descriptor;
use crate::txn::records::Fate;
use crate::txn::Conflict;

/// What a command did, for the client that proposed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Written,
    /// A fresh range id from the meta range.
    RangeId(u64),
    /// A fresh node id from the meta range (or a member's own, announced).
    NodeId(u64),
    /// The oracle's window end or the GC safe point as it stands after the
    /// command (which never lowers either).
    Timestamp(u64),
    /// The range's membership changed; its new descriptor.
    ConfChanged(RangeDescriptor),
    Split {
        left: RangeDescriptor,
        right: RangeDescriptor,
    },
    CompareAndSwap {
        succeeded: bool,
        /// The live value before the command, if any.
        current: Option<Vec<u8>>,
    },
    /// A read-modify-write's answer (its refusal, if the value did not
    /// allow it, included: every replica decides alike).
    Update(zdb_proto::v1::UpdateResponse),
    /// How many live keys a delete-range removed.
    Deleted(u64),
    /// A transaction's fate after a rollback command: rolled back, committed
    /// (nothing was rolled back), or None: alive, not expired.
    TxnFate(Option<Fate>),
}

/// Why a command was not applied. Every replica refuses alike.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Proposed under an epoch the range has left since (a split or a
    /// membership change applied in between). `keys` are the user keys the
    /// command touches, so the store can tell the client which ranges hold
    /// them now.
    StaleEpoch {
        current: RangeDescriptor,
        keys: Vec<Vec<u8>>,
    },
    /// A key outside the range, under the current epoch: the proposer did
    /// not check it. Written nowhere rather than by the wrong range.
    KeyNotInRange {
        key: Vec<u8>,
        current: RangeDescriptor,
    },
    /// Not possible in the range's present state; the reason says why.
    Precondition(String),
    /// The entry does not decode.
    Malformed(String),
    /// A transaction's lock, a newer version or the transaction's own fate
    /// keeps the command out (`start_ts` 0: a plain write).
    Txn { start_ts: u64, conflict: Conflict },
}

/// What applying one entry did, for the replica to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecResult {
    /// An empty entry (a new leader's first).
    Noop,
    Applied(Outcome),
    Refused(Refusal),
    /// The range split: this replica now holds `left`; `right` is new.
    Split {
        left: RangeDescriptor,
        right: RangeDescriptor,
    },
    /// A membership change passed its checks: the replica applies it to its
    /// Raft configuration, then calls [`ApplyDelegate::membership_applied`].
    ChangeMembership {
        change: ConfChangeV2,
        kind: CommandKind,
    },
}

impl Refusal {
    /// The error the proposer hears.
    pub fn into_error(self) -> Error {
        match self {
            Refusal::StaleEpoch { current, .. } => Error::EpochNotMatch {
                current: vec![current],
            },
            Refusal::KeyNotInRange { key, current } => Error::KeyNotInRange {
                key,
                range: Box::new(current),
            },
            Refusal::Precondition(reason) => Error::FailedPrecondition(reason),
            Refusal::Malformed(reason) => Error::InvalidArgument(reason),
            Refusal::Txn { start_ts, conflict } => match conflict {
                Conflict::Locked(lock) => Error::KeyLocked(Box::new(lock)),
                Conflict::Write { key, conflict_ts } => Error::WriteConflict {
                    key,
                    start_ts,
                    conflict_ts,
                },
                Conflict::Aborted(reason) => Error::TxnAborted { start_ts, reason },
            },
        }
    }
}

/// What an entry is applied against, besides the delegate's own state.
pub struct ApplyContext<'a> {
    pub engine: &'a Engine,
    pub batch: &'a mut Batch,
    /// The range's Raft configuration as of this entry.
    pub conf_state: &'a ConfState,
    /// Ranges this node already holds initialized: a split must not reset them.
    pub existing: &'a HashSet<u64>,
}

pub struct ApplyDelegate {
    descriptor: RangeDescriptor,
    /// The newest version of each user key written into the pass's batch
    /// so far (the stored record), and the system keys (None: deleted).
    data_written: HashMap<Vec<u8>, (u64, Vec<u8>)>,
    system_written: HashMap<Vec<u8>, Option<Vec<u8>>>,
    txn_written: TxnWritten,
}

impl ApplyDelegate {
    pub fn new(descriptor: RangeDescriptor) -> Self {
        ApplyDelegate {
            descriptor,
            data_written: HashMap::new(),
            system_written: HashMap::new(),
            txn_written: HashMap::new(),
        }
    }

    pub fn descriptor(&self) -> &RangeDescriptor {
        &self.descriptor
    }

    /// A snapshot replaced the replica's state.
    pub fn reset(&mut self, descriptor: RangeDescriptor) {
        self.descriptor = descriptor;
        self.begin_batch();
    }

    /// A new write batch starts: what earlier batches wrote is in the engine.
    pub fn begin_batch(&mut self) {
        self.data_written.clear();
        self.system_written.clear();
        self.txn_written.clear();
    }

    pub fn apply(&mut self, ctx: &mut ApplyContext<'_>, entry: &Entry) -> Result<ExecResult> {
        match entry.get_entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => Ok(ExecResult::Noop),
            EntryType::EntryNormal => match Command::decode(entry.data.as_ref()) {
                Ok(command) => self.apply_command(ctx, &command),
                Err(err) => Ok(malformed(format!("undecodable command: {err}"))),
            },
            // Neither zdb nor raft-rs proposes the first version's changes.
            EntryType::EntryConfChange => Ok(malformed(
                "membership changes are proposed as ConfChangeV2".into(),
            )),
            EntryType::EntryConfChangeV2 => {
                match protobuf::Message::parse_from_bytes(entry.data.as_ref()) {
                    Ok(change) => Ok(self.check_membership(change, &entry.context)),
                    Err(err) => Ok(malformed(format!("undecodable membership change: {err}"))),
                }
            }
        }
    }

    /// Records the membership Raft applied for a change this delegate let through.
    pub fn membership_applied(
        &mut self,
        ctx: &mut ApplyContext<'_>,
        kind: CommandKind,
        state: &ConfState,
    ) -> RangeDescriptor {
        membership::record(ctx.batch, &mut self.descriptor, kind, state)
    }

    fn apply_command(
        &mut self,
        ctx: &mut ApplyContext<'_>,
        command: &Command,
    ) -> Result<ExecResult> {
        let Some(kind) = CommandKind::of(command) else {
            return Ok(ExecResult::Noop);
        };
        let range = &self.descriptor;
        if !kind.admits(
            command.header.as_ref(),
            range.range_id,
            range.epoch.as_ref(),
        ) {
            return Ok(ExecResult::Refused(Refusal::StaleEpoch {
                current: range.clone(),
                keys: touched_keys(command).map(<[u8]>::to_vec).collect(),
            }));
        }
        if let Some(key) = touched_keys(command).find(|key| !descriptor::contains(range, key)) {
            return Ok(ExecResult::Refused(Refusal::KeyNotInRange {
                key: key.to_vec(),
                current: range.clone(),
            }));
        }
        let kind_body = command.kind.as_ref().expect("a kind, checked above");
        let mut data = DataBatch::new(ctx.engine, ctx.batch, &mut self.data_written, command.ts);
        let mut txn = TxnBatch::new(&mut data, &mut self.txn_written, &self.descriptor);
        if matches!(
            kind,
            CommandKind::Write | CommandKind::CompareAndSwap | CommandKind::Update
        ) {
            if let Some(refusal) = txn::check_plain_write(&txn, touched_keys(command))? {
                return Ok(ExecResult::Refused(refusal));
            }
        }
        let now_ms = command.now_ms;
        let decided = |result: Result<Outcome, Refusal>| match result {
            Ok(outcome) => ExecResult::Applied(outcome),
            Err(refusal) => ExecResult::Refused(refusal),
        };
        Ok(match kind_body {
            command::Kind::Write(write) => ExecResult::Applied(data::write(txn.data, write)),
            command::Kind::Cas(cas) => {
                ExecResult::Applied(data::compare_and_swap(txn.data, cas, now_ms)?)
            }
            command::Kind::Update(cmd) => {
                ExecResult::Applied(update::update(txn.data, cmd, now_ms)?)
            }
            command::Kind::DeleteRange(cmd) => {
                let span = descriptor::clip(&self.descriptor, &cmd.start_key, &cmd.end_key);
                if let Some(refusal) = txn::check_span_write(&txn, (&span.0, &span.1))? {
                    return Ok(ExecResult::Refused(refusal));
                }
                ExecResult::Applied(data::delete_range(txn.data, (&span.0, &span.1), now_ms)?)
            }
            command::Kind::Evict(evict) => {
                // A key a transaction holds stays: the next round may take it.
                let mut unlocked = evict.clone();
                unlocked.keys.clear();
                for evicted in &evict.keys {
                    if txn::may_expire(&txn, &evicted.key)? {
                        unlocked.keys.push(evicted.clone());
                    }
                }
                ExecResult::Applied(data::evict(txn.data, &unlocked)?)
            }
            command::Kind::Expire(expire) => {
                // A key a transaction holds waits for the next sweep.
                let mut unlocked = expire.clone();
                unlocked.keys.clear();
                for expired in &expire.keys {
                    if txn::may_expire(&txn, &expired.key)? {
                        unlocked.keys.push(expired.clone());
                    }
                }
                ExecResult::Applied(data::expire(txn.data, &unlocked, now_ms)?)
            }
            command::Kind::TxnPrewrite(cmd) => decided(txn::prewrite(&mut txn, cmd, now_ms)?),
            command::Kind::TxnLock(cmd) => decided(txn::lock(&mut txn, cmd, now_ms)?),
            command::Kind::TxnCommit(cmd) => decided(txn::commit(&mut txn, cmd)?),
            command::Kind::TxnRollback(cmd) => decided(txn::rollback(&mut txn, cmd, now_ms)?),
            command::Kind::TxnKeepAlive(cmd) => decided(txn::keep_alive(&mut txn, cmd, now_ms)?),
            command::Kind::Split(split) => split::apply(
                ctx.engine,
                ctx.batch,
                &mut self.descriptor,
                split,
                ctx.conf_state,
                ctx.existing,
            )?,
            system_kind if self.descriptor.range_id == META_RANGE_ID => {
                let mut system = SystemBatch::new(ctx.engine, ctx.batch, &mut self.system_written);
                system::apply(&mut system, system_kind)?
            }
            _ => ExecResult::Refused(Refusal::Precondition(
                "system commands are only accepted by the meta range".into(),
            )),
        })
    }

    /// A membership change applies only under the epoch it was proposed at;
    /// the entry Raft appends itself to leave a joint configuration carries
    /// no header and is always applied.
    fn check_membership(&self, change: ConfChangeV2, context: &[u8]) -> ExecResult {
        let kind = if context.is_empty() && change.leave_joint() {
            CommandKind::LeaveJoint
        } else {
            CommandKind::ChangeMembership
        };
        let header = match CommandHeader::decode(context) {
            Ok(header) => Some(header),
            Err(err) => return malformed(format!("undecodable membership change header: {err}")),
        };
        let range = &self.descriptor;
        if !kind.admits(header.as_ref(), range.range_id, range.epoch.as_ref()) {
            return ExecResult::Refused(Refusal::StaleEpoch {
                current: range.clone(),
                keys: Vec::new(),
            });
        }
        ExecResult::ChangeMembership { change, kind }
    }
}

fn malformed(reason: String) -> ExecResult {
    ExecResult::Refused(Refusal::Malformed(reason))
}

/// The user keys a command reads or writes.
pub fn touched_keys(command: &Command) -> Box<dyn Iterator<Item = &[u8]> + '_> {
    match &command.kind {
        Some(command::Kind::Write(write)) => {
            Box::new(write.mutations.iter().filter_map(|m| match &m.op {
                Some(stored_mutation::Op::Put(put)) => Some(put.key.as_slice()),
                Some(stored_mutation::Op::Delete(key)) => Some(key.as_slice()),
                None => None,
            }))
        }
        Some(command::Kind::Cas(cas)) => Box::new(std::iter::once(cas.key.as_slice())),
        Some(command::Kind::Update(update)) => Box::new(std::iter::once(update.key.as_slice())),
        // The span is clipped to the range at apply; its start must be inside.
        Some(command::Kind::DeleteRange(delete)) => {
            Box::new(std::iter::once(delete.start_key.as_slice()))
        }
        Some(command::Kind::Expire(expire)) => {
            Box::new(expire.keys.iter().map(|expired| expired.key.as_slice()))
        }
        Some(command::Kind::Evict(evict)) => {
            Box::new(evict.keys.iter().map(|evicted| evicted.key.as_slice()))
        }
        Some(command::Kind::TxnPrewrite(prewrite)) => Box::new(
            prewrite
                .locks
                .iter()
                .map(|lock| lock.key.as_slice())
                .chain(prewrite.spans.iter().map(|span| span.start_key.as_slice())),
        ),
        Some(command::Kind::TxnLock(lock)) => {
            Box::new(lock.locks.iter().map(|lock| lock.key.as_slice()))
        }
        Some(command::Kind::TxnCommit(commit)) => Box::new(commit.keys.iter().map(Vec::as_slice)),
        Some(command::Kind::TxnRollback(rollback)) => {
            Box::new(rollback.keys.iter().map(Vec::as_slice))
        }
        Some(command::Kind::TxnKeepAlive(keep_alive)) => {
            Box::new(std::iter::once(keep_alive.primary.as_slice()))
        }
        _ => Box::new(std::iter::empty()),
    }
}
