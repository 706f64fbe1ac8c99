//! What a transaction is begun with: its isolation level and timings, and
//! the conditions of a one-shot atomic call.

use std::time::Duration;

use zdb_proto::v1 as pb;

/// What a transaction may observe of others running at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// As if every committed transaction ran alone, in commit order: no
    /// write skew, no phantoms. What it read is checked and locked at commit.
    #[default]
    Serializable,
    /// Reads one snapshot; the first committer wins a write-write conflict.
    /// Write skew is possible.
    Snapshot,
    /// Every read sees what was committed when it ran; lost updates are
    /// possible, dirty reads and writes are not.
    ReadCommitted,
}

impl Isolation {
    pub(super) fn to_proto(self) -> i32 {
        match self {
            Isolation::Serializable => pb::Isolation::Serializable as i32,
            Isolation::Snapshot => pb::Isolation::Snapshot as i32,
            Isolation::ReadCommitted => pb::Isolation::ReadCommitted as i32,
        }
    }
}

/// How a transaction behaves; a zero duration leaves the choice to the node
/// (3 s lock wait, 3 s lock time to live, 30 s idle timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnOptions {
    pub isolation: Isolation,
    /// How long a locking read waits for a lock another transaction holds
    /// before it fails with [`Error::LockWaitTimeout`].
    pub lock_wait_timeout: Duration,
    /// How long the transaction's locks outlive its coordinator.
    pub lock_ttl: Duration,
    /// The coordinator rolls the transaction back after this long without a
    /// call ([`Transaction::heartbeat`] counts).
    pub idle_timeout: Duration,
}

impl TxnOptions {
    pub fn new(isolation: Isolation) -> Self {
        TxnOptions {
            isolation,
            ..Default::default()
        }
    }

    pub(super) fn to_proto(&self) -> pb::BeginRequest {
        pb::BeginRequest {
            isolation: self.isolation.to_proto(),
            lock_wait_timeout_ms: millis(self.lock_wait_timeout),
            lock_ttl_ms: millis(self.lock_ttl),
            idle_timeout_ms: millis(self.idle_timeout),
        }
    }
}

/// Whole milliseconds, rounded up: 0 means "the node's default" on the
/// wire, so a sub-millisecond duration must not become one.
fn millis(duration: Duration) -> u64 {
    if duration.is_zero() {
        return 0;
    }
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One condition of [`Client::atomic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key holds exactly this value: `Equals(key, value)`.
    Equals(Vec<u8>, Vec<u8>),
    /// The key holds nothing.
    Absent(Vec<u8>),
}

impl Compare {
    pub fn equals(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Compare::Equals(key.into(), value.into())
    }

    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Compare::Absent(key.into())
    }

    pub(super) fn into_proto(self) -> pb::Compare {
        match self {
            Compare::Equals(key, value) => pb::Compare {
                key,
                value,
                absent: false,
            },
            Compare::Absent(key) => pb::Compare {
                key,
                value: Vec::new(),
                absent: true,
            },
        }
    }
}
