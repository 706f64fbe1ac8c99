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
    /// Address serving the Redis protocol; None to disable.
    pub redis_listen: Option<SocketAddr>,
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
    /// Encryption at rest; None: values are stored in the clear.
    pub encryption: Option<EncryptionConfig>,
    /// Serve TLS only and dial peers over TLS with this certificate; None:
    /// plaintext.
    pub tls: Option<zdb_security::tls::TlsFiles>,
    /// Authentication settings (on from the start with a root password).
    pub security: crate::ops::auth::SecuritySettings,
    /// Where the audit log goes (default: `audit.log` in the data dir,
    /// written when TLS is on).
    pub audit_log: Option<PathBuf>,
}

/// Encryption at rest: values of user data, transactions, the Raft log and
/// the system keyspace are sealed with data keys that the master key wraps.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    /// The master key: 32 random bytes as 64 hex characters.
    pub key_file: PathBuf,
    /// The master key before the current one, during a master key
    /// rotation: the data key file is rewrapped from it at start.
    pub previous_key_file: Option<PathBuf>,
    /// A new data key is made once the current one is this old.
    pub data_key_rotation_period: Duration,
}

impl EncryptionConfig {
    pub const DEFAULT_ROTATION_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);
}

/// A duration written as a number and a unit: `30s`, `15m`, `24h`, `7d`
/// (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 15m, 24h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ))
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("").is_err());
    }
}
