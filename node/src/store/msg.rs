use raft::eraftpb::Message;
use tokio::sync::oneshot;
use zdb_proto::v1::{Command, ReplicaStatus, RequestHeader};

use crate::range::reads::ReadResponder;
use crate::range::replica::ProposalResponder;

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
        responder: ProposalResponder,
    },
    Read {
        target: Target,
        kind: ReadKind,
        responder: ReadResponder,
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
    /// Stop the event loop.
    Shutdown,
}
