use zdb_proto::v1::{LockInfo, RangeDescriptor};

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

    #[error("{}", not_leader_message(*.range_id, *.leader_id, .leader_address))]
    NotLeader {
        range_id: u64,
        leader_id: u64,
        leader_address: String,
    },

    #[error("{}", range_not_found_message(*.0))]
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

    /// Definitely not applied: safe to retry.
    #[error("not applied ({0}); retry")]
    NotApplied(&'static str),

    /// Overloaded; not applied.
    #[error("the node is busy ({0}); nothing was applied, retry after a backoff")]
    ServerBusy(&'static str),

    /// Not possible in the cluster's present state; nothing changed.
    #[error("{0}")]
    FailedPrecondition(String),

    #[error("timed out: {0}")]
    Timeout(&'static str),

    /// An admin call waited for the cluster to reach a state and gave up.
    #[error("{0}")]
    WaitTimedOut(String),

    #[error("{0}")]
    NotFound(String),

    /// A read below the GC safe point: the versions it needs may be gone.
    #[error("read timestamp {read_ts} is below the GC safe point {safe_point}; read at a newer timestamp")]
    TimestampTooOld { read_ts: u64, safe_point: u64 },

    /// No timestamp could be had from the oracle; nothing was proposed.
    #[error("the timestamp oracle could not be reached ({0}); nothing was applied, retry")]
    OracleUnavailable(String),

    #[error("the node is shutting down")]
    ShuttingDown,

    /// A transaction's lock keeps the request out; nothing was applied.
    #[error("key {:?} is locked by transaction {} (primary {:?})", String::from_utf8_lossy(&.0.key), .0.start_ts, String::from_utf8_lossy(&.0.primary))]
    KeyLocked(Box<LockInfo>),

    #[error("write conflict on key {:?}: another transaction committed it (or holds its lock) at {conflict_ts}, after this transaction's snapshot {start_ts}; run the transaction again", String::from_utf8_lossy(key))]
    WriteConflict {
        key: Vec<u8>,
        start_ts: u64,
        conflict_ts: u64,
    },

    #[error("serialization failure: key {:?}, read by the transaction at {start_ts}, changed before it could commit; run the transaction again", String::from_utf8_lossy(key))]
    SerializationFailure { key: Vec<u8>, start_ts: u64 },

    #[error("deadlock: the transaction waited for key {:?} in the cycle {cycle:?}; it was aborted to break it, run it again", String::from_utf8_lossy(key))]
    Deadlock { cycle: Vec<u64>, key: Vec<u8> },

    #[error("lock wait timeout: key {:?} stayed locked by transaction {holder}; run the transaction again later", String::from_utf8_lossy(key))]
    LockWaitTimeout { key: Vec<u8>, holder: u64 },

    #[error("transaction {start_ts} was rolled back: {reason}; run it again")]
    TxnAborted { start_ts: u64, reason: String },

    #[error("transaction {0} is unknown to this node (it ended, idled out, or another node coordinates it); begin a new one")]
    TxnNotFound(u64),

    /// The call names no one while authentication is on, or its
    /// credentials do not hold; nothing was applied.
    #[error("unauthenticated: {reason}")]
    Unauthenticated { reason: String, token_expired: bool },

    /// The caller lacks `permission`; nothing was applied.
    #[error("permission denied: user {user:?} lacks {permission}; an admin can grant it (zdbctl role grant)")]
    PermissionDenied { user: String, permission: String },

    #[error("node {node_id} is known to this cluster under another store id; its data directory was wiped. Start it as a new node instead of reusing id {node_id}")]
    IdentityChanged { node_id: u64 },

    #[error("configuration: {0}")]
    Config(String),

    /// Encryption at rest: a key file that cannot be read or written, a
    /// wrong master key, a sealed value that does not open. Boxed: it is
    /// rare, and keeps every `Result` of the node small.
    #[error("encryption at rest: {0}")]
    Encryption(Box<zdb_security::Error>),

    #[error("the cache prefix {prefix:?} is over its budget of {max_bytes} bytes and evicts nothing: delete keys or raise the budget (zdbctl cache set)", prefix = String::from_utf8_lossy(prefix))]
    CacheFull { prefix: Vec<u8>, max_bytes: u64 },

    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),

    #[error("transport: {0}")]
    Transport(String),

    /// What another node answered a request this node passed on to it
    /// (gRPC code, message and typed details, returned to the caller as is).
    #[error("{message}")]
    Remote {
        code: i32,
        message: String,
        details: Vec<u8>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn not_leader_message(range_id: u64, leader_id: u64, leader_address: &str) -> String {
    match (leader_id, leader_address) {
        (0, _) => format!("range {range_id} has no leader yet; retry after a short backoff"),
        (_, "") => format!(
            "range {range_id} is led by node {leader_id}, whose address this node does not know"
        ),
        (_, address) => format!("range {range_id} is led by node {leader_id} at {address}"),
    }
}

fn range_not_found_message(range_id: u64) -> String {
    if range_id == 0 {
        "no range on this node holds the key; look it up again (Locate) and retry".into()
    } else {
        format!("range {range_id} has no replica on this node; look it up again (Locate) and retry")
    }
}

impl From<zdb_security::Error> for Error {
    fn from(err: zdb_security::Error) -> Self {
        Error::Encryption(Box::new(err))
    }
}

impl Error {
    pub fn corruption(what: &'static str, detail: impl ToString) -> Self {
        Error::Corruption {
            what,
            detail: detail.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, item 10: messages say what is known, no more.
    #[test]
    fn routing_messages_name_what_is_known() {
        let named = Error::NotLeader {
            range_id: 4,
            leader_id: 2,
            leader_address: "10.0.0.2:7700".into(),
        };
        assert_eq!(
            named.to_string(),
            "range 4 is led by node 2 at 10.0.0.2:7700"
        );
        let unknown = Error::NotLeader {
            range_id: 4,
            leader_id: 0,
            leader_address: String::new(),
        };
        assert!(unknown.to_string().contains("no leader yet"));
        assert!(!Error::RangeNotFound(0).to_string().contains("range 0"));
        assert!(Error::RangeNotFound(9).to_string().contains("range 9"));
    }
}
