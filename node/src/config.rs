//! Node settings: identity, addresses, request limits and Raft timings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// No configuration may allow keys longer than this: snapshot and range
/// bounds rely on it.
pub const MAX_KEY_BYTES_CEILING: usize = 64 << 10;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id; 0 when joining (the cluster assigns one).
    pub node_id: u64,
    /// Address of any member of a running cluster to join, for a new node.
    pub join: Option<String>,
    /// gRPC address for clients and peers.
    pub listen: SocketAddr,
    /// Address other nodes and clients reach this node at, when it differs
    /// from `listen` (a stable DNS name in Kubernetes, where the node listens
    /// on 0.0.0.0 and its pod IP changes on every restart).
    pub advertise: Option<String>,
    /// HTTP address for `/metrics`; None to disable.
    pub status_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Every member of the cluster, this node included: node id -> gRPC address.
    pub peers: BTreeMap<u64, String>,
    /// Names the cluster; peers refuse traffic from another cluster.
    pub cluster_id: String,
    /// The failure domain this node runs in, announced to the registry
    /// (empty: unknown, or set by an operator through the admin API).
    pub zone: String,
    pub limits: Limits,
    pub raft: RaftConfig,
    /// How often the leader removes expired keys from disk.
    pub ttl_sweep_interval: Duration,
    /// On SIGTERM, how long the node may take to hand its leaderships away
    /// and finish the requests in flight before it exits anyway.
    pub shutdown_timeout: Duration,
}

/// Request size limits. Anything above is refused with INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Mutations in one BatchWrite, keys in one BatchGet.
    pub max_batch_ops: usize,
    /// Keys plus values of one BatchWrite.
    pub max_batch_bytes: usize,
    /// Largest and default page of a Scan.
    pub max_scan_limit: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 4 << 10,
            max_value_bytes: 1 << 20,
            max_batch_ops: 10_000,
            max_batch_bytes: 16 << 20,
            max_scan_limit: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Compact a range's log once it holds more entries than this.
    pub log_compact_threshold: u64,
    /// Serve linearizable reads from the leader lease while it is valid.
    pub lease_reads: bool,
    /// Under load, how long a pass of the event loop waits for more work
    /// before persisting: longer means more writes per sync and fewer Raft
    /// messages per write, at that much added latency.
    pub batch_linger: Duration,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            log_compact_threshold: 10_000,
            lease_reads: true,
            batch_linger: Duration::from_micros(200),
        }
    }
}

impl NodeConfig {
    /// The address this node announces when joining and in peer traffic.
    pub fn advertised_address(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }
}

impl RaftConfig {
    pub fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks as u32
    }

    /// How long a confirmed leadership stays valid. Followers refuse votes for
    /// at least `election_ticks - 1` ticks after hearing from the leader (the
    /// first tick may come right after); take 80% of that for clock drift.
    pub fn lease_length(&self) -> Duration {
        if !self.lease_reads {
            return Duration::ZERO;
        }
        self.tick * (self.election_ticks.saturating_sub(1) as u32) * 4 / 5
    }
}
