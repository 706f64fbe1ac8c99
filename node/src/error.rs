use zdb_proto::v1::RangeDescriptor;

/// Everything that can go wrong inside a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage engine: {0}")]
    Engine(#[from] rocksdb::Error),

    #[error("corrupt data on disk ({what}): {detail}")]
    Corruption { what: &'static str, detail: String },

    #[error("raft: {0}")]
    Raft(#[from] raft::Error),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("range {range_id} is led by node {leader_id} (0: no leader known yet)")]
    NotLeader {
        range_id: u64,
        leader_id: u64,
        leader_address: String,
    },

    #[error("range {0} has no replica on this node")]
    RangeNotFound(u64),

    #[error("key is outside range {}", range.range_id)]
    KeyNotInRange {
        key: Vec<u8>,
        range: Box<RangeDescriptor>,
    },

    #[error("the request names an epoch that is no longer current; the range is now {current:?}")]
    EpochNotMatch { current: Vec<RangeDescriptor> },

    #[error("the outcome is unknown: the request timed out after it was proposed; it may or may not have been applied")]
    OutcomeUnknown,

    #[error(
        "the proposal was dropped before it committed (leader changed); it was not applied, retry"
    )]
    ProposalDropped,

    #[error("timed out: {0}")]
    Timeout(&'static str),

    #[error("the node is shutting down")]
    ShuttingDown,

    #[error("node {node_id} is known to this cluster under another store id; its data directory was wiped. Start it as a new node instead of reusing id {node_id}")]
    IdentityChanged { node_id: u64 },

    #[error("configuration: {0}")]
    Config(String),

    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),

    #[error("transport: {0}")]
    Transport(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn corruption(what: &'static str, detail: impl ToString) -> Self {
        Error::Corruption {
            what,
            detail: detail.to_string(),
        }
    }
}
