use std::collections::HashMap;
use std::time::Instant;

use raft::eraftpb::{ConfChangeV2, Message};
use tokio::sync::oneshot;
use zdb_proto::v1::{Command, RangeEpoch, ReplicaStatus, RequestHeader};

use crate::error::{Error, Result};
use crate::range::reads::ReadResponder;
use crate::range::replica::ProposalResponder;
pub use crate::range::replica::RangeProgress;

/// How much a read needs to be confirmed before it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Linearizable,
    /// Any replica, no confirmation.
    Stale,
}

/// Where a request is going: the range the client named (or 0) and the keys
/// it touches, which the replica checks against its span and epoch.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub header: Option<RequestHeader>,
    pub keys: Vec<Vec<u8>>,
    /// For scans: the exclusive end, which must not pass the range's end
    /// (empty: unbounded).
    pub span_end: Option<Vec<u8>>,
}

/// Everything the store's event loop is asked to do.
pub enum StoreMsg {
    /// Messages from a peer, in the order sent.
    Raft(Vec<(u64, Message)>),
    Propose {
        target: Target,
        command: Command,
        /// When the command's timestamp (`command.ts`) was asked of the
        /// oracle, if it has one.
        ts_taken_at: Option<Instant>,
        responder: ProposalResponder,
    },
    Read {
        target: Target,
        kind: ReadKind,
        /// A snapshot read at this timestamp (0: the latest state).
        read_ts: u64,
        responder: ReadResponder,
    },
    /// The term this node leads the range in (NotLeader if it does not).
    LeaderTerm {
        range_id: u64,
        responder: oneshot::Sender<Result<u64>>,
    },
    /// A message to `to` could not be delivered (the peer is down or slow).
    Unreachable {
        range_id: u64,
        to: u64,
    },
    /// A snapshot stream to `to` finished.
    SnapshotSent {
        range_id: u64,
        to: u64,
        ok: bool,
    },
    Status(oneshot::Sender<Vec<ReplicaStatus>>),
    /// Proposes a membership change to a range this node leads, decided on
    /// the range at `epoch` (None: whatever it is now).
    ChangeMembership {
        range_id: u64,
        epoch: Option<RangeEpoch>,
        change: ConfChangeV2,
        responder: ProposalResponder,
    },
    TransferLeader {
        range_id: u64,
        to: u64,
        responder: oneshot::Sender<Result<()>>,
    },
    /// When a message from each peer node last arrived.
    LastHeard(oneshot::Sender<HashMap<u64, Instant>>),
    /// The leader's view of each member: how far its log matches and
    /// whether it was heard from recently.
    Progress {
        range_id: u64,
        responder: oneshot::Sender<Result<RangeProgress>>,
    },
    /// Every write of the passes up to this sync token is durable.
    Synced(u64),
    /// Something the node cannot go on after (the WAL cannot be synced, a
    /// peer refused this node's identity): the event loop stops with it.
    Fatal(Error),
    /// Stop the event loop.
    Shutdown,
}
